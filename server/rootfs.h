/* rootfs.h - VmConfig.root: the payload's root file system (rootfs.c). */
#ifndef VIRTMGR_ROOTFS_H
#define VIRTMGR_ROOTFS_H

#include <stddef.h>

#include "lib/util.h"
#include "protos/virtmgr.pb-c.h"
#include "server/qemu.h"

/**
 * rootfs_check() - validate @c->root against the VM's disks and shares
 * @c: the CreateVm configuration (shares' tags default to shareN)
 * @disks: the VM's disks, labels resolved (vm-config.c)
 * @ndisks: their number
 * @err: INVALID_ARGUMENT naming the field and what is wrong
 * Return: 0 (also when there is no root), or -1 with @err.
 */
int rootfs_check(const Virtmgr__V1__VmConfig *c, const struct qemu_disk *disks, size_t ndisks, struct vm_error *err);

/**
 * rootfs_strings() - the "root" property of the configuration device tree
 * (server/fdtconfig.h): source, fstype, "ro"|"rw"
 * @c: a validated configuration
 * Return: a NULL-terminated array of 3 strings (free each and the array), or
 *         NULL when @c has no root.
 */
char **rootfs_strings(const Virtmgr__V1__VmConfig *c);

#endif
