/* root.c - the payload's root file system (VmConfig.root).
 *
 * Design. vmagent stays in the initramfs (its modules, its busybox, its
 * power-off path); only its children see the root. Before the payload
 * starts, the agent builds the tree under ROOT_BASE:
 *   lower/   the root disk (by label) or share (virtiofs tag), read-only
 *   rw/      a tmpfs holding the overlay's upper/ and work/ directories
 *   root/    the overlay of the two: the payload's /; a writable root is
 *            mounted here directly instead, with no lower/ or rw/
 * and inside root/ the file systems every program expects: /proc, /sys,
 * /dev (a recursive bind of the agent's devtmpfs with its devpts, so that
 * an Exec session's terminal has the same name inside), a fresh tmpfs on
 * /tmp and one on /run. The configured mounts and shares then go inside
 * root/ (their targets are rebased), so that the payload finds them where
 * the configuration said. The payload and every Exec session chroot() into
 * root/ after their terminal is set up and before they drop to their user,
 * so /etc/passwd, the dynamic loader and the libraries are the image's.
 * chroot is a view, not a wall: guest root owns the guest anyway, the host
 * is protected by the VM.
 *
 * At power-off, after the configured mounts and shares are released, the
 * tree is unmounted in reverse order; a busy file system has every other
 * process killed first and, if it still cannot go, is remounted read-only,
 * so that a writable root is clean on the image once the VM is DEAD. Every
 * failure while building the tree is a configuration error naming the root
 * and the kernel's error (DEAD/INVALID_PAYLOAD_CONFIG).
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "guest/vmagent/agent.h"
#include "guest/vmagent/root.h"
#include "lib/log.h"

#define ROOT_BASE "/run/vmroot"
#define ROOT_LOWER ROOT_BASE "/lower"
#define ROOT_RW ROOT_BASE "/rw"
#define ROOT_DIR ROOT_BASE "/root"
#define ROOT_MAX_MOUNTS 12

/* what was mounted, in order, for the release */
static char root_mounted[ROOT_MAX_MOUNTS][PATH_MAX];
static size_t root_nmounted;
static bool root_active;

static int root_mount(const char *src, const char *target, const char *fstype, unsigned long flags, const char *data,
		      const char *what, struct vm_error *err)
{
	int r = mkdir_p(target, 0755);

	if (r < 0)
		return vm_error_set(err, VM_INVALID_ARGUMENT, "root %s: creating %s: %s", what, target, strerror(-r));
	if (root_nmounted >= ROOT_MAX_MOUNTS)
		return vm_error_set(err, VM_INVALID_ARGUMENT, "root %s: too many mounts", what);
	if (mount(src, target, fstype, flags, data) < 0)
		return vm_error_set(err, VM_INVALID_ARGUMENT, "root %s: mount %s on %s (%s): %s", what, src, target,
				    fstype ? fstype : "bind", strerror(errno));
	snprintf(root_mounted[root_nmounted++], PATH_MAX, "%s", target);
	return 0;
}

/* the configured mounts' targets and the shares' paths, inside the root */
static void root_rebase(struct agent_config *c)
{
	for (size_t i = 0; i < c->n_mounts; i++) {
		char **t = &c->mounts[5 * i + 1];
		char *n = xasprintf(ROOT_DIR "%s", *t);

		free(*t);
		*t = n;
	}
	for (size_t i = 0; i < c->n_shares; i++) {
		char **t = &c->shares[3 * i + 1];
		char *n = xasprintf(ROOT_DIR "%s", *t);

		free(*t);
		*t = n;
	}
}

bool agent_root_is_share(const struct agent_config *c, const char *tag)
{
	return c->root && !strcmp(c->root[1], "virtiofs") && !strcmp(c->root[0], tag);
}

int agent_root_setup(struct agent *a, struct vm_error *err)
{
	struct agent_config *c = &a->cfg;
	const char *source, *fstype;
	bool rw, share;
	char dev[PATH_MAX], data[3 * PATH_MAX], what[64];
	unsigned long lflags = MS_NODEV;

	if (!c->root)
		return 0;
	source = c->root[0];
	fstype = c->root[1];
	rw = !strcmp(c->root[2], "rw");
	share = !strcmp(fstype, "virtiofs");
	snprintf(what, sizeof(what), "%s %s", share ? "share" : "disk", source);
	if (share) {
		snprintf(dev, sizeof(dev), "%s", source);
	} else {
		if (!agent_disk_wait(a, source, dev, sizeof(dev)))
			return vm_error_set(err, VM_INVALID_ARGUMENT, "root %s: no disk with the label %s (%s)", what,
					    source, dev);
	}
	agent_fs_modules_load(a, fstype);
	root_active = true;
	if (rw) {
		if (root_mount(dev, ROOT_DIR, fstype, lflags, NULL, what, err) < 0)
			return -1;
	} else {
		agent_fs_modules_load(a, "overlay");
		if (root_mount(dev, ROOT_LOWER, fstype, lflags | MS_RDONLY, NULL, what, err) < 0 ||
		    root_mount("tmpfs", ROOT_RW, "tmpfs", MS_NODEV, "mode=0755", what, err) < 0)
			return -1;
		if (mkdir(ROOT_RW "/upper", 0755) < 0 || mkdir(ROOT_RW "/work", 0755) < 0)
			return vm_error_set(err, VM_INVALID_ARGUMENT, "root %s: mkdir in %s: %s", what, ROOT_RW,
					    strerror(errno));
		snprintf(data, sizeof(data), "lowerdir=%s,upperdir=%s/upper,workdir=%s/work", ROOT_LOWER, ROOT_RW,
			 ROOT_RW);
		if (root_mount("overlay", ROOT_DIR, "overlay", 0, data, what, err) < 0)
			return -1;
	}
	if (root_mount("proc", ROOT_DIR "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL, what, err) < 0 ||
	    root_mount("sysfs", ROOT_DIR "/sys", "sysfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL, what, err) < 0 ||
	    root_mount("/dev", ROOT_DIR "/dev", NULL, MS_BIND | MS_REC, NULL, what, err) < 0 ||
	    root_mount("tmpfs", ROOT_DIR "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777", what, err) < 0 ||
	    root_mount("tmpfs", ROOT_DIR "/run", "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755", what, err) < 0)
		return -1;
	root_rebase(c);
	agent_log(a, "root %s (%s, %s) mounted", what, fstype, rw ? "writable" : "read-only under a tmpfs overlay");
	return 0;
}

int agent_root_bind_file(struct agent *a, const char *path, struct vm_error *err)
{
	char target[PATH_MAX], what[PATH_MAX + 8];
	int fd;

	if (!agent_root_dir(a))
		return 0;
	snprintf(target, sizeof(target), ROOT_DIR "%s", path);
	snprintf(what, sizeof(what), "file %s", path);
	/* the file's directory must be the image's: a root without /etc gets none */
	fd = open(target, O_WRONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0644);
	if (fd < 0)
		return vm_error_set(err, VM_INVALID_ARGUMENT, "root %s: creating %s: %s", what, target,
				    strerror(errno));
	close(fd);
	if (root_nmounted >= ROOT_MAX_MOUNTS)
		return vm_error_set(err, VM_INVALID_ARGUMENT, "root %s: too many mounts", what);
	if (mount(path, target, NULL, MS_BIND, NULL) < 0)
		return vm_error_set(err, VM_INVALID_ARGUMENT, "root %s: bind on %s: %s", what, target, strerror(errno));
	snprintf(root_mounted[root_nmounted++], PATH_MAX, "%s", target);
	if (mount(NULL, target, NULL, MS_BIND | MS_REMOUNT | MS_RDONLY, NULL) < 0)
		return vm_error_set(err, VM_INVALID_ARGUMENT, "root %s: read-only on %s: %s", what, target,
				    strerror(errno));
	return 0;
}

const char *agent_root_dir(const struct agent *a)
{
	return a->cfg.root && root_active ? ROOT_DIR : NULL;
}

int agent_root_enter(const struct agent *a)
{
	const char *dir = agent_root_dir(a);

	if (!dir)
		return 0;
	if (chroot(dir) < 0 || chdir("/") < 0)
		return errno;
	return 0;
}

void agent_root_release(struct agent *a)
{
	bool killed = false;

	if (!root_nmounted)
		return;
	sync();
	while (root_nmounted > 0) {
		const char *target = root_mounted[root_nmounted - 1];

		/* /dev is a recursive bind: its submounts go with it */
		agent_unmount(a, target, strcmp(target, ROOT_DIR "/dev") ? 0 : MNT_DETACH, &killed);
		root_nmounted--;
	}
	sync();
}
