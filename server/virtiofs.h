/* virtiofs.h - host folders shared with a guest: one virtiofsd per share,
 * spawned, watched and reaped by the daemon (docs/storage.md, "Shared
 * folders").
 *
 * Each virtiofsd runs as the VM's owner (the uid/gid that called CreateVm),
 * never as root and never as the VM's sandbox uid: the guest must see in the
 * folder exactly what its owner may see. Debian 12's virtiofsd (QEMU 7.2's C
 * one) insists on being root for its own sandbox (mount, pid and net
 * namespaces, pivot_root into the folder, a capability set), so the child
 * first drops to the owner's ids and then enters a user namespace of its own
 * where only the owner's uid and gid are mapped, to 0: inside, virtiofsd has
 * the capabilities it asks for over nothing but that namespace, and every
 * file it touches on the host is touched as the owner. A read-only share is
 * also read-only on the host side: that virtiofsd has no --readonly, so the
 * folder is bind-mounted read-only onto itself in the child's mount
 * namespace before the exec.
 *
 * The daemon creates the vhost-user socket (in the VM's run directory, given
 * to the VM's uid so QEMU can connect by path) and hands virtiofsd its
 * listening fd (--fd=3), so virtiofsd needs no write access anywhere.
 */
#ifndef VIRTMGR_VIRTIOFS_H
#define VIRTMGR_VIRTIOFS_H

#include <ev.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "lib/util.h"

#define VIRTIOFS_MAX_SHARES 8
#define VIRTIOFS_TAG_MAX 32 /* bytes; the kernel's virtiofs tag limit is 36 */
#define VIRTIOFS_BINARY "/usr/lib/qemu/virtiofsd"

/* One share as CreateVm accepted it. */
struct virtiofs_share {
	char *host_dir;
	char *tag;
	char *guest_path;
	bool read_only;
};

struct virtiofs_proc {
	const struct virtiofs_share *share;
	char *socket_path; /* run_dir/virtiofs-N.sock */
	pid_t pid;
	int pidfd;   /* -1 when none */
	bool reaped; /* its exit status was collected */
	bool adopted; /* from before a daemon restart: not our child */
	ev_io io;    /* readable pidfd: it exited */
	ev_timer grace;
	char death[256];
};

/* @message says which virtiofsd died and how. */
typedef void (*virtiofs_failed_cb)(void *opaque, const char *message);

struct virtiofs_set {
	struct ev_loop *loop;
	struct virtiofs_proc *procs;
	size_t n;
	virtiofs_failed_cb failed;
	void *opaque;
};

/* Who runs virtiofsd and who must reach its socket. */
struct virtiofs_ids {
	bool change_ids; /* the daemon is root: drop to owner_uid/owner_gid */
	uid_t owner_uid;
	gid_t owner_gid;
	uid_t qemu_uid; /* owner of the sockets (QEMU's uid); 0 = ours */
};

/**
 * virtiofs_share_check_tag() - whether @tag is a valid share tag
 * Return: true for [A-Za-z0-9._-]{1,VIRTIOFS_TAG_MAX}.
 */
bool virtiofs_share_check_tag(const char *tag);

/**
 * virtiofs_start() - start one virtiofsd per share and watch them
 * @set: zeroed; filled (release with virtiofs_release())
 * @loop: the daemon's loop
 * @run_dir: the VM's run directory (sockets go here)
 * @shares: the shares, @n of them (at most VIRTIOFS_MAX_SHARES)
 * @ids: whose processes and sockets
 * @failed: called once when a virtiofsd exits while @set is live
 * @opaque: for @failed
 * @err: which share failed and why
 *
 * Return: 0, or -1 with @err filled and nothing left running.
 */
int virtiofs_start(struct virtiofs_set *set, struct ev_loop *loop, const char *run_dir,
		   const struct virtiofs_share *shares, size_t n, const struct virtiofs_ids *ids,
		   virtiofs_failed_cb failed, void *opaque, struct vm_error *err);

/**
 * virtiofs_adopt() - after a daemon restart, watch the virtiofsd processes of
 * an adopted VM again (by pidfd: they are not our children any more)
 * @set: zeroed; filled (release with virtiofs_release())
 * @pids: @n pids, and @starts their start times as recorded (/proc/PID/stat
 *        field 22), so that a reused pid is not taken for virtiofsd
 * Return: 0 when every one still runs, or -1 with @err naming the first that
 *         died while the daemon was down (the others are watched anyway).
 */
int virtiofs_adopt(struct virtiofs_set *set, struct ev_loop *loop, const char *run_dir,
		   const struct virtiofs_share *shares, size_t n, const pid_t *pids, const uint64_t *starts,
		   virtiofs_failed_cb failed, void *opaque, struct vm_error *err);

/**
 * virtiofs_pid() - Return: the pid of share @i's virtiofsd, or -1.
 */
pid_t virtiofs_pid(const struct virtiofs_set *set, size_t i);

/**
 * virtiofs_socket_path() - the vhost-user socket of share @i for QEMU
 * Return: the path, owned by @set.
 */
const char *virtiofs_socket_path(const struct virtiofs_set *set, size_t i);

/**
 * virtiofs_release() - stop watching, terminate every virtiofsd still running
 * and reap it later from the loop, remove the sockets
 * @set: as filled by virtiofs_start(), or zeroed
 * Return: nothing.
 */
void virtiofs_release(struct virtiofs_set *set);

#endif
