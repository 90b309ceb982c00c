/* vm-config.h - CreateVm's configuration checked and turned into what
 * QEMU gets: validated values, the fds of kernel, initrd and disks (taken
 * from the request or opened as the caller), the console and log fds and
 * the kernel command line. Part of the VM core (server/vm-priv.h).
 */
#ifndef VIRTMGR_VM_CONFIG_H
#define VIRTMGR_VM_CONFIG_H

#include <stdbool.h>

#include "lib/ttrpc.h"
#include "protos/virtmgr.pb-c.h"
#include "server/daemon.h"

struct vm;

/**
 * vm_config_validate() - check @c completely and fill @vm's configuration
 * (memory, cpus, accel, boot timeout, fds, cmdline) from it
 * @call: the CreateVm call (its peer opens paths; FdRefs index its fds)
 * Return: 0, or -1 with @err naming the bad field (fds taken so far stay
 *         in @vm and are closed when it is freed).
 */
int vm_config_validate(struct daemon *d, const Virtmgr__V1__VmConfig *c, struct vm *vm, struct ttrpc_call *call,
		       struct vm_error *err);

/**
 * vm_config_reserve_images() - mark @vm's store images as used by it
 * (diskstore_set_in_use()), once it has its id
 * Return: 0, or -1 with @err (FAILED_PRECONDITION naming the VM using one);
 *         what was reserved is released by vm_config_release_images().
 */
int vm_config_reserve_images(struct vm *vm, struct vm_error *err);

/** vm_config_release_images() - release what vm_config_reserve_images() reserved (again: a no-op). Return: nothing. */
void vm_config_release_images(struct vm *vm);

/** vm_config_name_valid() - 1-64 of [A-Za-z0-9._-], not starting with '.' or '-'. Return: true if so. */
bool vm_config_name_valid(const char *s);

#endif
