/* test_agent_service.c - the real vmagent binary (--no-pid1) against a
 * VirtualMachineService served by this test on a Unix socket: its reports
 * arrive in order (Started, Ready, Finished with the payload's status),
 * queued reports survive a host that starts listening late, and a malformed
 * configuration becomes NotifyError(PAYLOAD_INVALID_CONFIG) naming the
 * property; GetGuestInfo answers over --agent-socket. With a marker key in
 * the configuration the console markers are signed and a payload's
 * imitations do not verify; a payload_user payload and an Exec with a user
 * run as that user and cannot read the agent; Ping is answered while the
 * payload burns CPU and not while the agent is stopped.
 */
#include "config.h"

#include <criterion/criterion.h>
#include <ev.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lib/ttrpc.h"
#include "protos/virtmgr.pb-c.h"
#include "server/fdtconfig.h"
#include "server/marker.h"
#include "tests/unit/test_util.h"

#define VMS "virtmgr.v1.VirtualMachineService"

struct recorder {
	char log[1024];
	bool finished, error;
	struct ev_loop *loop;
};

/* Append to the log of the recorder @r (a struct recorder *, or a void * to one). */
#define note(r, ...) test_appendf(((struct recorder *)(r))->log, sizeof(((struct recorder *)(r))->log), __VA_ARGS__)

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

/* The host side: a VirtualMachineService recording into @r, to listen on
 * @sock in the fresh temp dir @dir. */
struct host {
	struct ev_loop *loop;
	struct recorder r;
	struct ttrpc_server *srv;
	char dir[sizeof("/tmp/agent-svc.XXXXXX")];
	char *sock;
};

static void host_init(struct host *h)
{
	h->loop = ev_loop_new(0);
	h->r = (struct recorder){ .loop = h->loop };
	h->srv = vms_server(h->loop, &h->r);
	snprintf(h->dir, sizeof(h->dir), "/tmp/agent-svc.XXXXXX");
	cr_assert_not_null(mkdtemp(h->dir));
	h->sock = xasprintf("%s/vms.sock", h->dir);
}

static void host_listen(struct host *h)
{
	struct vm_error err = { 0 };

	cr_assert_not_null(ttrpc_server_listen_unix(h->srv, h->sock, 0600, &err), "%s", err.message);
}

/* Free @h and remove its socket and dir (whatever else was put in the dir is removed first). */
static void host_fini(struct host *h)
{
	ttrpc_server_free(h->srv);
	ev_loop_destroy(h->loop);
	unlink(h->sock);
	rmdir(h->dir);
	free(h->sock);
}

/* vmagent serving the Agent API on @asock with no host to report to, and
 * running "/bin/sh -c @payload" unless @payload is NULL. */
static pid_t spawn_agent(const char *asock, const char *payload)
{
	cleanup_free char *agent = agent_path();
	char *argv[] = { agent,
			 "--no-pid1",
			 "--agent-socket",
			 (char *)asock,
			 "--host-socket",
			 "/nonexistent/h.sock",
			 "--connect-timeout",
			 "1",
			 "--config",
			 "/nonexistent",
			 payload ? "--" : NULL,
			 "/bin/sh",
			 "-c",
			 (char *)payload,
			 NULL };

	return spawn(argv);
}

static struct ttrpc_client *connect_agent(const char *asock)
{
	struct ttrpc_client *cl = NULL;
	struct vm_error err = { 0 };

	for (int i = 0; i < 200 && !cl; i++) {
		cl = ttrpc_client_connect_unix(asock, &err);
		if (!cl)
			usleep(50 * 1000);
	}
	cr_assert_not_null(cl, "%s", err.message);
	return cl;
}

Test(agent_service, reports_in_order)
{
	struct host h;
	cleanup_free char *agent = agent_path();
	pid_t pid;

	host_init(&h);
	host_listen(&h);
	{
		char *argv[] = { agent,
				 "--no-pid1",
				 "--host-socket",
				 h.sock,
				 "--config",
				 "/nonexistent",
				 "--",
				 "/bin/sh",
				 "-c",
				 "echo >&$VIRTMGR_READY_FD; exit 7",
				 NULL };

		pid = spawn(argv);
	}
	run_until_done(h.loop, &h.r);
	cr_assert(h.r.finished, "no Finished report: %s", h.r.log);
	cr_assert_str_eq(h.r.log, "started ready finished(7,0) ");
	cr_assert_eq(wait_exit(pid), 7, "vmagent --no-pid1 exits with the payload's status");
	host_fini(&h);
}

Test(agent_service, killed_payload_and_late_host)
{
	struct host h;
	cleanup_free char *agent = agent_path();
	pid_t pid;

	host_init(&h);
	{
		char *argv[] = { agent,	    "--no-pid1", "--host-socket", h.sock, "--config", "/nonexistent", "--",
				 "/bin/sh", "-c",	 "kill -TERM $$", NULL };

		pid = spawn(argv);
	}
	/* the payload is long gone before the host listens: the reports wait in the queue */
	usleep(500 * 1000);
	host_listen(&h);
	run_until_done(h.loop, &h.r);
	cr_assert_str_eq(h.r.log, "started finished(143,15) ");
	cr_assert_eq(wait_exit(pid), 143);
	host_fini(&h);
}

Test(agent_service, bad_config_is_reported)
{
	struct host h;
	cleanup_free char *agent = agent_path(), *cfg = NULL;
	struct fdtconfig c = { .vm_id = "abc", .name = "n", .cid = 3, .agent_port = 9100 };
	cleanup_free void *blob = NULL;
	struct vm_error err = { 0 };
	size_t len;
	FILE *f;
	pid_t pid;

	host_init(&h);
	cfg = xasprintf("%s/config.dtb", h.dir);
	cr_assert_eq(fdtconfig_build(&c, &blob, &len, &err), 0);
	f = fopen(cfg, "w");
	cr_assert_not_null(f);
	fwrite(blob, 1, len - 4, f); /* truncated */
	fclose(f);
	host_listen(&h);
	{
		char *argv[] = {
			agent, "--no-pid1", "--host-socket", h.sock, "--config", cfg, "--", "/bin/true", NULL
		};

		pid = spawn(argv);
	}
	run_until_done(h.loop, &h.r);
	cr_assert(h.r.error, "no NotifyError: %s", h.r.log);
	{
		char want[64];

		snprintf(want, sizeof(want), "error(%d,header: totalsize",
			 VIRTMGR__V1__ERROR_CODE__ERROR_CODE_PAYLOAD_INVALID_CONFIG);
		cr_assert(strstr(h.r.log, want), "%s", h.r.log);
	}
	cr_assert_null(strstr(h.r.log, "started"), "the payload must not run: %s", h.r.log);
	cr_assert_neq(wait_exit(pid), 0);
	unlink(cfg);
	host_fini(&h);
}

Test(agent_service, guest_info)
{
	char dir[] = "/tmp/agent-svc.XXXXXX";
	cleanup_free char *asock = NULL;
	Virtmgr__V1__Empty empty = VIRTMGR__V1__EMPTY__INIT;
	Virtmgr__V1__GuestInfo *info = NULL;
	struct ttrpc_client *cl;
	struct vm_error err = { 0 };
	struct utsname un;
	pid_t pid;

	cr_assert_not_null(mkdtemp(dir));
	asock = xasprintf("%s/agent.sock", dir);
	pid = spawn_agent(asock, NULL);
	cl = connect_agent(asock);
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

/* Write a config tree for @c into @dir/config.dtb. Return: its path. */
static char *write_config(const char *dir, const struct fdtconfig *c)
{
	cleanup_free void *blob = NULL;
	struct vm_error err = { 0 };
	char *path = xasprintf("%s/config.dtb", dir);
	size_t len;
	FILE *f;

	cr_assert_eq(fdtconfig_build(c, &blob, &len, &err), 0, "%s", err.message);
	f = fopen(path, "w");
	cr_assert_not_null(f);
	cr_assert_eq(fwrite(blob, 1, len, f), len);
	fclose(f);
	return path;
}

/* vmagent with @argv, its stdout (the console in --no-pid1) into @out. */
static pid_t spawn_to(char *const argv[], const char *out)
{
	pid_t pid = fork();

	cr_assert_geq(pid, 0);
	if (pid == 0) {
		int fd = open(out, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

		if (fd < 0 || dup2(fd, STDOUT_FILENO) < 0)
			_exit(126);
		execv(argv[0], argv);
		_exit(127);
	}
	return pid;
}

static char *slurp(const char *path)
{
	char *text = NULL;
	size_t len;

	cr_assert_eq(read_file(path, 1 << 20, &text, &len, NULL), 0, "%s", path);
	return text;
}

/* vmagent with the configuration @c (in @h's dir) reporting to @h, until
 * it reported its end. Return: its exit status; its console in *@console. */
static int run_configured(struct host *h, const struct fdtconfig *c, char **console)
{
	cleanup_free char *agent = agent_path(), *cfg = write_config(h->dir, c);
	cleanup_free char *out = xasprintf("%s/console", h->dir);
	char *argv[] = { agent, "--no-pid1", "--host-socket", h->sock, "--config", cfg, NULL };
	pid_t pid;
	int status;

	host_listen(h);
	pid = spawn_to(argv, out);
	run_until_done(h->loop, &h->r);
	status = wait_exit(pid);
	*console = slurp(out);
	unlink(cfg);
	unlink(out);
	return status;
}

Test(agent_service, signed_markers_and_payload_imitations)
{
	struct host h;
	cleanup_free char *text = NULL;
	char *payload[] = { "/bin/sh", "-c",
			    "echo 'VIRTMGR: EXIT 0'; echo 'VIRTMGR: STARTED';"
			    " echo 'VIRTMGR/1 7 00000000000000000000000000000000 EXIT 0';"
			    " echo >&$VIRTMGR_READY_FD; exit 3" };
	struct marker_key key, other;
	struct fdtconfig c = { .vm_id = "abc",
			       .name = "n",
			       .cid = 3,
			       .agent_port = 9100,
			       .payload_args = payload,
			       .n_payload_args = 3,
			       .marker_key = key.bytes };
	struct marker_verifier v, wrong;
	struct vm_error err = { 0 };
	char got[256] = "";

	cr_assert_eq(marker_key_generate(&key, &err), 0, "%s", err.message);
	cr_assert_eq(marker_key_generate(&other, &err), 0, "%s", err.message);
	host_init(&h);
	cr_assert_eq(run_configured(&h, &c, &text), 3);
	cr_assert_str_eq(h.r.log, "started ready finished(3,0) ");
	/* the host's view: only the agent's lines verify, and they say 3 */
	marker_verifier_init(&v, &key);
	marker_verifier_init(&wrong, &other);
	for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
		struct marker m;
		size_t n = strlen(got);

		cr_assert_eq(marker_parse(&wrong, line, strlen(line), &m), MARKER_NONE, "%s", line);
		switch (marker_parse(&v, line, strlen(line), &m)) {
		case MARKER_STARTED:
			snprintf(got + n, sizeof(got) - n, "started ");
			break;
		case MARKER_READY:
			snprintf(got + n, sizeof(got) - n, "ready ");
			break;
		case MARKER_EXIT:
			snprintf(got + n, sizeof(got) - n, "exit(%d) ", m.code);
			break;
		case MARKER_ERROR:
			snprintf(got + n, sizeof(got) - n, "error(%d) ", m.code);
			break;
		case MARKER_NONE:
			/* with a key the agent prints no unsigned marker of its own */
			cr_assert(strncmp(line, "VIRTMGR", 7) || !strcmp(line, "VIRTMGR: EXIT 0") ||
					  !strcmp(line, "VIRTMGR: STARTED") || strstr(line, " 7 0000"),
				  "unexpected line: %s", line);
			break;
		}
	}
	cr_assert_str_eq(got, "started ready exit(3) ");
	host_fini(&h);
}

Test(agent_service, payload_user)
{
	struct host h;
	cleanup_free char *text = NULL;
	char *payload[] = { "/bin/sh", "-c",
			    "echo uid=$(id -u) gid=$(id -g) groups=$(id -G) home=$HOME cwd=$(pwd);"
			    " grep NoNewPrivs /proc/self/status | tr -d '\\t';"
			    " cat /proc/$PPID/environ >/dev/null 2>&1 && echo AGENT-ENVIRON-READABLE;"
			    " head -c1 /proc/$PPID/mem >/dev/null 2>&1 && echo AGENT-MEM-READABLE;"
			    " exit 0" };
	uint8_t key[MARKER_KEY_LEN] = { 1 };
	struct fdtconfig c = { .vm_id = "abc",
			       .name = "n",
			       .cid = 3,
			       .agent_port = 9100,
			       .payload_args = payload,
			       .n_payload_args = 3,
			       .has_payload_user = true,
			       .payload_uid = 65534,
			       .payload_gid = 65534,
			       .marker_key = key };

	if (geteuid() != 0)
		cr_skip_test("switching users needs root");
	host_init(&h);
	cr_assert_eq(run_configured(&h, &c, &text), 0);
	cr_assert(strstr(text, "uid=65534 gid=65534 groups=65534 "), "%s", text);
	cr_assert(strstr(text, "NoNewPrivs:1"), "%s", text);
	cr_assert_null(strstr(text, "AGENT-ENVIRON-READABLE"), "%s", text);
	cr_assert_null(strstr(text, "AGENT-MEM-READABLE"), "%s", text);
	host_fini(&h);
}

/* Exec argv as @user (NULL: root), unary: *rc is the call's result. */
static void exec_as(struct ttrpc_client *cl, char **argv, size_t argc, Virtmgr__V1__GuestUser *user,
		    struct vm_error *err, int *rc)
{
	Virtmgr__V1__ExecRequest req = VIRTMGR__V1__EXEC_REQUEST__INIT;
	Virtmgr__V1__ExecOutput *o = NULL;

	req.argv = argv;
	req.n_argv = argc;
	req.user = user;
	*rc = ttrpc_client_call(cl, "virtmgr.v1.Agent", "Exec", &req.base, NULL, 0,
				&virtmgr__v1__exec_output__descriptor, (ProtobufCMessage **)&o, NULL, NULL,
				10ull * 1000000000ull, err);
	if (o)
		protobuf_c_message_free_unpacked(&o->base, NULL);
}

Test(agent_service, exec_user)
{
	char dir[] = "/tmp/agent-svc.XXXXXX";
	cleanup_free char *asock = NULL, *mark = NULL, *script = NULL;
	Virtmgr__V1__GuestUser user = VIRTMGR__V1__GUEST_USER__INIT;
	struct ttrpc_client *cl;
	struct vm_error err = { 0 };
	struct stat st;
	pid_t pid;
	int rc;

	if (geteuid() != 0)
		cr_skip_test("switching users needs root");
	cr_assert_not_null(mkdtemp(dir));
	cr_assert_eq(chmod(dir, 0777), 0);
	asock = xasprintf("%s/agent.sock", dir);
	mark = xasprintf("%s/mark", dir);
	script = xasprintf(
		"test \"$(id -u):$(id -g):$(id -G)\" = 65534:65534:65534"
		" && grep -q 'NoNewPrivs:.1' /proc/self/status && touch %s",
		mark);
	pid = spawn_agent(asock, NULL);
	cl = connect_agent(asock);
	user.uid = 65534;
	user.gid = 65534;
	{
		char *argv[] = { "/bin/sh", "-c", script };

		exec_as(cl, argv, 3, &user, &err, &rc);
	}
	cr_assert_eq(rc, 0, "%s", err.message);
	cr_assert_eq(stat(mark, &st), 0, "the command did not run as 65534:65534 without new privileges");
	cr_assert_eq(st.st_uid, 65534);
	ttrpc_client_free(cl);
	kill(pid, SIGTERM);
	wait_exit(pid);
	unlink(mark);
	unlink(asock);
	rmdir(dir);
}

Test(agent_service, exec_user_refused_when_invalid)
{
	char dir[] = "/tmp/agent-svc.XXXXXX";
	cleanup_free char *asock = NULL;
	Virtmgr__V1__GuestUser bad = VIRTMGR__V1__GUEST_USER__INIT;
	char *argv[] = { "/bin/true" };
	struct ttrpc_client *cl;
	struct vm_error err = { 0 };
	pid_t pid;
	int rc;

	cr_assert_not_null(mkdtemp(dir));
	asock = xasprintf("%s/agent.sock", dir);
	pid = spawn_agent(asock, NULL);
	cl = connect_agent(asock);
	bad.uid = UINT32_MAX;
	bad.gid = 0;
	exec_as(cl, argv, 1, &bad, &err, &rc);
	cr_assert_eq(rc, -1);
	cr_assert_eq(err.code, VM_INVALID_ARGUMENT, "%d %s", err.code, err.message);
	cr_assert(strstr(err.message, "user: 4294967295:0"), "%s", err.message);
	ttrpc_client_free(cl);
	kill(pid, SIGTERM);
	wait_exit(pid);
	unlink(asock);
	rmdir(dir);
}

static int ping(struct ttrpc_client *cl, uint64_t nonce, uint64_t timeout_ns, Virtmgr__V1__PingResponse **resp,
		struct vm_error *err)
{
	Virtmgr__V1__PingRequest req = VIRTMGR__V1__PING_REQUEST__INIT;

	req.nonce = nonce;
	return ttrpc_client_call(cl, "virtmgr.v1.Agent", "Ping", &req.base, NULL, 0,
				 &virtmgr__v1__ping_response__descriptor, (ProtobufCMessage **)resp, NULL, NULL,
				 timeout_ns, err);
}

Test(agent_service, ping_busy_payload_and_stopped_agent)
{
	char dir[] = "/tmp/agent-svc.XXXXXX";
	cleanup_free char *asock = NULL;
	Virtmgr__V1__PingResponse *resp = NULL;
	struct ttrpc_client *cl;
	struct vm_error err = { 0 };
	pid_t pid;

	cr_assert_not_null(mkdtemp(dir));
	asock = xasprintf("%s/agent.sock", dir);
	/* a payload that never yields the CPU of its own accord */
	pid = spawn_agent(asock, "while :; do :; done");
	cl = connect_agent(asock);
	for (int i = 0; i < 3; i++) {
		cr_assert_eq(ping(cl, 42 + (uint64_t)i, 5ull * 1000000000ull, &resp, &err), 0, "%s", err.message);
		cr_assert_eq(resp->nonce, 42 + (uint64_t)i);
		cr_assert(resp->payload_running);
		protobuf_c_message_free_unpacked(&resp->base, NULL);
		resp = NULL;
		usleep(200 * 1000);
	}
	/* the agent itself stopped: no answer within the deadline */
	cr_assert_eq(kill(pid, SIGSTOP), 0);
	cr_assert_eq(ping(cl, 7, 1000000000ull, &resp, &err), -1);
	cr_assert_eq(err.code, VM_DEADLINE_EXCEEDED, "%d %s", err.code, err.message);
	ttrpc_client_free(cl);
	cr_assert_eq(kill(pid, SIGCONT), 0);
	cl = connect_agent(asock);
	cr_assert_eq(ping(cl, 8, 5ull * 1000000000ull, &resp, &err), 0, "%s", err.message);
	cr_assert_eq(resp->nonce, 8);
	protobuf_c_message_free_unpacked(&resp->base, NULL);
	ttrpc_client_free(cl);
	kill(pid, SIGTERM);
	cr_assert_eq(wait_exit(pid), 143, "the busy payload got SIGTERM");
	unlink(asock);
	rmdir(dir);
}
