/* vport-tool.c - the virtio-serial side of bench/vsock: checksummed byte
 * streams over a virtio-serial port, the baseline vsock is measured against.
 *
 * It does the same work per byte as tests/guest-tools/vsock-tool (64 KiB
 * blocks, the same generator and checksum), so the two transports are
 * compared with equal work at both ends. Built statically to run in the
 * minimal guest as well as on the host.
 *
 *   vport-tool guest NAME      (guest) open the port named NAME (found in
 *                              /sys/class/virtio-ports) and serve commands
 *   vport-tool sink SOCK BYTES (host) connect to QEMU's chardev socket SOCK,
 *                              have the guest sink BYTES, send them
 *   vport-tool source SOCK BYTES
 *                              (host) have the guest send BYTES, receive them
 *
 * A port has no connections: the host writes a command line, "sink N\n" or
 * "source N\n", then the stream follows. After a sink the guest answers
 * "received N SUM\n", so the host's timing covers delivery. The guest sees
 * EOF while no host is connected and polls until one is. Every transfer
 * prints "sent N SUM" or "received N SUM"; exit status is non-zero on
 * failure, with "error: <what>" on stdout.
 */
#include "config.h"

#include "tests/guest-tools/pattern.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define BLOCK (64 * 1024)
#define MIN_(a, b) ((a) < (b) ? (a) : (b))

static uint8_t buf[BLOCK];

static int fail(const char *what)
{
	printf("error: %s: %s\n", what, errno ? strerror(errno) : "unexpected end of stream");
	fflush(stdout);
	return 1;
}

static int write_all(int fd, const void *p, size_t len)
{
	const uint8_t *q = p;

	while (len) {
		ssize_t r = write(fd, q, len);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return -1;
		q += r;
		len -= (size_t)r;
	}
	return 0;
}

/*
 * Receive exactly @n bytes into the checksum. A port reads EOF whenever the
 * guest believes no host is connected, and the guest learns of a host's
 * connect and of the previous host's disconnect on another queue than the
 * data: EOF can show up in the middle of a stream. It is retried for up to
 * 5 s (on a socket, EOF is final).
 * Return: 0, or -1 (errno 0 on EOF).
 */
static int sink(int fd, uint64_t n, struct sum *s, unsigned eof_retries)
{
	unsigned eofs = 0;

	while (s->n < n) {
		ssize_t r = read(fd, buf, (size_t)MIN_((uint64_t)BLOCK, n - s->n));
		if (r < 0 && errno == EINTR)
			continue;
		if (r == 0 && eofs++ < eof_retries) {
			usleep(1000);
			continue;
		}
		if (r <= 0) {
			if (r == 0)
				errno = 0;
			return -1;
		}
		eofs = 0;
		sum_add(s, buf, (size_t)r);
	}
	return 0;
}

static int source(int fd, uint64_t n, struct sum *s)
{
	uint64_t st = 0x9e3779b97f4a7c15ull;

	while (s->n < n) {
		size_t len = (size_t)MIN_((uint64_t)BLOCK, n - s->n);
		gen_fill(&st, buf, len);
		sum_add(s, buf, len);
		if (write_all(fd, buf, len) < 0)
			return -1;
	}
	return 0;
}

/* Read one '\n'-terminated line byte by byte (the stream follows it).
 * Return: its length, 0 on EOF before any byte, -1 on error. */
static int read_line(int fd, char *line, size_t size)
{
	size_t n = 0;

	for (;;) {
		ssize_t r = read(fd, line + n, 1);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -1;
		if (r == 0) {
			errno = 0;
			return n == 0 ? 0 : -1;
		}
		if (line[n] == '\n' || n + 2 == size)
			break;
		n++;
	}
	line[n] = '\0';
	return (int)n + 1;
}

/* /dev/vportNpM of the port whose /sys/class/virtio-ports/.../name is @name. */
static int find_port(const char *name, char *dev, size_t size)
{
	DIR *d = opendir("/sys/class/virtio-ports");
	struct dirent *e;
	int found = -1;

	if (!d)
		return -1;
	while (found < 0 && (e = readdir(d))) {
		char path[512], got[128] = "";
		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "/sys/class/virtio-ports/%s/name", e->d_name);
		FILE *f = fopen(path, "re");
		if (!f)
			continue;
		if (fgets(got, sizeof(got), f))
			got[strcspn(got, "\n")] = '\0';
		fclose(f);
		if (!strcmp(got, name)) {
			snprintf(dev, size, "/dev/%s", e->d_name);
			found = 0;
		}
	}
	closedir(d);
	return found;
}

static int guest(const char *name)
{
	char dev[300], line[128];
	int fd = -1;

	for (int i = 0; i < 500 && find_port(name, dev, sizeof(dev)) < 0; i++)
		usleep(10000);
	if (find_port(name, dev, sizeof(dev)) < 0) {
		errno = ENOENT;
		return fail("no virtio-serial port with that name");
	}
	fd = open(dev, O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return fail(dev);
	printf("listening on %s\n", dev);
	fflush(stdout);
	for (;;) {
		int n = read_line(fd, line, sizeof(line));
		if (n < 0)
			return fail("read command");
		if (n == 0) { /* no host connected */
			usleep(5000);
			continue;
		}
		struct sum s = { 0xcbf29ce484222325ull, 0 };
		char *end;
		if (!strncmp(line, "sink ", 5)) {
			uint64_t bytes = strtoull(line + 5, &end, 10);
			if (sink(fd, bytes, &s, 5000) < 0)
				return fail("read");
			n = snprintf(line, sizeof(line), "received %" PRIu64 " %016" PRIx64 "\n", s.n, s.h);
			printf("%s", line);
			if (write_all(fd, line, (size_t)n) < 0)
				return fail("write summary");
		} else if (!strncmp(line, "source ", 7)) {
			uint64_t bytes = strtoull(line + 7, &end, 10);
			if (source(fd, bytes, &s) < 0)
				return fail("write");
			printf("sent %" PRIu64 " %016" PRIx64 "\n", s.n, s.h);
		} else if (!strcmp(line, "quit")) {
			return 0;
		} else {
			printf("error: bad command \"%s\"\n", line);
		}
		fflush(stdout);
	}
}

static int host(const char *cmd, const char *path, uint64_t bytes)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct sum s = { 0xcbf29ce484222325ull, 0 };
	char line[128];
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		return fail("connect");
	int n = snprintf(line, sizeof(line), "%s %" PRIu64 "\n", cmd, bytes);
	if (write_all(fd, line, (size_t)n) < 0)
		return fail("write command");
	if (!strcmp(cmd, "sink")) {
		if (source(fd, bytes, &s) < 0)
			return fail("write");
		printf("sent %" PRIu64 " %016" PRIx64 "\n", s.n, s.h);
		if (read_line(fd, line, sizeof(line)) <= 0)
			return fail("read summary");
		printf("peer %s\n", line);
	} else {
		if (sink(fd, bytes, &s, 0) < 0)
			return fail("read");
		printf("received %" PRIu64 " %016" PRIx64 "\n", s.n, s.h);
	}
	close(fd);
	return 0;
}

int main(int argc, char **argv)
{
	signal(SIGPIPE, SIG_IGN);
	if (argc == 3 && !strcmp(argv[1], "guest"))
		return guest(argv[2]);
	if (argc == 4 && (!strcmp(argv[1], "sink") || !strcmp(argv[1], "source")))
		return host(argv[1], argv[2], strtoull(argv[3], NULL, 10));
	fprintf(stderr,
		"usage: vport-tool guest NAME\n"
		"       vport-tool sink|source SOCK BYTES\n");
	return 2;
}
