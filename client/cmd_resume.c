/* cmd_resume.c - `vmctl resume VM`: resume a suspended VM (ResumeVm), then print the VM's
 * state as the daemon reports it.
 */
#include "config.h"
#include "client/vmctl.h"

#include <stdio.h>

const char cmd_resume_help[] =
	"Usage: vmctl resume VM\n"
	"\n"
	"Continue a VM paused by `vmctl suspend` (ResumeVm).\n"
	"VM is an id or a name. Prints the VM's new state (with --json: the VM as\n"
	"`vmctl info VM` does).\n"
	"\n"
	"Options:\n"
	"  -h, --help   this help\n";

int cmd_resume(struct vmctl_ctx *ctx, int argc, char **argv)
{
	struct vm_error err = { 0 };
	struct cmd_vm_opts o;
	struct vmc_vm_info vm;
	struct vmc_client *cl;
	int r;

	r = cmd_vm_parse(argc, argv, true, &o, &err);
	if (r < 0)
		return vmctl_usage_error("resume", &err);
	if (r == VMCTL_PARSE_HELP) {
		fputs(cmd_resume_help, stdout);
		return VMCTL_EXIT_OK;
	}
	cl = vmctl_connect(ctx);
	if (!cl)
		return VMCTL_EXIT_USAGE;
	r = vmc_resume_vm(cl, o.vm, &vm, &err);
	vmc_close(cl);
	if (r < 0)
		return vmctl_rpc_error(&err);
	vmctl_print_vm_brief(ctx, &vm);
	vmc_vm_info_clear(&vm);
	return VMCTL_EXIT_OK;
}
