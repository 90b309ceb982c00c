/* mounts.c - the VM's disks by label, and the configured mounts.
 *
 * Design (maitred's Mount). The default image has no udev, so the agent
 * makes the links udev would: /dev/disk/by-id/virtio-SERIAL -> ../../vdX
 * for every virtio-blk disk whose serial (/sys/block/vdX/serial, the label
 * virtmgrd put in QEMU's serial=) is set, whatever order the devices came
 * in. Before the payload starts, the "mounts" of the configuration are
 * mounted in order: the file system's modules loaded first when the image
 * lists them in /lib/modules/fs/TYPE (built-in file systems have no list),
 * the target created, the source a disk label or, for virtiofs, a share
 * tag. A mount that fails stops there: the caller reports the message,
 * which names the mount and the kernel's error, as PAYLOAD_INVALID_CONFIG.
 * Before the machine powers off they are synced and unmounted in reverse
 * order, so that what the guest wrote is on the image when the VM is dead;
 * a file system still busy has every other process killed, then is
 * remounted read-only if it still cannot be unmounted.
 */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "guest/modload.h"
#include "guest/vmagent/agent.h"
#include "lib/log.h"

#define MOUNTS_BY_ID "/dev/disk/by-id"
#define MOUNTS_FS_MODULES "/lib/modules/fs"
#define MOUNTS_WAIT_MS 3000 /* for a disk to show up */

static bool serial_valid(const char *s)
{
	size_t n = strlen(s);

	return n >= 1 && n <= 20 &&
	       s[strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-")] == '\0';
}

void agent_disks_link(struct agent *a)
{
	DIR *d = opendir("/sys/block");
	struct dirent *e;

	if (!d)
		return;
	if (mkdir_p(MOUNTS_BY_ID, 0755) < 0) {
		agent_log(a, "mkdir %s: %s", MOUNTS_BY_ID, strerror(errno));
		closedir(d);
		return;
	}
	while ((e = readdir(d))) {
		char path[PATH_MAX], serial[64], link[PATH_MAX], target[300];
		ssize_t n;
		int fd;

		if (strncmp(e->d_name, "vd", 2) || strlen(e->d_name) > 32)
			continue;
		snprintf(path, sizeof(path), "/sys/block/%s/serial", e->d_name);
		fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			continue;
		n = read(fd, serial, sizeof(serial) - 1);
		close(fd);
		if (n <= 0)
			continue;
		serial[n] = '\0';
		serial[strcspn(serial, "\n")] = '\0';
		if (!serial_valid(serial))
			continue;
		snprintf(link, sizeof(link), MOUNTS_BY_ID "/virtio-%s", serial);
		snprintf(target, sizeof(target), "../../%s", e->d_name);
		unlink(link);
		if (symlink(target, link) < 0)
			agent_log(a, "symlink %s: %s", link, strerror(errno));
	}
	closedir(d);
}

static void module_failed(void *opaque, const char *module, int err)
{
	agent_log(opaque, "load module %s: %s", module, strerror(err));
}

/* The modules /lib/modules/fs/TYPE lists, in order (dependencies first). */
void agent_fs_modules_load(struct agent *a, const char *fstype)
{
	char list[PATH_MAX];

	if (strchr(fstype, '/') || fstype[0] == '.')
		return;
	snprintf(list, sizeof(list), MOUNTS_FS_MODULES "/%s", fstype);
	modload_list(list, module_failed, a);
}

bool agent_disk_wait(struct agent *a, const char *label, char *dev, size_t devsz)
{
	struct stat st;
	int waited = 0;

	snprintf(dev, devsz, MOUNTS_BY_ID "/virtio-%s", label);
	agent_disks_link(a);
	/* virtio-blk probes as its module loads, but give a slow bus a
	 * moment before calling the label unknown */
	while (stat(dev, &st) < 0 && waited < MOUNTS_WAIT_MS) {
		sleep_ms(50);
		waited += 50;
		agent_disks_link(a);
	}
	return stat(dev, &st) == 0;
}

void agent_unmount(struct agent *a, const char *target, int flags, bool *killed)
{
	int tries = 0;

	while (umount2(target, flags) < 0) {
		if (errno != EBUSY || ++tries > 40) {
			agent_log(a, "unmount %s: %s; remounting it read-only", target, strerror(errno));
			if (mount(NULL, target, NULL, MS_REMOUNT | MS_RDONLY, NULL) < 0)
				agent_log(a, "remount %s read-only: %s", target, strerror(errno));
			return;
		}
		if (!*killed) {
			/* the machine is going down: what still holds it goes first */
			kill(-1, SIGKILL);
			*killed = true;
		}
		sleep_ms(50);
	}
}

int agent_mounts_setup(struct agent *a, struct vm_error *err)
{
	const struct agent_config *c = &a->cfg;

	agent_disks_link(a);
	for (size_t i = 0; i < c->n_mounts; i++) {
		char *const *m = c->mounts + 5 * i;
		const char *source = m[0], *target = m[1], *fstype = m[2], *options = m[4];
		unsigned long flags = !strcmp(m[3], "ro") ? MS_RDONLY : 0;
		char dev[PATH_MAX];
		int r;

		if (!strcmp(fstype, "virtiofs")) {
			snprintf(dev, sizeof(dev), "%s", source);
		} else {
			if (!agent_disk_wait(a, source, dev, sizeof(dev)))
				return vm_error_set(err, VM_INVALID_ARGUMENT,
						    "mount %s on %s: no disk with the label %s (%s)", source, target,
						    source, dev);
		}
		agent_fs_modules_load(a, fstype);
		r = mkdir_p(target, 0755);
		if (r < 0)
			return vm_error_set(err, VM_INVALID_ARGUMENT, "mount %s on %s: creating the target: %s", source,
					    target, strerror(-r));
		if (mount(dev, target, fstype, flags | MS_NOSUID | MS_NODEV, *options ? options : NULL) < 0)
			return vm_error_set(err, VM_INVALID_ARGUMENT, "mount %s on %s (%s%s): %s", source, target,
					    fstype, flags & MS_RDONLY ? ", read-only" : "", strerror(errno));
		a->mounted = i + 1;
		log_debug("mounted %s on %s (%s)", source, target, fstype);
	}
	return 0;
}

void agent_mounts_release(struct agent *a)
{
	bool killed = false;

	sync();
	while (a->mounted > 0) {
		agent_unmount(a, a->cfg.mounts[5 * (a->mounted - 1) + 1], 0, &killed);
		a->mounted--;
	}
	sync();
}
