/* init.c - minimal PID 1 of the default guest image.
 *
 * The kernel runs /init from the initramfs with the command line words after
 * " -- " as argv[1..]. init mounts the pseudo file systems, loads the kernel
 * modules listed in /lib/modules/load-order (computed from modules.dep when
 * the image is built, so dependencies come first), prints the marker line
 * "VIRTMGR: STARTED" on the console and runs the payload: argv[1..] if given,
 * an interactive /bin/sh otherwise. When the payload exits it prints
 * "VIRTMGR: EXIT <code>" (exit status, or 128 + signal number), syncs and
 * powers the machine off.
 *
 * Everything after start-up happens in one poll() loop over a signalfd and
 * the evdev nodes: SIGCHLD reaps every child (PID 1 inherits orphans),
 * SIGTERM/SIGUSR2 request power-off, SIGINT (Ctrl-Alt-Del, as with busybox
 * init) requests a reboot, and KEY_POWER from the ACPI power button (QEMU's
 * system_powerdown) requests power-off. A shutdown request sends SIGTERM to
 * the payload's process group and waits up to two seconds for it.
 *
 * The program is linked statically and uses only libc: it runs before
 * anything else exists in the guest.
 */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/input.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define INIT_LOAD_ORDER "/lib/modules/load-order"
#define INIT_PATH "/bin:/sbin:/usr/bin:/usr/sbin"
#define INIT_MAX_INPUTS 16
#define INIT_GRACE_MS 2000

enum init_action {
	INIT_NONE,
	INIT_POWEROFF,
	INIT_REBOOT,
};

struct init_state {
	int console;                     /* fd on /dev/console, -1 if none */
	int sigfd;
	int inputs[INIT_MAX_INPUTS];
	int n_inputs;
	pid_t payload;                   /* 0 once reaped */
	int exit_code;                   /* valid once payload == 0 */
	enum init_action action;         /* what to do after the payload */
	long long deadline_ms;           /* grace period end, 0 if none */
};

static void init_log(struct init_state *st, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* Diagnostics go to the console (stderr before it is opened). */
static void init_log(struct init_state *st, const char *fmt, ...)
{
	char buf[512];
	va_list ap;
	int n = snprintf(buf, sizeof(buf), "virtmgr-init: ");

	va_start(ap, fmt);
	n += vsnprintf(buf + n, sizeof(buf) - (size_t)n - 1, fmt, ap);
	va_end(ap);
	if (n > (int)sizeof(buf) - 2)
		n = (int)sizeof(buf) - 2;
	buf[n++] = '\n';
	if (write(st->console >= 0 ? st->console : STDERR_FILENO, buf, (size_t)n) < 0) {
		/* nowhere left to report to */
	}
}

/* Marker lines are written with a single write() so they stay whole, and
 * start with a newline so they begin a line whatever the console showed
 * before (firmware escapes, payload output without a final newline). */
static void init_marker(struct init_state *st, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void init_marker(struct init_state *st, const char *fmt, ...)
{
	char buf[128];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (n < 0 || n >= (int)sizeof(buf))
		return;
	if (write(st->console >= 0 ? st->console : STDOUT_FILENO, buf, (size_t)n) < 0) {
		/* nowhere left to report to */
	}
}

static long long init_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void init_mount(struct init_state *st, const char *src, const char *target,
		       const char *fstype, unsigned long flags, const char *data)
{
	if (mkdir(target, 0755) < 0 && errno != EEXIST)
		init_log(st, "mkdir %s: %s", target, strerror(errno));
	if (mount(src, target, fstype, flags, data) < 0 && errno != EBUSY)
		init_log(st, "mount %s on %s: %s", fstype, target, strerror(errno));
}

static void init_mount_all(struct init_state *st)
{
	init_mount(st, "proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
	init_mount(st, "sysfs", "/sys", "sysfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
	init_mount(st, "devtmpfs", "/dev", "devtmpfs", MS_NOSUID, "mode=0755");
	init_mount(st, "devpts", "/dev/pts", "devpts", MS_NOSUID | MS_NOEXEC,
		   "gid=5,mode=0620,ptmxmode=0666");
	init_mount(st, "tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777");
	init_mount(st, "tmpfs", "/run", "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755");
}

/* The kernel may have started us without fds 0-2 (no /dev/console in the
 * archive); after devtmpfs is mounted, put the console on all three. */
static void init_open_console(struct init_state *st)
{
	int fd = open("/dev/console", O_RDWR | O_NOCTTY | O_CLOEXEC);

	if (fd < 0) {
		init_log(st, "open /dev/console: %s", strerror(errno));
		return;
	}
	for (int i = 0; i < 3; i++)
		dup2(fd, i);
	st->console = fd;
}

static void init_load_modules(struct init_state *st)
{
	FILE *f = fopen(INIT_LOAD_ORDER, "re");
	char line[512];

	if (!f) {
		if (errno != ENOENT)
			init_log(st, "open %s: %s", INIT_LOAD_ORDER, strerror(errno));
		return;
	}
	while (fgets(line, sizeof(line), f)) {
		line[strcspn(line, "\r\n")] = '\0';
		if (line[0] == '\0' || line[0] == '#')
			continue;
		int fd = open(line, O_RDONLY | O_CLOEXEC);
		if (fd < 0) {
			init_log(st, "module %s: %s", line, strerror(errno));
			continue;
		}
		if (syscall(SYS_finit_module, fd, "", 0) < 0 && errno != EEXIST)
			init_log(st, "load module %s: %s", line, strerror(errno));
		close(fd);
	}
	fclose(f);
}

static bool init_has_key_power(int fd)
{
	unsigned long bits[KEY_MAX / (8 * sizeof(unsigned long)) + 1];

	memset(bits, 0, sizeof(bits));
	if (ioctl(fd, EVIOCGBIT(EV_KEY, sizeof(bits)), bits) < 0)
		return false;
	return bits[KEY_POWER / (8 * sizeof(unsigned long))] &
	       (1UL << (KEY_POWER % (8 * sizeof(unsigned long))));
}

/* Watch every input device that can report KEY_POWER (the ACPI button). */
static void init_open_inputs(struct init_state *st)
{
	DIR *d = opendir("/dev/input");
	struct dirent *de;

	if (!d)
		return;
	while ((de = readdir(d)) && st->n_inputs < INIT_MAX_INPUTS) {
		char path[300];

		if (strncmp(de->d_name, "event", 5) != 0)
			continue;
		snprintf(path, sizeof(path), "/dev/input/%s", de->d_name);
		int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
		if (fd < 0)
			continue;
		if (init_has_key_power(fd))
			st->inputs[st->n_inputs++] = fd;
		else
			close(fd);
	}
	closedir(d);
}

static void init_request(struct init_state *st, enum init_action action, const char *why)
{
	if (st->action != INIT_NONE)
		return;
	st->action = action;
	init_log(st, "%s: %s", why, action == INIT_REBOOT ? "rebooting" : "powering off");
	if (st->payload > 0) {
		/* The payload leads its own session, so this reaches its children too. */
		if (kill(-st->payload, SIGTERM) < 0)
			kill(st->payload, SIGTERM);
		st->deadline_ms = init_now_ms() + INIT_GRACE_MS;
	}
}

static void init_reap(struct init_state *st)
{
	int status;
	pid_t pid;

	while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
		if (pid != st->payload)
			continue;
		st->payload = 0;
		if (WIFEXITED(status))
			st->exit_code = WEXITSTATUS(status);
		else if (WIFSIGNALED(status))
			st->exit_code = 128 + WTERMSIG(status);
		else
			st->exit_code = 255;
		init_marker(st, "\nVIRTMGR: EXIT %d\n", st->exit_code);
	}
}

static void init_handle_signal(struct init_state *st)
{
	struct signalfd_siginfo si;

	while (read(st->sigfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
		switch (si.ssi_signo) {
		case SIGCHLD:
			init_reap(st);
			break;
		case SIGTERM:
		case SIGUSR2:
			init_request(st, INIT_POWEROFF, si.ssi_signo == SIGTERM ? "SIGTERM" : "SIGUSR2");
			break;
		case SIGINT:
			init_request(st, INIT_REBOOT, "SIGINT");
			break;
		default:
			break;
		}
	}
}

static void init_handle_input(struct init_state *st, int fd)
{
	struct input_event ev[16];
	ssize_t n;

	while ((n = read(fd, ev, sizeof(ev))) > 0) {
		for (size_t i = 0; i < (size_t)n / sizeof(ev[0]); i++) {
			if (ev[i].type == EV_KEY && ev[i].code == KEY_POWER && ev[i].value == 1)
				init_request(st, INIT_POWEROFF, "power button");
		}
	}
}

static pid_t init_spawn(struct init_state *st, char **argv, const sigset_t *oldmask)
{
	static char *shell[] = { "/bin/sh", NULL };
	char **args = argv[0] ? argv : shell;
	pid_t pid = fork();

	if (pid < 0) {
		init_log(st, "fork: %s", strerror(errno));
		return -1;
	}
	if (pid > 0)
		return pid;

	/* child: a fresh session with the console as controlling terminal */
	sigprocmask(SIG_SETMASK, oldmask, NULL);
	setsid();
	ioctl(STDIN_FILENO, TIOCSCTTY, 1);
	setenv("PATH", INIT_PATH, 1);
	if (!getenv("HOME"))
		setenv("HOME", "/", 1);
	if (!getenv("TERM"))
		setenv("TERM", "linux", 1);
	execvp(args[0], args);
	int err = errno;
	init_log(st, "exec %s: %s", args[0], strerror(err));
	_exit(err == ENOENT ? 127 : 126);
}

static void init_finish(struct init_state *st)
{
	if (st->payload > 0)
		init_log(st, "payload %d did not exit in time", (int)st->payload);
	kill(-1, SIGKILL);
	sync();
	reboot(st->action == INIT_REBOOT ? RB_AUTOBOOT : RB_POWER_OFF);
	init_log(st, "reboot: %s", strerror(errno));
	for (;;)
		pause();
}

int main(int argc, char **argv)
{
	struct init_state st = { .console = -1, .sigfd = -1 };
	sigset_t mask, oldmask;

	(void)argc;
	umask(022);
	init_mount_all(&st);
	init_open_console(&st);
	if (getpid() != 1)
		init_log(&st, "not running as PID 1");

	sigemptyset(&mask);
	sigaddset(&mask, SIGCHLD);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGUSR2);
	sigaddset(&mask, SIGINT);
	sigprocmask(SIG_BLOCK, &mask, &oldmask);
	st.sigfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
	if (st.sigfd < 0)
		init_log(&st, "signalfd: %s", strerror(errno));
	/* Ctrl-Alt-Del becomes SIGINT to PID 1 instead of an immediate reboot. */
	reboot(RB_DISABLE_CAD);

	init_load_modules(&st);
	init_open_inputs(&st);

	init_marker(&st, "\nVIRTMGR: STARTED\n");
	st.payload = init_spawn(&st, argv + 1, &oldmask);
	if (st.payload < 0) {
		st.payload = 0;
		st.action = INIT_POWEROFF;
		init_finish(&st);
	}

	while (st.payload > 0) {
		struct pollfd pfd[INIT_MAX_INPUTS + 1];
		int n = 0, timeout = -1;

		pfd[n++] = (struct pollfd){ .fd = st.sigfd, .events = POLLIN };
		for (int i = 0; i < st.n_inputs; i++)
			pfd[n++] = (struct pollfd){ .fd = st.inputs[i], .events = POLLIN };
		if (st.deadline_ms) {
			long long left = st.deadline_ms - init_now_ms();
			if (left <= 0)
				break;
			timeout = (int)left;
		}
		if (poll(pfd, (nfds_t)n, timeout) < 0 && errno != EINTR) {
			init_log(&st, "poll: %s", strerror(errno));
			sleep(1);
			continue;
		}
		if (pfd[0].revents)
			init_handle_signal(&st);
		for (int i = 1; i < n; i++)
			if (pfd[i].revents)
				init_handle_input(&st, pfd[i].fd);
	}
	if (st.action == INIT_NONE)
		st.action = INIT_POWEROFF;
	init_finish(&st);
	return 0;
}
