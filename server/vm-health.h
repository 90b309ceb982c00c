/* vm-health.h - noticing a hung guest: virtmgrd calls the guest agent's
 * Agent/Ping at a fixed interval (--health-interval) and, after a number of
 * consecutive unanswered checks (--health-misses), emits an ERROR event
 * "guest unresponsive" and applies the VM's on_hang policy (ON_HANG_NONE:
 * nothing more; ON_HANG_KILL, the default: the VM dies with WATCHDOG).
 * Part of the VM core (server/vm-priv.h); the core calls
 * vm_health_configure() from CreateVm and vm_health_release() when a VM's
 * runtime goes, main.c starts and stops the daemon-wide check timer.
 */
#ifndef VIRTMGR_VM_HEALTH_H
#define VIRTMGR_VM_HEALTH_H

#include <stdint.h>

#include "protos/virtmgr.pb-c.h"

#define VM_HEALTH_DEFAULT_INTERVAL_MS 5000
#define VM_HEALTH_DEFAULT_MISSES 3

struct daemon;
struct vm;
struct vm_error;

/**
 * vm_health_start() - start checking the VMs of @d every
 * d->cfg.health_interval_ms (nothing when it is 0). The timer does not
 * keep the loop alive by itself.
 */
void vm_health_start(struct daemon *d);

/** vm_health_stop() - stop checking (daemon shutdown); VMs keep their records until freed. */
void vm_health_stop(struct daemon *d);

/**
 * vm_health_configure() - take @vm's on_hang policy from @config
 * Return: 0, or -1 with @err naming the field when the value is unknown.
 */
int vm_health_configure(struct vm *vm, const Virtmgr__V1__VmConfig *config, struct vm_error *err);

/** vm_health_release() - drop @vm's check state: its agent connection, a call in flight. */
void vm_health_release(struct vm *vm);

#endif
