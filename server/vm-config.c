/* vm-config.c - CreateVm's configuration, checked completely before a VM
 * exists, and the fds it names taken in: kernel, initrd and disks come as
 * fds passed with the request (FdRef), as paths opened as the caller, or
 * from the default guest image; console and log fds only as FdRefs.
 *
 * Paths that clients name are opened with the caller's filesystem uid/gid
 * and supplementary groups (setfsuid), so a client can never make the
 * daemon read a file the client itself could not; QEMU gets the open fds.
 * A failed open reports the errno's own status (vm_error_errno():
 * PERMISSION_DENIED, NOT_FOUND, ...) naming the field and the path.
 *
 * The kernel command line is built here too: base options, the client's
 * words (no control characters), and the payload repeated for guests whose
 * init has no agent whenever it can be written there.
 */
#include "config.h"
#include "server/vm-config.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/fsuid.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "lib/log.h"
#include "server/diskstore.h"
#include "server/early.h"
#include "server/rootfs.h"
#include "server/vm-priv.h"

#define CMDLINE_MAX 2047 /* x86 COMMAND_LINE_SIZE - 1 */

bool vm_config_name_valid(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > 64 || s[0] == '.' || s[0] == '-')
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
		      c == '_' || c == '-'))
			return false;
	}
	return true;
}

/*
 * Open @path as the caller would: fsuid, fsgid and supplementary groups are
 * the peer's for the duration of the open(), so neither a symlink, nor a
 * directory only the daemon may search, nor a group the daemon happens to
 * be in lets a client read a file it could not read itself.
 */
static int open_as_peer(const struct ttrpc_peer *peer, const char *field, const char *path, int flags,
			struct vm_error *err)
{
	bool switch_ids = geteuid() == 0 && peer->uid != 0;
	cleanup_free gid_t *saved = NULL;
	cleanup_close int pathfd = -1;
	int nsaved = 0, fd, e;
	struct stat st;

	if (!path || path[0] != '/')
		return vm_error_set(err, VM_INVALID_ARGUMENT, "%s: \"%s\" is not an absolute path", field,
				    path ? path : "");
	if (switch_ids) {
		size_t ngroups;

		nsaved = getgroups(0, NULL);
		saved = xcalloc((size_t)MAX(nsaved, 1), sizeof(*saved));
		nsaved = getgroups(MAX(nsaved, 1), saved);
		/* the groups the caller had when it connected; none if unknown,
		 * so never more access than the caller */
		ngroups = peer->has_groups ? peer->ngroups : 0;
		if (nsaved < 0 || setgroups(ngroups, peer->groups) < 0)
			return vm_error_errno(err, errno, "%s: cannot take the caller's groups", field);
		setfsgid(peer->gid);
		setfsuid(peer->uid);
	}
	/* O_PATH first: a FIFO would block the loop in open() and a device
	 * node could act on being opened; only a regular file is reopened */
	pathfd = open(path, O_PATH | O_CLOEXEC);
	if (pathfd >= 0 && fstat(pathfd, &st) == 0 && S_ISREG(st.st_mode)) {
		char proc[64];

		snprintf(proc, sizeof(proc), "/proc/self/fd/%d", pathfd);
		fd = open(proc, flags | O_CLOEXEC | O_NOCTTY);
	} else {
		fd = -1;
		if (pathfd >= 0)
			errno = 0; /* not a regular file */
	}
	e = errno;
	if (switch_ids) {
		setfsuid(geteuid());
		setfsgid(getegid());
		if (setgroups((size_t)nsaved, saved) < 0)
			log_error("cannot restore the daemon's supplementary groups: %s", strerror(errno));
	}
	if (fd < 0 && e == 0)
		return vm_error_set(err, VM_INVALID_ARGUMENT, "%s: %s is not a regular file", field, path);
	if (fd < 0)
		return vm_error_errno(err, e, "%s: cannot open %s", field, path);
	return fd;
}

static bool arg_valid(const char *s);

/*
 * A shared folder must be one the caller can read and search itself: the
 * check is made with the caller's fsuid, fsgid and groups, as for files
 * (open_as_peer()), and virtiofsd later runs as the caller too, so the guest
 * never gets more than the caller had.
 */
static int share_dir_check(const struct ttrpc_peer *peer, const char *field, const char *path, struct vm_error *err)
{
	bool switch_ids = geteuid() == 0 && peer->uid != 0;
	cleanup_free gid_t *saved = NULL;
	int nsaved = 0, fd, e;

	if (!path || path[0] != '/')
		return vm_error_set(err, VM_INVALID_ARGUMENT, "%s: \"%s\" is not an absolute path", field,
				    path ? path : "");
	if (switch_ids) {
		nsaved = getgroups(0, NULL);
		saved = xcalloc((size_t)MAX(nsaved, 1), sizeof(*saved));
		nsaved = getgroups(MAX(nsaved, 1), saved);
		if (nsaved < 0 || setgroups(peer->has_groups ? peer->ngroups : 0, peer->groups) < 0)
			return vm_error_errno(err, errno, "%s: cannot take the caller's groups", field);
		setfsgid(peer->gid);
		setfsuid(peer->uid);
	}
	/* O_DIRECTORY: never blocks on a FIFO nor opens a device */
	fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOCTTY);
	e = errno;
	if (fd >= 0 && faccessat(fd, ".", X_OK, AT_EACCESS) < 0)
		e = errno;
	else if (fd >= 0)
		e = 0;
	if (fd >= 0)
		close(fd);
	if (switch_ids) {
		setfsuid(geteuid());
		setfsgid(getegid());
		if (setgroups((size_t)nsaved, saved) < 0)
			log_error("cannot restore the daemon's supplementary groups: %s", strerror(errno));
	}
	if (e == ENOTDIR)
		return vm_error_set(err, VM_INVALID_ARGUMENT, "%s: %s is not a directory", field, path);
	if (e)
		return vm_error_errno(err, e, "%s: cannot open the shared folder %s", field, path);
	return 0;
}

static int config_shares(struct vm *vm, const struct ttrpc_peer *peer, const Virtmgr__V1__VmConfig *c,
			 struct vm_error *err)
{
	if (c->n_shares > VIRTIOFS_MAX_SHARES)
		return vm_error_set(err, VM_INVALID_ARGUMENT, "shares: %zu, at most %d", c->n_shares,
				    VIRTIOFS_MAX_SHARES);
	vm->owner_gid = peer->gid;
	vm->shares = xcalloc(MAX(c->n_shares, 1), sizeof(*vm->shares));
	for (size_t i = 0; i < c->n_shares; i++) {
		const Virtmgr__V1__Share *s = c->shares[i];
		struct virtiofs_share *v = &vm->shares[i];
		char field[32];

		snprintf(field, sizeof(field), "shares[%zu]", i);
		v->tag = s->tag && *s->tag ? xstrdup(s->tag) : xasprintf("share%zu", i);
		if (!virtiofs_share_check_tag(v->tag))
			return vm_error_set(err, VM_INVALID_ARGUMENT, "%s: tag \"%.64s\" is not [A-Za-z0-9._-]{1,%d}",
					    field, v->tag, VIRTIOFS_TAG_MAX);
		for (size_t j = 0; j < i; j++)
			if (!strcmp(vm->shares[j].tag, v->tag))
				return vm_error_set(err, VM_INVALID_ARGUMENT, "%s: tag %s is used twice", field,
						    v->tag);
		if (!s->guest_path || s->guest_path[0] != '/' || strlen(s->guest_path) > 1024 ||
		    !arg_valid(s->guest_path) || strchr(s->guest_path, ','))
			return vm_error_set(err, VM_INVALID_ARGUMENT,
					    "%s: guest_path \"%.64s\" is not an absolute path of at most 1024 bytes",
					    field, s->guest_path ? s->guest_path : "");
		v->guest_path = xstrdup(s->guest_path);
		v->read_only = s->read_only;
		vm->nshares = i + 1;
		if (!s->host_dir || strlen(s->host_dir) > 1024 || !arg_valid(s->host_dir) || strchr(s->host_dir, ','))
			return vm_error_set(
				err, VM_INVALID_ARGUMENT,
				"%s: host_dir must be at most 1024 bytes, without commas or control characters", field);
		if (share_dir_check(peer, field, s->host_dir, err) < 0)
			return -1;
		v->host_dir = xstrdup(s->host_dir);
	}
	return 0;
}

static int take_fdref(struct ttrpc_call *call, const Virtmgr__V1__FdRef *ref, const char *field, struct vm_error *err)
{
	int fd;

	if (!ref)
		return vm_error_set(err, VM_INVALID_ARGUMENT, "%s: missing", field);
	fd = ttrpc_call_take_fd(call, ref->index);
	if (fd < 0)
		return vm_error_set(err, VM_INVALID_ARGUMENT,
				    "%s: fd index %u was not sent with the request (%zu fds received)", field,
				    ref->index, ttrpc_call_nfds(call));
	return fd;
}

static bool arg_valid(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == '"' || *s == 0x7f)
			return false;
	return true;
}

static bool env_valid_key(const char *s)
{
	const char *eq = strchr(s, '=');

	if (!eq || eq == s)
		return false;
	for (const char *p = s; p < eq; p++)
		if (!((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || *p == '_' ||
		      (p > s && *p >= '0' && *p <= '9')))
			return false;
	return true;
}

static void append(char *buf, size_t cap, size_t *len, bool *overflow, const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));

static void append(char *buf, size_t cap, size_t *len, bool *overflow, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (*overflow)
		return;
	va_start(ap, fmt);
	n = vsnprintf(buf + *len, cap - *len, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= cap - *len) {
		*overflow = true;
		return;
	}
	*len += (size_t)n;
}

/* The kernel command line: base options, the client's, payload env (init's
 * environment), then " -- " and the payload argv (init's argv). */
/* The payload (env, then " -- " argv) as kernel command line words, for a
 * guest init without the agent. Return: false when it cannot be written
 * there (double quotes, control characters, spaces in env values). */
static bool cmdline_payload(const Virtmgr__V1__VmConfig *c, char *buf, size_t cap)
{
	size_t len = 0;
	bool overflow = false;

	buf[0] = '\0';
	for (size_t i = 0; i < c->n_payload_env; i++) {
		if (!arg_valid(c->payload_env[i]) || strchr(c->payload_env[i], ' '))
			return false;
		append(buf, cap, &len, &overflow, " %s", c->payload_env[i]);
	}
	if (c->n_payload_args)
		append(buf, cap, &len, &overflow, " --");
	for (size_t i = 0; i < c->n_payload_args; i++) {
		const char *a = c->payload_args[i];

		if (!arg_valid(a))
			return false;
		if (!*a || strchr(a, ' ') || strchr(a, '\t'))
			append(buf, cap, &len, &overflow, " \"%s\"", a);
		else
			append(buf, cap, &len, &overflow, " %s", a);
	}
	return !overflow;
}

/*
 * The kernel command line: base options and the client's. The payload travels
 * in the config device tree, which vmagent reads; it is repeated on the
 * command line (env words, then " -- " argv, which the kernel hands to init)
 * for guests whose init has no agent, whenever it can be written there and
 * fits.
 */
/* A stream fd the daemon keeps using (console_out, console_in, log_out):
 * never through the client's own file description (vm_client_fd_own). */
static int take_client_fd(struct ttrpc_call *call, const Virtmgr__V1__FdRef *ref, const char *field, int mode,
			  bool *sock, struct vm_error *err)
{
	int fd = take_fdref(call, ref, field, err);

	return fd < 0 ? -1 : vm_client_fd_own(fd, mode, field, sock, err);
}

static int build_cmdline(const Virtmgr__V1__VmConfig *c, char **out, struct vm_error *err)
{
	char buf[CMDLINE_MAX + 1], payload[CMDLINE_MAX + 1];
	size_t len = 0;
	bool overflow = false;

	for (size_t i = 0; i < c->n_payload_env; i++)
		if (!env_valid_key(c->payload_env[i]))
			return vm_error_set(
				err, VM_INVALID_ARGUMENT,
				"payload_env[%zu]: \"%s\" is not KEY=VALUE with a key of [A-Za-z_][A-Za-z0-9_]*", i,
				c->payload_env[i]);
	/* no_timer_check: under TCG on a loaded host the kernel's early timer
	 * interrupt check can fail and panic before init runs (docs/guest.md) */
	append(buf, sizeof(buf), &len, &overflow, "console=ttyS0 quiet panic=-1 no_timer_check");
	if (c->cmdline && *c->cmdline) {
		for (const char *p = c->cmdline; *p; p++)
			if ((unsigned char)*p < 0x20 || *p == 0x7f)
				return vm_error_set(err, VM_INVALID_ARGUMENT, "cmdline: contains control characters");
		append(buf, sizeof(buf), &len, &overflow, " %s", c->cmdline);
	}
	if (overflow)
		return vm_error_set(err, VM_INVALID_ARGUMENT,
				    "cmdline: the kernel command line is longer than %d bytes", CMDLINE_MAX);
	if (cmdline_payload(c, payload, sizeof(payload)) && len + strlen(payload) <= CMDLINE_MAX)
		append(buf, sizeof(buf), &len, &overflow, "%s", payload);
	*out = xstrdup(buf);
	return 0;
}

/* A disk label: the virtio-blk serial (20 bytes at most) and a file name
 * under /dev/disk/by-id in the guest. */
static bool label_valid(const char *s)
{
	size_t n = strlen(s);

	return n >= 1 && n <= QEMU_DISK_LABEL_MAX &&
	       s[strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-")] == '\0';
}

static uint64_t be64(const uint8_t *p)
{
	uint64_t v = 0;

	for (int i = 0; i < 8; i++)
		v = v << 8 | p[i];
	return v;
}

/*
 * A qcow2 image is read from its header here, before QEMU sees it: one that
 * names a backing file or an external data file would make QEMU open a path
 * of the image's choosing, which the caller may not be able to open, so both
 * are refused (qemu-img convert makes a standalone image of one).
 */
static int check_qcow2(int fd, const char *field, struct vm_error *err)
{
	uint8_t h[80];
	ssize_t n = pread(fd, h, sizeof(h), 0);

	if (n < 0)
		return vm_error_set_errno(err, VM_INVALID_ARGUMENT, errno, "%s: reading the qcow2 header", field);
	if (n < 72 || memcmp(h, "QFI\xfb", 4))
		return vm_error_set(err, VM_INVALID_ARGUMENT, "%s: not a qcow2 image (format is qcow2)", field);
	if (be64(h + 8) != 0)
		return vm_error_set(err, VM_INVALID_ARGUMENT,
				    "%s: the qcow2 image names a backing file, which is refused; "
				    "make a standalone image (qemu-img convert -O qcow2)",
				    field);
	/* version 3: incompatible feature bit 2 is an external data file */
	if (h[7] >= 3 && (n < 80 || (be64(h + 72) & 4)))
		return vm_error_set(err, VM_INVALID_ARGUMENT,
				    "%s: the qcow2 image names an external data file, which is refused", field);
	return 0;
}

/*
 * The disks: each opened (fd, path as the caller) with the mode its
 * read_only asks for, its label checked or defaulted, its format checked.
 * A writable disk is attached to at most one live VM: files are compared
 * by st_dev/st_ino, as two paths (or an fd) may name the same file.
 */
static int take_disks(struct daemon *d, const Virtmgr__V1__VmConfig *c, struct vm *vm, struct ttrpc_call *call,
		      struct vm_error *err)
{
	const struct ttrpc_peer *peer = call ? ttrpc_call_peer(call) : vm_daemon_peer();

	if (c->n_disks > 16)
		return vm_error_set(err, VM_INVALID_ARGUMENT, "disks: %zu disks exceed the limit of 16", c->n_disks);
	vm->disks = xcalloc(c->n_disks, sizeof(*vm->disks));
	for (size_t i = 0; i < c->n_disks; i++) {
		const Virtmgr__V1__Disk *dk = c->disks[i];
		struct qemu_disk *q = &vm->disks[i];
		bool has_path = dk->path && *dk->path, has_image = dk->image && *dk->image;
		char field[32];
		struct stat st;
		int fd;

		snprintf(field, sizeof(field), "disks[%zu]", i);
		q->fd = -1;
		vm->ndisks = i + 1;
		if ((dk->fd != NULL) + has_path + has_image != 1)
			return vm_error_set(err, VM_INVALID_ARGUMENT, "%s: give exactly one of path, fd and image",
					    field);
		if (dk->label && *dk->label) {
			if (!label_valid(dk->label))
				return vm_error_set(err, VM_INVALID_ARGUMENT,
						    "%s: label \"%.64s\" must be 1-%d characters of [A-Za-z0-9._-]",
						    field, dk->label, QEMU_DISK_LABEL_MAX);
			snprintf(q->label, sizeof(q->label), "%s", dk->label);
		} else if (has_image && label_valid(strchr(dk->image, ':') ? strchr(dk->image, ':') + 1 : dk->image)) {
			/* root's UID:NAME is labelled NAME */
			snprintf(q->label, sizeof(q->label), "%s",
				 strchr(dk->image, ':') ? strchr(dk->image, ':') + 1 : dk->image);
		} else {
			snprintf(q->label, sizeof(q->label), "disk%u", (unsigned)i); /* i < 16 */
		}
		for (size_t j = 0; j < i; j++)
			if (!strcmp(vm->disks[j].label, q->label))
				return vm_error_set(err, VM_INVALID_ARGUMENT,
						    "%s: label \"%s\" is already the label of disks[%zu]", field,
						    q->label, j);
		if (dk->format != VIRTMGR__V1__DISK_FORMAT__DISK_FORMAT_RAW &&
		    dk->format != VIRTMGR__V1__DISK_FORMAT__DISK_FORMAT_QCOW2)
			return vm_error_set(err, VM_INVALID_ARGUMENT, "%s: format %d is neither raw nor qcow2", field,
					    (int)dk->format);
		q->qcow2 = dk->format == VIRTMGR__V1__DISK_FORMAT__DISK_FORMAT_QCOW2;
		q->read_only = dk->read_only;
		if (has_image) {
			cleanup_free char *path = NULL;
			char name[65];
			int format = 0;

			/* the caller's own store; the daemon opens its files itself */
			if (!d->disks)
				return vm_error_set(err, VM_FAILED_PRECONDITION,
						    "%s: image \"%.64s\": this daemon has no image store", field,
						    dk->image);
			/* root may name another owner's image as UID:NAME */
			if (diskstore_resolve(peer->uid, dk->image, &q->image_owner, name, err) < 0)
				return vm_error_prefix(err, "%s", field);
			path = diskstore_image_path(d->disks, q->image_owner, name, &format, err);
			if (!path)
				return vm_error_prefix(err, "%s", field);
			snprintf(q->image, sizeof(q->image), "%s", name);
			q->qcow2 = format == VIRTMGR__V1__DISK_FORMAT__DISK_FORMAT_QCOW2;
			fd = open(path, (dk->read_only ? O_RDONLY : O_RDWR) | O_CLOEXEC | O_NOCTTY | O_NOFOLLOW);
			if (fd < 0)
				return vm_error_set_errno(err, VM_INTERNAL, errno, "%s: image \"%s\": open %s", field,
							  dk->image, path);
		} else if (dk->fd)
			fd = take_fdref(call, dk->fd, field, err);
		else
			fd = open_as_peer(peer, field, dk->path, dk->read_only ? O_RDONLY : O_RDWR, err);
		if (fd < 0)
			return -1;
		q->fd = fd;
		if (fstat(fd, &st) < 0)
			return vm_error_set_errno(err, VM_INVALID_ARGUMENT, errno, "%s: fstat", field);
		q->dev = st.st_dev;
		q->ino = st.st_ino;
		if (q->qcow2 && check_qcow2(fd, field, err) < 0)
			return -1;
		for (size_t j = 0; j < i; j++)
			if (vm->disks[j].dev == q->dev && vm->disks[j].ino == q->ino &&
			    (!q->read_only || !vm->disks[j].read_only))
				return vm_error_set(err, VM_INVALID_ARGUMENT,
						    "%s: the same file as disks[%zu], and one of them is writable",
						    field, j);
		for (struct vm *o = d->vms; o; o = o->next) {
			if (o == vm || o->state == VIRTMGR__V1__VM_STATE__VM_STATE_DEAD)
				continue;
			for (size_t j = 0; j < o->ndisks; j++)
				if (o->disks[j].dev == q->dev && o->disks[j].ino == q->ino &&
				    (!q->read_only || !o->disks[j].read_only))
					return vm_error_set(err, VM_FAILED_PRECONDITION,
							    "%s: %s is attached %s to VM %s (%s)", field,
							    has_path ? dk->path : "the disk",
							    o->disks[j].read_only ? "read-only" : "writable", o->id,
							    o->name ? o->name : "");
		}
	}
	return 0;
}

int vm_config_reserve_images(struct vm *vm, struct vm_error *err)
{
	for (size_t i = 0; i < vm->ndisks; i++) {
		struct qemu_disk *q = &vm->disks[i];

		if (!q->image[0] || q->image_reserved)
			continue;
		if (diskstore_set_in_use(vm->d->disks, q->image_owner, q->image, vm->id, err) < 0)
			return vm_error_prefix(err, "disks[%zu]", i);
		q->image_reserved = true;
	}
	return 0;
}

void vm_config_release_images(struct vm *vm)
{
	for (size_t i = 0; i < vm->ndisks; i++) {
		struct qemu_disk *q = &vm->disks[i];

		if (!q->image_reserved)
			continue;
		diskstore_clear_in_use(vm->d->disks, q->image_owner, q->image, vm->id);
		q->image_reserved = false;
	}
}

/* Mounts: bounded, each source a disk label (or, for virtiofs, a share tag). */
static int check_mounts(const Virtmgr__V1__VmConfig *c, struct vm *vm, struct vm_error *err)
{
	static const char *const fstypes[] = { "ext4",	   "ext3", "ext2",    "erofs",
					       "squashfs", "vfat", "iso9660", "virtiofs" };

	if (c->n_mounts > 16)
		return vm_error_set(err, VM_INVALID_ARGUMENT, "mounts: %zu mounts exceed the limit of 16", c->n_mounts);
	for (size_t i = 0; i < c->n_mounts; i++) {
		const Virtmgr__V1__Mount *m = c->mounts[i];
		const char *fs = m->fstype && *m->fstype ? m->fstype : "ext4";
		size_t tlen = m->target ? strlen(m->target) : 0;
		bool known = false, found = false;

		for (size_t k = 0; k < ARRAY_SIZE(fstypes); k++)
			known |= !strcmp(fs, fstypes[k]);
		if (!known)
			return vm_error_set(err, VM_INVALID_ARGUMENT,
					    "mounts[%zu]: file system type \"%.32s\" is not one of ext4, ext3, ext2, "
					    "erofs, squashfs, vfat, iso9660, virtiofs",
					    i, fs);
		if (!tlen || m->target[0] != '/' || tlen > 256 || !arg_valid(m->target) || strstr(m->target, "/../") ||
		    !strcmp(m->target, "/") || (tlen >= 3 && !strcmp(m->target + tlen - 3, "/..")))
			return vm_error_set(err, VM_INVALID_ARGUMENT,
					    "mounts[%zu]: target \"%.64s\" is not an absolute guest path other than /",
					    i, m->target ? m->target : "");
		if (m->options && (strlen(m->options) > 256 || !arg_valid(m->options)))
			return vm_error_set(err, VM_INVALID_ARGUMENT,
					    "mounts[%zu]: options are longer than 256 bytes or hold control characters",
					    i);
		if (!m->source || !*m->source || strlen(m->source) > 64 || !arg_valid(m->source))
			return vm_error_set(err, VM_INVALID_ARGUMENT, "mounts[%zu]: source is missing or invalid", i);
		if (!strcmp(fs, "virtiofs")) {
			for (size_t j = 0; j < c->n_shares; j++) {
				char dflt[32];

				snprintf(dflt, sizeof(dflt), "share%zu", j);
				found |= !strcmp(c->shares[j]->tag && *c->shares[j]->tag ? c->shares[j]->tag : dflt,
						 m->source);
			}
			if (!found)
				return vm_error_set(err, VM_INVALID_ARGUMENT,
						    "mounts[%zu]: source \"%.64s\" is not the tag of a share", i,
						    m->source);
			continue;
		}
		for (size_t j = 0; j < vm->ndisks; j++)
			found |= !strcmp(vm->disks[j].label, m->source);
		if (!found)
			return vm_error_set(err, VM_INVALID_ARGUMENT,
					    "mounts[%zu]: source \"%.64s\" is not the label of a disk", i, m->source);
	}
	return 0;
}

int vm_config_validate(struct daemon *d, const Virtmgr__V1__VmConfig *c, struct vm *vm, struct ttrpc_call *call,
		       struct vm_error *err)
{
	const struct ttrpc_peer *peer = call ? ttrpc_call_peer(call) : vm_daemon_peer();
	long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
	uint64_t host_mib = pages > 0 && page > 0 ? (uint64_t)pages * (uint64_t)page >> 20 : 1024;
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);

	if (c->name && *c->name && !vm_config_name_valid(c->name))
		return vm_error_set(
			err, VM_INVALID_ARGUMENT,
			"name: \"%s\" must be 1-64 characters of [A-Za-z0-9._-], not starting with '.' or '-'",
			c->name);
	if (c->name && *c->name) {
		for (struct vm *o = d->vms; o; o = o->next)
			if (o->owner_uid == peer->uid && o->state != VIRTMGR__V1__VM_STATE__VM_STATE_DEAD &&
			    !strcmp(o->name, c->name))
				return vm_error_set(err, VM_ALREADY_EXISTS,
						    "name: a VM named \"%s\" already exists (id %s)", c->name, o->id);
	}
	vm->memory_mib = c->memory_mib ? c->memory_mib : 256;
	if (vm->memory_mib < 32 || vm->memory_mib > host_mib)
		return vm_error_set(err, VM_INVALID_ARGUMENT, "memory_mib: %u is outside 32..%llu", vm->memory_mib,
				    (unsigned long long)host_mib);
	vm->cpus = c->cpus ? c->cpus : 1;
	if (vm->cpus > 64 || (ncpu > 0 && vm->cpus > 4 * (unsigned long)ncpu))
		return vm_error_set(err, VM_INVALID_ARGUMENT, "cpus: %u is outside 1..%ld", vm->cpus,
				    ncpu > 0 ? MIN(64, 4 * ncpu) : 64);
	if (c->instance_id.len != 0 && c->instance_id.len != 64)
		return vm_error_set(err, VM_INVALID_ARGUMENT, "instance_id: must be 64 bytes, not %zu",
				    c->instance_id.len);
	if (c->crash_core_limit && (c->crash_core_limit < 4096 || c->crash_core_limit > (1ull << 40)))
		return vm_error_set(err, VM_INVALID_ARGUMENT, "crash_core_limit: %llu is outside 4096..%llu (0 = default)",
				    (unsigned long long)c->crash_core_limit, 1ull << 40);
	if (c->accel && *c->accel && strcmp(c->accel, "kvm") && strcmp(c->accel, "tcg"))
		return vm_error_set(err, VM_INVALID_ARGUMENT, "accel: \"%s\" is not kvm or tcg", c->accel);
	if (d->cfg.early && early_check_config(c->vendor_modules, c->assigned_devices, c->n_assigned_devices, err) < 0)
		return -1;
	if (c->vendor_modules && *c->vendor_modules)
		return vm_error_set(err, VM_INVALID_ARGUMENT, "vendor_modules: vendor modules are not supported");
	if (c->n_assigned_devices)
		return vm_error_set(err, VM_INVALID_ARGUMENT, "assigned_devices: device assignment is not supported");
	if (c->payload_cwd && *c->payload_cwd && c->payload_cwd[0] != '/')
		return vm_error_set(err, VM_INVALID_ARGUMENT, "payload_cwd: \"%s\" is not an absolute path",
				    c->payload_cwd);
	/* (uid_t)-1 means "unchanged" to setuid()/setgid(): never a user */
	if (c->payload_user && c->payload_user->uid == UINT32_MAX)
		return vm_error_set(err, VM_INVALID_ARGUMENT, "payload_user.uid: 4294967295 is not a user id");
	if (c->payload_user && c->payload_user->gid == UINT32_MAX)
		return vm_error_set(err, VM_INVALID_ARGUMENT, "payload_user.gid: 4294967295 is not a group id");
	vm->accel = xstrdup(c->accel && *c->accel ? c->accel : d->accel);
	if (!strcmp(vm->accel, "kvm") && access("/dev/kvm", R_OK | W_OK) < 0)
		return vm_error_errno(err, errno, "accel: kvm requested but /dev/kvm");
	vm->boot_timeout_ms = c->boot_timeout_ms ? c->boot_timeout_ms : d->cfg.default_boot_timeout_ms;

	/* kernel and initrd: an fd from the client, a path opened as the client, or the default image */
	if (c->kernel_fd) {
		if ((vm->kernel_fd = take_fdref(call, c->kernel_fd, "kernel_fd", err)) < 0)
			return -1;
	} else if (c->kernel && *c->kernel) {
		if ((vm->kernel_fd = open_as_peer(peer, "kernel", c->kernel, O_RDONLY, err)) < 0)
			return -1;
	} else {
		cleanup_free char *k = xasprintf("%s/vmlinuz", d->cfg.guest_dir);

		vm->kernel_fd = open(k, O_RDONLY | O_CLOEXEC);
		/* not vm_error_errno(): the daemon's installation is at fault, not the caller */
		if (vm->kernel_fd < 0)
			return vm_error_set_errno(err, VM_FAILED_PRECONDITION, errno,
						  "kernel: no kernel given and the default guest kernel %s is missing",
						  k);
	}
	if (c->initrd_fd) {
		if ((vm->initrd_fd = take_fdref(call, c->initrd_fd, "initrd_fd", err)) < 0)
			return -1;
	} else if (c->initrd && *c->initrd) {
		if ((vm->initrd_fd = open_as_peer(peer, "initrd", c->initrd, O_RDONLY, err)) < 0)
			return -1;
	} else if (!c->kernel_fd && !(c->kernel && *c->kernel)) {
		cleanup_free char *i = xasprintf("%s/initramfs.img", d->cfg.guest_dir);

		vm->initrd_fd = open(i, O_RDONLY | O_CLOEXEC);
		if (vm->initrd_fd < 0)
			return vm_error_set_errno(err, VM_FAILED_PRECONDITION, errno,
						  "initrd: the default guest initramfs %s is missing", i);
	}
	if (take_disks(d, c, vm, call, err) < 0 || check_mounts(c, vm, err) < 0)
		return -1;
	if (config_shares(vm, peer, c, err) < 0)
		return -1;
	if (rootfs_check(c, vm->disks, vm->ndisks, err) < 0)
		return -1;
	if (build_cmdline(c, &vm->cmdline, err) < 0)
		return -1;
	if (c->console_out && (vm->console.out.fd = take_client_fd(call, c->console_out, "console_out", O_WRONLY,
								   &vm->console.out.sock, err)) < 0)
		return -1;
	if (c->console_in && (vm->console.in_fd = take_client_fd(call, c->console_in, "console_in", O_RDONLY,
								 &vm->console.in_sock, err)) < 0)
		return -1;
	if (c->log_out &&
	    (vm->log_out_fd = take_client_fd(call, c->log_out, "log_out", O_WRONLY, &vm->log_out_sock, err)) < 0)
		return -1;
	return 0;
}
