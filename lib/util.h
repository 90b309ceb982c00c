/* util.h - error contract, ownership helpers and small fd utilities shared
 * by every virtmgr binary.
 *
 * Error contract: a fallible function returns 0 (or a non-negative value) on
 * success and a negative value on failure, after filling a struct vm_error
 * whose code is a gRPC status code and whose message names the thing that
 * failed. The daemon copies both straight into the ttrpc Status the client
 * sees.
 */
#ifndef VIRTMGR_UTIL_H
#define VIRTMGR_UTIL_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

/* gRPC status codes (google.rpc.Code), as carried in ttrpc.Status.code. */
enum vm_status {
	VM_OK = 0,
	VM_CANCELLED = 1,
	VM_UNKNOWN = 2,
	VM_INVALID_ARGUMENT = 3,
	VM_DEADLINE_EXCEEDED = 4,
	VM_NOT_FOUND = 5,
	VM_ALREADY_EXISTS = 6,
	VM_PERMISSION_DENIED = 7,
	VM_RESOURCE_EXHAUSTED = 8,
	VM_FAILED_PRECONDITION = 9,
	VM_ABORTED = 10,
	VM_OUT_OF_RANGE = 11,
	VM_UNIMPLEMENTED = 12,
	VM_INTERNAL = 13,
	VM_UNAVAILABLE = 14,
	VM_DATA_LOSS = 15,
	VM_UNAUTHENTICATED = 16,
};

#define VM_ERROR_MSG_MAX 512

struct vm_error {
	int code; /* enum vm_status */
	char message[VM_ERROR_MSG_MAX];
};

/**
 * vm_error_set() - fill @err (may be NULL) with @code and a formatted message
 * Return: always -1, so callers can write `return vm_error_set(...)`.
 */
int vm_error_set(struct vm_error *err, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/**
 * vm_error_set_errno() - like vm_error_set() with ": strerror(errnum)" appended
 * Return: always -1.
 */
int vm_error_set_errno(struct vm_error *err, int code, int errnum, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/**
 * vm_status_from_errno() - the gRPC status that describes @errnum
 *
 * The one mapping of the project (table and reasons in docs/operations.md,
 * "Status codes"): EACCES/EPERM PERMISSION_DENIED; ENOENT NOT_FOUND; EEXIST
 * ALREADY_EXISTS; ENOMEM/EMFILE/ENFILE/ENOSPC/EDQUOT/EAGAIN
 * RESOURCE_EXHAUSTED; EINVAL/ENAMETOOLONG/ELOOP/ENOTDIR/EISDIR
 * INVALID_ARGUMENT; ETIMEDOUT DEADLINE_EXCEEDED; EBUSY FAILED_PRECONDITION;
 * ECONNREFUSED/ECONNRESET/EPIPE UNAVAILABLE; anything else INTERNAL.
 * Return: an enum vm_status, never VM_OK.
 */
int vm_status_from_errno(int errnum);

/**
 * vm_error_errno() - fill @err with the status vm_status_from_errno(@errnum)
 * gives and a formatted message followed by ": strerror(errnum)"
 *
 * The way every failed system call becomes an error; vm_error_set_errno()
 * is for the few sites where the errno describes a fault that is not the
 * caller's (the daemon's own installation, say) and the code says so.
 * Return: always -1.
 */
int vm_error_errno(struct vm_error *err, int errnum, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/**
 * vm_error_prefix() - prepend "prefix: " to an already filled message
 * Return: always -1.
 */
int vm_error_prefix(struct vm_error *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/** vm_status_name() - "INVALID_ARGUMENT" for 3, ... Return: static string. */
const char *vm_status_name(int code);

/* ---- allocation: abort on out-of-memory, never return NULL ---- */
void *xmalloc(size_t size);
void *xzalloc(size_t size);
void *xcalloc(size_t n, size_t size);
void *xrealloc(void *ptr, size_t size);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* ---- ownership ---- */
static inline void *steal_pointer_(void *pp)
{
	void **p = (void **)pp;
	void *ret = *p;
	*p = NULL;
	return ret;
}
/* steal_pointer(&p): return p and leave NULL behind (ownership hand-off). */
#define steal_pointer(pp) ((__typeof__(*(pp)))steal_pointer_(pp))

static inline int steal_fd(int *fd)
{
	int ret = *fd;
	*fd = -1;
	return ret;
}

void cleanup_freep(void *p);
void cleanup_closep(int *fd);
#define cleanup_free __attribute__((cleanup(cleanup_freep)))
#define cleanup_close __attribute__((cleanup(cleanup_closep)))

/* ---- fds ---- */
int fd_set_nonblock(int fd, bool on);
int fd_set_cloexec(int fd, bool on);
/* Close every fd >= @from except those listed in @keep (for children). */
void fd_close_from(int from, const int *keep, size_t nkeep);
/* Read a whole small file (at most @max bytes) into a NUL-terminated buffer. */
int read_file(const char *path, size_t max, char **out, size_t *len, struct vm_error *err);
/* Write @len bytes, retrying on EINTR and short writes (blocking fds only). */
int write_all(int fd, const void *buf, size_t len);
/* Atomically replace @path: write temp + fsync + rename + fsync(dir). */
int write_file_atomic(const char *path, const void *buf, size_t len, mode_t mode, struct vm_error *err);
/* rm -rf @path without following symlinks; Return: 0 or -errno. */
int remove_tree(const char *path);
/* mkdir -p with @mode for created components; Return: 0 or -errno. */
int mkdir_p(const char *path, mode_t mode);
/* sleep_ms() - sleep @ms milliseconds, through EINTR (a guest agent waiting for a device). */
void sleep_ms(long ms);

/* CLOCK_MONOTONIC and CLOCK_REALTIME in nanoseconds. */
uint64_t now_mono_ns(void);
uint64_t now_real_ns(void);

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define MIN(a, b) ((a) < (b) ? (a) : (b))
#define MAX(a, b) ((a) > (b) ? (a) : (b))

#endif
