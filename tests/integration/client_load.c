/* client_load.c - libvirtmgr-client against a real virtmgrd under load and
 * misbehaving peers.
 *
 * 1. 8 processes x 25 connections = 200 connections held open at once (a
 *    pipe barrier makes sure they all are before the daemon is asked for
 *    its connection count), then 50 rounds of calls on every connection:
 *    10,000 unary calls, each answer checked.
 * 2. A peer that sends half a frame header and disconnects, and one that
 *    sends half a frame and then stays silent: others are still served.
 * 3. A peer that pipelines requests and never reads the answers: the daemon
 *    must neither block on it nor buffer without bound (it stops reading
 *    from it or drops it), and keeps serving others meanwhile.
 * 4. A peer whose header announces a body over the 4 MiB limit gets
 *    RESOURCE_EXHAUSTED on that stream and the connection stays usable.
 * Finally the daemon must exit 0 on SIGTERM (under ASan: no leaks).
 * Nothing here measures time.
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
#include <sys/wait.h>
#include <unistd.h>

#include "lib/util.h"
#include "client/virtmgr-client.h"
#include "lib/ttrpc-priv.h"
#include "lib/ttrpc.h"
#include "protos/ttrpc.pb-c.h"
#include "protos/virtmgr.pb-c.h"
#include "tests/integration/client_daemon.h"

#define NPROC 8
#define NCONN 25
#define ROUNDS 50

static struct test_daemon daemon_;
static pid_t daemon_pid;

/* One call of three kinds, chosen by @i, with its answer checked. */
static int checked_call(struct vmc_client *cl, unsigned i, char *why, size_t why_size)
{
	struct vmc_error err = { 0 };

	switch (i % 3) {
	case 0: {
		struct vmc_daemon_info di;

		if (vmc_get_daemon_info(cl, &di, &err) < 0)
			break;
		if (di.pid != daemon_pid || strcmp(di.mode, "regular")) {
			snprintf(why, why_size, "GetDaemonInfo: pid %d mode %s", di.pid, di.mode);
			vmc_daemon_info_clear(&di);
			return -1;
		}
		vmc_daemon_info_clear(&di);
		return 0;
	}
	case 1: {
		int r = vmc_is_feature_enabled(cl, "no-such-feature", &err);

		if (r < 0)
			break;
		if (r != 0) {
			snprintf(why, why_size, "IsFeatureEnabled(no-such-feature) = %d", r);
			return -1;
		}
		return 0;
	}
	default: {
		uint8_t id[VMC_INSTANCE_ID_SIZE], zero[VMC_INSTANCE_ID_SIZE] = { 0 };

		if (vmc_allocate_instance_id(cl, id, &err) < 0)
			break;
		if (!memcmp(id, zero, sizeof(id))) {
			snprintf(why, why_size, "AllocateInstanceId: all zero");
			return -1;
		}
		return 0;
	}
	}
	snprintf(why, why_size, "call %u: %s: %s", i % 3, vmc_status_name(err.code), err.message);
	return -1;
}

static void child_work(int ready_w, int go_r)
{
	struct vmc_client *cl[NCONN];
	struct vmc_error err = { 0 };
	char why[VMC_ERROR_MSG_MAX + 64];
	char c = 1;

	for (int i = 0; i < NCONN; i++) {
		cl[i] = vmc_connect(daemon_.sock, &err);
		if (!cl[i]) {
			fprintf(stderr, "FAIL: connection %d: %s\n", i, err.message);
			_exit(1);
		}
	}
	if (write(ready_w, &c, 1) != 1 || read(go_r, &c, 1) != 1)
		_exit(1);
	for (unsigned r = 0; r < ROUNDS; r++)
		for (unsigned i = 0; i < NCONN; i++)
			if (checked_call(cl[i], r * NCONN + i, why, sizeof(why)) < 0) {
				fprintf(stderr, "FAIL: round %u connection %u: %s\n", r, i, why);
				_exit(1);
			}
	for (int i = 0; i < NCONN; i++)
		vmc_close(cl[i]);
	_exit(0);
}

static void test_concurrent(void)
{
	int ready[2], go[2], status, failed = 0;
	pid_t pids[NPROC];
	struct vmc_client *cl;
	struct vmc_daemon_info di;
	struct vmc_error err = { 0 };
	char c;

	if (pipe2(ready, O_CLOEXEC) < 0 || pipe2(go, O_CLOEXEC) < 0)
		test_fail("pipe: %s", strerror(errno));
	for (int p = 0; p < NPROC; p++) {
		pids[p] = fork();
		if (pids[p] < 0)
			test_fail("fork: %s", strerror(errno));
		if (pids[p] == 0) {
			close(ready[0]);
			close(go[1]);
			child_work(ready[1], go[0]);
		}
	}
	close(ready[1]);
	close(go[0]);
	for (int p = 0; p < NPROC; p++)
		if (read(ready[0], &c, 1) != 1)
			test_fail("a client process died while connecting");
	cl = vmc_connect(daemon_.sock, &err);
	if (!cl)
		test_fail("%s", err.message);
	if (vmc_get_daemon_info(cl, &di, &err) < 0)
		test_fail("GetDaemonInfo: %s", err.message);
	printf("connections open at once: %u\n", di.connection_count);
	if (di.connection_count < NPROC * NCONN + 1)
		test_fail("daemon counts %u connections, expected at least %d", di.connection_count, NPROC * NCONN + 1);
	vmc_daemon_info_clear(&di);
	for (int p = 0; p < NPROC; p++)
		if (write(go[1], "g", 1) != 1)
			test_fail("write: %s", strerror(errno));
	for (int p = 0; p < NPROC; p++) {
		if (waitpid(pids[p], &status, 0) != pids[p] || !WIFEXITED(status) || WEXITSTATUS(status))
			failed++;
	}
	if (failed)
		test_fail("%d of %d client processes failed", failed, NPROC);
	printf("ok: %d connections, %d calls checked\n", NPROC * NCONN, NPROC * NCONN * ROUNDS);
	close(ready[0]);
	close(go[1]);
	vmc_close(cl);
}

static int raw_connect(void)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (strlen(daemon_.sock) >= sizeof(a.sun_path))
		test_fail("socket path too long: %s", daemon_.sock);
	memcpy(a.sun_path, daemon_.sock, strlen(daemon_.sock) + 1);
	if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0)
		test_fail("connect %s: %s", daemon_.sock, strerror(errno));
	return fd;
}

/* A complete GetDaemonInfo request frame on @stream_id. */
static uint8_t *request_frame(uint32_t stream_id, size_t *len)
{
	Virtmgr__V1__GetDaemonInfoRequest inner = VIRTMGR__V1__GET_DAEMON_INFO_REQUEST__INIT;

	return ttrpc_build_request(stream_id, 0, VMC_SERVICE, "GetDaemonInfo", &inner.base, 0, len);
}

static void expect_served(const char *after, int calls)
{
	struct vmc_error err = { 0 };
	struct vmc_client *cl = vmc_connect(daemon_.sock, &err);
	char why[VMC_ERROR_MSG_MAX + 64];

	if (!cl)
		test_fail("after %s: %s", after, err.message);
	for (int i = 0; i < calls; i++)
		if (checked_call(cl, (unsigned)i, why, sizeof(why)) < 0)
			test_fail("after %s: %s", after, why);
	vmc_close(cl);
	printf("ok: still serving after %s\n", after);
}

static void test_half_frames(void)
{
	size_t len;
	cleanup_free uint8_t *frame = request_frame(1, &len);
	int a = raw_connect(), b = raw_connect();

	/* half a header, then gone */
	if (write(a, frame, 5) != 5)
		test_fail("write: %s", strerror(errno));
	close(a);
	/* a header and half the body, then silence (kept open) */
	if (write(b, frame, TTRPC_HEADER_SIZE + (len - TTRPC_HEADER_SIZE) / 2) < 0)
		test_fail("write: %s", strerror(errno));
	expect_served("half frames", 30);
	close(b);
	expect_served("a half frame's connection closed", 3);
}

static void test_slow_reader(void)
{
	size_t len, sent = 0;
	uint32_t sid = 1;
	int fd = raw_connect();
	bool stopped = false;
	const size_t limit = 256u << 20; /* 256 MiB of requests */

	fd_set_nonblock(fd, true);
	/* pipeline requests and never read: the answers pile up at the daemon */
	while (sent < limit) {
		cleanup_free uint8_t *frame = request_frame(sid, &len);
		size_t off = 0;

		while (off < len) {
			ssize_t n = send(fd, frame + off, len - off, MSG_NOSIGNAL);

			if (n > 0) {
				off += (size_t)n;
				continue;
			}
			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0 && errno == EAGAIN) {
				/* the daemon stopped reading from us (back-pressure) ... */
				struct pollfd p = { .fd = fd, .events = POLLOUT };

				if (!stopped) {
					stopped = true;
					printf("daemon stopped reading after %zu bytes of requests\n", sent + off);
					/* ... and serves others meanwhile */
					expect_served("a client that stopped reading", 30);
					goto done;
				}
				poll(&p, 1, -1);
				continue;
			}
			/* EPIPE / ECONNRESET: the daemon dropped us, also fine */
			printf("daemon dropped the slow reader after %zu bytes of requests (%s)\n", sent + off,
			       strerror(errno));
			goto done;
		}
		sent += len;
		sid += 2;
		if (sid > 0x7ffffff0u)
			sid = 1;
	}
	test_fail("daemon accepted %zu bytes of requests from a peer that reads nothing", sent);
done:
	close(fd);
	expect_served("the slow reader was closed", 3);
}

static void test_oversize(void)
{
	struct ttrpc_header h = { .length = TTRPC_MAX_DATA + 1, .stream_id = 1, .type = TTRPC_TYPE_REQUEST };
	uint8_t hdr[TTRPC_HEADER_SIZE], resp_hdr[TTRPC_HEADER_SIZE];
	cleanup_free uint8_t *zeros = xzalloc(1 << 16);
	struct ttrpc_header rh;
	Ttrpc__Response *resp;
	size_t left = h.length, len;
	cleanup_free uint8_t *body = NULL;
	cleanup_free uint8_t *frame = request_frame(3, &len);
	int fd = raw_connect();
	bool got_over = false, got_ok = false;

	ttrpc_header_encode(&h, hdr);
	if (write_all(fd, hdr, sizeof(hdr)) < 0)
		test_fail("write: %s", strerror(errno));
	while (left) {
		size_t n = MIN(left, (size_t)(1 << 16));

		if (write_all(fd, zeros, n) < 0)
			test_fail("write oversize body: %s", strerror(errno));
		left -= n;
	}
	/* the same connection still works */
	if (write_all(fd, frame, len) < 0)
		test_fail("write: %s", strerror(errno));
	while (!(got_over && got_ok)) {
		ssize_t n = recv(fd, resp_hdr, sizeof(resp_hdr), MSG_WAITALL);

		if (n != (ssize_t)sizeof(resp_hdr))
			test_fail("oversize: connection closed (%zd) before both answers", n);
		ttrpc_header_decode(resp_hdr, &rh);
		body = xmalloc(rh.length + 1);
		if (rh.length && recv(fd, body, rh.length, MSG_WAITALL) != (ssize_t)rh.length)
			test_fail("oversize: short body");
		resp = ttrpc__response__unpack(NULL, rh.length, body);
		if (!resp)
			test_fail("oversize: undecodable Response");
		if (rh.stream_id == 1) {
			if (!resp->status || resp->status->code != VM_RESOURCE_EXHAUSTED)
				test_fail("oversize: stream 1 got status %d, expected RESOURCE_EXHAUSTED",
					  resp->status ? resp->status->code : 0);
			got_over = true;
		} else if (rh.stream_id == 3) {
			if (resp->status && resp->status->code)
				test_fail("after oversize: stream 3 failed: %s", resp->status->message);
			got_ok = true;
		}
		ttrpc__response__free_unpacked(resp, NULL);
		free(steal_pointer(&body));
	}
	close(fd);
	printf("ok: oversize frame rejected on its stream, connection kept\n");
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN);
	test_daemon_start(&daemon_, NULL);
	daemon_pid = daemon_.pid;
	test_concurrent();
	test_half_frames();
	test_slow_reader();
	test_oversize();
	expect_served("everything", 3);
	if (!test_daemon_stop(&daemon_)) {
		fprintf(stderr, "FAIL: virtmgrd did not exit cleanly on SIGTERM\n");
		return 1;
	}
	printf("PASS\n");
	return 0;
}
