/* test_qemu.c - QEMU supervision against real QEMU (TCG) and the default
 * guest image (the QMP client against a misbehaving peer is in test_qmp.c).
 *
 * Every VM test runs a real libev loop until on_exit; actions (power-down,
 * kill, pause, ...) are triggered by console markers the guest prints, never
 * by timers. The only timer is a hang guard that fails the test. The image is
 * found at $top_builddir/guest/image (exported by the test harness).
 */
#include "config.h"

#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lib/util.h"
#include "server/qemu.h"
#include "server/qmp.h"

#ifndef QEMU_TEST_BINARY
#define QEMU_TEST_BINARY "qemu-system-x86_64"
#endif

/* hang guard only: a stuck test fails instead of blocking `make check` */
#define HANG_GUARD_S 900.0

struct vmtest {
	struct ev_loop *loop;
	struct qemu *q;
	char run_dir[256];
	char kernel[512];
	char initrd[512];
	struct qemu_config cfg;

	char *console;
	size_t console_len;
	char events[1024];

	/* once the console shows @marker, call @action (once) */
	const char *marker;
	void (*action)(struct vmtest *t);
	bool acted;

	bool exited;
	bool free_in_exit;
	struct qemu_exit ex;
	ev_timer guard;

	/* pause test */
	int status_step;
	char statuses[128];
};

static void guard_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	cr_assert_fail("hang guard: the VM did not finish (console so far:\n%s)", ((struct vmtest *)w->data)->console);
}

static void on_console(void *opaque, const char *buf, size_t len)
{
	struct vmtest *t = opaque;

	t->console = xrealloc(t->console, t->console_len + len + 1);
	memcpy(t->console + t->console_len, buf, len);
	t->console_len += len;
	t->console[t->console_len] = '\0';
	if (t->marker && !t->acted && strstr(t->console, t->marker)) {
		t->acted = true;
		t->action(t);
	}
}

static void on_event(void *opaque, const char *name)
{
	struct vmtest *t = opaque;

	strncat(t->events, name, sizeof(t->events) - strlen(t->events) - 2);
	strcat(t->events, " ");
}

static void on_exit_cb(void *opaque, const struct qemu_exit *ex)
{
	struct vmtest *t = opaque;

	t->exited = true;
	t->ex = *ex;
	if (t->free_in_exit) {
		/* the daemon may drop the VM from inside the callback */
		qemu_free(t->q, false);
		t->q = NULL;
	}
	ev_break(t->loop, EVBREAK_ONE);
}

static const struct qemu_callbacks test_cb = {
	.on_console = on_console,
	.on_event = on_event,
	.on_exit = on_exit_cb,
};

static const char *image_dir(void)
{
	static char dir[400];
	const char *top = getenv("top_builddir");
	struct stat st;

	cr_assert(top, "top_builddir is not set (run through `make check`)");
	snprintf(dir, sizeof(dir), "%s/guest/image", top);
	cr_assert(stat(dir, &st) == 0, "guest image %s is missing: run `make guest-image` in %s", dir, top);
	return dir;
}

static int count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *de;
	int n = 0;

	cr_assert(d);
	while ((de = readdir(d)))
		if (de->d_name[0] != '.')
			n++;
	closedir(d);
	return n - 1; /* the directory's own fd */
}

/* A VM test on @loop with @payload as the kernel command line's payload. */
static void vm_init(struct vmtest *t, struct ev_loop *loop, const char *payload)
{
	const char *img = image_dir();
	static char cmdline[1024];

	memset(t, 0, sizeof(*t));
	t->loop = loop;
	snprintf(t->run_dir, sizeof(t->run_dir), "/tmp/virtmgr-test-qemu.XXXXXX");
	cr_assert(mkdtemp(t->run_dir));
	snprintf(t->kernel, sizeof(t->kernel), "%s/vmlinuz", img);
	snprintf(t->initrd, sizeof(t->initrd), "%s/initramfs.img", img);
	cr_assert(access(t->kernel, R_OK) == 0, "%s missing: run `make guest-image`", t->kernel);
	cr_assert(access(t->initrd, R_OK) == 0, "%s missing: run `make guest-image`", t->initrd);
	snprintf(cmdline, sizeof(cmdline), "console=ttyS0 quiet panic=-1 -- %s", payload);
	t->cfg = (struct qemu_config){
		.binary = QEMU_TEST_BINARY,
		.accel = "tcg",
		.run_dir = t->run_dir,
		.kernel = t->kernel,
		.kernel_fd = -1,
		.initrd = t->initrd,
		.initrd_fd = -1,
		.cmdline = cmdline,
		.memory_mib = 256,
		.cpus = 1,
		.sandbox = true,
	};
	t->console = xstrdup("");
}

static void vm_start_ok(struct vmtest *t)
{
	struct vm_error err = { 0 };

	cr_assert_eq(qemu_start(t->loop, &t->cfg, &test_cb, t, &t->q, &err), 0, "qemu_start: %s", err.message);
	cr_assert_gt(qemu_pid(t->q), 0);
	cr_assert_gt(qemu_start_time(t->q), 0);
}

static void vm_run(struct vmtest *t)
{
	ev_timer_init(&t->guard, guard_cb, HANG_GUARD_S, 0);
	t->guard.data = t;
	ev_timer_start(t->loop, &t->guard);
	while (!t->exited)
		ev_run(t->loop, EVRUN_ONCE);
	ev_timer_stop(t->loop, &t->guard);
}

static void vm_done(struct vmtest *t)
{
	qemu_free(t->q, false);
	t->q = NULL;
	remove_tree(t->run_dir);
	free(t->console);
}

static char *slurp(const char *dir, const char *name)
{
	char path[512];
	char *buf = NULL;
	size_t len;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	cr_assert_eq(read_file(path, 1 << 22, &buf, &len, NULL), 0, "cannot read %s", path);
	return buf;
}

/* ------------------------------------------------------------ boots */

/* A hang guard per test process instead of Criterion's .timeout, whose
 * runner-side bookkeeping LeakSanitizer reports as leaked: SIGALRM ends a
 * stuck test, which Criterion reports as a crash. Not a timing assertion. */
static void arm_hang_guard(void)
{
	alarm(1200);
}

TestSuite(qemu, .init = arm_hang_guard);

Test(qemu, boot_payload_exit_code)
{
	struct vmtest t;
	struct ev_loop *loop = EV_DEFAULT;
	int fds_before;
	char *log;

	vm_init(&t, loop, "/bin/sh -c \"echo hello; exit 3\"");
	fds_before = count_fds();
	vm_start_ok(&t);
	vm_run(&t);

	cr_assert(strstr(t.console, "VIRTMGR: STARTED"), "console:\n%s", t.console);
	cr_assert(strstr(t.console, "hello"), "console:\n%s", t.console);
	cr_assert(strstr(t.console, "VIRTMGR: EXIT 3"), "console:\n%s", t.console);
	cr_assert_str_eq(t.ex.shutdown_reason, "guest-shutdown", "events: %s", t.events);
	cr_assert(strstr(t.events, "SHUTDOWN"), "events: %s", t.events);
	cr_assert_eq(t.ex.signal, 0);
	cr_assert_eq(t.ex.exit_code, 0, "stderr: %s", t.ex.stderr_tail);
	cr_assert(WIFEXITED(t.ex.wait_status) && WEXITSTATUS(t.ex.wait_status) == 0);
	cr_assert_not(t.ex.panicked);
	cr_assert_not(t.ex.kill_sent);

	log = slurp(t.run_dir, "console.log");
	cr_assert(strstr(log, "VIRTMGR: EXIT 3"), "console.log:\n%s", log);
	free(log);
	qemu_free(t.q, false);
	t.q = NULL;
	cr_assert_eq(count_fds(), fds_before, "fd leak: %d before, %d after", fds_before, count_fds());
	vm_done(&t);
}

static void act_powerdown(struct vmtest *t)
{
	cr_assert_eq(qemu_powerdown(t->q), 0);
}

Test(qemu, powerdown_through_acpi_button)
{
	struct vmtest t;

	vm_init(&t, EV_DEFAULT, "/bin/sh -c \"echo payload-up; sleep 100000\"");
	t.marker = "payload-up";
	t.action = act_powerdown;
	vm_start_ok(&t);
	vm_run(&t);
	cr_assert(t.acted, "console:\n%s", t.console);
	cr_assert_str_eq(t.ex.shutdown_reason, "guest-shutdown", "events: %s console:\n%s", t.events, t.console);
	cr_assert(strstr(t.events, "POWERDOWN"), "events: %s", t.events);
	cr_assert(strstr(t.console, "VIRTMGR: EXIT"), "console:\n%s", t.console);
	cr_assert_eq(t.ex.exit_code, 0);
	vm_done(&t);
}

static void act_kill(struct vmtest *t)
{
	qemu_kill(t->q);
}

Test(qemu, kill_is_signal_9)
{
	struct vmtest t;
	struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO); /* pidfd-only path */

	vm_init(&t, loop, "/bin/sh -c \"echo payload-up; sleep 100000\"");
	t.marker = "payload-up";
	t.action = act_kill;
	vm_start_ok(&t);
	vm_run(&t);
	cr_assert_eq(t.ex.signal, SIGKILL);
	cr_assert(WIFSIGNALED(t.ex.wait_status) && WTERMSIG(t.ex.wait_status) == SIGKILL);
	cr_assert(t.ex.kill_sent);
	cr_assert_str_eq(t.ex.shutdown_reason, "");
	vm_done(&t);
	ev_loop_destroy(loop);
}

static void act_external_kill(struct vmtest *t)
{
	cr_assert_eq(kill(qemu_pid(t->q), SIGKILL), 0);
}

Test(qemu, external_sigkill_is_seen)
{
	struct vmtest t;

	vm_init(&t, EV_DEFAULT, "/bin/sh -c \"echo payload-up; sleep 100000\"");
	t.marker = "payload-up";
	t.action = act_external_kill;
	t.free_in_exit = true;
	vm_start_ok(&t);
	vm_run(&t);
	/* say which of the two went wrong: the kill never happened (QEMU ended
	 * first) or its status was lost */
	cr_assert(t.acted, "QEMU exited before the payload's marker: status %d, reason \"%s\", events: %s console:\n%s",
		  t.ex.wait_status, t.ex.shutdown_reason, t.events, t.console);
	cr_assert_eq(t.ex.signal, SIGKILL, "wait status %d, exit code %d, reason \"%s\", events: %s", t.ex.wait_status,
		     t.ex.exit_code, t.ex.shutdown_reason, t.events);
	cr_assert_not(t.ex.kill_sent);
	vm_done(&t);
}

Test(qemu, guest_reboot_is_guest_reset)
{
	struct vmtest t;

	vm_init(&t, EV_DEFAULT, "/bin/sh -c \"echo rebooting; reboot -f\"");
	vm_start_ok(&t);
	vm_run(&t);
	cr_assert(strstr(t.console, "rebooting"), "console:\n%s", t.console);
	cr_assert_str_eq(t.ex.shutdown_reason, "guest-reset", "events: %s console:\n%s", t.events, t.console);
	cr_assert_not(t.ex.panicked);
	cr_assert_eq(t.ex.exit_code, 0);
	vm_done(&t);
}

Test(qemu, guest_panic_is_seen)
{
	struct vmtest t;

	vm_init(&t, EV_DEFAULT, "/bin/sh -c \"echo c > /proc/sysrq-trigger\"");
	vm_start_ok(&t);
	vm_run(&t);
	cr_assert(t.ex.panicked, "events: %s console:\n%s", t.events, t.console);
	cr_assert(strstr(t.events, "GUEST_PANICKED"), "events: %s", t.events);
	cr_assert_str_eq(t.ex.shutdown_reason, "guest-panic");
	vm_done(&t);
}

static void status_cb(void *opaque, const char *status)
{
	struct vmtest *t = opaque;

	strcat(t->statuses, status ? status : "(null)");
	strcat(t->statuses, " ");
	switch (t->status_step++) {
	case 0: /* after stop */
		cr_assert_eq(qemu_pause(t->q, false), 0);
		cr_assert_eq(qemu_query_status(t->q, status_cb, t), 0);
		break;
	case 1: /* after cont */
		cr_assert_eq(qemu_quit(t->q), 0);
		break;
	}
}

static void act_pause(struct vmtest *t)
{
	cr_assert_eq(qemu_pause(t->q, true), 0);
	cr_assert_eq(qemu_query_status(t->q, status_cb, t), 0);
}

Test(qemu, pause_cont_quit)
{
	struct vmtest t;

	vm_init(&t, EV_DEFAULT, "/bin/sh -c \"echo payload-up; sleep 100000\"");
	t.marker = "payload-up";
	t.action = act_pause;
	vm_start_ok(&t);
	vm_run(&t);
	cr_assert_str_eq(t.statuses, "paused running ", "statuses: %s", t.statuses);
	cr_assert(strstr(t.events, "STOP RESUME"), "events: %s", t.events);
	cr_assert_str_eq(t.ex.shutdown_reason, "host-qmp-quit");
	cr_assert_eq(t.ex.exit_code, 0);
	vm_done(&t);
}

static void act_type_line(struct vmtest *t)
{
	cr_assert_eq(qemu_console_write(t->q, "typed-line\n", 11), 11);
}

Test(qemu, disk_and_console_input)
{
	struct vmtest t;
	char dir[] = "/tmp/virtmgr-test-disk.XXXXXX";
	char disk_path[128];
	struct qemu_disk disk;
	int fd;
	static const char content[] = "DISK-CONTENT-4711\n";

	/* a comma and "file=" in the path must reach QEMU as data, not options */
	cr_assert(mkdtemp(dir));
	snprintf(disk_path, sizeof(disk_path), "%s/a,file=x.img", dir);
	fd = open(disk_path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
	cr_assert(fd >= 0);
	cr_assert_eq(write(fd, content, sizeof(content) - 1), (ssize_t)(sizeof(content) - 1));
	cr_assert_eq(ftruncate(fd, 1 << 20), 0);
	close(fd);

	/* typed only once the payload asks: earlier bytes may meet a serial
	 * port or tty not set up yet, as on real hardware */
	vm_init(&t, EV_DEFAULT, "/bin/sh -c \"head -c 17 /dev/vda; echo; echo ask:; read l; echo got:$l\"");
	t.marker = "ask:";
	t.action = act_type_line;
	disk = (struct qemu_disk){ .path = disk_path, .fd = -1, .read_only = true };
	t.cfg.disks = &disk;
	t.cfg.ndisks = 1;
	vm_start_ok(&t);
	vm_run(&t);
	cr_assert(strstr(t.console, "DISK-CONTENT-4711"), "console:\n%s", t.console);
	cr_assert(strstr(t.console, "got:typed-line"), "console:\n%s", t.console);
	cr_assert(strstr(t.console, "VIRTMGR: EXIT 0"), "console:\n%s", t.console);
	vm_done(&t);
	remove_tree(dir);
}

/* ------------------------------------------------------------ start failures */

Test(qemu, start_errors_are_synchronous)
{
	struct vmtest t;
	struct vm_error err = { 0 };
	struct qemu_disk disk = { .path = "/nonexistent/disk.img", .fd = -1 };
	int fds_before;

	vm_init(&t, EV_DEFAULT, "true");
	fds_before = count_fds();

	t.cfg.binary = "/nonexistent/qemu-system-x86_64";
	cr_assert_eq(qemu_start(t.loop, &t.cfg, &test_cb, &t, &t.q, &err), -1);
	cr_assert(strstr(err.message, "/nonexistent/qemu-system-x86_64"), "%s", err.message);
	t.cfg.binary = QEMU_TEST_BINARY;

	t.cfg.kernel = "/nonexistent/vmlinuz";
	cr_assert_eq(qemu_start(t.loop, &t.cfg, &test_cb, &t, &t.q, &err), -1);
	cr_assert(strstr(err.message, "kernel /nonexistent/vmlinuz"), "%s", err.message);
	cr_assert_eq(err.code, VM_NOT_FOUND);
	t.cfg.kernel = t.kernel;

	t.cfg.disks = &disk;
	t.cfg.ndisks = 1;
	cr_assert_eq(qemu_start(t.loop, &t.cfg, &test_cb, &t, &t.q, &err), -1);
	cr_assert(strstr(err.message, "disk 0 /nonexistent/disk.img"), "%s", err.message);
	t.cfg.ndisks = 0;

	t.cfg.accel = "kvm,foo=bar";
	cr_assert_eq(qemu_start(t.loop, &t.cfg, &test_cb, &t, &t.q, &err), -1);
	cr_assert_eq(err.code, VM_INVALID_ARGUMENT);
	t.cfg.accel = "tcg";

	t.cfg.vhost_user_vsock_socket = "/x";
	t.cfg.vhost_vsock_cid = 5;
	cr_assert_eq(qemu_start(t.loop, &t.cfg, &test_cb, &t, &t.q, &err), -1);
	cr_assert(strstr(err.message, "vsock"), "%s", err.message);

	cr_assert_eq(count_fds(), fds_before);
	vm_done(&t);
}

Test(qemu, corrupt_kernel_reports_stderr)
{
	struct vmtest t;
	char path[300];
	int fd;

	vm_init(&t, EV_DEFAULT, "true");
	snprintf(path, sizeof(path), "%s/garbage-kernel", t.run_dir);
	fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
	cr_assert(fd >= 0);
	for (int i = 0; i < 256; i++)
		cr_assert_eq(write(fd, "not a kernel image at all\n", 26), 26);
	close(fd);
	t.cfg.kernel = path;
	vm_start_ok(&t);
	vm_run(&t);
	cr_assert_neq(t.ex.exit_code, 0);
	cr_assert_str_eq(t.ex.shutdown_reason, "");
	cr_assert(strstr(t.ex.stderr_tail, "kernel"), "stderr tail: %s", t.ex.stderr_tail);
	vm_done(&t);
}

Test(qemu, bad_vsock_socket_reports_stderr)
{
	struct vmtest t;

	vm_init(&t, EV_DEFAULT, "true");
	t.cfg.vhost_user_vsock_socket = "/nonexistent,dir/vsock.sock";
	vm_start_ok(&t);
	vm_run(&t);
	cr_assert_neq(t.ex.exit_code, 0);
	/* the comma arrived as part of the path (escaped as ",,") */
	cr_assert(strstr(t.ex.stderr_tail, "/nonexistent,dir/vsock.sock"), "stderr tail: %s", t.ex.stderr_tail);
	vm_done(&t);
}

/* ------------------------------------------------------------ adoption */

static void adopt_status_cb(void *opaque, const char *status)
{
	struct vmtest *t = opaque;

	cr_assert(status, "query-status on the adopted QEMU failed");
	strcat(t->statuses, status);
	cr_assert_eq(qemu_quit(t->q), 0);
}

Test(qemu, adopt_foreign_qemu)
{
	struct vmtest t;
	struct vm_error err = { 0 };
	int sync[2];
	pid_t helper, qpid;
	struct {
		pid_t pid;
		uint64_t start_time;
	} info;
	int status;

	vm_init(&t, EV_DEFAULT, "/bin/sh -c \"sleep 100000\"");
	cr_assert_eq(pipe2(sync, O_CLOEXEC), 0);
	helper = fork();
	cr_assert(helper >= 0);
	if (helper == 0) {
		/* a previous daemon: starts QEMU, leaves it running, goes away */
		struct ev_loop *hl = ev_loop_new(EVFLAG_AUTO);
		struct qemu *hq;

		if (qemu_start(hl, &t.cfg, NULL, NULL, &hq, &err) < 0)
			_exit(1);
		info.pid = qemu_pid(hq);
		info.start_time = qemu_start_time(hq);
		qemu_free(hq, true);
		if (write(sync[1], &info, sizeof(info)) != sizeof(info))
			_exit(2);
		_exit(0);
	}
	close(sync[1]);
	cr_assert_eq(read(sync[0], &info, sizeof(info)), (ssize_t)sizeof(info));
	close(sync[0]);
	cr_assert_eq(waitpid(helper, &status, 0), helper);
	cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	qpid = info.pid;

	cr_assert_eq(qemu_adopt(t.loop, qpid, info.start_time + 1, t.run_dir, &test_cb, &t, &t.q, &err), -1,
		     "a wrong start time must be refused");
	cr_assert(strstr(err.message, "gone"), "%s", err.message);

	cr_assert_eq(qemu_adopt(t.loop, qpid, info.start_time, t.run_dir, &test_cb, &t, &t.q, &err), 0, "%s",
		     err.message);
	cr_assert_eq(qemu_pid(t.q), qpid);
	cr_assert_eq(qemu_query_status(t.q, adopt_status_cb, &t), 0);
	vm_run(&t);
	cr_assert_str_eq(t.statuses, "running");
	cr_assert_str_eq(t.ex.shutdown_reason, "host-qmp-quit");
	cr_assert_eq(t.ex.wait_status, -1, "not our child: no wait status");
	vm_done(&t);
}

Test(qemu, adopt_missing_pid)
{
	struct qemu *q = NULL;
	struct vm_error err = { 0 };

	cr_assert_eq(qemu_adopt(EV_DEFAULT, 0x3ffffff0, 1, "/tmp", &test_cb, NULL, &q, &err), -1);
	cr_assert_eq(err.code, VM_NOT_FOUND, "%s", err.message);
}
