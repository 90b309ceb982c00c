/* test_agent_service.c - the real vmagent binary (--no-pid1) against a
 * VirtualMachineService served by this test on a Unix socket: its reports
 * arrive in order (Started, Ready, Finished with the payload's status),
 * queued reports survive a host that starts listening late, and a malformed
 * configuration becomes NotifyError(PAYLOAD_INVALID_CONFIG) naming the
 * property; GetGuestInfo answers over --agent-socket.
 */
#include "config.h"

#include <criterion/criterion.h>
#include <ev.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lib/ttrpc.h"
#include "protos/virtmgr.pb-c.h"
#include "server/fdtconfig.h"

#define VMS "virtmgr.v1.VirtualMachineService"

struct recorder {
	char log[1024];
	bool finished, error;
	struct ev_loop *loop;
};

static void note(struct recorder *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void note(struct recorder *r, const char *fmt, ...)
{
	size_t n = strlen(r->log);
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(r->log + n, sizeof(r->log) - n, fmt, ap);
	va_end(ap);
}

static void reply(struct ttrpc_call *call)
{
	Virtmgr__V1__Empty e = VIRTMGR__V1__EMPTY__INIT;

	ttrpc_call_reply(call, &e.base, NULL, 0);
}

static void on_started(struct ttrpc_call *call, const ProtobufCMessage *m, void *o)
{
	note(o, "started ");
	reply(call);
}

static void on_ready(struct ttrpc_call *call, const ProtobufCMessage *m, void *o)
{
	note(o, "ready ");
	reply(call);
}

static void on_finished(struct ttrpc_call *call, const ProtobufCMessage *m, void *o)
{
	const Virtmgr__V1__NotifyPayloadFinishedRequest *req = (const void *)m;
	struct recorder *r = o;

	note(r, "finished(%d,%d) ", req->exit_code, req->signal);
	r->finished = true;
	reply(call);
}

static void on_error(struct ttrpc_call *call, const ProtobufCMessage *m, void *o)
{
	const Virtmgr__V1__NotifyErrorRequest *req = (const void *)m;
	struct recorder *r = o;

	note(r, "error(%d,%s) ", req->code, req->message);
	r->error = true;
	reply(call);
}

static void on_log(struct ttrpc_call *call, const ProtobufCMessage *m, void *o)
{
	reply(call);
}

static struct ttrpc_server *vms_server(struct ev_loop *loop, struct recorder *r)
{
	struct ttrpc_server *s = ttrpc_server_new(loop);

	ttrpc_server_add_method(s, VMS, "NotifyPayloadStarted", &virtmgr__v1__empty__descriptor, on_started, r);
	ttrpc_server_add_method(s, VMS, "NotifyPayloadReady", &virtmgr__v1__empty__descriptor, on_ready, r);
	ttrpc_server_add_method(s, VMS, "NotifyPayloadFinished",
				&virtmgr__v1__notify_payload_finished_request__descriptor, on_finished, r);
	ttrpc_server_add_method(s, VMS, "NotifyError", &virtmgr__v1__notify_error_request__descriptor, on_error, r);
	ttrpc_server_add_method(s, VMS, "ForwardLog", &virtmgr__v1__forward_log_request__descriptor, on_log, r);
	return s;
}

static char *agent_path(void)
{
	const char *b = getenv("top_builddir");

	return xasprintf("%s/guest/vmagent/vmagent", b && *b ? b : ".");
}

static pid_t spawn(char *const argv[])
{
	pid_t pid = fork();

	cr_assert_geq(pid, 0);
	if (pid == 0) {
		execv(argv[0], argv);
		_exit(127);
	}
	return pid;
}

static void idle_stop(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct recorder *r = w->data;

	if (r->finished || r->error)
		ev_break(loop, EVBREAK_ALL);
}

static void limit_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	ev_break(loop, EVBREAK_ALL);
}

/* Run the loop until a Finished or an Error arrived, or 60 s (a bound, not a measurement). */
static void run_until_done(struct ev_loop *loop, struct recorder *r)
{
	ev_timer poll_t, limit;

	ev_timer_init(&poll_t, idle_stop, 0.05, 0.05);
	poll_t.data = r;
	ev_timer_start(loop, &poll_t);
	ev_timer_init(&limit, limit_cb, 60, 0);
	ev_timer_start(loop, &limit);
	ev_run(loop, 0);
	ev_timer_stop(loop, &poll_t);
	ev_timer_stop(loop, &limit);
	/* let the last reply leave */
	ev_run(loop, EVRUN_NOWAIT);
}

static int wait_exit(pid_t pid)
{
	int st;

	cr_assert_eq(waitpid(pid, &st, 0), pid);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

Test(agent_service, reports_in_order)
{
	struct ev_loop *loop = ev_loop_new(0);
	struct recorder r = { .loop = loop };
	struct ttrpc_server *srv = vms_server(loop, &r);
	char dir[] = "/tmp/agent-svc.XXXXXX";
	cleanup_free char *sock = NULL, *agent = agent_path();
	struct vm_error err = { 0 };
	pid_t pid;

	cr_assert_not_null(mkdtemp(dir));
	sock = xasprintf("%s/vms.sock", dir);
	cr_assert_not_null(ttrpc_server_listen_unix(srv, sock, 0600, &err), "%s", err.message);
	{
		char *argv[] = { agent, "--no-pid1", "--host-socket", sock, "--config", "/nonexistent", "--",
				 "/bin/sh", "-c", "echo >&$VIRTMGR_READY_FD; exit 7", NULL };

		pid = spawn(argv);
	}
	run_until_done(loop, &r);
	cr_assert(r.finished, "no Finished report: %s", r.log);
	cr_assert_str_eq(r.log, "started ready finished(7,0) ");
	cr_assert_eq(wait_exit(pid), 7, "vmagent --no-pid1 exits with the payload's status");
	ttrpc_server_free(srv);
	ev_loop_destroy(loop);
	unlink(sock);
	rmdir(dir);
}

Test(agent_service, killed_payload_and_late_host)
{
	struct ev_loop *loop = ev_loop_new(0);
	struct recorder r = { .loop = loop };
	struct ttrpc_server *srv = vms_server(loop, &r);
	char dir[] = "/tmp/agent-svc.XXXXXX";
	cleanup_free char *sock = NULL, *agent = agent_path();
	struct vm_error err = { 0 };
	pid_t pid;

	cr_assert_not_null(mkdtemp(dir));
	sock = xasprintf("%s/vms.sock", dir);
	{
		char *argv[] = { agent, "--no-pid1", "--host-socket", sock, "--config", "/nonexistent", "--",
				 "/bin/sh", "-c", "kill -TERM $$", NULL };

		pid = spawn(argv);
	}
	/* the payload is long gone before the host listens: the reports wait in the queue */
	usleep(500 * 1000);
	cr_assert_not_null(ttrpc_server_listen_unix(srv, sock, 0600, &err), "%s", err.message);
	run_until_done(loop, &r);
	cr_assert_str_eq(r.log, "started finished(143,15) ");
	cr_assert_eq(wait_exit(pid), 143);
	ttrpc_server_free(srv);
	ev_loop_destroy(loop);
	unlink(sock);
	rmdir(dir);
}

Test(agent_service, bad_config_is_reported)
{
	struct ev_loop *loop = ev_loop_new(0);
	struct recorder r = { .loop = loop };
	struct ttrpc_server *srv = vms_server(loop, &r);
	char dir[] = "/tmp/agent-svc.XXXXXX";
	cleanup_free char *sock = NULL, *agent = agent_path(), *cfg = NULL;
	struct fdtconfig c = { .vm_id = "abc", .name = "n", .cid = 3, .agent_port = 9100 };
	cleanup_free void *blob = NULL;
	struct vm_error err = { 0 };
	size_t len;
	FILE *f;
	pid_t pid;

	cr_assert_not_null(mkdtemp(dir));
	sock = xasprintf("%s/vms.sock", dir);
	cfg = xasprintf("%s/config.dtb", dir);
	cr_assert_eq(fdtconfig_build(&c, &blob, &len, &err), 0);
	f = fopen(cfg, "w");
	cr_assert_not_null(f);
	fwrite(blob, 1, len - 4, f);     /* truncated */
	fclose(f);
	cr_assert_not_null(ttrpc_server_listen_unix(srv, sock, 0600, &err), "%s", err.message);
	{
		char *argv[] = { agent, "--no-pid1", "--host-socket", sock, "--config", cfg, "--", "/bin/true", NULL };

		pid = spawn(argv);
	}
	run_until_done(loop, &r);
	cr_assert(r.error, "no NotifyError: %s", r.log);
	cr_assert(strstr(r.log, "error(1,header: totalsize"), "%s", r.log);
	cr_assert_null(strstr(r.log, "started"), "the payload must not run: %s", r.log);
	cr_assert_neq(wait_exit(pid), 0);
	ttrpc_server_free(srv);
	ev_loop_destroy(loop);
	unlink(sock);
	unlink(cfg);
	rmdir(dir);
}

Test(agent_service, guest_info)
{
	char dir[] = "/tmp/agent-svc.XXXXXX";
	cleanup_free char *asock = NULL, *agent = agent_path();
	Virtmgr__V1__Empty empty = VIRTMGR__V1__EMPTY__INIT;
	Virtmgr__V1__GuestInfo *info = NULL;
	struct ttrpc_client *cl = NULL;
	struct vm_error err = { 0 };
	struct utsname un;
	pid_t pid;

	cr_assert_not_null(mkdtemp(dir));
	asock = xasprintf("%s/agent.sock", dir);
	{
		char *argv[] = { agent, "--no-pid1", "--agent-socket", asock, "--host-socket", "/nonexistent/h.sock",
				 "--connect-timeout", "1", "--config", "/nonexistent", NULL };

		pid = spawn(argv);
	}
	for (int i = 0; i < 200 && !cl; i++) {
		cl = ttrpc_client_connect_unix(asock, &err);
		if (!cl)
			usleep(50 * 1000);
	}
	cr_assert_not_null(cl, "%s", err.message);
	cr_assert_eq(ttrpc_client_call(cl, "virtmgr.v1.Agent", "GetGuestInfo", &empty.base, NULL, 0,
				       &virtmgr__v1__guest_info__descriptor, (ProtobufCMessage **)&info, NULL, NULL,
				       10ull * 1000000000ull, &err),
		     0, "%s", err.message);
	cr_assert_eq(uname(&un), 0);
	cr_assert_str_eq(info->kernel_release, un.release);
	cr_assert_gt(info->mem_total_kib, 0);
	cr_assert_gt(info->uptime_ms, 0);
	cr_assert_str_eq(info->agent_version, PACKAGE_VERSION);
	cr_assert(info->hostname && *info->hostname);
	protobuf_c_message_free_unpacked(&info->base, NULL);
	ttrpc_client_free(cl);
	kill(pid, SIGTERM);
	wait_exit(pid);
	unlink(asock);
	rmdir(dir);
}
