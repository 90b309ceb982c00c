/* vms.h - the host side of the guest agent protocol: the per-VM
 * configuration device tree handed to the guest through fw_cfg, and
 * VirtualMachineService, which the guest's vmagent calls to report the
 * payload's progress and to forward its logs.
 *
 * Daemon sequence for one VM (vm.c, and the vsock wiring in vm_start):
 *
 *   v = vms_vm_new(config, default_image);     // vm_create, after validation
 *   vms_prepare(vm, v, &fw_cfg_path, &err);    // vm_start, run dir exists, before QEMU
 *   vms_listen(d, vm, lfd, &err);              // listener for host port = CID
 *   vms_close(vm);                             // VM dead (idempotent)
 *   vms_vm_free(v);                            // VM record freed
 *
 * vms_listen() takes a listening socket: in user vsock mode the Unix socket
 * <run_dir>/vsock.sock_<cid> from vsock_host_listen() (only this VM's
 * backend can reach it); in kernel mode an AF_VSOCK socket on port = CID,
 * where connections whose source CID is not the VM's are refused. With the
 * default image (which runs vmagent) the agent must connect within the
 * agent timeout, or the VM is killed with AGENT_FAILED_TO_CONNECT.
 */
#ifndef VIRTMGR_VMS_H
#define VIRTMGR_VMS_H

#include <stdbool.h>
#include <stdint.h>

#include "lib/util.h"
#include "protos/virtmgr.pb-c.h"
#include "server/daemon.h"

#define VMS_SERVICE "virtmgr.v1.VirtualMachineService"
#define VMS_DEFAULT_AGENT_TIMEOUT_MS 120000
#define VMS_MAX_LOG_RECORDS 256         /* per ForwardLog call */
#define VMS_MAX_LOG_MESSAGE 4096        /* bytes per record; longer ones are cut */

struct vms_vm;

/**
 * vms_vm_new() - keep what the guest configuration needs from @config
 * @config: NULL for a VM adopted after a daemon restart (only listens)
 * @default_image: the VM boots the default image, which runs vmagent (the
 *                 agent deadline applies only then)
 * Return: per-VM state (never NULL).
 */
struct vms_vm *vms_vm_new(const Virtmgr__V1__VmConfig *config, bool default_image);
void vms_vm_free(struct vms_vm *v);

/**
 * vms_prepare() - write <run_dir>/config.dtb for QEMU's
 * `-fw_cfg name=opt/virtmgr/config,file=<path>`
 * @path: set to the file's path (owned by @v)
 *
 * Test hook: when the daemon's environment has
 * VIRTMGR_TEST_CONFIG_TRUNCATE=N, the blob is cut to N bytes, so tests can
 * check how the agent reports a malformed configuration.
 * Return: 0, or -1 with @err.
 */
int vms_prepare(struct vm *vm, struct vms_vm *v, const char **path, struct vm_error *err);

/**
 * vms_listen() - serve VirtualMachineService for @vm on listening socket @fd
 * (ownership passes, also on failure) and start the agent deadline when the
 * default image is used.
 * Return: 0, or -1 with @err.
 */
int vms_listen(struct daemon *d, struct vm *vm, int fd, struct vm_error *err);

/** vms_close() - stop serving @vm: close its listener and connections, stop its timers. */
void vms_close(struct vm *vm);

/** vms_set_agent_timeout() - the agent deadline for VMs started from now on; 0 = none. */
void vms_set_agent_timeout(uint32_t ms);

#endif
