/* caller.c - identity of an API connection's peer, taken when it connects.
 *
 * The pid comes from SO_PEERCRED and the pidfd from SO_PEERPIDFD (or
 * pidfd_open() on that pid), both taken by the ttrpc layer at accept. What
 * /proc/<pid>/exe names is read by pid, so it is trusted only if the pidfd
 * still refers to a live process afterwards: a pid is not reused while its
 * process (even as a zombie) exists.
 *
 * The executable is read at connect time, not at the request: a process
 * keeps its pid across execve(), so reading it late would let a client
 * connect, queue a request and then exec the program a rule names. The
 * record keeps an O_PATH fd of the file, whose inode therefore stays
 * allocated, and caller_exe_check() compares st_dev/st_ino of what the
 * process runs now against it.
 *
 * Records live in one list keyed by connection id (ttrpc_conn_id()), filled
 * and emptied by the API server's on_open/on_close callbacks (one loop, no
 * locking). Only struct ttrpc_peer is taken from the ttrpc layer, so this
 * file links without it (the early fuzzer).
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "lib/log.h"
#include "lib/util.h"
#include "server/caller.h"

static struct caller *callers;

static int pidfd_alive(int pidfd)
{
	return (int)syscall(SYS_pidfd_send_signal, pidfd, 0, NULL, 0);
}

int caller_exe_path(const char *root, const char *proc_dir, pid_t pid, char **out, struct vm_error *err)
{
	static const char deleted[] = " (deleted)";
	cleanup_free char *link = xasprintf("%s/%d/exe", proc_dir ? proc_dir : "/proc", (int)pid);
	cleanup_free char *canon_root = NULL;
	char target[PATH_MAX + 1];
	const char *rest;
	struct stat st;
	ssize_t n;
	size_t len;

	n = readlink(link, target, sizeof(target));
	if (n < 0)
		return vm_error_set_errno(err, errno == ENOENT ? VM_NOT_FOUND : VM_PERMISSION_DENIED, errno,
					  "cannot identify the executable of pid %d (%s)", (int)pid, link);
	if ((size_t)n >= sizeof(target))
		return vm_error_set(err, VM_PERMISSION_DENIED, "executable of pid %d has too long a path", (int)pid);
	target[n] = '\0';
	len = (size_t)n;
	if ((len > strlen(deleted) && strcmp(target + len - strlen(deleted), deleted) == 0) ||
	    (stat(link, &st) == 0 && st.st_nlink == 0))
		return vm_error_set(err, VM_PERMISSION_DENIED, "executable of pid %d was deleted: %s", (int)pid,
				    target);

	rest = target;
	if (root && root[0] && strcmp(root, "/") != 0) {
		size_t rlen;

		canon_root = realpath(root, NULL);
		if (!canon_root)
			return vm_error_set_errno(err, VM_INTERNAL, errno, "cannot resolve root %s", root);
		rlen = strlen(canon_root);
		if (strcmp(canon_root, "/") != 0) {
			if (strncmp(target, canon_root, rlen) != 0 || target[rlen] != '/')
				return vm_error_set(err, VM_PERMISSION_DENIED,
						    "executable %s of pid %d is outside the root %s", target, (int)pid,
						    canon_root);
			rest = target + rlen;
		}
	}
	*out = xstrdup(rest);
	return 0;
}

void caller_free(struct caller *c)
{
	if (!c)
		return;
	if (c->pidfd >= 0)
		close(c->pidfd);
	if (c->exe_fd >= 0)
		close(c->exe_fd);
	free(c->exe);
	free(c);
}

/* Read and pin the executable of @c's process. Return: 0 or -1 with @err. */
static int identify_exe(struct caller *c, const char *root, const char *proc_dir, struct vm_error *err)
{
	cleanup_free char *link = NULL;
	cleanup_free char *path = NULL;
	struct stat st;

	if (!c->has_cred || c->pid <= 0)
		return vm_error_set(err, VM_PERMISSION_DENIED, "the caller has no pid in this pid namespace");
	if (c->pidfd < 0)
		return vm_error_set(err, VM_PERMISSION_DENIED, "cannot identify caller pid %d: no pidfd for it",
				    (int)c->pid);
	if (pidfd_alive(c->pidfd) < 0)
		return vm_error_set(err, VM_PERMISSION_DENIED, "caller pid %d has exited", (int)c->pid);
	link = xasprintf("%s/%d/exe", proc_dir ? proc_dir : "/proc", (int)c->pid);
	c->exe_fd = open(link, O_PATH | O_CLOEXEC);
	if (c->exe_fd < 0)
		return vm_error_set_errno(err, errno == ENOENT ? VM_NOT_FOUND : VM_PERMISSION_DENIED, errno,
					  "cannot identify the executable of pid %d (%s)", (int)c->pid, link);
	if (fstat(c->exe_fd, &c->exe_st) < 0)
		return vm_error_set_errno(err, VM_INTERNAL, errno, "fstat %s", link);
	if (caller_exe_path(root, proc_dir, c->pid, &path, err) < 0)
		return -1;
	/* the open and the readlink are two looks: both must see one file, and
	 * the pid must still be the process that connected */
	if (stat(link, &st) < 0 || st.st_dev != c->exe_st.st_dev || st.st_ino != c->exe_st.st_ino ||
	    pidfd_alive(c->pidfd) < 0)
		return vm_error_set(err, VM_PERMISSION_DENIED, "caller pid %d changed while it was being identified",
				    (int)c->pid);
	c->exe = steal_pointer(&path);
	return 0;
}

int caller_identify(const struct ttrpc_peer *peer, bool with_exe, const char *root, const char *proc_dir,
		    struct caller **out, struct vm_error *err)
{
	struct caller *c = xzalloc(sizeof(*c));

	c->pidfd = c->exe_fd = -1;
	c->has_cred = peer->has_cred;
	c->pid = peer->pid;
	c->uid = peer->uid;
	c->gid = peer->gid;
	if (peer->pidfd >= 0) {
		c->pidfd = fcntl(peer->pidfd, F_DUPFD_CLOEXEC, 3);
		if (c->pidfd < 0) {
			int e = errno;

			caller_free(c);
			return vm_error_set_errno(err, VM_INTERNAL, e, "cannot duplicate the pidfd of pid %d",
						  (int)peer->pid);
		}
	}
	if (with_exe && identify_exe(c, root, proc_dir, &c->exe_err) < 0) {
		if (c->exe_fd >= 0)
			close(steal_fd(&c->exe_fd));
		free(steal_pointer(&c->exe));
	}
	*out = c;
	return 0;
}

int caller_exe_check(const struct caller *c, const char *proc_dir, const char **exe, struct vm_error *err)
{
	cleanup_free char *link = NULL;
	struct stat now, pinned;

	if (!c->exe) {
		if (c->exe_err.code == VM_OK)
			return vm_error_set(err, VM_PERMISSION_DENIED,
					    "the executable of caller pid %d was not identified when it connected",
					    (int)c->pid);
		*err = c->exe_err;
		return -1;
	}
	if (pidfd_alive(c->pidfd) < 0)
		return vm_error_set(err, VM_PERMISSION_DENIED, "caller pid %d has exited", (int)c->pid);
	if (fstat(c->exe_fd, &pinned) == 0 && pinned.st_nlink == 0)
		return vm_error_set(err, VM_PERMISSION_DENIED,
				    "executable %s of caller pid %d was deleted since it connected", c->exe,
				    (int)c->pid);
	link = xasprintf("%s/%d/exe", proc_dir ? proc_dir : "/proc", (int)c->pid);
	if (stat(link, &now) < 0)
		return vm_error_set_errno(err, VM_PERMISSION_DENIED, errno,
					  "cannot identify the executable of caller pid %d (%s)", (int)c->pid, link);
	if (now.st_dev != c->exe_st.st_dev || now.st_ino != c->exe_st.st_ino)
		return vm_error_set(err, VM_PERMISSION_DENIED,
				    "caller pid %d no longer runs %s, the executable it connected with "
				    "(it called execve() since)",
				    (int)c->pid, c->exe);
	if (pidfd_alive(c->pidfd) < 0)
		return vm_error_set(err, VM_PERMISSION_DENIED, "caller pid %d exited while it was being identified",
				    (int)c->pid);
	*exe = c->exe;
	return 0;
}

void caller_conn_open(uint64_t conn_id, const struct ttrpc_peer *peer, bool with_exe, const char *root)
{
	struct caller *c = NULL;
	struct vm_error err = { 0 };

	if (caller_identify(peer, with_exe, root, NULL, &c, &err) < 0) {
		log_warn("connection %llu: %s", (unsigned long long)conn_id, err.message);
		return;
	}
	if (with_exe && !c->exe)
		log_debug("connection %llu: caller not identified: %s", (unsigned long long)conn_id,
			  c->exe_err.message);
	c->conn_id = conn_id;
	c->next = callers;
	if (callers)
		callers->prev = c;
	callers = c;
}

static struct caller *find_conn(uint64_t id)
{
	for (struct caller *c = callers; c; c = c->next)
		if (c->conn_id == id)
			return c;
	return NULL;
}

void caller_conn_close(uint64_t conn_id)
{
	struct caller *c = find_conn(conn_id);

	if (!c)
		return;
	if (c->prev)
		c->prev->next = c->next;
	else
		callers = c->next;
	if (c->next)
		c->next->prev = c->prev;
	caller_free(c);
}

const struct caller *caller_of_conn(uint64_t conn_id)
{
	return find_conn(conn_id);
}

const struct caller *caller_next_of_pid(const struct caller *prev, pid_t pid)
{
	for (const struct caller *c = prev ? prev->next : callers; c; c = c->next)
		if (c->pid == pid)
			return c;
	return NULL;
}
