/* cmd_kill.c - `vmctl kill VM`: kill a VM at once (KillVm), then print the VM's
 * state as the daemon reports it.
 */
#include "config.h"
#include "client/vmctl.h"

#include <stdio.h>

const char cmd_kill_help[] =
	"Usage: vmctl kill VM\n"
	"\n"
	"Kill VM now (no graceful shutdown): the VM ends DEAD with reason KILLED.\n"
	"VM is an id or a name. Prints the VM's new state (with --json: the VM as\n"
	"`vmctl info VM` does).\n"
	"\n"
	"Options:\n"
	"  -h, --help   this help\n";

int cmd_kill(struct vmctl_ctx *ctx, int argc, char **argv)
{
	struct vm_error err = { 0 };
	struct cmd_vm_opts o;
	struct vmc_vm_info vm;
	struct vmc_client *cl;
	int r;

	r = cmd_vm_parse(argc, argv, true, &o, &err);
	if (r < 0)
		return vmctl_usage_error("kill", &err);
	if (r == VMCTL_PARSE_HELP) {
		fputs(cmd_kill_help, stdout);
		return VMCTL_EXIT_OK;
	}
	cl = vmctl_connect(ctx);
	if (!cl)
		return VMCTL_EXIT_USAGE;
	r = vmc_kill_vm(cl, o.vm, &vm, &err);
	vmc_close(cl);
	if (r < 0)
		return vmctl_rpc_error(&err);
	vmctl_print_vm_brief(ctx, &vm);
	vmc_vm_info_clear(&vm);
	return VMCTL_EXIT_OK;
}
