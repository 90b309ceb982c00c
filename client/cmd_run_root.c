/* cmd_run_root.c - `vmctl run --root NAME|PATH[,rw][,fs=TYPE][,format=raw|qcow2]`.
 *
 * The root is a disk or a host directory. A disk (a store image by name,
 * UID:NAME for root's view of another owner's store, or a host file, a value
 * holding a '/') is added to the VM's disks with the label "root", read-only
 * unless ,rw, and VmConfig.root names that label. A host directory becomes a
 * share with the tag "root" (read-only unless ,rw) that vmagent mounts as
 * the root instead of at a path. Parsing is pure; which of the two a path is
 * is decided by cmd_run_root_apply(), which looks at the file.
 */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "client/vmctl.h"

#define CMD_RUN_ROOT_LABEL "root"

int cmd_run_root_parse(char *arg, struct cmd_run_opts *o, struct vm_error *err)
{
	char *comma;

	if (o->root)
		return vm_error_set(err, VM_INVALID_ARGUMENT, "invalid --root: given twice");
	o->root_rw = false;
	o->root_qcow2 = false;
	o->root_fstype = NULL;
	/* options from the end, so that a path may hold commas of its own */
	while ((comma = strrchr(arg, ','))) {
		const char *opt = comma + 1;

		if (!strcmp(opt, "ro") || !strcmp(opt, "rw"))
			o->root_rw = opt[1] == 'w';
		else if (!strncmp(opt, "fs=", 3) && opt[3])
			o->root_fstype = opt + 3;
		else if (!strcmp(opt, "format=raw") || !strcmp(opt, "format=qcow2"))
			o->root_qcow2 = opt[7] == 'q';
		else if (!strncmp(opt, "format=", 7))
			return vm_error_set(err, VM_INVALID_ARGUMENT,
					    "invalid --root format '%s': expected raw or qcow2", opt + 7);
		else
			break;
		*comma = '\0';
	}
	if (!*arg)
		return vm_error_set(err, VM_INVALID_ARGUMENT, "invalid --root: empty path or image name");
	o->root = arg;
	o->cfg.root = CMD_RUN_ROOT_LABEL;
	o->cfg.root_writable = o->root_rw;
	o->cfg.root_fstype = o->root_fstype;
	return 0;
}

int cmd_run_root_apply(struct cmd_run_opts *o, struct vm_error *err)
{
	struct stat st;

	if (!o->root)
		return 0;
	if (strchr(o->root, '/') && stat(o->root, &st) == 0 && S_ISDIR(st.st_mode)) {
		struct vmc_share *s = &o->shares[o->cfg.n_shares++];

		if (o->root_fstype || o->root_qcow2)
			return vm_error_set(err, VM_INVALID_ARGUMENT,
					    "invalid --root %s: a host directory takes no fs= or format=", o->root);
		memset(s, 0, sizeof(*s));
		s->host_dir = o->root; /* made absolute with the other shares */
		s->tag = CMD_RUN_ROOT_LABEL;
		s->guest_path = "/";
		s->read_only = !o->root_rw;
		o->cfg.root_fstype = NULL;
		return 0;
	}
	struct vmc_disk *d = &o->disks[o->cfg.n_disks++];

	memset(d, 0, sizeof(*d));
	d->fd = -1;
	if (strchr(o->root, '/'))
		d->path = o->root;
	else
		d->image = o->root;
	d->read_only = !o->root_rw;
	d->qcow2 = o->root_qcow2;
	d->label = CMD_RUN_ROOT_LABEL;
	return 0;
}
