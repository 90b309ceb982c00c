/* test_vmctl_args.c - vmctl's argument parsing, exit-code mapping, error
 * messages and stdin/socket bridge, all without a daemon: the parse
 * functions are pure, the error paths are driven through vmctl_main() with
 * a socket path where nothing listens, and the bridge runs against a real
 * forked peer on a socketpair.
 */
#include "config.h"

#include <criterion/criterion.h>
#include <criterion/redirect.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include "client/vmctl.h"

#define ARGV(...) ((char *[]){ __VA_ARGS__, NULL })
#define ARGC(...) ((int)(sizeof((char *[]){ __VA_ARGS__ }) / sizeof(char *)))
/* The parsers may modify argv strings (--disk), so copy literals first,
 * into static storage (each test runs in its own process: nothing to free). */
static char arena[1 << 16];
static size_t arena_used;

static void *arena_alloc(size_t n)
{
	void *p;

	n = (n + 15) & ~(size_t)15;
	cr_assert_leq(arena_used + n, sizeof(arena), "test arena exhausted");
	p = arena + arena_used;
	arena_used += n;
	return p;
}

static char **dupv(int argc, char **argv)
{
	char **v = arena_alloc(((size_t)argc + 1) * sizeof(char *));

	for (int i = 0; i < argc; i++)
		v[i] = strcpy(arena_alloc(strlen(argv[i]) + 1), argv[i]);
	v[argc] = NULL;
	return v;
}
#define V(...) dupv(ARGC(__VA_ARGS__), ARGV(__VA_ARGS__))

/* ---------------------------------------------------------------- global */

Test(global, defaults_and_env)
{
	struct vmctl_ctx ctx;
	struct vm_error err = { 0 };
	int idx;

	unsetenv("VIRTMGR_SOCKET");
	cr_assert_eq(vmctl_parse_global(ARGC("vmctl", "list"), V("vmctl", "list"), &ctx, &idx, &err), 0);
	cr_assert_str_eq(ctx.socket, "/run/virtmgr/virtmgrd.sock");
	cr_assert_eq(idx, 1);
	cr_assert_not(ctx.json);
	cr_assert_eq(ctx.timeout_ms, 0);

	setenv("VIRTMGR_SOCKET", "/tmp/x.sock", 1);
	cr_assert_eq(vmctl_parse_global(ARGC("vmctl", "info"), V("vmctl", "info"), &ctx, &idx, &err), 0);
	cr_assert_str_eq(ctx.socket, "/tmp/x.sock");
	setenv("VIRTMGR_SOCKET", "", 1);
	cr_assert_eq(vmctl_parse_global(ARGC("vmctl", "info"), V("vmctl", "info"), &ctx, &idx, &err), 0);
	cr_assert_str_eq(ctx.socket, "/run/virtmgr/virtmgrd.sock");
}

Test(global, options_before_command_only)
{
	struct vmctl_ctx ctx;
	struct vm_error err = { 0 };
	char **v = V("vmctl", "--socket", "/s", "--json", "--timeout", "1.5", "stop", "--timeout", "3", "vm1");
	int idx;

	cr_assert_eq(vmctl_parse_global(10, v, &ctx, &idx, &err), 0, "%s", err.message);
	cr_assert_str_eq(ctx.socket, "/s");
	cr_assert(ctx.json);
	cr_assert_eq(ctx.timeout_ms, 1500);
	cr_assert_eq(idx, 6);
	cr_assert_str_eq(v[idx], "stop");
}

Test(global, errors)
{
	struct vmctl_ctx ctx;
	struct vm_error err = { 0 };
	int idx;

	cr_assert_eq(vmctl_parse_global(2, V("vmctl", "--bogus"), &ctx, &idx, &err), -1);
	cr_assert_str_eq(err.message, "unknown option '--bogus'");
	cr_assert_eq(vmctl_parse_global(2, V("vmctl", "-x"), &ctx, &idx, &err), -1);
	cr_assert_str_eq(err.message, "unknown option '-x'");
	cr_assert_eq(vmctl_parse_global(2, V("vmctl", "--socket"), &ctx, &idx, &err), -1);
	cr_assert_str_eq(err.message, "option '--socket' requires an argument");
	cr_assert_eq(vmctl_parse_global(4, V("vmctl", "--timeout", "soon", "info"), &ctx, &idx, &err), -1);
	cr_assert_str_eq(err.message, "invalid --timeout 'soon': expected seconds, e.g. 10 or 0.5");
	cr_assert_eq(vmctl_parse_global(2, V("vmctl", "--help"), &ctx, &idx, &err), VMCTL_PARSE_HELP);
}

Test(global, seconds)
{
	struct vm_error err = { 0 };
	uint64_t ms;

	cr_assert_eq(vmctl_parse_seconds("10", "t", &ms, &err), 0);
	cr_assert_eq(ms, 10000);
	cr_assert_eq(vmctl_parse_seconds("0.25", "t", &ms, &err), 0);
	cr_assert_eq(ms, 250);
	cr_assert_eq(vmctl_parse_seconds("1.0009", "t", &ms, &err), 0);
	cr_assert_eq(ms, 1000);
	cr_assert_eq(vmctl_parse_seconds("-1", "t", &ms, &err), -1);
	cr_assert_eq(vmctl_parse_seconds("1.", "t", &ms, &err), -1);
	cr_assert_eq(vmctl_parse_seconds(".5", "t", &ms, &err), -1);
	cr_assert_eq(vmctl_parse_seconds("1s", "t", &ms, &err), -1);
	cr_assert_eq(vmctl_parse_seconds("", "t", &ms, &err), -1);
	cr_assert_eq(vmctl_parse_seconds("99999999999999999999", "t", &ms, &err), -1);
	cr_assert_str_eq(err.message, "invalid t '99999999999999999999': too large");
}

Test(global, u32)
{
	struct vm_error err = { 0 };
	uint32_t v;

	cr_assert_eq(vmctl_parse_u32("4294967295", "n", &v, &err), 0);
	cr_assert_eq(v, UINT32_MAX);
	cr_assert_eq(vmctl_parse_u32("4294967296", "n", &v, &err), -1);
	cr_assert_str_eq(err.message, "invalid n '4294967296': too large");
	cr_assert_eq(vmctl_parse_u32("-1", "n", &v, &err), -1);
	cr_assert_eq(vmctl_parse_u32("12x", "n", &v, &err), -1);
	cr_assert_str_eq(err.message, "invalid n '12x': not a number");
}

/* ---------------------------------------------------------------- run */

Test(run, full)
{
	struct cmd_run_opts o;
	struct vm_error err = { 0 };
	char **v = V("run", "--name", "web", "--kernel", "/k", "--initrd", "/i", "--cmdline", "quiet", "--mem", "512",
		     "--cpus", "2", "--disk", "/a.img,ro", "-d", "/b,c.img", "--disk", "/c.img,rw", "--accel", "tcg",
		     "--events", "--boot-timeout", "30", "-e", "A=1", "--env", "B=x=y", "--cwd", "/tmp", "--console",
		     "/tmp/console.log", "--", "/bin/sh", "-c", "echo hi");
	int argc = 0;

	while (v[argc])
		argc++;
	cr_assert_eq(cmd_run_parse(argc, v, &o, &err), 0, "%s", err.message);
	cr_assert_str_eq(o.cfg.name, "web");
	cr_assert_str_eq(o.cfg.kernel, "/k");
	cr_assert_str_eq(o.cfg.initrd, "/i");
	cr_assert_str_eq(o.cfg.cmdline, "quiet");
	cr_assert_eq(o.cfg.memory_mib, 512);
	cr_assert_eq(o.cfg.cpus, 2);
	cr_assert_eq(o.cfg.n_disks, 3);
	cr_assert_str_eq(o.cfg.disks[0].path, "/a.img");
	cr_assert(o.cfg.disks[0].read_only);
	cr_assert_eq(o.cfg.disks[0].fd, -1);
	cr_assert_str_eq(o.cfg.disks[1].path, "/b,c.img");
	cr_assert_not(o.cfg.disks[1].read_only);
	cr_assert_str_eq(o.cfg.disks[2].path, "/c.img");
	cr_assert_not(o.cfg.disks[2].read_only);
	cr_assert_str_eq(o.cfg.accel, "tcg");
	cr_assert(o.events);
	cr_assert_not(o.detach);
	cr_assert_eq(o.cfg.boot_timeout_ms, 30000);
	cr_assert_eq(o.cfg.n_payload_env, 2);
	cr_assert_str_eq(o.cfg.payload_env[0], "A=1");
	cr_assert_str_eq(o.cfg.payload_env[1], "B=x=y");
	cr_assert_str_eq(o.cfg.payload_cwd, "/tmp");
	cr_assert_str_eq(o.console_file, "/tmp/console.log");
	cr_assert_eq(o.cfg.n_payload_args, 3);
	cr_assert_str_eq(o.cfg.payload_args[0], "/bin/sh");
	cr_assert_str_eq(o.cfg.payload_args[1], "-c");
	cr_assert_str_eq(o.cfg.payload_args[2], "echo hi");
	cr_assert_eq(o.cfg.console_out, -1);
	cr_assert_eq(o.cfg.kernel_fd, -1);
	cmd_run_opts_release(&o);
}

Test(run, command_without_dashdash_keeps_its_options)
{
	struct cmd_run_opts o;
	struct vm_error err = { 0 };

	cr_assert_eq(cmd_run_parse(5, V("run", "--detach", "ls", "-l", "/"), &o, &err), 0, "%s", err.message);
	cr_assert(o.detach);
	cr_assert(o.cfg.detach);
	cr_assert_eq(o.cfg.n_payload_args, 3);
	cr_assert_str_eq(o.cfg.payload_args[1], "-l");
	cmd_run_opts_release(&o);

	cr_assert_eq(cmd_run_parse(1, V("run"), &o, &err), 0);
	cr_assert_eq(o.cfg.n_payload_args, 0);
	cr_assert_null(o.cfg.name);
	cmd_run_opts_release(&o);
}

static void run_fails(int argc, char **argv, const char *msg)
{
	struct cmd_run_opts o;
	struct vm_error err = { 0 };

	cr_assert_eq(cmd_run_parse(argc, argv, &o, &err), -1, "accepted %s", argv[1]);
	cr_assert_str_eq(err.message, msg);
	cmd_run_opts_release(&o);
}

Test(run, errors)
{
	run_fails(3, V("run", "--accel", "xen"), "invalid --accel 'xen': expected kvm or tcg");
	run_fails(3, V("run", "--mem", "0"), "invalid --mem '0': must be more than 0");
	run_fails(3, V("run", "--mem", "lots"), "invalid --mem 'lots': not a number");
	run_fails(3, V("run", "--cpus", "0"), "invalid --cpus '0': must be more than 0");
	run_fails(3, V("run", "--env", "NOEQUALS"), "invalid --env 'NOEQUALS': expected KEY=VALUE");
	run_fails(3, V("run", "--env", "=v"), "invalid --env '=v': expected KEY=VALUE");
	run_fails(3, V("run", "--disk", ",ro"), "invalid --disk: empty path or image name");
	run_fails(3, V("run", "--cwd", "rel"), "invalid --cwd 'rel': must be an absolute path in the guest");
	run_fails(3, V("run", "--boot-timeout", "0"),
		  "invalid --boot-timeout '0': must be between 0.001 and 4294967 s");
	run_fails(2, V("run", "--kernel"), "option '--kernel' requires an argument");
	run_fails(2, V("run", "--frobnicate"), "unknown option '--frobnicate'");
	run_fails(3, V("run", "--detach", "--events"), "--events needs a VM to watch: not with --detach");
}

Test(run, help)
{
	struct cmd_run_opts o;
	struct vm_error err = { 0 };

	/* argc bounds what is looked at */
	cr_assert_eq(cmd_run_parse(3, V("run", "--name", "x", "--help"), &o, &err), VMCTL_PARSE_OK);
	cmd_run_opts_release(&o);
	cr_assert_eq(cmd_run_parse(4, V("run", "--name", "x", "--help"), &o, &err), VMCTL_PARSE_HELP);
	cmd_run_opts_release(&o);
}

Test(run, exit_codes)
{
	struct vmc_vm_info vm = { 0 };
	static const struct {
		enum vmc_death_reason reason;
		int code;
	} table[] = {
		{ VMC_DEATH_SHUTDOWN, 0 },
		{ VMC_DEATH_HANGUP, 129 },
		{ VMC_DEATH_CRASH, 134 },
		{ VMC_DEATH_KILLED, 137 },
		{ VMC_DEATH_START_FAILED, 125 },
		{ VMC_DEATH_INVALID_PAYLOAD_CONFIG, 126 },
		{ VMC_DEATH_PAYLOAD_ERROR, 127 },
		{ VMC_DEATH_AGENT_FAILED_TO_CONNECT, 124 },
		{ VMC_DEATH_INFRASTRUCTURE_ERROR, 123 },
		{ VMC_DEATH_REBOOT, 122 },
		{ VMC_DEATH_UNKNOWN, 255 },
		{ VMC_DEATH_NONE, 255 },
	};

	for (size_t i = 0; i < ARRAY_SIZE(table); i++) {
		vm.death_reason = table[i].reason;
		cr_assert_eq(vmc_exit_code(&vm), table[i].code, "%s", vmc_death_reason_name(table[i].reason));
	}
	/* the payload's own code wins over the death reason */
	vm.death_reason = VMC_DEATH_SHUTDOWN;
	vm.has_exit_code = true;
	vm.exit_code = 3;
	cr_assert_eq(vmc_exit_code(&vm), 3);
	vm.exit_code = 0;
	vm.death_reason = VMC_DEATH_KILLED;
	cr_assert_eq(vmc_exit_code(&vm), 0);
}

/* ---------------------------------------------------------------- other commands */

Test(stop, parse)
{
	struct cmd_stop_opts o;
	struct vm_error err = { 0 };

	cr_assert_eq(cmd_stop_parse(5, V("stop", "vm1", "--force", "--timeout", "2.5"), &o, &err), 0, "%s",
		     err.message);
	cr_assert_str_eq(o.vm, "vm1");
	cr_assert(o.force);
	cr_assert_eq(o.timeout_ms, 2500);
	cr_assert_eq(cmd_stop_parse(2, V("stop", "vm1"), &o, &err), 0);
	cr_assert_not(o.force);
	cr_assert_eq(o.timeout_ms, 0);
	cr_assert_eq(cmd_stop_parse(1, V("stop"), &o, &err), -1);
	cr_assert_str_eq(err.message, "missing VM (id or name)");
	cr_assert_eq(cmd_stop_parse(3, V("stop", "a", "b"), &o, &err), -1);
	cr_assert_str_eq(err.message, "unexpected argument 'b'");
	cr_assert_eq(cmd_stop_parse(3, V("stop", "-t", "x"), &o, &err), -1);
	cr_assert_eq(cmd_stop_parse(2, V("stop", "-h"), &o, &err), VMCTL_PARSE_HELP);
}

Test(wait, parse)
{
	struct cmd_wait_opts o;
	struct vm_error err = { 0 };

	cr_assert_eq(cmd_wait_parse(2, V("wait", "vm1"), &o, &err), 0);
	cr_assert_eq(o.state, VMC_STATE_DEAD);
	cr_assert_eq(o.timeout_ms, 0);
	cr_assert_eq(cmd_wait_parse(6, V("wait", "--state", "started", "--timeout", "5", "x"), &o, &err), 0);
	cr_assert_eq(o.state, VMC_STATE_STARTED);
	cr_assert_eq(o.timeout_ms, 5000);
	cr_assert_str_eq(o.vm, "x");
	cr_assert_eq(cmd_wait_parse(4, V("wait", "--state", "BOOTED", "x"), &o, &err), -1);
	cr_assert_str_eq(err.message,
			 "invalid --state 'BOOTED': expected one of NOT_STARTED, STARTING, STARTED, "
			 "READY, FINISHED, DEAD");
	cr_assert_eq(cmd_wait_parse(4, V("wait", "--timeout", "0", "x"), &o, &err), -1);
}

Test(logs, parse)
{
	struct cmd_logs_opts o;
	struct vm_error err = { 0 };

	cr_assert_eq(cmd_logs_parse(2, V("logs", "vm1"), &o, &err), 0);
	cr_assert_eq(o.kind, VMC_LOG_CONSOLE);
	cr_assert_not(o.follow);
	cr_assert_eq(cmd_logs_parse(5, V("logs", "-f", "--kind", "qemu", "vm1"), &o, &err), 0);
	cr_assert_eq(o.kind, VMC_LOG_QEMU);
	cr_assert(o.follow);
	cr_assert_eq(cmd_logs_parse(4, V("logs", "--kind", "GUEST", "vm1"), &o, &err), 0);
	cr_assert_eq(o.kind, VMC_LOG_GUEST);
	cr_assert_eq(cmd_logs_parse(4, V("logs", "--kind", "serial", "vm1"), &o, &err), -1);
	cr_assert_str_eq(err.message, "invalid --kind 'serial': expected console, guest or qemu");
}

Test(connect, parse)
{
	struct cmd_connect_opts o;
	struct vm_error err = { 0 };

	cr_assert_eq(cmd_connect_parse(3, V("connect", "vm1", "9100"), &o, &err), 0);
	cr_assert_str_eq(o.vm, "vm1");
	cr_assert_eq(o.port, 9100);
	cr_assert_eq(cmd_connect_parse(2, V("connect", "vm1"), &o, &err), -1);
	cr_assert_str_eq(err.message, "missing PORT");
	cr_assert_eq(cmd_connect_parse(3, V("connect", "vm1", "http"), &o, &err), -1);
	cr_assert_str_eq(err.message, "invalid PORT 'http': not a number");
	cr_assert_eq(cmd_connect_parse(4, V("connect", "vm1", "1", "2"), &o, &err), -1);
}

Test(vm, parse)
{
	struct cmd_vm_opts o;
	struct vm_error err = { 0 };

	cr_assert_eq(cmd_vm_parse(1, V("info"), false, &o, &err), 0);
	cr_assert_null(o.vm);
	cr_assert_eq(cmd_vm_parse(1, V("kill"), true, &o, &err), -1);
	cr_assert_eq(cmd_vm_parse(2, V("kill", ""), true, &o, &err), -1);
	cr_assert_str_eq(err.message, "empty VM name");
	cr_assert_eq(cmd_vm_parse(2, V("kill", "a"), true, &o, &err), 0);
	cr_assert_str_eq(o.vm, "a");
	cr_assert_eq(cmd_list_parse(2, V("list", "extra"), &err), -1);
	cr_assert_eq(cmd_list_parse(1, V("list"), &err), 0);
}

Test(balloon, parse)
{
	struct cmd_balloon_opts o;
	struct vm_error err = { 0 };

	cr_assert_eq(cmd_balloon_parse(3, V("balloon", "vm1", "128"), &o, &err), 0);
	cr_assert_str_eq(o.vm, "vm1");
	cr_assert_eq(o.mib, 128);
	cr_assert_eq(cmd_balloon_parse(3, V("balloon", "vm1", "0"), &o, &err), 0);
	cr_assert_eq(o.mib, 0);
	cr_assert_eq(cmd_balloon_parse(2, V("balloon", "vm1"), &o, &err), -1);
	cr_assert(strstr(err.message, "missing MIB"), "%s", err.message);
	cr_assert_eq(cmd_balloon_parse(3, V("balloon", "vm1", "lots"), &o, &err), -1);
	cr_assert(strstr(err.message, "MIB"), "%s", err.message);
	cr_assert_eq(cmd_balloon_parse(4, V("balloon", "vm1", "1", "2"), &o, &err), -1);
	cr_assert_eq(cmd_balloon_parse(1, V("balloon"), &o, &err), -1);
	cr_assert_eq(cmd_balloon_parse(2, V("balloon", "--help"), &o, &err), VMCTL_PARSE_HELP);
}

Test(top, parse)
{
	struct cmd_top_opts o;
	struct vm_error err = { 0 };

	cr_assert_eq(cmd_top_parse(1, V("top"), &o, &err), 0);
	cr_assert_eq(o.delay_ms, 2000);
	cr_assert_eq(o.iterations, 0);
	cr_assert_eq(cmd_top_parse(5, V("top", "-d", "0.5", "-n", "3"), &o, &err), 0);
	cr_assert_eq(o.delay_ms, 500);
	cr_assert_eq(o.iterations, 3);
	cr_assert_eq(cmd_top_parse(3, V("top", "--delay", "0.01"), &o, &err), -1);
	cr_assert(strstr(err.message, "at least 0.1 seconds"), "%s", err.message);
	cr_assert_eq(cmd_top_parse(2, V("top", "vm1"), &o, &err), -1);
	cr_assert_str_eq(err.message, "unexpected argument 'vm1'");
	cr_assert_eq(cmd_top_parse(3, V("top", "-n", "x"), &o, &err), -1);
}

/* ---------------------------------------------------------------- whole program, no daemon */

static int run_main(int argc, char **argv)
{
	int r = vmctl_main(argc, argv);

	fflush(stdout);
	fflush(stderr);
	return r;
}

Test(main, cannot_connect, .init = cr_redirect_stderr)
{
	char path[] = "/tmp/vmctl-test-nosuch-XXXXXX";
	int fd = mkstemp(path);

	cr_assert_geq(fd, 0);
	close(fd);
	unlink(path);
	cr_assert_eq(run_main(4, V("vmctl", "--socket", path, "info")), 2);
	char expected[256];

	snprintf(expected, sizeof(expected),
		 "vmctl: cannot connect to %s: No such file or directory (is virtmgrd running?)\n", path);
	cr_assert_stderr_eq_str(expected);
}

Test(main, unknown_command, .init = cr_redirect_stderr)
{
	cr_assert_eq(run_main(2, V("vmctl", "frob")), 2);
	cr_assert_stderr_eq_str("vmctl: unknown command 'frob'\nTry 'vmctl --help'.\n");
}

Test(main, no_command, .init = cr_redirect_stderr)
{
	cr_assert_eq(run_main(1, V("vmctl")), 2);
}

Test(main, bad_args_print_usage, .init = cr_redirect_stderr)
{
	cr_assert_eq(run_main(4, V("vmctl", "stop", "--force", "--nope")), 2);
	cr_assert_stderr_eq_str(
		"vmctl stop: unknown option '--nope'\n"
		"Usage: vmctl stop [--force] [--timeout SEC] VM\n"
		"Try 'vmctl help stop'.\n");
}

Test(main, help_for_every_command, .init = cr_redirect_stdout)
{
	static const char *const names[] = { "info", "version", "run",	"list",	   "stop",   "kill",
					     "wait", "console", "logs", "suspend", "resume", "connect" };

	for (size_t i = 0; i < ARRAY_SIZE(names); i++) {
		const struct vmctl_command *c = vmctl_find_command(names[i]);
		char usage[64];

		cr_assert_not_null(c, "%s", names[i]);
		snprintf(usage, sizeof(usage), "Usage: vmctl %s", names[i]);
		cr_assert_eq(strncmp(c->help, usage, strlen(usage)), 0, "%s", names[i]);
		/* --help works without a daemon and exits 0 */
		cr_assert_eq(run_main(5, V("vmctl", "--socket", "/nonexistent", (char *)names[i], "--help")), 0, "%s",
			     names[i]);
		cr_assert_eq(run_main(3, V("vmctl", "help", (char *)names[i])), 0, "%s", names[i]);
	}
	cr_assert_eq(run_main(3, V("vmctl", "help", "nope")), 2);
}

/* ---------------------------------------------------------------- bridge */

/* Peer: read to EOF, answer with the bytes upper-cased, close. */
static void upper_peer(int fd)
{
	char buf[4096], all[65536];
	size_t n = 0;
	ssize_t r;

	while ((r = read(fd, buf, sizeof(buf))) > 0) {
		for (ssize_t i = 0; i < r && n < sizeof(all); i++)
			all[n++] = (char)((buf[i] >= 'a' && buf[i] <= 'z') ? buf[i] - 32 : buf[i]);
	}
	write_all(fd, all, n);
	_exit(0);
}

static char *slurp(int fd)
{
	static char buf[65536];
	size_t n = 0;
	ssize_t r;

	while ((r = read(fd, buf + n, sizeof(buf) - 1 - n)) > 0)
		n += (size_t)r;
	buf[n] = '\0';
	return buf;
}

Test(bridge, half_close_round_trip)
{
	int sv[2], in[2], out[2], status;
	pid_t pid;

	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	cr_assert_eq(pipe2(in, O_CLOEXEC), 0);
	cr_assert_eq(pipe2(out, O_CLOEXEC), 0);
	pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		/* the pipes' ends must not stay open in the peer */
		close(sv[0]);
		close(in[0]);
		close(in[1]);
		close(out[0]);
		close(out[1]);
		upper_peer(sv[1]);
	}
	close(sv[1]);
	cr_assert_eq(write_all(in[1], "hello, vsock\n", 13), 0);
	close(in[1]);
	/* returns only after stdin EOF was passed on as a half-close and the peer answered */
	cr_assert_eq(vmctl_bridge(in[0], out[1], sv[0], -1), 0);
	close(out[1]);
	cr_assert_str_eq(slurp(out[0]), "HELLO, VSOCK\n");
	cr_assert_eq(waitpid(pid, &status, 0), pid);
	cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

Test(bridge, escape_byte_detaches)
{
	int sv[2], in[2], out[2];

	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	cr_assert_eq(pipe2(in, O_CLOEXEC), 0);
	cr_assert_eq(pipe2(out, O_CLOEXEC), 0);
	cr_assert_eq(write_all(in[1],
			       "abc\x1d"
			       "def",
			       7),
		     0);
	cr_assert_eq(vmctl_bridge(in[0], out[1], sv[0], 0x1d), 1);
	close(sv[0]);
	cr_assert_str_eq(slurp(sv[1]), "abc");
}

/* --root (client/cmd_run_root.c): a disk labelled root, or for a host directory a share tagged root */
Test(run, root)
{
	struct cmd_run_opts o;
	struct vm_error err = { 0 };

	cr_assert_eq(cmd_run_parse(5, V("run", "--root", "deb,rw,fs=ext4", "--", "python3"), &o, &err), 0, "%s",
		     err.message);
	cr_assert_str_eq(o.cfg.root, "root");
	cr_assert(o.cfg.root_writable);
	cr_assert_str_eq(o.cfg.root_fstype, "ext4");
	cr_assert_eq(o.cfg.n_disks, 0);
	cr_assert_eq(cmd_run_root_apply(&o, &err), 0, "%s", err.message);
	cr_assert_eq(o.cfg.n_disks, 1);
	cr_assert_str_eq(o.disks[0].image, "deb");
	cr_assert_str_eq(o.disks[0].label, "root");
	cr_assert_not(o.disks[0].read_only);
	cmd_run_opts_release(&o);

	cr_assert_eq(cmd_run_parse(3, V("run", "--root", "/tmp/x.img,format=qcow2"), &o, &err), 0, "%s", err.message);
	cr_assert_eq(cmd_run_root_apply(&o, &err), 0, "%s", err.message);
	cr_assert_str_eq(o.disks[0].path, "/tmp/x.img");
	cr_assert(o.disks[0].qcow2);
	cr_assert(o.disks[0].read_only);
	cr_assert_not(o.cfg.root_writable);
	cmd_run_opts_release(&o);

	cr_assert_eq(cmd_run_parse(3, V("run", "--root", "/"), &o, &err), 0, "%s", err.message);
	cr_assert_eq(cmd_run_root_apply(&o, &err), 0, "%s", err.message);
	cr_assert_eq(o.cfg.n_disks, 0);
	cr_assert_eq(o.cfg.n_shares, 1);
	cr_assert_str_eq(o.shares[0].tag, "root");
	cr_assert_str_eq(o.shares[0].guest_path, "/");
	cr_assert(o.shares[0].read_only);
	cmd_run_opts_release(&o);

	run_fails(5, V("run", "--root", "a", "--root", "b"), "invalid --root: given twice");
	run_fails(3, V("run", "--root", "a,format=vmdk"), "invalid --root format 'vmdk': expected raw or qcow2");
	run_fails(3, V("run", "--root", ",rw"), "invalid --root: empty path or image name");
}
