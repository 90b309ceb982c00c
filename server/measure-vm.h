/* measure-vm.h - virtmgrd's side of the measured launch: a created VM's
 * launch measurement (server/measure.h) from its checked configuration and
 * the fds vm-config.c took, handed to its attestation state. */
#ifndef VIRTMGR_MEASURE_VM_H
#define VIRTMGR_MEASURE_VM_H

#include "lib/util.h"
#include "protos/virtmgr.pb-c.h"

struct vm;

/**
 * measure_vm() - compute @vm's launch measurement from @c before it starts
 *
 * Call after vm_config_validate() and vm_vms_new() (it needs the fds and
 * vm->attest). Checks AttestationConfig.hash_alg and that every measured
 * disk is read-only (INVALID_ARGUMENT naming the field otherwise), hashes
 * kernel, initrd and measured disks through their fds, and stores the
 * value with attest_vm_set_rim().
 * Return: 0, or -1 with @err.
 */
int measure_vm(struct vm *vm, const Virtmgr__V1__VmConfig *c, struct vm_error *err);

#endif
