/* vm-health.c - noticing a hung guest.
 *
 * A guest whose agent is alive on vsock but stuck, or whose kernel hangs,
 * reports nothing: without a check it would stay STARTED or READY for
 * ever. So every --health-interval the daemon calls Agent/Ping on each VM
 * that is STARTED or READY, over a connection of its own to the agent's
 * guest port (made through the same vsock path as ConnectVsock, once the
 * VM is STARTED: the agent serves its port before it runs the payload).
 * Each check makes its connection and closes it once answered, so between
 * checks the daemon holds no fd for it.
 * Ping is answered by the agent's own event loop, not by the payload, so a
 * payload that is merely busy does not trip the check; a stopped or wedged
 * agent, or a hung guest kernel, does.
 *
 * A round is one tick: a connection and a ping with a fresh nonce, whose
 * answer must come before the next tick. A timeout, an error, a failed
 * connect or a lost connection leave the round unanswered. After
 * --health-misses unanswered rounds
 * in a row the VM gets an ERROR event "guest unresponsive" and its on_hang
 * policy applies: NONE leaves it running (the checks go on, and an answer
 * ends the hang), KILL (the default) kills QEMU and the VM dies with
 * WATCHDOG, AVF's WATCHDOG_REBOOT.
 *
 * Not checked: VMs not yet STARTED (the boot and agent-connect timeouts
 * cover that), FINISHED ones (the agent is shutting down), suspended ones
 * (their vsock device is reset on resume: checking starts afresh then), and
 * VMs being stopped or killed. One daemon-wide timer walks the VM list, so
 * VMs adopted after a restart are checked like the others; each VM's state
 * lives in a struct vm_health made at its first check and dropped whenever
 * it is not checked.
 */
#include "config.h"
#include "server/vm-health.h"

#include <stdio.h>
#include <string.h>

#include "lib/log.h"
#include "server/fdtconfig.h"
#include "server/vm-priv.h"

#define AGENT_SERVICE "virtmgr.v1.Agent"

struct vm_health {
	struct vm *vm;
	struct ttrpc_conn *conn;	    /* this round's, to the agent port; NULL once done */
	struct vsock_host_conn *connecting; /* this round's connect, while under way */
	uint64_t nonce;			    /* of the current round */
	bool waiting;			    /* the current round has no answer yet */
	bool releasing;			    /* the calls a close cancels are not misses */
	unsigned misses;		    /* unanswered rounds in a row */
	bool reported;			    /* "guest unresponsive" was said for this hang */
};

static double health_interval_s(const struct daemon *d)
{
	return d->cfg.health_interval_ms / 1000.0;
}

/* Who may be checked now (see the top of the file). */
static bool health_applies(const struct vm *vm)
{
	return vm->qemu && vm->vsock_watch.vm && !vm->daemon_owned &&
	       (vm->state == VIRTMGR__V1__VM_STATE__VM_STATE_STARTED ||
		vm->state == VIRTMGR__V1__VM_STATE__VM_STATE_READY) &&
	       !vm->suspended && !vm->stop_requested && !vm->kill_requested &&
	       vm->forced_reason == VIRTMGR__V1__DEATH_REASON__DEATH_REASON_NONE;
}

static void health_answered(struct vm_health *h)
{
	struct vm *vm = h->vm;

	h->waiting = false;
	if (h->reported) {
		log_info("vm %s (%s): the guest agent answers again after %u unanswered health checks", vm->id,
			 vm->name, h->misses);
		if (!strncmp(vm->message, "guest unresponsive", strlen("guest unresponsive")))
			vm->message[0] = '\0';
		h->reported = false;
	}
	h->misses = 0;
}

static void health_close(struct vm_health *h);

static void health_pong(const struct vm_error *status, const uint8_t *payload, size_t len, void *opaque)
{
	struct vm_health *h = opaque;
	Virtmgr__V1__PingResponse *resp;

	if (h->releasing)
		return;
	if (status->code == VM_UNIMPLEMENTED) {
		/* an agent without Ping still answered: it is alive */
		health_answered(h);
	} else if (status->code != VM_OK) {
		log_debug("vm %s: health check: %s", h->vm->id, status->message);
	} else {
		resp = virtmgr__v1__ping_response__unpack(NULL, len, payload);
		/* a wrong nonce is no answer to this round */
		if (resp && resp->nonce == h->nonce)
			health_answered(h);
		if (resp)
			protobuf_c_message_free_unpacked(&resp->base, NULL);
	}
	/* the round is over either way (ttrpc lets a reply callback close its connection) */
	health_close(h);
}

static void health_ping(struct vm_health *h)
{
	Virtmgr__V1__PingRequest req = VIRTMGR__V1__PING_REQUEST__INIT;

	req.nonce = h->nonce;
	/* on failure health_pong() has already run and closed the connection */
	ttrpc_conn_call(h->conn, AGENT_SERVICE, "Ping", &req.base,
			(uint64_t)h->vm->d->cfg.health_interval_ms * 1000000u, health_pong, h);
}

static void health_conn_closed(struct ttrpc_conn *conn, void *opaque)
{
	struct vm_health *h = opaque;

	if (h->conn == conn)
		h->conn = NULL;
}

static void health_connected(void *opaque, int fd, const struct vm_error *err)
{
	struct vm_health *h = opaque;

	h->connecting = NULL;
	if (fd < 0) {
		log_debug("vm %s: health check: cannot reach the agent on port %u: %s", h->vm->id, VIRTMGR_AGENT_PORT,
			  err->message);
		return;
	}
	h->conn = ttrpc_client_conn_new(h->vm->d->loop, fd, health_conn_closed, h);
	health_ping(h);
}

static void health_close(struct vm_health *h)
{
	struct ttrpc_conn *conn = h->conn;

	h->conn = NULL;
	if (!conn)
		return;
	h->releasing = true;
	ttrpc_conn_close(conn);
	h->releasing = false;
}

/* The hang is established. Return: true if the VM is being killed. */
static bool health_unresponsive(struct vm_health *h)
{
	struct vm *vm = h->vm;
	bool kill = vm->on_hang != VIRTMGR__V1__ON_HANG__ON_HANG_NONE;

	h->reported = true;
	snprintf(vm->message, sizeof(vm->message),
		 "guest unresponsive: the guest agent did not answer %u health checks in a row (every %u ms)",
		 h->misses, vm->d->cfg.health_interval_ms);
	log_warn("vm %s (%s, cid %u): %s; %s", vm->id, vm->name, vm->cid, vm->message,
		 kill ? "killing it (on_hang kill)" : "leaving it running (on_hang none)");
	vm_event(vm, VIRTMGR__V1__EVENT_TYPE__EVENT_TYPE_ERROR, vm->message);
	if (!kill)
		return false;
	vm->forced_reason = VIRTMGR__V1__DEATH_REASON__DEATH_REASON_WATCHDOG;
	qemu_kill(vm->qemu);
	return true;
}

/* One round for @vm: count the last one, then start the next. */
static void health_check(struct vm *vm)
{
	struct vm_health *h = vm->health;
	struct vm_error err = { 0 };

	if (!health_applies(vm)) {
		vm_health_release(vm);
		return;
	}
	if (!h) {
		h = vm->health = xzalloc(sizeof(*h));
		h->vm = vm;
	} else if (h->waiting) {
		h->misses++;
		log_debug("vm %s: health check unanswered (%u in a row)", vm->id, h->misses);
		if (h->misses >= vm->d->cfg.health_misses && !h->reported && health_unresponsive(h))
			return;
	}
	/* what is left of the last round (an unanswered call) goes */
	if (h->connecting)
		vsock_host_connect_cancel(steal_pointer(&h->connecting));
	health_close(h);
	h->nonce++;
	h->waiting = true;
	h->connecting = vsock_host_connect_async(vm->d->loop, &vm->vsock, VIRTMGR_AGENT_PORT, health_interval_s(vm->d),
						 health_connected, h, &err);
	if (!h->connecting)
		log_debug("vm %s: health check: %s", vm->id, err.message);
}

static void health_tick(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct daemon *d = w->data;
	struct vm *vm, *next;

	if (d->quitting) {
		vm_health_stop(d);
		return;
	}
	for (vm = d->vms; vm; vm = next) {
		next = vm->next;
		health_check(vm);
	}
}

void vm_health_start(struct daemon *d)
{
	double s = health_interval_s(d);

	if (!d->cfg.health_interval_ms || ev_is_active(&d->health_timer))
		return;
	ev_timer_init(&d->health_timer, health_tick, s, s);
	d->health_timer.data = d;
	ev_timer_start(d->loop, &d->health_timer);
	/* a periodic check is no reason to keep running (spawn-per-client drain) */
	ev_unref(d->loop);
}

void vm_health_stop(struct daemon *d)
{
	if (!ev_is_active(&d->health_timer))
		return;
	ev_ref(d->loop);
	ev_timer_stop(d->loop, &d->health_timer);
}

int vm_health_configure(struct vm *vm, const Virtmgr__V1__VmConfig *config, struct vm_error *err)
{
	if (config->on_hang != VIRTMGR__V1__ON_HANG__ON_HANG_DEFAULT &&
	    config->on_hang != VIRTMGR__V1__ON_HANG__ON_HANG_NONE &&
	    config->on_hang != VIRTMGR__V1__ON_HANG__ON_HANG_KILL)
		return vm_error_set(err, VM_INVALID_ARGUMENT, "on_hang: %d is not an OnHang value",
				    (int)config->on_hang);
	vm->on_hang = config->on_hang;
	return 0;
}

void vm_health_release(struct vm *vm)
{
	struct vm_health *h = steal_pointer(&vm->health);

	if (!h)
		return;
	if (h->connecting)
		vsock_host_connect_cancel(h->connecting);
	health_close(h);
	free(h);
}
