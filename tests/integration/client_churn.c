/* client_churn.c - misbehaving and numerous clients of a real virtmgrd, for
 * tests/integration/clients.sh, exhaustion.sh and tests/soak.sh.
 *
 *   client_churn SOCK churn N [VM]       N short-lived clients, cycling through:
 *                                        connect+close, half a frame then close,
 *                                        a request then close without reading,
 *                                        a full GetDaemonInfo call, a WatchVm
 *                                        stream (on VM, or a missing one) read
 *                                        once and dropped, a random-byte frame
 *   client_churn SOCK half-frame         one half-written frame, then close
 *   client_churn SOCK watch VM           open WatchVm on VM, print "watching"
 *                                        after the first event, then sleep
 *   client_churn SOCK connect-vsock VM PORT
 *                                        print "calling", then ConnectVsock
 *                                        (blocks until answered or killed)
 *   client_churn SOCK hold N             open N connections, prove each works
 *                                        with GetDaemonInfo, print "held K"
 *                                        (K = those that worked); then for
 *                                        each line on stdin call again on
 *                                        every held one, print "again K";
 *                                        exit at end of input
 *   client_churn SOCK probe MS           one connection attempt whose call
 *                                        gets MS ms; prints ok, refused or
 *                                        the error, exits 0 for ok only
 *   client_churn SOCK create-name NAME   CreateVm with only this name (no
 *                                        client-side checks); prints
 *                                        "OK" or "CODE: message"
 *   client_churn SOCK streams N VM       N concurrent WatchVm streams on one
 *                                        connection; prints "ok K refused R"
 *                                        and the first refusal message
 *
 * Connections are made with a non-blocking connect(), so a full listen
 * backlog reads as "refused" instead of blocking the tool.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "lib/ttrpc-priv.h"
#include "lib/ttrpc.h"
#include "protos/ttrpc.pb-c.h"
#include "protos/virtmgr.pb-c.h"

#define SERVICE "virtmgr.v1.VirtualizationService"

static const char *sock_path;

/* Return: a connected blocking socket, or -1 (errno EAGAIN: backlog full). */
static int dial(void)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);

	if (fd < 0)
		return -1;
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", sock_path);
	if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
		int e = errno;

		close(fd);
		errno = e;
		return -1;
	}
	fd_set_nonblock(fd, false);
	return fd;
}

static void send_all(int fd, const void *buf, size_t len)
{
	const uint8_t *p = buf;

	while (len) {
		ssize_t n = write(fd, p, len);

		if (n <= 0)
			return; /* the daemon may have dropped us: fine */
		p += n;
		len -= (size_t)n;
	}
}

/* A whole Request frame for @method with @payload on stream @id, into @out. */
static size_t request_frame(const char *method, const ProtobufCMessage *payload, uint32_t id, uint8_t flags,
			    uint8_t **out)
{
	size_t len;

	*out = ttrpc_build_request(id, flags, SERVICE, method, payload, 0, &len);
	return len;
}

static int daemon_info(struct ttrpc_client *cl, uint64_t timeout_ns, struct vm_error *err)
{
	Virtmgr__V1__GetDaemonInfoRequest req = VIRTMGR__V1__GET_DAEMON_INFO_REQUEST__INIT;
	ProtobufCMessage *resp = NULL;

	if (ttrpc_client_call(cl, SERVICE, "GetDaemonInfo", &req.base, NULL, 0, &virtmgr__v1__daemon_info__descriptor,
			      &resp, NULL, NULL, timeout_ns, err) < 0)
		return -1;
	protobuf_c_message_free_unpacked(resp, NULL);
	return 0;
}

static int64_t watch_open(struct ttrpc_client *cl, const char *vm, struct vm_error *err)
{
	Virtmgr__V1__WatchVmRequest req = VIRTMGR__V1__WATCH_VM_REQUEST__INIT;

	req.vm = (char *)vm;
	return ttrpc_client_stream_open(cl, SERVICE, "WatchVm", &req.base, TTRPC_FLAG_REMOTE_CLOSED, 0, err);
}

static void churn_one(unsigned i, const char *vm)
{
	Virtmgr__V1__GetDaemonInfoRequest info = VIRTMGR__V1__GET_DAEMON_INFO_REQUEST__INIT;
	struct vm_error err = { 0 };
	cleanup_free uint8_t *frame = NULL;
	struct ttrpc_client *cl;
	size_t len;
	int fd = dial();

	if (fd < 0)
		return;
	switch (i % 6) {
	case 0: /* connect and vanish */
		break;
	case 1: /* half a frame, then close */
		len = request_frame("GetDaemonInfo", &info.base, 1, 0, &frame);
		send_all(fd, frame, len / 2);
		break;
	case 2: /* a request, then close without reading the answer */
		len = request_frame("ListVms", &info.base, 1, 0, &frame);
		send_all(fd, frame, len);
		break;
	case 3: /* a well-behaved call */
		cl = ttrpc_client_from_fd(fd);
		if (daemon_info(cl, 5000000000ull, &err) < 0)
			fprintf(stderr, "client_churn: GetDaemonInfo: %s\n", err.message);
		ttrpc_client_free(cl);
		return;
	case 4: { /* a WatchVm stream, read once and dropped */
		int64_t id;

		cl = ttrpc_client_from_fd(fd);
		id = watch_open(cl, vm ? vm : "no-such-vm", &err);
		if (id > 0) {
			uint8_t *data = NULL;

			if (ttrpc_client_stream_recv(cl, (uint32_t)id, &data, &len, 5000, &err) == 1)
				free(data);
		}
		ttrpc_client_free(cl);
		return;
	}
	case 5: { /* a frame header announcing more than will ever come */
		uint8_t junk[64];
		struct ttrpc_header h = { .length = 1000, .stream_id = 1, .type = TTRPC_TYPE_REQUEST };

		ttrpc_header_encode(&h, junk);
		for (size_t k = TTRPC_HEADER_SIZE; k < sizeof(junk); k++)
			junk[k] = (uint8_t)(i * 31 + k);
		send_all(fd, junk, sizeof(junk));
		break;
	}
	}
	close(fd);
}

static int cmd_hold(unsigned n)
{
	struct ttrpc_client **cls = xcalloc(n ? n : 1, sizeof(*cls));
	unsigned held = 0;
	char line[64];

	for (unsigned i = 0; i < n; i++) {
		struct vm_error err = { 0 };
		struct ttrpc_client *cl;
		int fd = dial();

		if (fd < 0)
			continue;
		cl = ttrpc_client_from_fd(fd);
		if (daemon_info(cl, 3000000000ull, &err) == 0)
			cls[held++] = cl;
		else
			ttrpc_client_free(cl);
	}
	printf("held %u\n", held);
	/* each line on stdin: call again on every held connection */
	while (fgets(line, sizeof(line), stdin)) {
		unsigned again = 0;

		for (unsigned i = 0; i < held; i++) {
			struct vm_error err = { 0 };

			if (daemon_info(cls[i], 3000000000ull, &err) == 0)
				again++;
		}
		printf("again %u\n", again);
	}
	for (unsigned i = 0; i < held; i++)
		ttrpc_client_free(cls[i]);
	free(cls);
	return 0;
}

static int cmd_probe(unsigned ms)
{
	struct vm_error err = { 0 };
	struct ttrpc_client *cl;
	int fd = dial(), r;

	if (fd < 0) {
		printf("refused: connect: %s\n", strerror(errno));
		return 1;
	}
	cl = ttrpc_client_from_fd(fd);
	r = daemon_info(cl, (uint64_t)ms * 1000000ull, &err);
	ttrpc_client_free(cl);
	if (r == 0) {
		printf("ok\n");
		return 0;
	}
	printf("%s: %s\n", err.code == VM_UNAVAILABLE ? "refused" : "error", err.message);
	return 1;
}

static int cmd_streams(unsigned n, const char *vm)
{
	struct vm_error err = { 0 }, first = { 0 };
	struct ttrpc_client *cl;
	unsigned ok = 0, refused = 0;
	int fd = dial();

	if (fd < 0) {
		perror("client_churn: connect");
		return 1;
	}
	cl = ttrpc_client_from_fd(fd);
	for (unsigned i = 0; i < n; i++) {
		int64_t id = watch_open(cl, vm, &err);
		uint8_t *data = NULL;
		size_t len;

		/* the first event comes at once on an accepted stream */
		if (id > 0 && ttrpc_client_stream_recv(cl, (uint32_t)id, &data, &len, 10000, &err) == 1) {
			free(data);
			ok++;
			continue;
		}
		if (!refused++)
			first = err;
	}
	printf("ok %u refused %u\n%s\n", ok, refused, refused ? first.message : "");
	ttrpc_client_free(cl);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc < 3) {
		fprintf(stderr,
			"usage: client_churn SOCK churn|half-frame|watch|connect-vsock|hold|probe|streams ...\n");
		return 2;
	}
	sock_path = argv[1];
	signal(SIGPIPE, SIG_IGN);
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (!strcmp(argv[2], "churn") && argc >= 4) {
		unsigned n = (unsigned)strtoul(argv[3], NULL, 10);

		for (unsigned i = 0; i < n; i++)
			churn_one(i, argc >= 5 ? argv[4] : NULL);
		printf("churn: %u clients done\n", n);
		return 0;
	}
	if (!strcmp(argv[2], "half-frame")) {
		churn_one(1, NULL);
		return 0;
	}
	if (!strcmp(argv[2], "watch") && argc >= 4) {
		struct vm_error err = { 0 };
		int fd = dial();
		struct ttrpc_client *cl;
		int64_t id;
		uint8_t *data = NULL;
		size_t len;

		if (fd < 0) {
			perror("client_churn: connect");
			return 1;
		}
		cl = ttrpc_client_from_fd(fd);
		id = watch_open(cl, argv[3], &err);
		if (id < 0 || ttrpc_client_stream_recv(cl, (uint32_t)id, &data, &len, 10000, &err) != 1) {
			fprintf(stderr, "client_churn: WatchVm: %s\n", err.message);
			return 1;
		}
		free(data);
		printf("watching\n");
		for (;;)
			pause();
	}
	if (!strcmp(argv[2], "connect-vsock") && argc >= 5) {
		Virtmgr__V1__ConnectVsockRequest req = VIRTMGR__V1__CONNECT_VSOCK_REQUEST__INIT;
		ProtobufCMessage *resp = NULL;
		struct vm_error err = { 0 };
		int fd = dial(), rfds[1];
		size_t nrfds = 1;
		struct ttrpc_client *cl;

		if (fd < 0) {
			perror("client_churn: connect");
			return 1;
		}
		cl = ttrpc_client_from_fd(fd);
		req.vm = argv[3];
		req.port = (uint32_t)strtoul(argv[4], NULL, 10);
		printf("calling\n");
		if (ttrpc_client_call(cl, SERVICE, "ConnectVsock", &req.base, NULL, 0,
				      &virtmgr__v1__connect_vsock_response__descriptor, &resp, rfds, &nrfds, 0,
				      &err) < 0) {
			printf("error: %s\n", err.message);
			return 1;
		}
		printf("connected\n");
		return 0;
	}
	if (!strcmp(argv[2], "create-name") && argc >= 4) {
		Virtmgr__V1__CreateVmRequest req = VIRTMGR__V1__CREATE_VM_REQUEST__INIT;
		Virtmgr__V1__VmConfig cfg = VIRTMGR__V1__VM_CONFIG__INIT;
		ProtobufCMessage *resp = NULL;
		struct vm_error err = { 0 };
		struct ttrpc_client *cl;
		int fd = dial();

		if (fd < 0) {
			perror("client_churn: connect");
			return 1;
		}
		cl = ttrpc_client_from_fd(fd);
		cfg.name = argv[3];
		req.config = &cfg;
		if (ttrpc_client_call(cl, SERVICE, "CreateVm", &req.base, NULL, 0,
				      &virtmgr__v1__create_vm_response__descriptor, &resp, NULL, NULL, 10000000000ull,
				      &err) < 0) {
			printf("%s: %s\n", vm_status_name(err.code), err.message);
		} else {
			printf("OK\n");
			protobuf_c_message_free_unpacked(resp, NULL);
		}
		ttrpc_client_free(cl);
		return 0;
	}
	if (!strcmp(argv[2], "hold") && argc >= 4)
		return cmd_hold((unsigned)strtoul(argv[3], NULL, 10));
	if (!strcmp(argv[2], "probe") && argc >= 4)
		return cmd_probe((unsigned)strtoul(argv[3], NULL, 10));
	if (!strcmp(argv[2], "streams") && argc >= 5)
		return cmd_streams((unsigned)strtoul(argv[3], NULL, 10), argv[4]);
	fprintf(stderr, "client_churn: bad arguments\n");
	return 2;
}
