/* vm.c - the VM core: registry, state machine and lifecycle.
 *
 * A struct vm lives from CreateVm until its owner connection closes (or, for
 * detached VMs, until it is dead and evicted). QEMU supervision is in
 * qemu.c; this file turns what QEMU, the vsock backend's watch
 * (vsock_host.c) and the guest (VirtualMachineService in vms.c, console
 * markers in vm-console.c) report into AVF's states and death reasons, and
 * fans them out to WatchVm streams and WaitVm/StopVm callers. Everything
 * runs on the daemon's single loop.
 *
 * Dependencies point one way: vm.c calls vms.c, vsock_host.c and qemu.c,
 * which report back only through the callback tables given to them
 * (struct vms_events, struct vsock_host_watch_ops, struct qemu_callbacks).
 * The core's own concerns live beside it: configuration and fd intake in
 * vm-config.c, the console in vm-console.c, state records and re-adoption
 * in vm-persist.c (all sharing vm-priv.h).
 */
#include "config.h"
#include "server/vm.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "lib/log.h"
#include "lib/reaper.h"
#include "server/attest.h"
#include "server/servicevm.h"
#include "server/caller.h"
#include "server/early.h"
#include "server/logfile.h"
#include "server/measure-vm.h"
#include "server/sandbox.h"
#include "server/uidpool.h"
#include "server/vm-config.h"
#include "server/vm-health.h"
#include "server/vm-persist.h"
#include "server/vm-priv.h"
#include "server/vm-crash.h"

#define MAX_DEAD_DETACHED 64
#define RUN_DIR_MIN_FREE (256u << 10) /* console.log, qemu.log, guest.log need room */

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

const char *vm_state_name(vm_state_t s)
{
	const ProtobufCEnumValue *v = protobuf_c_enum_descriptor_get_value(&virtmgr__v1__vm_state__descriptor, s);

	return v ? v->name + strlen("VM_STATE_") : "?";
}

static const char *death_name(death_t r)
{
	const ProtobufCEnumValue *v = protobuf_c_enum_descriptor_get_value(&virtmgr__v1__death_reason__descriptor, r);

	return v ? v->name + strlen("DEATH_REASON_") : "?";
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

void vm_event_crash(struct vm *vm, int32_t pid, const char *executable, int32_t signal, const char *id,
		    const char *message)
{
	Virtmgr__V1__VmEvent ev = VIRTMGR__V1__VM_EVENT__INIT;

	ev.vm = vm->id;
	ev.type = VIRTMGR__V1__EVENT_TYPE__EVENT_TYPE_CRASH;
	ev.state = vm->state;
	ev.death_reason = vm->death_reason;
	ev.exit_code = vm->exit_code;
	ev.message = (char *)(message ? message : "");
	ev.timestamp_ns = now_real_ns();
	ev.crash_pid = pid;
	ev.crash_executable = (char *)executable;
	ev.crash_signal = signal;
	ev.crash_report_id = (char *)id;
	for (struct vm_watcher *w = vm->watchers; w; w = w->next)
		ttrpc_call_send(w->call, &ev.base);
}

void vm_event(struct vm *vm, Virtmgr__V1__EventType type, const char *message)
{
	event_send(vm, type, message);
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

static void set_state(struct vm *vm, vm_state_t state)
{
	if (state <= vm->state && !(state == VIRTMGR__V1__VM_STATE__VM_STATE_DEAD && vm->state != state))
		return;
	log_info("vm %s (%s, cid %u): %s -> %s", vm->id, vm->name, vm->cid, vm_state_name(vm->state),
		 vm_state_name(state));
	vm->state = state;
	vm_persist(vm);
	event_send(vm, VIRTMGR__V1__EVENT_TYPE__EVENT_TYPE_STATE_CHANGED, NULL);
	waiters_check(vm);
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

static void vm_release_runtime(struct vm *vm)
{
	struct ev_loop *loop = vm->d->loop;

	vm_health_release(vm); /* its connection goes through the vsock device */
	vm_crash_release(vm);
	vsock_host_watch_release(&vm->vsock_watch);
	virtiofs_release(&vm->virtiofs);
	net_release(&vm->net);
	if (ev_is_active(&vm->boot_timer))
		ev_timer_stop(loop, &vm->boot_timer);
	if (ev_is_active(&vm->stop_timer))
		ev_timer_stop(loop, &vm->stop_timer);
	vm_console_release(vm);
	if (vm->log_out_fd >= 0)
		close(steal_fd(&vm->log_out_fd));
	logfile_free(steal_pointer(&vm->guest_log));
	if (vm->kernel_fd >= 0)
		close(steal_fd(&vm->kernel_fd));
	if (vm->initrd_fd >= 0)
		close(steal_fd(&vm->initrd_fd));
	vms_close(vm->vms);
	for (size_t i = 0; i < vm->ndisks; i++)
		if (vm->disks[i].fd >= 0)
			close(steal_fd(&vm->disks[i].fd));
	vm_config_release_images(vm); /* a dead VM uses no image */
}

/* An early VM's CID lock (taken with its run directory) goes with the VM. */
static void early_release(struct vm *vm)
{
	struct daemon *d = vm->d;
	struct vm_error e = { 0 };

	if (early_run_dir_remove(d->cfg.root ? d->cfg.root : "", vm->cid, &e) < 0)
		log_warn("vm %s: %s", vm->id, e.message);
}

/* The VM's processes are gone (QEMU reaped, the backend told to go): its
 * uid may serve another VM. Releasing twice is harmless. */
static void vm_uid_release(struct vm *vm)
{
	if (vm->uid && vm->d->uids)
		uidpool_release(vm->d->uids, vm->uid);
	vm->uid = 0;
}

static void vm_died(struct vm *vm, death_t reason, const char *message)
{
	struct daemon *d = vm->d;

	if (vm->state == VIRTMGR__V1__VM_STATE__VM_STATE_DEAD)
		return;
	vm->death_reason = reason;
	d->deaths[(unsigned)reason < ARRAY_SIZE(d->deaths) ? reason : 0]++;
	if (message && *message)
		snprintf(vm->message, sizeof(vm->message), "%s", message);
	log_info("vm %s (%s, cid %u) died: %s%s%s", vm->id, vm->name, vm->cid, death_name(reason),
		 *vm->message ? ": " : "", vm->message);
	if (reason == VIRTMGR__V1__DEATH_REASON__DEATH_REASON_CRASH)
		vm_crash_panic(vm); /* before the run directory and its console.log go */
	if (vm->qemu) {
		qemu_free(vm->qemu, false);
		vm->qemu = NULL;
	}
	vm_release_runtime(vm);
	vm_uid_release(vm);
	if (vm->run_dir) {
		int r = remove_tree(vm->run_dir);

		if (r < 0)
			log_warn("cannot remove %s: %s", vm->run_dir, strerror(-r));
	}
	if (d->cfg.early && vm->run_dir)
		early_release(vm);
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
		snprintf(msg, sizeof(msg), "QEMU exited with status %d before the guest started: %.400s", ex->exit_code,
			 *ex->stderr_tail ? ex->stderr_tail : "(no output)");
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
	else if (vm->forced_reason == VIRTMGR__V1__DEATH_REASON__DEATH_REASON_AGENT_FAILED_TO_CONNECT ||
		 vm->forced_reason == VIRTMGR__V1__DEATH_REASON__DEATH_REASON_WATCHDOG)
		snprintf(msg, sizeof(msg), "%s", vm->message);
	else if (vm->forced_reason == VIRTMGR__V1__DEATH_REASON__DEATH_REASON_INFRASTRUCTURE_ERROR)
		snprintf(msg, sizeof(msg), "%s", vm->message); /* says which part failed */
	else if (reason == vm->guest_error_reason)
		snprintf(msg, sizeof(msg), "%s", vm->message); /* the guest's own words */
	vm_died(vm, reason, msg);
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
	set_state(vm, VIRTMGR__V1__VM_STATE__VM_STATE_FINISHED); /* persists the exit code too */
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

static void vm_guest_log(struct vm *vm, uint64_t timestamp_ns, uint32_t priority, const char *source,
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
	/* bounded like console.log: the guest decides how much it logs */
	if (!vm->guest_log) {
		cleanup_free char *path = xasprintf("%s/guest.log", vm->run_dir);
		struct vm_error err = { 0 };

		vm->guest_log = logfile_open(path, &vm->d->cfg.log_limits, &err);
		if (!vm->guest_log && !vm->guest_log_failed)
			log_warn("vm %s: %s (guest log records are not kept)", vm->id, err.message);
		vm->guest_log_failed = !vm->guest_log;
	}
	if (vm->guest_log && logfile_write(vm->guest_log, line, len) < 0)
		log_warn("vm %s: cannot write guest.log: %s", vm->id, strerror(errno));
	/* a client that does not read loses records; it never blocks the daemon */
	if (vm->log_out_fd >= 0 && vm_client_fd_write(vm->log_out_fd, vm->log_out_sock, line, len) < 0 &&
	    errno != EAGAIN)
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

/* ---------------------------------------------------------------- guest agent */

/* What VirtualMachineService (vms.c) reports for this VM. */
static void vms_started(void *opaque)
{
	vm_guest_started(opaque);
}

static void vms_ready(void *opaque)
{
	vm_guest_ready(opaque);
}

static void vms_finished(void *opaque, int exit_code)
{
	vm_guest_finished(opaque, exit_code);
}

static void vms_error(void *opaque, int code, const char *message)
{
	vm_guest_error(opaque, code, message);
}

static void vms_log(void *opaque, uint64_t timestamp_ns, uint32_t priority, const char *source, const char *message)
{
	vm_guest_log(opaque, timestamp_ns, priority, source, message);
}

static void vms_connected(void *opaque)
{
}

static void vms_failed(void *opaque, enum vms_failure why, const char *message)
{
	struct vm *vm = opaque;

	if (vm->state == VIRTMGR__V1__VM_STATE__VM_STATE_DEAD || !vm->qemu)
		return;
	if (why == VMS_AGENT_TIMEOUT) {
		vm->forced_reason = VIRTMGR__V1__DEATH_REASON__DEATH_REASON_AGENT_FAILED_TO_CONNECT;
		snprintf(vm->message, sizeof(vm->message), "%s", message);
		qemu_kill(vm->qemu);
		return;
	}
	/* pausing the VM resets its vsock device: the agent reconnects after
	 * resume; before STARTING or once FINISHED a lost agent is expected */
	if (vm->suspended || vm->state >= VIRTMGR__V1__VM_STATE__VM_STATE_FINISHED ||
	    vm->state < VIRTMGR__V1__VM_STATE__VM_STATE_STARTING)
		return;
	vm_guest_error(vm, VIRTMGR__V1__ERROR_CODE__ERROR_CODE_UNKNOWN, message);
}

static const struct vms_events vm_vms_events = {
	.started = vms_started,
	.ready = vms_ready,
	.finished = vms_finished,
	.error = vms_error,
	.log = vms_log,
	.connected = vms_connected,
	.failed = vms_failed,
};

static void attest_extend_cb(void *opaque, struct ttrpc_call *call, const Virtmgr__V1__ExtendMeasurementRequest *req)
{
	attest_extend(opaque, call, req);
}

static void attest_request_cb(void *opaque, struct ttrpc_call *call,
			      const Virtmgr__V1__RequestAttestationRequest *req)
{
	attest_request(opaque, call, req);
}

static const struct vms_attest_ops vm_attest_ops = { .extend = attest_extend_cb, .request = attest_request_cb };

static void vm_attest_changed(void *opaque)
{
	vm_persist(opaque);
}

void vm_vms_new(struct vm *vm, const Virtmgr__V1__VmConfig *config, bool default_image)
{
	struct vms_identity id = { .id = vm->id, .name = vm->name, .cid = vm->cid, .run_dir = vm->run_dir };

	vm->vms = vms_vm_new(vm->d->vms_server, &id, config, default_image, &vm_vms_events, vm);
	/* its REMs and attestation requests (server/attest.c) */
	vm->attest = attest_vm_new(vm->d->servicevm, config && config->instance_id.len == 64 ? config->instance_id.data : NULL,
				   config && config->attestation ? config->attestation->hash_alg : NULL);
	vms_set_attest(vm->vms, &vm_attest_ops, vm->attest);
	/* a REM that changes is recorded at once: it survives a daemon restart */
	attest_vm_on_change(vm->attest, vm_attest_changed, vm);
}

/* VirtualMachineService for this VM on host vsock port = its CID (vms.c). */
int vm_vms_listen(struct vm *vm, struct vm_error *err)
{
	int lfd = vsock_host_listen(&vm->vsock, vm->cid, err);

	if (lfd < 0)
		return vm_error_prefix(err, "vm %s: VirtualMachineService listener", vm->id);
	if (vms_listen(vm->vms, lfd, err) < 0)
		return -1;
	vm_crash_listen(vm);
	return 0;
}

void vm_report_ready(struct vm *vm)
{
	vm_guest_ready(vm);
}

void vm_orphan(struct vm *vm)
{
	vm->detached = false;
	vm->owner_conn = UINT64_MAX;
}

int vm_vsock_listen(struct vm *vm, uint32_t port, struct vm_error *err)
{
	if (!vm->vsock_watch.vm)
		return vm_error_set(err, VM_FAILED_PRECONDITION, "vm %s: no vsock device", vm->id);
	return vsock_host_listen(&vm->vsock, port, err);
}

int vm_vsock_accept(struct vm *vm, int lfd, struct vm_error *err)
{
	return vsock_host_accept(&vm->vsock, lfd, err);
}

static void on_qemu_console(void *opaque, const char *buf, size_t len)
{
	vm_console_output(opaque, buf, len);
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

const struct qemu_callbacks vm_qemu_callbacks = {
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
		if (!strcmp(vm->name, ref) && (!byname || byname->state == VIRTMGR__V1__VM_STATE__VM_STATE_DEAD))
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
	{
		const char *alg;
		size_t len;
		const uint8_t *rim = attest_vm_rim(vm->attest, &len, &alg);

		info->measurement.data = (uint8_t *)rim;
		info->measurement.len = len;
		info->measurement_alg = (char *)alg;
	}
	info->network = net_info((struct net_vm *)&vm->net);
}

/* ---------------------------------------------------------------- create */

bool vm_cid_in_use(struct daemon *d, uint32_t cid)
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
		if (!vm_cid_in_use(d, c)) {
			*cid = c;
			return 0;
		}
	}
	return vm_error_set(err, VM_RESOURCE_EXHAUSTED, "no free CID in %u..%u", d->cfg.cid_min, d->cfg.cid_max);
}

struct vm *vm_alloc(struct daemon *d)
{
	struct vm *vm = xzalloc(sizeof(*vm));

	vm->d = d;
	vm->kernel_fd = vm->initrd_fd = vm->log_out_fd = -1;
	vm->vsock.backend_pid = -1;
	vm->vsock.backend_pidfd = -1;
	net_init(&vm->net);
	vm_console_init(&vm->console);
	return vm;
}

void vm_free(struct vm *vm)
{
	/* never started (created, then its owner went away or CreateVm failed
	 * late): vm_died() did not run, so the early CID is still locked */
	if (vm->d->cfg.early && vm->run_dir && vm->state == VIRTMGR__V1__VM_STATE__VM_STATE_NOT_STARTED)
		early_release(vm);
	vm_release_runtime(vm);
	if (vm->qemu)
		qemu_free(vm->qemu, false);
	vm_uid_release(vm);
	attest_vm_free(vm->attest);
	free(vm->name);
	free(vm->accel);
	free(vm->run_dir);
	free(vm->disks);
	for (size_t i = 0; i < vm->nshares; i++) {
		free(vm->shares[i].host_dir);
		free(vm->shares[i].tag);
		free(vm->shares[i].guest_path);
	}
	free(vm->shares);
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

/*
 * Early mode (AVF early_virtmgr): the caller's executable decides which
 * declarations apply; the VM gets the declared static CID and its run
 * directory under <root>/mnt/vm/early/<cid>, wiped now and on destroy.
 * The executable is the one the request's own connection was opened with
 * (caller.c reads it from the pidfd at connect) and must still be the same
 * file now: a client cannot connect, then execve() the declared binary.
 */
static int early_assign(struct daemon *d, const Virtmgr__V1__VmConfig *c, struct ttrpc_call *call, struct vm *vm,
			struct vm_error *err)
{
	const struct ttrpc_peer *peer = ttrpc_call_peer(call);
	const struct caller *caller;
	cleanup_free char *exe = NULL;
	struct early_vm evm = { 0 };
	int r;

	if (!c->name || !*c->name)
		return vm_error_set(err, VM_INVALID_ARGUMENT, "name: early VMs must name a declared VM");
	if (c->detach && d->cfg.client_fd >= 0)
		return vm_error_set(
			err, VM_INVALID_ARGUMENT,
			"detach: this daemon serves one client (--client-fd) and exits with it, so its VMs cannot outlive the client");
	caller = caller_of_conn(ttrpc_conn_id(ttrpc_call_conn(call)));
	if (!caller)
		return vm_error_set(err, VM_PERMISSION_DENIED, "caller pid %d was not identified when it connected",
				    (int)peer->pid);
	if (early_caller_exe(caller, NULL, &exe, err) < 0 || early_find_vm(d->early, exe, c->name, &evm, err) < 0)
		return -1;
	if (vm_cid_in_use(d, evm.cid)) {
		r = vm_error_set(err, VM_ALREADY_EXISTS, "early VM \"%s\": cid %u is in use by a running VM", evm.name,
				 evm.cid);
		early_vm_clear(&evm);
		return r;
	}
	vm->cid = evm.cid;
	r = early_run_dir_prepare(d->cfg.root ? d->cfg.root : "", evm.cid, &vm->run_dir, err);
	log_info("early VM \"%s\" for %s: cid %u (declared in %s:%u)", evm.name, exe, evm.cid, evm.file, evm.line);
	early_vm_clear(&evm);
	return r;
}

const struct ttrpc_peer *vm_daemon_peer(void)
{
	static struct ttrpc_peer self = { .family = AF_UNIX, .has_cred = true, .pidfd = -1 };

	self.pid = getpid();
	self.uid = geteuid();
	self.gid = getegid();
	return &self;
}

/* A live VM holds tap address slot @slot (net.h): never two with one /30. */
static bool vm_tap_slot_in_use(void *opaque, uint32_t slot)
{
	struct daemon *d = opaque;

	for (struct vm *vm = d->vms; vm; vm = vm->next)
		if (vm->net.mode == NET_MODE_TAP && vm->net.tap_name[0] && vm->net.tap_slot == slot &&
		    vm->state != VIRTMGR__V1__VM_STATE__VM_STATE_DEAD)
			return true;
	return false;
}

int vm_create(struct daemon *d, const Virtmgr__V1__VmConfig *config, struct ttrpc_call *call, struct vm **out,
	      struct vm_error *err)
{
	const struct ttrpc_peer *peer = call ? ttrpc_call_peer(call) : vm_daemon_peer();
	struct vm *vm;
	uint8_t rnd[6];

	if (!config)
		return vm_error_set(err, VM_INVALID_ARGUMENT, "config: missing");
	if (d->cfg.max_vms && d->nvms_alive >= d->cfg.max_vms)
		return vm_error_set(err, VM_RESOURCE_EXHAUSTED, "the daemon already runs its maximum of %u VMs",
				    d->cfg.max_vms);
	if (call && peer->uid == 0 && config->name && !strcmp(config->name, SERVICEVM_NAME) && !d->cfg.early)
		return vm_error_set(err, VM_INVALID_ARGUMENT,
				    "name: \"%s\" is reserved for root's Service VM (docs/attestation.md)", SERVICEVM_NAME);
	vm = vm_alloc(d);
	if (vm_config_validate(d, config, vm, call, err) < 0 || vm_health_configure(vm, config, err) < 0) {
		vm_free(vm);
		return -1;
	}
	if (d->cfg.early && !call) {
		vm_free(vm);
		return vm_error_set(err, VM_FAILED_PRECONDITION, "early mode runs no VMs of the daemon's own");
	}
	if (d->cfg.early ? early_assign(d, config, call, vm, err) < 0 : cid_allocate(d, &vm->cid, err) < 0) {
		vm_free(vm);
		return -1;
	}
	if (net_config(&vm->net, config->network, vm->cid, err) < 0 ||
	    net_tap_assign(&vm->net, vm->cid, &d->net_pool, vm_tap_slot_in_use, d, err) < 0) {
		vm_free(vm);
		return -1;
	}
	if (getrandom(rnd, sizeof(rnd), 0) != sizeof(rnd)) {
		vm_free(vm);
		return vm_error_errno(err, errno, "getrandom");
	}
	for (size_t i = 0; i < sizeof(rnd); i++)
		snprintf(vm->id + 2 * i, 3, "%02x", rnd[i]);
	vm->name = config->name && *config->name ? xstrdup(config->name) : xasprintf("vm-%u", vm->cid);
	vm->owner_uid = peer->uid;
	vm->owner_pid = peer->pid;
	if (vm_config_reserve_images(vm, err) < 0) {
		vm_free(vm);
		return -1;
	}
	vm->detached = config->detach;
	vm->owner_conn = config->detach || !call ? 0 : ttrpc_conn_id(ttrpc_call_conn(call));
	vm->daemon_owned = !call;
	vm->created_ns = now_real_ns();
	vm->state = VIRTMGR__V1__VM_STATE__VM_STATE_NOT_STARTED;
	if (!vm->run_dir)
		vm->run_dir = xasprintf("%s/vms/%u", d->cfg.run_dir, vm->cid);
	vm_vms_new(vm, config, !config->kernel_fd && !(config->kernel && *config->kernel));
	/* the launch measurement, before QEMU ever runs (docs/attestation.md) */
	if (measure_vm(vm, config, err) < 0) {
		vm_free(vm);
		return -1;
	}
	{
		char **net_strings;
		size_t n_net = net_fdt_strings(&vm->net, &net_strings);

		vms_vm_set_network(vm->vms, net_strings, n_net);
	}
	vm->next = d->vms;
	d->vms = vm;
	d->nvms_alive++;
	log_info("vm %s (%s): created for uid %u pid %d, cid %u", vm->id, vm->name, vm->owner_uid, (int)vm->owner_pid,
		 vm->cid);
	*out = vm;
	return 0;
}

/* ---------------------------------------------------------------- start/stop */

/* ---------------------------------------------------------------- vsock backend */

static int backend_query(void *opaque, void (*done)(void *arg, const char *status), void *arg)
{
	struct vm *vm = opaque;

	if (!vm->qemu || vm->state == VIRTMGR__V1__VM_STATE__VM_STATE_DEAD)
		return -1;
	return qemu_query_status(vm->qemu, done, arg);
}

/* A helper is gone while QEMU runs (vsock_host.c or virtiofs.c decided):
 * the guest would hang on its vsock device or its shared folder, so the VM
 * is stopped, blaming the helper unless a stop or kill was asked for anyway. */
static void helper_failed(void *opaque, const char *message)
{
	struct vm *vm = opaque;

	if (!vm->qemu || vm->state == VIRTMGR__V1__VM_STATE__VM_STATE_DEAD)
		return;
	log_warn("vm %s: %s, stopping the VM", vm->id, message);
	if (!vm->kill_requested && !vm->stop_requested) {
		vm->forced_reason = VIRTMGR__V1__DEATH_REASON__DEATH_REASON_INFRASTRUCTURE_ERROR;
		snprintf(vm->message, sizeof(vm->message), "%s", message);
	}
	qemu_kill(vm->qemu);
}

void vm_net_adopt(struct vm *vm, const struct statefile *sf)
{
	struct vm_error err = { 0 };
	bool alive = true;

	if (net_adopt(&vm->net, sf, vm->cid, &vm->d->net_pool, vm->d->loop, helper_failed, vm, &alive, &err) < 0) {
		log_warn("vm %s: network: %s", vm->id, err.message);
		return;
	}
	/* a re-adopted tap VM: the table is ours to keep in shape */
	if (vm->net.mode == NET_MODE_TAP && !vm->d->net_pool.tried)
		net_pool_setup(&vm->d->net_pool);
	if (!alive && vm->qemu) {
		log_warn("vm %s: %s, stopping the VM", vm->id, vm->net.death);
		vm->forced_reason = VIRTMGR__V1__DEATH_REASON__DEATH_REASON_INFRASTRUCTURE_ERROR;
		snprintf(vm->message, sizeof(vm->message), "%s", vm->net.death);
		qemu_kill(vm->qemu);
	}
}

static const struct vsock_host_watch_ops vm_backend_ops = {
	.query = backend_query,
	.failed = helper_failed,
};

void vm_vsock_watch(struct vm *vm, bool ours)
{
	vsock_host_watch_start(&vm->vsock_watch, vm->d->loop, &vm->vsock, ours, &vm_backend_ops, vm);
}

static int vsock_prepare(struct vm *vm, struct qemu_config *qc, struct vm_error *err)
{
	struct daemon *d = vm->d;
	static const char *const levels[] = { [LOG_LVL_ERROR] = "error",
					      [LOG_LVL_WARN] = "warning",
					      [LOG_LVL_INFO] = "info",
					      [LOG_LVL_DEBUG] = "debug" };
	/* the backend logs to our stderr at our level */
	struct sandbox sb = { .change_ids = vm->uid != 0, .uid = vm->uid, .gid = (gid_t)vm->uid, .report_fd = -1 };
	struct vsock_host_opts opts = {
		.backend = d->cfg.vsock_backend, .log_level = levels[log_get_level()], .log_fd = -1, .confine = &sb
	};

	if (strcmp(d->vsock_mode, "kernel") && d->cfg.vsock_backend && access(d->cfg.vsock_backend, X_OK) < 0)
		return vm_error_set_errno(err, VM_FAILED_PRECONDITION, errno, "vm %s: vsock backend %s", vm->id,
					  d->cfg.vsock_backend);

	if (vsock_host_prepare(&vm->vsock, vm->run_dir, vm->cid,
			       !strcmp(d->vsock_mode, "kernel") ? VSOCK_HOST_KERNEL : VSOCK_HOST_USER, &opts, err) < 0)
		return vm_error_prefix(err, "vm %s: vsock", vm->id);
	vm_vsock_watch(vm, true);
	vsock_host_qemu_config(&vm->vsock, qc);
	return 0;
}

/* A virtiofsd is gone while QEMU runs: the guest's file system would hang
 * on it, so the VM is stopped as for a dead vsock backend
 * (INFRASTRUCTURE_ERROR), with a message naming the share. */
/* One virtiofsd per share, as the VM's owner (server/virtiofs.h). */
static int shares_prepare(struct vm *vm, struct qemu_config *qc, struct qemu_share *qs, struct vm_error *err)
{
	struct virtiofs_ids ids = { .change_ids = geteuid() == 0,
				    .owner_uid = vm->owner_uid,
				    .owner_gid = vm->owner_gid,
				    .qemu_uid = vm->uid };

	if (!vm->nshares)
		return 0;
	if (ids.change_ids && vm->owner_uid == 0)
		return vm_error_set(
			err, VM_FAILED_PRECONDITION,
			"vm %s: shares of a VM created by root are not served (virtiofsd never runs as root)", vm->id);
	if (virtiofs_start(&vm->virtiofs, vm->d->loop, vm->run_dir, vm->shares, vm->nshares, &ids, helper_failed, vm,
			   err) < 0)
		return vm_error_prefix(err, "vm %s", vm->id);
	for (size_t i = 0; i < vm->nshares; i++) {
		qs[i].tag = vm->shares[i].tag;
		qs[i].socket = virtiofs_socket_path(&vm->virtiofs, i);
	}
	qc->shares = qs;
	qc->nshares = vm->nshares;
	return 0;
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

/* A fresh run directory, given to the VM's own uid when the daemon is root
 * (docs/sandbox.md); that uid is allocated here and held until the VM dies. */
static int vm_run_dir_create(struct vm *vm, struct vm_error *err)
{
	struct daemon *d = vm->d;
	struct sandbox sb = { .change_ids = d->sandboxed, .report_fd = -1 };
	cleanup_free char *parent = xstrdup(vm->run_dir);
	char *slash = strrchr(parent, '/');
	int r;

	/* the VM's uid reaches its directory by path but lists no other */
	if (slash && slash != parent) {
		*slash = '\0';
		r = mkdir_p(parent, d->sandboxed ? 0711 : 0700);
		if (r < 0)
			return vm_error_set_errno(err, r == -ENOSPC ? VM_RESOURCE_EXHAUSTED : VM_INTERNAL, -r,
						  "cannot create %s", parent);
	}
	if (sb.change_ids) {
		if (sandbox_dir_reachable(parent, err) < 0)
			return vm_error_prefix(err, "vm %s", vm->id);
		if (!vm->uid && uidpool_alloc(d->uids, &vm->uid, err) < 0)
			return vm_error_prefix(err, "vm %s", vm->id);
		sb.uid = vm->uid;
		sb.gid = (gid_t)vm->uid;
	}
	return sandbox_run_dir_prepare(vm->run_dir, &sb, err);
}

int vm_start(struct vm *vm, struct vm_error *err)
{
	struct daemon *d = vm->d;
	struct qemu_config qc = { 0 };
	struct qemu_share qs[VIRTIOFS_MAX_SHARES];
	const char *fw_cfg_config = NULL;
	struct marker_key key;
	int r;

	if (vm->state != VIRTMGR__V1__VM_STATE__VM_STATE_NOT_STARTED)
		return vm_error_set(err, VM_FAILED_PRECONDITION, "vm %s is %s, not NOT_STARTED", vm->id,
				    vm_state_name(vm->state));
	remove_tree(vm->run_dir);
	if (vm_run_dir_create(vm, err) < 0) {
		vm_died(vm, VIRTMGR__V1__DEATH_REASON__DEATH_REASON_START_FAILED, err->message);
		return -1;
	}
	/* a fresh key per boot: console markers are believed only when signed with it */
	if (run_dir_check_space(vm->run_dir, err) < 0 || marker_key_generate(&key, err) < 0) {
		vm_died(vm, VIRTMGR__V1__DEATH_REASON__DEATH_REASON_START_FAILED, err->message);
		return -1;
	}
	marker_verifier_init(&vm->markers, &key);
	vm->has_marker_key = true;
	r = vms_prepare(vm->vms, &key, &fw_cfg_config, err);
	explicit_bzero(&key, sizeof(key));
	if (r < 0) {
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
	qc.log_limits = &d->cfg.log_limits;
	qc.tcg_tb_size_mib = d->cfg.tcg_tb_size_mib;
	qc.balloon = !d->cfg.no_balloon;
	/* the VM's own uid, no capabilities, no new privileges (docs/sandbox.md) */
	struct sandbox sb = { .change_ids = vm->uid != 0, .uid = vm->uid, .gid = (gid_t)vm->uid, .report_fd = -1 };
	qc.confine = &sb;
	if (vsock_prepare(vm, &qc, err) < 0 || vm_vms_listen(vm, err) < 0 || shares_prepare(vm, &qc, qs, err) < 0 ||
	    net_start(&vm->net, d->loop, vm->run_dir, &sb, helper_failed, vm, err) < 0) {
		vm_died(vm, VIRTMGR__V1__DEATH_REASON__DEATH_REASON_START_FAILED, err->message);
		return -1;
	}
	net_qemu_config(&vm->net, &qc);
	set_state(vm, VIRTMGR__V1__VM_STATE__VM_STATE_STARTING);
	vm->started_ns = now_real_ns();
	r = qemu_start(d->loop, &qc, &vm_qemu_callbacks, vm, &vm->qemu, err);
	net_qemu_started(&vm->net);
	if (r < 0) {
		vm->qemu = NULL;
		vm_died(vm, VIRTMGR__V1__DEATH_REASON__DEATH_REASON_START_FAILED, err->message);
		return -1;
	}
	vm_console_start(vm);
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
	ev_timer_init(
		&vm->stop_timer, stop_timer_cb,
		vm->stop_phase == 0 ? (timeout_ms ? timeout_ms : vm->d->cfg.default_stop_timeout_ms) / 1000.0 : 2.0, 0);
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
		return vm_error_set(err, VM_FAILED_PRECONDITION, "vm %s is %s", vm->id, vm_state_name(vm->state));
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

	if (!vm->vsock_watch.vm || vm->state == VIRTMGR__V1__VM_STATE__VM_STATE_DEAD)
		return vm_error_set(err, VM_FAILED_PRECONDITION, "vm %s is %s: it has no vsock device", vm->id,
				    vm_state_name(vm->state));
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
			vm->owner_conn = UINT64_MAX; /* orphaned: dropped once dead */
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
			vsock_host_watch_forget(&vm->vsock_watch);
			net_forget(&vm->net);
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
	reaper_drop_all(d->loop);
}
