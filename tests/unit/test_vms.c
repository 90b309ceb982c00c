/* test_vms.c - VirtualMachineService (server/vms.c) on its own, with no VM
 * core: a real listening Unix socket handed to vms_listen(), real ttrpc
 * client connections on the same loop, and a recorder in place of the
 * core's struct vms_events. Every guest report reaches its callback,
 * guest text is sanitized, bad guest input is refused with a status that
 * names the field and never reaches the core, the agent deadline
 * reports failed(VMS_AGENT_TIMEOUT), and only the boot's first connection
 * (the agent's) is served: a payload's own connection, while the agent's
 * is open or after it closed, is refused and changes nothing.
 */
#include "config.h"

#include <criterion/criterion.h>
#include <ev.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "lib/ttrpc.h"
#include "lib/util.h"
#include "protos/virtmgr.pb-c.h"
#include "server/vms.h"
#include "tests/unit/test_util.h"

struct recorder {
	char log[2048];
	unsigned connected, failed;
	enum vms_failure why;
};

/* Append to the log of the recorder @r (a struct recorder *, or a void * to one). */
#define note(r, ...) test_appendf(((struct recorder *)(r))->log, sizeof(((struct recorder *)(r))->log), __VA_ARGS__)

static void ev_started(void *o)
{
	note(o, "started ");
}

static void ev_ready(void *o)
{
	note(o, "ready ");
}

static void ev_finished(void *o, int code)
{
	note(o, "finished(%d) ", code);
}

static void ev_error(void *o, int code, const char *msg)
{
	note(o, "error(%d,%s) ", code, msg);
}

static void ev_log(void *o, uint64_t ts, uint32_t prio, const char *source, const char *msg)
{
	note(o, "log(%llu,%u,%s,%s) ", (unsigned long long)ts, prio, source, msg);
}

static void ev_connected(void *o)
{
	((struct recorder *)o)->connected++;
}

static void ev_failed(void *o, enum vms_failure why, const char *msg)
{
	struct recorder *r = o;

	r->failed++;
	r->why = why;
	note(r, "failed(%s) ", msg);
}

static const struct vms_events events = {
	.started = ev_started,
	.ready = ev_ready,
	.finished = ev_finished,
	.error = ev_error,
	.log = ev_log,
	.connected = ev_connected,
	.failed = ev_failed,
};

struct fixture {
	struct ev_loop *loop;
	char dir[64];
	char *sock;
	struct vms_server *s;
	struct vms_vm *v;
	struct recorder r;
};

static void setup(struct fixture *f, uint32_t agent_timeout_ms, bool default_image)
{
	static char *args[] = { "/bin/echo", "hi" };
	Virtmgr__V1__VmConfig c = VIRTMGR__V1__VM_CONFIG__INIT;
	struct vms_identity id = { .id = "0123456789ab", .name = "t", .cid = 2049 };
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct vm_error err = { 0 };
	struct marker_key key = { { 0 } };
	const char *path = NULL;
	int lfd;

	memset(f, 0, sizeof(*f));
	snprintf(f->dir, sizeof(f->dir), "/tmp/test_vms.XXXXXX");
	cr_assert_not_null(mkdtemp(f->dir));
	id.run_dir = f->dir;
	c.payload_args = args;
	c.n_payload_args = 2;
	f->loop = ev_loop_new(0);
	f->s = vms_server_new(f->loop, agent_timeout_ms);
	f->v = vms_vm_new(f->s, &id, &c, default_image, &events, &f->r);
	cr_assert_eq(vms_prepare(f->v, &key, &path, &err), 0, "%s", err.message);
	cr_assert_eq(access(path, R_OK), 0, "no %s", path);

	f->sock = xasprintf("%s/vms.sock", f->dir);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", f->sock);
	lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	cr_assert_geq(lfd, 0);
	cr_assert_eq(bind(lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	cr_assert_eq(listen(lfd, 8), 0);
	cr_assert_eq(vms_listen(f->v, lfd, &err), 0, "%s", err.message);
}

static void teardown(struct fixture *f)
{
	cleanup_free char *dtb = xasprintf("%s/config.dtb", f->dir);

	vms_vm_free(f->v);
	vms_server_free(f->s);
	ev_loop_destroy(f->loop);
	unlink(f->sock);
	unlink(dtb);
	rmdir(f->dir);
	free(f->sock);
}

static struct ttrpc_conn *agent_connect(struct fixture *f)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", f->sock);
	cr_assert_eq(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	fd_set_nonblock(fd, true);
	return ttrpc_client_conn_new(f->loop, fd, NULL, NULL);
}

struct reply {
	bool done;
	int code;
	char message[VM_ERROR_MSG_MAX];
};

static void reply_cb(const struct vm_error *status, const uint8_t *payload, size_t len, void *opaque)
{
	struct reply *r = opaque;

	r->done = true;
	r->code = status->code;
	snprintf(r->message, sizeof(r->message), "%s", status->message);
}

static void limit_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	*(bool *)w->data = true;
	ev_break(loop, EVBREAK_ALL);
}

/* Run the loop until *@flag or @secs pass (a bound, not a measurement). */
static void run_until(struct fixture *f, const bool *flag, double secs)
{
	bool expired = false;
	ev_timer limit;

	ev_timer_init(&limit, limit_cb, secs, 0);
	limit.data = &expired;
	ev_timer_start(f->loop, &limit);
	while (!*flag && !expired)
		ev_run(f->loop, EVRUN_ONCE);
	ev_timer_stop(f->loop, &limit);
}

static struct reply call(struct fixture *f, struct ttrpc_conn *conn, const char *method, const ProtobufCMessage *req)
{
	struct reply r = { 0 };

	cr_assert_eq(ttrpc_conn_call(conn, VMS_SERVICE, method, req, 0, reply_cb, &r), 0);
	run_until(f, &r.done, 10);
	cr_assert(r.done, "%s: no reply", method);
	return r;
}

Test(vms, every_report_reaches_its_callback)
{
	Virtmgr__V1__Empty empty = VIRTMGR__V1__EMPTY__INIT;
	Virtmgr__V1__NotifyErrorRequest er = VIRTMGR__V1__NOTIFY_ERROR_REQUEST__INIT;
	Virtmgr__V1__NotifyPayloadFinishedRequest fin = VIRTMGR__V1__NOTIFY_PAYLOAD_FINISHED_REQUEST__INIT;
	Virtmgr__V1__ForwardLogRequest lr = VIRTMGR__V1__FORWARD_LOG_REQUEST__INIT;
	Virtmgr__V1__LogRecord rec = VIRTMGR__V1__LOG_RECORD__INIT, *recs[] = { &rec };
	struct fixture f;
	struct ttrpc_conn *conn;

	setup(&f, 0, true);
	conn = agent_connect(&f);
	cr_assert_eq(call(&f, conn, "NotifyPayloadStarted", &empty.base).code, 0);
	cr_assert_eq(f.r.connected, 1);
	cr_assert_eq(call(&f, conn, "NotifyPayloadReady", &empty.base).code, 0);
	rec.timestamp_ns = 42;
	rec.priority = 6;
	rec.source = "app";
	rec.message = "line\x1b[31m";
	lr.records = recs;
	lr.n_records = 1;
	cr_assert_eq(call(&f, conn, "ForwardLog", &lr.base).code, 0);
	er.code = 3;
	er.message = "bad\nthing";
	cr_assert_eq(call(&f, conn, "NotifyError", &er.base).code, 0);
	fin.exit_code = 7;
	cr_assert_eq(call(&f, conn, "NotifyPayloadFinished", &fin.base).code, 0);
	/* control characters from the guest never reach the core */
	cr_assert_str_eq(f.r.log, "started ready log(42,6,app,line?[31m) error(3,bad?thing) finished(7) ");
	cr_assert_eq(f.r.failed, 0);
	ttrpc_conn_close(conn);
	teardown(&f);
}

Test(vms, bad_guest_input_is_refused)
{
	Virtmgr__V1__NotifyPayloadFinishedRequest fin = VIRTMGR__V1__NOTIFY_PAYLOAD_FINISHED_REQUEST__INIT;
	Virtmgr__V1__ForwardLogRequest lr = VIRTMGR__V1__FORWARD_LOG_REQUEST__INIT;
	Virtmgr__V1__LogRecord rec = VIRTMGR__V1__LOG_RECORD__INIT;
	Virtmgr__V1__LogRecord **recs = xcalloc(VMS_MAX_LOG_RECORDS + 1, sizeof(*recs));
	struct fixture f;
	struct ttrpc_conn *conn;
	struct reply r;

	setup(&f, 0, false);
	conn = agent_connect(&f);
	fin.exit_code = 256;
	r = call(&f, conn, "NotifyPayloadFinished", &fin.base);
	cr_assert_eq(r.code, VM_INVALID_ARGUMENT, "%d %s", r.code, r.message);
	cr_assert(strstr(r.message, "exit_code: 256"), "%s", r.message);
	fin.exit_code = -1;
	cr_assert_eq(call(&f, conn, "NotifyPayloadFinished", &fin.base).code, VM_INVALID_ARGUMENT);

	rec.message = "x";
	for (size_t i = 0; i <= VMS_MAX_LOG_RECORDS; i++)
		recs[i] = &rec;
	lr.records = recs;
	lr.n_records = VMS_MAX_LOG_RECORDS + 1;
	r = call(&f, conn, "ForwardLog", &lr.base);
	cr_assert_eq(r.code, VM_RESOURCE_EXHAUSTED, "%d %s", r.code, r.message);
	cr_assert(strstr(r.message, "records"), "%s", r.message);
	/* none of it reached the core */
	cr_assert_str_eq(f.r.log, "");
	free(recs);
	ttrpc_conn_close(conn);
	teardown(&f);
}

Test(vms, a_closed_vm_refuses_reports)
{
	Virtmgr__V1__Empty empty = VIRTMGR__V1__EMPTY__INIT;
	struct fixture f;
	struct ttrpc_conn *conn;
	struct reply r;

	setup(&f, 0, false);
	conn = agent_connect(&f);
	cr_assert_eq(call(&f, conn, "NotifyPayloadStarted", &empty.base).code, 0);
	vms_close(f.v);
	r = call(&f, conn, "NotifyPayloadReady", &empty.base);
	cr_assert_neq(r.code, 0);
	cr_assert_str_eq(f.r.log, "started ");
	teardown(&f);
}

/* What a payload sees from its own connection: the connection closes. */
static struct reply call_refused(struct fixture *f, const char *method, const ProtobufCMessage *req)
{
	struct ttrpc_conn *conn = agent_connect(f);
	struct reply r = { 0 };

	if (ttrpc_conn_call(conn, VMS_SERVICE, method, req, 0, reply_cb, &r) == 0)
		run_until(f, &r.done, 10);
	if (!r.done)
		ttrpc_conn_close(conn);
	return r;
}

Test(vms, one_agent_connection_per_boot)
{
	Virtmgr__V1__Empty empty = VIRTMGR__V1__EMPTY__INIT;
	Virtmgr__V1__NotifyPayloadFinishedRequest fin = VIRTMGR__V1__NOTIFY_PAYLOAD_FINISHED_REQUEST__INIT;
	Virtmgr__V1__NotifyErrorRequest er = VIRTMGR__V1__NOTIFY_ERROR_REQUEST__INIT;
	struct fixture f;
	struct ttrpc_conn *agent;
	struct reply r;
	bool never = false;

	setup(&f, 0, true);
	agent = agent_connect(&f);
	cr_assert_eq(call(&f, agent, "NotifyPayloadStarted", &empty.base).code, 0);
	cr_assert_eq(f.r.connected, 1);

	/* a second connection while the agent's is open */
	fin.exit_code = 0;
	r = call_refused(&f, "NotifyPayloadFinished", &fin.base);
	cr_assert(!r.done || r.code != 0, "a second connection was served");
	er.code = 1;
	er.message = "x";
	r = call_refused(&f, "NotifyError", &er.base);
	cr_assert(!r.done || r.code != 0, "a third connection was served");
	cr_assert_eq(vms_refused(f.v), 2);
	cr_assert_eq(f.r.connected, 1);
	cr_assert(
		strstr(f.r.log,
		       "virtmgrd,VirtualMachineService: refused connection #1: the agent's connection of this boot is open"),
		"%s", f.r.log);

	/* the agent's connection still works */
	cr_assert_eq(call(&f, agent, "NotifyPayloadReady", &empty.base).code, 0);

	/* after it closed: nobody takes its place */
	ttrpc_conn_close(agent);
	run_until(&f, &never, 0.2);
	fin.exit_code = 0;
	r = call_refused(&f, "NotifyPayloadFinished", &fin.base);
	cr_assert(!r.done || r.code != 0, "a connection after the agent's was served");
	cr_assert_eq(vms_refused(f.v), 3);
	cr_assert(strstr(f.r.log, "refused connection #3: the agent's connection of this boot was closed"), "%s",
		  f.r.log);
	/* no report but the agent's reached the core */
	cr_assert_null(strstr(f.r.log, "finished"), "%s", f.r.log);
	cr_assert_null(strstr(f.r.log, "error("), "%s", f.r.log);
	cr_assert(!strncmp(f.r.log, "started ", 8) && strstr(f.r.log, " ready "), "%s", f.r.log);
	teardown(&f);
}

Test(vms, agent_deadline_reports_failed)
{
	struct fixture f;
	bool never = false;

	setup(&f, 200, true);
	run_until(&f, &never, 2);
	cr_assert_eq(f.r.failed, 1);
	cr_assert_eq(f.r.why, VMS_AGENT_TIMEOUT);
	cr_assert(strstr(f.r.log, "did not connect"), "%s", f.r.log);
	teardown(&f);
}

Test(vms, no_deadline_without_the_default_image)
{
	struct fixture f;
	bool never = false;

	setup(&f, 200, false);
	run_until(&f, &never, 0.6);
	cr_assert_eq(f.r.failed, 0);
	teardown(&f);
}
