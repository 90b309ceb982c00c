/* vsock-tool.c - move checksummed byte streams over vsock and Unix sockets.
 *
 * Built statically so it runs inside the minimal test guest as well as on
 * the host. Every transfer prints one line, "sent N SUM" or "received N SUM",
 * where SUM is a 64-bit checksum of the stream; the receiving side also sends
 * its line back to the peer before closing, so one end can compare both.
 *
 *   vsock-tool listen PORT MODE [--count N]        AF_VSOCK listener (guest)
 *   vsock-tool connect CID PORT MODE [--parallel K] AF_VSOCK client (guest)
 *   vsock-tool hconnect UDS PORT MODE [--parallel K]
 *                        host client through the hybrid "CONNECT PORT" socket
 *   vsock-tool ulisten PATH MODE [--count N]       Unix listener (host)
 *   vsock-tool uconnect PATH MODE [--parallel K]   plain Unix client (baseline)
 *
 * MODE: --sink | --source BYTES | --echo | --stall. --tag NAME prefixes
 * every output line with "[NAME] " (tests run several at once on one
 * console). Connections run in
 * forked children so many can run at once. Exit status is non-zero if any
 * connection failed; the error is printed as "error: <what>: <strerror>".
 */
#include "config.h"

#include "tests/guest-tools/pattern.h"

#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>
#include <linux/vm_sockets.h>

enum mode { M_NONE, M_SINK, M_SOURCE, M_ECHO, M_STALL };

static enum mode mode;
static uint64_t source_bytes;
static unsigned count = 1, parallel = 1;
static const char *tag;

#define BLOCK (64 * 1024)
#define MIN_(a, b) ((a) < (b) ? (a) : (b))

/* One output line, written with a single write so lines from concurrent
 * processes never mix. */
static void out(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void out(const char *fmt, ...)
{
	char line[512];
	int n = 0;
	va_list ap;

	if (tag)
		n = snprintf(line, sizeof(line), "[%s] ", tag);
	va_start(ap, fmt);
	n += vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
	va_end(ap);
	if (n > (int)sizeof(line) - 1)
		n = (int)sizeof(line) - 1;
	if (write(1, line, (size_t)n) < 0) {
		/* nowhere left to report it */
	}
}

static int die(const char *what)
{
	out("error: %s: %s\n", what, strerror(errno));
	return 1;
}

static int write_all(int fd, const void *buf, size_t len)
{
	const uint8_t *p = buf;

	while (len) {
		ssize_t r = write(fd, p, len);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -1;
		p += r;
		len -= (size_t)r;
	}
	return 0;
}

/* Run MODE on a connected socket. Return: exit status. */
static int serve(int fd)
{
	static uint8_t buf[BLOCK];
	struct sum s = { 0xcbf29ce484222325ull, 0 };
	char line[128];
	ssize_t r;

	switch (mode) {
	case M_SINK:
		while ((r = read(fd, buf, sizeof(buf))) != 0) {
			if (r < 0) {
				if (errno == EINTR)
					continue;
				return die("read");
			}
			sum_add(&s, buf, (size_t)r);
		}
		snprintf(line, sizeof(line), "received %" PRIu64 " %016" PRIx64 "\n", s.n, s.h);
		out("%s", line);
		if (write_all(fd, line, strlen(line)) < 0)
			return die("write summary");
		return 0;
	case M_SOURCE: {
		uint64_t st = 0x9e3779b97f4a7c15ull, left = source_bytes;
		while (left) {
			size_t n = (size_t)MIN_((uint64_t)sizeof(buf), left);
			gen_fill(&st, buf, n);
			sum_add(&s, buf, n);
			if (write_all(fd, buf, n) < 0)
				return die("write");
			left -= n;
		}
		out("sent %" PRIu64 " %016" PRIx64 "\n", s.n, s.h);
		shutdown(fd, SHUT_WR);
		/* relay the peer's summary, if any */
		size_t got = 0;
		while ((r = read(fd, line + got, sizeof(line) - 1 - got)) > 0)
			got += (size_t)r;
		if (r < 0 && got == 0)
			return die("read summary");
		line[got] = '\0';
		if (got)
			out("peer %s", line);
		return 0;
	}
	case M_ECHO:
		while ((r = read(fd, buf, sizeof(buf))) != 0) {
			if (r < 0) {
				if (errno == EINTR)
					continue;
				return die("read");
			}
			if (write_all(fd, buf, (size_t)r) < 0)
				return die("write");
		}
		return 0;
	case M_STALL:
		out("stalling\n");
		for (;;)
			pause();
	case M_NONE:
		break;
	}
	return 2;
}

/* Children die with their parent, so a test killing the tool leaves no
 * stalled connection behind. */
static void child_init(pid_t parent)
{
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() != parent)
		_exit(1);
}

static int do_listen(int lfd)
{
	int rc = 0;
	unsigned running = 0;

	if (listen(lfd, 128) < 0)
		return die("listen");
	out("listening\n");
	for (unsigned i = 0; i < count; i++) {
		int fd = accept(lfd, NULL, NULL);
		if (fd < 0)
			return die("accept");
		pid_t parent = getpid(), pid = fork();
		if (pid == 0) {
			child_init(parent);
			_exit(serve(fd));
		}
		close(fd);
		running++;
	}
	while (running--) {
		int st;
		if (wait(&st) < 0 || !WIFEXITED(st) || WEXITSTATUS(st))
			rc = 1;
	}
	return rc;
}

typedef int (*connect_fn)(const char *a, const char *b);

static int vsock_connect(const char *cid, const char *port)
{
	struct sockaddr_vm sa = { .svm_family = AF_VSOCK,
				  .svm_cid = (unsigned)strtoul(cid, NULL, 0),
				  .svm_port = (unsigned)strtoul(port, NULL, 0) };
	int fd = socket(AF_VSOCK, SOCK_STREAM, 0);

	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		die("connect");
		return -1;
	}
	return fd;
}

static int unix_socket(const char *path, bool do_bind)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	if (do_bind)
		unlink(path);
	if (fd < 0 || (do_bind ? bind(fd, (struct sockaddr *)&sa, sizeof(sa))
			       : connect(fd, (struct sockaddr *)&sa, sizeof(sa))) < 0) {
		die(do_bind ? "bind" : "connect");
		return -1;
	}
	return fd;
}

/* Firecracker hybrid handshake: "CONNECT PORT\n" -> "OK HOSTPORT\n". */
static int hybrid_connect(const char *uds, const char *port)
{
	char line[64];
	size_t n = 0;
	int fd = unix_socket(uds, false);

	if (fd < 0)
		return -1;
	snprintf(line, sizeof(line), "CONNECT %s\n", port);
	if (write_all(fd, line, strlen(line)) < 0) {
		die("write handshake");
		return -1;
	}
	for (;;) {
		ssize_t r = read(fd, line + n, 1);
		if (r <= 0) {
			if (r == 0)
				errno = ECONNREFUSED;
			die("connect (no listener in the guest?)");
			close(fd);
			return -1;
		}
		if (line[n] == '\n' || ++n == sizeof(line) - 1)
			break;
	}
	line[n] = '\0';
	if (strncmp(line, "OK ", 3) != 0) {
		out("error: handshake: unexpected \"%s\"\n", line);
		close(fd);
		return -1;
	}
	return fd;
}

static int plain_unix_connect(const char *path, const char *unused)
{
	return unix_socket(path, false);
}

static int do_connect(connect_fn fn, const char *a, const char *b)
{
	int rc = 0;

	for (unsigned i = 0; i < parallel; i++) {
		pid_t parent = getpid(), pid = fork();
		if (pid == 0) {
			child_init(parent);
			int fd = fn(a, b);
			_exit(fd < 0 ? 1 : serve(fd));
		}
	}
	for (unsigned i = 0; i < parallel; i++) {
		int st;
		if (wait(&st) < 0 || !WIFEXITED(st) || WEXITSTATUS(st))
			rc = 1;
	}
	return rc;
}

static int usage(void)
{
	fprintf(stderr,
		"usage: vsock-tool listen PORT MODE [--count N]\n"
		"       vsock-tool connect CID PORT MODE [--parallel K]\n"
		"       vsock-tool hconnect UDS PORT MODE [--parallel K]\n"
		"       vsock-tool ulisten PATH MODE [--count N]\n"
		"       vsock-tool uconnect PATH MODE [--parallel K]\n"
		"MODE: --sink | --source BYTES | --echo | --stall; --tag NAME prefixes output\n");
	return 2;
}

int main(int argc, char **argv)
{
	int nargs;

	if (argc < 2)
		return usage();
	nargs = (!strcmp(argv[1], "connect") || !strcmp(argv[1], "hconnect")) ? 2 : 1;
	if (argc < 2 + nargs)
		return usage();
	for (int i = 2 + nargs; i < argc; i++) {
		if (!strcmp(argv[i], "--sink"))
			mode = M_SINK;
		else if (!strcmp(argv[i], "--echo"))
			mode = M_ECHO;
		else if (!strcmp(argv[i], "--stall"))
			mode = M_STALL;
		else if (!strcmp(argv[i], "--source") && i + 1 < argc)
			mode = M_SOURCE, source_bytes = strtoull(argv[++i], NULL, 0);
		else if (!strcmp(argv[i], "--tag") && i + 1 < argc)
			tag = argv[++i];
		else if (!strcmp(argv[i], "--count") && i + 1 < argc)
			count = (unsigned)strtoul(argv[++i], NULL, 0);
		else if (!strcmp(argv[i], "--parallel") && i + 1 < argc)
			parallel = (unsigned)strtoul(argv[++i], NULL, 0);
		else
			return usage();
	}
	if (mode == M_NONE)
		return usage();
	signal(SIGPIPE, SIG_IGN);

	if (!strcmp(argv[1], "listen")) {
		struct sockaddr_vm sa = { .svm_family = AF_VSOCK,
					  .svm_cid = VMADDR_CID_ANY,
					  .svm_port = (unsigned)strtoul(argv[2], NULL, 0) };
		int fd = socket(AF_VSOCK, SOCK_STREAM, 0);
		if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
			return die("bind");
		return do_listen(fd);
	}
	if (!strcmp(argv[1], "ulisten")) {
		int fd = unix_socket(argv[2], true);
		return fd < 0 ? 1 : do_listen(fd);
	}
	if (!strcmp(argv[1], "connect"))
		return do_connect(vsock_connect, argv[2], argv[3]);
	if (!strcmp(argv[1], "hconnect"))
		return do_connect(hybrid_connect, argv[2], argv[3]);
	if (!strcmp(argv[1], "uconnect"))
		return do_connect(plain_unix_connect, argv[2], NULL);
	return usage();
}
