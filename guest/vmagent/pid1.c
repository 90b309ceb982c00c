/* pid1.c - vmagent's PID 1: the init duties, and the agent as its child.
 *
 * Design (Microdroid's split of init and microdroid_manager). PID 1 mounts
 * the pseudo file systems, puts /dev/console on fds 0-2, loads the modules in
 * /lib/modules/load-order and then forks the agent process, which returns
 * from agent_pid1_start() and does everything else (configuration, host
 * reports, the Agent service, log forwarding, the payload: main.c). PID 1
 * keeps only what must stay alive whatever happens to the agent: it reaps
 * every orphan, watches the ACPI power button and SIGTERM / SIGUSR2 (power
 * off) and SIGINT (Ctrl-Alt-Del: reboot), and powers the machine off.
 *
 * The agent may be killed from inside the guest, which the kernel never
 * allows for PID 1; this is why it is a child. Shutdown requests that reach
 * PID 1 are passed on to the agent as SIGTERM (power off) or SIGINT
 * (reboot), so that the payload still gets its grace period and the host
 * its last reports. When the agent is done it writes the action it wants
 * ('P' power off, 'R' reboot) to a pipe and exits; PID 1 then kills what is
 * left and powers off or reboots. An agent that ends any other way (killed
 * by a signal, exited without saying what it wants) died: PID 1 prints
 * "VIRTMGR: ERROR 0 the guest agent process (pid N) died: ..." on the
 * console, which virtmgrd turns into an ERROR event and the death reason
 * PAYLOAD_ERROR, and powers the machine off at once. An agent that does not
 * finish a requested shutdown within PID1_STOP_S is killed and the request
 * carried out.
 *
 * The configuration (fw_cfg) is read here, before the fork, and the
 * qemu_fw_cfg module unloaded right after: the agent gets the blob through
 * fork(), and the marker key in it is not left in /sys for a payload to
 * read. PID 1 keeps the key too, to sign its own "agent died" marker with
 * sequence numbers from MARKER_SEQ_PID1 up (the agent counts from 1).
 */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/input.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "guest/modload.h"
#include "guest/vmagent/agent.h"

#define PID1_LOAD_ORDER "/lib/modules/load-order"
#define PID1_FW_CFG_MODULE "qemu_fw_cfg"
#define PID1_MAX_INPUTS 16
/* the agent's own deadlines (2 s payload grace, 5 s for the last reports) and slack */
#define PID1_STOP_S 10.0

struct pid1 {
	struct agent *a; /* for the console only: the agent runs elsewhere */
	struct ev_loop *loop;
	pid_t agent;		     /* the agent process, 0 once reaped */
	int ctl_fd;		     /* read end of the agent's "what to do" pipe */
	enum agent_action requested; /* by a signal or the power button */
	enum agent_action declared;  /* by the agent, through the pipe */
	bool forced;		     /* the agent was killed after PID1_STOP_S */
	ev_io ctl_io;
	ev_timer stop_timer;
	ev_signal sig_term, sig_usr2, sig_int;
	ev_child child;
	ev_io input_io[PID1_MAX_INPUTS];
	int n_inputs;
};

static struct pid1 pid1 = { .ctl_fd = -1 };

/* ---------------------------------------------------------------- set-up */

static void do_mount(struct agent *a, const char *src, const char *target, const char *fstype, unsigned long flags,
		     const char *data)
{
	if (mkdir(target, 0755) < 0 && errno != EEXIST)
		agent_log(a, "mkdir %s: %s", target, strerror(errno));
	if (mount(src, target, fstype, flags, data) < 0 && errno != EBUSY)
		agent_log(a, "mount %s on %s: %s", fstype, target, strerror(errno));
}

static void mount_all(struct agent *a)
{
	do_mount(a, "proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
	do_mount(a, "sysfs", "/sys", "sysfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
	do_mount(a, "devtmpfs", "/dev", "devtmpfs", MS_NOSUID, "mode=0755");
	do_mount(a, "devpts", "/dev/pts", "devpts", MS_NOSUID | MS_NOEXEC, "gid=5,mode=0620,ptmxmode=0666");
	do_mount(a, "tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777");
	do_mount(a, "tmpfs", "/run", "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755");
}

/* The kernel may start us without fds 0-2; put the console on all three. */
static void open_console(struct agent *a)
{
	int fd = open("/dev/console", O_RDWR | O_NOCTTY | O_CLOEXEC);

	if (fd < 0) {
		agent_log(a, "open /dev/console: %s", strerror(errno));
		return;
	}
	for (int i = 0; i < 3; i++)
		dup2(fd, i);
	a->console = fd;
}

static void module_failed(void *opaque, const char *module, int err)
{
	agent_log(opaque, "load module %s: %s", module, strerror(err));
}

static void load_modules(struct agent *a)
{
	int r = modload_list(PID1_LOAD_ORDER, module_failed, a);

	if (r < 0 && r != -ENOENT)
		agent_log(a, "open %s: %s", PID1_LOAD_ORDER, strerror(-r));
}

/* ---------------------------------------------------------------- the end */

static const char *action_name(enum agent_action action)
{
	return action == AGENT_ACTION_REBOOT ? "reboot" : "power off";
}

static __attribute__((noreturn)) void power(struct pid1 *p, enum agent_action action)
{
	kill(-1, SIGKILL);
	sync();
	reboot(action == AGENT_ACTION_REBOOT ? RB_AUTOBOOT : RB_POWER_OFF);
	agent_log(p->a, "reboot: %s", strerror(errno));
	for (;;)
		pause();
}

/* Non-blocking: the byte may be there before or after SIGCHLD is handled. */
static void read_ctl(struct pid1 *p)
{
	char c;
	ssize_t n;

	if (p->ctl_fd < 0)
		return;
	while ((n = read(p->ctl_fd, &c, 1)) == 1) {
		if (c == 'P')
			p->declared = AGENT_ACTION_POWEROFF;
		else if (c == 'R')
			p->declared = AGENT_ACTION_REBOOT;
	}
	if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
		ev_io_stop(p->loop, &p->ctl_io);
		close(steal_fd(&p->ctl_fd));
	}
}

static void ctl_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	(void)loop;
	(void)revents;
	read_ctl(w->data);
}

static void agent_gone(struct pid1 *p, int status)
{
	const char *sig = WIFSIGNALED(status) ? sigabbrev_np(WTERMSIG(status)) : NULL;
	char how[64], msg[128];

	p->agent = 0;
	if (ev_is_active(&p->stop_timer))
		ev_timer_stop(p->loop, &p->stop_timer);
	read_ctl(p);
	if (p->declared != AGENT_ACTION_NONE)
		power(p, p->declared);
	if (WIFSIGNALED(status))
		snprintf(how, sizeof(how), "killed by SIG%s", sig ? sig : "?");
	else
		snprintf(how, sizeof(how), "exited with status %d", WEXITSTATUS(status));
	if (p->requested != AGENT_ACTION_NONE) {
		/* a shutdown was asked for anyway: carry it out */
		agent_log(p->a, "the agent %s (%s) before finishing the shutdown; %s now",
			  p->forced ? "was stopped" : "ended", how, action_name(p->requested));
		power(p, p->requested);
	}
	agent_log(p->a, "the agent process died (%s): powering off", how);
	snprintf(msg, sizeof(msg), "the guest agent process died (%s)", how);
	agent_marker(p->a, MARKER_ERROR, VIRTMGR__V1__ERROR_CODE__ERROR_CODE_UNKNOWN, msg);
	power(p, AGENT_ACTION_POWEROFF);
}

static void child_cb(struct ev_loop *loop, ev_child *w, int revents)
{
	struct pid1 *p = w->data;

	(void)loop;
	(void)revents;
	/* anything else is an orphan: reaping it was all there was to do */
	if (p->agent > 0 && w->rpid == p->agent && (WIFEXITED(w->rstatus) || WIFSIGNALED(w->rstatus)))
		agent_gone(p, w->rstatus);
}

static void stop_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct pid1 *p = w->data;

	(void)loop;
	(void)revents;
	if (p->agent <= 0)
		return;
	agent_log(p->a, "the agent did not finish the shutdown within %.0f s; killing it", PID1_STOP_S);
	p->forced = true;
	kill(p->agent, SIGKILL);
}

static void request(struct pid1 *p, enum agent_action action, const char *why)
{
	if (p->requested != AGENT_ACTION_NONE)
		return;
	p->requested = action;
	if (p->agent <= 0)
		power(p, action);
	agent_log(p->a, "%s: asking the agent to %s", why, action_name(action));
	kill(p->agent, action == AGENT_ACTION_REBOOT ? SIGINT : SIGTERM);
	ev_timer_init(&p->stop_timer, stop_timer_cb, PID1_STOP_S, 0);
	p->stop_timer.data = p;
	ev_timer_start(p->loop, &p->stop_timer);
}

static void signal_cb(struct ev_loop *loop, ev_signal *w, int revents)
{
	struct pid1 *p = w->data;

	(void)loop;
	(void)revents;
	if (w->signum == SIGINT)
		request(p, AGENT_ACTION_REBOOT, "SIGINT");
	else
		request(p, AGENT_ACTION_POWEROFF, w->signum == SIGTERM ? "SIGTERM" : "SIGUSR2");
}

/* ---------------------------------------------------------------- power button */

static bool has_key_power(int fd)
{
	unsigned long bits[KEY_MAX / (8 * sizeof(unsigned long)) + 1];

	memset(bits, 0, sizeof(bits));
	if (ioctl(fd, EVIOCGBIT(EV_KEY, sizeof(bits)), bits) < 0)
		return false;
	return bits[KEY_POWER / (8 * sizeof(unsigned long))] & (1UL << (KEY_POWER % (8 * sizeof(unsigned long))));
}

static void input_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct pid1 *p = w->data;
	struct input_event ev[16];
	ssize_t n;

	(void)loop;
	(void)revents;
	while ((n = read(w->fd, ev, sizeof(ev))) > 0)
		for (size_t i = 0; i < (size_t)n / sizeof(ev[0]); i++)
			if (ev[i].type == EV_KEY && ev[i].code == KEY_POWER && ev[i].value == 1)
				request(p, AGENT_ACTION_POWEROFF, "power button");
}

/* Watch every input device that reports KEY_POWER (the ACPI button). */
static void open_inputs(struct pid1 *p)
{
	DIR *d = opendir("/dev/input");
	struct dirent *de;

	if (!d)
		return;
	while ((de = readdir(d)) && p->n_inputs < PID1_MAX_INPUTS) {
		char path[300];
		int fd;

		if (strncmp(de->d_name, "event", 5) != 0)
			continue;
		snprintf(path, sizeof(path), "/dev/input/%s", de->d_name);
		fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
		if (fd < 0)
			continue;
		if (!has_key_power(fd)) {
			close(fd);
			continue;
		}
		ev_io_init(&p->input_io[p->n_inputs], input_cb, fd, EV_READ);
		p->input_io[p->n_inputs].data = p;
		ev_io_start(p->loop, &p->input_io[p->n_inputs]);
		p->n_inputs++;
	}
	closedir(d);
}

/* ---------------------------------------------------------------- start */

/* Read the configuration once, take the marker key, and make the fw_cfg
 * file go away so that nothing started later can read it back. */
static void read_config(struct agent *a)
{
	struct agent_config cfg;
	struct vm_error err = { 0 };

	a->boot_config_done = true;
	a->boot_config_r = agent_config_read(AGENT_CONFIG_FW_CFG_PATH, &a->boot_config, &a->boot_config_len,
					     &a->boot_config_err);
	if (a->boot_config_r <= 0)
		return;
	if (agent_config_parse(a->boot_config, a->boot_config_len, &cfg, &err) == 0) {
		agent_set_marker_key(a, &cfg);
		agent_config_clear(&cfg);
	}
	/* ENOENT: built into a custom kernel; a root payload could read it
	 * anyway (docs/guest.md, "Trust model") */
	if (syscall(SYS_delete_module, PID1_FW_CFG_MODULE, O_NONBLOCK) < 0 && errno != ENOENT)
		agent_log(a, "unloading %s: %s", PID1_FW_CFG_MODULE, strerror(errno));
}

void agent_pid1_start(struct agent *a)
{
	struct pid1 *p = &pid1;
	sigset_t mask, none;
	int ctl[2];
	pid_t pid;

	umask(022);
	mount_all(a);
	open_console(a);
	/* Ctrl-Alt-Del becomes SIGINT to PID 1 instead of an immediate reboot */
	reboot(RB_DISABLE_CAD);
	load_modules(a);
	agent_memory_setup(a);
	read_config(a);
	/* Held until each process's loop watches them: a SIGTERM that PID 1
	 * passes on must not kill an agent that has no handler yet. */
	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGUSR2);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGCHLD);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	if (pipe2(ctl, O_CLOEXEC) < 0) {
		agent_log(a, "pipe: %s; running the agent as PID 1", strerror(errno));
		a->machine = true;
		return;
	}
	pid = fork();
	if (pid < 0) {
		agent_log(a, "fork: %s; running the agent as PID 1", strerror(errno));
		close(ctl[0]);
		close(ctl[1]);
		a->machine = true;
		return;
	}
	if (pid == 0) {
		close(ctl[0]);
		a->machine = true;
		a->init_fd = ctl[1];
		return;
	}
	close(ctl[1]);
	/* the agent has its copy of the blob; PID 1 keeps only the key */
	if (a->boot_config) {
		explicit_bzero(a->boot_config, a->boot_config_len);
		free(steal_pointer(&a->boot_config));
	}
	a->marker_seq = MARKER_SEQ_PID1 - 1;
	p->a = a;
	p->agent = pid;
	p->ctl_fd = ctl[0];
	fd_set_nonblock(p->ctl_fd, true);
	p->loop = ev_default_loop(EVFLAG_AUTO);
	ev_io_init(&p->ctl_io, ctl_cb, p->ctl_fd, EV_READ);
	p->ctl_io.data = p;
	ev_io_start(p->loop, &p->ctl_io);
	ev_signal_init(&p->sig_term, signal_cb, SIGTERM);
	ev_signal_init(&p->sig_usr2, signal_cb, SIGUSR2);
	ev_signal_init(&p->sig_int, signal_cb, SIGINT);
	p->sig_term.data = p->sig_usr2.data = p->sig_int.data = p;
	ev_signal_start(p->loop, &p->sig_term);
	ev_signal_start(p->loop, &p->sig_usr2);
	ev_signal_start(p->loop, &p->sig_int);
	ev_child_init(&p->child, child_cb, 0, 0);
	p->child.data = p;
	ev_child_start(p->loop, &p->child);
	open_inputs(p);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	ev_run(p->loop, 0);
	/* the loop always has watchers: not reached */
	power(p, AGENT_ACTION_POWEROFF);
}
