/* test_logfile.c - bounded per-VM logs: rotation, the bound, readers across
 * rotation, and the copy-and-truncate path for a file another process
 * appends to. Real files in a temp dir.
 */
#include "config.h"

#include <criterion/criterion.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/util.h"
#include "server/logfile.h"

static char dir[] = "/tmp/test_logfile.XXXXXX";

static void setup(void)
{
	cr_assert(mkdtemp(dir));
}

static void teardown(void)
{
	remove_tree(dir);
}

TestSuite(logfile, .init = setup, .fini = teardown);

static off_t size_of(const char *path)
{
	struct stat st;

	return stat(path, &st) < 0 ? -1 : st.st_size;
}

static char *slurp_fd(int fd)
{
	size_t cap = 1 << 16, len = 0;
	char *buf = xmalloc(cap);
	ssize_t n;

	while ((n = read(fd, buf + len, cap - len - 1)) > 0) {
		len += (size_t)n;
		if (cap - len < 2)
			buf = xrealloc(buf, cap *= 2);
	}
	buf[len] = 0;
	return buf;
}

Test(logfile, bound_holds_and_oldest_falls_off)
{
	struct logfile_limits lim = { .max_bytes = 4096, .keep = 2 };
	cleanup_free char *path = xasprintf("%s/console.log", dir);
	struct vm_error err = { 0 };
	struct logfile *lf = logfile_open(path, &lim, &err);
	char line[100];

	cr_assert(lf, "%s", err.message);
	/* 1,000 numbered lines of 100 bytes: 100 KB through a 3 x 4 KiB bound */
	for (int i = 0; i < 1000; i++) {
		snprintf(line, sizeof(line), "%-98d\n", i);
		cr_assert_eq(logfile_write(lf, line, 99), 0);
	}
	logfile_free(lf);
	cr_assert_leq(size_of(path), 4096);
	for (unsigned i = 1; i <= 2; i++) {
		cleanup_free char *old = xasprintf("%s.%u", path, i);

		cr_assert_eq(size_of(old), 4096, "%s", old);
	}
	{
		cleanup_free char *gone = xasprintf("%s.3", path);

		cr_assert_eq(size_of(gone), -1, "only keep=2 rotated files exist");
	}
	/* readers see the newest bytes in order across the files */
	int fds[3];
	int n = logfile_open_all(path, lim.keep, fds, &err);
	cr_assert_eq(n, 3, "%s", err.message);
	size_t total = 0;
	cleanup_free char *all = xstrdup("");
	for (int i = 0; i < n; i++) {
		cleanup_free char *part = slurp_fd(fds[i]);
		char *joined = xasprintf("%s%s", all, part);

		free(all);
		all = joined;
		close(fds[i]);
	}
	total = strlen(all);
	cr_assert_leq(total, 3 * 4096);
	cr_assert(strstr(all, "999 "), "the last line is there");
	cr_assert(!strstr(all, "\n1 "), "the first lines fell off");
}

Test(logfile, a_write_larger_than_the_bound_is_split)
{
	struct logfile_limits lim = { .max_bytes = 4096, .keep = 1 };
	cleanup_free char *path = xasprintf("%s/guest.log", dir);
	cleanup_free char *old = xasprintf("%s.1", path);
	struct vm_error err = { 0 };
	struct logfile *lf = logfile_open(path, &lim, &err);
	char big[10000];

	cr_assert(lf, "%s", err.message);
	memset(big, 'x', sizeof(big));
	cr_assert_eq(logfile_write(lf, big, sizeof(big)), 0);
	logfile_free(lf);
	cr_assert_leq(size_of(path), 4096);
	cr_assert_eq(size_of(old), 4096);
}

Test(logfile, an_existing_file_counts_toward_the_bound)
{
	struct logfile_limits lim = { .max_bytes = 4096, .keep = 1 };
	cleanup_free char *path = xasprintf("%s/console.log", dir);
	cleanup_free char *old = xasprintf("%s.1", path);
	struct vm_error err = { 0 };
	char buf[4000];
	struct logfile *lf;

	memset(buf, 'a', sizeof(buf));
	lf = logfile_open(path, &lim, &err);
	cr_assert_eq(logfile_write(lf, buf, sizeof(buf)), 0);
	logfile_free(lf);
	/* as after a daemon restart: the file is continued, not reset */
	lf = logfile_open(path, &lim, &err);
	cr_assert(lf, "%s", err.message);
	cr_assert_eq(logfile_write(lf, buf, 200), 0);
	logfile_free(lf);
	cr_assert_eq(size_of(old), 4096);
	cr_assert_eq(size_of(path), 4000 + 200 - 4096);
}

Test(logfile, keep_zero_restarts_the_file)
{
	struct logfile_limits lim = { .max_bytes = 4096, .keep = 0 };
	cleanup_free char *path = xasprintf("%s/console.log", dir);
	cleanup_free char *old = xasprintf("%s.1", path);
	struct vm_error err = { 0 };
	struct logfile *lf = logfile_open(path, &lim, &err);
	char buf[5000];

	memset(buf, 'b', sizeof(buf));
	cr_assert_eq(logfile_write(lf, buf, sizeof(buf)), 0);
	logfile_free(lf);
	cr_assert_eq(size_of(path), 5000 - 4096);
	cr_assert_eq(size_of(old), -1);
}

Test(logfile, bad_limits_and_symlinks_are_refused)
{
	struct logfile_limits tiny = { .max_bytes = 10, .keep = 1 };
	struct logfile_limits lim = logfile_limits_default();
	cleanup_free char *path = xasprintf("%s/console.log", dir);
	cleanup_free char *link = xasprintf("%s/link.log", dir);
	struct vm_error err = { 0 };

	cr_assert_null(logfile_open(path, &tiny, &err));
	cr_assert_eq(err.code, VM_INVALID_ARGUMENT);
	cr_assert(strstr(err.message, "minimum"), "%s", err.message);
	cr_assert_eq(symlink("/etc/passwd", link), 0);
	cr_assert_null(logfile_open(link, &lim, &err));
	cr_assert(strstr(err.message, "link.log"), "%s", err.message);
}

Test(logfile, a_fifo_in_place_of_a_log_never_blocks)
{
	struct logfile_limits lim = logfile_limits_default();
	cleanup_free char *path = xasprintf("%s/console.log", dir);
	struct vm_error err = { 0 };
	cleanup_close int reader = -1;
	int fds[4];

	/* what a VM's uid could plant in a run directory it owns */
	cr_assert_eq(mkfifo(path, 0600), 0);
	cr_assert_null(logfile_open(path, &lim, &err), "no reader: refused, not blocked");
	reader = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
	cr_assert_geq(reader, 0);
	cr_assert_null(logfile_open(path, &lim, &err), "with a reader: still not a regular file");
	cr_assert(strstr(err.message, "console.log"), "%s", err.message);
	cr_assert_eq(logfile_open_all(path, 2, fds, &err), -1);
	cr_assert_lt(logfile_rotate_copy(path, &lim, &err), 0);
}

Test(logfile, copy_and_truncate_bounds_a_file_another_process_writes)
{
	struct logfile_limits lim = { .max_bytes = 4096, .keep = 2 };
	cleanup_free char *path = xasprintf("%s/qemu.log", dir);
	cleanup_free char *old = xasprintf("%s.1", path);
	struct vm_error err = { 0 };
	int writer = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	char buf[10000];

	cr_assert_geq(writer, 0);
	cr_assert_eq(logfile_rotate_copy(path, &lim, &err), 0, "empty: nothing to do");
	memset(buf, 'q', sizeof(buf));
	buf[sizeof(buf) - 1] = 'Z';
	cr_assert_eq(write(writer, buf, sizeof(buf)), (ssize_t)sizeof(buf));
	cr_assert_eq(logfile_rotate_copy(path, &lim, &err), 1, "%s", err.message);
	cr_assert_eq(size_of(path), 0);
	cr_assert_eq(size_of(old), 4096, "the newest max_bytes are kept");
	/* the writer's O_APPEND fd carries on at the start of the emptied file */
	cr_assert_eq(write(writer, "after\n", 6), 6);
	cr_assert_eq(size_of(path), 6);
	close(writer);
	{
		int fd = open(old, O_RDONLY | O_CLOEXEC);
		cleanup_free char *s = slurp_fd(fd);

		close(fd);
		cr_assert_eq(s[4095], 'Z');
	}
}
