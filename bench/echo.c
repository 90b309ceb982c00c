/* echo.c - the floor for the RPC benchmarks: a minimal single-threaded epoll
 * server on a Unix socket that speaks only ttrpc's 10-byte framing, without
 * protobuf, dispatch tables or bookkeeping.
 *
 * Every frame it receives is answered with a Response frame (type 2) on the
 * same stream id. The first four bytes of the request body (big endian) say
 * how long the answer's body is: bench-rpc sends requests exactly as long
 * as the real ones and asks for answers exactly as long as the daemon's, so
 * the bytes on the wire match and only the server's work differs. Like the
 * daemon it reads what is available, answers every complete frame in it
 * and writes the answers with one write() per read batch.
 *
 * Usage: bench-echo --socket PATH [--ready-fd N]
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "lib/ttrpc.h"
#include "lib/util.h"

#define ECHO_MAX_BODY (4u << 20)

struct echo_conn {
	int fd;
	uint8_t *in;
	size_t in_len, in_cap;
	uint8_t *out;
	size_t out_off, out_len, out_cap;
	bool want_out;
};

static void echo_conn_free(int ep, struct echo_conn *c)
{
	epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
	close(c->fd);
	free(c->in);
	free(c->out);
	free(c);
}

static void echo_out_reserve(struct echo_conn *c, size_t more)
{
	if (c->out_off && c->out_off == c->out_len)
		c->out_off = c->out_len = 0;
	if (c->out_len + more <= c->out_cap)
		return;
	while (c->out_len + more > c->out_cap)
		c->out_cap = c->out_cap ? c->out_cap * 2 : 65536;
	c->out = xrealloc(c->out, c->out_cap);
}

/* Answer every complete frame in the input buffer. Return: 0, or -1 on a corrupt stream. */
static int echo_process(struct echo_conn *c)
{
	size_t off = 0;

	while (c->in_len - off >= TTRPC_HEADER_SIZE) {
		struct ttrpc_header h;
		uint32_t want = 0;

		ttrpc_header_decode(c->in + off, &h);
		if (h.length > ECHO_MAX_BODY)
			return -1;
		if (c->in_len - off < TTRPC_HEADER_SIZE + (size_t)h.length)
			break;
		if (h.length >= 4) {
			const uint8_t *b = c->in + off + TTRPC_HEADER_SIZE;

			want = (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
		}
		if (want > ECHO_MAX_BODY)
			return -1;
		off += TTRPC_HEADER_SIZE + h.length;
		echo_out_reserve(c, TTRPC_HEADER_SIZE + want);
		struct ttrpc_header r = { .length = want, .stream_id = h.stream_id, .type = TTRPC_TYPE_RESPONSE };

		ttrpc_header_encode(&r, c->out + c->out_len);
		memset(c->out + c->out_len + TTRPC_HEADER_SIZE, 0, want);
		c->out_len += TTRPC_HEADER_SIZE + want;
	}
	if (off) {
		memmove(c->in, c->in + off, c->in_len - off);
		c->in_len -= off;
	}
	return 0;
}

/* Return: 0, or -1 when the connection is to be closed. */
static int echo_flush(int ep, struct echo_conn *c)
{
	while (c->out_off < c->out_len) {
		ssize_t n = write(c->fd, c->out + c->out_off, c->out_len - c->out_off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			break;
		if (n <= 0)
			return -1;
		c->out_off += (size_t)n;
	}
	bool want = c->out_off < c->out_len;

	if (want != c->want_out) {
		struct epoll_event ev = { .events = EPOLLIN | (want ? EPOLLOUT : 0), .data.ptr = c };

		epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
		c->want_out = want;
	}
	return 0;
}

/* Return: 0, or -1 when the connection is to be closed. */
static int echo_read(int ep, struct echo_conn *c)
{
	for (;;) {
		if (c->in_cap - c->in_len < 65536) {
			c->in_cap = c->in_cap ? c->in_cap * 2 : 131072;
			c->in = xrealloc(c->in, c->in_cap);
		}
		ssize_t n = read(c->fd, c->in + c->in_len, c->in_cap - c->in_len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			break;
		if (n <= 0)
			return -1;
		c->in_len += (size_t)n;
		if (echo_process(c) < 0)
			return -1;
		if ((size_t)n < 65536)
			break;
	}
	return echo_flush(ep, c);
}

static void echo_accept(int ep, int lfd)
{
	for (;;) {
		int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

		if (fd < 0)
			return;
		struct echo_conn *c = xcalloc(1, sizeof(*c));
		struct epoll_event ev = { .events = EPOLLIN, .data.ptr = c };

		c->fd = fd;
		if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0) {
			close(fd);
			free(c);
		}
	}
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "socket", required_argument, NULL, 's' },
		{ "ready-fd", required_argument, NULL, 'r' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *path = NULL;
	int ready_fd = -1, opt;
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct rlimit rl;

	while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (opt) {
		case 's':
			path = optarg;
			break;
		case 'r':
			ready_fd = atoi(optarg);
			break;
		default:
			fprintf(stderr, "Usage: bench-echo --socket PATH [--ready-fd N]\n");
			return opt == 'h' ? 0 : 2;
		}
	}
	if (!path || strlen(path) >= sizeof(sa.sun_path)) {
		fprintf(stderr, "bench-echo: --socket PATH is required (at most %zu bytes)\n", sizeof(sa.sun_path) - 1);
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	strcpy(sa.sun_path, path);
	unlink(path);
	int lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	if (lfd < 0 || bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(lfd, 4096) < 0) {
		fprintf(stderr, "bench-echo: %s: %s\n", path, strerror(errno));
		return 1;
	}
	int ep = epoll_create1(EPOLL_CLOEXEC);
	struct epoll_event lev = { .events = EPOLLIN, .data.ptr = NULL };

	if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &lev) < 0) {
		fprintf(stderr, "bench-echo: epoll: %s\n", strerror(errno));
		return 1;
	}
	if (ready_fd >= 0) {
		if (write(ready_fd, "R", 1) != 1)
			return 1;
		close(ready_fd);
	}
	for (;;) {
		struct epoll_event evs[64];
		int n = epoll_wait(ep, evs, 64, -1);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return 1;
		for (int i = 0; i < n; i++) {
			struct echo_conn *c = evs[i].data.ptr;

			if (!c) {
				echo_accept(ep, lfd);
				continue;
			}
			int rc = 0;

			if (evs[i].events & EPOLLOUT)
				rc = echo_flush(ep, c);
			if (rc == 0 && (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)))
				rc = echo_read(ep, c);
			if (rc < 0)
				echo_conn_free(ep, c);
		}
	}
}
