/* cmd_suspend.c - `vmctl suspend VM`: pause a VM (SuspendVm), then print the VM's
 * state as the daemon reports it.
 */
#include "config.h"
#include "client/vmctl.h"

#include <stdio.h>

const char cmd_suspend_help[] =
	"Usage: vmctl suspend VM\n"
	"\n"
	"Pause the vCPUs of VM (SuspendVm); `vmctl resume` continues it.\n"
	"VM is an id or a name. Prints the VM's new state (with --json: the VM as\n"
	"`vmctl info VM` does).\n"
	"\n"
	"Options:\n"
	"  -h, --help   this help\n";

int cmd_suspend(struct vmctl_ctx *ctx, int argc, char **argv)
{
	return vmctl_vm_command(ctx, argc, argv, "suspend", cmd_suspend_help, vmc_suspend_vm);
}
