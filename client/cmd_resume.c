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
	return vmctl_vm_command(ctx, argc, argv, "resume", cmd_resume_help, vmc_resume_vm);
}
