/* test_sandbox.c - sandbox_enter() in real forked children, checked from
 * what the kernel shows after a real execve (/proc/self/status read by
 * /bin/cat), a seccomp program compiled in the parent that kills its child,
 * the failure report, the run directory hand-over, and two children under
 * two VM uids that cannot signal, ptrace or read each other.
 *
 * The id changes need root (CI runs `make check` as root); without it those
 * tests are skipped and only the no-id-change path runs.
 */
#include "config.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "server/sandbox.h"

#define VM_UID_A 70201
#define VM_UID_B 70202

static void need_root(void)
{
	if (geteuid() != 0)
		cr_skip_test("changing ids needs root");
}

/* Run `cat /proc/self/status` confined by @sb; return its output. */
static char *status_after_exec(struct sandbox *sb, int *wstatus)
{
	int out[2], rep[2];
	static char buf[8192];
	size_t len = 0;
	ssize_t n;

	cr_assert_eq(pipe2(out, O_CLOEXEC), 0);
	cr_assert_eq(pipe2(rep, O_CLOEXEC), 0);
	pid_t pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		dup2(out[1], STDOUT_FILENO);
		sb->report_fd = rep[1];
		if (sandbox_enter(sb) < 0)
			_exit(SANDBOX_EXIT_FAILED);
		execl("/bin/cat", "cat", "/proc/self/status", (char *)NULL);
		_exit(127);
	}
	close(out[1]);
	close(rep[1]);
	while ((n = read(out[0], buf + len, sizeof(buf) - 1 - len)) > 0)
		len += (size_t)n;
	buf[len] = 0;
	char report[256] = { 0 };
	n = read(rep[0], report, sizeof(report) - 1);
	close(out[0]);
	close(rep[0]);
	cr_assert_eq(waitpid(pid, wstatus, 0), pid);
	cr_assert(n <= 0, "%s", report);
	return buf;
}

static void field_is(const char *status, const char *field, const char *want)
{
	char key[64];
	const char *p;

	snprintf(key, sizeof(key), "\n%s:\t", field);
	p = strstr(status, key);
	cr_assert_not_null(p, "no %s in /proc/self/status", field);
	p += strlen(key);
	/* some kernels end the Groups list with a blank */
	size_t n = strcspn(p, "\n");
	while (n && p[n - 1] == ' ')
		n--;
	cr_assert(n == strlen(want) && !strncmp(p, want, n), "%s: want \"%s\", got \"%.*s\"", field, want,
		  (int)strcspn(p, "\n"), p);
}

Test(sandbox, drops_ids_groups_caps_and_sets_no_new_privs)
{
	struct sandbox sb = { .change_ids = true, .uid = VM_UID_A, .gid = VM_UID_A, .report_fd = -1 };
	int ws;

	need_root();
	char *st = status_after_exec(&sb, &ws);
	cr_assert(WIFEXITED(ws) && WEXITSTATUS(ws) == 0, "child status %#x", ws);
	field_is(st, "Uid", "70201\t70201\t70201\t70201");
	field_is(st, "Gid", "70201\t70201\t70201\t70201");
	field_is(st, "Groups", "");
	field_is(st, "CapInh", "0000000000000000");
	field_is(st, "CapPrm", "0000000000000000");
	field_is(st, "CapEff", "0000000000000000");
	field_is(st, "CapBnd", "0000000000000000");
	field_is(st, "CapAmb", "0000000000000000");
	field_is(st, "NoNewPrivs", "1");
	field_is(st, "Seccomp", "0");
}

Test(sandbox, without_id_change_only_no_new_privs)
{
	struct sandbox sb = { .change_ids = false, .report_fd = -1 };
	char want[64];
	int ws;

	char *st = status_after_exec(&sb, &ws);
	cr_assert(WIFEXITED(ws) && WEXITSTATUS(ws) == 0, "child status %#x", ws);
	snprintf(want, sizeof(want), "%u\t%u\t%u\t%u", (unsigned)getuid(), (unsigned)geteuid(), (unsigned)geteuid(),
		 (unsigned)geteuid());
	field_is(st, "Uid", want);
	field_is(st, "NoNewPrivs", "1");
}

static void compile_kill_on(int syscall_nr, struct sandbox_filter *f)
{
	scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);
	struct vm_error err = { 0 };

	cr_assert_not_null(ctx);
	cr_assert_eq(seccomp_rule_add(ctx, SCMP_ACT_KILL_PROCESS, syscall_nr, 0), 0);
	cr_assert_eq(sandbox_filter_compile(ctx, f, &err), 0, "%s", err.message);
	seccomp_release(ctx);
	cr_assert(f->len > 0 && f->insns);
}

Test(sandbox, filter_from_parent_is_loaded_and_kills)
{
	struct sandbox_filter f;
	struct sandbox sb = { .change_ids = geteuid() == 0, .uid = VM_UID_A, .gid = VM_UID_A, .report_fd = -1 };
	int ws;

	compile_kill_on(SCMP_SYS(uname), &f);
	sb.filter = &f;
	/* cat never calls uname: it runs, and shows the filter */
	char *st = status_after_exec(&sb, &ws);
	cr_assert(WIFEXITED(ws) && WEXITSTATUS(ws) == 0, "child status %#x", ws);
	field_is(st, "Seccomp", "2");

	pid_t pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		if (sandbox_enter(&sb) < 0)
			_exit(SANDBOX_EXIT_FAILED);
		syscall(SYS_uname, NULL);
		_exit(0);
	}
	cr_assert_eq(waitpid(pid, &ws, 0), pid);
	cr_assert(WIFSIGNALED(ws) && WTERMSIG(ws) == SIGSYS, "child status %#x", ws);
	sandbox_filter_release(&f);
	cr_assert_null(f.insns);
}

Test(sandbox, failure_is_reported_with_distinct_exit)
{
	struct sandbox sb = { .change_ids = true, .uid = 0, .gid = 0 };
	int rep[2], ws;
	char msg[256] = { 0 };

	cr_assert_eq(pipe2(rep, O_CLOEXEC), 0);
	pid_t pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		sb.report_fd = rep[1];
		if (sandbox_enter(&sb) < 0)
			_exit(SANDBOX_EXIT_FAILED);
		_exit(0);
	}
	close(rep[1]);
	cr_assert_gt(read(rep[0], msg, sizeof(msg) - 1), 0);
	close(rep[0]);
	cr_assert_eq(waitpid(pid, &ws, 0), pid);
	cr_assert(WIFEXITED(ws) && WEXITSTATUS(ws) == SANDBOX_EXIT_FAILED, "child status %#x", ws);
	cr_assert_str_eq(msg, "sandbox: refusing uid or gid 0 for a VM: EINVAL (22)\n");
}

static char dir[] = "/tmp/test_sandbox.XXXXXX";

static void mkroot(void)
{
	cr_assert_not_null(mkdtemp(dir));
}

static void rmroot(void)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	cr_assert_eq(system(cmd), 0);
}

Test(sandbox, run_dir_handed_to_the_vm_uid, .init = mkroot, .fini = rmroot)
{
	struct sandbox sb = { .change_ids = true, .uid = VM_UID_A, .gid = VM_UID_A };
	struct vm_error err = { 0 };
	char path[256], link[256];
	struct stat st;

	need_root();
	snprintf(path, sizeof(path), "%s/vm", dir);
	cr_assert_eq(sandbox_run_dir_prepare(path, &sb, &err), 0, "%s", err.message);
	cr_assert_eq(stat(path, &st), 0);
	cr_assert(S_ISDIR(st.st_mode) && (st.st_mode & 07777) == 0700, "mode %o", st.st_mode);
	cr_assert(st.st_uid == VM_UID_A && st.st_gid == VM_UID_A);
	/* again (re-adoption): still fine, and a loose mode is tightened */
	cr_assert_eq(chmod(path, 0755), 0);
	cr_assert_eq(sandbox_run_dir_prepare(path, &sb, &err), 0, "%s", err.message);
	cr_assert_eq(stat(path, &st), 0);
	cr_assert_eq(st.st_mode & 07777, 0700);

	/* someone else's directory is not taken over */
	sb.uid = sb.gid = VM_UID_B;
	cr_assert_eq(sandbox_run_dir_prepare(path, &sb, &err), -1);
	cr_assert_eq(err.code, VM_PERMISSION_DENIED);
	cr_assert(strstr(err.message, "belongs to uid 70201"), "%s", err.message);

	/* nor a symlink's target */
	snprintf(link, sizeof(link), "%s/link", dir);
	cr_assert_eq(symlink(path, link), 0);
	sb.uid = sb.gid = VM_UID_A;
	cr_assert_eq(sandbox_run_dir_prepare(link, &sb, &err), -1);
	cr_assert(strstr(err.message, link), "%s", err.message);
}

Test(sandbox, run_dir_without_id_change_stays_the_daemons, .init = mkroot, .fini = rmroot)
{
	struct sandbox sb = { .change_ids = false };
	struct vm_error err = { 0 };
	char path[256];
	struct stat st;

	snprintf(path, sizeof(path), "%s/vm", dir);
	cr_assert_eq(sandbox_run_dir_prepare(path, &sb, &err), 0, "%s", err.message);
	cr_assert_eq(stat(path, &st), 0);
	cr_assert(st.st_uid == geteuid() && (st.st_mode & 07777) == 0700);
}

/* What a confined child under VM_UID_B may do to one under VM_UID_A. */
Test(sandbox, two_vm_uids_cannot_reach_each_other, .init = mkroot, .fini = rmroot)
{
	struct sandbox a = { .change_ids = true, .uid = VM_UID_A, .gid = VM_UID_A, .report_fd = -1 };
	struct sandbox b = { .change_ids = true, .uid = VM_UID_B, .gid = VM_UID_B, .report_fd = -1 };
	struct vm_error err = { 0 };
	char adir[256], afile[300], path[64];
	int ready[2], ws;

	need_root();
	/* the VM uids must be able to pass through the parent, as through
	 * the daemon's run directory */
	cr_assert_eq(chmod(dir, 0711), 0);
	snprintf(adir, sizeof(adir), "%s/a", dir);
	cr_assert_eq(sandbox_run_dir_prepare(adir, &a, &err), 0, "%s", err.message);
	snprintf(afile, sizeof(afile), "%s/secret", adir);
	cr_assert_eq(pipe2(ready, O_CLOEXEC), 0);

	pid_t pa = fork();
	cr_assert_geq(pa, 0);
	if (pa == 0) {
		if (sandbox_enter(&a) < 0)
			_exit(SANDBOX_EXIT_FAILED);
		int fd = open(afile, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
		if (fd < 0 || write(fd, "x", 1) != 1)
			_exit(2);
		close(fd);
		/* after the exec the process is dumpable again, as QEMU will be */
		close(ready[0]);
		dup2(ready[1], STDOUT_FILENO);
		execl("/bin/sh", "sh", "-c", "echo up; exec sleep 30", (char *)NULL);
		_exit(127);
	}
	close(ready[1]);
	char c[4];
	cr_assert_eq(read(ready[0], c, sizeof(c)), 3, "child A did not start");
	close(ready[0]);
	snprintf(path, sizeof(path), "/proc/%d/environ", (int)pa);

	pid_t pb = fork();
	cr_assert_geq(pb, 0);
	if (pb == 0) {
		int bad = 0;

		if (sandbox_enter(&b) < 0)
			_exit(SANDBOX_EXIT_FAILED);
		if (kill(pa, 0) == 0 || errno != EPERM)
			bad |= 1;
		if (open(path, O_RDONLY | O_CLOEXEC) >= 0 || errno != EACCES)
			bad |= 2;
		if (ptrace(PTRACE_ATTACH, pa, NULL, NULL) == 0 || errno != EPERM)
			bad |= 4;
		if (open(afile, O_RDONLY | O_CLOEXEC) >= 0 || errno != EACCES)
			bad |= 8;
		if (open(adir, O_RDONLY | O_DIRECTORY | O_CLOEXEC) >= 0 || errno != EACCES)
			bad |= 16;
		_exit(bad);
	}
	cr_assert_eq(waitpid(pb, &ws, 0), pb);
	kill(pa, SIGKILL);
	waitpid(pa, NULL, 0);
	cr_assert(WIFEXITED(ws), "child B status %#x", ws);
	cr_assert_eq(WEXITSTATUS(ws), 0,
		     "child B reached child A (bits: 1 kill, 2 environ, 4 ptrace, 8 file, 16 dir): %d",
		     WEXITSTATUS(ws));
}
