/* cmd_logs.c - `vmctl logs VM [--kind console|guest|qemu] [-f]`: OpenLog
 * hands back a read-only fd of the log file in the VM's run directory;
 * vmctl copies it to stdout. With -f it keeps reading like `tail -f`: at
 * end of file it sleeps a little and retries, and stops once the VM is
 * DEAD (or gone) and the file has no more bytes.
 */
#include "config.h"
#include "client/vmctl.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

const char cmd_logs_help[] =
	"Usage: vmctl logs [--kind console|guest|qemu] [-f] VM\n"
	"\n"
	"Print a log of VM (an id or a name): the console output (default), the\n"
	"guest's log records, or QEMU's own output.\n"
	"\n"
	"Options:\n"
	"  -k, --kind KIND   console, guest or qemu (default: console)\n"
	"  -f, --follow      keep printing new output until the VM is dead (or Ctrl-C)\n"
	"  -h, --help        this help\n";

int cmd_logs_parse(int argc, char **argv, struct cmd_logs_opts *o, struct vm_error *err)
{
	static const struct option opts[] = {
		{ "kind", required_argument, NULL, 'k' },
		{ "follow", no_argument, NULL, 'f' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int c, k;

	o->vm = NULL;
	o->kind = VMC_LOG_CONSOLE;
	o->follow = false;
	optind = 0;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":k:fh", opts, NULL)) != -1) {
		switch (c) {
		case 'k':
			k = vmc_log_kind_from_name(optarg);
			if (k < 0)
				return vm_error_set(err, VM_INVALID_ARGUMENT,
						    "invalid --kind '%s': expected console, guest or qemu", optarg);
			o->kind = (enum vmc_log_kind)k;
			break;
		case 'f':
			o->follow = true;
			break;
		case 'h':
			return VMCTL_PARSE_HELP;
		default:
			return vmctl_getopt_error(c, argv, err);
		}
	}
	return vmctl_parse_vm_operand(argc, argv, optind, &o->vm, err);
}

/* Copy what @fd has now. Return: 0 at end of file, -1 on error. */
static int copy_available(int fd)
{
	char buf[65536];

	for (;;) {
		ssize_t n = read(fd, buf, sizeof(buf));

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		if (n == 0)
			return 0;
		if (write_all(STDOUT_FILENO, buf, (size_t)n) < 0)
			return -1;
	}
}

int cmd_logs(struct vmctl_ctx *ctx, int argc, char **argv)
{
	const struct timespec pause = { .tv_sec = 0, .tv_nsec = 250 * 1000 * 1000 };
	struct vm_error perr = { 0 };
	struct vmc_error err = { 0 };
	struct cmd_logs_opts o;
	struct vmc_client *cl;
	int r, fd;

	r = cmd_logs_parse(argc, argv, &o, &perr);
	if (r < 0)
		return vmctl_usage_error("logs", &perr);
	if (r == VMCTL_PARSE_HELP) {
		fputs(cmd_logs_help, stdout);
		return VMCTL_EXIT_OK;
	}
	cl = vmctl_connect(ctx);
	if (!cl)
		return VMCTL_EXIT_USAGE;
	fd = vmc_open_log(cl, o.vm, o.kind, &err);
	if (fd < 0) {
		vmc_close(cl);
		return vmctl_rpc_error(&err);
	}
	for (;;) {
		struct vmc_vm_info vm;
		bool gone;

		if (copy_available(fd) < 0) {
			fprintf(stderr, "vmctl: logs: %s\n", strerror(errno));
			r = VMCTL_EXIT_RPC;
			break;
		}
		r = VMCTL_EXIT_OK;
		if (!o.follow)
			break;
		/* the state is asked after reading: bytes written before death are never lost */
		if (vmc_get_vm_info(cl, o.vm, &vm, &err) < 0) {
			gone = err.code == VMC_STATUS_NOT_FOUND;
			if (!gone) {
				r = vmctl_rpc_error(&err);
				break;
			}
		} else {
			gone = vm.state == VMC_STATE_DEAD;
			vmc_vm_info_clear(&vm);
		}
		if (gone) {
			if (copy_available(fd) < 0)
				r = VMCTL_EXIT_RPC;
			break;
		}
		nanosleep(&pause, NULL);
	}
	close(fd);
	vmc_close(cl);
	return r;
}
