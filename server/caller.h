/* caller.h - who is on the other end of an API connection, as seen when it
 * connected: uid, gid, pid, a pidfd, and (early mode) the executable it ran.
 *
 * The ttrpc layer takes SO_PEERCRED and a pidfd when it accepts a
 * connection (struct ttrpc_peer). caller_conn_open(), called from the
 * server's on_open callback, adds what early VMs need: the caller's
 * executable, read once at connect time and pinned (an O_PATH fd keeps its
 * inode, so its st_dev/st_ino cannot be reused). At CreateVm,
 * caller_exe_check() proves the process still runs that very file: a client
 * cannot connect under one program, queue a request and then execve() the
 * program a declaration names.
 *
 *   caller_conn_open(id, peer, true, root) -> identify at accept
 *   caller_of_conn(id)                     -> the record, while the conn lives
 *   caller_exe_check(caller, ...)          -> still the same process and file?
 *   caller_conn_close(id)                  -> on_close
 *
 * where id is ttrpc_conn_id() of the connection and peer ttrpc_conn_peer().
 */
#ifndef VIRTMGR_CALLER_H
#define VIRTMGR_CALLER_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>

#include "lib/ttrpc.h"
#include "lib/util.h"

/* One identified peer; owned by the registry while its connection lives. */
struct caller {
	uint64_t conn_id; /* ttrpc_conn_id() of its connection, 0 if none */
	bool has_cred;	  /* pid/uid/gid from SO_PEERCRED */
	pid_t pid;
	uid_t uid;
	gid_t gid;
	int pidfd; /* our own copy (O_CLOEXEC), -1 if none */
	/* The executable at connect time, when asked for: */
	char *exe;		 /* path under the root, e.g. /system/bin/x; NULL if not identified */
	int exe_fd;		 /* O_PATH (O_CLOEXEC) of that file: pins its inode; -1 */
	struct stat exe_st;	 /* its identity (st_dev, st_ino, ...) */
	struct vm_error exe_err; /* why @exe is NULL, when it was asked for */
	struct caller *next, *prev;
};

/**
 * caller_exe_path() - the executable of process @pid, seen from @root
 * @root: root prefix ("" or "/" = none); it must be a prefix of the
 *        executable at a path-component boundary
 * @proc_dir: procfs mount, NULL for "/proc"
 * @pid: the process
 * @out: newly allocated absolute path with @root removed, e.g. /system/bin/x
 * @err: PERMISSION_DENIED for an executable outside @root or a deleted one;
 *       NOT_FOUND when @pid is gone
 *
 * Racy on its own against pid reuse: caller_identify() pins the process
 * with its pidfd.
 * Return: 0 or -1.
 */
int caller_exe_path(const char *root, const char *proc_dir, pid_t pid, char **out, struct vm_error *err);

/**
 * caller_identify() - record a connection's peer
 * @peer: the peer the ttrpc layer saw at accept (its pidfd is duplicated)
 * @with_exe: also read and pin the executable (early mode)
 * @root: root prefix for the executable's path ("" or NULL = none)
 * @proc_dir: procfs mount, NULL for "/proc"
 * @out: the new record (caller_free())
 * @err: INTERNAL when the record cannot be made at all
 *
 * A peer whose executable cannot be identified (no pidfd, gone, outside
 * @root, deleted) still gets a record: @exe is NULL and @exe_err says why,
 * and that is what caller_exe_check() answers later.
 * Return: 0 or -1.
 */
int caller_identify(const struct ttrpc_peer *peer, bool with_exe, const char *root, const char *proc_dir,
		    struct caller **out, struct vm_error *err);

/** caller_free() - free a record that is not in the registry (NULL is fine). */
void caller_free(struct caller *c);

/**
 * caller_exe_check() - does the caller still run what it ran at connect?
 * @c: the record
 * @proc_dir: procfs mount, NULL for "/proc"
 * @exe: set to @c->exe (owned by @c) on success
 * @err: PERMISSION_DENIED naming why: not identified at connect (@exe_err),
 *       exited, executable deleted since, or another executable now
 *       (execve() after connect)
 *
 * /proc/<pid>/exe must name the same file as at connect time: same st_dev
 * and st_ino, and since the O_PATH fd kept that inode alive the pair cannot
 * belong to a newer file. The pidfd proves, before and after the look, that
 * the pid still names the process that connected.
 * Return: 0 or -1.
 */
int caller_exe_check(const struct caller *c, const char *proc_dir, const char **exe, struct vm_error *err);

/**
 * caller_conn_open() - identify the peer of a new connection and keep it
 * @conn_id: ttrpc_conn_id() of the connection (server's on_open callback)
 * @peer: ttrpc_conn_peer() of it
 * @with_exe: also read and pin its executable (early mode)
 * @root: root prefix (early mode's --root; NULL = none)
 *
 * Never refuses the connection: a peer that cannot be identified is
 * refused later, by whatever needs the identity.
 */
void caller_conn_open(uint64_t conn_id, const struct ttrpc_peer *peer, bool with_exe, const char *root);

/** caller_conn_close() - forget the peer of connection @conn_id (on_close). */
void caller_conn_close(uint64_t conn_id);

/**
 * caller_of_conn() - the record caller_conn_open() made for @conn_id
 * Return: the record (valid until caller_conn_close()), or NULL.
 */
const struct caller *caller_of_conn(uint64_t conn_id);

/**
 * caller_next_of_pid() - walk the live records of one process
 * @prev: NULL to start, else the previous result
 * @pid: the process
 * Return: the next record whose pid is @pid, or NULL.
 */
const struct caller *caller_next_of_pid(const struct caller *prev, pid_t pid);

#endif
