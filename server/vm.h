/* vm.h - the VM registry and per-VM state machine (AVF's states:
 * NOT_STARTED -> STARTING -> STARTED -> READY -> FINISHED -> DEAD), as the
 * API handlers (api.c) and main.c see it. Implemented by vm.c (lifecycle),
 * vm-config.c, vm-console.c and vm-persist.c, which share vm-priv.h.
 */
#ifndef VIRTMGR_VM_H
#define VIRTMGR_VM_H

#include <stdbool.h>
#include <stdint.h>

#include "lib/ttrpc.h"
#include "protos/virtmgr.pb-c.h"
#include "server/daemon.h"

/**
 * vm_create() - validate @config completely and register a NOT_STARTED VM
 * @call: the CreateVm call (its peer owns the VM; fds referenced by FdRef are taken from it)
 * Return: 0 with *out, or -1 with @err naming the bad field.
 */
int vm_create(struct daemon *d, const Virtmgr__V1__VmConfig *config, struct ttrpc_call *call, struct vm **out,
	      struct vm_error *err);
/* The daemon itself as the owner of a VM of its own (the Service VM,
 * server/servicevm.c): vm_create() with @call NULL owns the VM this way,
 * without a connection (it lives until the daemon stops it). */
const struct ttrpc_peer *vm_daemon_peer(void);
/* A VM of the daemon's own runs no agent: the daemon says it is READY (STARTED first). */
void vm_report_ready(struct vm *vm);
/* The daemon is done with its VM @vm: its record goes once it is dead and a connection closes. */
void vm_orphan(struct vm *vm);
/* Listen for / accept guest connections to host vsock @port of a started VM
 * (vsock_host_listen(), vsock_host_accept()). Return: fd, or -1 with @err. */
int vm_vsock_listen(struct vm *vm, uint32_t port, struct vm_error *err);
int vm_vsock_accept(struct vm *vm, int lfd, struct vm_error *err);
/* Spawn QEMU. Return: 0, or -1 with @err (the VM is then DEAD/START_FAILED). */
int vm_start(struct vm *vm, struct vm_error *err);
/* Graceful stop: power-off request, then QMP quit after @timeout_ms, then SIGKILL. */
void vm_stop(struct vm *vm, uint32_t timeout_ms, bool force);
void vm_kill(struct vm *vm);
int vm_pause(struct vm *vm, bool pause, struct vm_error *err);

/* Find a VM by id, or by name among the VMs @peer may see. NULL if none visible. */
struct vm *vm_lookup(struct daemon *d, const char *ref, const struct ttrpc_peer *peer);
bool vm_visible_to(const struct vm *vm, const struct ttrpc_peer *peer);
/* Fill @info; strings point into @vm and stay valid until the VM changes. */
void vm_fill_info(const struct vm *vm, Virtmgr__V1__VmInfo *info);
Virtmgr__V1__VmState vm_state(const struct vm *vm);
struct vm *vm_next(struct daemon *d, struct vm *prev); /* iterate; prev NULL = first */

/* Stream VmEvents to @call until the VM is DEAD (then the stream ends OK). */
void vm_watch(struct vm *vm, struct ttrpc_call *call, bool logs);
/* Reply to @call with a WaitVmResponse once @state is reached, the VM is DEAD, or @timeout_ms passes. */
void vm_wait(struct vm *vm, Virtmgr__V1__VmState state, uint32_t timeout_ms, struct ttrpc_call *call);
/* Reply to @call with a VmInfoResponse once the VM is DEAD (StopVm/KillVm). */
void vm_reply_when_dead(struct vm *vm, struct ttrpc_call *call);

/* ConnectVsock: reply to @call with a connected fd to guest @port, from the loop.
 * Return: 0 if under way, -1 with @err if it cannot start. */
int vm_connect_vsock(struct vm *vm, uint32_t port, struct ttrpc_call *call, struct vm_error *err);

/* AttachConsole: a new socket whose reads are the console output from now on
 * and whose writes are console input. Return: 0 with *client_fd, or -1. */
int vm_attach_console(struct vm *vm, int *client_fd, struct vm_error *err);

/* A client connection closed: kill the VMs it owned (unless detached), drop dead records. */
void vm_conn_closed(struct daemon *d, uint64_t conn_id);
/* Start-up: adopt detached VMs recorded in <run_dir>/vms/<cid>/vm.state by a
 * previous daemon, stop owned ones. Return: how many were taken over. */
unsigned vm_restore_all(struct daemon *d);

/* Daemon shutdown: kill owned VMs, leave detached ones running. */
void vm_shutdown_all(struct daemon *d);
unsigned vm_count(const struct daemon *d);

#endif
