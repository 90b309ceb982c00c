/* logfile.c - per-VM log files with a bound on their size.
 *
 * A guest controls what reaches console.log (its console) and guest.log (its
 * agent's log records), and the run directory is on tmpfs by default, so an
 * unbounded file is a way for a guest to eat the host's memory. Every log the
 * daemon keeps for a VM is rotated the way libvirt's virtlogd does it: when
 * the next write would take the file past max_bytes, FILE.(keep-1) becomes
 * FILE.keep, ..., FILE becomes FILE.1 and a new FILE is started; the oldest
 * falls off. A VM therefore never holds more than (keep + 1) * max_bytes per
 * log.
 *
 * qemu.log is written by QEMU itself (its stderr), not through this writer:
 * logfile_rotate_copy() bounds it the way logrotate's copytruncate does
 * (copy to FILE.1, truncate FILE in place; QEMU's fd is O_APPEND, so its
 * next write lands at the new end). The bytes QEMU writes between the copy
 * and the truncation are lost; QEMU writes little, and only its own
 * diagnostics, so that window is accepted and documented.
 *
 * Readers (OpenLog, `vmctl logs`) get the rotated files oldest first from
 * logfile_open_all(), then the current one.
 */
#include "config.h"
#include "server/logfile.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/util.h"

struct logfile {
	char *path;
	int fd;
	off_t size;
	struct logfile_limits lim;
};

/* The run directory may belong to the VM's own uid (docs/sandbox.md), which
 * could put a FIFO or a device where a log should be: every log is opened
 * O_NONBLOCK (a FIFO then never blocks the daemon's loop) and used only if
 * it is a regular file. */
static int log_open_regular(const char *path, int flags)
{
	struct stat st;
	int fd = open(path, flags | O_CLOEXEC | O_NOCTTY | O_NOFOLLOW | O_NONBLOCK, 0600);

	if (fd < 0)
		return -1;
	if (fstat(fd, &st) < 0) {
		int e = errno;

		close(fd);
		errno = e;
		return -1;
	}
	if (!S_ISREG(st.st_mode)) {
		close(fd);
		errno = EINVAL;
		return -1;
	}
	return fd;
}

static int log_open_append(const char *path)
{
	return log_open_regular(path, O_WRONLY | O_CREAT | O_APPEND);
}

/* FILE.(keep-1) -> FILE.keep, ..., FILE.1 -> FILE.2: room for a new FILE.1. */
static int shift_rotated(const char *path, unsigned keep)
{
	for (unsigned i = keep; i > 1; i--) {
		cleanup_free char *from = xasprintf("%s.%u", path, i - 1);
		cleanup_free char *to = xasprintf("%s.%u", path, i);

		if (rename(from, to) < 0 && errno != ENOENT)
			return -1;
	}
	return 0;
}

/**
 * logfile_limits_default() - virtlogd's defaults: 2 MiB, 3 old files kept
 * Return: the defaults.
 */
struct logfile_limits logfile_limits_default(void)
{
	return (struct logfile_limits){ .max_bytes = LOGFILE_DEFAULT_MAX_BYTES, .keep = LOGFILE_DEFAULT_KEEP };
}

/**
 * logfile_open() - open @path for appending with @lim as its bound
 * @path: the log file (created 0600 if missing; a symlink is refused)
 * @lim: max_bytes (at least LOGFILE_MIN_BYTES) and how many rotated files to keep
 * @err: filled on failure
 *
 * An existing file is continued (after a daemon restart) and counts toward
 * the bound from its current size.
 * Return: the writer, or NULL with @err filled.
 */
struct logfile *logfile_open(const char *path, const struct logfile_limits *lim, struct vm_error *err)
{
	struct logfile *lf;
	struct stat st;
	int fd;

	if (lim->max_bytes < LOGFILE_MIN_BYTES) {
		vm_error_set(err, VM_INVALID_ARGUMENT, "log size bound %llu for %s is below the minimum %u",
			     (unsigned long long)lim->max_bytes, path, LOGFILE_MIN_BYTES);
		return NULL;
	}
	fd = log_open_append(path);
	if (fd < 0) {
		vm_error_errno(err, errno, "opening %s", path);
		return NULL;
	}
	if (fstat(fd, &st) < 0) {
		vm_error_errno(err, errno, "stat %s", path);
		close(fd);
		return NULL;
	}
	lf = xzalloc(sizeof(*lf));
	lf->path = xstrdup(path);
	lf->fd = fd;
	lf->size = st.st_size;
	lf->lim = *lim;
	return lf;
}

static int logfile_rotate(struct logfile *lf)
{
	int fd;

	if (lf->lim.keep == 0) {
		/* nothing kept: start the same file again */
		if (ftruncate(lf->fd, 0) < 0)
			return -1;
		lf->size = 0;
		return 0;
	}
	if (shift_rotated(lf->path, lf->lim.keep) < 0)
		return -1;
	{
		cleanup_free char *first = xasprintf("%s.1", lf->path);

		if (rename(lf->path, first) < 0 && errno != ENOENT)
			return -1;
	}
	fd = log_open_append(lf->path);
	if (fd < 0)
		return -1;
	close(lf->fd);
	lf->fd = fd;
	lf->size = 0;
	return 0;
}

/**
 * logfile_write() - append @len bytes, rotating whenever the bound is reached
 *
 * A write larger than the room left is split across files, so no file ever
 * exceeds max_bytes.
 * Return: 0, or -1 with errno set (the bytes not written are dropped).
 */
int logfile_write(struct logfile *lf, const void *buf, size_t len)
{
	const char *p = buf;

	while (len) {
		size_t room, n;

		if (lf->size >= (off_t)lf->lim.max_bytes && logfile_rotate(lf) < 0)
			return -1;
		room = (size_t)((off_t)lf->lim.max_bytes - lf->size);
		n = len < room ? len : room;
		if (write_all(lf->fd, p, n) < 0)
			return -1;
		lf->size += (off_t)n;
		p += n;
		len -= n;
	}
	return 0;
}

/** logfile_path() - the file being written. Return: the path. */
const char *logfile_path(const struct logfile *lf)
{
	return lf->path;
}

/** logfile_free() - close the writer (NULL is fine). */
void logfile_free(struct logfile *lf)
{
	if (!lf)
		return;
	close(lf->fd);
	free(lf->path);
	free(lf);
}

/**
 * logfile_rotate_copy() - bound a log that another process appends to
 * @path: the file (QEMU's qemu.log)
 * @lim: the bound
 * @err: filled on failure
 *
 * Does nothing while @path is within the bound. Otherwise shifts the rotated
 * files, copies the last max_bytes of @path to @path.1 and truncates @path
 * to zero in place (the writer's O_APPEND fd carries on at the new end).
 * Return: 1 if it rotated, 0 if not needed, -1 with @err filled.
 */
int logfile_rotate_copy(const char *path, const struct logfile_limits *lim, struct vm_error *err)
{
	cleanup_close int in = -1, out = -1;
	cleanup_free char *first = NULL;
	char buf[16384];
	struct stat st;
	off_t off;

	in = log_open_regular(path, O_RDWR);
	if (in < 0)
		return errno == ENOENT ? 0 : vm_error_errno(err, errno, "opening %s", path);
	if (fstat(in, &st) < 0)
		return vm_error_errno(err, errno, "stat %s", path);
	if (st.st_size <= (off_t)lim->max_bytes)
		return 0;
	if (lim->keep) {
		if (shift_rotated(path, lim->keep) < 0)
			return vm_error_errno(err, errno, "rotating %s", path);
		first = xasprintf("%s.1", path);
		out = log_open_regular(first, O_WRONLY | O_CREAT | O_TRUNC);
		if (out < 0)
			return vm_error_errno(err, errno, "creating %s", first);
		off = st.st_size - (off_t)lim->max_bytes;
		while (off < st.st_size) {
			size_t want = (size_t)(st.st_size - off) < sizeof(buf) ? (size_t)(st.st_size - off)
									       : sizeof(buf);
			ssize_t n = pread(in, buf, want, off);

			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0)
				return vm_error_errno(err, errno, "reading %s", path);
			if (n == 0)
				break;
			if (write_all(out, buf, (size_t)n) < 0)
				return vm_error_errno(err, errno, "writing %s", first);
			off += n;
		}
	}
	if (ftruncate(in, 0) < 0)
		return vm_error_errno(err, errno, "truncating %s", path);
	return 1;
}

/**
 * logfile_open_all() - read-only fds of a log and its rotated files
 * @path: the current file
 * @keep: how many rotated files may exist
 * @fds: out, oldest first, the current file last; at most @keep + 1
 * @err: filled on failure
 *
 * Rotated files that do not exist are skipped; the current file must exist.
 * Return: the number of fds in @fds, or -1 with @err filled (none left open).
 */
int logfile_open_all(const char *path, unsigned keep, int *fds, struct vm_error *err)
{
	int n = 0, fd;

	for (unsigned i = keep; i >= 1; i--) {
		cleanup_free char *old = xasprintf("%s.%u", path, i);

		fd = log_open_regular(old, O_RDONLY);
		if (fd >= 0)
			fds[n++] = fd;
	}
	fd = log_open_regular(path, O_RDONLY);
	if (fd < 0) {
		int e = errno;

		while (n)
			close(fds[--n]);
		return vm_error_errno(err, e, "cannot open %s", path);
	}
	fds[n++] = fd;
	return n;
}
