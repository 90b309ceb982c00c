/* cmd_stop.c - `vmctl stop VM [--force] [--timeout S]`: StopVm, which asks
 * the guest to shut down, waits up to the timeout and then kills QEMU;
 * --force skips the graceful phase.
 */
#include "config.h"
#include "client/vmctl.h"

#include <getopt.h>
#include <stdio.h>

const char cmd_stop_help[] =
	"Usage: vmctl stop [--force] [--timeout SEC] VM\n"
	"\n"
	"Stop VM (an id or a name): ask the guest to shut down, wait up to the\n"
	"timeout, then kill it. Prints the VM's final state.\n"
	"\n"
	"Options:\n"
	"  -f, --force         skip the graceful phase, kill at once\n"
	"  -t, --timeout SEC   length of the graceful phase (default: the daemon's, 10 s)\n"
	"  -h, --help          this help\n";

int cmd_stop_parse(int argc, char **argv, struct cmd_stop_opts *o, struct vm_error *err)
{
	static const struct option opts[] = {
		{ "force", no_argument, NULL, 'f' },
		{ "timeout", required_argument, NULL, 't' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	o->vm = NULL;
	o->force = false;
	o->timeout_ms = 0;
	optind = 0;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":ft:h", opts, NULL)) != -1) {
		switch (c) {
		case 'f':
			o->force = true;
			break;
		case 't':
			if (vmctl_parse_seconds(optarg, "--timeout", &o->timeout_ms, err) < 0)
				return -1;
			if (o->timeout_ms > UINT32_MAX)
				return vm_error_set(err, VM_INVALID_ARGUMENT, "invalid --timeout '%s': too large",
						    optarg);
			break;
		case 'h':
			return VMCTL_PARSE_HELP;
		default:
			return vmctl_getopt_error(c, argv, err);
		}
	}
	return vmctl_parse_vm_operand(argc, argv, optind, &o->vm, err);
}

int cmd_stop(struct vmctl_ctx *ctx, int argc, char **argv)
{
	struct vm_error perr = { 0 };
	struct vmc_error err = { 0 };
	struct cmd_stop_opts o;
	struct vmc_vm_info vm;
	struct vmc_client *cl;
	int r;

	r = cmd_stop_parse(argc, argv, &o, &perr);
	if (r < 0)
		return vmctl_usage_error("stop", &perr);
	if (r == VMCTL_PARSE_HELP) {
		fputs(cmd_stop_help, stdout);
		return VMCTL_EXIT_OK;
	}
	cl = vmctl_connect(ctx);
	if (!cl)
		return VMCTL_EXIT_USAGE;
	r = vmc_stop_vm(cl, o.vm, (uint32_t)o.timeout_ms, o.force, &vm, &err);
	vmc_close(cl);
	if (r < 0)
		return vmctl_rpc_error(&err);
	vmctl_print_vm_brief(ctx, &vm);
	vmc_vm_info_clear(&vm);
	return VMCTL_EXIT_OK;
}
