/* sandbox.h - confine a child of virtmgrd before it execs a VM's process.
 *
 * When the daemon is root, each VM's QEMU and vsock backend run under the
 * VM's own uid/gid (server/uidpool.h), with no supplementary groups, no
 * capabilities in any set (effective, permitted, inheritable, ambient,
 * bounding), PR_SET_NO_NEW_PRIVS and, where the program does not install
 * its own, a seccomp filter. QEMU installs its own with `-sandbox`
 * (SANDBOX_QEMU_ARG); virtmgr-vsock installs its own allow-list after its
 * set-up (server/vsock/main.c). Everything else they need arrives as fds or
 * lives in the VM's run directory, which sandbox_run_dir_prepare() hands to
 * the VM's uid. When the daemon is not root the ids stay as they are and only
 * NO_NEW_PRIVS and the filter apply.
 *
 * The parent prepares everything that allocates (the seccomp program is
 * compiled to BPF in memory with sandbox_filter_compile()); sandbox_enter()
 * then only makes system calls, so it is async-signal-safe and fit for a
 * child of a multi-threaded process too. virtmgrd itself is single-threaded,
 * so libseccomp could be called after fork as well, but nothing needs it.
 */
#ifndef VIRTMGR_SANDBOX_H
#define VIRTMGR_SANDBOX_H

#include <linux/filter.h>
#include <seccomp.h>
#include <stdbool.h>
#include <sys/types.h>

#include "lib/util.h"

/* QEMU's own seccomp filter: no obsolete calls, no set*id, no fork/exec, no
 * scheduler or affinity changes (QEMU 7.2's -sandbox options) */
#define SANDBOX_QEMU_ARG "on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny"

/* a child that could not confine itself exits with this code after writing
 * its reason to sandbox.report_fd; chosen to differ from QEMU's (0, 1),
 * virtmgr-vsock's (0-3) and an exec failure's (127) */
#define SANDBOX_EXIT_FAILED 123

/* A seccomp program compiled to BPF, ready for prctl(PR_SET_SECCOMP). */
struct sandbox_filter {
	struct sock_filter *insns;
	unsigned short len;
};

struct sandbox {
	bool change_ids;		     /* false when the daemon is not root */
	uid_t uid;			     /* the VM's uid (when change_ids) */
	gid_t gid;			     /* the VM's gid (when change_ids) */
	const struct sandbox_filter *filter; /* NULL: the program installs its own */
	int report_fd;			     /* a failure's message goes here; -1: none */
};

/**
 * sandbox_filter_compile() - turn a libseccomp filter into BPF in memory
 * @ctx: the filter, built by the caller (seccomp_init(), seccomp_rule_add())
 * @out: filled; free with sandbox_filter_release()
 * @err: the libseccomp or memfd failure
 *
 * Done in the parent, so that the child loads it with one prctl().
 * Return: 0, or -1 with @err filled.
 */
int sandbox_filter_compile(scmp_filter_ctx ctx, struct sandbox_filter *out, struct vm_error *err);

/** sandbox_filter_release() - free the program of @f and zero it. Return: nothing. */
void sandbox_filter_release(struct sandbox_filter *f);

/**
 * sandbox_enter() - confine the calling process; call in the child between
 * fork and execve, after the fds are in place
 * @sb: what to apply
 *
 * In order: clear the ambient set and (when changing ids) the bounding set,
 * setgroups(0), setresgid, setresuid, clear every capability set, check the
 * ids and sets really are what they must be, PR_SET_NO_NEW_PRIVS, load
 * @sb->filter. Only system calls: async-signal-safe. On failure a line
 * "sandbox: STEP: ERRNAME (N)" goes to @sb->report_fd and the caller
 * should _exit(SANDBOX_EXIT_FAILED).
 * Return: 0, or -1 with errno set.
 */
int sandbox_enter(const struct sandbox *sb);

/**
 * sandbox_run_dir_prepare() - give a VM's run directory to the VM's uid
 * @path: the directory; created with mode 0700 when missing
 * @sb: whose it becomes (when @sb->change_ids; otherwise it stays the
 *      daemon's)
 * @err: what failed, naming @path
 *
 * Refuses a symlink, a non-directory, and a directory owned by anyone but
 * the daemon or the VM's uid (someone else planted it). Ends with owner
 * uid:gid and mode 0700.
 * Return: 0, or -1 with @err filled.
 */
int sandbox_run_dir_prepare(const char *path, const struct sandbox *sb, struct vm_error *err);

int sandbox_dir_reachable(const char *dir, struct vm_error *err);
int sandbox_report_read(int report_r, pid_t pid, char *why, size_t size);

#endif
