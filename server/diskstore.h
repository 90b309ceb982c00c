/* diskstore.h - the per-owner disk image store under the daemon's state
 * directory (<state>/images/<uid>/<name>.img|.qcow2 plus <name>.meta), the
 * image work done by Debian's qemu-img and e2fsprogs in children running as
 * the image's owner, and which VM uses which image.
 *
 * The handlers (diskstore_create() ...) answer the ttrpc call themselves,
 * at once for errors found up front, later from the loop when the child
 * doing the work has exited. The VM core reserves an image for a VM with
 * diskstore_set_in_use() and releases it with diskstore_clear_in_use().
 * The reservations live in memory only: after a daemon restart the VM core
 * makes them again for the VMs it re-adopts.
 */
#ifndef VIRTMGR_DISKSTORE_H
#define VIRTMGR_DISKSTORE_H

#include <ev.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "lib/ttrpc.h"
#include "lib/util.h"
#include "protos/virtmgr.pb-c.h"

struct diskstore;

/* Who asks: the caller's ids (SO_PEERCRED); root sees every owner. */
struct diskstore_caller {
	uid_t uid;
	gid_t gid;
};

#define DISKSTORE_MAX_SIZE (16ull << 40) /* 16 TiB: far beyond any test, well below qemu-img's limits */
#define DISKSTORE_STDERR_MAX 1024	 /* of a tool's stderr, what reaches the client */

/**
 * diskstore_new() - a store under @state_dir (created on first use, not now)
 * @loop: the daemon's loop (children are watched on it; it must be the
 *        default loop for ev_child)
 * Return: the store (never NULL).
 */
struct diskstore *diskstore_new(struct ev_loop *loop, const char *state_dir);

/**
 * diskstore_free() - kill and reap every running child, fail their calls
 * with UNAVAILABLE, free @s (NULL is fine). Return: nothing.
 */
void diskstore_free(struct diskstore *s);

/**
 * diskstore_set_in_use() - reserve image @name of @owner for VM @vm_id
 * Return: 0, or -1 with @err: NOT_FOUND when there is no such image,
 *         FAILED_PRECONDITION naming the VM already using it (a writable
 *         image is attached to at most one VM) or the operation running on it.
 */
int diskstore_set_in_use(struct diskstore *s, uid_t owner, const char *name, const char *vm_id, struct vm_error *err);

/** diskstore_clear_in_use() - release what diskstore_set_in_use() reserved for @vm_id. Return: nothing. */
void diskstore_clear_in_use(struct diskstore *s, uid_t owner, const char *name, const char *vm_id);

/*
 * Online resize: ResizeDiskImage of an image a VM uses is handed to @fn (the
 * VM core: QMP block_resize, then the agent grows the ext4) with the image
 * marked busy; @fn answers @call through diskstore_online_done().
 */
typedef void (*diskstore_grow_fn)(void *opaque, struct ttrpc_call *call, uid_t owner, const char *name,
				  const char *vm_id, uint64_t size);
/** diskstore_set_online_grow() - install @fn (NULL: resize refuses images in use). Return: nothing. */
void diskstore_set_online_grow(struct diskstore *s, diskstore_grow_fn fn, void *opaque);
/**
 * diskstore_online_done() - end an online resize: the image is no longer
 * busy; @call (NULL when the client went away) gets the DiskImage, or @err
 * when it is set (err->code != 0)
 * Return: nothing.
 */
void diskstore_online_done(struct diskstore *s, struct ttrpc_call *call, uid_t owner, const char *name,
			   const struct vm_error *err);

/**
 * diskstore_resolve() - "NAME", or for a root @caller "UID:NAME", into the
 * owner and name of an image
 * @name: filled (65 bytes)
 * Return: 0, or -1 with @err (INVALID_ARGUMENT naming what is wrong).
 */
int diskstore_resolve(uid_t caller, const char *ref, uid_t *owner, char name[65], struct vm_error *err);

/**
 * diskstore_image_path() - the host path and format of image @name of @owner
 * @format: filled with VIRTMGR__V1__DISK_FORMAT__*
 * Return: the path (caller frees), or NULL with @err (NOT_FOUND, bad name).
 */
char *diskstore_image_path(struct diskstore *s, uid_t owner, const char *name, int *format, struct vm_error *err);

/* The VirtualizationService calls; each ends @call (now or later). */
void diskstore_create(struct diskstore *s, struct ttrpc_call *call, const struct diskstore_caller *who,
		      const Virtmgr__V1__CreateDiskImageRequest *req);
void diskstore_resize(struct diskstore *s, struct ttrpc_call *call, const struct diskstore_caller *who,
		      const Virtmgr__V1__ResizeDiskImageRequest *req);
void diskstore_list(struct diskstore *s, struct ttrpc_call *call, const struct diskstore_caller *who);
void diskstore_delete(struct diskstore *s, struct ttrpc_call *call, const struct diskstore_caller *who,
		      const Virtmgr__V1__DiskImageRef *req);
void diskstore_transfer(struct diskstore *s, struct ttrpc_call *call, const struct diskstore_caller *who,
			const Virtmgr__V1__TransferDiskImageRequest *req, bool import);
void diskstore_init_partition(struct diskstore *s, struct ttrpc_call *call, const struct diskstore_caller *who,
			      const Virtmgr__V1__InitializeWritablePartitionRequest *req);

/** diskstore_name_valid() - [A-Za-z0-9._-]{1,64}, not starting with '.'. Return: whether @name is. */
bool diskstore_name_valid(const char *name);

#endif
