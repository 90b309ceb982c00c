/* vm-storage.c - a VM's disks and shares across a daemon restart.
 *
 * Design. vm-persist.c records a running VM in vm.state and adopts it after
 * a restart; this file adds what storage needs to that record and back:
 *   disk_N  = "ro|rw DEV INO LABEL IMAGE|- IMAGE_OWNER" (QEMU's drive order)
 *   share_N = "ro|rw TAG PID START HOSTDIR"  (virtiofsd's pid and start time)
 * An adopted VM gets its disks back (device and inode, so the one-writer
 * rule keeps holding against new VMs; label and drive index, for online
 * resize), its store images reserved again in the image store, and its
 * virtiofsd processes watched again by pidfd: one that died while the
 * daemon was down stops the VM (INFRASTRUCTURE_ERROR, as a live one would).
 * For a VM that is not adopted (its QEMU is gone), vm_storage_cleanup()
 * terminates the virtiofsd processes its record names, so nothing is left
 * behind. Every value read back is checked: the file is the daemon's own
 * (vm-persist.c checks that), but it is parsed like untrusted input.
 */
#include "config.h"
#include "server/vm-storage.h"

#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "lib/log.h"
#include "server/diskstore.h"
#include "server/vm-priv.h"

#define VS_MAX_DISKS 16 /* vm-config.c allows 16; the record holds 64 keys */

void vm_storage_persist(const struct vm *vm, struct statefile *sf)
{
	char key[32], val[4096 + 128];

	for (size_t i = 0; i < vm->ndisks && i < VS_MAX_DISKS; i++) {
		const struct qemu_disk *q = &vm->disks[i];

		snprintf(key, sizeof(key), "disk_%zu", i);
		snprintf(val, sizeof(val), "%s %" PRIu64 " %" PRIu64 " %s %s %u", q->read_only ? "ro" : "rw",
			 (uint64_t)q->dev, (uint64_t)q->ino, *q->label ? q->label : "-", *q->image ? q->image : "-",
			 (unsigned)q->image_owner);
		statefile_set(sf, key, val);
	}
	for (size_t i = 0; i < vm->nshares && i < VIRTIOFS_MAX_SHARES; i++) {
		pid_t pid = virtiofs_pid(&vm->virtiofs, i);
		uint64_t st = 0;

		if (pid <= 0 || proc_start_time(pid, &st) < 0)
			pid = 0;
		snprintf(key, sizeof(key), "share_%zu", i);
		snprintf(val, sizeof(val), "%s %s %d %" PRIu64 " %s", vm->shares[i].read_only ? "ro" : "rw",
			 vm->shares[i].tag, (int)pid, st, vm->shares[i].host_dir);
		statefile_set(sf, key, val);
	}
}

static bool vs_word_valid(const char *s, size_t max)
{
	size_t n = strlen(s);

	return n >= 1 && n <= max &&
	       s[strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-")] == '\0';
}

static void vs_helper_failed(void *opaque, const char *message)
{
	struct vm *vm = opaque;

	if (!vm->qemu || vm->state == VIRTMGR__V1__VM_STATE__VM_STATE_DEAD)
		return;
	log_warn("vm %s: %s, stopping the VM", vm->id, message);
	if (!vm->kill_requested && !vm->stop_requested) {
		vm->forced_reason = VIRTMGR__V1__DEATH_REASON__DEATH_REASON_INFRASTRUCTURE_ERROR;
		snprintf(vm->message, sizeof(vm->message), "%s", message);
	}
	qemu_kill(vm->qemu);
}

static void vs_restore_disks(struct vm *vm, const struct statefile *sf)
{
	size_t n = 0;

	while (n < VS_MAX_DISKS) {
		char key[32];

		snprintf(key, sizeof(key), "disk_%zu", n);
		if (!statefile_get(sf, key))
			break;
		n++;
	}
	if (!n)
		return;
	vm->disks = xcalloc(n, sizeof(*vm->disks));
	for (size_t i = 0; i < n; i++) {
		struct qemu_disk *q = &vm->disks[i];
		char key[32], mode[4], label[64], image[80];
		unsigned long long dev, ino;
		unsigned owner;
		struct vm_error err = { 0 };

		snprintf(key, sizeof(key), "disk_%zu", i);
		q->fd = -1;
		if (sscanf(statefile_get(sf, key), "%3s %llu %llu %63s %79s %u", mode, &dev, &ino, label, image,
			   &owner) != 6 ||
		    (strcmp(mode, "ro") && strcmp(mode, "rw")) ||
		    (strcmp(label, "-") && !vs_word_valid(label, QEMU_DISK_LABEL_MAX)) ||
		    (strcmp(image, "-") && !vs_word_valid(image, 64))) {
			log_warn("vm %s: %s in vm.state is invalid; the disk is not kept", vm->id, key);
			continue;
		}
		q->read_only = mode[1] == 'o';
		q->dev = (dev_t)dev;
		q->ino = (ino_t)ino;
		q->image_owner = (uid_t)owner;
		if (strcmp(label, "-"))
			snprintf(q->label, sizeof(q->label), "%s", label);
		if (strcmp(image, "-")) {
			snprintf(q->image, sizeof(q->image), "%s", image);
			if (vm->d->disks &&
			    diskstore_set_in_use(vm->d->disks, q->image_owner, q->image, vm->id, &err) == 0)
				q->image_reserved = true;
			else if (vm->d->disks)
				log_warn("vm %s: disk image %s: %s", vm->id, q->image, err.message);
		}
	}
	vm->ndisks = n;
}

static void vs_restore_shares(struct vm *vm, const struct statefile *sf)
{
	pid_t pids[VIRTIOFS_MAX_SHARES];
	uint64_t starts[VIRTIOFS_MAX_SHARES];
	struct vm_error err = { 0 };
	size_t n = 0;

	vm->shares = xcalloc(VIRTIOFS_MAX_SHARES, sizeof(*vm->shares));
	while (n < VIRTIOFS_MAX_SHARES) {
		char key[32], mode[4], tag[64];
		const char *v;
		int pid, off = 0;
		unsigned long long st;

		snprintf(key, sizeof(key), "share_%zu", n);
		v = statefile_get(sf, key);
		if (!v)
			break;
		if (sscanf(v, "%3s %63s %d %llu %n", mode, tag, &pid, &st, &off) != 4 || !off || v[off] != '/' ||
		    (strcmp(mode, "ro") && strcmp(mode, "rw")) || !virtiofs_share_check_tag(tag) || pid < 0) {
			log_warn("vm %s: %s in vm.state is invalid", vm->id, key);
			pid = 0;
			st = 0;
			snprintf(tag, sizeof(tag), "share%zu", n);
			mode[1] = 'o';
			off = (int)strlen(v);
		}
		vm->shares[n].read_only = mode[1] == 'o';
		vm->shares[n].tag = xstrdup(tag);
		vm->shares[n].host_dir = xstrdup(v + off);
		vm->shares[n].guest_path = xstrdup("");
		pids[n] = pid;
		starts[n] = st;
		n++;
	}
	vm->nshares = n;
	if (!n)
		return;
	if (virtiofs_adopt(&vm->virtiofs, vm->d->loop, vm->run_dir, vm->shares, n, pids, starts, vs_helper_failed, vm,
			   &err) < 0)
		vs_helper_failed(vm, err.message);
}

void vm_storage_restore(struct vm *vm, const struct statefile *sf)
{
	vs_restore_disks(vm, sf);
	vs_restore_shares(vm, sf);
}

void vm_storage_cleanup(const struct statefile *sf, const char *dir)
{
	for (size_t i = 0; i < VIRTIOFS_MAX_SHARES; i++) {
		char key[32], mode[4], tag[64];
		const char *v;
		int pid, pidfd;
		unsigned long long st;
		uint64_t now = 0;

		snprintf(key, sizeof(key), "share_%zu", i);
		v = statefile_get(sf, key);
		if (!v)
			break;
		if (sscanf(v, "%3s %63s %d %llu", mode, tag, &pid, &st) != 4 || pid <= 0)
			continue;
		/* only the very process recorded: a reused pid is someone else's */
		pidfd = (int)syscall(SYS_pidfd_open, (pid_t)pid, 0);
		if (pidfd < 0)
			continue;
		if (proc_start_time((pid_t)pid, &now) == 0 && now == st) {
			log_info("%s: terminating virtiofsd (pid %d) for share %.32s of a VM that is gone", dir, pid,
				 tag);
			syscall(SYS_pidfd_send_signal, pidfd, SIGTERM, NULL, 0);
		}
		close(pidfd);
	}
}
