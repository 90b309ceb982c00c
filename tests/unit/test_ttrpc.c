/* test_ttrpc.c - the ttrpc server, the blocking client and the asynchronous
 * client over real sockets.
 *
 * The server runs on its own libev loop in a thread of the test process
 * (so LeakSanitizer sees both sides), serving the test-only service
 * vmtest.Test on one end of a socketpair and optionally on a Unix socket.
 * Tests talk to it with the blocking client, or with raw frames where the
 * point is what the server does with bytes a client would never send. Server
 * side facts (cancel callbacks, connections, output high-water mark) are
 * read with the Stats method. Nothing here asserts on timing.
 */
#include "config.h"

#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include "lib/log.h"
#include "lib/ttrpc-priv.h"
#include "lib/ttrpc.h"
#include "protos/ttrpc.pb-c.h"
#include "protos/virtmgr.pb-c.h"
#include "tests/unit/test.pb-c.h"

#define SVC "vmtest.Test"

struct tsrv {
	struct ev_loop *loop;
	struct ttrpc_server *srv;
	struct ttrpc_listener *listener;
	pthread_t th;
	ev_async quit;
	int client_fd; /* our end of the socketpair */
	char dir[64];
	char path[128];
	/* touched on the server thread only, read via Stats or after stop */
	unsigned cancels, closes, drains;
	size_t max_out;
};

/* ---------------------------------------------------------------- handlers */

static void note_out(struct tsrv *t, struct ttrpc_call *call)
{
	size_t out = ttrpc_conn_out_pending(ttrpc_call_conn(call));

	if (out > t->max_out)
		t->max_out = out;
}

static void on_cancel(struct ttrpc_call *call, void *opaque)
{
	struct tsrv *t = opaque;

	t->cancels++;
}

static void h_echo(struct ttrpc_call *call, const ProtobufCMessage *msg, void *opaque)
{
	const Vmtest__EchoRequest *req = (const Vmtest__EchoRequest *)msg;
	Vmtest__EchoReply rep = VMTEST__ECHO_REPLY__INIT;

	if (req->fail_code) {
		ttrpc_call_fail(call, req->fail_code, "echo failed as asked: %s", req->text);
		return;
	}
	rep.text = req->text;
	if (req->pass_fd) {
		int fd = ttrpc_call_take_fd(call, 0);
		int p[2];

		if (fd < 0) {
			ttrpc_call_fail(call, VM_INVALID_ARGUMENT, "no fd with the request (%zu)",
					ttrpc_call_nfds(call));
			return;
		}
		if (write_all(fd, req->text, strlen(req->text)) < 0 || pipe2(p, O_CLOEXEC) < 0) {
			close(fd);
			ttrpc_call_fail(call, VM_INTERNAL, "write: %s", strerror(errno));
			return;
		}
		close(fd);
		write_all(p[1], "reply-fd", 8);
		close(p[1]);
		rep.fd_index = 0;
		ttrpc_call_reply(call, &rep.base, &p[0], 1);
		return;
	}
	ttrpc_call_reply(call, &rep.base, NULL, 0);
}

static void h_hold(struct ttrpc_call *call, const ProtobufCMessage *msg, void *opaque)
{
	ttrpc_call_set_cancel(call, on_cancel, opaque);
}

static void h_stream(struct ttrpc_call *call, const ProtobufCMessage *msg, void *opaque)
{
	const Vmtest__EchoRequest *req = (const Vmtest__EchoRequest *)msg;

	if (!ttrpc_call_is_stream(call)) {
		ttrpc_call_fail(call, VM_FAILED_PRECONDITION, "Stream needs a streaming request");
		return;
	}
	for (uint32_t i = 0; i < req->count; i++) {
		Vmtest__EchoReply rep = VMTEST__ECHO_REPLY__INIT;
		char text[64];

		snprintf(text, sizeof(text), "%s-%u", req->text, i);
		rep.text = text;
		cr_assert_eq(ttrpc_call_send(call, &rep.base), 0);
	}
	ttrpc_call_finish(call);
}

struct upload {
	struct tsrv *t;
	char buf[256];
	size_t len;
};

static void upload_data(struct ttrpc_call *call, const uint8_t *data, size_t len, bool closed, void *opaque)
{
	struct upload *u = opaque;

	if (len && u->len + len < sizeof(u->buf)) {
		memcpy(u->buf + u->len, data, len);
		u->len += len;
	}
	if (closed) {
		Vmtest__EchoReply rep = VMTEST__ECHO_REPLY__INIT;

		u->buf[u->len] = 0;
		rep.text = u->buf;
		ttrpc_call_send(call, &rep.base);
		ttrpc_call_finish(call);
		free(u);
	}
}

static void upload_cancel(struct ttrpc_call *call, void *opaque)
{
	struct upload *u = opaque;

	u->t->cancels++;
	free(u);
}

static void h_upload(struct ttrpc_call *call, const ProtobufCMessage *msg, void *opaque)
{
	struct upload *u = calloc(1, sizeof(*u));

	u->t = opaque;
	ttrpc_call_set_data_cb(call, upload_data, u);
	ttrpc_call_set_cancel(call, upload_cancel, u);
}

static void h_big(struct ttrpc_call *call, const ProtobufCMessage *msg, void *opaque)
{
	const Vmtest__EchoRequest *req = (const Vmtest__EchoRequest *)msg;
	Vmtest__EchoReply rep = VMTEST__ECHO_REPLY__INIT;
	size_t n = (size_t)req->count * 1024;
	char *text = malloc(n + 1);

	memset(text, 'x', n);
	text[n] = 0;
	rep.text = text;
	note_out(opaque, call);
	ttrpc_call_reply(call, &rep.base, NULL, 0);
	free(text);
}

/* Sized: an EchoReply of exactly @count text bytes (fd_index = count). */
static void sized_reply(uint32_t count, Vmtest__EchoReply *rep)
{
	char *text = malloc(count + 1);

	for (uint32_t i = 0; i < count; i++)
		text[i] = (char)('a' + i % 26);
	text[count] = 0;
	rep->text = text;
	rep->fd_index = count;
}

static void h_sized(struct ttrpc_call *call, const ProtobufCMessage *msg, void *opaque)
{
	Vmtest__EchoReply rep = VMTEST__ECHO_REPLY__INIT;

	sized_reply(((const Vmtest__EchoRequest *)msg)->count, &rep);
	ttrpc_call_reply(call, &rep.base, NULL, 0);
	free(rep.text);
}

/* List: a ListVmsResponse of @count VmInfo, every field set (nested, repeated). */
struct vm_list {
	Virtmgr__V1__ListVmsResponse resp;
	Virtmgr__V1__VmInfo *infos;
	Virtmgr__V1__VmInfo **ptrs;
	char (*ids)[40];
};

static void vm_list_fill(struct vm_list *l, uint32_t count)
{
	virtmgr__v1__list_vms_response__init(&l->resp);
	l->infos = calloc(count + 1, sizeof(*l->infos));
	l->ptrs = calloc(count + 1, sizeof(*l->ptrs));
	l->ids = calloc(count + 1, sizeof(*l->ids));
	for (uint32_t i = 0; i < count; i++) {
		Virtmgr__V1__VmInfo *v = &l->infos[i];

		virtmgr__v1__vm_info__init(v);
		snprintf(l->ids[i], sizeof(l->ids[i]), "%08x-vm-%u", i * 2654435761u, i);
		v->id = l->ids[i];
		v->name = l->ids[i] + 9;
		v->cid = 2048 + i;
		v->state = (Virtmgr__V1__VmState)(i % 6);
		v->exit_code = (int32_t)i - 3; /* negative: ten-byte varints */
		v->has_exit_code = i & 1;
		v->message = i % 3 ? "" : "a message";
		v->qemu_pid = 1000 + i * 7919;
		v->run_dir = "/run/virtmgr/vms/some-dir";
		v->owner_uid = i * 1000;
		v->accel = "tcg";
		v->memory_mib = 256u << (i % 4);
		v->cpus = 1 + i % 4;
		v->created_ns = 1700000000000000000ull + i;
		v->detached = i % 5 == 0;
		l->ptrs[i] = v;
	}
	l->resp.n_vms = count;
	l->resp.vms = l->ptrs;
}

static void vm_list_release(struct vm_list *l)
{
	free(l->infos);
	free(l->ptrs);
	free(l->ids);
}

static void h_list(struct ttrpc_call *call, const ProtobufCMessage *msg, void *opaque)
{
	struct vm_list l;

	vm_list_fill(&l, ((const Vmtest__EchoRequest *)msg)->count);
	ttrpc_call_reply(call, &l.resp.base, NULL, 0);
	vm_list_release(&l);
}

static void on_drain(struct ttrpc_conn *conn, void *opaque)
{
	struct tsrv *t = opaque;

	t->drains++;
}

/* Big, with a drain callback armed first: it runs once the reply is out. */
static void h_big_drain(struct ttrpc_call *call, const ProtobufCMessage *msg, void *opaque)
{
	ttrpc_conn_set_drain_cb(ttrpc_call_conn(call), 0, on_drain, opaque);
	h_big(call, msg, opaque);
}

static void h_stats(struct ttrpc_call *call, const ProtobufCMessage *msg, void *opaque)
{
	struct tsrv *t = opaque;
	Vmtest__Stats st = VMTEST__STATS__INIT;

	st.conns = ttrpc_server_conn_count(t->srv);
	st.cancels = t->cancels;
	st.closes = t->closes;
	st.max_out = t->max_out;
	st.drains = t->drains;
	ttrpc_call_reply(call, &st.base, NULL, 0);
}

static void h_close_me(struct ttrpc_call *call, const ProtobufCMessage *msg, void *opaque)
{
	/* A handler may close its own connection. */
	ttrpc_conn_close(ttrpc_call_conn(call));
}

static void on_conn_close(struct ttrpc_conn *conn, void *opaque)
{
	struct tsrv *t = opaque;

	t->closes++;
}

static void quit_cb(struct ev_loop *loop, ev_async *w, int revents)
{
	ev_break(loop, EVBREAK_ALL);
}

static void *tsrv_thread(void *arg)
{
	struct tsrv *t = arg;

	ev_run(t->loop, 0);
	return NULL;
}

static void tsrv_setup(struct tsrv *t, const struct ttrpc_limits *limits)
{
	const ProtobufCMessageDescriptor *in = &vmtest__echo_request__descriptor;
	int sv[2];
	struct vm_error err;

	memset(t, 0, sizeof(*t));
	t->loop = ev_loop_new(EVFLAG_AUTO);
	t->srv = ttrpc_server_new(t->loop);
	if (limits)
		ttrpc_server_set_limits(t->srv, limits);
	ttrpc_server_set_conn_callbacks(t->srv, NULL, on_conn_close, t);
	ttrpc_server_add_method(t->srv, SVC, "Echo", in, h_echo, t);
	ttrpc_server_add_method(t->srv, SVC, "Hold", in, h_hold, t);
	ttrpc_server_add_method(t->srv, SVC, "Stream", in, h_stream, t);
	ttrpc_server_add_method(t->srv, SVC, "Upload", in, h_upload, t);
	ttrpc_server_add_method(t->srv, SVC, "Big", in, h_big, t);
	ttrpc_server_add_method(t->srv, SVC, "Stats", in, h_stats, t);
	ttrpc_server_add_method(t->srv, SVC, "BigDrain", in, h_big_drain, t);
	ttrpc_server_add_method(t->srv, SVC, "CloseMe", in, h_close_me, t);
	ttrpc_server_add_method(t->srv, SVC, "Sized", in, h_sized, t);
	ttrpc_server_add_method(t->srv, SVC, "List", in, h_list, t);
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	cr_assert_not_null(ttrpc_server_adopt(t->srv, sv[1], &err), "%s", err.message);
	t->client_fd = sv[0];
	ev_async_init(&t->quit, quit_cb);
	ev_async_start(t->loop, &t->quit);
}

static void tsrv_listen(struct tsrv *t)
{
	struct vm_error err;

	snprintf(t->dir, sizeof(t->dir), "/tmp/ttrpc-test.XXXXXX");
	cr_assert_not_null(mkdtemp(t->dir));
	snprintf(t->path, sizeof(t->path), "%s/sock", t->dir);
	t->listener = ttrpc_server_listen_unix(t->srv, t->path, 0600, &err);
	cr_assert_not_null(t->listener, "%s", err.message);
}

static void tsrv_start(struct tsrv *t)
{
	cr_assert_eq(pthread_create(&t->th, NULL, tsrv_thread, t), 0);
}

static void tsrv_stop(struct tsrv *t)
{
	ev_async_send(t->loop, &t->quit);
	pthread_join(t->th, NULL);
	ev_async_stop(t->loop, &t->quit);
	ttrpc_server_free(t->srv);
	ev_loop_destroy(t->loop);
	if (t->dir[0]) {
		cr_expect_eq(access(t->path, F_OK), -1, "socket not unlinked");
		rmdir(t->dir);
	}
}

static struct ttrpc_client *tsrv_client(struct tsrv *t)
{
	int fd = dup(t->client_fd);

	fd_set_cloexec(fd, true);
	close(t->client_fd);
	t->client_fd = -1;
	return ttrpc_client_from_fd(fd);
}

static int echo(struct ttrpc_client *cl, const char *method, const char *text, uint32_t count, Vmtest__EchoReply **rep,
		uint64_t timeout_ns, struct vm_error *err)
{
	Vmtest__EchoRequest req = VMTEST__ECHO_REQUEST__INIT;

	req.text = (char *)text;
	req.count = count;
	return ttrpc_client_call(cl, SVC, method, &req.base, NULL, 0, &vmtest__echo_reply__descriptor,
				 (ProtobufCMessage **)rep, NULL, NULL, timeout_ns, err);
}

static Vmtest__Stats *stats(struct ttrpc_client *cl)
{
	Vmtest__EchoRequest req = VMTEST__ECHO_REQUEST__INIT;
	Vmtest__Stats *st = NULL;
	struct vm_error err = { 0 };

	cr_assert_eq(ttrpc_client_call(cl, SVC, "Stats", &req.base, NULL, 0, &vmtest__stats__descriptor,
				       (ProtobufCMessage **)&st, NULL, NULL, 0, &err),
		     0, "%s", err.message);
	return st;
}

/* Open fds of this process: server and client must not leak any. */
static int count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	int n = 0;

	cr_assert_not_null(d);
	while (readdir(d))
		n++;
	closedir(d);
	return n;
}

/* ---------------------------------------------------------- raw frame I/O */

static int send_all(int fd, const void *buf, size_t len)
{
	size_t off = 0;

	while (off < len) {
		ssize_t n = send(fd, (const uint8_t *)buf + off, len - off, MSG_NOSIGNAL);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		off += (size_t)n;
	}
	return 0;
}

/* Return: 0, or -1 when the server has closed the connection. */
static int raw_send(int fd, uint32_t sid, uint8_t type, uint8_t flags, const void *body, size_t len)
{
	struct ttrpc_header h = { .length = (uint32_t)len, .stream_id = sid, .type = type, .flags = flags };
	uint8_t hb[TTRPC_HEADER_SIZE];

	ttrpc_header_encode(&h, hb);
	if (send_all(fd, hb, sizeof(hb)) < 0)
		return -1;
	return len ? send_all(fd, body, len) : 0;
}

static int raw_request(int fd, uint32_t sid, const char *method, const ProtobufCMessage *msg, int64_t timeout)
{
	int ret;
	Ttrpc__Request r = TTRPC__REQUEST__INIT;
	size_t plen, len;
	uint8_t *payload = ttrpc_pack(msg, &plen);
	uint8_t *buf;

	r.service = SVC;
	r.method = (char *)method;
	r.payload.data = payload;
	r.payload.len = plen;
	r.timeout_nano = timeout;
	buf = ttrpc_pack(&r.base, &len);
	ret = raw_send(fd, sid, TTRPC_TYPE_REQUEST, 0, buf, len);
	free(buf);
	free(payload);
	return ret;
}

static int read_exact(int fd, void *buf, size_t len)
{
	size_t off = 0;

	while (off < len) {
		ssize_t n = read(fd, (uint8_t *)buf + off, len - off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		off += (size_t)n;
	}
	return 0;
}

/* Next Response frame: its stream id and status. Return: 0, or -1 on EOF. */
static int raw_response(int fd, uint32_t *sid, int *code, char *msg, size_t msglen)
{
	uint8_t hb[TTRPC_HEADER_SIZE];
	struct ttrpc_header h;
	uint8_t *body;
	Ttrpc__Response *r;

	if (read_exact(fd, hb, sizeof(hb)) < 0)
		return -1;
	ttrpc_header_decode(hb, &h);
	cr_assert_eq(h.type, TTRPC_TYPE_RESPONSE);
	body = malloc(h.length + 1);
	cr_assert_eq(read_exact(fd, body, h.length), 0);
	r = ttrpc__response__unpack(NULL, h.length, body);
	cr_assert_not_null(r);
	*sid = h.stream_id;
	*code = r->status ? r->status->code : 0;
	snprintf(msg, msglen, "%s", r->status && r->status->message ? r->status->message : "");
	ttrpc__response__free_unpacked(r, NULL);
	free(body);
	return 0;
}

/* ------------------------------------------------------------------- tests */

TestSuite(ttrpc, .timeout = 120);

Test(ttrpc, unary_ok)
{
	struct tsrv t;
	struct ttrpc_client *cl;
	Vmtest__EchoReply *rep = NULL;
	struct vm_error err = { 0 };

	tsrv_setup(&t, NULL);
	tsrv_start(&t);
	cl = tsrv_client(&t);
	for (int i = 0; i < 3; i++) {
		cr_assert_eq(echo(cl, "Echo", "hello", 0, &rep, 5000000000ull, &err), 0, "%s", err.message);
		cr_assert_str_eq(rep->text, "hello");
		protobuf_c_message_free_unpacked(&rep->base, NULL);
	}
	cr_assert_eq(echo(cl, "Echo", "", 0, &rep, 0, &err), 0, "%s", err.message);
	cr_assert_str_eq(rep->text, "");
	protobuf_c_message_free_unpacked(&rep->base, NULL);
	ttrpc_client_free(cl);
	tsrv_stop(&t);
}

Test(ttrpc, handler_status_reaches_client)
{
	struct tsrv t;
	struct ttrpc_client *cl;
	Vmtest__EchoRequest req = VMTEST__ECHO_REQUEST__INIT;
	ProtobufCMessage *rep = NULL;
	struct vm_error err = { 0 };

	tsrv_setup(&t, NULL);
	tsrv_start(&t);
	cl = tsrv_client(&t);
	req.text = "vm-7";
	req.fail_code = VM_NOT_FOUND;
	cr_assert_eq(ttrpc_client_call(cl, SVC, "Echo", &req.base, NULL, 0, &vmtest__echo_reply__descriptor, &rep, NULL,
				       NULL, 0, &err),
		     -1);
	cr_assert_null(rep);
	cr_assert_eq(err.code, VM_NOT_FOUND);
	cr_assert(strstr(err.message, "vm-7"), "%s", err.message);
	ttrpc_client_free(cl);
	tsrv_stop(&t);
}

Test(ttrpc, unknown_service_and_method)
{
	struct tsrv t;
	struct ttrpc_client *cl;
	Vmtest__EchoRequest req = VMTEST__ECHO_REQUEST__INIT;
	struct vm_error err = { 0 };

	tsrv_setup(&t, NULL);
	tsrv_start(&t);
	cl = tsrv_client(&t);
	cr_assert_eq(ttrpc_client_call(cl, "vmtest.Nope", "Echo", &req.base, NULL, 0, NULL, NULL, NULL, NULL, 0, &err),
		     -1);
	cr_assert_eq(err.code, VM_UNIMPLEMENTED);
	cr_assert(strstr(err.message, "vmtest.Nope"), "%s", err.message);
	cr_assert_eq(ttrpc_client_call(cl, SVC, "Frobnicate", &req.base, NULL, 0, NULL, NULL, NULL, NULL, 0, &err), -1);
	cr_assert_eq(err.code, VM_UNIMPLEMENTED);
	cr_assert(strstr(err.message, "vmtest.Test/Frobnicate"), "%s", err.message);
	ttrpc_client_free(cl);
	tsrv_stop(&t);
}

Test(ttrpc, bad_payload_invalid_argument)
{
	struct tsrv t;
	struct ttrpc_client *cl;
	Vmtest__BadRequest bad = VMTEST__BAD_REQUEST__INIT;
	struct vm_error err = { 0 };

	tsrv_setup(&t, NULL);
	tsrv_start(&t);
	cl = tsrv_client(&t);
	bad.text = 12345;
	cr_assert_eq(ttrpc_client_call(cl, SVC, "Echo", &bad.base, NULL, 0, NULL, NULL, NULL, NULL, 0, &err), -1);
	cr_assert_eq(err.code, VM_INVALID_ARGUMENT);
	cr_assert(strstr(err.message, "vmtest.EchoRequest"), "%s", err.message);
	ttrpc_client_free(cl);
	tsrv_stop(&t);
}

Test(ttrpc, oversize_request_then_same_connection_serves)
{
	int fds_before = count_fds();
	struct tsrv t;
	Vmtest__EchoRequest req = VMTEST__ECHO_REQUEST__INIT;
	uint8_t *junk = calloc(1, TTRPC_MAX_DATA + 1);
	uint32_t sid;
	int code, fd;
	char msg[256];
	bool got1 = false, got3 = false;

	tsrv_setup(&t, NULL);
	tsrv_start(&t);
	fd = t.client_fd;
	memset(junk, 0x55, TTRPC_MAX_DATA + 1);
	/* The server answers while we are still writing: read in between. */
	cr_assert_eq(raw_send(fd, 1, TTRPC_TYPE_REQUEST, 0, junk, TTRPC_MAX_DATA + 1), 0);
	req.text = "after";
	cr_assert_eq(raw_request(fd, 3, "Echo", &req.base, 0), 0);
	for (int i = 0; i < 2; i++) {
		cr_assert_eq(raw_response(fd, &sid, &code, msg, sizeof(msg)), 0);
		if (sid == 1) {
			cr_assert_eq(code, VM_RESOURCE_EXHAUSTED, "%d %s", code, msg);
			got1 = true;
		} else {
			cr_assert_eq(sid, 3);
			cr_assert_eq(code, 0, "%s", msg);
			got3 = true;
		}
	}
	cr_assert(got1 && got3);
	free(junk);
	close(fd);
	tsrv_stop(&t);
	cr_assert_eq(count_fds(), fds_before, "fd leak");
}

static int connect_unix(const char *path)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	cr_assert_lt(strlen(path), sizeof(sun.sun_path));
	memcpy(sun.sun_path, path, strlen(path) + 1);
	cr_assert_eq(connect(fd, (struct sockaddr *)&sun, sizeof(sun)), 0, "%s", strerror(errno));
	return fd;
}

Test(ttrpc, bad_first_byte_closes_only_that_connection)
{
	struct tsrv t;
	struct ttrpc_client *good;
	Vmtest__EchoReply *rep = NULL;
	Vmtest__Stats *st;
	struct vm_error err = { 0 };
	int bad;
	char c;

	tsrv_setup(&t, NULL);
	tsrv_listen(&t);
	tsrv_start(&t);
	good = tsrv_client(&t);
	bad = connect_unix(t.path);
	cr_assert_eq(write_all(bad, "GET / HTTP/1.1\r\n\r\n", 18), 0);
	cr_assert_eq(read(bad, &c, 1), 0, "server did not close the bad connection");
	close(bad);
	cr_assert_eq(echo(good, "Echo", "still here", 0, &rep, 0, &err), 0, "%s", err.message);
	cr_assert_str_eq(rep->text, "still here");
	protobuf_c_message_free_unpacked(&rep->base, NULL);
	st = stats(good);
	cr_assert_eq(st->conns, 1);
	cr_assert_eq(st->closes, 1);
	protobuf_c_message_free_unpacked(&st->base, NULL);
	ttrpc_client_free(good);
	tsrv_stop(&t);
}

Test(ttrpc, deadline_exceeded_runs_cancel)
{
	struct tsrv t;
	Vmtest__EchoRequest req = VMTEST__ECHO_REQUEST__INIT;
	struct ttrpc_client *cl;
	Vmtest__Stats *st;
	uint32_t sid;
	int code, fd;
	char msg[256];
	struct vm_error err = { 0 };
	Vmtest__EchoReply *rep = NULL;

	tsrv_setup(&t, NULL);
	tsrv_listen(&t);
	tsrv_start(&t);
	fd = t.client_fd;
	cr_assert_eq(raw_request(fd, 1, "Hold", &req.base, 20 * 1000 * 1000), 0);
	cr_assert_eq(raw_response(fd, &sid, &code, msg, sizeof(msg)), 0);
	cr_assert_eq(sid, 1);
	cr_assert_eq(code, VM_DEADLINE_EXCEEDED, "%d %s", code, msg);
	cr_assert(strstr(msg, "vmtest.Test/Hold"), "%s", msg);
	close(fd);
	t.client_fd = -1;

	/* The blocking client's own timeout, with the server's deadline too. */
	cl = ttrpc_client_connect_unix(t.path, &err);
	cr_assert_not_null(cl, "%s", err.message);
	cr_assert_eq(echo(cl, "Hold", "", 0, &rep, 30 * 1000 * 1000, &err), -1);
	cr_assert_eq(err.code, VM_DEADLINE_EXCEEDED, "%s", err.message);
	/* The late DEADLINE_EXCEEDED of the abandoned stream must not confuse the next call. */
	cr_assert_eq(echo(cl, "Echo", "next", 0, &rep, 0, &err), 0, "%s", err.message);
	cr_assert_str_eq(rep->text, "next");
	protobuf_c_message_free_unpacked(&rep->base, NULL);
	st = stats(cl);
	cr_assert_geq(st->cancels, 1);
	protobuf_c_message_free_unpacked(&st->base, NULL);
	ttrpc_client_free(cl);
	tsrv_stop(&t);
	cr_assert_eq(t.cancels, 2);
}

Test(ttrpc, client_that_stops_reading_is_disconnected)
{
	struct ttrpc_limits lim = { .max_out_bytes = 1u << 20 };
	struct tsrv t;
	struct ttrpc_client *cl;
	Vmtest__EchoRequest req = VMTEST__ECHO_REQUEST__INIT;
	Vmtest__Stats *st;
	struct vm_error err = { 0 };
	int fd, rcv = 4096;
	char buf[65536];
	ssize_t n;

	tsrv_setup(&t, &lim);
	tsrv_listen(&t);
	tsrv_start(&t);
	fd = t.client_fd;
	setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcv, sizeof(rcv));
	req.count = 256; /* 256 KiB replies */
	/* The server may cut us off while we are still asking. */
	for (uint32_t i = 0; i < 40; i++)
		if (raw_request(fd, 2 * i + 1, "Big", &req.base, 0) < 0)
			break;
	cl = ttrpc_client_connect_unix(t.path, &err);
	cr_assert_not_null(cl, "%s", err.message);
	for (;;) {
		st = stats(cl);
		if (st->closes >= 1)
			break;
		protobuf_c_message_free_unpacked(&st->base, NULL);
		usleep(10000);
	}
	/* Bounded: at most the limit plus the frame that crossed it. */
	cr_assert_leq(st->max_out, (1u << 20) + 256 * 1024 + 64, "%llu", (unsigned long long)st->max_out);
	cr_assert_eq(st->conns, 1);
	protobuf_c_message_free_unpacked(&st->base, NULL);
	/* What was sent before the cut is readable, then EOF (or a reset, when
	 * requests were still unread on the server's side). */
	while ((n = read(fd, buf, sizeof(buf))) > 0)
		;
	cr_assert(n == 0 || errno == ECONNRESET, "%s", strerror(errno));
	ttrpc_client_free(cl);
	tsrv_stop(&t);
}

Test(ttrpc, fd_passing_round_trip)
{
	int fds_before = count_fds();
	struct tsrv t;
	struct ttrpc_client *cl;
	Vmtest__EchoRequest req = VMTEST__ECHO_REQUEST__INIT;
	Vmtest__EchoReply *rep = NULL;
	struct vm_error err = { 0 };

	tsrv_setup(&t, NULL);
	tsrv_start(&t);
	cl = tsrv_client(&t);
	for (int i = 0; i < 5; i++) {
		int p[2], rfds[4];
		size_t nrfds = ARRAY_SIZE(rfds);
		char buf[32] = { 0 };

		cr_assert_eq(pipe2(p, O_CLOEXEC), 0);
		req.text = "through the pipe";
		req.pass_fd = true;
		cr_assert_eq(ttrpc_client_call(cl, SVC, "Echo", &req.base, &p[1], 1, &vmtest__echo_reply__descriptor,
					       (ProtobufCMessage **)&rep, rfds, &nrfds, 0, &err),
			     0, "%s", err.message);
		close(p[1]);
		cr_assert_eq(read_exact(p[0], buf, 16), 0);
		cr_assert_str_eq(buf, "through the pipe");
		close(p[0]);
		cr_assert_eq(nrfds, 1);
		cr_assert_eq(rep->fd_index, 0);
		cr_assert(fcntl(rfds[0], F_GETFD) & FD_CLOEXEC);
		memset(buf, 0, sizeof(buf));
		cr_assert_eq(read_exact(rfds[0], buf, 8), 0);
		cr_assert_str_eq(buf, "reply-fd");
		close(rfds[0]);
		protobuf_c_message_free_unpacked(&rep->base, NULL);
	}
	/* An fd the handler never takes is closed by the server: the pipe sees EOF. */
	{
		int p[2];
		char c;

		cr_assert_eq(pipe2(p, O_CLOEXEC), 0);
		req.pass_fd = false;
		cr_assert_eq(ttrpc_client_call(cl, SVC, "Echo", &req.base, &p[1], 1, &vmtest__echo_reply__descriptor,
					       (ProtobufCMessage **)&rep, NULL, NULL, 0, &err),
			     0, "%s", err.message);
		protobuf_c_message_free_unpacked(&rep->base, NULL);
		close(p[1]);
		cr_assert_eq(read(p[0], &c, 1), 0);
		close(p[0]);
	}
	ttrpc_client_free(cl);
	tsrv_stop(&t);
	cr_assert_eq(count_fds(), fds_before, "fd leak");
}

static void expect_stream_item(struct ttrpc_client *cl, uint32_t sid, const char *want)
{
	uint8_t *data;
	size_t len;
	struct vm_error err = { 0 };
	Vmtest__EchoReply *rep;

	cr_assert_eq(ttrpc_client_stream_recv(cl, sid, &data, &len, -1, &err), 1, "%s", err.message);
	rep = vmtest__echo_reply__unpack(NULL, len, data);
	cr_assert_not_null(rep);
	cr_assert_str_eq(rep->text, want);
	vmtest__echo_reply__free_unpacked(rep, NULL);
	free(data);
}

static void expect_stream_end(struct ttrpc_client *cl, uint32_t sid)
{
	uint8_t *data;
	size_t len;
	struct vm_error err = { 0 };

	cr_assert_eq(ttrpc_client_stream_recv(cl, sid, &data, &len, -1, &err), 0, "%s", err.message);
}

Test(ttrpc, server_streaming)
{
	struct tsrv t;
	struct ttrpc_client *cl;
	Vmtest__EchoRequest req = VMTEST__ECHO_REQUEST__INIT;
	struct vm_error err = { 0 };
	int64_t sid;

	tsrv_setup(&t, NULL);
	tsrv_start(&t);
	cl = tsrv_client(&t);
	req.text = "ev";
	req.count = 5;
	sid = ttrpc_client_stream_open(cl, SVC, "Stream", &req.base, TTRPC_FLAG_REMOTE_CLOSED, 0, &err);
	cr_assert_gt(sid, 0, "%s", err.message);
	for (int i = 0; i < 5; i++) {
		char want[16];

		snprintf(want, sizeof(want), "ev-%d", i);
		expect_stream_item(cl, (uint32_t)sid, want);
	}
	expect_stream_end(cl, (uint32_t)sid);
	/* A unary request to a streaming-only method gets its status. */
	cr_assert_eq(echo(cl, "Stream", "x", 1, NULL, 0, &err), -1);
	cr_assert_eq(err.code, VM_FAILED_PRECONDITION);
	ttrpc_client_free(cl);
	tsrv_stop(&t);
}

Test(ttrpc, client_stream_data)
{
	int fds_before = count_fds();
	struct tsrv t;
	struct ttrpc_client *cl;
	Vmtest__EchoRequest req = VMTEST__ECHO_REQUEST__INIT;
	struct vm_error err = { 0 };
	int64_t sid;

	tsrv_setup(&t, NULL);
	tsrv_start(&t);
	cl = tsrv_client(&t);
	sid = ttrpc_client_stream_open(cl, SVC, "Upload", &req.base, TTRPC_FLAG_REMOTE_OPEN, 0, &err);
	cr_assert_gt(sid, 0, "%s", err.message);
	cr_assert_eq(ttrpc_client_stream_send(cl, (uint32_t)sid, (const uint8_t *)"one,", 4, false, &err), 0);
	cr_assert_eq(ttrpc_client_stream_send(cl, (uint32_t)sid, (const uint8_t *)"two,", 4, false, &err), 0);
	cr_assert_eq(ttrpc_client_stream_send(cl, (uint32_t)sid, (const uint8_t *)"three", 5, true, &err), 0);
	expect_stream_item(cl, (uint32_t)sid, "one,two,three");
	expect_stream_end(cl, (uint32_t)sid);
	/* An upload left open is cancelled when the connection goes. */
	sid = ttrpc_client_stream_open(cl, SVC, "Upload", &req.base, TTRPC_FLAG_REMOTE_OPEN, 0, &err);
	cr_assert_gt(sid, 0);
	cr_assert_eq(ttrpc_client_stream_send(cl, (uint32_t)sid, (const uint8_t *)"x", 1, false, &err), 0);
	ttrpc_client_free(cl);
	tsrv_stop(&t);
	cr_assert_eq(t.cancels, 1);
	cr_assert_eq(count_fds(), fds_before, "fd leak");
}

Test(ttrpc, many_interleaved_streams_one_connection)
{
	struct tsrv t;
	struct ttrpc_client *cl;
	Vmtest__EchoRequest req = VMTEST__ECHO_REQUEST__INIT;
	struct vm_error err = { 0 };
	int64_t sids[64];
	Vmtest__EchoReply *rep = NULL;

	tsrv_setup(&t, NULL);
	tsrv_start(&t);
	cl = tsrv_client(&t);
	for (int i = 0; i < 64; i++) {
		char text[16];

		snprintf(text, sizeof(text), "s%d", i);
		req.text = text;
		req.count = 3;
		sids[i] = ttrpc_client_stream_open(cl, SVC, "Stream", &req.base, TTRPC_FLAG_REMOTE_CLOSED, 0, &err);
		cr_assert_gt(sids[i], 0);
	}
	/* A unary call in the middle: its response is found among stream frames. */
	cr_assert_eq(echo(cl, "Echo", "unary", 0, &rep, 0, &err), 0, "%s", err.message);
	cr_assert_str_eq(rep->text, "unary");
	protobuf_c_message_free_unpacked(&rep->base, NULL);
	for (int i = 63; i >= 0; i--) {
		for (int j = 0; j < 3; j++) {
			char want[16];

			snprintf(want, sizeof(want), "s%d-%d", i, j);
			expect_stream_item(cl, (uint32_t)sids[i], want);
		}
		expect_stream_end(cl, (uint32_t)sids[i]);
	}
	ttrpc_client_free(cl);
	tsrv_stop(&t);
}

Test(ttrpc, stream_limit_per_connection)
{
	struct ttrpc_limits lim = { .max_streams_per_conn = 2 };
	struct tsrv t;
	struct ttrpc_client *cl;
	Vmtest__EchoRequest req = VMTEST__ECHO_REQUEST__INIT;
	struct vm_error err = { 0 };

	tsrv_setup(&t, &lim);
	tsrv_start(&t);
	cl = tsrv_client(&t);
	cr_assert_gt(ttrpc_client_stream_open(cl, SVC, "Hold", &req.base, TTRPC_FLAG_REMOTE_CLOSED, 0, &err), 0);
	cr_assert_gt(ttrpc_client_stream_open(cl, SVC, "Hold", &req.base, TTRPC_FLAG_REMOTE_CLOSED, 0, &err), 0);
	cr_assert_eq(echo(cl, "Echo", "third", 0, NULL, 0, &err), -1);
	cr_assert_eq(err.code, VM_RESOURCE_EXHAUSTED, "%s", err.message);
	ttrpc_client_free(cl);
	tsrv_stop(&t);
	cr_assert_eq(t.cancels, 2);
}

Test(ttrpc, many_connections)
{
	enum { N = 250 };
	struct tsrv t;
	struct ttrpc_client **cls = calloc(N, sizeof(*cls));
	struct vm_error err = { 0 };
	Vmtest__EchoReply *rep = NULL;
	Vmtest__Stats *st;

	tsrv_setup(&t, NULL);
	tsrv_listen(&t);
	tsrv_start(&t);
	for (int i = 0; i < N; i++) {
		char text[16];

		cls[i] = ttrpc_client_connect_unix(t.path, &err);
		cr_assert_not_null(cls[i], "%d: %s", i, err.message);
		snprintf(text, sizeof(text), "c%d", i);
		cr_assert_eq(echo(cls[i], "Echo", text, 0, &rep, 0, &err), 0, "%s", err.message);
		cr_assert_str_eq(rep->text, text);
		protobuf_c_message_free_unpacked(&rep->base, NULL);
	}
	st = stats(cls[0]);
	cr_assert_eq(st->conns, N + 1);
	protobuf_c_message_free_unpacked(&st->base, NULL);
	for (int i = 0; i < N; i++)
		ttrpc_client_free(cls[i]);
	free(cls);
	tsrv_stop(&t);
}

Test(ttrpc, connection_limit_refuses)
{
	struct ttrpc_limits lim = { .max_connections = 2 };
	struct tsrv t;
	struct ttrpc_client *a, *b;
	struct vm_error err = { 0 };
	Vmtest__EchoReply *rep = NULL;

	tsrv_setup(&t, &lim);
	tsrv_listen(&t);
	tsrv_start(&t);
	/* The socketpair connection is the first. */
	a = ttrpc_client_connect_unix(t.path, &err);
	cr_assert_not_null(a);
	cr_assert_eq(echo(a, "Echo", "a", 0, &rep, 0, &err), 0, "%s", err.message);
	protobuf_c_message_free_unpacked(&rep->base, NULL);
	b = ttrpc_client_connect_unix(t.path, &err);
	cr_assert_not_null(b);
	cr_assert_eq(echo(b, "Echo", "b", 0, &rep, 0, &err), -1);
	cr_assert_eq(err.code, VM_UNAVAILABLE, "%s", err.message);
	ttrpc_client_free(a);
	ttrpc_client_free(b);
	tsrv_stop(&t);
}

Test(ttrpc, peer_credentials_and_close_from_handler)
{
	struct tsrv t;
	struct ttrpc_client *cl;
	struct vm_error err = { 0 };

	tsrv_setup(&t, NULL);
	/* Peer of the adopted socketpair end, read before the loop runs. */
	cr_assert_eq(ttrpc_server_conn_count(t.srv), 1);
	tsrv_start(&t);
	cl = tsrv_client(&t);
	cr_assert_eq(echo(cl, "CloseMe", "", 0, NULL, 0, &err), -1);
	cr_assert_eq(err.code, VM_UNAVAILABLE, "%s", err.message);
	/* The client stays broken with the same reason. */
	cr_assert_eq(echo(cl, "Echo", "", 0, NULL, 0, &err), -1);
	cr_assert_eq(err.code, VM_UNAVAILABLE);
	ttrpc_client_free(cl);
	tsrv_stop(&t);
	cr_assert_eq(t.closes, 1);
}

static void peer_open(struct ttrpc_conn *conn, void *opaque)
{
	const struct ttrpc_peer *p = ttrpc_conn_peer(conn);

	cr_assert_eq(p->family, AF_UNIX);
	cr_assert(p->has_cred);
	cr_assert_eq(p->pid, getpid());
	cr_assert_eq(p->uid, getuid());
	cr_assert_null(ttrpc_conn_listener(conn));
	(*(int *)opaque)++;
}

Test(ttrpc, peer_identity)
{
	struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
	struct ttrpc_server *srv = ttrpc_server_new(loop);
	struct vm_error err;
	int sv[2], opened = 0;

	ttrpc_server_set_conn_callbacks(srv, peer_open, NULL, &opened);
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	cr_assert_not_null(ttrpc_server_adopt(srv, sv[1], &err));
	cr_assert_eq(opened, 1);
	close(sv[0]);
	ttrpc_server_free(srv);
	ev_loop_destroy(loop);
}

/* ---------------------------------------------------- asynchronous client */

struct async_state {
	int done, ok, deadline, unavailable;
	char last[64];
	struct ev_loop *loop;
	int want;
};

static void async_reply(const struct vm_error *st, const uint8_t *payload, size_t len, void *opaque)
{
	struct async_state *s = opaque;

	s->done++;
	if (st->code == VM_OK) {
		Vmtest__EchoReply *rep = vmtest__echo_reply__unpack(NULL, len, payload);

		cr_assert_not_null(rep);
		snprintf(s->last, sizeof(s->last), "%s", rep->text);
		vmtest__echo_reply__free_unpacked(rep, NULL);
		s->ok++;
	} else if (st->code == VM_DEADLINE_EXCEEDED) {
		s->deadline++;
	} else if (st->code == VM_UNAVAILABLE) {
		s->unavailable++;
	}
	if (s->done == s->want)
		ev_break(s->loop, EVBREAK_ALL);
}

static int async_closed;

static void async_on_close(struct ttrpc_conn *conn, void *opaque)
{
	async_closed++;
}

Test(ttrpc, async_client_same_loop)
{
	int fds_before = count_fds();
	struct tsrv t;
	struct async_state s = { 0 };
	struct ttrpc_conn *conn;
	Vmtest__EchoRequest req = VMTEST__ECHO_REQUEST__INIT;

	tsrv_setup(&t, NULL);
	s.loop = t.loop;
	conn = ttrpc_client_conn_new(t.loop, t.client_fd, async_on_close, NULL);
	t.client_fd = -1;
	req.text = "async";
	s.want = 101;
	for (int i = 0; i < 100; i++)
		cr_assert_eq(ttrpc_conn_call(conn, SVC, "Echo", &req.base, 0, async_reply, &s), 0);
	/* The async client's own deadline: the callback runs once, with DEADLINE_EXCEEDED. */
	cr_assert_eq(ttrpc_conn_call(conn, SVC, "Hold", &req.base, 10 * 1000 * 1000, async_reply, &s), 0);
	ev_run(t.loop, 0);
	cr_assert_eq(s.ok, 100);
	cr_assert_eq(s.deadline, 1);
	cr_assert_str_eq(s.last, "async");
	/* Pending calls complete with UNAVAILABLE when the connection closes. */
	s.want = s.done + 2;
	cr_assert_eq(ttrpc_conn_call(conn, SVC, "Hold", &req.base, 0, async_reply, &s), 0);
	cr_assert_eq(ttrpc_conn_call(conn, SVC, "Hold", &req.base, 0, async_reply, &s), 0);
	ev_run(t.loop, EVRUN_NOWAIT);
	ttrpc_conn_close(conn);
	cr_assert_eq(s.unavailable, 2);
	cr_assert_eq(async_closed, 1);
	ttrpc_server_free(t.srv);
	ev_loop_destroy(t.loop);
	cr_assert_eq(count_fds(), fds_before, "fd leak");
}

/* ------------------------------------------------- fd rule and listeners */

static void send_echo_frame(int fd, uint32_t sid, const char *text, bool pass_fd, const int *fds, size_t nfds)
{
	Vmtest__EchoRequest req = VMTEST__ECHO_REQUEST__INIT;
	struct iovec iov;

	req.text = (char *)text;
	req.pass_fd = pass_fd;
	iov.iov_base = ttrpc_build_request(sid, 0, SVC, "Echo", &req.base, 0, &iov.iov_len);
	cr_assert_eq(ttrpc_sock_send(fd, &iov, 1, fds, nfds), (ssize_t)iov.iov_len);
	free(iov.iov_base);
}

Test(ttrpc, fds_follow_their_frame_when_batched)
{
	int fds_before = count_fds();
	struct tsrv t;
	int a[2], b[2], spare[2], fd;
	uint32_t sid;
	int code;
	char msg[256], buf[8] = { 0 };

	tsrv_setup(&t, NULL);
	fd = t.client_fd;
	cr_assert_eq(pipe2(a, O_CLOEXEC), 0);
	cr_assert_eq(pipe2(b, O_CLOEXEC), 0);
	cr_assert_eq(pipe2(spare, O_CLOEXEC), 0);
	/* Queued before the server runs, so it reads several frames at once. */
	send_echo_frame(fd, 1, "A", true, &a[1], 1);
	send_echo_frame(fd, 3, "plain", false, NULL, 0);
	send_echo_frame(fd, 5, "B", true, &b[1], 1);
	send_echo_frame(fd, 7, "unused", false, &spare[1], 1);
	close(a[1]);
	close(b[1]);
	close(spare[1]);
	tsrv_start(&t);
	for (int i = 0; i < 4; i++) {
		cr_assert_eq(raw_response(fd, &sid, &code, msg, sizeof(msg)), 0);
		cr_assert_eq(code, 0, "stream %u: %s", sid, msg);
	}
	cr_assert_eq(read(a[0], buf, sizeof(buf)), 1);
	cr_assert_eq(buf[0], 'A');
	cr_assert_eq(read(a[0], buf, sizeof(buf)), 0);
	cr_assert_eq(read(b[0], buf, sizeof(buf)), 1);
	cr_assert_eq(buf[0], 'B');
	cr_assert_eq(read(b[0], buf, sizeof(buf)), 0);
	/* The fd nobody took was closed by the server. */
	cr_assert_eq(read(spare[0], buf, sizeof(buf)), 0);
	close(a[0]);
	close(b[0]);
	close(spare[0]);
	close(fd);
	tsrv_stop(&t);
	cr_assert_eq(count_fds(), fds_before, "fd leak");
}

Test(ttrpc, unix_listener_stale_live_and_mode)
{
	struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
	struct ttrpc_server *srv = ttrpc_server_new(loop);
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	char dir[] = "/tmp/ttrpc-listen.XXXXXX", path[128];
	struct ttrpc_listener *l;
	struct vm_error err = { 0 };
	struct stat st;
	int stale;

	cr_assert_not_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/s", dir);
	memcpy(sun.sun_path, path, strlen(path) + 1);
	/* A socket file nobody listens on: stale, replaced. */
	stale = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	cr_assert_eq(bind(stale, (struct sockaddr *)&sun, sizeof(sun)), 0);
	close(stale);
	l = ttrpc_server_listen_unix(srv, path, 0660, &err);
	cr_assert_not_null(l, "%s", err.message);
	cr_assert_eq(stat(path, &st), 0);
	cr_assert_eq(st.st_mode & 0777, 0660);
	ttrpc_listener_set_data(l, dir);
	cr_assert_eq(ttrpc_listener_get_data(l), dir);
	/* A live one is not stolen. */
	cr_assert_null(ttrpc_server_listen_unix(srv, path, 0600, &err));
	cr_assert_eq(err.code, VM_ALREADY_EXISTS);
	cr_assert(strstr(err.message, path), "%s", err.message);
	ttrpc_listener_close(l);
	cr_assert_eq(access(path, F_OK), -1);
	/* Not a socket: refused, left alone. */
	close(open(path, O_CREAT | O_WRONLY | O_CLOEXEC, 0600));
	cr_assert_null(ttrpc_server_listen_unix(srv, path, 0600, &err));
	cr_assert(strstr(err.message, "not a socket"), "%s", err.message);
	cr_assert_eq(access(path, F_OK), 0);
	unlink(path);
	rmdir(dir);
	ttrpc_server_free(srv);
	ev_loop_destroy(loop);
}

static void *inherited_client(void *arg)
{
	const char *path = arg;
	struct vm_error err = { 0 };
	struct ttrpc_client *cl = ttrpc_client_connect_unix(path, &err);
	Vmtest__EchoReply *rep = NULL;
	intptr_t ok;

	if (!cl)
		return NULL;
	ok = echo(cl, "Echo", "inherited", 0, &rep, 0, &err) == 0 && !strcmp(rep->text, "inherited");
	if (rep)
		protobuf_c_message_free_unpacked(&rep->base, NULL);
	ttrpc_client_free(cl);
	return (void *)ok;
}

static void stop_on_close(struct ttrpc_conn *conn, void *opaque)
{
	ev_break((struct ev_loop *)opaque, EVBREAK_ALL);
}

Test(ttrpc, inherited_listening_fd)
{
	struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
	struct ttrpc_server *srv = ttrpc_server_new(loop);
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	char dir[] = "/tmp/ttrpc-inherit.XXXXXX", path[128];
	struct vm_error err = { 0 };
	pthread_t th;
	void *ok = NULL;
	int fd, sv[2];

	ttrpc_server_add_method(srv, SVC, "Echo", &vmtest__echo_request__descriptor, h_echo, NULL);
	ttrpc_server_set_conn_callbacks(srv, NULL, stop_on_close, loop);
	/* Not listening: refused. */
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	cr_assert_null(ttrpc_server_listen_fd(srv, sv[0], &err));
	cr_assert(strstr(err.message, "not a listening socket"), "%s", err.message);
	close(sv[0]);
	close(sv[1]);
	cr_assert_not_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/s", dir);
	memcpy(sun.sun_path, path, strlen(path) + 1);
	fd = socket(AF_UNIX, SOCK_STREAM, 0);
	cr_assert_eq(bind(fd, (struct sockaddr *)&sun, sizeof(sun)), 0);
	cr_assert_eq(listen(fd, 8), 0);
	cr_assert_not_null(ttrpc_server_listen_fd(srv, fd, &err), "%s", err.message);
	cr_assert(fcntl(fd, F_GETFD) & FD_CLOEXEC);
	cr_assert_eq(pthread_create(&th, NULL, inherited_client, path), 0);
	ev_run(loop, 0); /* until the client's connection closes */
	pthread_join(th, &ok);
	cr_assert(ok, "call through the inherited socket failed");
	ttrpc_server_free(srv);
	ev_loop_destroy(loop);
	unlink(path);
	rmdir(dir);
}

Test(ttrpc, vsock_listener_opens_or_names_the_port)
{
	struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
	struct ttrpc_server *srv = ttrpc_server_new(loop);
	struct vm_error err = { 0 };
	/* No vsock loopback here: either the kernel lets us listen (then the
	 * listener must be a working AF_VSOCK one) or the error names the port. */
	struct ttrpc_listener *l = ttrpc_server_listen_vsock(srv, (uint32_t)-1 /* VMADDR_CID_ANY */, 47123, &err);

	if (l) {
		ttrpc_listener_close(l);
	} else {
		cr_assert(strstr(err.message, "47123"), "%s", err.message);
		cr_assert_eq(err.code, VM_UNAVAILABLE);
	}
	ttrpc_server_free(srv);
	ev_loop_destroy(loop);
}

Test(ttrpc, drain_callback_after_backlog)
{
	struct tsrv t;
	struct ttrpc_client *cl;
	Vmtest__EchoReply *rep = NULL;
	Vmtest__Stats *st;
	struct vm_error err = { 0 };

	tsrv_setup(&t, NULL);
	tsrv_start(&t);
	cl = tsrv_client(&t);
	/* 2 MiB cannot go into the socket at once: output backs up, then drains. */
	cr_assert_eq(echo(cl, "BigDrain", "", 2048, &rep, 0, &err), 0, "%s", err.message);
	cr_assert_eq(strlen(rep->text), 2048 * 1024);
	protobuf_c_message_free_unpacked(&rep->base, NULL);
	st = stats(cl);
	cr_assert_eq(st->drains, 1);
	protobuf_c_message_free_unpacked(&st->base, NULL);
	ttrpc_client_free(cl);
	tsrv_stop(&t);
}

Test(ttrpc, accept_pauses_on_fd_exhaustion)
{
	enum { N = 8, FILL = 4096 };
	struct tsrv t;
	struct rlimit old, lim;
	struct ttrpc_client *cl;
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	struct vm_error err = { 0 };
	Vmtest__EchoReply *rep = NULL;
	Vmtest__Stats *st;
	int socks[N], *fill = calloc(FILL, sizeof(int)), nfill = 0, maxfd = 0, logfd, saved_err;
	char logpath[] = "/tmp/ttrpc-emfile.XXXXXX", buf[4096] = { 0 };

	tsrv_setup(&t, NULL);
	tsrv_listen(&t);
	tsrv_start(&t);
	cl = tsrv_client(&t);
	memcpy(sun.sun_path, t.path, strlen(t.path) + 1);
	/* The server's log goes to a file we can read back. */
	logfd = mkostemp(logpath, O_CLOEXEC);
	cr_assert_geq(logfd, 0);
	saved_err = dup(2);
	dup2(logfd, 2);
	for (int i = 0; i < N; i++) {
		socks[i] = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		maxfd = MAX(maxfd, socks[i]);
	}
	/* No free fd left for the server's accept(). */
	cr_assert_eq(getrlimit(RLIMIT_NOFILE, &old), 0);
	lim = old;
	lim.rlim_cur = (rlim_t)maxfd + 1;
	cr_assert_eq(setrlimit(RLIMIT_NOFILE, &lim), 0);
	while (nfill < FILL && (fill[nfill] = dup(0)) >= 0)
		nfill++;
	for (int i = 0; i < N; i++)
		cr_assert_eq(connect(socks[i], (struct sockaddr *)&sun, sizeof(sun)), 0, "%s", strerror(errno));
	/* Wait for the server to notice, then give the fds back. */
	for (;;) {
		ssize_t n = pread(logfd, buf, sizeof(buf) - 1, 0);

		if (n > 0 && strstr(buf, "pausing accept"))
			break;
		usleep(10000);
	}
	while (nfill > 0)
		close(fill[--nfill]);
	cr_assert_eq(setrlimit(RLIMIT_NOFILE, &old), 0);
	dup2(saved_err, 2);
	close(saved_err);
	/* Every queued connection is accepted once fds are available again. */
	for (;;) {
		st = stats(cl);
		if (st->conns == N + 1)
			break;
		protobuf_c_message_free_unpacked(&st->base, NULL);
		usleep(10000);
	}
	protobuf_c_message_free_unpacked(&st->base, NULL);
	cr_assert_eq(echo(cl, "Echo", "alive", 0, &rep, 0, &err), 0, "%s", err.message);
	cr_assert_str_eq(rep->text, "alive");
	protobuf_c_message_free_unpacked(&rep->base, NULL);
	for (int i = 0; i < N; i++)
		close(socks[i]);
	close(logfd);
	unlink(logpath);
	free(fill);
	ttrpc_client_free(cl);
	tsrv_stop(&t);
}

Test(ttrpc, oversize_response_becomes_resource_exhausted)
{
	struct tsrv t;
	struct ttrpc_client *cl;
	Vmtest__EchoReply *rep = NULL;
	struct vm_error err = { 0 };

	tsrv_setup(&t, NULL);
	tsrv_start(&t);
	cl = tsrv_client(&t);
	cr_assert_eq(echo(cl, "Big", "", 4097, &rep, 0, &err), -1);
	cr_assert_eq(err.code, VM_RESOURCE_EXHAUSTED, "%s", err.message);
	cr_assert_eq(echo(cl, "Big", "", 4000, &rep, 0, &err), 0, "%s", err.message);
	protobuf_c_message_free_unpacked(&rep->base, NULL);
	ttrpc_client_free(cl);
	tsrv_stop(&t);
}

/* The frame protobuf-c writes for an OK Response carrying @payload on @sid. */
static uint8_t *expected_frame(uint32_t sid, const ProtobufCMessage *payload, size_t *len)
{
	Ttrpc__Response r = TTRPC__RESPONSE__INIT;
	Ttrpc__Status ok = TTRPC__STATUS__INIT;
	size_t blen;
	uint8_t *buf;

	r.status = &ok;
	r.payload.data = ttrpc_pack(payload, &r.payload.len);
	blen = ttrpc__response__get_packed_size(&r);
	buf = malloc(TTRPC_HEADER_SIZE + blen);
	ttrpc_header_encode(
		&(struct ttrpc_header){ .length = (uint32_t)blen, .stream_id = sid, .type = TTRPC_TYPE_RESPONSE }, buf);
	ttrpc__response__pack(&r, buf + TTRPC_HEADER_SIZE);
	free(r.payload.data);
	*len = TTRPC_HEADER_SIZE + blen;
	return buf;
}

/* Read the next frame and compare it byte for byte with @want. */
static void expect_frame(int fd, const uint8_t *want, size_t len, const char *what, uint32_t n)
{
	uint8_t *got = malloc(len);

	cr_assert_eq(read_exact(fd, got, len), 0, "%s %u: connection closed", what, n);
	cr_assert(memcmp(got, want, len) == 0, "%s %u: the frame differs from protobuf-c's", what, n);
	free(got);
}

/* Answers of every size around the varint steps of their length prefixes
 * (127/128, 16383/16384, 2^21), a nested repeated message with negative
 * varints, and answers batched into one output chunk: each frame is the
 * bytes protobuf-c packs for that Response, and decodes as the answer. */
Test(ttrpc, replies_are_protobuf_c_bytes)
{
	static const uint32_t sizes[] = { 0,	 1,	120,   121,	122,	 123,	  124,	   125,	    126,
					  127,	 128,	129,   16370,	16375,	 16376,	  16377,   16378,   16379,
					  16380, 16381, 16384, 2097140, 2097143, 2097144, 2097145, 2097146, 2097152 };
	static const uint32_t lists[] = { 0, 1, 2, 50, 1000 };
	struct tsrv t;
	int fd;
	uint32_t sid = 1;

	tsrv_setup(&t, NULL);
	tsrv_start(&t);
	fd = t.client_fd;
	for (size_t i = 0; i < ARRAY_SIZE(sizes); i++, sid += 2) {
		Vmtest__EchoRequest req = VMTEST__ECHO_REQUEST__INIT;
		Vmtest__EchoReply rep = VMTEST__ECHO_REPLY__INIT;
		size_t len;
		uint8_t *want;

		req.count = sizes[i];
		cr_assert_eq(raw_request(fd, sid, "Sized", &req.base, 0), 0);
		sized_reply(sizes[i], &rep);
		want = expected_frame(sid, &rep.base, &len);
		expect_frame(fd, want, len, "Sized", sizes[i]);
		free(want);
		free(rep.text);
	}
	for (size_t i = 0; i < ARRAY_SIZE(lists); i++, sid += 2) {
		Vmtest__EchoRequest req = VMTEST__ECHO_REQUEST__INIT;
		struct vm_list l;
		size_t len;
		uint8_t *want;

		req.count = lists[i];
		cr_assert_eq(raw_request(fd, sid, "List", &req.base, 0), 0);
		vm_list_fill(&l, lists[i]);
		want = expected_frame(sid, &l.resp.base, &len);
		expect_frame(fd, want, len, "List", lists[i]);
		free(want);
		vm_list_release(&l);
	}
	/* a batch: all requests first, then every answer in order */
	for (uint32_t k = 0; k < 40; k++) {
		Vmtest__EchoRequest req = VMTEST__ECHO_REQUEST__INIT;

		req.count = k * 7;
		cr_assert_eq(raw_request(fd, sid + 2 * k, "Sized", &req.base, 0), 0);
	}
	for (uint32_t k = 0; k < 40; k++) {
		Vmtest__EchoReply rep = VMTEST__ECHO_REPLY__INIT;
		size_t len;
		uint8_t *want;

		sized_reply(k * 7, &rep);
		want = expected_frame(sid + 2 * k, &rep.base, &len);
		expect_frame(fd, want, len, "batched Sized", k * 7);
		free(want);
		free(rep.text);
	}
	tsrv_stop(&t);
	close(fd);
}

/* An fd-carrying frame much larger than one read: the fds arrive with its
 * first chunk and must still reach it, in both directions. */
Test(ttrpc, fd_with_large_frames)
{
	int fds_before = count_fds();
	struct tsrv t;
	struct ttrpc_client *cl;
	Vmtest__EchoRequest req = VMTEST__ECHO_REQUEST__INIT;
	Vmtest__EchoReply *rep = NULL;
	struct vm_error err = { 0 };
	size_t big = 200 * 1024;
	char *text = malloc(big + 1), *got = malloc(big + 1);
	int p[2], rfds[2];
	size_t nrfds = 2;
	char buf[8] = { 0 };

	memset(text, 'q', big);
	text[big] = 0;
	tsrv_setup(&t, NULL);
	tsrv_start(&t);
	cl = tsrv_client(&t);
	cr_assert_eq(pipe2(p, O_CLOEXEC), 0);
	/* The handler writes the text into the pipe before replying: make room. */
	cr_assert_geq(fcntl(p[1], F_SETPIPE_SZ, 512 * 1024), (int)big);
	req.text = text;
	req.pass_fd = true;
	cr_assert_eq(ttrpc_client_call(cl, SVC, "Echo", &req.base, &p[1], 1, &vmtest__echo_reply__descriptor,
				       (ProtobufCMessage **)&rep, rfds, &nrfds, 0, &err),
		     0, "%s", err.message);
	close(p[1]);
	cr_assert_eq(read_exact(p[0], got, big), 0);
	cr_assert_eq(memcmp(got, text, big), 0);
	close(p[0]);
	cr_assert_eq(strlen(rep->text), big);
	cr_assert_eq(nrfds, 1);
	cr_assert_eq(read_exact(rfds[0], buf, 8), 0);
	cr_assert_arr_eq(buf, "reply-fd", 8);
	close(rfds[0]);
	protobuf_c_message_free_unpacked(&rep->base, NULL);
	free(text);
	free(got);
	ttrpc_client_free(cl);
	tsrv_stop(&t);
	cr_assert_eq(count_fds(), fds_before, "fd leak");
}

/* ------------------------------------ blocking client against a raw server */

static void raw_server_response(int fd, uint32_t sid, int code, const char *msg)
{
	Ttrpc__Response r = TTRPC__RESPONSE__INIT;
	Ttrpc__Status st = TTRPC__STATUS__INIT;
	size_t len;
	uint8_t *buf;

	st.code = code;
	st.message = (char *)msg;
	r.status = &st;
	buf = ttrpc_pack(&r.base, &len);
	cr_assert_eq(raw_send(fd, sid, TTRPC_TYPE_RESPONSE, 0, buf, len), 0);
	free(buf);
}

Test(ttrpc, client_stream_ends_and_abandon)
{
	Vmtest__EchoRequest req = VMTEST__ECHO_REQUEST__INIT;
	struct ttrpc_client *cl;
	struct vm_error err = { 0 };
	uint8_t *data;
	size_t len;
	int sv[2];
	int64_t a, b, c;

	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	cl = ttrpc_client_from_fd(sv[0]);
	a = ttrpc_client_stream_open(cl, SVC, "Stream", &req.base, TTRPC_FLAG_REMOTE_CLOSED, 0, &err);
	b = ttrpc_client_stream_open(cl, SVC, "Stream", &req.base, TTRPC_FLAG_REMOTE_CLOSED, 0, &err);
	c = ttrpc_client_stream_open(cl, SVC, "Stream", &req.base, TTRPC_FLAG_REMOTE_CLOSED, 0, &err);
	cr_assert(a == 1 && b == 3 && c == 5);
	/* a: ends with a Data frame flagged remote-closed, then a Response. */
	cr_assert_eq(raw_send(sv[1], 1, TTRPC_TYPE_DATA, 0, "x", 1), 0);
	cr_assert_eq(raw_send(sv[1], 3, TTRPC_TYPE_DATA, 0, "dropped", 7), 0);
	cr_assert_eq(raw_send(sv[1], 1, TTRPC_TYPE_DATA, TTRPC_FLAG_REMOTE_CLOSED, "y", 1), 0);
	cr_assert_eq(raw_send(sv[1], 99, TTRPC_TYPE_DATA, 0, "nobody's", 8), 0);
	raw_server_response(sv[1], 1, 0, "");
	raw_server_response(sv[1], 5, VM_NOT_FOUND, "vm9 not found");
	cr_assert_eq(ttrpc_client_stream_recv(cl, 1, &data, &len, -1, &err), 1, "%s", err.message);
	cr_assert(len == 1 && data[0] == 'x');
	free(data);
	ttrpc_client_stream_abandon(cl, 3);
	cr_assert_eq(ttrpc_client_stream_recv(cl, 1, &data, &len, -1, &err), 1, "%s", err.message);
	cr_assert(len == 1 && data[0] == 'y');
	free(data);
	cr_assert_eq(ttrpc_client_stream_recv(cl, 1, &data, &len, -1, &err), 0, "%s", err.message);
	cr_assert_eq(ttrpc_client_stream_recv(cl, 3, &data, &len, 0, &err), -1);
	cr_assert_eq(err.code, VM_INVALID_ARGUMENT);
	cr_assert_eq(ttrpc_client_stream_recv(cl, 5, &data, &len, -1, &err), -1);
	cr_assert_eq(err.code, VM_NOT_FOUND);
	cr_assert_str_eq(err.message, "vm9 not found");
	/* Nothing more: a poll times out with DEADLINE_EXCEEDED on an open stream. */
	c = ttrpc_client_stream_open(cl, SVC, "Stream", &req.base, TTRPC_FLAG_REMOTE_CLOSED, 0, &err);
	cr_assert_eq(ttrpc_client_stream_recv(cl, (uint32_t)c, &data, &len, 0, &err), -1);
	cr_assert_eq(err.code, VM_DEADLINE_EXCEEDED);
	/* A corrupt header breaks the client for good. */
	cr_assert_eq(write_all(sv[1], "\xff\xff\xff\xff\0\0\0\7\2\0", 10), 0);
	cr_assert_eq(ttrpc_client_stream_recv(cl, (uint32_t)c, &data, &len, -1, &err), -1);
	cr_assert(strstr(err.message, "corrupt"), "%s", err.message);
	cr_assert_eq(echo(cl, "Echo", "", 0, NULL, 0, &err), -1);
	cr_assert(strstr(err.message, "corrupt"), "%s", err.message);
	ttrpc_client_free(cl);
	close(sv[1]);
}

static void refuse_open(struct ttrpc_conn *conn, void *opaque)
{
	ttrpc_conn_close(conn);
}

static void count_close(struct ttrpc_conn *conn, void *opaque)
{
	(*(int *)opaque)++;
}

Test(ttrpc, on_open_may_refuse)
{
	int fds_before = count_fds();
	struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
	struct ttrpc_server *srv = ttrpc_server_new(loop);
	struct vm_error err = { 0 };
	int sv[2], closed = 0;
	char c;

	ttrpc_server_set_conn_callbacks(srv, refuse_open, count_close, &closed);
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	cr_assert_null(ttrpc_server_adopt(srv, sv[1], &err));
	cr_assert_eq(err.code, VM_PERMISSION_DENIED);
	cr_assert_eq(closed, 1);
	cr_assert_eq(ttrpc_server_conn_count(srv), 0);
	cr_assert_eq(read(sv[0], &c, 1), 0);
	close(sv[0]);
	ttrpc_server_free(srv);
	ev_loop_destroy(loop);
	cr_assert_eq(count_fds(), fds_before);
}
