/* main.c - vmagent: the guest agent of virtmgr; PID 1 of the default image.
 *
 * Design. Started as PID 1 (the kernel runs /init with the command line
 * words after " -- " as argv[1..]), vmagent splits in two as Microdroid's
 * init and microdroid_manager do: PID 1 keeps the init duties (pid1.c:
 * mounts, console, modules, reaping, power button and signals, power-off)
 * and forks the agent process, which continues here. The agent reads the VM
 * configuration from fw_cfg (config.c), connects to the host's
 * VirtualMachineService (host.c), serves the Agent service (exec.c),
 * forwards /dev/log and /dev/kmsg (logfwd.c), and runs the payload: the
 * configured payload-args (after mounting the configured file systems,
 * mounts.c), else its own argv (the kernel command line
 * fallback when there is no fw_cfg file), else an interactive /bin/sh on
 * the console. Should the agent be killed, PID 1 notices, tells the host on
 * the console and powers off.
 *
 * The host learns about the payload twice: through VirtualMachineService
 * and through console markers (guests without vsock, and the time before
 * the agent connects). The console is also the payload's stdout, so when
 * the configuration carries a marker key the markers are signed with it
 * (server/marker.h) and the key never reaches the payload: it is wiped in
 * every child the agent forks, the agent is not dumpable (no ptrace, no
 * /proc/<pid>/mem for other users), and PID 1 read the fw_cfg file and
 * unloaded qemu_fw_cfg before any payload ran. virtmgrd always sends a key
 * and believes nothing else; without one (no configuration, or one too
 * broken to parse, whose error goes through NotifyError) the unsigned
 * "VIRTMGR: STARTED" / "VIRTMGR: EXIT <code>" lines are printed for a
 * human reading the console. The payload may run as an unprivileged guest
 * user (payload-user), dropped to in the child before exec, and then only
 * once the agent holds its one VirtualMachineService connection. Readiness: the
 * payload gets the write end
 * of a pipe whose number is in $VIRTMGR_READY_FD and writes one byte to it
 * (`echo >&$VIRTMGR_READY_FD`); the interactive shell is ready at once.
 *
 * When the payload exits, the agent prints the EXIT marker, reports
 * NotifyPayloadFinished, waits (bounded) until the host has acknowledged
 * every report, then tells PID 1 to power off (a byte on a pipe) and exits.
 * SIGTERM / SIGUSR2 (power off) and SIGINT (reboot), which PID 1 passes on,
 * and the Agent service's Shutdown end the same way after the payload's
 * grace period. A malformed configuration is reported with
 * NotifyError(PAYLOAD_INVALID_CONFIG, "<property>: <what>") and the machine
 * powered off without running anything.
 *
 * Not PID 1 (another init runs it as a service, or --no-pid1): no split, no
 * mounts, no modules, no power button; options are parsed (as PID 1 every
 * argument belongs to the payload), and vmagent exits with the payload's
 * status instead of powering off.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <linux/vm_sockets.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <grp.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/reboot.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "guest/vmagent/net.h"
#include "guest/vmagent/agent.h"
#include "guest/vmagent/root.h"
#include "guest/vmagent/shares.h"
#include "lib/log.h"

#define AGENT_GRACE_S 2.0
#define AGENT_FINAL_S 5.0

extern char **environ;

void agent_log(struct agent *a, const char *fmt, ...)
{
	char buf[512];
	va_list ap;
	int n = snprintf(buf, sizeof(buf), "vmagent: ");

	va_start(ap, fmt);
	n += vsnprintf(buf + n, sizeof(buf) - (size_t)n - 1, fmt, ap);
	va_end(ap);
	if (n > (int)sizeof(buf) - 2)
		n = (int)sizeof(buf) - 2;
	buf[n++] = '\n';
	if (write(a->console >= 0 ? a->console : STDERR_FILENO, buf, (size_t)n) < 0) {
		/* nowhere left to report to */
	}
}

/* One write() so the line stays whole; leading newline so it starts a line. */
void agent_marker(struct agent *a, enum marker_kind kind, int code, const char *message)
{
	char buf[600], line[MARKER_LINE_MAX + 1];
	int n;

	if (a->signed_markers) {
		if (!marker_format(&a->marker_key, ++a->marker_seq, kind, code, message, line, sizeof(line)))
			return;
		n = snprintf(buf, sizeof(buf), "\n%s\n", line);
		explicit_bzero(line, sizeof(line));
	} else if (kind == MARKER_STARTED) {
		n = snprintf(buf, sizeof(buf), "\nVIRTMGR: STARTED\n");
	} else if (kind == MARKER_EXIT) {
		n = snprintf(buf, sizeof(buf), "\nVIRTMGR: EXIT %d\n", code);
	} else if (kind == MARKER_ERROR) {
		n = snprintf(buf, sizeof(buf), "\nVIRTMGR: ERROR %d %s\n", code, message);
	} else {
		return;
	}
	if (n < 0 || n >= (int)sizeof(buf))
		return;
	if (write(a->console >= 0 ? a->console : STDOUT_FILENO, buf, (size_t)n) < 0) {
		/* nowhere left to report to */
	}
}

void agent_set_marker_key(struct agent *a, struct agent_config *cfg)
{
	if (!cfg->has_marker_key)
		return;
	memcpy(a->marker_key.bytes, cfg->marker_key, sizeof(a->marker_key.bytes));
	explicit_bzero(cfg->marker_key, sizeof(cfg->marker_key));
	cfg->has_marker_key = false;
	a->signed_markers = true;
}

static uint32_t local_cid(void)
{
	cleanup_close int fd = open("/dev/vsock", O_RDONLY | O_CLOEXEC);
	unsigned int cid = 0;

	if (fd < 0 || ioctl(fd, IOCTL_VM_SOCKETS_GET_LOCAL_CID, &cid) < 0)
		return 0;
	return cid == VMADDR_CID_ANY ? 0 : cid;
}

/* ---------------------------------------------------------------- payload */

void agent_child_env(void)
{
	setenv("PATH", AGENT_PATH, 1);
	if (!getenv("HOME"))
		setenv("HOME", "/", 1);
	if (!getenv("TERM"))
		setenv("TERM", "linux", 1);
}

/* The home of @uid: its /etc/passwd entry if that directory exists. */
static bool passwd_home(uint32_t uid, char *out, size_t size)
{
	FILE *f = fopen("/etc/passwd", "re");
	char line[1024];
	bool found = false;

	while (f && !found && fgets(line, sizeof(line), f)) {
		char *field[7], *p = line;
		struct stat st;
		int n = 0;

		line[strcspn(line, "\n")] = '\0';
		/* name:password:uid:gid:gecos:home:shell */
		for (; n < 7 && p; n++) {
			field[n] = p;
			p = strchr(p, ':');
			if (p)
				*p++ = '\0';
		}
		if (n < 6 || strtoul(field[2], NULL, 10) != uid || field[5][0] != '/')
			continue;
		if (stat(field[5], &st) < 0 || !S_ISDIR(st.st_mode))
			break;
		snprintf(out, size, "%s", field[5]);
		found = true;
	}
	if (f)
		fclose(f);
	return found;
}

int agent_child_user(uint32_t uid, uint32_t gid, bool make_home)
{
	char home[PATH_MAX] = "/";

	if (uid != 0 && !passwd_home(uid, home, sizeof(home)) && make_home) {
		struct stat st;

		/* /run is PID 1's tmpfs, writable by root only: nobody else
		 * can have put something at this path */
		snprintf(home, sizeof(home), "/run/home/%u", uid);
		mkdir("/run/home", 0755);
		if (mkdir(home, 0700) == 0 && chown(home, uid, gid) < 0)
			rmdir(home);
		if (lstat(home, &st) < 0 || !S_ISDIR(st.st_mode) || st.st_uid != uid)
			snprintf(home, sizeof(home), "/");
	}
	if (setgroups(0, NULL) < 0 || setgid(gid) < 0 || setuid(uid) < 0)
		return errno;
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		return errno;
	setenv("HOME", home, 1);
	return 0;
}

pid_t agent_fork(struct agent *a)
{
	static const int handled[] = { SIGTERM, SIGINT, SIGUSR2, SIGCHLD, SIGPIPE };
	sigset_t all, saved;
	pid_t pid;
	int e;

	/* Until the child has default dispositions, a signal sent to it (the
	 * SIGTERM of a shutdown right after the payload started) would run the
	 * loop's handler in the child and be lost: hold everything back. */
	sigfillset(&all);
	sigprocmask(SIG_SETMASK, &all, &saved);
	pid = fork();
	e = errno;
	if (pid == 0) {
		sigset_t none;

		/* whatever this child becomes, it does not get the key */
		explicit_bzero(&a->marker_key, sizeof(a->marker_key));
		a->signed_markers = false;
		for (size_t i = 0; i < sizeof(handled) / sizeof(handled[0]); i++)
			signal(handled[i], SIG_DFL);
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		return 0;
	}
	sigprocmask(SIG_SETMASK, &saved, NULL);
	errno = e;
	return pid;
}

static void finish(struct agent *a);

static void payload_ready(struct agent *a)
{
	agent_marker(a, MARKER_READY, 0, NULL);
	agent_host_ready(a->host);
}

static void ready_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct agent *a = w->data;
	char c;
	ssize_t n = read(w->fd, &c, 1);

	(void)revents;
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	ev_io_stop(loop, w);
	close(steal_fd(&a->ready_fd));
	if (n == 1)
		payload_ready(a);
}

static void spawn_payload(struct agent *a)
{
	static char *shell[] = { "/bin/sh", NULL };
	char **argv = a->payload_argv && a->payload_argv[0] ? a->payload_argv : shell;
	int rp[2] = { -1, -1 };
	pid_t pid;

	if (argv == shell || pipe2(rp, O_CLOEXEC | O_NONBLOCK) < 0)
		rp[0] = rp[1] = -1;
	agent_marker(a, MARKER_STARTED, 0, NULL);
	agent_host_started(a->host);
	{
		/* REM[0]: the executable, found as execvp() will in the child */
		const char *path = AGENT_PATH;

		for (char **e = a->payload_env; e && *e; e++)
			if (!strncmp(*e, "PATH=", 5))
				path = *e + 5;
		agent_attest_payload(a, argv[0], path);
	}
	if (argv == shell)
		payload_ready(a);
	pid = agent_fork(a);
	if (pid < 0) {
		agent_log(a, "fork: %s", strerror(errno));
		agent_host_error(a->host, VIRTMGR__V1__ERROR_CODE__ERROR_CODE_PAYLOAD_START_FAILED, "fork failed");
		a->exit_code = 255;
		a->payload_done = true;
		agent_host_finished(a->host, 255, 0);
		agent_request(a, a->machine ? AGENT_ACTION_POWEROFF : AGENT_ACTION_EXIT, "payload could not start");
		return;
	}
	if (pid == 0) {
		char num[16];

		setsid();
		if (a->machine)
			ioctl(STDIN_FILENO, TIOCSCTTY, 1);
		agent_child_env();
		for (char **e = a->payload_env; e && *e; e++)
			putenv(*e);
		if (rp[1] >= 0) {
			/* fd 3, so that every shell can write to it (dash takes one
			 * digit after >&); whatever the agent had there is CLOEXEC */
			int fd = rp[1] == 3 ? fcntl(3, F_SETFD, 0) == 0 ? 3 : -1 : dup2(rp[1], 3);

			if (fd >= 0) {
				fcntl(fd, F_SETFL, 0);
				snprintf(num, sizeof(num), "%d", fd);
				setenv("VIRTMGR_READY_FD", num, 1);
			}
		}
		if (agent_root_dir(a)) {
			/* the payload's root (root.c) */
			int e = agent_root_enter(a);

			if (e) {
				dprintf(STDERR_FILENO, "vmagent: cannot enter the root %s: %s\n", agent_root_dir(a),
					strerror(e));
				_exit(126);
			}
		}
		if (a->has_payload_user) {
			int e = agent_child_user(a->payload_uid, a->payload_gid, a->machine);

			if (e) {
				dprintf(STDERR_FILENO, "vmagent: cannot run the payload as %u:%u: %s\n", a->payload_uid,
					a->payload_gid, strerror(e));
				_exit(126);
			}
			/* somewhere it may write, unless told otherwise */
			if (!a->payload_cwd && chdir(getenv("HOME")) < 0)
				dprintf(STDERR_FILENO, "vmagent: chdir %s: %s\n", getenv("HOME"), strerror(errno));
		}
		if (a->payload_cwd && chdir(a->payload_cwd) < 0) {
			dprintf(STDERR_FILENO, "vmagent: chdir %s: %s\n", a->payload_cwd, strerror(errno));
			_exit(126);
		}
		execvp(argv[0], argv);
		dprintf(STDERR_FILENO, "vmagent: exec %s: %s\n", argv[0], strerror(errno));
		_exit(errno == ENOENT ? 127 : 126);
	}
	a->payload = pid;
	if (rp[1] >= 0)
		close(rp[1]);
	if (rp[0] >= 0) {
		a->ready_fd = rp[0];
		ev_io_init(&a->ready_io, ready_cb, rp[0], EV_READ);
		a->ready_io.data = a;
		ev_io_start(a->loop, &a->ready_io);
	}
}

static void payload_exited(struct agent *a, int status)
{
	a->payload = 0;
	a->payload_done = true;
	if (WIFEXITED(status)) {
		a->exit_code = WEXITSTATUS(status);
	} else {
		a->exit_signal = WTERMSIG(status);
		a->exit_code = 128 + a->exit_signal;
	}
	if (a->ready_fd >= 0) {
		char c;

		/* the payload may have signalled readiness just before exiting */
		ev_io_stop(a->loop, &a->ready_io);
		if (read(a->ready_fd, &c, 1) == 1)
			payload_ready(a);
		close(steal_fd(&a->ready_fd));
	}
	agent_marker(a, MARKER_EXIT, a->exit_code, NULL);
	agent_host_finished(a->host, a->exit_code, a->exit_signal);
	if (a->action == AGENT_ACTION_NONE)
		agent_request(a, a->machine ? AGENT_ACTION_POWEROFF : AGENT_ACTION_EXIT, "payload exited");
	else
		finish(a);
}

static void child_cb(struct ev_loop *loop, ev_child *w, int revents)
{
	struct agent *a = w->data;

	(void)loop;
	(void)revents;
	if (!WIFEXITED(w->rstatus) && !WIFSIGNALED(w->rstatus))
		return;
	if (a->payload > 0 && w->rpid == a->payload)
		payload_exited(a, w->rstatus);
	else
		agent_exec_reaped(a, w->rpid, w->rstatus);
}

/* ---------------------------------------------------------------- shutdown */

static void act(struct agent *a)
{
	/* what the guest wrote to a share is on the host before power-off */
	if (a->machine && a->have_cfg)
		agent_shares_unmount(a, &a->cfg);
	if (a->machine)
		agent_mounts_release(a); /* what the guest wrote is on its disks */
	if (a->machine)
		agent_root_release(a); /* after what was mounted inside it */
	if (a->machine && a->init_fd >= 0) {
		/* PID 1 powers off (or reboots) once we are gone */
		char c = a->action == AGENT_ACTION_REBOOT ? 'R' : 'P';

		if (write(a->init_fd, &c, 1) < 0)
			agent_log(a, "telling PID 1 to %s: %s", c == 'R' ? "reboot" : "power off", strerror(errno));
		exit(a->exit_code);
	}
	if (a->action == AGENT_ACTION_EXIT || !a->machine) {
		if (a->action == AGENT_ACTION_POWEROFF || a->action == AGENT_ACTION_REBOOT) {
			/* a service under another init asks that init */
			const char *cmd = a->action == AGENT_ACTION_REBOOT ? "reboot" : "poweroff";
			pid_t pid = fork();

			if (pid == 0) {
				agent_child_env();
				execlp(cmd, cmd, (char *)NULL);
				_exit(127);
			}
		}
		exit(a->exit_code);
	}
	kill(-1, SIGKILL);
	sync();
	reboot(a->action == AGENT_ACTION_REBOOT ? RB_AUTOBOOT : RB_POWER_OFF);
	agent_log(a, "reboot: %s", strerror(errno));
	for (;;)
		pause();
}

static void final_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct agent *a = w->data;

	(void)loop;
	(void)revents;
	agent_log(a, "the host did not acknowledge every report in time");
	act(a);
}

static void host_idle_cb(struct agent *a)
{
	act(a);
}

/* The payload is gone (or given up on): wait for the last reports, then act. */
static void finish(struct agent *a)
{
	if (ev_is_active(&a->grace_timer))
		ev_timer_stop(a->loop, &a->grace_timer);
	if (ev_is_active(&a->final_timer))
		return;
	ev_timer_init(&a->final_timer, final_cb, AGENT_FINAL_S, 0);
	a->final_timer.data = a;
	ev_timer_start(a->loop, &a->final_timer);
	agent_host_on_idle(a->host, host_idle_cb);
}

static void grace_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct agent *a = w->data;

	(void)loop;
	(void)revents;
	if (a->payload > 0) {
		agent_log(a, "payload %d did not exit in time", (int)a->payload);
		kill(-a->payload, SIGKILL);
		agent_host_finished(a->host, 128 + SIGKILL, SIGKILL);
	}
	finish(a);
}

void agent_request(struct agent *a, enum agent_action action, const char *why)
{
	if (a->action != AGENT_ACTION_NONE)
		return;
	a->action = action;
	if (action != AGENT_ACTION_EXIT || a->machine)
		agent_log(a, "%s: %s", why,
			  action == AGENT_ACTION_REBOOT ? "rebooting"
			  : action == AGENT_ACTION_EXIT ? "exiting"
							: "powering off");
	agent_exec_kill_all(a, SIGTERM);
	if (a->payload > 0) {
		/* the payload leads its own session: this reaches its children too */
		if (kill(-a->payload, SIGTERM) < 0)
			kill(a->payload, SIGTERM);
		ev_timer_init(&a->grace_timer, grace_cb, AGENT_GRACE_S, 0);
		a->grace_timer.data = a;
		ev_timer_start(a->loop, &a->grace_timer);
		return;
	}
	finish(a);
}

static void signal_cb(struct ev_loop *loop, ev_signal *w, int revents)
{
	struct agent *a = w->data;

	(void)loop;
	(void)revents;
	if (w->signum == SIGINT)
		agent_request(a, a->machine ? AGENT_ACTION_REBOOT : AGENT_ACTION_EXIT, "SIGINT");
	else
		agent_request(a, a->machine ? AGENT_ACTION_POWEROFF : AGENT_ACTION_EXIT,
			      w->signum == SIGTERM ? "SIGTERM" : "SIGUSR2");
}

/* ---------------------------------------------------------------- start-up */

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: vmagent [OPTIONS] [-- PAYLOAD...]\n"
		"The virtmgr guest agent. As PID 1 every argument is the payload.\n\n"
		"  --no-pid1              run as a service under another init\n"
		"  --config FILE          configuration device tree (default: fw_cfg %s)\n"
		"  --host-socket PATH     reach VirtualMachineService on this Unix socket instead of vsock CID 2\n"
		"  --agent-socket PATH    serve Agent on this Unix socket instead of vsock\n"
		"  --connect-timeout S    give up reaching the host after S seconds (default 30)\n"
		"  --log-level LEVEL      error, warn, info or debug\n",
		AGENT_CONFIG_FW_CFG_PATH);
}

static void config_failed(struct agent *a, const char *message)
{
	agent_log(a, "invalid configuration: %s", message);
	agent_marker(a, MARKER_ERROR, VIRTMGR__V1__ERROR_CODE__ERROR_CODE_PAYLOAD_INVALID_CONFIG, message);
	agent_host_error(a->host, VIRTMGR__V1__ERROR_CODE__ERROR_CODE_PAYLOAD_INVALID_CONFIG, message);
	a->exit_code = 1;
	agent_request(a, a->machine ? AGENT_ACTION_POWEROFF : AGENT_ACTION_EXIT, "invalid configuration");
}

int main(int argc, char **argv)
{
	static struct agent agent = { .console = -1, .ready_fd = -1, .init_fd = -1, .connect_timeout_s = 30 };
	struct agent *a = &agent;
	const char *config_path = AGENT_CONFIG_FW_CFG_PATH;
	cleanup_free void *blob = NULL;
	struct vm_error err = { 0 };
	bool no_pid1 = false;
	size_t blob_len = 0;
	char **payload = argv + 1;
	sigset_t none;
	struct timespec now;
	int r;

	/* the kernel runs us as the core dump collector (crash.c) */
	if (argc > 1 && !strcmp(argv[1], "--collect-core") && getpid() != 1)
		return agent_crash_collect(argc - 1, argv + 1);
	/* Not ptrace-able and no /proc/<pid>/mem for anyone but root with
	 * CAP_SYS_PTRACE: the agent's memory holds the marker key. Children
	 * that exec become dumpable again, as they should. */
	prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
	clock_gettime(CLOCK_MONOTONIC, &now);
	a->started_at = (double)now.tv_sec + (double)now.tv_nsec / 1e9;
	if (getpid() == 1) {
		/* returns in the agent process; PID 1 itself stays in there */
		log_init("vmagent", LOG_LVL_INFO);
		agent_pid1_start(a);
	} else {
		static const struct option opts[] = {
			{ "no-pid1", no_argument, NULL, 'n' },
			{ "config", required_argument, NULL, 'c' },
			{ "host-socket", required_argument, NULL, 'H' },
			{ "agent-socket", required_argument, NULL, 'A' },
			{ "connect-timeout", required_argument, NULL, 't' },
			{ "log-level", required_argument, NULL, 'l' },
			{ "help", no_argument, NULL, 'h' },
			{ 0 },
		};
		int c;

		log_init("vmagent", LOG_LVL_INFO);
		while ((c = getopt_long(argc, argv, "+h", opts, NULL)) != -1) {
			switch (c) {
			case 'n':
				no_pid1 = true;
				break;
			case 'c':
				config_path = optarg;
				break;
			case 'H':
				a->host_socket = optarg;
				break;
			case 'A':
				a->agent_socket = optarg;
				break;
			case 't':
				a->connect_timeout_s = strtod(optarg, NULL);
				if (a->connect_timeout_s <= 0) {
					fprintf(stderr, "vmagent: --connect-timeout: '%s' is not a positive number\n",
						optarg);
					return 2;
				}
				break;
			case 'l':
				log_set_level(!strcmp(optarg, "debug")	 ? LOG_LVL_DEBUG
					      : !strcmp(optarg, "warn")	 ? LOG_LVL_WARN
					      : !strcmp(optarg, "error") ? LOG_LVL_ERROR
									 : LOG_LVL_INFO);
				break;
			case 'h':
				usage(stdout);
				return 0;
			default:
				usage(stderr);
				return 2;
			}
		}
		payload = argv + optind;
	}
	(void)no_pid1;
	signal(SIGPIPE, SIG_IGN);
	a->loop = ev_default_loop(EVFLAG_AUTO);
	ev_signal_init(&a->sig_term, signal_cb, SIGTERM);
	ev_signal_init(&a->sig_usr2, signal_cb, SIGUSR2);
	ev_signal_init(&a->sig_int, signal_cb, SIGINT);
	a->sig_term.data = a->sig_usr2.data = a->sig_int.data = a;
	ev_signal_start(a->loop, &a->sig_term);
	ev_signal_start(a->loop, &a->sig_usr2);
	ev_signal_start(a->loop, &a->sig_int);
	ev_child_init(&a->child, child_cb, 0, 0);
	a->child.data = a;
	ev_child_start(a->loop, &a->child);
	/* PID 1 held these signals back until the watchers above existed */
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);

	if (a->boot_config_done) {
		/* PID 1 read it before the fw_cfg file went away */
		r = a->boot_config_r;
		blob = steal_pointer(&a->boot_config);
		blob_len = a->boot_config_len;
		err = a->boot_config_err;
	} else {
		r = agent_config_read(config_path, &blob, &blob_len, &err);
	}
	if (r > 0) {
		r = agent_config_parse(blob, blob_len, &a->cfg, &err);
		explicit_bzero(blob, blob_len);
		a->have_cfg = r == 0;
		if (a->have_cfg)
			agent_set_marker_key(a, &a->cfg);
		if (a->have_cfg && a->cfg.debug)
			log_set_level(LOG_LVL_DEBUG); /* VmConfig.debug */
	}
	a->cid = a->have_cfg ? a->cfg.cid : local_cid();
	a->host = agent_host_new(a);
	if (r < 0) {
		config_failed(a, err.message);
		ev_run(a->loop, 0);
		return 1;
	}
	/* the payload's root first: mounts and shares go inside it */
	if (a->machine && a->have_cfg && agent_root_setup(a, &err) < 0) {
		config_failed(a, err.message);
		ev_run(a->loop, 0);
		return 1;
	}
	/* the network is up before the payload starts (net.c); a root shows
	 * the resolver configuration the agent wrote */
	if (a->machine && a->have_cfg &&
	    (agent_net_setup(a, &a->cfg, &err) < 0 ||
	     (a->cfg.network && agent_root_bind_file(a, "/etc/resolv.conf", &err) < 0))) {
		config_failed(a, err.message);
		ev_run(a->loop, 0);
		return 1;
	}
	/* host folders are there before the payload starts */
	if (a->machine && a->have_cfg && agent_shares_mount(a, &a->cfg, &err) < 0) {
		config_failed(a, err.message);
		ev_run(a->loop, 0);
		return 1;
	}
	/* the payload's file systems, before the payload or any session runs */
	if (a->machine && a->have_cfg && agent_mounts_setup(a, &err) < 0) {
		config_failed(a, err.message);
		ev_run(a->loop, 0);
		return 1;
	}
	if (agent_service_start(a, a->have_cfg ? a->cfg.agent_port : AGENT_DEFAULT_PORT, &err) < 0)
		agent_log(a, "Agent service unavailable: %s", err.message);
	a->logfwd = agent_logfwd_start(a, a->machine, a->machine);

	if (a->machine && agent_crash_setup(a->have_cfg ? a->cfg.crash_core_limit : 0) < 0)
		agent_log(a, "crash reports unavailable: core_pattern: %s", strerror(errno));
	if (a->have_cfg && a->cfg.payload_args) {
		a->payload_argv = a->cfg.payload_args;
		a->payload_env = a->cfg.payload_env;
		a->payload_cwd = a->cfg.payload_cwd;
	} else {
		a->payload_argv = payload;
	}
	if (a->have_cfg && a->cfg.has_payload_user) {
		/* the payload of the tree, or the command line's: the same user */
		a->has_payload_user = true;
		a->payload_uid = a->cfg.payload_uid;
		a->payload_gid = a->cfg.payload_gid;
	}
	if (a->machine)
		agent_attest_start(a); /* before the payload: it may ask for a token at once */
	if (a->machine || (a->payload_argv && a->payload_argv[0])) {
		/* VirtualMachineService takes one agent connection per boot: an
		 * unprivileged payload starts only once the agent holds it (or
		 * runs without it), so it cannot connect first and speak for it */
		if (a->has_payload_user)
			agent_host_on_settled(a->host, spawn_payload);
		else
			spawn_payload(a);
	} else {
		/* a service with nothing to run: ready at once, serve until told to stop */
		agent_host_started(a->host);
		agent_host_ready(a->host);
	}
	ev_run(a->loop, 0);
	return a->exit_code;
}
