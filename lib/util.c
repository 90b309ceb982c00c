/* util.c - error helpers, allocation, fd and file utilities.
 * Everything here is used by the daemon, the client and the guest agent, so
 * it depends on libc only.
 */
#include "config.h"
#include "lib/util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

int vm_error_set(struct vm_error *err, int code, const char *fmt, ...)
{
	va_list ap;

	if (!err)
		return -1;
	err->code = code;
	va_start(ap, fmt);
	vsnprintf(err->message, sizeof(err->message), fmt, ap);
	va_end(ap);
	return -1;
}

static void error_errno_v(struct vm_error *err, int code, int errnum, const char *fmt, va_list ap)
{
	size_t n;

	err->code = code;
	vsnprintf(err->message, sizeof(err->message), fmt, ap);
	n = strlen(err->message);
	snprintf(err->message + n, sizeof(err->message) - n, ": %s", strerror(errnum));
}

int vm_error_set_errno(struct vm_error *err, int code, int errnum, const char *fmt, ...)
{
	va_list ap;

	if (!err)
		return -1;
	va_start(ap, fmt);
	error_errno_v(err, code, errnum, fmt, ap);
	va_end(ap);
	return -1;
}

int vm_status_from_errno(int errnum)
{
	switch (errnum) {
	case EACCES:
	case EPERM:
		return VM_PERMISSION_DENIED;
	case ENOENT:
		return VM_NOT_FOUND;
	case EEXIST:
		return VM_ALREADY_EXISTS;
	case ENOMEM:
	case EMFILE:
	case ENFILE:
	case ENOSPC:
	case EDQUOT:
	case EAGAIN:
		return VM_RESOURCE_EXHAUSTED;
	case EINVAL:
	case ENAMETOOLONG:
	case ELOOP:
	case ENOTDIR:
	case EISDIR:
		return VM_INVALID_ARGUMENT;
	case ETIMEDOUT:
		return VM_DEADLINE_EXCEEDED;
	case EBUSY:
		/* the thing exists but is in a state that refuses us (a device
		 * held by another process): retrying blindly does not help */
		return VM_FAILED_PRECONDITION;
	case ECONNREFUSED:
	case ECONNRESET:
	case EPIPE:
		/* the other end (QEMU, the vsock backend, a guest) is not there now */
		return VM_UNAVAILABLE;
	default:
		/* an errno nobody expected is a fault of ours, not of the caller */
		return VM_INTERNAL;
	}
}

int vm_error_errno(struct vm_error *err, int errnum, const char *fmt, ...)
{
	va_list ap;

	if (!err)
		return -1;
	va_start(ap, fmt);
	error_errno_v(err, vm_status_from_errno(errnum), errnum, fmt, ap);
	va_end(ap);
	return -1;
}

int vm_error_prefix(struct vm_error *err, const char *fmt, ...)
{
	char prefix[VM_ERROR_MSG_MAX], old[VM_ERROR_MSG_MAX];
	va_list ap;

	if (!err)
		return -1;
	va_start(ap, fmt);
	vsnprintf(prefix, sizeof(prefix), fmt, ap);
	va_end(ap);
	memcpy(old, err->message, sizeof(old));
	/* truncation is fine: the message is for people */
	size_t n = strnlen(prefix, sizeof(err->message) - 3);
	memcpy(err->message, prefix, n);
	memcpy(err->message + n, ": ", 2);
	snprintf(err->message + n + 2, sizeof(err->message) - n - 2, "%.*s", (int)(sizeof(err->message) - n - 3), old);
	return -1;
}

const char *vm_status_name(int code)
{
	static const char *const names[] = {
		"OK",	     "CANCELLED",	"UNKNOWN",	     "INVALID_ARGUMENT",   "DEADLINE_EXCEEDED",
		"NOT_FOUND", "ALREADY_EXISTS",	"PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION",
		"ABORTED",   "OUT_OF_RANGE",	"UNIMPLEMENTED",     "INTERNAL",	   "UNAVAILABLE",
		"DATA_LOSS", "UNAUTHENTICATED",
	};

	if (code < 0 || (size_t)code >= ARRAY_SIZE(names))
		return "UNKNOWN";
	return names[code];
}

static void *oom(size_t size)
{
	fprintf(stderr, "out of memory allocating %zu bytes\n", size);
	abort();
}

void *xmalloc(size_t size)
{
	void *p = malloc(size ? size : 1);

	return p ? p : oom(size);
}

void *xzalloc(size_t size)
{
	return xcalloc(1, size);
}

void *xcalloc(size_t n, size_t size)
{
	void *p = calloc(n ? n : 1, size ? size : 1);

	return p ? p : oom(n * size);
}

void *xrealloc(void *ptr, size_t size)
{
	void *p = realloc(ptr, size ? size : 1);

	return p ? p : oom(size);
}

char *xstrdup(const char *s)
{
	char *p = strdup(s ? s : "");

	return p ? p : oom(strlen(s));
}

char *xstrndup(const char *s, size_t n)
{
	char *p = strndup(s, n);

	return p ? p : oom(n);
}

char *xasprintf(const char *fmt, ...)
{
	va_list ap;
	char *s;
	int n;

	va_start(ap, fmt);
	n = vasprintf(&s, fmt, ap);
	va_end(ap);
	return n < 0 ? oom(0) : s;
}

void cleanup_freep(void *p)
{
	free(*(void **)p);
}

void cleanup_closep(int *fd)
{
	if (*fd >= 0) {
		int saved = errno;

		close(*fd);
		errno = saved;
	}
}

int fd_set_nonblock(int fd, bool on)
{
	int fl = fcntl(fd, F_GETFL);

	if (fl < 0)
		return -1;
	fl = on ? (fl | O_NONBLOCK) : (fl & ~O_NONBLOCK);
	return fcntl(fd, F_SETFL, fl);
}

int fd_set_cloexec(int fd, bool on)
{
	int fl = fcntl(fd, F_GETFD);

	if (fl < 0)
		return -1;
	fl = on ? (fl | FD_CLOEXEC) : (fl & ~FD_CLOEXEC);
	return fcntl(fd, F_SETFD, fl);
}

static bool fd_kept(int fd, const int *keep, size_t nkeep)
{
	for (size_t i = 0; i < nkeep; i++)
		if (keep[i] == fd)
			return true;
	return false;
}

void fd_close_from(int from, const int *keep, size_t nkeep)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *de;

	if (!d) {
		for (int fd = from; fd < 65536; fd++)
			if (!fd_kept(fd, keep, nkeep))
				close(fd);
		return;
	}
	while ((de = readdir(d))) {
		int fd = atoi(de->d_name);

		if (de->d_name[0] == '.' || fd < from || fd == dirfd(d) || fd_kept(fd, keep, nkeep))
			continue;
		close(fd);
	}
	closedir(d);
}

int read_file(const char *path, size_t max, char **out, size_t *len, struct vm_error *err)
{
	cleanup_close int fd = open(path, O_RDONLY | O_CLOEXEC);
	cleanup_free char *buf = NULL;
	size_t used = 0;

	if (fd < 0)
		return vm_error_errno(err, errno, "cannot open %s", path);
	buf = xmalloc(max + 1);
	for (;;) {
		ssize_t n = read(fd, buf + used, max - used);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return vm_error_errno(err, errno, "cannot read %s", path);
		if (n == 0)
			break;
		used += (size_t)n;
		if (used == max) {
			char c;

			if (read(fd, &c, 1) > 0)
				return vm_error_set(err, VM_OUT_OF_RANGE, "%s is larger than %zu bytes", path, max);
			break;
		}
	}
	buf[used] = '\0';
	if (len)
		*len = used;
	*out = steal_pointer(&buf);
	return 0;
}

int write_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;

	while (len > 0) {
		ssize_t n = write(fd, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int write_file_atomic(const char *path, const void *buf, size_t len, mode_t mode, struct vm_error *err)
{
	cleanup_free char *tmp = xasprintf("%s.tmp.%d", path, (int)getpid());
	cleanup_free char *dir = xstrdup(path);
	cleanup_close int fd = -1;
	cleanup_close int dfd = -1;
	char *slash;

	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, mode);
	if (fd < 0)
		return vm_error_errno(err, errno, "cannot create %s", tmp);
	if (write_all(fd, buf, len) < 0 || fsync(fd) < 0) {
		int e = errno;

		unlink(tmp);
		return vm_error_errno(err, e, "cannot write %s", tmp);
	}
	if (rename(tmp, path) < 0) {
		int e = errno;

		unlink(tmp);
		return vm_error_errno(err, e, "cannot rename %s to %s", tmp, path);
	}
	slash = strrchr(dir, '/');
	if (slash) {
		*(slash == dir ? slash + 1 : slash) = '\0';
		dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (dfd >= 0)
			fsync(dfd);
	}
	return 0;
}

static int remove_tree_at(int parent, const char *name)
{
	int fd = openat(parent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	DIR *d;
	struct dirent *de;
	int ret = 0;

	if (fd < 0) {
		if (errno == ENOTDIR || errno == ELOOP)
			return unlinkat(parent, name, 0) < 0 && errno != ENOENT ? -errno : 0;
		return errno == ENOENT ? 0 : -errno;
	}
	d = fdopendir(fd);
	if (!d) {
		close(fd);
		return -errno;
	}
	while ((de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if (de->d_type == DT_DIR || de->d_type == DT_UNKNOWN) {
			int r = remove_tree_at(dirfd(d), de->d_name);

			if (r < 0 && !ret)
				ret = r;
		} else if (unlinkat(dirfd(d), de->d_name, 0) < 0 && errno != ENOENT && !ret) {
			ret = -errno;
		}
	}
	closedir(d);
	if (unlinkat(parent, name, AT_REMOVEDIR) < 0 && errno != ENOENT && !ret)
		ret = -errno;
	return ret;
}

int remove_tree(const char *path)
{
	return remove_tree_at(AT_FDCWD, path);
}

int mkdir_p(const char *path, mode_t mode)
{
	cleanup_free char *p = xstrdup(path);

	for (char *s = p + 1; *s; s++) {
		if (*s != '/')
			continue;
		*s = '\0';
		if (mkdir(p, mode) < 0 && errno != EEXIST)
			return -errno;
		*s = '/';
	}
	if (mkdir(p, mode) < 0 && errno != EEXIST)
		return -errno;
	return 0;
}

void sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

static uint64_t clock_ns(clockid_t id)
{
	struct timespec ts;

	clock_gettime(id, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

uint64_t now_mono_ns(void)
{
	return clock_ns(CLOCK_MONOTONIC);
}

uint64_t now_real_ns(void)
{
	return clock_ns(CLOCK_REALTIME);
}
