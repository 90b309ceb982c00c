/* test_crashstore.c - the crash report store alone (server/crashstore.c) on
 * a real directory: quotas and which report goes first, refusals while
 * bytes arrive, aborted uploads, the index rebuilt by a new store (reports
 * outlive the daemon), and what it does with damaged files.
 */
#include "config.h"

#include <criterion/criterion.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "server/crashstore.h"

static char dir[] = "/tmp/test_crashstore.XXXXXX";

static void setup(void)
{
	cr_assert_not_null(mkdtemp(dir));
}

static void teardown(void)
{
	remove_tree(dir);
	strcpy(dir, "/tmp/test_crashstore.XXXXXX");
}

static const struct crash_limits lim = {
	.max_reports = 3, .max_bytes = 1 << 20, .max_core = 256 << 10, .rate = 10, .share_pct = 100
};

static struct crash_meta meta(const char *vm, int pid)
{
	return (struct crash_meta){ .vm_id = "0123456789ab",
				    .vm_name = vm,
				    .owner_uid = 1000,
				    .cid = 2048,
				    .pid = pid,
				    .tid = pid,
				    .signal = 11,
				    .executable = "/bin/x",
				    .comm = "x" };
}

/* One report of @len core bytes; Return: its id (static buffer per call site). */
static void add(struct crashstore *s, const char *vm, int pid, size_t len, char *id)
{
	struct crash_meta m = meta(vm, pid);
	struct vm_error err = { 0 };
	struct crash_upload *u = crashstore_begin(s, &m, &err);
	cleanup_free char *buf = xzalloc(len + 1);

	cr_assert_not_null(u, "%s", err.message);
	cr_assert_eq(crashstore_write(u, buf, len, &err), 0, "%s", err.message);
	cr_assert_eq(crashstore_commit(s, u, len * 4, false, id, &err), 0, "%s", err.message);
	/* received_ns orders the reports */
	usleep(1000);
}

static bool exists(const char *vm, const char *id)
{
	cleanup_free char *p = xasprintf("%s/crashes/1000/%s/%s/report.json", dir, vm, id);

	return access(p, F_OK) == 0;
}

static unsigned entries(const char *vm)
{
	cleanup_free char *p = xasprintf("%s/crashes/1000/%s", dir, vm);
	DIR *d = opendir(p);
	struct dirent *de;
	unsigned n = 0;

	if (!d)
		return 0;
	while ((de = readdir(d)))
		n += de->d_name[0] != '.' || strncmp(de->d_name, ".part-", 6) == 0;
	closedir(d);
	return n;
}

TestSuite(crashstore, .init = setup, .fini = teardown);

Test(crashstore, count_quota_drops_oldest_of_that_vm)
{
	struct crashstore *s = crashstore_new(dir, &lim);
	char ids[5][17], other[17];

	add(s, "b", 1, 100, other);
	for (int i = 0; i < 5; i++)
		add(s, "a", 10 + i, 100, ids[i]);
	cr_assert_eq(crashstore_count(s, 1000, "a"), 3);
	cr_assert_eq(crashstore_count(s, 1000, "b"), 1, "another VM's report must stay");
	cr_assert(!exists("a", ids[0]) && !exists("a", ids[1]));
	cr_assert(exists("a", ids[2]) && exists("a", ids[3]) && exists("a", ids[4]));
	cr_assert(exists("b", other));
	cr_assert_eq(entries("a"), 3);
	crashstore_free(s);
}

Test(crashstore, byte_quota_drops_oldest)
{
	struct crash_limits l = lim;
	struct crashstore *s;
	char a[17], b[17], c[17];

	l.max_bytes = 250 << 10;
	l.max_reports = 50;
	s = crashstore_new(dir, &l);
	add(s, "a", 1, 100 << 10, a);
	add(s, "a", 2, 100 << 10, b);
	add(s, "a", 3, 100 << 10, c);
	cr_assert(!exists("a", a), "the oldest must go to fit 250 KiB");
	cr_assert(exists("a", b) && exists("a", c));
	crashstore_free(s);
}

Test(crashstore, oversize_core_refused_while_arriving)
{
	struct crashstore *s = crashstore_new(dir, &lim);
	struct crash_meta m = meta("a", 1);
	struct vm_error err = { 0 };
	struct crash_upload *u = crashstore_begin(s, &m, &err);
	cleanup_free char *buf = xzalloc(64 << 10);

	cr_assert_not_null(u);
	for (int i = 0; i < 4; i++)
		cr_assert_eq(crashstore_write(u, buf, 64 << 10, &err), 0, "%s", err.message);
	cr_assert_eq(crashstore_write(u, buf, 1, &err), -1);
	cr_assert_eq(err.code, VM_RESOURCE_EXHAUSTED);
	cr_assert(strstr(err.message, "core larger than 262144"), "%s", err.message);
	crashstore_abort(u);
	cr_assert_eq(entries("a"), 0, "an aborted upload leaves nothing");
	cr_assert_eq(crashstore_count(s, 1000, "a"), 0);
	crashstore_free(s);
}

Test(crashstore, reports_outlive_the_store)
{
	struct crashstore *s = crashstore_new(dir, &lim);
	struct vm_error err = { 0 };
	struct crash_meta km = meta("k", 0);
	char id[17], kid[17];
	cleanup_free char *text = xmalloc(CRASH_KERNEL_TEXT_MAX + 101);
	cleanup_free char *part = NULL, *bad = NULL, *json = NULL;

	add(s, "a", 7, 1000, id);
	memset(text, 'x', 100);
	memset(text + 100, 'p', CRASH_KERNEL_TEXT_MAX);
	text[CRASH_KERNEL_TEXT_MAX + 100] = '\0';
	cr_assert_eq(crashstore_add_kernel(s, &km, text, kid, &err), 0, "%s", err.message);
	crashstore_free(s);

	/* an upload cut off by a daemon exit, and a damaged report */
	part = xasprintf("%s/crashes/1000/a/.part-0000000000000000", dir);
	cr_assert_eq(mkdir(part, 0700), 0);
	bad = xasprintf("%s/crashes/1000/a/00000000000000ff", dir);
	cr_assert_eq(mkdir(bad, 0700), 0);
	json = xasprintf("%s/report.json", bad);
	FILE *f = fopen(json, "w");
	fputs("{\"id\": [", f);
	fclose(f);

	s = crashstore_new(dir, &lim);
	cr_assert_eq(crashstore_count(s, 1000, "a"), 1, "the good report is back, the damaged one skipped");
	cr_assert_eq(crashstore_count(s, 1000, "k"), 1);
	cr_assert_neq(access(part, F_OK), 0, "the .part directory is removed at start-up");
	crashstore_free(s);

	/* the kernel text keeps the end */
	cleanup_free char *kj = xasprintf("%s/crashes/1000/k/%s/report.json", dir, kid);
	cleanup_free char *content = NULL;
	size_t len;
	cr_assert_eq(read_file(kj, 1 << 20, &content, &len, &err), 0, "%s", err.message);
	cr_assert(strstr(content, "ppp") && !strstr(content, "xxx"), "the panic text keeps its last 16 KiB");
}

Test(crashstore, disabled)
{
	struct crash_limits l = lim;
	struct crash_meta m = meta("a", 1);
	struct vm_error err = { 0 };
	struct crashstore *s;

	l.max_reports = 0;
	s = crashstore_new(dir, &l);
	cr_assert_null(crashstore_begin(s, &m, &err));
	cr_assert_eq(err.code, VM_FAILED_PRECONDITION);
	crashstore_free(s);
}
