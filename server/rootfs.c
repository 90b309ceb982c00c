/* rootfs.c - VmConfig.root, the payload's root file system, on the host side.
 *
 * Design. The root is one of the VM's disks (by label) or one of its shares
 * (by tag); the host only checks that it names one, that a writable root is
 * not a read-only disk, and that its file system type is one vmagent knows,
 * and passes it to the guest in the configuration device tree as "root" =
 * source, fstype, "ro"|"rw". Everything else is done by vmagent
 * (guest/vmagent/root.c): the mount, the overlay, the tree inside it and the
 * chroot of the payload and of every Exec session. A share root is served by
 * its virtiofsd like any share; vmagent mounts it as the root instead of at
 * its guest path.
 */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include "server/rootfs.h"

static const char *const rootfs_types[] = { "ext4", "ext3", "ext2", "erofs", "squashfs" };

static const char *share_tag(const Virtmgr__V1__VmConfig *c, size_t i, char *buf, size_t len)
{
	if (c->shares[i]->tag && *c->shares[i]->tag)
		return c->shares[i]->tag;
	snprintf(buf, len, "share%zu", i);
	return buf;
}

int rootfs_check(const Virtmgr__V1__VmConfig *c, const struct qemu_disk *disks, size_t ndisks, struct vm_error *err)
{
	const Virtmgr__V1__RootFilesystem *r = c->root;
	const char *fs;
	bool known = false;

	if (!r)
		return 0;
	if (!r->source || !*r->source)
		return vm_error_set(err, VM_INVALID_ARGUMENT,
				    "root: source is missing: name a disk label or share tag");
	fs = r->fstype && *r->fstype ? r->fstype : "ext4";
	for (size_t i = 0; i < c->n_shares; i++) {
		char buf[32];

		if (strcmp(share_tag(c, i, buf, sizeof(buf)), r->source))
			continue;
		if (r->writable && c->shares[i]->read_only)
			return vm_error_set(err, VM_INVALID_ARGUMENT,
					    "root: share %.32s is read-only and cannot be a writable root", r->source);
		return 0;
	}
	for (size_t k = 0; k < ARRAY_SIZE(rootfs_types); k++)
		known |= !strcmp(fs, rootfs_types[k]);
	if (!known)
		return vm_error_set(err, VM_INVALID_ARGUMENT,
				    "root: file system type \"%.32s\" is not one of ext4, ext3, ext2, erofs, squashfs",
				    fs);
	for (size_t i = 0; i < ndisks; i++) {
		if (strcmp(disks[i].label, r->source))
			continue;
		if (r->writable && disks[i].read_only)
			return vm_error_set(err, VM_INVALID_ARGUMENT,
					    "root: disk %s is read-only and cannot be a writable root", r->source);
		if (r->writable && (!strcmp(fs, "erofs") || !strcmp(fs, "squashfs")))
			return vm_error_set(err, VM_INVALID_ARGUMENT, "root: %s is a read-only file system type", fs);
		return 0;
	}
	return vm_error_set(err, VM_INVALID_ARGUMENT,
			    "root: source \"%.64s\" is not the label of a disk or the tag of a share", r->source);
}

char **rootfs_strings(const Virtmgr__V1__VmConfig *c)
{
	const Virtmgr__V1__RootFilesystem *r = c->root;
	bool share = false;
	char **v;

	if (!r || !r->source || !*r->source)
		return NULL;
	for (size_t i = 0; i < c->n_shares; i++) {
		char buf[32];

		share |= !strcmp(share_tag(c, i, buf, sizeof(buf)), r->source);
	}
	v = xcalloc(4, sizeof(*v));
	v[0] = xstrdup(r->source);
	v[1] = xstrdup(share ? "virtiofs" : r->fstype && *r->fstype ? r->fstype : "ext4");
	v[2] = xstrdup(r->writable ? "rw" : "ro");
	return v;
}
