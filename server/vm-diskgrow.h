/* vm-diskgrow.h - online resize of a store image a running VM uses (vm-diskgrow.c). */
#ifndef VIRTMGR_VM_DISKGROW_H
#define VIRTMGR_VM_DISKGROW_H

#include <stdint.h>
#include <sys/types.h>

#include "lib/ttrpc.h"

/**
 * vm_disk_grow() - diskstore_grow_fn of the VM core: grow image @name of
 * @owner, attached to VM @vm_id, to @size bytes (QMP block_resize), then
 * its mounted ext4 through the guest agent; answers @call through
 * diskstore_online_done()
 * @opaque: the struct daemon
 * Return: nothing.
 */
void vm_disk_grow(void *opaque, struct ttrpc_call *call, uid_t owner, const char *name, const char *vm_id,
		  uint64_t size);

#endif
