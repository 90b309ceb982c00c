/* vm.c - VM registry and state machine.
 *
 * A struct vm lives from CreateVm until its owner connection closes (or, for
 * detached VMs, until it is dead and evicted). QEMU supervision is in
 * qemu.c; this file turns what QEMU and the guest report into AVF's states
 * and death reasons, and fans them out to WatchVm streams and WaitVm/StopVm
 * callers. Everything runs on the daemon's single loop.
 *
 * Guest progress before the agent connects comes from console markers that
 * the default image's init prints: "VIRTMGR: STARTED" (payload about to
 * run) and "VIRTMGR: EXIT <code>" (payload finished).
 *
 * Paths that clients name (kernel, initrd, disks) are opened with the
 * caller's filesystem uid/gid (setfsuid), so a client can never make the
 * daemon read a file the client itself could not; QEMU gets the open fds.
 */
#include "config.h"
#include "server/vm.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/fsuid.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lib/log.h"
#include "server/early.h"
#include "server/qemu.h"
#include "server/vms.h"
#include "server/statefile.h"
#include "server/vsock_host.h"

#define CMDLINE_MAX 2047            /* x86 COMMAND_LINE_SIZE - 1 */
#define CONSOLE_SINK_MAX (1u << 20) /* console bytes buffered for a slow client fd */
#define MAX_DEAD_DETACHED 64
#define RUN_DIR_MIN_FREE (256u << 10) /* console.log, qemu.log, guest.log need room */
#define MARKER_STARTED "VIRTMGR: STARTED"
#define MARKER_EXIT "VIRTMGR: EXIT "
#define MARKER_ERROR "VIRTMGR: ERROR "  /* "<ErrorCode> <message>", from vmagent */

typedef Virtmgr__V1__VmState vm_state_t;
typedef Virtmgr__V1__DeathReason death_t;

enum vm_waiter_kind { WAITER_STATE, WAITER_DEAD };

struct vm_waiter {
	struct vm_waiter *next;
	struct vm *vm;
	struct ttrpc_call *call;
	enum vm_waiter_kind kind;
	vm_state_t state;
	ev_timer timer;
};

struct vm_watcher {
	struct vm_watcher *next;
	struct vm *vm;
	struct ttrpc_call *call;
	bool logs;
};

/* Bounded, non-blocking writer for a client-supplied fd (console mirror). */
struct fd_sink {
	int fd;
	bool borrowed;          /* fd owned by someone else: never closed here */
	char *buf;
	size_t len;
	size_t dropped;
	ev_io io;
};

/* One AttachConsole client: console output is mirrored to it (bounded),
 * what it writes goes to the console input. */
struct console_attach {
	struct console_attach *next;
	struct vm *vm;
	struct fd_sink out;
	int fd;
	ev_io rio;
};

struct vm {
	struct vm *next;
	struct daemon *d;
	char id[13];
	char *name;
	uint32_t cid;
	vm_state_t state;
	death_t death_reason;
	int exit_code;
	bool has_exit_code;
	char message[VM_ERROR_MSG_MAX];
	uid_t owner_uid;
	pid_t owner_pid;
	uint64_t owner_conn;            /* 0 when detached */
	bool detached;
	bool suspended;
	char *accel;
	uint32_t memory_mib, cpus;
	uint64_t created_ns, started_ns;
	char *run_dir;
	/* configuration kept for start */
	int kernel_fd, initrd_fd;
	struct qemu_disk *disks;
	size_t ndisks;
	char *cmdline;
	uint32_t boot_timeout_ms;
	/* runtime */
	struct qemu *qemu;
	struct fd_sink console_out;
	int console_in_fd;              /* the client's console input fd (relayed) */
	ev_io console_in_io;
	struct console_attach *attached;
	int log_out_fd;
	int guest_log_fd;
	bool agent_connected;
	death_t guest_error_reason;     /* from NotifyError, used if it dies afterwards */
	ev_timer agent_timer;
	struct vsock_host_vm vsock;     /* guest vsock device (backend in user mode) */
	bool vsock_prepared;
	ev_io backend_io;               /* the backend's pidfd: readable when it exits */
	ev_timer backend_grace;
	int backend_grace_phase;        /* 0 grace, 1 asking QMP, 2 QEMU is shutting down */
	bool backend_reaped;
	char backend_death[96];        /* how the vsock backend ended, for the blame */
	char line[256];
	size_t line_len;
	bool stop_requested;            /* StopVm: death is SHUTDOWN whatever the path */
	bool kill_requested;            /* KillVm: death is KILLED */
	death_t forced_reason;          /* set by a timer that killed it (HANGUP) */
	ev_timer boot_timer, stop_timer;
	int stop_phase;
	struct vm_watcher *watchers;
	struct vm_waiter *waiters;
	struct vms_vm *vms;             /* guest agent protocol (vms.c) */
};

static const char *state_name(vm_state_t s)
{
	const ProtobufCEnumValue *v = protobuf_c_enum_descriptor_get_value(&virtmgr__v1__vm_state__descriptor, s);

	return v ? v->name + strlen("VM_STATE_") : "?";
}

static const char *death_name(death_t r)
{
	const ProtobufCEnumValue *v =
		protobuf_c_enum_descriptor_get_value(&virtmgr__v1__death_reason__descriptor, r);

	return v ? v->name + strlen("DEATH_REASON_") : "?";
}

/* ---------------------------------------------------------------- sinks */

static void sink_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct fd_sink *s = w->data;
	ssize_t n = write(s->fd, s->buf, s->len);

	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n < 0) {
		/* the client closed its end: stop mirroring */
		ev_io_stop(loop, w);
		if (!s->borrowed)
			close(s->fd);
		s->fd = -1;
		s->len = 0;
		return;
	}
	memmove(s->buf, s->buf + n, s->len - (size_t)n);
	s->len -= (size_t)n;
	if (!s->len)
		ev_io_stop(loop, w);
}

static void sink_write(struct ev_loop *loop, struct fd_sink *s, const char *data, size_t len)
{
	if (s->fd < 0)
		return;
	if (!s->len) {
		ssize_t n = write(s->fd, data, len);

		if (n < 0 && errno != EAGAIN && errno != EINTR) {
			if (!s->borrowed)
				close(s->fd);
			s->fd = -1;
			return;
		}
		if (n > 0) {
			data += n;
			len -= (size_t)n;
		}
		if (!len)
			return;
	}
	if (s->len + len > CONSOLE_SINK_MAX) {
		/* never let a client that does not read grow our memory */
		s->dropped += len;
		return;
	}
	if (!s->buf)
		s->buf = xmalloc(CONSOLE_SINK_MAX);
	memcpy(s->buf + s->len, data, len);
	s->len += len;
	if (!ev_is_active(&s->io)) {
		ev_io_init(&s->io, sink_cb, s->fd, EV_WRITE);
		s->io.data = s;
		ev_io_start(loop, &s->io);
	}
}

static void sink_close(struct ev_loop *loop, struct fd_sink *s)
{
	if (ev_is_active(&s->io))
		ev_io_stop(loop, &s->io);
	if (s->fd >= 0) {
		/* a last blocking-free attempt to flush what is buffered */
		if (s->len && write(s->fd, s->buf, s->len) < 0)
			s->len = 0;
		if (!s->borrowed)
			close(s->fd);
	}
	s->fd = -1;
	free(s->buf);
	s->buf = NULL;
	s->len = 0;
}

/* ---------------------------------------------------------------- events */

static void event_send(struct vm *vm, Virtmgr__V1__EventType type, const char *message)
{
	Virtmgr__V1__VmEvent ev = VIRTMGR__V1__VM_EVENT__INIT;

	ev.vm = vm->id;
	ev.type = type;
	ev.state = vm->state;
	ev.death_reason = vm->death_reason;
	ev.exit_code = vm->exit_code;
	ev.message = (char *)(message ? message : "");
	ev.timestamp_ns = now_real_ns();
	for (struct vm_watcher *w = vm->watchers; w; w = w->next)
		ttrpc_call_send(w->call, &ev.base);
}

static void waiter_unlink(struct vm_waiter *wt)
{
	for (struct vm_waiter **pp = &wt->vm->waiters; *pp; pp = &(*pp)->next)
		if (*pp == wt) {
			*pp = wt->next;
			break;
		}
	if (ev_is_active(&wt->timer))
		ev_timer_stop(wt->vm->d->loop, &wt->timer);
}

static void waiter_reply(struct vm_waiter *wt, bool reached)
{
	Virtmgr__V1__VmInfo info = VIRTMGR__V1__VM_INFO__INIT;

	vm_fill_info(wt->vm, &info);
	if (wt->kind == WAITER_STATE) {
		Virtmgr__V1__WaitVmResponse resp = VIRTMGR__V1__WAIT_VM_RESPONSE__INIT;

		resp.vm = &info;
		resp.reached = reached;
		ttrpc_call_reply(wt->call, &resp.base, NULL, 0);
	} else {
		Virtmgr__V1__VmInfoResponse resp = VIRTMGR__V1__VM_INFO_RESPONSE__INIT;

		resp.vm = &info;
		ttrpc_call_reply(wt->call, &resp.base, NULL, 0);
	}
}

static void waiters_check(struct vm *vm)
{
	struct vm_waiter *wt = vm->waiters, *next;

	for (; wt; wt = next) {
		bool dead = vm->state == VIRTMGR__V1__VM_STATE__VM_STATE_DEAD;
		bool reached = wt->kind == WAITER_STATE && vm->state >= wt->state;

		next = wt->next;
		if (!reached && !dead)
			continue;
		waiter_unlink(wt);
		waiter_reply(wt, wt->kind == WAITER_DEAD || reached);
		free(wt);
	}
}

static void vm_persist(struct vm *vm);

static void set_state(struct vm *vm, vm_state_t state)
{
	if (state <= vm->state && !(state == VIRTMGR__V1__VM_STATE__VM_STATE_DEAD && vm->state != state))
		return;
	log_info("vm %s (%s, cid %u): %s -> %s", vm->id, vm->name, vm->cid, state_name(vm->state),
		 state_name(state));
	vm->state = state;
	vm_persist(vm);
	event_send(vm, VIRTMGR__V1__EVENT_TYPE__EVENT_TYPE_STATE_CHANGED, NULL);
	waiters_check(vm);
}

/* ---------------------------------------------------------------- console */

static void console_detach(struct console_attach *a)
{
	struct ev_loop *loop = a->vm->d->loop;

	for (struct console_attach **pp = &a->vm->attached; *pp; pp = &(*pp)->next)
		if (*pp == a) {
			*pp = a->next;
			break;
		}
	ev_io_stop(loop, &a->rio);
	sink_close(loop, &a->out);      /* borrows a->fd, closed below */
	close(a->fd);
	free(a);
}

/* Console input: whatever arrives goes into QEMU's console socket; when
 * QEMU is not taking it the bytes are dropped, as a serial line would. */
static void console_input(struct vm *vm, int from, bool *eof)
{
	char buf[4096];
	ssize_t n = read(from, buf, sizeof(buf));
	ssize_t w;

	*eof = n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR);
	if (n > 0 && vm->qemu && (w = qemu_console_write(vm->qemu, buf, (size_t)n)) < 0 && w != -EAGAIN)
		log_debug("vm %s: console input: %s", vm->id, strerror((int)-w));
}

static void attach_read_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct console_attach *a = w->data;
	bool eof;

	console_input(a->vm, a->fd, &eof);
	if (eof)
		console_detach(a);
}

static void console_in_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct vm *vm = w->data;
	bool eof;

	console_input(vm, vm->console_in_fd, &eof);
	if (eof) {
		ev_io_stop(loop, w);
		close(steal_fd(&vm->console_in_fd));
	}
}

int vm_attach_console(struct vm *vm, int *client_fd, struct vm_error *err)
{
	struct console_attach *a;
	int sv[2];

	if (!vm->qemu || vm->state == VIRTMGR__V1__VM_STATE__VM_STATE_DEAD)
		return vm_error_set(err, VM_FAILED_PRECONDITION, "vm %s is %s: it has no console", vm->id,
				    state_name(vm->state));
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		return vm_error_set_errno(err, VM_RESOURCE_EXHAUSTED, errno, "vm %s: console socketpair", vm->id);
	fd_set_nonblock(sv[0], true);
	a = xzalloc(sizeof(*a));
	a->vm = vm;
	a->fd = sv[0];
	a->out.fd = sv[0];
	a->out.borrowed = true;
	ev_io_init(&a->rio, attach_read_cb, a->fd, EV_READ);
	a->rio.data = a;
	ev_io_start(vm->d->loop, &a->rio);
	a->next = vm->attached;
	vm->attached = a;
	*client_fd = sv[1];
	return 0;
}

/* ---------------------------------------------------------------- death */

static death_t death_from_exit(struct vm *vm, const struct qemu_exit *ex)
{
	if (vm->forced_reason != VIRTMGR__V1__DEATH_REASON__DEATH_REASON_NONE)
		return vm->forced_reason;
	if (vm->kill_requested)
		return VIRTMGR__V1__DEATH_REASON__DEATH_REASON_KILLED;
	if (vm->stop_requested)
		return VIRTMGR__V1__DEATH_REASON__DEATH_REASON_SHUTDOWN;
	if (vm->guest_error_reason != VIRTMGR__V1__DEATH_REASON__DEATH_REASON_NONE)
		return vm->guest_error_reason;
	if (ex->panicked || !strcmp(ex->shutdown_reason, "guest-panic"))
		return VIRTMGR__V1__DEATH_REASON__DEATH_REASON_CRASH;
	if (!strcmp(ex->shutdown_reason, "guest-reset"))
		return VIRTMGR__V1__DEATH_REASON__DEATH_REASON_REBOOT;
	if (ex->signal)
		return VIRTMGR__V1__DEATH_REASON__DEATH_REASON_KILLED;
	if (vm->state < VIRTMGR__V1__VM_STATE__VM_STATE_STARTED && ex->exit_code != 0)
		return VIRTMGR__V1__DEATH_REASON__DEATH_REASON_START_FAILED;
	if (!strcmp(ex->shutdown_reason, "guest-shutdown") || ex->exit_code == 0)
		return VIRTMGR__V1__DEATH_REASON__DEATH_REASON_SHUTDOWN;
	return VIRTMGR__V1__DEATH_REASON__DEATH_REASON_INFRASTRUCTURE_ERROR;
}

/*
 * The vsock backend is our child: it must be reaped, but never with a
 * waitpid(-1) that could steal QEMU's status. A reaper owns a dup of the
 * backend's pidfd and reaps exactly that process when it exits.
 */
struct backend_reaper {
	struct backend_reaper *next;
	ev_io io;
	int pidfd;
};

static struct backend_reaper *reapers;

static void reaper_free(struct ev_loop *loop, struct backend_reaper *r)
{
	for (struct backend_reaper **pp = &reapers; *pp; pp = &(*pp)->next)
		if (*pp == r) {
			*pp = r->next;
			break;
		}
	ev_io_stop(loop, &r->io);
	close(r->pidfd);
	free(r);
}

static void reaper_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct backend_reaper *r = w->data;
	siginfo_t si = { 0 };

	if (waitid(P_PIDFD, (id_t)r->pidfd, &si, WEXITED | WNOHANG) < 0 && errno == EAGAIN)
		return;
	reaper_free(loop, r);
}

static void backend_release(struct vm *vm)
{
	struct ev_loop *loop = vm->d->loop;

	if (!vm->vsock_prepared)
		return;
	if (ev_is_active(&vm->backend_io))
		ev_io_stop(loop, &vm->backend_io);
	if (ev_is_active(&vm->backend_grace))
		ev_timer_stop(loop, &vm->backend_grace);
	if (vm->vsock.backend_pidfd >= 0 && !vm->backend_reaped) {
		struct backend_reaper *r = xzalloc(sizeof(*r));

		r->pidfd = fcntl(vm->vsock.backend_pidfd, F_DUPFD_CLOEXEC, 3);
		if (r->pidfd < 0) {
			free(r);
		} else {
			ev_io_init(&r->io, reaper_cb, r->pidfd, EV_READ);
			r->io.data = r;
			ev_io_start(loop, &r->io);
			r->next = reapers;
			reapers = r;
		}
	}
	vsock_host_release(&vm->vsock);
	vm->vsock_prepared = false;
}

/* Daemon exit with a detached VM still running: stop watching its backend
 * but leave it (and its sockets) to the VM; the next daemon adopts both. */
static void backend_forget(struct vm *vm)
{
	if (!vm->vsock_prepared)
		return;
	if (ev_is_active(&vm->backend_io))
		ev_io_stop(vm->d->loop, &vm->backend_io);
	if (vm->vsock.backend_pidfd >= 0)
		close(steal_fd(&vm->vsock.backend_pidfd));
	free(vm->vsock.vhost_user_path);
	free(vm->vsock.uds_path);
	vm->vsock.vhost_user_path = vm->vsock.uds_path = NULL;
	vm->vsock_prepared = false;
}

static void vm_release_runtime(struct vm *vm)
{
	struct ev_loop *loop = vm->d->loop;

	backend_release(vm);
	if (ev_is_active(&vm->boot_timer))
		ev_timer_stop(loop, &vm->boot_timer);
	if (ev_is_active(&vm->stop_timer))
		ev_timer_stop(loop, &vm->stop_timer);
	sink_close(loop, &vm->console_out);
	if (ev_is_active(&vm->console_in_io))
		ev_io_stop(loop, &vm->console_in_io);
	if (vm->console_in_fd >= 0)
		close(steal_fd(&vm->console_in_fd));
	while (vm->attached)
		console_detach(vm->attached);
	if (vm->log_out_fd >= 0)
		close(steal_fd(&vm->log_out_fd));
	if (vm->guest_log_fd >= 0)
		close(steal_fd(&vm->guest_log_fd));
	if (ev_is_active(&vm->agent_timer))
		ev_timer_stop(loop, &vm->agent_timer);
	if (vm->kernel_fd >= 0)
		close(steal_fd(&vm->kernel_fd));
	if (vm->initrd_fd >= 0)
		close(steal_fd(&vm->initrd_fd));
	vms_close(vm);
	for (size_t i = 0; i < vm->ndisks; i++)
		if (vm->disks[i].fd >= 0)
			close(steal_fd(&vm->disks[i].fd));
}

static void vm_died(struct vm *vm, death_t reason, const char *message)
{
	struct daemon *d = vm->d;

	if (vm->state == VIRTMGR__V1__VM_STATE__VM_STATE_DEAD)
		return;
	vm->death_reason = reason;
	if (message && *message)
		snprintf(vm->message, sizeof(vm->message), "%s", message);
	log_info("vm %s (%s, cid %u) died: %s%s%s", vm->id, vm->name, vm->cid, death_name(reason),
		 *vm->message ? ": " : "", vm->message);
	if (vm->qemu) {
		qemu_free(vm->qemu, false);
		vm->qemu = NULL;
	}
	vm_release_runtime(vm);
	if (vm->run_dir) {
		int r = remove_tree(vm->run_dir);

		if (r < 0)
			log_warn("cannot remove %s: %s", vm->run_dir, strerror(-r));
	}
	if (d->nvms_alive)
		d->nvms_alive--;
	set_state(vm, VIRTMGR__V1__VM_STATE__VM_STATE_DEAD);
	event_send(vm, VIRTMGR__V1__EVENT_TYPE__EVENT_TYPE_DIED, vm->message);
	/* end every WatchVm stream: nothing more will happen */
	while (vm->watchers) {
		struct vm_watcher *w = vm->watchers;

		vm->watchers = w->next;
		ttrpc_call_set_cancel(w->call, NULL, NULL);
		ttrpc_call_finish(w->call);
		free(w);
	}
}

static void on_qemu_exit(void *opaque, const struct qemu_exit *ex)
{
	struct vm *vm = opaque;
	death_t reason = death_from_exit(vm, ex);
	char msg[VM_ERROR_MSG_MAX];

	if (reason == VIRTMGR__V1__DEATH_REASON__DEATH_REASON_START_FAILED ||
	    reason == VIRTMGR__V1__DEATH_REASON__DEATH_REASON_INFRASTRUCTURE_ERROR)
		snprintf(msg, sizeof(msg), "QEMU exited with status %d before the guest started: %.400s",
			 ex->exit_code, *ex->stderr_tail ? ex->stderr_tail : "(no output)");
	else if (ex->signal)
		snprintf(msg, sizeof(msg), "QEMU was killed by signal %d", ex->signal);
	else if (*ex->shutdown_reason)
		snprintf(msg, sizeof(msg), "QEMU exited (%s)", ex->shutdown_reason);
	else
		snprintf(msg, sizeof(msg), "QEMU exited with status %d", ex->exit_code);
	for (size_t n = strlen(msg); n && (msg[n - 1] == '\n' || msg[n - 1] == ' '); n--)
		msg[n - 1] = '\0';
	if (vm->forced_reason == VIRTMGR__V1__DEATH_REASON__DEATH_REASON_HANGUP)
		snprintf(msg, sizeof(msg), "the guest did not start within %u ms", vm->boot_timeout_ms);
	else if (vm->forced_reason == VIRTMGR__V1__DEATH_REASON__DEATH_REASON_AGENT_FAILED_TO_CONNECT)
		snprintf(msg, sizeof(msg), "%s", vm->message);
	else if (vm->forced_reason == VIRTMGR__V1__DEATH_REASON__DEATH_REASON_INFRASTRUCTURE_ERROR)
		snprintf(msg, sizeof(msg), "%s", vm->message);  /* says which part failed */
	else if (reason == vm->guest_error_reason)
		snprintf(msg, sizeof(msg), "%s", vm->message);  /* the guest's own words */
	vm_died(vm, reason, msg);
}

/* ---------------------------------------------------------------- console */

static void console_line(struct vm *vm, const char *line)
{
	if (!strncmp(line, MARKER_STARTED, strlen(MARKER_STARTED))) {
		vm_guest_started(vm);
	} else if (!strncmp(line, MARKER_EXIT, strlen(MARKER_EXIT))) {
		char *end;
		long code = strtol(line + strlen(MARKER_EXIT), &end, 10);

		if (end == line + strlen(MARKER_EXIT) || code < 0 || code > 255)
			return;
		vm_guest_finished(vm, (int)code);
	} else if (!strncmp(line, MARKER_ERROR, strlen(MARKER_ERROR))) {
		char *end;
		long code = strtol(line + strlen(MARKER_ERROR), &end, 10);

		if (end == line + strlen(MARKER_ERROR) || code < 0 || code > 255 || *end != ' ')
			return;
		vm_guest_error(vm, (int)code, end + 1);
	}
}

void vm_guest_started(struct vm *vm)
{
	if (vm->state >= VIRTMGR__V1__VM_STATE__VM_STATE_STARTED)
		return;
	if (ev_is_active(&vm->boot_timer))
		ev_timer_stop(vm->d->loop, &vm->boot_timer);
	set_state(vm, VIRTMGR__V1__VM_STATE__VM_STATE_STARTED);
	event_send(vm, VIRTMGR__V1__EVENT_TYPE__EVENT_TYPE_PAYLOAD_STARTED, NULL);
}

void vm_guest_ready(struct vm *vm)
{
	vm_guest_started(vm);
	if (vm->state >= VIRTMGR__V1__VM_STATE__VM_STATE_READY)
		return;
	set_state(vm, VIRTMGR__V1__VM_STATE__VM_STATE_READY);
	event_send(vm, VIRTMGR__V1__EVENT_TYPE__EVENT_TYPE_PAYLOAD_READY, NULL);
}

void vm_guest_finished(struct vm *vm, int exit_code)
{
	if (vm->has_exit_code || vm->state >= VIRTMGR__V1__VM_STATE__VM_STATE_FINISHED)
		return;
	vm_guest_started(vm);
	vm->exit_code = exit_code;
	vm->has_exit_code = true;
	set_state(vm, VIRTMGR__V1__VM_STATE__VM_STATE_FINISHED);     /* persists the exit code too */
	event_send(vm, VIRTMGR__V1__EVENT_TYPE__EVENT_TYPE_PAYLOAD_FINISHED, NULL);
}

void vm_guest_error(struct vm *vm, int code, const char *message)
{
	Virtmgr__V1__VmEvent ev = VIRTMGR__V1__VM_EVENT__INIT;
	char text[VM_ERROR_MSG_MAX];

	/* vmagent reports an error both on the console and through VirtualMachineService */
	snprintf(text, sizeof(text), "guest error %d: %s", code, message ? message : "");
	if (vm->guest_error_reason != VIRTMGR__V1__DEATH_REASON__DEATH_REASON_NONE && !strcmp(text, vm->message))
		return;
	snprintf(vm->message, sizeof(vm->message), "%s", text);
	vm->guest_error_reason = code == VIRTMGR__V1__ERROR_CODE__ERROR_CODE_PAYLOAD_INVALID_CONFIG
					 ? VIRTMGR__V1__DEATH_REASON__DEATH_REASON_INVALID_PAYLOAD_CONFIG
					 : VIRTMGR__V1__DEATH_REASON__DEATH_REASON_PAYLOAD_ERROR;
	log_warn("vm %s: %s", vm->id, vm->message);
	ev.vm = vm->id;
	ev.type = VIRTMGR__V1__EVENT_TYPE__EVENT_TYPE_ERROR;
	ev.state = vm->state;
	ev.error_code = code;
	ev.message = vm->message;
	ev.timestamp_ns = now_real_ns();
	for (struct vm_watcher *w = vm->watchers; w; w = w->next)
		ttrpc_call_send(w->call, &ev.base);
}

void vm_guest_log(struct vm *vm, uint64_t timestamp_ns, uint32_t priority, const char *source,
		  const char *message)
{
	Virtmgr__V1__VmEvent ev = VIRTMGR__V1__VM_EVENT__INIT;
	cleanup_free char *line = NULL;
	size_t len;

	if (vm->state == VIRTMGR__V1__VM_STATE__VM_STATE_DEAD)
		return;
	line = xasprintf("%llu.%06llu vm=%s <%u> %s: %s\n", (unsigned long long)(timestamp_ns / 1000000000ull),
			 (unsigned long long)(timestamp_ns % 1000000000ull / 1000), vm->id, priority,
			 source && *source ? source : "guest", message ? message : "");
	len = strlen(line);
	if (vm->guest_log_fd < 0) {
		cleanup_free char *path = xasprintf("%s/guest.log", vm->run_dir);

		vm->guest_log_fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0600);
	}
	if (vm->guest_log_fd >= 0 && write(vm->guest_log_fd, line, len) < 0)
		log_warn("vm %s: cannot write guest.log: %s", vm->id, strerror(errno));
	if (vm->log_out_fd >= 0 && write(vm->log_out_fd, line, len) < 0 && errno != EAGAIN)
		close(steal_fd(&vm->log_out_fd));
	ev.vm = vm->id;
	ev.type = VIRTMGR__V1__EVENT_TYPE__EVENT_TYPE_LOG;
	ev.state = vm->state;
	ev.message = line;
	ev.timestamp_ns = timestamp_ns;
	for (struct vm_watcher *w = vm->watchers; w; w = w->next)
		if (w->logs)
			ttrpc_call_send(w->call, &ev.base);
}

void vm_guest_connected(struct vm *vm)
{
	vm->agent_connected = true;
	if (ev_is_active(&vm->agent_timer))
		ev_timer_stop(vm->d->loop, &vm->agent_timer);
}

const char *vm_id(const struct vm *vm)
{
	return vm->id;
}

const char *vm_run_dir(const struct vm *vm)
{
	return vm->run_dir;
}

uint32_t vm_cid(const struct vm *vm)
{
	return vm->cid;
}

struct vms_vm *vm_vms(const struct vm *vm)
{
	return vm->vms;
}

void vm_fail(struct vm *vm, Virtmgr__V1__DeathReason reason, const char *message)
{
	if (vm->state == VIRTMGR__V1__VM_STATE__VM_STATE_DEAD || !vm->qemu)
		return;
	vm->forced_reason = reason;
	snprintf(vm->message, sizeof(vm->message), "%s", message);
	qemu_kill(vm->qemu);
}

static void on_qemu_console(void *opaque, const char *buf, size_t len)
{
	struct vm *vm = opaque;

	sink_write(vm->d->loop, &vm->console_out, buf, len);
	for (struct console_attach *a = vm->attached, *next; a; a = next) {
		next = a->next;
		sink_write(vm->d->loop, &a->out, buf, len);
		if (a->out.fd < 0)
			console_detach(a);      /* the client went away */
	}
	for (size_t i = 0; i < len; i++) {
		char c = buf[i];

		if (c == '\n') {
			vm->line[vm->line_len] = '\0';
			console_line(vm, vm->line);
			vm->line_len = 0;
		} else if (c != '\r' && vm->line_len < sizeof(vm->line) - 1) {
			vm->line[vm->line_len++] = c;
		}
	}
}

static void on_qemu_event(void *opaque, const char *name)
{
	struct vm *vm = opaque;

	if (!strcmp(name, "STOP"))
		vm->suspended = true;
	else if (!strcmp(name, "RESUME"))
		vm->suspended = false;
	log_debug("vm %s: QMP event %s", vm->id, name);
}

static const struct qemu_callbacks vm_qemu_cb = {
	.on_console = on_qemu_console,
	.on_event = on_qemu_event,
	.on_exit = on_qemu_exit,
};

/* ---------------------------------------------------------------- lookup */

bool vm_visible_to(const struct vm *vm, const struct ttrpc_peer *peer)
{
	if (!peer->has_cred)
		return false;
	return peer->uid == 0 || peer->uid == vm->owner_uid;
}

struct vm *vm_lookup(struct daemon *d, const char *ref, const struct ttrpc_peer *peer)
{
	struct vm *byname = NULL;

	if (!ref || !*ref)
		return NULL;
	for (struct vm *vm = d->vms; vm; vm = vm->next) {
		if (!vm_visible_to(vm, peer))
			continue;
		if (!strcmp(vm->id, ref))
			return vm;
		/* among several with one name, prefer the live one */
		if (!strcmp(vm->name, ref) &&
		    (!byname || byname->state == VIRTMGR__V1__VM_STATE__VM_STATE_DEAD))
			byname = vm;
	}
	return byname;
}

struct vm *vm_next(struct daemon *d, struct vm *prev)
{
	return prev ? prev->next : d->vms;
}

Virtmgr__V1__VmState vm_state(const struct vm *vm)
{
	return vm->state;
}

unsigned vm_count(const struct daemon *d)
{
	unsigned n = 0;

	for (struct vm *vm = d->vms; vm; vm = vm->next)
		n++;
	return n;
}

void vm_fill_info(const struct vm *vm, Virtmgr__V1__VmInfo *info)
{
	info->id = (char *)vm->id;
	info->name = vm->name;
	info->cid = vm->cid;
	info->state = vm->state;
	info->death_reason = vm->death_reason;
	info->exit_code = vm->exit_code;
	info->has_exit_code = vm->has_exit_code;
	info->message = (char *)vm->message;
	info->qemu_pid = vm->qemu ? qemu_pid(vm->qemu) : 0;
	info->run_dir = vm->state == VIRTMGR__V1__VM_STATE__VM_STATE_DEAD ? "" : vm->run_dir;
	info->owner_uid = vm->owner_uid;
	info->owner_pid = vm->owner_pid;
	info->accel = vm->accel;
	info->memory_mib = vm->memory_mib;
	info->cpus = vm->cpus;
	info->created_ns = vm->created_ns;
	info->started_ns = vm->started_ns;
	info->detached = vm->detached;
	info->early = vm->d->cfg.early;
	info->suspended = vm->suspended;
}

/* ---------------------------------------------------------------- create */

static bool cid_in_use(struct daemon *d, uint32_t cid)
{
	for (struct vm *vm = d->vms; vm; vm = vm->next)
		if (vm->cid == cid && vm->state != VIRTMGR__V1__VM_STATE__VM_STATE_DEAD)
			return true;
	return false;
}

/* Round-robin over the configured range, skipping CIDs of live VMs. */
static int cid_allocate(struct daemon *d, uint32_t *cid, struct vm_error *err)
{
	uint64_t span = (uint64_t)d->cfg.cid_max - d->cfg.cid_min + 1;

	for (uint64_t i = 0; i < span; i++) {
		uint32_t c = d->next_cid;

		d->next_cid = c >= d->cfg.cid_max ? d->cfg.cid_min : c + 1;
		if (!cid_in_use(d, c)) {
			*cid = c;
			return 0;
		}
	}
	return vm_error_set(err, VM_RESOURCE_EXHAUSTED, "no free CID in %u..%u", d->cfg.cid_min,
			    d->cfg.cid_max);
}

static bool name_valid(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > 64 || s[0] == '.' || s[0] == '-')
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
		      c == '_' || c == '-'))
			return false;
	}
	return true;
}

/*
 * The peer's supplementary groups as the kernel shows them in
 * /proc/<pid>/status, read while its pidfd proves the pid was not reused.
 * Return: how many were stored in @out (at most @max); 0 when unknown (then
 * the open runs with no supplementary group: never more access than the peer).
 */
static size_t peer_groups(const struct ttrpc_peer *peer, gid_t *out, size_t max)
{
	char path[64], line[4096];
	size_t n = 0;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)peer->pid);
	f = fopen(path, "re");
	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f)) {
		char *tok, *save = NULL;

		if (strncmp(line, "Groups:", 7))
			continue;
		for (tok = strtok_r(line + 7, " \t\n", &save); tok && n < max; tok = strtok_r(NULL, " \t\n", &save))
			out[n++] = (gid_t)strtoul(tok, NULL, 10);
		break;
	}
	fclose(f);
	/* still alive after the read: /proc/<pid> was the peer, not a successor */
	if (peer->pidfd < 0 || syscall(SYS_pidfd_send_signal, peer->pidfd, 0, NULL, 0) < 0)
		return 0;
	return n;
}

/*
 * Open @path as the caller would: fsuid, fsgid and supplementary groups are
 * the peer's for the duration of the open(), so neither a symlink, nor a
 * directory only the daemon may search, nor a group the daemon happens to
 * be in lets a client read a file it could not read itself.
 */
static int open_as_peer(const struct ttrpc_peer *peer, const char *field, const char *path, int flags,
			struct vm_error *err)
{
	bool switch_ids = geteuid() == 0 && peer->uid != 0;
	cleanup_free gid_t *saved = NULL, *groups = NULL;
	cleanup_close int pathfd = -1;
	int nsaved = 0, fd, e;
	struct stat st;

	if (!path || path[0] != '/')
		return vm_error_set(err, VM_INVALID_ARGUMENT, "%s: \"%s\" is not an absolute path", field,
				    path ? path : "");
	if (switch_ids) {
		size_t ngroups;

		nsaved = getgroups(0, NULL);
		saved = xcalloc((size_t)MAX(nsaved, 1), sizeof(*saved));
		nsaved = getgroups(MAX(nsaved, 1), saved);
		groups = xcalloc(256, sizeof(*groups));
		ngroups = peer_groups(peer, groups, 256);
		if (nsaved < 0 || setgroups(ngroups, groups) < 0)
			return vm_error_set_errno(err, VM_INTERNAL, errno, "%s: cannot take the caller's groups", field);
		setfsgid(peer->gid);
		setfsuid(peer->uid);
	}
	/* O_PATH first: a FIFO would block the loop in open() and a device
	 * node could act on being opened; only a regular file is reopened */
	pathfd = open(path, O_PATH | O_CLOEXEC);
	if (pathfd >= 0 && fstat(pathfd, &st) == 0 && S_ISREG(st.st_mode)) {
		char proc[64];

		snprintf(proc, sizeof(proc), "/proc/self/fd/%d", pathfd);
		fd = open(proc, flags | O_CLOEXEC | O_NOCTTY);
	} else {
		fd = -1;
		if (pathfd >= 0)
			errno = 0;   /* not a regular file */
	}
	e = errno;
	if (switch_ids) {
		setfsuid(geteuid());
		setfsgid(getegid());
		if (setgroups((size_t)nsaved, saved) < 0)
			log_error("cannot restore the daemon's supplementary groups: %s", strerror(errno));
	}
	if (fd < 0 && e == 0)
		return vm_error_set(err, VM_INVALID_ARGUMENT, "%s: %s is not a regular file", field, path);
	if (fd < 0)
		return vm_error_set_errno(err, VM_INVALID_ARGUMENT, e, "%s: cannot open %s", field, path);
	return fd;
}

static int take_fdref(struct ttrpc_call *call, const Virtmgr__V1__FdRef *ref, const char *field,
		      struct vm_error *err)
{
	int fd;

	if (!ref)
		return -1;
	fd = ttrpc_call_take_fd(call, ref->index);
	if (fd < 0)
		return vm_error_set(err, VM_INVALID_ARGUMENT,
				    "%s: fd index %u was not sent with the request (%zu fds received)", field,
				    ref->index, ttrpc_call_nfds(call));
	return fd;
}

static bool arg_valid(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == '"' || *s == 0x7f)
			return false;
	return true;
}

static bool env_valid_key(const char *s)
{
	const char *eq = strchr(s, '=');

	if (!eq || eq == s)
		return false;
	for (const char *p = s; p < eq; p++)
		if (!((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || *p == '_' ||
		      (p > s && *p >= '0' && *p <= '9')))
			return false;
	return true;
}

static void append(char *buf, size_t cap, size_t *len, bool *overflow, const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));

static void append(char *buf, size_t cap, size_t *len, bool *overflow, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (*overflow)
		return;
	va_start(ap, fmt);
	n = vsnprintf(buf + *len, cap - *len, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= cap - *len) {
		*overflow = true;
		return;
	}
	*len += (size_t)n;
}

/* The kernel command line: base options, the client's, payload env (init's
 * environment), then " -- " and the payload argv (init's argv). */
/* The payload (env, then " -- " argv) as kernel command line words, for a
 * guest init without the agent. Return: false when it cannot be written
 * there (double quotes, control characters, spaces in env values). */
static bool cmdline_payload(const Virtmgr__V1__VmConfig *c, char *buf, size_t cap)
{
	size_t len = 0;
	bool overflow = false;

	buf[0] = '\0';
	for (size_t i = 0; i < c->n_payload_env; i++) {
		if (!arg_valid(c->payload_env[i]) || strchr(c->payload_env[i], ' '))
			return false;
		append(buf, cap, &len, &overflow, " %s", c->payload_env[i]);
	}
	if (c->n_payload_args)
		append(buf, cap, &len, &overflow, " --");
	for (size_t i = 0; i < c->n_payload_args; i++) {
		const char *a = c->payload_args[i];

		if (!arg_valid(a))
			return false;
		if (!*a || strchr(a, ' ') || strchr(a, '\t'))
			append(buf, cap, &len, &overflow, " \"%s\"", a);
		else
			append(buf, cap, &len, &overflow, " %s", a);
	}
	return !overflow;
}

/*
 * The kernel command line: base options and the client's. The payload travels
 * in the config device tree, which vmagent reads; it is repeated on the
 * command line (env words, then " -- " argv, which the kernel hands to init)
 * for guests whose init has no agent, whenever it can be written there and
 * fits.
 */
static int build_cmdline(const Virtmgr__V1__VmConfig *c, char **out, struct vm_error *err)
{
	char buf[CMDLINE_MAX + 1], payload[CMDLINE_MAX + 1];
	size_t len = 0;
	bool overflow = false;

	for (size_t i = 0; i < c->n_payload_env; i++)
		if (!env_valid_key(c->payload_env[i]))
			return vm_error_set(err, VM_INVALID_ARGUMENT,
					    "payload_env[%zu]: \"%s\" is not KEY=VALUE with a key of [A-Za-z_][A-Za-z0-9_]*",
					    i, c->payload_env[i]);
	/* no_timer_check: under TCG on a loaded host the kernel's early timer
	 * interrupt check can fail and panic before init runs (docs/guest.md) */
	append(buf, sizeof(buf), &len, &overflow, "console=ttyS0 quiet panic=-1 no_timer_check");
	if (c->cmdline && *c->cmdline) {
		for (const char *p = c->cmdline; *p; p++)
			if ((unsigned char)*p < 0x20 || *p == 0x7f)
				return vm_error_set(err, VM_INVALID_ARGUMENT, "cmdline: contains control characters");
		append(buf, sizeof(buf), &len, &overflow, " %s", c->cmdline);
	}
	if (overflow)
		return vm_error_set(err, VM_INVALID_ARGUMENT, "cmdline: the kernel command line is longer than %d bytes",
				    CMDLINE_MAX);
	if (cmdline_payload(c, payload, sizeof(payload)) && len + strlen(payload) <= CMDLINE_MAX)
		append(buf, sizeof(buf), &len, &overflow, "%s", payload);
	*out = xstrdup(buf);
	return 0;
}

static void vm_free(struct vm *vm)
{
	vm_release_runtime(vm);
	if (vm->qemu)
		qemu_free(vm->qemu, false);
	free(vm->name);
	free(vm->accel);
	free(vm->run_dir);
	free(vm->disks);
	free(vm->cmdline);
	vms_vm_free(vm->vms);
	free(vm);
}

static void vm_unlink(struct daemon *d, struct vm *vm)
{
	for (struct vm **pp = &d->vms; *pp; pp = &(*pp)->next)
		if (*pp == vm) {
			*pp = vm->next;
			return;
		}
}

/* Keep at most MAX_DEAD_DETACHED dead detached VMs for inspection. */
static void evict_dead(struct daemon *d)
{
	unsigned n = 0;

	for (struct vm *vm = d->vms; vm; vm = vm->next)
		if (vm->detached && vm->state == VIRTMGR__V1__VM_STATE__VM_STATE_DEAD)
			n++;
	while (n > MAX_DEAD_DETACHED) {
		struct vm *oldest = NULL;

		for (struct vm *vm = d->vms; vm; vm = vm->next)
			if (vm->detached && vm->state == VIRTMGR__V1__VM_STATE__VM_STATE_DEAD &&
			    (!oldest || vm->created_ns < oldest->created_ns))
				oldest = vm;
		vm_unlink(d, oldest);
		vm_free(oldest);
		n--;
	}
}

static int validate_config(struct daemon *d, const Virtmgr__V1__VmConfig *c, struct vm *vm,
			   struct ttrpc_call *call, struct vm_error *err)
{
	const struct ttrpc_peer *peer = ttrpc_call_peer(call);
	long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
	uint64_t host_mib = pages > 0 && page > 0 ? (uint64_t)pages * (uint64_t)page >> 20 : 1024;
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);

	if (c->name && *c->name && !name_valid(c->name))
		return vm_error_set(err, VM_INVALID_ARGUMENT,
				    "name: \"%s\" must be 1-64 characters of [A-Za-z0-9._-], not starting with '.' or '-'",
				    c->name);
	if (c->name && *c->name) {
		for (struct vm *o = d->vms; o; o = o->next)
			if (o->owner_uid == peer->uid && o->state != VIRTMGR__V1__VM_STATE__VM_STATE_DEAD &&
			    !strcmp(o->name, c->name))
				return vm_error_set(err, VM_ALREADY_EXISTS,
						    "name: a VM named \"%s\" already exists (id %s)", c->name, o->id);
	}
	vm->memory_mib = c->memory_mib ? c->memory_mib : 256;
	if (vm->memory_mib < 32 || vm->memory_mib > host_mib)
		return vm_error_set(err, VM_INVALID_ARGUMENT, "memory_mib: %u is outside 32..%llu", vm->memory_mib,
				    (unsigned long long)host_mib);
	vm->cpus = c->cpus ? c->cpus : 1;
	if (vm->cpus > 64 || (ncpu > 0 && vm->cpus > 4 * (unsigned long)ncpu))
		return vm_error_set(err, VM_INVALID_ARGUMENT, "cpus: %u is outside 1..%ld", vm->cpus,
				    ncpu > 0 ? MIN(64, 4 * ncpu) : 64);
	if (c->instance_id.len != 0 && c->instance_id.len != 64)
		return vm_error_set(err, VM_INVALID_ARGUMENT, "instance_id: must be 64 bytes, not %zu",
				    c->instance_id.len);
	if (c->accel && *c->accel && strcmp(c->accel, "kvm") && strcmp(c->accel, "tcg"))
		return vm_error_set(err, VM_INVALID_ARGUMENT, "accel: \"%s\" is not kvm or tcg", c->accel);
	if (d->cfg.early &&
	    early_check_config(c->vendor_modules, c->assigned_devices, c->n_assigned_devices, err) < 0)
		return -1;
	if (c->vendor_modules && *c->vendor_modules)
		return vm_error_set(err, VM_INVALID_ARGUMENT, "vendor_modules: vendor modules are not supported");
	if (c->n_assigned_devices)
		return vm_error_set(err, VM_INVALID_ARGUMENT, "assigned_devices: device assignment is not supported");
	if (c->payload_cwd && *c->payload_cwd && c->payload_cwd[0] != '/')
		return vm_error_set(err, VM_INVALID_ARGUMENT, "payload_cwd: \"%s\" is not an absolute path",
				    c->payload_cwd);
	vm->accel = xstrdup(c->accel && *c->accel ? c->accel : d->accel);
	if (!strcmp(vm->accel, "kvm") && access("/dev/kvm", R_OK | W_OK) < 0)
		return vm_error_set_errno(err, VM_INVALID_ARGUMENT, errno, "accel: kvm requested but /dev/kvm");
	vm->boot_timeout_ms = c->boot_timeout_ms ? c->boot_timeout_ms : d->cfg.default_boot_timeout_ms;

	/* kernel and initrd: an fd from the client, a path opened as the client, or the default image */
	if (c->kernel_fd) {
		if ((vm->kernel_fd = take_fdref(call, c->kernel_fd, "kernel_fd", err)) < 0)
			return -1;
	} else if (c->kernel && *c->kernel) {
		if ((vm->kernel_fd = open_as_peer(peer, "kernel", c->kernel, O_RDONLY, err)) < 0)
			return -1;
	} else {
		cleanup_free char *k = xasprintf("%s/vmlinuz", d->cfg.guest_dir);

		vm->kernel_fd = open(k, O_RDONLY | O_CLOEXEC);
		if (vm->kernel_fd < 0)
			return vm_error_set_errno(err, VM_FAILED_PRECONDITION, errno,
						  "kernel: no kernel given and the default guest kernel %s is missing", k);
	}
	if (c->initrd_fd) {
		if ((vm->initrd_fd = take_fdref(call, c->initrd_fd, "initrd_fd", err)) < 0)
			return -1;
	} else if (c->initrd && *c->initrd) {
		if ((vm->initrd_fd = open_as_peer(peer, "initrd", c->initrd, O_RDONLY, err)) < 0)
			return -1;
	} else if (!c->kernel_fd && !(c->kernel && *c->kernel)) {
		cleanup_free char *i = xasprintf("%s/initramfs.img", d->cfg.guest_dir);

		vm->initrd_fd = open(i, O_RDONLY | O_CLOEXEC);
		if (vm->initrd_fd < 0)
			return vm_error_set_errno(err, VM_FAILED_PRECONDITION, errno,
						  "initrd: the default guest initramfs %s is missing", i);
	}
	vm->disks = xcalloc(c->n_disks, sizeof(*vm->disks));
	for (size_t i = 0; i < c->n_disks; i++) {
		const Virtmgr__V1__Disk *dk = c->disks[i];
		char field[32];
		int fd;

		snprintf(field, sizeof(field), "disks[%zu]", i);
		vm->disks[i].fd = -1;
		if (dk->fd)
			fd = take_fdref(call, dk->fd, field, err);
		else
			fd = open_as_peer(peer, field, dk->path, dk->read_only ? O_RDONLY : O_RDWR, err);
		if (fd < 0)
			return -1;
		vm->disks[i].fd = fd;
		vm->disks[i].read_only = dk->read_only;
		vm->ndisks = i + 1;
	}
	if (build_cmdline(c, &vm->cmdline, err) < 0)
		return -1;
	if (c->console_out) {
		if ((vm->console_out.fd = take_fdref(call, c->console_out, "console_out", err)) < 0)
			return -1;
		fd_set_nonblock(vm->console_out.fd, true);
	}
	if (c->console_in && (vm->console_in_fd = take_fdref(call, c->console_in, "console_in", err)) < 0)
		return -1;
	if (c->log_out && (vm->log_out_fd = take_fdref(call, c->log_out, "log_out", err)) < 0)
		return -1;
	return 0;
}

/*
 * Early mode (AVF early_virtmgr): the caller's executable decides which
 * declarations apply; the VM gets the declared static CID and its run
 * directory under <root>/mnt/vm/early/<cid>, wiped now and on destroy.
 * The pidfd, taken when the caller connected (SO_PEERPIDFD), pins the
 * caller while /proc/<pid>/exe is read: no pid reuse can fool the check.
 */
static int early_assign(struct daemon *d, const Virtmgr__V1__VmConfig *c, const struct ttrpc_peer *peer,
			struct vm *vm, struct vm_error *err)
{
	cleanup_close int pidfd = -1;
	cleanup_free char *exe = NULL;
	struct early_vm evm = { 0 };
	int r;

	if (!c->name || !*c->name)
		return vm_error_set(err, VM_INVALID_ARGUMENT, "name: early VMs must name a declared VM");
	if (c->detach && d->cfg.client_fd >= 0)
		return vm_error_set(err, VM_INVALID_ARGUMENT,
				    "detach: this daemon serves one client (--client-fd) and exits with it, so its VMs cannot outlive the client");
	if (peer->pidfd < 0)
		return vm_error_set(err, VM_PERMISSION_DENIED, "cannot identify caller pid %d: no pidfd for it",
				    (int)peer->pid);
	pidfd = fcntl(peer->pidfd, F_DUPFD_CLOEXEC, 3);
	if (pidfd < 0)
		return vm_error_set_errno(err, VM_INTERNAL, errno, "cannot duplicate the pidfd of caller pid %d",
					  (int)peer->pid);
	if (early_caller_path_pidfd(d->cfg.root ? d->cfg.root : "", NULL, peer->pid, pidfd, &exe, err) < 0 ||
	    early_find_vm(d->early, exe, c->name, &evm, err) < 0)
		return -1;
	if (cid_in_use(d, evm.cid)) {
		r = vm_error_set(err, VM_ALREADY_EXISTS, "early VM \"%s\": cid %u is in use by a running VM",
				 evm.name, evm.cid);
		early_vm_clear(&evm);
		return r;
	}
	vm->cid = evm.cid;
	r = early_run_dir_prepare(d->cfg.root ? d->cfg.root : "", evm.cid, &vm->run_dir, err);
	log_info("early VM \"%s\" for %s: cid %u (declared in %s:%u)", evm.name, exe, evm.cid, evm.file, evm.line);
	early_vm_clear(&evm);
	return r;
}

int vm_create(struct daemon *d, const Virtmgr__V1__VmConfig *config, struct ttrpc_call *call, struct vm **out,
	      struct vm_error *err)
{
	const struct ttrpc_peer *peer = ttrpc_call_peer(call);
	struct vm *vm;
	uint8_t rnd[6];

	if (!config)
		return vm_error_set(err, VM_INVALID_ARGUMENT, "config: missing");
	if (d->cfg.max_vms && d->nvms_alive >= d->cfg.max_vms)
		return vm_error_set(err, VM_RESOURCE_EXHAUSTED, "the daemon already runs its maximum of %u VMs",
				    d->cfg.max_vms);
	vm = xzalloc(sizeof(*vm));
	vm->d = d;
	vm->kernel_fd = vm->initrd_fd = vm->console_in_fd = vm->log_out_fd = vm->console_out.fd = -1;
	vm->guest_log_fd = -1;
	if (validate_config(d, config, vm, call, err) < 0) {
		vm_free(vm);
		return -1;
	}
	vm->vms = vms_vm_new(config, !config->kernel_fd && !(config->kernel && *config->kernel));
	if (d->cfg.early ? early_assign(d, config, peer, vm, err) < 0 : cid_allocate(d, &vm->cid, err) < 0) {
		vm_free(vm);
		return -1;
	}
	if (getrandom(rnd, sizeof(rnd), 0) != sizeof(rnd)) {
		vm_free(vm);
		return vm_error_set_errno(err, VM_INTERNAL, errno, "getrandom");
	}
	for (size_t i = 0; i < sizeof(rnd); i++)
		snprintf(vm->id + 2 * i, 3, "%02x", rnd[i]);
	vm->name = config->name && *config->name ? xstrdup(config->name) : xasprintf("vm-%u", vm->cid);
	vm->owner_uid = peer->uid;
	vm->owner_pid = peer->pid;
	vm->detached = config->detach;
	vm->owner_conn = config->detach ? 0 : ttrpc_conn_id(ttrpc_call_conn(call));
	vm->created_ns = now_real_ns();
	vm->state = VIRTMGR__V1__VM_STATE__VM_STATE_NOT_STARTED;
	if (!vm->run_dir)
		vm->run_dir = xasprintf("%s/vms/%u", d->cfg.run_dir, vm->cid);
	vm->next = d->vms;
	d->vms = vm;
	d->nvms_alive++;
	log_info("vm %s (%s): created for uid %u pid %d, cid %u", vm->id, vm->name, vm->owner_uid,
		 (int)vm->owner_pid, vm->cid);
	*out = vm;
	return 0;
}

/* ---------------------------------------------------------------- start/stop */

/* The backend exited while QEMU runs: the guest's vsock device is gone and
 * the guest would hang on it, so the VM is stopped (INFRASTRUCTURE_ERROR).
 * The backend also exits when QEMU goes away, and may notice that first:
 * QEMU closes the vhost-user socket while it shuts down, which can take long
 * on a loaded machine. So after a short grace period QEMU is asked over QMP:
 * still "running" (or paused) means the backend failed; "shutdown" or no
 * answer means QEMU is exiting by itself and its exit decides the death
 * reason. Should that exit never come, the VM is killed after 5 s anyway. */
static void backend_blame(struct vm *vm)
{
	ev_timer_stop(vm->d->loop, &vm->backend_grace);
	log_warn("vm %s: %s, stopping the VM", vm->id, vm->backend_death);
	if (!vm->kill_requested && !vm->stop_requested) {
		vm->forced_reason = VIRTMGR__V1__DEATH_REASON__DEATH_REASON_INFRASTRUCTURE_ERROR;
		snprintf(vm->message, sizeof(vm->message), "%s", vm->backend_death);
	}
	qemu_kill(vm->qemu);
}

static void backend_status_cb(void *opaque, const char *status)
{
	struct vm *vm = opaque;

	if (!vm->qemu || vm->state == VIRTMGR__V1__VM_STATE__VM_STATE_DEAD || vm->backend_grace_phase != 1)
		return;
	if (status && strcmp(status, "shutdown")) {
		backend_blame(vm);
		return;
	}
	log_info("vm %s: %s while QEMU shuts down (%s)", vm->id, vm->backend_death, status ? status : "QMP closed");
	vm->backend_grace_phase = 2;
}

static void backend_grace_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct vm *vm = w->data;

	if (!vm->qemu || vm->state == VIRTMGR__V1__VM_STATE__VM_STATE_DEAD)
		return;
	if (vm->backend_grace_phase == 0 && qemu_query_status(vm->qemu, backend_status_cb, vm) == 0) {
		vm->backend_grace_phase = 1;
		ev_timer_set(w, 5.0, 0);
		ev_timer_start(loop, w);
		return;
	}
	backend_blame(vm);
}

static void backend_exit_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct vm *vm = w->data;
	siginfo_t si = { 0 };

	if (waitid(P_PIDFD, (id_t)vm->vsock.backend_pidfd, &si, WEXITED | WNOHANG) < 0 && errno == EAGAIN)
		return;
	ev_io_stop(loop, w);
	vm->backend_reaped = true;
	snprintf(vm->backend_death, sizeof(vm->backend_death), "the vsock backend (pid %d) %s %d",
		 (int)vm->vsock.backend_pid, si.si_code == CLD_EXITED ? "exited with status" : "was killed by signal",
		 si.si_status);
	/* Status 0: the backend saw QEMU close the vhost-user socket, i.e. QEMU
	 * is exiting (a guest power-off); on a loaded machine that exit can take
	 * longer than the short grace meant for a crashed backend. */
	vm->backend_grace_phase = 0;
	ev_timer_init(&vm->backend_grace, backend_grace_cb,
		      si.si_code == CLD_EXITED && si.si_status == 0 ? 5.0 : 0.25, 0);
	vm->backend_grace.data = vm;
	ev_timer_start(loop, &vm->backend_grace);
}

static int vsock_prepare(struct vm *vm, struct qemu_config *qc, struct vm_error *err)
{
	struct daemon *d = vm->d;
	static const char *const levels[] = { [LOG_LVL_ERROR] = "error", [LOG_LVL_WARN] = "warning",
					      [LOG_LVL_INFO] = "info", [LOG_LVL_DEBUG] = "debug" };
	/* the backend logs to our stderr at our level */
	struct vsock_host_opts opts = { .backend = d->cfg.vsock_backend, .log_level = levels[log_get_level()],
					.log_fd = -1 };

	if (strcmp(d->vsock_mode, "kernel") && d->cfg.vsock_backend && access(d->cfg.vsock_backend, X_OK) < 0)
		return vm_error_set_errno(err, VM_FAILED_PRECONDITION, errno, "vm %s: vsock backend %s", vm->id,
					  d->cfg.vsock_backend);

	if (vsock_host_prepare(&vm->vsock, vm->run_dir, vm->cid,
			       !strcmp(d->vsock_mode, "kernel") ? VSOCK_HOST_KERNEL : VSOCK_HOST_USER, &opts, err) < 0)
		return vm_error_prefix(err, "vm %s: vsock", vm->id);
	vm->vsock_prepared = true;
	vsock_host_qemu_config(&vm->vsock, qc);
	if (vm->vsock.backend_pidfd >= 0) {
		ev_io_init(&vm->backend_io, backend_exit_cb, vm->vsock.backend_pidfd, EV_READ);
		vm->backend_io.data = vm;
		ev_io_start(d->loop, &vm->backend_io);
	}
	return 0;
}

/* VirtualMachineService for this VM on host vsock port = its CID (vms.c). */
static int vms_attach(struct vm *vm, struct vm_error *err)
{
	int lfd = vsock_host_listen(&vm->vsock, vm->cid, err);

	if (lfd < 0)
		return vm_error_prefix(err, "vm %s: VirtualMachineService listener", vm->id);
	return vms_listen(vm->d, vm, lfd, err);
}

static void boot_timeout_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct vm *vm = w->data;

	log_warn("vm %s: not started after %u ms, killing it", vm->id, vm->boot_timeout_ms);
	vm->forced_reason = VIRTMGR__V1__DEATH_REASON__DEATH_REASON_HANGUP;
	if (vm->qemu)
		qemu_kill(vm->qemu);
}

/* A full file system would let the VM start and then lose its console and
 * logs (every write failing): refuse to start it instead, naming the path. */
static int run_dir_check_space(const char *run_dir, struct vm_error *err)
{
	struct statvfs sv;

	if (statvfs(run_dir, &sv) < 0)
		return vm_error_set_errno(err, VM_INTERNAL, errno, "statvfs %s", run_dir);
	if ((uint64_t)sv.f_bavail * sv.f_frsize < RUN_DIR_MIN_FREE || (sv.f_files && sv.f_favail < 16))
		return vm_error_set(err, VM_RESOURCE_EXHAUSTED,
				    "run directory %s: %llu KiB and %llu inodes free, a VM needs at least %u KiB",
				    run_dir, (unsigned long long)sv.f_bavail * sv.f_frsize >> 10,
				    (unsigned long long)sv.f_favail, RUN_DIR_MIN_FREE >> 10);
	return 0;
}

/* Console input from the client's console_in fd (as from AttachConsole
 * sockets) is relayed into QEMU's console socket. */
static void console_in_start(struct vm *vm)
{
	if (vm->console_in_fd < 0)
		return;
	fd_set_nonblock(vm->console_in_fd, true);
	ev_io_init(&vm->console_in_io, console_in_cb, vm->console_in_fd, EV_READ);
	vm->console_in_io.data = vm;
	ev_io_start(vm->d->loop, &vm->console_in_io);
}

int vm_start(struct vm *vm, struct vm_error *err)
{
	struct daemon *d = vm->d;
	struct qemu_config qc = { 0 };
	const char *fw_cfg_config = NULL;
	int r;

	if (vm->state != VIRTMGR__V1__VM_STATE__VM_STATE_NOT_STARTED)
		return vm_error_set(err, VM_FAILED_PRECONDITION, "vm %s is %s, not NOT_STARTED", vm->id,
				    state_name(vm->state));
	remove_tree(vm->run_dir);
	r = mkdir_p(vm->run_dir, 0700);
	if (r < 0 || chmod(vm->run_dir, 0700) < 0) {
		vm_error_set_errno(err, r == -ENOSPC ? VM_RESOURCE_EXHAUSTED : VM_INTERNAL, r < 0 ? -r : errno,
				   "cannot create run directory %s", vm->run_dir);
		vm_died(vm, VIRTMGR__V1__DEATH_REASON__DEATH_REASON_START_FAILED, err->message);
		return -1;
	}
	if (run_dir_check_space(vm->run_dir, err) < 0 || vms_prepare(vm, vm->vms, &fw_cfg_config, err) < 0) {
		vm_died(vm, VIRTMGR__V1__DEATH_REASON__DEATH_REASON_START_FAILED, err->message);
		return -1;
	}
	qc.binary = d->cfg.qemu_binary;
	qc.accel = vm->accel;
	qc.run_dir = vm->run_dir;
	qc.kernel_fd = vm->kernel_fd;
	qc.initrd_fd = vm->initrd_fd;
	qc.cmdline = vm->cmdline;
	qc.fw_cfg_config = fw_cfg_config;
	qc.memory_mib = vm->memory_mib;
	qc.cpus = vm->cpus;
	qc.disks = vm->disks;
	qc.ndisks = vm->ndisks;
	qc.sandbox = d->cfg.sandbox;
	if (vsock_prepare(vm, &qc, err) < 0 || vms_attach(vm, err) < 0) {
		vm_died(vm, VIRTMGR__V1__DEATH_REASON__DEATH_REASON_START_FAILED, err->message);
		return -1;
	}
	set_state(vm, VIRTMGR__V1__VM_STATE__VM_STATE_STARTING);
	vm->started_ns = now_real_ns();
	if (qemu_start(d->loop, &qc, &vm_qemu_cb, vm, &vm->qemu, err) < 0) {
		vm->qemu = NULL;
		vm_died(vm, VIRTMGR__V1__DEATH_REASON__DEATH_REASON_START_FAILED, err->message);
		return -1;
	}
	console_in_start(vm);
	vm_persist(vm);
	if (vm->boot_timeout_ms) {
		ev_timer_init(&vm->boot_timer, boot_timeout_cb, vm->boot_timeout_ms / 1000.0, 0);
		vm->boot_timer.data = vm;
		ev_timer_start(d->loop, &vm->boot_timer);
	}
	return 0;
}

static void stop_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct vm *vm = w->data;

	if (!vm->qemu)
		return;
	if (vm->stop_phase == 0 && qemu_quit(vm->qemu) == 0) {
		log_info("vm %s: no power-off in time, sending QMP quit", vm->id);
		vm->stop_phase = 1;
		ev_timer_set(w, 2.0, 0);
		ev_timer_start(loop, w);
		return;
	}
	log_warn("vm %s: QEMU still running, killing it", vm->id);
	qemu_kill(vm->qemu);
}

void vm_stop(struct vm *vm, uint32_t timeout_ms, bool force)
{
	if (vm->state == VIRTMGR__V1__VM_STATE__VM_STATE_DEAD)
		return;
	vm->stop_requested = true;
	if (!vm->qemu) {
		vm_died(vm, VIRTMGR__V1__DEATH_REASON__DEATH_REASON_SHUTDOWN, "stopped before it was started");
		return;
	}
	if (force) {
		qemu_kill(vm->qemu);
		return;
	}
	if (ev_is_active(&vm->stop_timer))
		return;
	vm->stop_phase = qemu_powerdown(vm->qemu) == 0 ? 0 : 1;
	if (vm->stop_phase == 1 && qemu_quit(vm->qemu) < 0)
		vm->stop_phase = 2;
	ev_timer_init(&vm->stop_timer, stop_timer_cb,
		      vm->stop_phase == 0 ? (timeout_ms ? timeout_ms : vm->d->cfg.default_stop_timeout_ms) / 1000.0
					  : 2.0,
		      0);
	vm->stop_timer.data = vm;
	if (vm->stop_phase == 2)
		qemu_kill(vm->qemu);
	else
		ev_timer_start(vm->d->loop, &vm->stop_timer);
}

void vm_kill(struct vm *vm)
{
	if (vm->state == VIRTMGR__V1__VM_STATE__VM_STATE_DEAD)
		return;
	vm->kill_requested = true;
	if (!vm->qemu) {
		vm_died(vm, VIRTMGR__V1__DEATH_REASON__DEATH_REASON_KILLED, "killed before it was started");
		return;
	}
	qemu_kill(vm->qemu);
}

int vm_pause(struct vm *vm, bool pause, struct vm_error *err)
{
	if (!vm->qemu || vm->state == VIRTMGR__V1__VM_STATE__VM_STATE_DEAD)
		return vm_error_set(err, VM_FAILED_PRECONDITION, "vm %s is %s", vm->id, state_name(vm->state));
	if (qemu_pause(vm->qemu, pause) < 0)
		return vm_error_set(err, VM_UNAVAILABLE, "vm %s: QMP is not connected yet", vm->id);
	vm->suspended = pause;
	return 0;
}

/* ---------------------------------------------------------------- watchers */

static void watcher_cancel(struct ttrpc_call *call, void *opaque)
{
	struct vm_watcher *w = opaque;

	for (struct vm_watcher **pp = &w->vm->watchers; *pp; pp = &(*pp)->next)
		if (*pp == w) {
			*pp = w->next;
			break;
		}
	free(w);
}

void vm_watch(struct vm *vm, struct ttrpc_call *call, bool logs)
{
	struct vm_watcher *w;
	Virtmgr__V1__VmEvent ev = VIRTMGR__V1__VM_EVENT__INIT;

	/* the first event tells the current state, so a watcher never misses one */
	ev.vm = vm->id;
	ev.type = VIRTMGR__V1__EVENT_TYPE__EVENT_TYPE_STATE_CHANGED;
	ev.state = vm->state;
	ev.death_reason = vm->death_reason;
	ev.exit_code = vm->exit_code;
	ev.message = vm->message;
	ev.timestamp_ns = now_real_ns();
	if (ttrpc_call_send(call, &ev.base) < 0)
		return;
	if (vm->state == VIRTMGR__V1__VM_STATE__VM_STATE_DEAD) {
		ttrpc_call_finish(call);
		return;
	}
	w = xzalloc(sizeof(*w));
	w->vm = vm;
	w->call = call;
	w->logs = logs;
	w->next = vm->watchers;
	vm->watchers = w;
	ttrpc_call_set_cancel(call, watcher_cancel, w);
}

static void waiter_cancel(struct ttrpc_call *call, void *opaque)
{
	struct vm_waiter *wt = opaque;

	waiter_unlink(wt);
	free(wt);
}

static void waiter_timeout(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct vm_waiter *wt = w->data;

	waiter_unlink(wt);
	ttrpc_call_set_cancel(wt->call, NULL, NULL);
	waiter_reply(wt, false);
	free(wt);
}

static void waiter_add(struct vm *vm, struct ttrpc_call *call, enum vm_waiter_kind kind, vm_state_t state,
		       uint32_t timeout_ms)
{
	struct vm_waiter *wt = xzalloc(sizeof(*wt));

	wt->vm = vm;
	wt->call = call;
	wt->kind = kind;
	wt->state = state;
	ev_timer_init(&wt->timer, waiter_timeout, timeout_ms / 1000.0, 0);
	wt->timer.data = wt;
	if (timeout_ms)
		ev_timer_start(vm->d->loop, &wt->timer);
	wt->next = vm->waiters;
	vm->waiters = wt;
	ttrpc_call_set_cancel(call, waiter_cancel, wt);
	waiters_check(vm);
}

void vm_wait(struct vm *vm, Virtmgr__V1__VmState state, uint32_t timeout_ms, struct ttrpc_call *call)
{
	waiter_add(vm, call, WAITER_STATE, state, timeout_ms);
}

void vm_reply_when_dead(struct vm *vm, struct ttrpc_call *call)
{
	waiter_add(vm, call, WAITER_DEAD, VIRTMGR__V1__VM_STATE__VM_STATE_DEAD, 0);
}

/* ---------------------------------------------------------------- vsock */

struct vsock_request {
	struct ttrpc_call *call;
	struct vsock_host_conn *conn;
};

static void connect_done(void *opaque, int fd, const struct vm_error *err)
{
	struct vsock_request *rq = opaque;
	Virtmgr__V1__ConnectVsockResponse resp = VIRTMGR__V1__CONNECT_VSOCK_RESPONSE__INIT;
	Virtmgr__V1__FdRef ref = VIRTMGR__V1__FD_REF__INIT;

	ttrpc_call_set_cancel(rq->call, NULL, NULL);
	if (fd < 0) {
		ttrpc_call_fail_error(rq->call, err);
	} else {
		fd_set_nonblock(fd, false);
		resp.fd = &ref;
		ttrpc_call_reply(rq->call, &resp.base, &fd, 1);
	}
	free(rq);
}

static void connect_cancel(struct ttrpc_call *call, void *opaque)
{
	struct vsock_request *rq = opaque;

	vsock_host_connect_cancel(rq->conn);
	free(rq);
}

int vm_connect_vsock(struct vm *vm, uint32_t port, struct ttrpc_call *call, struct vm_error *err)
{
	uint64_t deadline = ttrpc_call_deadline_ns(call), now = now_mono_ns();
	double timeout = deadline > now ? (double)(deadline - now) / 1e9 : 10.0;
	struct vsock_request *rq;

	if (!vm->vsock_prepared || vm->state == VIRTMGR__V1__VM_STATE__VM_STATE_DEAD)
		return vm_error_set(err, VM_FAILED_PRECONDITION, "vm %s is %s: it has no vsock device", vm->id,
				    state_name(vm->state));
	if (port == 0 || port == UINT32_MAX)
		return vm_error_set(err, VM_INVALID_ARGUMENT, "port: %u is not a vsock port", port);
	rq = xzalloc(sizeof(*rq));
	rq->call = call;
	rq->conn = vsock_host_connect_async(vm->d->loop, &vm->vsock, port, timeout, connect_done, rq, err);
	if (!rq->conn) {
		free(rq);
		return -1;
	}
	ttrpc_call_set_cancel(call, connect_cancel, rq);
	return 0;
}

/* ---------------------------------------------------------------- restart */

/*
 * Every running VM is recorded in <run_dir>/vm.state (statefile.c), written
 * atomically whenever it changes. A daemon that restarts (crash, SIGKILL,
 * upgrade) reads them: detached VMs whose QEMU is still the same process
 * (pidfd + start time) are adopted - QMP reconnected, vsock backend watched
 * again - and owned VMs, whose owner connection died with the old daemon,
 * are stopped. A file that does not parse is reported and its directory
 * removed; it never stops the daemon from starting.
 */
static void vm_persist(struct vm *vm)
{
	struct statefile sf = { 0 };
	struct vm_error err = { 0 };
	cleanup_free char *path = NULL;
	uint64_t bst = 0;

	if (!vm->qemu || vm->state == VIRTMGR__V1__VM_STATE__VM_STATE_DEAD)
		return;
	path = xasprintf("%s/vm.state", vm->run_dir);
	statefile_set(&sf, "id", vm->id);
	statefile_set(&sf, "name", vm->name);
	statefile_set_u64(&sf, "cid", vm->cid);
	statefile_set_u64(&sf, "state", (uint64_t)vm->state);
	statefile_set_u64(&sf, "owner_uid", vm->owner_uid);
	statefile_set_u64(&sf, "owner_pid", (uint64_t)vm->owner_pid);
	statefile_set_u64(&sf, "detached", vm->detached);
	statefile_set_u64(&sf, "qemu_pid", (uint64_t)qemu_pid(vm->qemu));
	statefile_set_u64(&sf, "qemu_start_time", qemu_start_time(vm->qemu));
	statefile_set(&sf, "accel", vm->accel);
	statefile_set_u64(&sf, "memory_mib", vm->memory_mib);
	statefile_set_u64(&sf, "cpus", vm->cpus);
	statefile_set_u64(&sf, "created_ns", vm->created_ns);
	statefile_set_u64(&sf, "started_ns", vm->started_ns);
	if (vm->has_exit_code)
		statefile_set_u64(&sf, "exit_code", (uint64_t)vm->exit_code);
	if (vm->vsock_prepared && vm->vsock.backend_pid > 0 && proc_start_time(vm->vsock.backend_pid, &bst) == 0) {
		statefile_set_u64(&sf, "backend_pid", (uint64_t)vm->vsock.backend_pid);
		statefile_set_u64(&sf, "backend_start_time", bst);
	}
	if (statefile_write(&sf, path, &err) < 0)
		log_warn("vm %s: cannot record its state: %s", vm->id, err.message);
	statefile_clear(&sf);
}

/* Watch the adopted VM's backend again (it is no longer our child). */
static void restore_backend(struct vm *vm, const struct statefile *sf)
{
	struct vm_error err = { 0 };
	uint64_t pid, st, now;

	vm->vsock.mode = VSOCK_HOST_USER;
	vm->vsock.cid = vm->cid;
	vm->vsock.vhost_user_path = xasprintf("%s/vsock-vhost.sock", vm->run_dir);
	vm->vsock.uds_path = xasprintf("%s/vsock.sock", vm->run_dir);
	vm->vsock.backend_pid = -1;
	vm->vsock.backend_pidfd = -1;
	vm->vsock_prepared = true;
	if (statefile_get_u64(sf, "backend_pid", INT32_MAX, &pid, &err) < 0 ||
	    statefile_get_u64(sf, "backend_start_time", UINT64_MAX, &st, &err) < 0) {
		if (!strcmp(vm->d->vsock_mode, "kernel"))
			vm->vsock.mode = VSOCK_HOST_KERNEL;
		return;
	}
	vm->vsock.backend_pidfd = (int)syscall(SYS_pidfd_open, (pid_t)pid, 0);
	if (vm->vsock.backend_pidfd < 0 || proc_start_time((pid_t)pid, &now) < 0 || now != st) {
		snprintf(vm->message, sizeof(vm->message), "the vsock backend (pid %d) died while virtmgrd was down",
			 (int)pid);
		if (vm->vsock.backend_pidfd >= 0)
			close(steal_fd(&vm->vsock.backend_pidfd));
		vm->forced_reason = VIRTMGR__V1__DEATH_REASON__DEATH_REASON_INFRASTRUCTURE_ERROR;
		qemu_kill(vm->qemu);
		return;
	}
	fd_set_cloexec(vm->vsock.backend_pidfd, true);
	vm->vsock.backend_pid = (pid_t)pid;
	vm->backend_reaped = true;      /* not ours to reap: PID 1 does */
	ev_io_init(&vm->backend_io, backend_exit_cb, vm->vsock.backend_pidfd, EV_READ);
	vm->backend_io.data = vm;
	ev_io_start(vm->d->loop, &vm->backend_io);
}

static int restore_one(struct daemon *d, const char *dir, struct vm_error *err)
{
	cleanup_free char *path = xasprintf("%s/vm.state", dir);
	struct statefile sf = { 0 };
	uint64_t cid, state, uid, opid, det, qpid, qst, mem, cpus, cns, sns, code;
	const char *id, *name, *accel;
	struct vm *vm;
	int r = -1;

	if (statefile_read(&sf, path, err) < 0)
		return -1;
	id = statefile_get(&sf, "id");
	name = statefile_get(&sf, "name");
	accel = statefile_get(&sf, "accel");
	if (!id || strlen(id) != 12 || !name || !name_valid(name) || !accel) {
		vm_error_set(err, VM_DATA_LOSS, "%s: id, name or accel missing or invalid", path);
		goto out;
	}
	if (statefile_get_u64(&sf, "cid", UINT32_MAX, &cid, err) < 0 ||
	    statefile_get_u64(&sf, "state", VIRTMGR__V1__VM_STATE__VM_STATE_FINISHED, &state, err) < 0 ||
	    statefile_get_u64(&sf, "owner_uid", UINT32_MAX, &uid, err) < 0 ||
	    statefile_get_u64(&sf, "owner_pid", INT32_MAX, &opid, err) < 0 ||
	    statefile_get_u64(&sf, "detached", 1, &det, err) < 0 ||
	    statefile_get_u64(&sf, "qemu_pid", INT32_MAX, &qpid, err) < 0 ||
	    statefile_get_u64(&sf, "qemu_start_time", UINT64_MAX, &qst, err) < 0 ||
	    statefile_get_u64(&sf, "memory_mib", UINT32_MAX, &mem, err) < 0 ||
	    statefile_get_u64(&sf, "cpus", UINT32_MAX, &cpus, err) < 0 ||
	    statefile_get_u64(&sf, "created_ns", UINT64_MAX, &cns, err) < 0 ||
	    statefile_get_u64(&sf, "started_ns", UINT64_MAX, &sns, err) < 0) {
		vm_error_prefix(err, "%s", path);
		goto out;
	}
	if (cid_in_use(d, (uint32_t)cid)) {
		vm_error_set(err, VM_DATA_LOSS, "%s: cid %" PRIu64 " is already taken", path, cid);
		goto out;
	}
	vm = xzalloc(sizeof(*vm));
	vm->d = d;
	vm->kernel_fd = vm->initrd_fd = vm->console_in_fd = vm->log_out_fd = vm->console_out.fd = -1;
	vm->guest_log_fd = -1;
	snprintf(vm->id, sizeof(vm->id), "%s", id);
	vm->name = xstrdup(name);
	vm->accel = xstrdup(accel);
	vm->cid = (uint32_t)cid;
	vm->state = (vm_state_t)state;
	vm->owner_uid = (uid_t)uid;
	vm->owner_pid = (pid_t)opid;
	vm->detached = det;
	vm->owner_conn = det ? 0 : UINT64_MAX;  /* an owned VM's owner died with the old daemon */
	vm->memory_mib = (uint32_t)mem;
	vm->cpus = (uint32_t)cpus;
	vm->created_ns = cns;
	vm->started_ns = sns;
	if (statefile_get_u64(&sf, "exit_code", 255, &code, NULL) == 0) {
		vm->exit_code = (int)code;
		vm->has_exit_code = true;
	}
	vm->run_dir = xstrdup(dir);
	if (qemu_adopt(d->loop, (pid_t)qpid, qst, dir, &vm_qemu_cb, vm, &vm->qemu, err) < 0) {
		vm->qemu = NULL;
		vm_free(vm);
		vm_error_prefix(err, "%s: vm %s", path, id);
		goto out;
	}
	vm->next = d->vms;
	d->vms = vm;
	d->nvms_alive++;
	if (d->next_cid <= vm->cid && vm->cid < d->cfg.cid_max)
		d->next_cid = vm->cid + 1;
	restore_backend(vm, &sf);
	if (!det) {
		log_info("vm %s (%s, cid %u): its owner is gone, stopping it", vm->id, vm->name, vm->cid);
		vm->kill_requested = true;
		qemu_kill(vm->qemu);
	} else {
		struct vm_error verr = { 0 };

		log_info("vm %s (%s, cid %u): adopted running QEMU %d (%s)", vm->id, vm->name, vm->cid,
			 (int)qpid, state_name(vm->state));
		/* the guest agent reconnects to VirtualMachineService */
		vm->vms = vms_vm_new(NULL, false);
		if (vms_attach(vm, &verr) < 0)
			log_warn("vm %s: %s", vm->id, verr.message);
	}
	r = 0;
out:
	statefile_clear(&sf);
	return r;
}

unsigned vm_restore_all(struct daemon *d)
{
	cleanup_free char *base = xasprintf("%s/vms", d->cfg.run_dir);
	DIR *dir = opendir(base);
	struct dirent *de;
	unsigned n = 0;

	if (!dir)
		return 0;
	while ((de = readdir(dir))) {
		struct vm_error err = { 0 };
		cleanup_free char *path = NULL;
		char *end;

		strtoul(de->d_name, &end, 10);
		if (de->d_name[0] < '0' || de->d_name[0] > '9' || *end)
			continue;
		path = xasprintf("%s/%s", base, de->d_name);
		if (restore_one(d, path, &err) == 0) {
			n++;
			continue;
		}
		log_warn("not adopting %s: %s; removing it", path, err.message);
		remove_tree(path);
	}
	closedir(dir);
	return n;
}

/* ---------------------------------------------------------------- owners */

void vm_conn_closed(struct daemon *d, uint64_t conn_id)
{
	struct vm *vm, *next;

	for (vm = d->vms; vm; vm = next) {
		next = vm->next;
		if (vm->owner_conn != conn_id || vm->detached)
			continue;
		if (vm->state != VIRTMGR__V1__VM_STATE__VM_STATE_DEAD) {
			log_info("vm %s (%s): owner connection closed, killing it", vm->id, vm->name);
			vm_kill(vm);
		}
		/* the death callback may come later; keep the record until then */
		if (vm->state == VIRTMGR__V1__VM_STATE__VM_STATE_DEAD) {
			vm_unlink(d, vm);
			vm_free(vm);
		} else {
			vm->owner_conn = UINT64_MAX;    /* orphaned: dropped once dead */
		}
	}
	/* drop orphaned records that have died meanwhile */
	for (vm = d->vms; vm; vm = next) {
		next = vm->next;
		if (vm->owner_conn == UINT64_MAX && vm->state == VIRTMGR__V1__VM_STATE__VM_STATE_DEAD) {
			vm_unlink(d, vm);
			vm_free(vm);
		}
	}
	evict_dead(d);
}

void vm_shutdown_all(struct daemon *d)
{
	struct vm *vm, *next;

	for (vm = d->vms; vm; vm = next) {
		next = vm->next;
		if (vm->detached && vm->qemu && vm->state != VIRTMGR__V1__VM_STATE__VM_STATE_DEAD) {
			/* detached VMs outlive the daemon */
			qemu_free(vm->qemu, true);
			vm->qemu = NULL;
			backend_forget(vm);
		} else if (vm->qemu) {
			qemu_kill(vm->qemu);
			qemu_free(vm->qemu, false);
			vm->qemu = NULL;
			if (vm->run_dir)
				remove_tree(vm->run_dir);
		}
		vm_unlink(d, vm);
		while (vm->watchers) {
			struct vm_watcher *w = vm->watchers;

			vm->watchers = w->next;
			ttrpc_call_set_cancel(w->call, NULL, NULL);
			free(w);
		}
		while (vm->waiters) {
			struct vm_waiter *wt = vm->waiters;

			waiter_unlink(wt);
			ttrpc_call_set_cancel(wt->call, NULL, NULL);
			free(wt);
		}
		vm_free(vm);
	}
	/* backends already told to stop: PID 1 reaps them once we are gone */
	while (reapers)
		reaper_free(d->loop, reapers);
}
