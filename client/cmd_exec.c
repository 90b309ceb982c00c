/* cmd_exec.c - `vmctl exec VM [--tty] [-e K=V] [--cwd D] -- CMD...` runs a
 * command in a guest through the agent (a vsh), and `vmctl shell VM`
 * (cmd_shell.c) is `exec --tty VM -- /bin/sh`.
 *
 * Design. ConnectVsock(VM, 9100) hands back a stream socket to the guest's
 * vmagent; vmctl speaks ttrpc over it with the blocking client: one Exec
 * stream (Request with remote-open), ExecInput Data frames up, ExecOutput
 * Data frames down. A single poll() loop watches the socket, stdin and a
 * self-pipe for signals. Flow control: at most EXEC_WINDOW stdin bytes are
 * in flight beyond what the agent acknowledged (ExecOutput.stdin_written);
 * stdin is not read while the window is full, so a command that does not
 * read never makes either side buffer more. Output is written to stdout /
 * stderr with blocking writes: a slow reader of vmctl's stdout stops vmctl
 * reading the socket, which stops the agent reading the command's output.
 *
 * With --tty the local terminal (if stdin is one) is put in raw mode and
 * restored on every exit path; SIGWINCH sends the new window size. Without
 * a tty, SIGINT, SIGTERM, SIGHUP and SIGQUIT are forwarded to the remote
 * process group. vmctl exits with the remote exit status (128+signal for a
 * signal); 255 when the command could not run or the connection failed,
 * as ssh does.
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

#include "lib/ttrpc.h"
#include "protos/virtmgr.pb-c.h"

#define EXEC_AGENT_PORT 9100
#define EXEC_WINDOW (1u << 20)
#define EXEC_CHUNK (64u << 10)
#define EXEC_EXIT_FAILED 255

const char cmd_exec_help[] =
	"Usage: vmctl exec VM [OPTIONS] -- CMD [ARG]...\n"
	"\n"
	"Run CMD inside VM (an id or a name) through the guest agent, with stdin,\n"
	"stdout and stderr connected to vmctl's. vmctl exits with CMD's exit status\n"
	"(128+N if a signal N killed it), or 255 if it could not be run.\n"
	"\n"
	"Options:\n"
	"  -t, --tty                 run CMD on a pseudo-terminal (stdout and stderr\n"
	"                            merged; the local terminal goes to raw mode)\n"
	"  -e, --env KEY=VALUE       add to CMD's environment (repeatable)\n"
	"  -C, --cwd DIR             working directory in the guest\n"
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
		{ "agent-socket", required_argument, NULL, 'A' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	memset(o, 0, sizeof(*o));
	o->env = xcalloc((size_t)argc + 1, sizeof(*o->env));
	optind = 0;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":te:C:h", opts, NULL)) != -1) {
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

static int send_input(struct ttrpc_client *cl, uint32_t sid, const Virtmgr__V1__ExecInput *in, bool close,
		      struct vm_error *err)
{
	cleanup_free uint8_t *buf = NULL;
	size_t len = 0;

	buf = ttrpc_pack(&in->base, &len);
	return ttrpc_client_stream_send(cl, sid, buf, len, close, err);
}

static bool window_size(Virtmgr__V1__WindowSize *ws)
{
	struct winsize w;

	if (ioctl(STDIN_FILENO, TIOCGWINSZ, &w) < 0 && ioctl(STDOUT_FILENO, TIOCGWINSZ, &w) < 0)
		return false;
	if (!w.ws_row || !w.ws_col)
		return false;
	ws->rows = w.ws_row;
	ws->cols = w.ws_col;
	return true;
}

/* Output frames until none is waiting. Return: 1 more to come, 0 stream ended, -1 error. */
static int drain_output(struct ttrpc_client *cl, uint32_t sid, uint64_t *acked, bool *exited, int *code,
			struct vm_error *err)
{
	for (;;) {
		cleanup_free uint8_t *data = NULL;
		Virtmgr__V1__ExecOutput *out;
		size_t len;
		int r = ttrpc_client_stream_recv(cl, sid, &data, &len, 0, err);

		if (r < 0 && err->code == VM_DEADLINE_EXCEEDED)
			return 1;
		if (r <= 0)
			return r;
		out = virtmgr__v1__exec_output__unpack(NULL, len, data);
		if (!out)
			return vm_error_set(err, VM_INTERNAL, "the agent sent a Data frame that is not an ExecOutput");
		if (out->stdout.len && write_all(STDOUT_FILENO, out->stdout.data, out->stdout.len) < 0 &&
		    errno != EPIPE) {
			protobuf_c_message_free_unpacked(&out->base, NULL);
			return vm_error_set_errno(err, VM_UNAVAILABLE, errno, "writing stdout");
		}
		if (out->stderr.len && write_all(STDERR_FILENO, out->stderr.data, out->stderr.len) < 0) {
			/* stderr closed: nothing to tell */
		}
		if (out->stdin_written > *acked)
			*acked = out->stdin_written;
		if (out->exited) {
			*exited = true;
			*code = out->exit_code;
		}
		protobuf_c_message_free_unpacked(&out->base, NULL);
	}
}

int vmctl_exec_fd(int fd, const struct cmd_exec_opts *o)
{
	Virtmgr__V1__ExecRequest req = VIRTMGR__V1__EXEC_REQUEST__INIT;
	Virtmgr__V1__WindowSize ws = VIRTMGR__V1__WINDOW_SIZE__INIT;
	cleanup_free char **env = xcalloc(o->nenv + 2, sizeof(*env));
	cleanup_free char *term = NULL;
	struct ttrpc_client *cl = ttrpc_client_from_fd(fd);
	struct vm_error err = { 0 };
	static const int fwd[] = { SIGINT, SIGTERM, SIGHUP, SIGQUIT };
	uint64_t sent = 0, acked = 0;
	bool stdin_open = true, exited = false;
	int code = EXEC_EXIT_FAILED, ret = EXEC_EXIT_FAILED;
	size_t nenv = 0;
	int64_t sid;

	if (o->tty && getenv("TERM")) {
		term = xasprintf("TERM=%s", getenv("TERM"));
		env[nenv++] = term;
	}
	for (size_t i = 0; i < o->nenv; i++)
		env[nenv++] = (char *)o->env[i];
	req.argv = o->argv;
	req.n_argv = (size_t)o->argc;
	req.env = env;
	req.n_env = nenv;
	req.cwd = (char *)(o->cwd ? o->cwd : "");
	req.tty = o->tty;
	if (o->tty && window_size(&ws))
		req.window = &ws;

	if (pipe2(sig_pipe, O_CLOEXEC | O_NONBLOCK) < 0) {
		ttrpc_client_free(cl);
		fprintf(stderr, "vmctl: exec: pipe: %s\n", strerror(errno));
		return EXEC_EXIT_FAILED;
	}
	signal(SIGPIPE, SIG_IGN);
	if (o->tty) {
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

	sid = ttrpc_client_stream_open(cl, "virtmgr.v1.Agent", "Exec", &req.base, TTRPC_FLAG_REMOTE_OPEN, 0, &err);
	if (sid < 0)
		goto fail;
	for (;;) {
		struct pollfd p[3];
		int r;

		r = drain_output(cl, (uint32_t)sid, &acked, &exited, &code, &err);
		if (r < 0)
			goto fail;
		if (r == 0)
			break;
		/* after drain_output(): the window depends on the acknowledgements it read */
		p[0] = (struct pollfd){ .fd = ttrpc_client_fd(cl), .events = POLLIN };
		p[1] = (struct pollfd){ .fd = sig_pipe[0], .events = POLLIN };
		p[2] = (struct pollfd){ .fd = stdin_open && sent - acked < EXEC_WINDOW ? STDIN_FILENO : -1,
					.events = POLLIN };
		if (poll(p, 3, -1) < 0) {
			if (errno == EINTR)
				continue;
			vm_error_set_errno(&err, VM_INTERNAL, errno, "poll");
			goto fail;
		}
		if (p[1].revents & POLLIN) {
			unsigned char sigs[16];
			ssize_t n = read(sig_pipe[0], sigs, sizeof(sigs));

			for (ssize_t i = 0; i < n; i++) {
				Virtmgr__V1__ExecInput in = VIRTMGR__V1__EXEC_INPUT__INIT;
				Virtmgr__V1__WindowSize nws = VIRTMGR__V1__WINDOW_SIZE__INIT;

				if (sigs[i] == SIGWINCH) {
					if (!window_size(&nws))
						continue;
					in.resize = &nws;
				} else {
					in.signal = sigs[i];
				}
				if (send_input(cl, (uint32_t)sid, &in, false, &err) < 0)
					goto fail;
			}
		}
		if (p[2].revents) {
			static uint8_t buf[EXEC_CHUNK];
			Virtmgr__V1__ExecInput in = VIRTMGR__V1__EXEC_INPUT__INIT;
			ssize_t n = read(STDIN_FILENO, buf, MIN(sizeof(buf), EXEC_WINDOW - (size_t)(sent - acked)));

			if (n < 0 && (errno == EINTR || errno == EAGAIN))
				continue;
			if (n > 0) {
				in.stdin.data = buf;
				in.stdin.len = (size_t)n;
				sent += (uint64_t)n;
			} else {
				in.stdin_eof = true;
				stdin_open = false;
			}
			if (send_input(cl, (uint32_t)sid, &in, !stdin_open, &err) < 0)
				goto fail;
		}
	}
	restore_tty();
	ttrpc_client_free(cl);
	if (!exited) {
		fprintf(stderr, "vmctl: exec: the agent ended the call without an exit status\n");
		return EXEC_EXIT_FAILED;
	}
	return code;
fail:
	restore_tty();
	ttrpc_client_free(cl);
	if (err.code == VM_UNAVAILABLE)
		fprintf(stderr, "vmctl: exec: lost the connection to the guest agent: %s\n", err.message);
	else
		fprintf(stderr, "vmctl: exec: %s: %s\n", vm_status_name(err.code), err.message);
	return ret;
}

int vmctl_exec_run(struct vmctl_ctx *ctx, const struct cmd_exec_opts *o)
{
	struct vm_error err = { 0 };
	struct vmc_client *cl;
	int fd;

	if (o->agent_socket) {
		struct ttrpc_client *tc = ttrpc_client_connect_unix(o->agent_socket, &err);

		if (!tc) {
			fprintf(stderr, "vmctl: exec: %s\n", err.message);
			return EXEC_EXIT_FAILED;
		}
		fd = dup(ttrpc_client_fd(tc));
		ttrpc_client_free(tc);
		if (fd < 0) {
			fprintf(stderr, "vmctl: exec: dup: %s\n", strerror(errno));
			return EXEC_EXIT_FAILED;
		}
		fd_set_cloexec(fd, true);
		return vmctl_exec_fd(fd, o);
	}
	cl = vmctl_connect(ctx);
	if (!cl)
		return EXEC_EXIT_FAILED;
	fd = vmc_connect_vsock(cl, o->vm, EXEC_AGENT_PORT, &err);
	vmc_close(cl);
	if (fd < 0) {
		fprintf(stderr, "vmctl: exec: cannot reach the guest agent of %s: %s: %s\n", o->vm,
			vm_status_name(err.code), err.message);
		return EXEC_EXIT_FAILED;
	}
	fd_set_nonblock(fd, false);
	return vmctl_exec_fd(fd, o);
}

int cmd_exec(struct vmctl_ctx *ctx, int argc, char **argv)
{
	struct vm_error err = { 0 };
	struct cmd_exec_opts o;
	int r;

	r = cmd_exec_parse(argc, argv, &o, &err);
	if (r < 0) {
		cmd_exec_opts_release(&o);
		return vmctl_usage_error("exec", &err);
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
