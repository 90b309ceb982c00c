/* client_burst.c - a burst of clients connecting at once is answered in full.
 *
 * 1,000 non-blocking Unix sockets of this process connect to a real virtmgrd
 * while the daemon is stopped (SIGSTOP), so every one of them must wait in
 * the listening socket's backlog at the same moment: with a backlog smaller
 * than the burst, connect() fails with EAGAIN. Each sends one GetDaemonInfo
 * request before reading anything. The daemon is continued and every
 * connection must get its answer (status OK, the daemon's pid). Then all
 * are closed and the daemon's open fds (/proc/PID/fd) must come back to
 * their count before the burst; the daemon still serves and exits 0 on
 * SIGTERM (under ASan: no leaks). Nothing here measures time; waits are
 * bounded.
 */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "lib/ttrpc-priv.h"
#include "lib/ttrpc.h"
#include "lib/util.h"
#include "protos/ttrpc.pb-c.h"
#include "protos/virtmgr.pb-c.h"
#include "tests/integration/client_daemon.h"

#define NCLIENTS 1000
#define SERVICE "virtmgr.v1.VirtualizationService"
#define WAIT_S 60

struct burst_client {
	int fd;
	uint8_t hdr[TTRPC_HEADER_SIZE];
	size_t have; /* bytes of header, then of body */
	uint8_t *body;
	uint32_t len;
	bool done;
};

static struct test_daemon daemon_;

/* A complete GetDaemonInfo request frame on stream 1. */
static uint8_t *request_frame(size_t *len)
{
	Virtmgr__V1__GetDaemonInfoRequest inner = VIRTMGR__V1__GET_DAEMON_INFO_REQUEST__INIT;

	return ttrpc_build_request(1, 0, SERVICE, "GetDaemonInfo", &inner.base, 0, len);
}

static int count_fds(pid_t pid)
{
	char path[64];
	DIR *d;
	int n = 0;

	snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
	d = opendir(path);
	if (!d)
		test_fail("opendir %s: %s", path, strerror(errno));
	while (readdir(d))
		n++;
	closedir(d);
	return n;
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Enough fds for the burst: the soft limit up to the hard one. */
static void raise_nofile(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		test_fail("getrlimit: %s", strerror(errno));
	if (rl.rlim_cur < NCLIENTS + 64) {
		rl.rlim_cur = rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
			test_fail("setrlimit: %s", strerror(errno));
	}
	if (rl.rlim_cur < NCLIENTS + 64)
		test_fail("RLIMIT_NOFILE hard limit %llu is too low for %d clients", (unsigned long long)rl.rlim_max,
			  NCLIENTS);
}

/* Read what @c has; check the answer once complete. Return: true when done. */
static bool client_read(struct burst_client *c, pid_t pid, int i)
{
	for (;;) {
		ssize_t n;

		if (c->have < TTRPC_HEADER_SIZE) {
			n = read(c->fd, c->hdr + c->have, TTRPC_HEADER_SIZE - c->have);
		} else {
			if (!c->body) {
				struct ttrpc_header h;

				ttrpc_header_decode(c->hdr, &h);
				if (h.type != TTRPC_TYPE_RESPONSE || h.stream_id != 1 || h.length > TTRPC_MAX_DATA)
					test_fail("client %d: frame type %u stream %u length %u", i, h.type,
						  h.stream_id, h.length);
				c->len = h.length;
				c->body = xmalloc(c->len ? c->len : 1);
			}
			if (c->have - TTRPC_HEADER_SIZE == c->len)
				break;
			n = read(c->fd, c->body + (c->have - TTRPC_HEADER_SIZE),
				 c->len - (c->have - TTRPC_HEADER_SIZE));
		}
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			return false;
		if (n <= 0)
			test_fail("client %d: %s before the answer", i, n ? strerror(errno) : "EOF");
		c->have += (size_t)n;
	}
	Ttrpc__Response *r = ttrpc__response__unpack(NULL, c->len, c->body);
	Virtmgr__V1__DaemonInfo *info;

	if (!r)
		test_fail("client %d: the answer is not a ttrpc.Response", i);
	if (r->status && r->status->code)
		test_fail("client %d: status %d: %s", i, r->status->code, r->status->message);
	info = virtmgr__v1__daemon_info__unpack(NULL, r->payload.len, r->payload.data);
	if (!info || info->pid != (int32_t)pid)
		test_fail("client %d: DaemonInfo %s (pid %d, daemon %d)", i, info ? "of another pid" : "undecodable",
			  info ? info->pid : 0, (int)pid);
	virtmgr__v1__daemon_info__free_unpacked(info, NULL);
	ttrpc__response__free_unpacked(r, NULL);
	free(c->body);
	c->body = NULL;
	c->done = true;
	return true;
}

static void test_burst(void)
{
	static struct burst_client cl[NCLIENTS];
	static struct pollfd pfd[NCLIENTS];
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	size_t flen;
	cleanup_free uint8_t *frame = request_frame(&flen);
	pid_t pid = daemon_.pid;
	int before, after = -1, left = NCLIENTS;
	double deadline;

	if (strlen(daemon_.sock) >= sizeof(a.sun_path))
		test_fail("socket path too long: %s", daemon_.sock);
	memcpy(a.sun_path, daemon_.sock, strlen(daemon_.sock) + 1);
	before = count_fds(pid);

	/* All of them wait in the backlog at once: the daemon cannot accept. */
	if (kill(pid, SIGSTOP) < 0)
		test_fail("SIGSTOP: %s", strerror(errno));
	for (int i = 0; i < NCLIENTS; i++) {
		cl[i].fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
		if (cl[i].fd < 0)
			test_fail("socket %d: %s", i, strerror(errno));
		if (connect(cl[i].fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
			int e = errno;

			kill(pid, SIGCONT);
			test_fail("connect %d of %d at once: %s", i + 1, NCLIENTS, strerror(e));
		}
		if (write(cl[i].fd, frame, flen) != (ssize_t)flen) {
			int e = errno;

			kill(pid, SIGCONT);
			test_fail("client %d: write: %s", i, strerror(e));
		}
	}
	printf("ok: %d clients connected and sent a call while the daemon was stopped\n", NCLIENTS);
	if (kill(pid, SIGCONT) < 0)
		test_fail("SIGCONT: %s", strerror(errno));

	deadline = now_s() + WAIT_S;
	while (left) {
		int n = 0, r;

		for (int i = 0; i < NCLIENTS; i++)
			if (!cl[i].done)
				pfd[n++] = (struct pollfd){ .fd = cl[i].fd, .events = POLLIN };
		if (now_s() > deadline)
			test_fail("%d of %d clients still without an answer after %d s", left, NCLIENTS, WAIT_S);
		r = poll(pfd, (nfds_t)n, 1000);
		if (r < 0 && errno != EINTR)
			test_fail("poll: %s", strerror(errno));
		for (int k = 0, i = 0; r > 0 && k < n; k++) {
			if (!pfd[k].revents)
				continue;
			while (cl[i].fd != pfd[k].fd)
				i++;
			if (client_read(&cl[i], pid, i))
				left--;
		}
	}
	printf("ok: every one of %d clients got its GetDaemonInfo answer\n", NCLIENTS);

	for (int i = 0; i < NCLIENTS; i++)
		close(cl[i].fd);
	deadline = now_s() + WAIT_S;
	while (now_s() < deadline && (after = count_fds(pid)) != before)
		usleep(20000);
	if (after != before)
		test_fail("daemon fds: %d before the burst, %d after its clients closed", before, after);
	printf("ok: the daemon's fd count is back to %d\n", before);
}

/* One more client after the burst: still served. */
static void test_still_serving(void)
{
	struct vm_error err = { 0 };
	struct ttrpc_client *c = ttrpc_client_connect_unix(daemon_.sock, &err);
	Virtmgr__V1__GetDaemonInfoRequest req = VIRTMGR__V1__GET_DAEMON_INFO_REQUEST__INIT;
	ProtobufCMessage *resp = NULL;

	if (!c)
		test_fail("connect after the burst: %s", err.message);
	if (ttrpc_client_call(c, SERVICE, "GetDaemonInfo", &req.base, NULL, 0, &virtmgr__v1__daemon_info__descriptor,
			      &resp, NULL, NULL, 10000000000ull, &err) < 0)
		test_fail("GetDaemonInfo after the burst: %s", err.message);
	protobuf_c_message_free_unpacked(resp, NULL);
	ttrpc_client_free(c);
	printf("ok: still serving after the burst\n");
}

int main(void)
{
	raise_nofile();
	test_daemon_start(&daemon_, NULL);
	test_burst();
	test_still_serving();
	if (!test_daemon_stop(&daemon_))
		test_fail("virtmgrd did not exit 0 on SIGTERM");
	printf("PASS: client_burst\n");
	return 0;
}
