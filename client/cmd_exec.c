/* cmd_exec.c - `vmctl exec VM [--tty] [-e K=V] [--cwd D] [--user U[:G]] -- CMD...` runs a
 * command in a guest through the agent (a vsh), and `vmctl shell VM`
 * (cmd_shell.c) is `exec --tty VM -- /bin/sh`.
 *
 * Design. The session is libvirtmgr-client's (vmc_exec_start(): a
 * ConnectVsock to the agent port and one Exec stream; the protocol, the
 * stdin window and the blocking output writes are the library's). This file
 * holds what is vmctl's: the arguments, the local terminal and signals. One
 * poll() loop watches the session's socket, stdin (while the library has
 * stdin room) and a self-pipe for signals; output goes straight to fds 1
 * and 2, so a slow reader of vmctl's stdout slows the command down.
 *
 * With --tty the local terminal (if stdin is one) is put in raw mode and
 * restored on every exit path; SIGWINCH sends the new window size. Without
 * a tty, SIGINT, SIGTERM, SIGHUP and SIGQUIT are forwarded to the remote
 * process group. vmctl exits with the remote exit status (128+signal for a
 * signal); 127 when CMD does not exist in the guest, 126 when the agent
 * could not start it, 125 when vmctl, the daemon or the agent failed, as
 * `docker exec` does (docs/vmctl.md).
 */
#include "config.h"
#include "client/vmctl.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <unistd.h>

#define EXEC_CHUNK (64u << 10)

const char cmd_exec_help[] =
	"Usage: vmctl exec VM [OPTIONS] -- CMD [ARG]...\n"
	"\n"
	"Run CMD inside VM (an id or a name) through the guest agent, with stdin,\n"
	"stdout and stderr connected to vmctl's. vmctl exits with CMD's exit status\n"
	"(128+N if a signal N killed it); 127 if CMD was not found in the guest, 126\n"
	"if it could not be started, 125 if vmctl, the daemon or the agent failed.\n"
	"\n"
	"Options:\n"
	"  -t, --tty                 run CMD on a pseudo-terminal (stdout and stderr\n"
	"                            merged; the local terminal goes to raw mode)\n"
	"  -e, --env KEY=VALUE       add to CMD's environment (repeatable)\n"
	"  -C, --cwd DIR             working directory in the guest\n"
	"  -u, --user UID[:GID]      run CMD as this guest user (GID defaults to UID;\n"
	"                            default root)\n"
	"      --agent-socket PATH   talk to a vmagent serving a Unix socket\n"
	"                            (vmagent --agent-socket) instead of a VM; no VM\n"
	"  -h, --help                this help\n";

static int sig_pipe[2] = { -1, -1 };
static struct termios saved_tio;
static bool tio_saved;

static void restore_tty(void)
{
	if (tio_saved) {
		tcsetattr(STDIN_FILENO, TCSADRAIN, &saved_tio);
		tio_saved = false;
	}
}

static void on_signal(int sig)
{
	unsigned char b = (unsigned char)sig;
	int saved = errno;

	if (sig_pipe[1] >= 0 && write(sig_pipe[1], &b, 1) < 0) {
		/* a full pipe already holds a wake-up */
	}
	errno = saved;
}

int cmd_exec_parse(int argc, char **argv, struct cmd_exec_opts *o, struct vm_error *err)
{
	static const struct option opts[] = {
		{ "tty", no_argument, NULL, 't' },
		{ "env", required_argument, NULL, 'e' },
		{ "cwd", required_argument, NULL, 'C' },
		{ "user", required_argument, NULL, 'u' },
		{ "agent-socket", required_argument, NULL, 'A' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	memset(o, 0, sizeof(*o));
	o->env = xcalloc((size_t)argc + 1, sizeof(*o->env));
	optind = 0;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":te:C:u:h", opts, NULL)) != -1) {
		switch (c) {
		case 't':
			o->tty = true;
			break;
		case 'e':
			if (!strchr(optarg, '=') || optarg[0] == '=')
				return vm_error_set(err, VM_INVALID_ARGUMENT, "--env: '%s' is not KEY=VALUE", optarg);
			o->env[o->nenv++] = optarg;
			break;
		case 'C':
			o->cwd = optarg;
			break;
		case 'u':
			if (vmctl_parse_user(optarg, "--user", &o->uid, &o->gid, err) < 0)
				return -1;
			o->has_user = true;
			break;
		case 'A':
			o->agent_socket = optarg;
			break;
		case 'h':
			return VMCTL_PARSE_HELP;
		default:
			return vmctl_getopt_error(c, argv, err);
		}
	}
	if (!o->agent_socket && vmctl_take_vm_operand(argc, argv, &optind, &o->vm, err) < 0)
		return -1;
	if (optind >= argc)
		return vm_error_set(err, VM_INVALID_ARGUMENT, "missing CMD (write it after --)");
	o->argv = argv + optind;
	o->argc = argc - optind;
	if (!*o->argv[0])
		return vm_error_set(err, VM_INVALID_ARGUMENT, "empty CMD");
	return VMCTL_PARSE_OK;
}

void cmd_exec_opts_release(struct cmd_exec_opts *o)
{
	free(o->env);
	o->env = NULL;
}

static bool window_size(uint16_t *rows, uint16_t *cols)
{
	struct winsize w;

	if (ioctl(STDIN_FILENO, TIOCGWINSZ, &w) < 0 && ioctl(STDOUT_FILENO, TIOCGWINSZ, &w) < 0)
		return false;
	if (!w.ws_row || !w.ws_col)
		return false;
	*rows = w.ws_row;
	*cols = w.ws_col;
	return true;
}

int vmctl_exec_exit_code(const struct vmc_error *err)
{
	switch (err->code) {
	case VMC_STATUS_NOT_FOUND:
		return VMCTL_EXIT_NOT_FOUND;
	case VMC_STATUS_FAILED_PRECONDITION:
	case VMC_STATUS_INVALID_ARGUMENT:
	case VMC_STATUS_PERMISSION_DENIED:
		return VMCTL_EXIT_CANNOT_RUN;
	default:
		return VMCTL_EXIT_FAILED;
	}
}

/* Signals and the local terminal, from now until restore_tty(). Return: 0, or -1 (message printed). */
static int setup_terminal(bool tty)
{
	static const int fwd[] = { SIGINT, SIGTERM, SIGHUP, SIGQUIT };

	if (pipe2(sig_pipe, O_CLOEXEC | O_NONBLOCK) < 0) {
		fprintf(stderr, "vmctl: exec: pipe: %s\n", strerror(errno));
		return -1;
	}
	/* the library writes output with write(): a closed stdout must not kill vmctl */
	signal(SIGPIPE, SIG_IGN);
	if (tty) {
		signal(SIGWINCH, on_signal);
		if (isatty(STDIN_FILENO) && tcgetattr(STDIN_FILENO, &saved_tio) == 0) {
			struct termios raw = saved_tio;

			tio_saved = true;
			atexit(restore_tty);
			cfmakeraw(&raw);
			tcsetattr(STDIN_FILENO, TCSADRAIN, &raw);
		}
	} else {
		for (size_t i = 0; i < ARRAY_SIZE(fwd); i++)
			signal(fwd[i], on_signal);
	}
	return 0;
}

/* Forward the signals that arrived: SIGWINCH as a resize, the others as they are. */
static int forward_signals(struct vmc_exec *ex, struct vmc_error *err)
{
	unsigned char sigs[16];
	ssize_t n = read(sig_pipe[0], sigs, sizeof(sigs));

	for (ssize_t i = 0; i < n; i++) {
		uint16_t rows, cols;

		if (sigs[i] == SIGWINCH) {
			if (window_size(&rows, &cols) && vmc_exec_resize(ex, rows, cols, err) < 0)
				return -1;
		} else if (vmc_exec_signal(ex, sigs[i], err) < 0) {
			return -1;
		}
	}
	return 0;
}

/* Stdin, signals and output until the command ended. Return: as vmc_exec_process(). */
static int exec_loop(struct vmc_exec *ex, struct vmc_exec_status *st, struct vmc_error *err)
{
	static uint8_t buf[EXEC_CHUNK];

	for (;;) {
		/* before every poll(): frames may already be buffered, and the
		 * stdin room depends on the acknowledgements they carry */
		int r = vmc_exec_process(ex, 0, st, err);
		size_t room;
		ssize_t n;

		if (r <= 0)
			return r;
		room = vmc_exec_stdin_room(ex);
		struct pollfd p[3] = {
			{ .fd = vmc_exec_fd(ex), .events = POLLIN },
			{ .fd = sig_pipe[0], .events = POLLIN },
			{ .fd = room ? STDIN_FILENO : -1, .events = POLLIN },
		};
		if (poll(p, 3, -1) < 0) {
			if (errno == EINTR)
				continue;
			err->code = VMC_STATUS_INTERNAL;
			snprintf(err->message, sizeof(err->message), "poll: %s", strerror(errno));
			return -1;
		}
		if ((p[1].revents & POLLIN) && forward_signals(ex, err) < 0)
			return -1;
		if (!p[2].revents)
			continue;
		n = read(STDIN_FILENO, buf, MIN(sizeof(buf), room));
		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		/* a read error ends stdin like EOF does */
		if (n > 0 ? vmc_exec_write_stdin(ex, buf, (size_t)n, err) < 0 : vmc_exec_close_stdin(ex, err) < 0)
			return -1;
	}
}

/* The Unix socket of a vmagent (--agent-socket), connected. Return: an fd, or -1 (message printed). */
static int connect_agent_socket(const char *path)
{
	struct vmc_error err = { 0 };
	struct vmc_client *cl = vmc_connect(path, &err);
	int fd;

	if (!cl) {
		fprintf(stderr, "vmctl: exec: %s\n", err.message);
		return -1;
	}
	fd = fcntl(vmc_client_fd(cl), F_DUPFD_CLOEXEC, 0);
	if (fd < 0)
		fprintf(stderr, "vmctl: exec: dup: %s\n", strerror(errno));
	vmc_close(cl);
	return fd;
}

int vmctl_exec_run(struct vmctl_ctx *ctx, const struct cmd_exec_opts *o)
{
	cleanup_free const char **env = xcalloc(o->nenv + 2, sizeof(*env));
	cleanup_free char *term = NULL;
	struct vmc_error err = { 0 };
	struct vmc_exec_params p;
	struct vmc_exec_status st;
	struct vmc_exec *ex;
	size_t nenv = 0;
	int r;

	vmc_exec_params_init(&p);
	if (o->tty && getenv("TERM")) {
		term = xasprintf("TERM=%s", getenv("TERM"));
		env[nenv++] = term;
	}
	for (size_t i = 0; i < o->nenv; i++)
		env[nenv++] = o->env[i];
	p.argv = (const char *const *)o->argv;
	p.argc = (size_t)o->argc;
	p.env = env;
	p.n_env = nenv;
	p.cwd = o->cwd;
	p.has_user = o->has_user;
	p.uid = o->uid;
	p.gid = o->gid;
	p.tty = o->tty;
	if (o->tty)
		window_size(&p.rows, &p.cols);
	p.stdout_fd = STDOUT_FILENO;
	p.stderr_fd = STDERR_FILENO;

	if (o->agent_socket) {
		int fd = connect_agent_socket(o->agent_socket);

		if (fd < 0)
			return VMCTL_EXIT_FAILED;
		r = vmc_exec_start_fd(fd, &p, &ex, &err);
	} else {
		struct vmc_client *cl = vmctl_connect(ctx);

		if (!cl)
			return VMCTL_EXIT_FAILED;
		r = vmc_exec_start(cl, o->vm, &p, &ex, &err);
		vmc_close(cl);
	}
	if (r < 0) {
		fprintf(stderr, "vmctl: exec: cannot reach the guest agent of %s: %s: %s\n",
			o->agent_socket ? o->agent_socket : o->vm, vmc_status_name(err.code), err.message);
		return VMCTL_EXIT_FAILED;
	}
	if (setup_terminal(o->tty) < 0) {
		vmc_exec_free(ex);
		return VMCTL_EXIT_FAILED;
	}
	r = exec_loop(ex, &st, &err);
	restore_tty();
	vmc_exec_free(ex);
	if (r == 0)
		return st.exit_code;
	if (err.code == VMC_STATUS_UNAVAILABLE)
		fprintf(stderr, "vmctl: exec: lost the connection to the guest agent: %s\n", err.message);
	else
		fprintf(stderr, "vmctl: exec: %s: %s\n", vmc_status_name(err.code), err.message);
	return vmctl_exec_exit_code(&err);
}

int cmd_exec(struct vmctl_ctx *ctx, int argc, char **argv)
{
	struct vm_error err = { 0 };
	struct cmd_exec_opts o;
	int r;

	r = cmd_exec_parse(argc, argv, &o, &err);
	if (r < 0) {
		cmd_exec_opts_release(&o);
		vmctl_usage_error("exec", &err);
		return VMCTL_EXIT_FAILED;
	}
	if (r == VMCTL_PARSE_HELP) {
		cmd_exec_opts_release(&o);
		fputs(cmd_exec_help, stdout);
		return VMCTL_EXIT_OK;
	}
	r = vmctl_exec_run(ctx, &o);
	cmd_exec_opts_release(&o);
	return r;
}
