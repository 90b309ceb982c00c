/* fuzz_ttrpc.c - libFuzzer target: the ttrpc frame decoder and the server's
 * dispatch, driven with arbitrary bytes.
 *
 * Each input is first fed to a bare decoder in pieces whose sizes come from
 * the input itself (split handling, look-ahead), then written into a real
 * server connection over a socketpair, followed by EOF. The server serves
 * every method of the three virtmgr.v1 services with a handler that, in
 * turn, replies with an empty message, streams a Data frame then finishes,
 * fails, or holds the call until the connection closes (cancel path). The
 * loop runs until the connection is gone; the server is freed per input so
 * LeakSanitizer sees any leak. Then the same bytes play a hostile server
 * (a guest agent is untrusted) to the blocking client, during a unary call
 * with an fd-capable reply and a stream, and to the asynchronous client.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "lib/log.h"
#include "lib/ttrpc.h"
#include "protos/virtmgr.pb-c.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static unsigned handler_turn;

static void fuzz_handler(struct ttrpc_call *call, const ProtobufCMessage *req, void *opaque)
{
	const ProtobufCMethodDescriptor *m = opaque;
	ProtobufCMessage *out = calloc(1, m->output->sizeof_message);

	protobuf_c_message_init(m->output, out);
	switch (handler_turn++ % 4) {
	case 0:
		ttrpc_call_reply(call, out, NULL, 0);
		break;
	case 1:
		if (ttrpc_call_is_stream(call))
			ttrpc_call_send(call, out);
		ttrpc_call_finish(call);
		break;
	case 2:
		ttrpc_call_fail(call, VM_NOT_FOUND, "%s: fuzz", ttrpc_call_method(call));
		break;
	default:
		break; /* held: cancelled when the connection closes */
	}
	free(out);
}

static struct ev_loop *fuzz_loop(void)
{
	static struct ev_loop *loop;

	if (!loop) {
		loop = ev_loop_new(EVFLAG_AUTO);
		log_init("fuzz_ttrpc", LOG_LVL_ERROR);
	}
	return loop;
}

static void fuzz_decoder(const uint8_t *data, size_t size)
{
	struct ttrpc_decoder d;
	size_t pos = 0, step = size ? (size_t)(data[0] % 13) + 1 : 1;

	ttrpc_decoder_init(&d, 64); /* a small limit exercises OVERSIZE */
	while (pos < size) {
		size_t n = MIN(step, size - pos), used;
		struct ttrpc_frame fr;
		enum ttrpc_decode_status st;

		(void)ttrpc_decoder_last_start(&d, data + pos, n);
		st = ttrpc_decoder_feed(&d, data + pos, n, &used, &fr);
		if (st == TTRPC_DECODE_ERROR)
			break;
		if (st == TTRPC_DECODE_FRAME && fr.hdr.length && fr.data[fr.hdr.length - 1] == 0xfe)
			handler_turn++; /* touch the body */
		pos += used;
		step = step * 7 % 31 + 1;
	}
	ttrpc_decoder_release(&d);
}

static void drain(int fd)
{
	uint8_t buf[65536];
	struct msghdr msg;
	struct iovec iov = { .iov_base = buf, .iov_len = sizeof(buf) };
	union {
		struct cmsghdr hdr;
		char b[CMSG_SPACE(sizeof(int) * 64)];
	} cbuf;

	for (;;) {
		memset(&msg, 0, sizeof(msg));
		msg.msg_iov = &iov;
		msg.msg_iovlen = 1;
		msg.msg_control = cbuf.b;
		msg.msg_controllen = sizeof(cbuf.b);
		if (recvmsg(fd, &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC) <= 0)
			return;
		for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
			if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
				int fds[64];
				size_t n = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);

				memcpy(fds, CMSG_DATA(c), n * sizeof(int));
				for (size_t i = 0; i < n; i++)
					close(fds[i]);
			}
		}
	}
}

/* Write @data into @fd (as much as fits), then EOF. */
static void preload(int fd, const uint8_t *data, size_t size)
{
	size_t off = 0;

	while (off < size) {
		ssize_t n = send(fd, data + off, size - off, MSG_DONTWAIT | MSG_NOSIGNAL);

		if (n <= 0)
			break;
		off += (size_t)n;
	}
	shutdown(fd, SHUT_WR);
}

static void fuzz_blocking_client(const uint8_t *data, size_t size)
{
	Virtmgr__V1__GetDaemonInfoRequest req = VIRTMGR__V1__GET_DAEMON_INFO_REQUEST__INIT;
	ProtobufCMessage *resp = NULL;
	struct ttrpc_client *cl;
	struct vm_error err;
	int sv[2], rfds[4];
	size_t nrfds = ARRAY_SIZE(rfds);
	int64_t sid;

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		return;
	preload(sv[1], data, size);
	cl = ttrpc_client_from_fd(sv[0]);
	if (ttrpc_client_call(cl, "virtmgr.v1.VirtualizationService", "GetDaemonInfo", &req.base, NULL, 0,
			      &virtmgr__v1__daemon_info__descriptor, &resp, rfds, &nrfds, 0, &err) == 0) {
		for (size_t i = 0; i < nrfds; i++)
			close(rfds[i]);
		protobuf_c_message_free_unpacked(resp, NULL);
	}
	sid = ttrpc_client_stream_open(cl, "virtmgr.v1.VirtualizationService", "WatchVm", &req.base,
				       TTRPC_FLAG_REMOTE_CLOSED, 0, &err);
	for (int i = 0; sid > 0 && i < 64; i++) {
		uint8_t *buf;
		size_t len;

		if (ttrpc_client_stream_recv(cl, (uint32_t)sid, &buf, &len, 0, &err) != 1)
			break;
		free(buf);
	}
	ttrpc_client_free(cl);
	close(sv[1]);
}

static void async_done(const struct vm_error *status, const uint8_t *payload, size_t len, void *opaque)
{
	(*(int *)opaque)++;
}

static void async_closed(struct ttrpc_conn *conn, void *opaque)
{
	*(bool *)opaque = true;
}

static void fuzz_async_client(const uint8_t *data, size_t size)
{
	bool closed = false;
	struct ev_loop *loop = fuzz_loop();
	Virtmgr__V1__GetDaemonInfoRequest req = VIRTMGR__V1__GET_DAEMON_INFO_REQUEST__INIT;
	struct ttrpc_conn *conn;
	int sv[2], done = 0;

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		return;
	preload(sv[1], data, size);
	conn = ttrpc_client_conn_new(loop, sv[0], async_closed, &closed);
	for (int i = 0; i < 3; i++)
		ttrpc_conn_call(conn, "virtmgr.v1.VirtualizationService", "GetDaemonInfo", &req.base, 0, async_done,
				&done);
	/* EOF closes the connection, which completes every call. */
	for (int round = 0; round < 10000 && done < 3; round++)
		ev_run(loop, EVRUN_NOWAIT);
	if (!closed)
		ttrpc_conn_close(conn); /* every call answered before EOF */
	if (done != 3)
		abort(); /* a callback that never ran, or ran twice */
	drain(sv[1]);
	close(sv[1]);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const ProtobufCServiceDescriptor *services[] = {
		&virtmgr__v1__virtualization_service__descriptor,
		&virtmgr__v1__virtual_machine_service__descriptor,
		&virtmgr__v1__agent__descriptor,
	};
	struct ev_loop *loop = fuzz_loop();
	struct ttrpc_server *srv;
	struct ttrpc_limits lim = { .max_streams_per_conn = 8, .max_out_bytes = 1u << 16 };
	struct vm_error err;
	size_t off = 0;
	int sv[2];

	fuzz_decoder(data, size);

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, sv) < 0)
		return 0;
	srv = ttrpc_server_new(loop);
	ttrpc_server_set_limits(srv, &lim);
	for (size_t s = 0; s < ARRAY_SIZE(services); s++)
		for (unsigned i = 0; i < services[s]->n_methods; i++)
			ttrpc_server_add_method(srv, services[s]->name, services[s]->methods[i].name,
						services[s]->methods[i].input, fuzz_handler,
						(void *)&services[s]->methods[i]);
	if (!ttrpc_server_adopt(srv, sv[1], &err)) {
		close(sv[0]);
		close(sv[1]);
		ttrpc_server_free(srv);
		return 0;
	}
	for (int round = 0; round < 10000 && ttrpc_server_conn_count(srv); round++) {
		if (off < size) {
			ssize_t n = send(sv[0], data + off, size - off, MSG_DONTWAIT | MSG_NOSIGNAL);

			if (n > 0)
				off += (size_t)n;
			else if (n < 0 && errno != EAGAIN)
				off = size;
			if (off == size)
				shutdown(sv[0], SHUT_WR);
		}
		ev_run(loop, EVRUN_NOWAIT);
		drain(sv[0]);
	}
	ttrpc_server_free(srv);
	ev_run(loop, EVRUN_NOWAIT);
	drain(sv[0]);
	close(sv[0]);

	fuzz_blocking_client(data, size);
	fuzz_async_client(data, size);
	return 0;
}
