/* vms.h - the host side of the guest agent protocol: the per-VM
 * configuration device tree handed to the guest through fw_cfg, and
 * VirtualMachineService, which the guest's vmagent calls to report the
 * payload's progress and to forward its logs.
 *
 * This module knows nothing of the VM core: it is given a VM's identity
 * (id, name, CID, run directory) and a struct vms_events with an opaque
 * pointer, and reports everything the guest says through those callbacks.
 * The VM core decides what a report means for the VM's state.
 *
 * Sequence for one VM (server/vm.c):
 *
 *   s = vms_server_new(loop, agent_timeout_ms);              // once per daemon
 *   v = vms_vm_new(s, &id, config, default_image, &ev, vm);  // vm_create
 *   vms_prepare(v, &key, &fw_cfg_path, &err); // vm_start, run dir exists, before QEMU
 *   vms_listen(v, lfd, &err);             // listener for host port = CID
 *   vms_close(v);                         // VM dead (idempotent)
 *   vms_vm_free(v);                       // VM record freed
 *
 * vms_listen() takes a listening socket: in user vsock mode the Unix socket
 * <run_dir>/vsock.sock_<cid> from vsock_host_listen() (only this VM's
 * backend can reach it); in kernel mode an AF_VSOCK socket on port = CID,
 * where connections whose source CID is not the VM's are refused. With the
 * default image (which runs vmagent) the agent must connect within the
 * agent timeout, or the VM is reported failed (AGENT_FAILED_TO_CONNECT).
 */
#ifndef VIRTMGR_VMS_H
#define VIRTMGR_VMS_H

#include <ev.h>
#include <stdbool.h>
#include <stdint.h>

#include "lib/util.h"
#include "protos/virtmgr.pb-c.h"
#include "server/marker.h"

#define VMS_SERVICE "virtmgr.v1.VirtualMachineService"
#define VMS_DEFAULT_AGENT_TIMEOUT_MS 120000
#define VMS_MAX_LOG_RECORDS 256	  /* per ForwardLog call */
#define VMS_MAX_LOG_MESSAGE 4096  /* bytes per record; longer ones are cut */
#define VMS_LOG_DAEMON_WARNING 28 /* syslog priority (daemon.warning) of the host's own notes */

struct vms_server;
struct vms_vm;

/* Why the guest agent is considered failed. */
enum vms_failure {
	VMS_AGENT_TIMEOUT, /* it never connected within the agent timeout */
	VMS_AGENT_LOST,	   /* its last connection closed a while ago and none came back */
};

/*
 * What the guest reports, already checked and sanitized (exit codes in
 * 0..255, log and error text cut and free of control characters). Every
 * callback gets the opaque pointer given to vms_vm_new(). A callback may
 * call vms_close() on its VM.
 */
struct vms_events {
	void (*started)(void *opaque);
	void (*ready)(void *opaque);
	void (*finished)(void *opaque, int exit_code);
	/* @code: virtmgr.v1.ErrorCode as the guest sent it */
	void (*error)(void *opaque, int code, const char *message);
	void (*log)(void *opaque, uint64_t timestamp_ns, uint32_t priority, const char *source, const char *message);
	/* an agent connection was accepted (the agent deadline is stopped) */
	void (*connected)(void *opaque);
	void (*failed)(void *opaque, enum vms_failure why, const char *message);
};

/* What the guest configuration and the listener need to know of the VM. */
struct vms_identity {
	const char *id;
	const char *name;
	uint32_t cid;
	const char *run_dir;
};

/**
 * vms_server_new() - the VirtualMachineService server shared by every VM
 * @agent_timeout_ms: deadline for the agent's first connection; 0 = none
 * Return: the server (never NULL).
 */
struct vms_server *vms_server_new(struct ev_loop *loop, uint32_t agent_timeout_ms);
/* Free @s (NULL is fine); every vms_vm of it must be freed already. */
void vms_server_free(struct vms_server *s);

/**
 * vms_vm_new() - per-VM state: what the guest configuration needs from
 * @config, and where to report
 * @id: copied; run_dir must stay the VM's for the state's lifetime
 * @config: NULL for a VM adopted after a daemon restart (only listens)
 * @default_image: the VM boots the default image, which runs vmagent (the
 *                 agent deadline applies only then)
 * Return: per-VM state (never NULL).
 */
struct vms_vm *vms_vm_new(struct vms_server *s, const struct vms_identity *id, const Virtmgr__V1__VmConfig *config,
			  bool default_image, const struct vms_events *events, void *opaque);
/* Free @v (NULL is fine); closes it first. */
void vms_vm_free(struct vms_vm *v);

/**
 * vms_vm_set_network() - the "network" strings of the guest's config tree
 * (server/net.h net_fdt_strings())
 * @v: the VM
 * @strings: NULL-terminated, taken over (NULL: no network)
 * @n: how many
 * Return: nothing.
 */
void vms_vm_set_network(struct vms_vm *v, char **strings, size_t n);

/**
 * vms_prepare() - write <run_dir>/config.dtb for QEMU's
 * `-fw_cfg name=opt/virtmgr/config,file=<path>`
 * @key: this boot's console marker key (marker.h), written into the tree
 *       (the file is 0600, in the daemon's run directory)
 * @path: set to the file's path (owned by @v)
 *
 * Test hook: when the daemon's environment has
 * VIRTMGR_TEST_CONFIG_TRUNCATE=N, the blob is cut to N bytes, so tests can
 * check how the agent reports a malformed configuration.
 * Return: 0, or -1 with @err.
 */
int vms_prepare(struct vms_vm *v, const struct marker_key *key, const char **path, struct vm_error *err);

/* Connections refused since the boot's agent connection (one per boot). Return: the count. */
uint64_t vms_refused(const struct vms_vm *v);

/**
 * vms_listen() - serve VirtualMachineService for @v on listening socket @fd
 * (ownership passes, also on failure) and start the agent deadline when the
 * default image is used and no agent connected yet.
 * Return: 0, or -1 with @err.
 */
int vms_listen(struct vms_vm *v, int fd, struct vm_error *err);

struct ttrpc_call;
/* Where a VM's ExtendMeasurement and RequestAttestation go (server/attest.c):
 * each handler replies to or fails @call, now or later. */
struct vms_attest_ops {
	void (*extend)(void *opaque, struct ttrpc_call *call, const Virtmgr__V1__ExtendMeasurementRequest *req);
	void (*request)(void *opaque, struct ttrpc_call *call, const Virtmgr__V1__RequestAttestationRequest *req);
};
/** vms_set_attest() - give @v its attestation handlers (@ops static, @opaque borrowed). */
void vms_set_attest(struct vms_vm *v, const struct vms_attest_ops *ops, void *opaque);

/** vms_close() - stop serving @v: close its listener and connections, stop its timers. */
void vms_close(struct vms_vm *v);

#endif
