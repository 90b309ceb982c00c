/* cmd_wait.c - `vmctl wait VM [--state S] [--timeout S]`: WaitVm until the
 * VM reaches a state (default DEAD) or a later one. The daemon keeps the
 * timeout; not reaching the state in time is reported like an RPC failure
 * (DEADLINE_EXCEEDED, exit 1) with the state the VM is in.
 */
#include "config.h"
#include "client/vmctl.h"

#include <getopt.h>
#include <stdio.h>

const char cmd_wait_help[] =
	"Usage: vmctl wait [--state STATE] [--timeout SEC] VM\n"
	"\n"
	"Wait until VM (an id or a name) reaches STATE or a later one, then print\n"
	"its state. States in order: NOT_STARTED STARTING STARTED READY FINISHED DEAD.\n"
	"Exits 1 (DEADLINE_EXCEEDED) if the timeout runs out first.\n"
	"\n"
	"Options:\n"
	"  -s, --state STATE   state to wait for (default: DEAD; case does not matter)\n"
	"  -t, --timeout SEC   give up after SEC seconds (default: wait forever)\n"
	"  -h, --help          this help\n";

int cmd_wait_parse(int argc, char **argv, struct cmd_wait_opts *o, struct vm_error *err)
{
	static const struct option opts[] = {
		{ "state", required_argument, NULL, 's' },
		{ "timeout", required_argument, NULL, 't' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int c, st;

	o->vm = NULL;
	o->state = VMC_STATE_DEAD;
	o->timeout_ms = 0;
	optind = 0;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":s:t:h", opts, NULL)) != -1) {
		switch (c) {
		case 's':
			st = vmc_state_from_name(optarg);
			if (st < 0)
				return vm_error_set(err, VM_INVALID_ARGUMENT,
						    "invalid --state '%s': expected one of NOT_STARTED, STARTING, "
						    "STARTED, READY, FINISHED, DEAD",
						    optarg);
			o->state = (enum vmc_vm_state)st;
			break;
		case 't':
			if (vmctl_parse_seconds(optarg, "--timeout", &o->timeout_ms, err) < 0)
				return -1;
			if (o->timeout_ms > UINT32_MAX)
				return vm_error_set(err, VM_INVALID_ARGUMENT, "invalid --timeout '%s': too large",
						    optarg);
			if (o->timeout_ms == 0)
				return vm_error_set(err, VM_INVALID_ARGUMENT,
						    "invalid --timeout '%s': must be more than 0", optarg);
			break;
		case 'h':
			return VMCTL_PARSE_HELP;
		default:
			return vmctl_getopt_error(c, argv, err);
		}
	}
	return vmctl_parse_vm_operand(argc, argv, optind, &o->vm, err);
}

int cmd_wait(struct vmctl_ctx *ctx, int argc, char **argv)
{
	struct vm_error perr = { 0 };
	struct vmc_error err = { 0 };
	struct cmd_wait_opts o;
	struct vmc_vm_info vm;
	struct vmc_client *cl;
	int r;

	r = cmd_wait_parse(argc, argv, &o, &perr);
	if (r < 0)
		return vmctl_usage_error("wait", &perr);
	if (r == VMCTL_PARSE_HELP) {
		fputs(cmd_wait_help, stdout);
		return VMCTL_EXIT_OK;
	}
	cl = vmctl_connect(ctx);
	if (!cl)
		return VMCTL_EXIT_USAGE;
	r = vmc_wait_vm(cl, o.vm, o.state, (uint32_t)o.timeout_ms, &vm, &err);
	vmc_close(cl);
	if (r < 0)
		return vmctl_rpc_error(&err);
	if (r == 0) {
		err.code = VMC_STATUS_DEADLINE_EXCEEDED;
		snprintf(err.message, sizeof(err.message), "vm %s did not reach %s within %llu.%03llu s (now %s)", o.vm,
			 vmc_state_name(o.state), (unsigned long long)(o.timeout_ms / 1000),
			 (unsigned long long)(o.timeout_ms % 1000), vmc_state_name(vm.state));
		vmc_vm_info_clear(&vm);
		return vmctl_rpc_error(&err);
	}
	vmctl_print_vm_brief(ctx, &vm);
	vmc_vm_info_clear(&vm);
	return VMCTL_EXIT_OK;
}
