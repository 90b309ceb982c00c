/* cmd_list.c - `vmctl list`: the caller's VMs (ListVms) as a table sized to
 * its contents, or one JSON object per VM with --json.
 */
#include "config.h"
#include "client/vmctl.h"

#include <stdio.h>
#include <string.h>

const char cmd_list_help[] =
	"Usage: vmctl list\n"
	"\n"
	"List the VMs the caller may see: ID NAME CID STATE REASON EXIT ACCEL MEM CPUS PID.\n"
	"REASON is the death reason of a DEAD VM, EXIT its payload's exit code.\n"
	"With the global --json, prints one JSON object per VM (the fields of\n"
	"`vmctl info VM`), nothing for no VMs.\n"
	"\n"
	"Options:\n"
	"  -h, --help   this help\n";

int cmd_list_parse(int argc, char **argv, struct vm_error *err)
{
	struct cmd_vm_opts o;
	int r = cmd_vm_parse(argc, argv, false, &o, err);

	if (r == VMCTL_PARSE_OK && o.vm)
		return vm_error_set(err, VM_INVALID_ARGUMENT, "unexpected argument '%s'", o.vm);
	return r;
}

static int width(int w, const char *s)
{
	int n = (int)strlen(s);

	return n > w ? n : w;
}

int cmd_list(struct vmctl_ctx *ctx, int argc, char **argv)
{
	struct vm_error perr = { 0 };
	struct vmc_error err = { 0 };
	struct vmc_vm_info *vms = NULL;
	struct vmc_client *cl;
	size_t n = 0, i;
	int r, wid = 2, wname = 4;

	r = cmd_list_parse(argc, argv, &perr);
	if (r < 0)
		return vmctl_usage_error("list", &perr);
	if (r == VMCTL_PARSE_HELP) {
		fputs(cmd_list_help, stdout);
		return VMCTL_EXIT_OK;
	}
	cl = vmctl_connect(ctx);
	if (!cl)
		return VMCTL_EXIT_USAGE;
	r = vmc_list_vms(cl, &vms, &n, &err);
	vmc_close(cl);
	if (r < 0)
		return vmctl_rpc_error(&err);
	if (ctx->json) {
		for (i = 0; i < n; i++)
			vmctl_print_vm_info(ctx, &vms[i]);
		vmc_vm_info_array_free(vms, n);
		return VMCTL_EXIT_OK;
	}
	for (i = 0; i < n; i++) {
		wid = width(wid, vms[i].id);
		wname = width(wname, vms[i].name);
	}
	printf("%-*s  %-*s  %5s  %-11s  %-22s  %4s  %-5s  %6s  %4s  %-7s  %s\n", wid, "ID", wname, "NAME", "CID",
	       "STATE", "REASON", "EXIT", "ACCEL", "MEM", "CPUS", "PID", "ADDRESS");
	for (i = 0; i < n; i++) {
		const struct vmc_vm_info *v = &vms[i];
		char exit_code[16], state[32];

		if (v->has_exit_code)
			snprintf(exit_code, sizeof(exit_code), "%d", v->exit_code);
		else
			snprintf(exit_code, sizeof(exit_code), "-");
		snprintf(state, sizeof(state), "%s%s", vmc_state_name(v->state), v->suspended ? "*" : "");
		printf("%-*s  %-*s  %5u  %-11s  %-22s  %4s  %-5s  %6u  %4u  %-7d  %s\n", wid, v->id, wname, v->name,
		       v->cid, state, v->state == VMC_STATE_DEAD ? vmc_death_reason_name(v->death_reason) : "-",
		       exit_code, *v->accel ? v->accel : "-", v->memory_mib, v->cpus, v->qemu_pid,
		       v->network && *v->network->address ? v->network->address : "-");
	}
	vmc_vm_info_array_free(vms, n);
	return VMCTL_EXIT_OK;
}
