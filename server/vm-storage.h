/* vm-storage.h - a VM's disks and shares across a daemon restart (vm-storage.c). */
#ifndef VIRTMGR_VM_STORAGE_H
#define VIRTMGR_VM_STORAGE_H

#include "server/statefile.h"

struct vm;

/** vm_storage_persist() - add @vm's disks and shares (with virtiofsd's pids) to its record. Return: nothing. */
void vm_storage_persist(const struct vm *vm, struct statefile *sf);

/**
 * vm_storage_restore() - for a VM being adopted: its disks (store images
 * reserved again) and shares (virtiofsd watched again; one that died stops
 * the VM) from its record
 * Return: nothing (what cannot be restored is logged).
 */
void vm_storage_restore(struct vm *vm, const struct statefile *sf);

/**
 * vm_storage_cleanup() - for a record whose VM is not adopted: terminate the
 * virtiofsd processes it names (each checked against its start time)
 * @dir: the run directory, for the log
 * Return: nothing.
 */
void vm_storage_cleanup(const struct statefile *sf, const char *dir);

#endif
