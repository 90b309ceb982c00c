/* client_fds.c - file descriptors both ways through libvirtmgr-client, with
 * a real guest: the kernel, the initramfs and a console pipe go to the
 * daemon as SCM_RIGHTS with CreateVm (kernel_fd, initrd_fd, console_out);
 * the payload's output must come back through that pipe; OpenLog then hands
 * back the console log as an fd that must hold the same output. Also checks
 * WatchVm (the stream ends with DIED/KILLED after KillVm), WaitVm and
 * GetVmInfo on the dead VM, and vmc_spawn_early() with a private early-mode
 * daemon.
 *
 * Needs the guest image (`make guest-image`). Waits use hang guards only.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/util.h"
#include "client/virtmgr-client.h"
#include "tests/integration/client_daemon.h"

#define MARKER "fd-roundtrip-marker"
#define HANG_GUARD_MS (600 * 1000)

static struct test_daemon daemon_;

/* Read @fd until @marker shows up (or EOF). Return: true if seen. */
static bool read_until(int fd, const char *marker, bool poll_first)
{
	static char buf[1 << 20];
	size_t have = 0;

	for (;;) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		ssize_t n;

		if (poll_first && poll(&p, 1, HANG_GUARD_MS) <= 0)
			test_fail("no console output within the hang guard");
		n = read(fd, buf + have, sizeof(buf) - 1 - have);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return false;
		have += (size_t)n;
		buf[have] = '\0';
		if (strstr(buf, marker))
			return true;
		if (have == sizeof(buf) - 1)
			have = 0;
	}
}

static void test_vm_fds(void)
{
	const char *args[] = { "/bin/sh", "-c", "echo " MARKER "; sleep 600" };
	struct vmc_error err = { 0 };
	struct vmc_vm_config cfg;
	struct vmc_vm_info info, after;
	struct vmc_watch *watch;
	struct vmc_event ev;
	struct vmc_client *cl;
	int pipefd[2], logfd, r;
	bool died = false;

	cl = vmc_connect(daemon_.sock, &err);
	if (!cl)
		test_fail("%s", err.message);
	if (pipe2(pipefd, O_CLOEXEC) < 0)
		test_fail("pipe: %s", strerror(errno));
	vmc_vm_config_init(&cfg);
	cfg.name = "fds";
	cfg.kernel_fd = test_open_image("vmlinuz");
	cfg.initrd_fd = test_open_image("initramfs.img");
	cfg.console_out = pipefd[1];
	cfg.accel = "tcg";
	cfg.payload_args = args;
	cfg.n_payload_args = ARRAY_SIZE(args);
	if (vmc_create_vm(cl, &cfg, &info, &err) < 0)
		test_fail("CreateVm: %s: %s", vmc_status_name(err.code), err.message);
	close(cfg.kernel_fd);
	close(cfg.initrd_fd);
	if (strcmp(info.name, "fds") || info.state != VMC_STATE_NOT_STARTED || !*info.id)
		test_fail("CreateVm answered name %s state %s id '%s'", info.name, vmc_state_name(info.state), info.id);
	if (vmc_watch_vm(cl, info.id, false, &watch, &err) < 0)
		test_fail("WatchVm: %s", err.message);
	if (vmc_start_vm(cl, info.id, NULL, &err) < 0)
		test_fail("StartVm: %s", err.message);

	/* daemon -> QEMU -> our pipe */
	if (!read_until(pipefd[0], MARKER, true))
		test_fail("the payload's output never came through the console_out pipe");
	printf("ok: console_out fd passed with CreateVm carries the payload's output\n");
	/* our own copy shares its file description with what we sent: the
	 * daemon must not have made it non-blocking under us */
	if (fcntl(pipefd[1], F_GETFL) & O_NONBLOCK)
		test_fail("the daemon switched the client's console_out file description to O_NONBLOCK");
	close(pipefd[1]);
	printf("ok: the client's console_out file description is still blocking\n");

	r = vmc_wait_vm(cl, info.id, VMC_STATE_STARTED, 0, &after, &err);
	if (r != 1)
		test_fail("WaitVm STARTED: %d %s", r, err.message);
	vmc_vm_info_clear(&after);

	/* daemon -> us: the console log as an fd */
	logfd = vmc_open_log(cl, "fds", VMC_LOG_CONSOLE, &err);
	if (logfd < 0)
		test_fail("OpenLog: %s: %s", vmc_status_name(err.code), err.message);
	if (!(fcntl(logfd, F_GETFD) & FD_CLOEXEC))
		test_fail("OpenLog's fd is not close-on-exec");
	if (!read_until(logfd, MARKER, false))
		test_fail("the console log from OpenLog lacks the payload's output");
	close(logfd);
	logfd = vmc_open_log(cl, info.id, VMC_LOG_QEMU, &err);
	if (logfd < 0)
		test_fail("OpenLog qemu: %s", err.message);
	close(logfd);
	printf("ok: OpenLog returns readable fds\n");

	if (vmc_kill_vm(cl, info.id, NULL, &err) < 0)
		test_fail("KillVm: %s", err.message);
	for (;;) {
		r = vmc_watch_next(watch, HANG_GUARD_MS, &ev, &err);
		if (r < 0)
			test_fail("WatchVm: %s: %s", vmc_status_name(err.code), err.message);
		if (r == 0)
			break;
		printf("event: %s %s %s\n", vmc_event_type_name(ev.type), vmc_state_name(ev.state),
		       vmc_death_reason_name(ev.death_reason));
		if (strcmp(ev.vm, info.id) && strcmp(ev.vm, info.name))
			test_fail("event for vm '%s'", ev.vm);
		if (ev.type == VMC_EVENT_DIED) {
			if (ev.death_reason != VMC_DEATH_KILLED)
				test_fail("died with %s, expected KILLED", vmc_death_reason_name(ev.death_reason));
			died = true;
		}
		vmc_event_clear(&ev);
		if (died)
			break;
	}
	if (!died)
		test_fail("WatchVm ended without a DIED event");
	vmc_watch_close(watch);
	r = vmc_wait_vm(cl, info.id, VMC_STATE_DEAD, 0, &after, &err);
	if (r != 1 || after.state != VMC_STATE_DEAD || after.death_reason != VMC_DEATH_KILLED)
		test_fail("WaitVm DEAD: %d %s", r, err.message);
	vmc_vm_info_clear(&after);
	if (vmc_open_log(cl, info.id, VMC_LOG_CONSOLE, &err) >= 0 || err.code == VM_OK)
		test_fail("OpenLog on a dead VM should fail");
	printf("ok: WatchVm reports DIED/KILLED; OpenLog on a dead VM: %s\n", vmc_status_name(err.code));
	vmc_vm_info_clear(&info);
	close(pipefd[0]);
	vmc_close(cl);
}

static void test_spawn_early(void)
{
	char root[128], run[128], xsd[512];
	const char *extra[] = { "--root", root, "--run-dir", run, "--early-xsd", xsd, NULL };
	struct vmc_error err = { 0 };
	struct vmc_daemon_info di;
	struct vmc_client *cl;
	char path[512];

	snprintf(root, sizeof(root), "%s/early-root", daemon_.tmp);
	snprintf(run, sizeof(run), "%s/early-run", daemon_.tmp);
	snprintf(xsd, sizeof(xsd), "%s/etc/early_vms.xsd", getenv("top_srcdir") ? getenv("top_srcdir") : "..");
	snprintf(path, sizeof(path), "%s/server/virtmgrd", test_top_builddir());
	if (mkdir_p(root, 0755) < 0)
		test_fail("mkdir %s", root);
	cl = vmc_spawn_early(path, extra, &err);
	if (!cl)
		test_fail("vmc_spawn_early: %s", err.message);
	if (vmc_get_daemon_info(cl, &di, &err) < 0)
		test_fail("GetDaemonInfo on the early daemon: %s", err.message);
	if (strcmp(di.mode, "early") || di.pid != vmc_client_pid(cl))
		test_fail("early daemon: mode %s pid %d, expected early and %d", di.mode, di.pid,
			  (int)vmc_client_pid(cl));
	vmc_daemon_info_clear(&di);
	vmc_close(cl);

	/* a daemon that fails at start-up: the error says so instead of hanging */
	extra[5] = "/nonexistent/early_vms.xsd";
	cl = vmc_spawn_early(path, extra, &err);
	if (cl)
		test_fail("vmc_spawn_early with a missing schema succeeded");
	printf("ok: vmc_spawn_early (and its failure: %s)\n", err.message);
	cl = vmc_spawn_early("/nonexistent/virtmgrd", NULL, &err);
	if (cl)
		test_fail("vmc_spawn_early of a missing binary succeeded");
}

int main(void)
{
	char backend[512];
	const char *args[] = { "--vsock-backend", backend, NULL };

	signal(SIGPIPE, SIG_IGN);
	snprintf(backend, sizeof(backend), "%s/server/virtmgr-vsock", test_top_builddir());
	test_daemon_start(&daemon_, args);
	test_vm_fds();
	test_spawn_early();
	if (!test_daemon_stop(&daemon_)) {
		fprintf(stderr, "FAIL: virtmgrd did not exit cleanly on SIGTERM\n");
		return 1;
	}
	printf("PASS\n");
	return 0;
}
