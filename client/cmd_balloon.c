/* cmd_balloon.c - `vmctl balloon VM MIB`: SetBalloon, AVF's
 * setMemoryBalloon - ask the guest to give memory back until MIB are left.
 */
#include "config.h"
#include "client/vmctl.h"

#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>

const char cmd_balloon_help[] =
	"Usage: vmctl balloon VM MIB\n"
	"\n"
	"Set VM's balloon target: the guest's balloon driver gives memory back to\n"
	"the host until MIB MiB are left to the guest (at least 64, at most its\n"
	"memory); 0 deflates the balloon and gives the guest all its memory again.\n"
	"The guest can take pages back under memory pressure (deflate-on-oom).\n"
	"`vmctl stats VM` shows the balloon's actual size and the guest's view.\n"
	"\n"
	"Options:\n"
	"  -h, --help   this help\n";

int cmd_balloon_parse(int argc, char **argv, struct cmd_balloon_opts *o, struct vm_error *err)
{
	static const struct option opts[] = {
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	*o = (struct cmd_balloon_opts){ 0 };
	optind = 0;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "+h", opts, NULL)) != -1) {
		if (c == 'h')
			return VMCTL_PARSE_HELP;
		return vmctl_getopt_error(c, argv, err);
	}
	if (vmctl_take_vm_operand(argc, argv, &optind, &o->vm, err) < 0)
		return -1;
	if (optind >= argc)
		return vm_error_set(err, VM_INVALID_ARGUMENT, "missing MIB (the memory left to the guest, in MiB)");
	if (vmctl_parse_u32(argv[optind], "MIB", &o->mib, err) < 0)
		return -1;
	if (optind + 1 < argc)
		return vm_error_set(err, VM_INVALID_ARGUMENT, "unexpected argument '%s'", argv[optind + 1]);
	return VMCTL_PARSE_OK;
}

int cmd_balloon(struct vmctl_ctx *ctx, int argc, char **argv)
{
	struct vm_error perr = { 0 };
	struct vmc_error err = { 0 };
	struct cmd_balloon_opts o;
	struct vmc_client *cl;
	int r;

	r = cmd_balloon_parse(argc, argv, &o, &perr);
	if (r < 0)
		return vmctl_usage_error("balloon", &perr);
	if (r == VMCTL_PARSE_HELP) {
		fputs(cmd_balloon_help, stdout);
		return VMCTL_EXIT_OK;
	}
	cl = vmctl_connect(ctx);
	if (!cl)
		return VMCTL_EXIT_USAGE;
	r = vmc_set_balloon(cl, o.vm, (uint64_t)o.mib * 1024 * 1024, &err);
	vmc_close(cl);
	if (r < 0)
		return vmctl_rpc_error(&err);
	if (o.mib)
		printf("%s: balloon target %" PRIu32 " MiB\n", o.vm, o.mib);
	else
		printf("%s: balloon deflated\n", o.vm);
	return VMCTL_EXIT_OK;
}
