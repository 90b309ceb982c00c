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
	return vmctl_vm_command(ctx, argc, argv, "kill", cmd_kill_help, vmc_kill_vm);
}
