/* cmd_connect.c - `vmctl connect VM PORT`: ConnectVsock hands back a
 * connected stream socket (SCM_RIGHTS); vmctl then bridges stdin/stdout to
 * it like `socat - FD`, half-closing the socket when stdin ends and exiting
 * once the guest side closes. vmctl_bridge() is shared with `vmctl console`.
 */
#include "config.h"
#include "client/vmctl.h"

#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

const char cmd_connect_help[] =
	"Usage: vmctl connect VM PORT\n"
	"\n"
	"Connect to vsock PORT of VM (an id or a name) through the daemon and copy\n"
	"stdin to the connection and the connection to stdout, like socat. End of\n"
	"stdin half-closes the connection; vmctl exits when the guest closes it.\n"
	"\n"
	"Options:\n"
	"  -h, --help   this help\n";

int cmd_connect_parse(int argc, char **argv, struct cmd_connect_opts *o, struct vm_error *err)
{
	static const struct option opts[] = {
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	o->vm = NULL;
	o->port = 0;
	optind = 0;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
		if (c == 'h')
			return VMCTL_PARSE_HELP;
		return vmctl_getopt_error(c, argv, err);
	}
	if (vmctl_take_vm_operand(argc, argv, &optind, &o->vm, err) < 0)
		return -1;
	if (optind >= argc)
		return vm_error_set(err, VM_INVALID_ARGUMENT, "missing PORT");
	if (vmctl_parse_u32(argv[optind], "PORT", &o->port, err) < 0)
		return -1;
	optind++;
	if (optind < argc)
		return vm_error_set(err, VM_INVALID_ARGUMENT, "unexpected argument '%s'", argv[optind]);
	return VMCTL_PARSE_OK;
}

/* Send what the socket takes now. Return: bytes sent (0 if it would block), or -1. */
static ssize_t send_some(int sock, const char *buf, size_t len)
{
	for (;;) {
		ssize_t n = send(sock, buf, len, MSG_NOSIGNAL | MSG_DONTWAIT);

		if (n < 0 && errno == ENOTSOCK)
			n = write(sock, buf, len);
		if (n >= 0)
			return n;
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN || errno == EWOULDBLOCK)
			return 0;
		return -1;
	}
}

/*
 * Input is read only when the previous chunk has been sent, and sending
 * never blocks: a peer that echoes everything back (and so stops reading
 * while we do not read its answers) cannot deadlock us.
 */
int vmctl_bridge(int in_fd, int out_fd, int sock, int escape)
{
	char in_buf[65536], out_buf[65536];
	size_t in_len = 0, in_off = 0;
	bool in_open = in_fd >= 0, escaped = false, shut = false;

	for (;;) {
		bool pending = in_off < in_len;
		struct pollfd p[2] = {
			{ .fd = sock, .events = POLLIN | (pending ? POLLOUT : 0) },
			{ .fd = in_open && !pending ? in_fd : -1, .events = POLLIN },
		};
		ssize_t n;

		if (!pending && !in_open && !shut) {
			if (escaped)
				return 1;
			shutdown(sock, SHUT_WR);
			shut = true;
		}
		if (poll(p, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		if (p[0].revents & (POLLIN | POLLHUP | POLLERR)) {
			n = read(sock, out_buf, sizeof(out_buf));
			if (n < 0 && errno != EINTR && errno != EAGAIN)
				return errno == ECONNRESET ? 0 : -1;
			if (n == 0)
				return escaped ? 1 : 0;
			if (n > 0 && write_all(out_fd, out_buf, (size_t)n) < 0)
				return -1;
		}
		if (pending && (p[0].revents & (POLLOUT | POLLERR))) {
			n = send_some(sock, in_buf + in_off, in_len - in_off);
			if (n < 0) {
				/* the peer stopped reading for good: no more input */
				in_len = in_off = 0;
				in_open = false;
			} else {
				in_off += (size_t)n;
			}
		}
		if (p[1].revents & (POLLIN | POLLHUP | POLLERR)) {
			n = read(in_fd, in_buf, sizeof(in_buf));
			if (n < 0 && (errno == EINTR || errno == EAGAIN))
				continue;
			if (n <= 0) {
				in_open = false;
				continue;
			}
			in_len = (size_t)n;
			in_off = 0;
			if (escape >= 0) {
				char *e = memchr(in_buf, escape, in_len);

				if (e) {
					/* send what came before the escape, then detach */
					in_len = (size_t)(e - in_buf);
					in_open = false;
					escaped = true;
				}
			}
		}
	}
}

int cmd_connect(struct vmctl_ctx *ctx, int argc, char **argv)
{
	struct vm_error perr = { 0 };
	struct vmc_error err = { 0 };
	struct cmd_connect_opts o;
	struct vmc_client *cl;
	int r, fd;

	r = cmd_connect_parse(argc, argv, &o, &perr);
	if (r < 0)
		return vmctl_usage_error("connect", &perr);
	if (r == VMCTL_PARSE_HELP) {
		fputs(cmd_connect_help, stdout);
		return VMCTL_EXIT_OK;
	}
	cl = vmctl_connect(ctx);
	if (!cl)
		return VMCTL_EXIT_USAGE;
	fd = vmc_connect_vsock(cl, o.vm, o.port, &err);
	vmc_close(cl);
	if (fd < 0)
		return vmctl_rpc_error(&err);
	r = vmctl_bridge(STDIN_FILENO, STDOUT_FILENO, fd, -1);
	close(fd);
	if (r < 0) {
		fprintf(stderr, "vmctl: connect: vm %s port %u: %s\n", o.vm, o.port, strerror(errno));
		return VMCTL_EXIT_RPC;
	}
	return VMCTL_EXIT_OK;
}
