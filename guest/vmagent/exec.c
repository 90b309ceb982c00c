/* exec.c - the Agent service vmagent serves to the host on guest vsock
 * port 9100 (or --agent-socket): Exec, Shutdown, GetGuestInfo and Ping.
 *
 * Exec design. The request carries argv, extra environment, a working
 * directory and whether to use a pty. The process leads its own session
 * (signals from ExecInput go to its whole process group); exec failures
 * travel back over a CLOEXEC pipe, so "no such program" fails the call with
 * a Status naming it instead of an exit code 127. The client streams
 * ExecInput Data frames (stdin bytes, stdin EOF, window size, signals); the
 * agent streams ExecOutput Data frames (stdout, stderr, stdin_written
 * acknowledgements, and last the exit status) and ends the call with an OK
 * Response once the process has exited and its output reached EOF.
 *
 * Memory stays bounded in both directions. Output: before each read of the
 * process's stdout/stderr the agent checks how much the connection has
 * queued (ttrpc_conn_out_pending); above EXEC_OUT_HIGH it stops reading
 * (the process then blocks in write()) and the connection's drain callback
 * resumes every paused session on it once the queue is below EXEC_OUT_LOW.
 * Input: the agent acknowledges stdin bytes written to the process with
 * ExecOutput.stdin_written; a client keeps at most EXEC_STDIN_WINDOW bytes
 * unacknowledged (vmctl does), and a client that sends more than
 * EXEC_STDIN_MAX unwritten bytes has its call failed with RESOURCE_EXHAUSTED.
 *
 * ExecRequest.user runs the process as that guest user (agent_child_user():
 * no supplementary groups, no new privileges, its HOME, and its HOME as the
 * working directory unless cwd is given); a failure to switch fails the
 * call like a failed exec.
 *
 * Ping is the host's health check: answered here, by the agent's loop, so
 * it measures the agent and not the payload (a CPU-bound payload is another
 * process; a stopped or wedged agent does not answer).
 *
 * If the connection closes or the call's deadline passes, the process group
 * gets SIGKILL; the session is freed once the process is reaped (PID 1 reaps
 * everything, main.c hands Exec processes to agent_exec_reaped()).
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/vm_sockets.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "guest/vmagent/agent.h"
#include "guest/vmagent/grow.h"
#include "guest/vmagent/root.h"
#include "lib/log.h"

#define AGENT_SERVICE "virtmgr.v1.Agent"
#define EXEC_OUT_HIGH (1u << 20)
#define EXEC_OUT_LOW (256u << 10)
#define EXEC_READ_CHUNK (64u << 10)
#define EXEC_STDIN_MAX (8u << 20)
#define EXEC_ACK_EVERY (64u << 10)
#define EXEC_MAX_SESSIONS 64
#define EXEC_MAX_ARGS 4096

struct exec_session {
	struct exec_session *next;
	struct agent *a;
	struct ttrpc_call *call; /* NULL once cancelled */
	struct ttrpc_conn *conn;
	pid_t pid;
	bool exited;
	int status;
	bool tty;
	int in_fd, out_fd, err_fd; /* -1 once closed */
	ev_io in_io, out_io, err_io;
	uint8_t *inbuf;
	size_t in_len, in_cap;
	bool in_eof;
	uint64_t in_written, in_acked;
	bool paused;
};

static struct exec_session *sessions;
static unsigned n_sessions;

static void session_unlink(struct exec_session *s)
{
	for (struct exec_session **pp = &sessions; *pp; pp = &(*pp)->next)
		if (*pp == s) {
			*pp = s->next;
			n_sessions--;
			return;
		}
}

static void close_io(struct exec_session *s, ev_io *w, int *fd)
{
	if (*fd < 0)
		return;
	ev_io_stop(s->a->loop, w);
	close(steal_fd(fd));
}

static void session_free(struct exec_session *s)
{
	close_io(s, &s->in_io, &s->in_fd);
	close_io(s, &s->out_io, &s->out_fd);
	close_io(s, &s->err_io, &s->err_fd);
	session_unlink(s);
	free(s->inbuf);
	free(s);
}

static int send_output(struct exec_session *s, Virtmgr__V1__ExecOutput *out)
{
	if (!s->call)
		return -1;
	out->stdin_written = s->in_written;
	s->in_acked = s->in_written;
	return ttrpc_call_send(s->call, &out->base);
}

/* Exited and both outputs at EOF: send the status, end the call, free. */
static void maybe_finish(struct exec_session *s)
{
	Virtmgr__V1__ExecOutput out = VIRTMGR__V1__EXEC_OUTPUT__INIT;

	if (!s->exited)
		return;
	if (s->call && (s->out_fd >= 0 || s->err_fd >= 0))
		return;
	if (s->call) {
		out.exited = true;
		if (WIFEXITED(s->status)) {
			out.exit_code = WEXITSTATUS(s->status);
		} else {
			out.signal = WTERMSIG(s->status);
			out.exit_code = 128 + out.signal;
		}
		send_output(s, &out);
		ttrpc_call_set_cancel(s->call, NULL, NULL);
		ttrpc_call_set_data_cb(s->call, NULL, NULL);
		ttrpc_call_finish(s->call);
		s->call = NULL;
	}
	session_free(s);
}

/* ---------------------------------------------------------------- output */

static void pause_output(struct exec_session *s);

static void read_output(struct exec_session *s, ev_io *w, int *fd, bool is_err)
{
	static uint8_t buf[EXEC_READ_CHUNK];
	Virtmgr__V1__ExecOutput out = VIRTMGR__V1__EXEC_OUTPUT__INIT;
	ssize_t n;

	if (s->call && ttrpc_conn_out_pending(s->conn) > EXEC_OUT_HIGH) {
		pause_output(s);
		return;
	}
	n = read(*fd, buf, sizeof(buf));
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) { /* EOF; EIO on a pty master once the last slave fd closed */
		if (s->tty && *fd == s->out_fd && s->in_fd >= 0)
			close_io(s, &s->in_io, &s->in_fd);
		close_io(s, w, fd);
		maybe_finish(s);
		return;
	}
	if (!s->call)
		return; /* cancelled: drain and drop until the process is gone */
	if (is_err) {
		out.stderr.data = buf;
		out.stderr.len = (size_t)n;
	} else {
		out.stdout.data = buf;
		out.stdout.len = (size_t)n;
	}
	send_output(s, &out);
}

static void out_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct exec_session *s = w->data;

	(void)loop;
	(void)revents;
	read_output(s, w, &s->out_fd, false);
}

static void err_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct exec_session *s = w->data;

	(void)loop;
	(void)revents;
	read_output(s, w, &s->err_fd, true);
}

static void drain_cb(struct ttrpc_conn *conn, void *opaque)
{
	struct agent *a = opaque;

	for (struct exec_session *s = sessions; s; s = s->next) {
		if (s->conn != conn || !s->paused)
			continue;
		s->paused = false;
		if (s->out_fd >= 0)
			ev_io_start(a->loop, &s->out_io);
		if (s->err_fd >= 0)
			ev_io_start(a->loop, &s->err_io);
	}
}

static void pause_output(struct exec_session *s)
{
	s->paused = true;
	if (s->out_fd >= 0)
		ev_io_stop(s->a->loop, &s->out_io);
	if (s->err_fd >= 0)
		ev_io_stop(s->a->loop, &s->err_io);
	ttrpc_conn_set_drain_cb(s->conn, EXEC_OUT_LOW, drain_cb, s->a);
}

/* ---------------------------------------------------------------- input */

static void close_stdin(struct exec_session *s)
{
	if (s->tty) {
		/* a pty has no half close: send the EOF character instead */
		if (s->in_fd >= 0 && write(s->in_fd, "\004", 1) < 0) {
			/* the terminal is gone */
		}
		return;
	}
	close_io(s, &s->in_io, &s->in_fd);
}

static void ack_stdin(struct exec_session *s, bool force)
{
	Virtmgr__V1__ExecOutput out = VIRTMGR__V1__EXEC_OUTPUT__INIT;

	if (s->in_written == s->in_acked)
		return;
	if (force || s->in_written - s->in_acked >= EXEC_ACK_EVERY)
		send_output(s, &out);
}

static void in_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct exec_session *s = w->data;

	(void)revents;
	while (s->in_len) {
		ssize_t n = write(s->in_fd, s->inbuf, s->in_len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			break;
		if (n < 0) {
			/* EPIPE: the process does not read stdin any more; count it as written */
			s->in_written += s->in_len;
			s->in_len = 0;
			s->in_eof = true;
			break;
		}
		memmove(s->inbuf, s->inbuf + n, s->in_len - (size_t)n);
		s->in_len -= (size_t)n;
		s->in_written += (uint64_t)n;
	}
	ack_stdin(s, s->in_len == 0);
	if (s->in_len == 0) {
		ev_io_stop(loop, w);
		if (s->in_eof)
			close_stdin(s);
	}
}

static void fail_session(struct exec_session *s, int code, const char *msg)
{
	if (s->call) {
		ttrpc_call_set_cancel(s->call, NULL, NULL);
		ttrpc_call_set_data_cb(s->call, NULL, NULL);
		ttrpc_call_fail(s->call, code, "%s", msg);
		s->call = NULL;
	}
	kill(-s->pid, SIGKILL);
	if (s->exited)
		session_free(s);
}

static void data_cb(struct ttrpc_call *call, const uint8_t *data, size_t len, bool closed, void *opaque)
{
	struct exec_session *s = opaque;
	Virtmgr__V1__ExecInput *in = NULL;

	(void)call;
	if (len) {
		in = virtmgr__v1__exec_input__unpack(NULL, len, data);
		if (!in) {
			fail_session(s, VM_INVALID_ARGUMENT, "Exec: a Data frame is not a virtmgr.v1.ExecInput");
			return;
		}
	}
	if (in && in->stdin.len && !s->in_eof && s->in_fd >= 0) {
		if (s->in_len + in->stdin.len > EXEC_STDIN_MAX) {
			protobuf_c_message_free_unpacked(&in->base, NULL);
			fail_session(
				s, VM_RESOURCE_EXHAUSTED,
				"Exec: more than 8 MiB of stdin not yet read by the process (the client ignores stdin_written)");
			return;
		}
		if (s->in_len + in->stdin.len > s->in_cap) {
			s->in_cap = MAX(s->in_cap * 2, s->in_len + in->stdin.len);
			s->inbuf = xrealloc(s->inbuf, s->in_cap);
		}
		memcpy(s->inbuf + s->in_len, in->stdin.data, in->stdin.len);
		s->in_len += in->stdin.len;
		ev_io_start(s->a->loop, &s->in_io);
	}
	if (in && in->resize && s->tty && s->out_fd >= 0) {
		struct winsize ws = { .ws_row = (unsigned short)MIN(in->resize->rows, 65535u),
				      .ws_col = (unsigned short)MIN(in->resize->cols, 65535u) };

		ioctl(s->out_fd, TIOCSWINSZ, &ws);
	}
	if (in && in->signal > 0 && in->signal < NSIG && !s->exited)
		kill(-s->pid, in->signal);
	if ((in && in->stdin_eof) || closed) {
		if (!s->in_eof) {
			s->in_eof = true;
			if (!s->in_len)
				close_stdin(s);
		}
	}
	if (in)
		protobuf_c_message_free_unpacked(&in->base, NULL);
}

static void cancel_cb(struct ttrpc_call *call, void *opaque)
{
	struct exec_session *s = opaque;

	(void)call;
	s->call = NULL;
	log_debug("exec %d: the caller went away, killing it", (int)s->pid);
	kill(-s->pid, SIGKILL);
	if (s->exited)
		session_free(s);
}

bool agent_exec_reaped(struct agent *a, pid_t pid, int status)
{
	(void)a;
	for (struct exec_session *s = sessions; s; s = s->next) {
		if (s->pid != pid || s->exited)
			continue;
		s->exited = true;
		s->status = status;
		if (!s->call) {
			session_free(s);
			return true;
		}
		/* stdin the process never read is moot now */
		s->in_written += s->in_len;
		s->in_len = 0;
		close_io(s, &s->in_io, &s->in_fd);
		maybe_finish(s);
		return true;
	}
	return false;
}

void agent_exec_kill_all(struct agent *a, int sig)
{
	(void)a;
	for (struct exec_session *s = sessions; s; s = s->next)
		if (!s->exited)
			kill(-s->pid, sig);
}

/* ---------------------------------------------------------------- spawn */

struct spawn_error {
	int stage; /* 1 chdir, 2 exec, 3 terminal, 4 user, 5 root */
	int err;
};

static void child_fail(int fd, int stage, int err)
{
	struct spawn_error e = { stage, err };

	if (write(fd, &e, sizeof(e)) < 0) {
		/* the parent learns from the exit status */
	}
	_exit(stage == 2 && err == ENOENT ? 127 : 126);
}

static void exec_child(struct agent *a, const Virtmgr__V1__ExecRequest *req, int in, int out, int err, const char *pts,
		       int errpipe)
{
	char **argv;

	/* agent_fork() left default dispositions and an empty signal mask */
	setsid();
	if (pts) {
		int t = open(pts, O_RDWR);

		if (t < 0 || ioctl(t, TIOCSCTTY, 0) < 0)
			child_fail(errpipe, 3, errno);
		/* the user's own terminal, as login(1) would make it */
		if (req->user && fchown(t, req->user->uid, req->user->gid) < 0)
			child_fail(errpipe, 3, errno);
		in = out = err = t;
	}
	if (dup2(in, 0) < 0 || dup2(out, 1) < 0 || dup2(err, 2) < 0)
		child_fail(errpipe, 3, errno);
	agent_child_env();
	if (agent_root_dir(a)) {
		/* the payload's root (root.c), after the terminal was opened */
		int e = agent_root_enter(a);

		if (e)
			child_fail(errpipe, 5, e);
	}
	if (req->user) {
		int e = agent_child_user(req->user->uid, req->user->gid, a->machine);

		if (e)
			child_fail(errpipe, 4, e);
		if (!(req->cwd && *req->cwd) && chdir(getenv("HOME")) < 0)
			child_fail(errpipe, 1, errno);
	}
	for (size_t i = 0; i < req->n_env; i++)
		putenv(req->env[i]);
	if (req->cwd && *req->cwd && chdir(req->cwd) < 0)
		child_fail(errpipe, 1, errno);
	/* protobuf-c's repeated strings are not NULL-terminated */
	argv = calloc(req->n_argv + 1, sizeof(*argv));
	if (!argv)
		child_fail(errpipe, 2, ENOMEM);
	memcpy(argv, req->argv, req->n_argv * sizeof(*argv));
	execvp(argv[0], argv);
	child_fail(errpipe, 2, errno);
}

static int validate(const Virtmgr__V1__ExecRequest *req, struct vm_error *err)
{
	if (!req->n_argv || !req->argv[0] || !*req->argv[0])
		return vm_error_set(err, VM_INVALID_ARGUMENT, "argv: empty, nothing to run");
	if (req->n_argv > EXEC_MAX_ARGS)
		return vm_error_set(err, VM_INVALID_ARGUMENT, "argv: %zu arguments exceed %u", req->n_argv,
				    EXEC_MAX_ARGS);
	for (size_t i = 0; i < req->n_env; i++) {
		const char *eq = strchr(req->env[i], '=');

		if (!eq || eq == req->env[i])
			return vm_error_set(err, VM_INVALID_ARGUMENT, "env[%zu]: \"%.64s\" is not KEY=VALUE", i,
					    req->env[i]);
	}
	if (req->user && (req->user->uid == UINT32_MAX || req->user->gid == UINT32_MAX))
		return vm_error_set(err, VM_INVALID_ARGUMENT, "user: %u:%u is not a user", req->user->uid,
				    req->user->gid);
	if (n_sessions >= EXEC_MAX_SESSIONS)
		return vm_error_set(err, VM_RESOURCE_EXHAUSTED, "already %u Exec sessions running", n_sessions);
	return 0;
}

static void exec_handler(struct ttrpc_call *call, const ProtobufCMessage *msg, void *opaque)
{
	const Virtmgr__V1__ExecRequest *req = (const Virtmgr__V1__ExecRequest *)msg;
	struct agent *a = opaque;
	struct vm_error err = { 0 };
	cleanup_close int master = -1, in_r = -1, in_w = -1, out_r = -1, out_w = -1, err_r = -1, err_w = -1;
	cleanup_close int ep_r = -1, ep_w = -1;
	char pts[64] = "";
	struct spawn_error se;
	struct exec_session *s;
	ssize_t n;
	pid_t pid;
	int p[2];

	if (validate(req, &err) < 0) {
		ttrpc_call_fail_error(call, &err);
		return;
	}
	if (req->tty) {
		struct winsize ws = { .ws_row = 24, .ws_col = 80 };

		master = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
		if (master < 0 || grantpt(master) < 0 || unlockpt(master) < 0 ||
		    ptsname_r(master, pts, sizeof(pts)) != 0) {
			ttrpc_call_fail(call, VM_INTERNAL, "Exec: cannot allocate a pty: %s", strerror(errno));
			return;
		}
		if (req->window && req->window->rows && req->window->cols) {
			ws.ws_row = (unsigned short)MIN(req->window->rows, 65535u);
			ws.ws_col = (unsigned short)MIN(req->window->cols, 65535u);
		}
		ioctl(master, TIOCSWINSZ, &ws);
	} else {
		if (pipe2(p, O_CLOEXEC) < 0)
			goto pipe_fail;
		in_r = p[0], in_w = p[1];
		if (pipe2(p, O_CLOEXEC) < 0)
			goto pipe_fail;
		out_r = p[0], out_w = p[1];
		if (pipe2(p, O_CLOEXEC) < 0)
			goto pipe_fail;
		err_r = p[0], err_w = p[1];
	}
	if (pipe2(p, O_CLOEXEC) < 0)
		goto pipe_fail;
	ep_r = p[0], ep_w = p[1];
	pid = agent_fork(a);
	if (pid < 0) {
		ttrpc_call_fail(call, VM_RESOURCE_EXHAUSTED, "Exec: fork: %s", strerror(errno));
		return;
	}
	if (pid == 0)
		exec_child(a, req, in_r, out_w, err_w, req->tty ? pts : NULL, ep_w);
	close(steal_fd(&ep_w));
	do
		n = read(ep_r, &se, sizeof(se));
	while (n < 0 && errno == EINTR);
	if (n == (ssize_t)sizeof(se)) {
		/* the child is gone before the loop's SIGCHLD handling sees it */
		while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
			;
		if (se.stage == 2)
			ttrpc_call_fail(call, se.err == ENOENT ? VM_NOT_FOUND : VM_FAILED_PRECONDITION,
					"Exec: cannot run %s: %s", req->argv[0], strerror(se.err));
		else if (se.stage == 1)
			ttrpc_call_fail(call, VM_INVALID_ARGUMENT, "cwd: cannot change to %s: %s",
					req->cwd && *req->cwd ? req->cwd : "the user's home", strerror(se.err));
		else if (se.stage == 5)
			ttrpc_call_fail(call, VM_INTERNAL, "Exec: cannot enter the root %s: %s", agent_root_dir(a),
					strerror(se.err));
		else if (se.stage == 4)
			ttrpc_call_fail(call, vm_status_from_errno(se.err), "user: cannot switch to %u:%u: %s",
					req->user->uid, req->user->gid, strerror(se.err));
		else
			ttrpc_call_fail(call, VM_INTERNAL, "Exec: setting up the terminal: %s", strerror(se.err));
		return;
	}
	s = xzalloc(sizeof(*s));
	s->a = a;
	s->call = call;
	s->conn = ttrpc_call_conn(call);
	s->pid = pid;
	s->tty = req->tty;
	if (req->tty) {
		s->out_fd = steal_fd(&master);
		s->in_fd = fcntl(s->out_fd, F_DUPFD_CLOEXEC, 3);
		s->err_fd = -1;
	} else {
		s->in_fd = steal_fd(&in_w);
		s->out_fd = steal_fd(&out_r);
		s->err_fd = steal_fd(&err_r);
	}
	ev_io_init(&s->in_io, in_cb, s->in_fd, EV_WRITE);
	ev_io_init(&s->out_io, out_cb, s->out_fd, EV_READ);
	ev_io_init(&s->err_io, err_cb, s->err_fd, EV_READ);
	s->in_io.data = s->out_io.data = s->err_io.data = s;
	if (s->in_fd >= 0)
		fd_set_nonblock(s->in_fd, true);
	fd_set_nonblock(s->out_fd, true);
	ev_io_start(a->loop, &s->out_io);
	if (s->err_fd >= 0) {
		fd_set_nonblock(s->err_fd, true);
		ev_io_start(a->loop, &s->err_io);
	}
	s->next = sessions;
	sessions = s;
	n_sessions++;
	ttrpc_call_set_cancel(call, cancel_cb, s);
	ttrpc_call_set_data_cb(call, data_cb, s);
	log_debug("exec %d: %s%s", (int)pid, req->argv[0], req->tty ? " (tty)" : "");
	if (!ttrpc_call_is_stream(call)) {
		/* a unary caller sends no stdin */
		s->in_eof = true;
		close_stdin(s);
	}
	return;
pipe_fail:
	ttrpc_call_fail(call, VM_RESOURCE_EXHAUSTED, "Exec: pipe: %s", strerror(errno));
}

/* ---------------------------------------------------------------- Shutdown, GetGuestInfo */

static ev_timer shutdown_timer;
static enum agent_action shutdown_action;

static void shutdown_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)loop;
	(void)revents;
	agent_request(w->data, shutdown_action, "Shutdown request from the host");
}

static void shutdown_handler(struct ttrpc_call *call, const ProtobufCMessage *msg, void *opaque)
{
	const Virtmgr__V1__ShutdownRequest *req = (const Virtmgr__V1__ShutdownRequest *)msg;
	Virtmgr__V1__Empty empty = VIRTMGR__V1__EMPTY__INIT;
	struct agent *a = opaque;

	ttrpc_call_reply(call, &empty.base, NULL, 0);
	if (ev_is_active(&shutdown_timer))
		return;
	shutdown_action = req->reboot ? AGENT_ACTION_REBOOT : AGENT_ACTION_POWEROFF;
	/* let the reply leave before everything stops */
	ev_timer_init(&shutdown_timer, shutdown_cb, 0.1, 0);
	shutdown_timer.data = a;
	ev_timer_start(a->loop, &shutdown_timer);
}

static uint64_t meminfo_kib(const char *text, const char *key)
{
	const char *p = strstr(text, key);

	return p ? strtoull(p + strlen(key), NULL, 10) : 0;
}

static void info_handler(struct ttrpc_call *call, const ProtobufCMessage *msg, void *opaque)
{
	Virtmgr__V1__GuestInfo info = VIRTMGR__V1__GUEST_INFO__INIT;
	struct agent *a = opaque;
	cleanup_free char *uptime = NULL, *meminfo = NULL, *loadavg = NULL;
	struct utsname un;
	char host[256] = "";
	size_t len;

	(void)msg;
	if (uname(&un) == 0)
		info.kernel_release = un.release;
	if (read_file("/proc/uptime", 4096, &uptime, &len, NULL) == 0)
		info.uptime_ms = (uint64_t)(strtod(uptime, NULL) * 1000.0);
	if (read_file("/proc/meminfo", 65536, &meminfo, &len, NULL) == 0) {
		info.mem_total_kib = meminfo_kib(meminfo, "MemTotal:");
		info.mem_available_kib = meminfo_kib(meminfo, "MemAvailable:");
	}
	if (read_file("/proc/loadavg", 4096, &loadavg, &len, NULL) == 0)
		sscanf(loadavg, "%lf %lf %lf", &info.load1, &info.load5, &info.load15);
	if (gethostname(host, sizeof(host) - 1) == 0)
		info.hostname = host;
	info.agent_version = AGENT_VERSION;
	info.cid = a->cid;
	ttrpc_call_reply(call, &info.base, NULL, 0);
}

static void ping_handler(struct ttrpc_call *call, const ProtobufCMessage *msg, void *opaque)
{
	const Virtmgr__V1__PingRequest *req = (const Virtmgr__V1__PingRequest *)msg;
	Virtmgr__V1__PingResponse resp = VIRTMGR__V1__PING_RESPONSE__INIT;
	struct agent *a = opaque;
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	resp.nonce = req->nonce;
	resp.uptime_ms = (uint64_t)(((double)now.tv_sec + (double)now.tv_nsec / 1e9 - a->started_at) * 1000.0);
	resp.payload_running = a->payload > 0;
	ttrpc_call_reply(call, &resp.base, NULL, 0);
}

/* Only the host (CID 2) may drive the agent over vsock. */
static void conn_open(struct ttrpc_conn *conn, void *opaque)
{
	const struct ttrpc_peer *peer = ttrpc_conn_peer(conn);

	(void)opaque;
	if (peer->family == AF_VSOCK && peer->cid != AGENT_HOST_CID) {
		log_warn("Agent: refusing a connection from CID %u", peer->cid);
		ttrpc_conn_close(conn);
	}
}

int agent_service_start(struct agent *a, uint32_t port, struct vm_error *err)
{
	struct ttrpc_listener *l;

	a->server = ttrpc_server_new(a->loop);
	ttrpc_server_set_conn_callbacks(a->server, conn_open, NULL, a);
	ttrpc_server_add_method(a->server, AGENT_SERVICE, "Exec", &virtmgr__v1__exec_request__descriptor, exec_handler,
				a);
	ttrpc_server_add_method(a->server, AGENT_SERVICE, "Shutdown", &virtmgr__v1__shutdown_request__descriptor,
				shutdown_handler, a);
	ttrpc_server_add_method(a->server, AGENT_SERVICE, "GetGuestInfo", &virtmgr__v1__empty__descriptor, info_handler,
				a);
	ttrpc_server_add_method(a->server, AGENT_SERVICE, "Ping", &virtmgr__v1__ping_request__descriptor, ping_handler,
				a);
	agent_grow_register(a, a->server); /* grow.c */
	if (a->agent_socket)
		l = ttrpc_server_listen_unix(a->server, a->agent_socket, 0600, err);
	else
		l = ttrpc_server_listen_vsock(a->server, VMADDR_CID_ANY, port, err);
	return l ? 0 : -1;
}
