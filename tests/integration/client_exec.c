/* client_exec.c - running commands in a guest through libvirtmgr-client, as
 * a library user does: this file includes only <virtmgr-client.h> (from
 * the directory it is installed from) and links only libvirtmgr-client.
 *
 * One real TCG guest booted by a private virtmgrd, then:
 * - vmc_exec_simple(): stdin from a pipe, stdout and stderr into two pipes
 *   read separately, the environment and working directory applied, the
 *   exit code returned; a command killed by a signal (exit 128+N, signal N);
 *   a missing program (NOT_FOUND, from the agent) and a missing VM
 *   (NOT_FOUND, from the daemon, at start).
 * - the event-driven form in a poll() loop: stdin written with the window,
 *   output through the callback, vmc_exec_signal() ending a command, and a
 *   terminal session whose size is set at start and changed with
 *   vmc_exec_resize().
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

#include <virtmgr-client.h>

#include "tests/integration/client_daemon.h"

#define HANG_GUARD_MS (600 * 1000)
#define N_ELEMS(a) (sizeof(a) / sizeof((a)[0]))

static struct test_daemon daemon_;
static struct vmc_client *cl;
static char vm_id[128];

static void boot_guest(void)
{
	const char *payload[] = { "/bin/sleep", "3600" };
	struct vmc_error err = { 0 };
	struct vmc_vm_config cfg;
	struct vmc_vm_info info;

	cl = vmc_connect(daemon_.sock, &err);
	if (!cl)
		test_fail("%s", err.message);
	vmc_vm_config_init(&cfg);
	cfg.name = "exec";
	cfg.kernel_fd = test_open_image("vmlinuz");
	cfg.initrd_fd = test_open_image("initramfs.img");
	cfg.accel = "tcg";
	cfg.payload_args = payload;
	cfg.n_payload_args = N_ELEMS(payload);
	if (vmc_create_vm(cl, &cfg, &info, &err) < 0)
		test_fail("CreateVm: %s: %s", vmc_status_name(err.code), err.message);
	close(cfg.kernel_fd);
	close(cfg.initrd_fd);
	snprintf(vm_id, sizeof(vm_id), "%s", info.id);
	vmc_vm_info_clear(&info);
	if (vmc_start_vm(cl, vm_id, NULL, &err) < 0)
		test_fail("StartVm: %s", err.message);
	vmc_set_timeout(cl, HANG_GUARD_MS);
	if (vmc_wait_vm(cl, vm_id, VMC_STATE_STARTED, 0, &info, &err) != 1)
		test_fail("WaitVm STARTED: %s", err.message);
	if (info.state != VMC_STATE_STARTED && info.state != VMC_STATE_READY)
		test_fail("the guest is %s, not STARTED", vmc_state_name(info.state));
	vmc_vm_info_clear(&info);
	printf("ok: guest %s started\n", vm_id);
}

/* All of a pipe's read end (its write end already closed), as a string. */
static char *slurp(int fd)
{
	static char bufs[2][4096];
	static int which;
	char *buf = bufs[which++ % 2];
	size_t have = 0;
	ssize_t n;

	while ((n = read(fd, buf + have, sizeof(bufs[0]) - 1 - have)) > 0)
		have += (size_t)n;
	buf[have] = '\0';
	close(fd);
	return buf;
}

static void test_simple(void)
{
	const char *argv[] = { "/bin/sh", "-c",
			       "read line; echo \"out:$line:$(pwd)\"; echo \"err:$GREETING\" >&2; exit 7" };
	const char *env[] = { "GREETING=hello" };
	struct vmc_error err = { 0 };
	struct vmc_exec_params p;
	struct vmc_exec_status st;
	int in[2], out[2], errp[2];
	char *o, *e;

	if (pipe2(in, O_CLOEXEC) < 0 || pipe2(out, O_CLOEXEC) < 0 || pipe2(errp, O_CLOEXEC) < 0)
		test_fail("pipe: %s", strerror(errno));
	if (write(in[1], "ping\n", 5) != 5)
		test_fail("write: %s", strerror(errno));
	close(in[1]);
	vmc_exec_params_init(&p);
	p.argv = argv;
	p.argc = N_ELEMS(argv);
	p.env = env;
	p.n_env = N_ELEMS(env);
	p.cwd = "/tmp";
	p.stdin_fd = in[0];
	p.stdout_fd = out[1];
	p.stderr_fd = errp[1];
	if (vmc_exec_simple(cl, vm_id, &p, &st, &err) < 0)
		test_fail("vmc_exec_simple: %s: %s", vmc_status_name(err.code), err.message);
	close(in[0]);
	close(out[1]);
	close(errp[1]);
	o = slurp(out[0]);
	e = slurp(errp[0]);
	if (st.exit_code != 7 || st.signal != 0)
		test_fail("exit code %d signal %d, expected 7 and 0", st.exit_code, st.signal);
	if (strcmp(o, "out:ping:/tmp\n"))
		test_fail("stdout '%s'", o);
	if (strcmp(e, "err:hello\n"))
		test_fail("stderr '%s'", e);
	printf("ok: vmc_exec_simple: stdin, separate stdout and stderr, env, cwd, exit code 7\n");

	/* killed by a signal */
	const char *killer[] = { "/bin/sh", "-c", "kill -KILL $$" };

	vmc_exec_params_init(&p);
	p.argv = killer;
	p.argc = N_ELEMS(killer);
	if (vmc_exec_simple(cl, vm_id, &p, &st, &err) < 0)
		test_fail("vmc_exec_simple (kill): %s", err.message);
	if (st.exit_code != 128 + SIGKILL || st.signal != SIGKILL)
		test_fail("killed command: exit code %d signal %d", st.exit_code, st.signal);
	printf("ok: a command killed by SIGKILL ends with exit code 137, signal 9\n");

	/* failures: the agent's (no such program) and the daemon's (no such VM) */
	const char *missing[] = { "/no/such/program" };

	p.argv = missing;
	p.argc = 1;
	if (vmc_exec_simple(cl, vm_id, &p, &st, &err) == 0 || err.code != VMC_STATUS_NOT_FOUND ||
	    !strstr(err.message, "/no/such/program"))
		test_fail("missing program: %s: %s", vmc_status_name(err.code), err.message);
	printf("ok: a missing program fails with %s: %s\n", vmc_status_name(err.code), err.message);
	struct vmc_exec *ex = NULL;

	if (vmc_exec_start(cl, "no-such-vm", &p, &ex, &err) == 0 || ex || err.code != VMC_STATUS_NOT_FOUND)
		test_fail("exec in a missing VM: %s: %s", vmc_status_name(err.code), err.message);
	printf("ok: exec in a missing VM fails at start with %s\n", vmc_status_name(err.code));
}

struct collected {
	char out[8192];
	size_t len;
	size_t stderr_bytes;
};

static void collect(void *opaque, enum vmc_exec_stream stream, const void *data, size_t len)
{
	struct collected *c = opaque;

	if (stream == VMC_EXEC_STDERR) {
		c->stderr_bytes += len;
		return;
	}
	len = len < sizeof(c->out) - 1 - c->len ? len : sizeof(c->out) - 1 - c->len;
	memcpy(c->out + c->len, data, len);
	c->len += len;
	c->out[c->len] = '\0';
}

/* What the agent sent so far. Return: 1 running, 0 ended (*@st filled). */
static int process(struct vmc_exec *ex, struct vmc_exec_status *st)
{
	struct vmc_error err = { 0 };
	int r = vmc_exec_process(ex, 0, st, &err);

	if (r < 0)
		test_fail("vmc_exec_process: %s: %s", vmc_status_name(err.code), err.message);
	return r;
}

/* Sleep until the agent sends more (only after process(): frames may be buffered). */
static void wait_readable(struct vmc_exec *ex)
{
	struct pollfd p = { .fd = vmc_exec_fd(ex), .events = POLLIN };

	if (poll(&p, 1, HANG_GUARD_MS) <= 0)
		test_fail("no answer from the agent within the hang guard");
}

static void wait_output(struct vmc_exec *ex, struct collected *c, const char *what)
{
	struct vmc_exec_status st;

	while (process(ex, &st) == 1 && !strstr(c->out, what))
		wait_readable(ex);
	if (!strstr(c->out, what))
		test_fail("the command ended before printing '%s': '%s'", what, c->out);
}

static void wait_end(struct vmc_exec *ex, struct vmc_exec_status *st)
{
	while (process(ex, st) == 1)
		wait_readable(ex);
}

static void test_event_driven(void)
{
	static char big[3 << 20];
	const char *wc[] = { "/bin/sh", "-c", "wc -c; echo done >&2" };
	struct vmc_error err = { 0 };
	struct vmc_exec_params p;
	struct vmc_exec_status st;
	struct collected c = { .len = 0 };
	struct vmc_exec *ex;
	size_t off = 0;

	/* 3 MiB of stdin through the window, written as room allows */
	memset(big, 'x', sizeof(big));
	vmc_exec_params_init(&p);
	p.argv = wc;
	p.argc = N_ELEMS(wc);
	p.output = collect;
	p.opaque = &c;
	if (vmc_exec_start(cl, vm_id, &p, &ex, &err) < 0)
		test_fail("vmc_exec_start: %s", err.message);
	while (process(ex, &st) == 1) {
		size_t room = vmc_exec_stdin_room(ex);

		/* after process(): the room grows with the acknowledgements it read */
		if (off < sizeof(big) && room) {
			ssize_t n = vmc_exec_write_stdin(ex, big + off, sizeof(big) - off, &err);

			if (n < 0)
				test_fail("vmc_exec_write_stdin: %s", err.message);
			if ((size_t)n > room || n == 0)
				test_fail("vmc_exec_write_stdin took %zd bytes with %zu of room", n, room);
			off += (size_t)n;
			if (off == sizeof(big) && vmc_exec_close_stdin(ex, &err) < 0)
				test_fail("vmc_exec_close_stdin: %s", err.message);
			continue;
		}
		if (off < sizeof(big) && vmc_exec_write_stdin(ex, big, 1, &err) != 0)
			test_fail("a full window took more stdin");
		wait_readable(ex);
	}
	vmc_exec_free(ex);
	if (st.exit_code != 0 || atol(c.out) != (long)sizeof(big) || c.stderr_bytes != 5)
		test_fail("wc: exit %d, stdout '%s', %zu stderr bytes", st.exit_code, c.out, c.stderr_bytes);
	printf("ok: 3 MiB of stdin written as the window allowed; stdout and stderr through the callback\n");

	/* vmc_exec_signal() */
	const char *sleeper[] = { "/bin/sh", "-c", "echo ready; exec sleep 600" };

	memset(&c, 0, sizeof(c));
	p.argv = sleeper;
	p.argc = N_ELEMS(sleeper);
	if (vmc_exec_start(cl, vm_id, &p, &ex, &err) < 0 || vmc_exec_close_stdin(ex, &err) < 0)
		test_fail("vmc_exec_start: %s", err.message);
	wait_output(ex, &c, "ready\n");
	if (vmc_exec_signal(ex, SIGTERM, &err) < 0)
		test_fail("vmc_exec_signal: %s", err.message);
	wait_end(ex, &st);
	vmc_exec_free(ex);
	if (st.exit_code != 128 + SIGTERM || st.signal != SIGTERM)
		test_fail("signalled command: exit code %d signal %d", st.exit_code, st.signal);
	printf("ok: vmc_exec_signal(SIGTERM) ends the command: exit code 143, signal 15\n");

	/* a terminal: its size at start, then vmc_exec_resize() */
	const char *tty[] = { "/bin/sh", "-c", "stty size; echo go; read x; stty size; exit 3" };

	memset(&c, 0, sizeof(c));
	p.argv = tty;
	p.argc = N_ELEMS(tty);
	p.tty = true;
	p.rows = 30;
	p.cols = 100;
	if (vmc_exec_start(cl, vm_id, &p, &ex, &err) < 0)
		test_fail("vmc_exec_start (tty): %s", err.message);
	wait_output(ex, &c, "go");
	if (!strstr(c.out, "30 100"))
		test_fail("the terminal's initial size: '%s'", c.out);
	if (vmc_exec_resize(ex, 20, 90, &err) < 0 || vmc_exec_write_stdin(ex, "\n", 1, &err) != 1)
		test_fail("resize: %s", err.message);
	wait_end(ex, &st);
	vmc_exec_free(ex);
	if (st.exit_code != 3 || !strstr(c.out, "20 90"))
		test_fail("tty session: exit %d, output '%s'", st.exit_code, c.out);
	printf("ok: a terminal session: size 30x100 at start, 20x90 after vmc_exec_resize()\n");
}

int main(void)
{
	char backend[512];
	const char *args[] = { "--vsock-backend", backend, NULL };

	signal(SIGPIPE, SIG_IGN);
	setvbuf(stdout, NULL, _IOLBF, 0);
	snprintf(backend, sizeof(backend), "%s/server/virtmgr-vsock", test_top_builddir());
	test_daemon_start(&daemon_, args);
	boot_guest();
	test_simple();
	test_event_driven();
	/* the VM dies before the daemon is stopped, so its exit tests only itself */
	struct vmc_error err = { 0 };
	struct vmc_vm_info info;

	if (vmc_kill_vm(cl, vm_id, NULL, &err) < 0 || vmc_wait_vm(cl, vm_id, VMC_STATE_DEAD, 0, &info, &err) != 1)
		test_fail("KillVm/WaitVm DEAD: %s", err.message);
	vmc_vm_info_clear(&info);
	vmc_close(cl);
	if (!test_daemon_stop(&daemon_)) {
		fprintf(stderr, "FAIL: virtmgrd did not exit cleanly on SIGTERM\n");
		return 1;
	}
	printf("PASS\n");
	return 0;
}
