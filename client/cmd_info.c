/* cmd_info.c - `vmctl info [VM]`: without a VM, the daemon (GetDaemonInfo:
 * version, mode, hypervisor and why, vsock mode, CID range, features,
 * counts, who VMs' processes run as); with one, every field of that VM (GetVmInfo).
 */
#include "config.h"
#include "client/vmctl.h"

#include <stdio.h>

#include "client/json.h"

const char cmd_info_help[] =
	"Usage: vmctl info [VM]\n"
	"\n"
	"Without VM: show the daemon - version, mode (regular or early), hypervisor\n"
	"(kvm or tcg) and why it was chosen, vsock mode, CID range, features and\n"
	"the number of VMs and connections, and who VMs' processes run as (a uid\n"
	"of their own from the daemon's --vm-uid-range, or the daemon's user).\n"
	"With VM (an id or a name): show every field of that VM.\n"
	"\n"
	"Options:\n"
	"  -h, --help   this help\n"
	"With the global --json, prints one JSON object.\n";

/* The attestation Service VM (docs/attestation.md). */
static void hex64(char out[129], const uint8_t id[64])
{
	for (int i = 0; i < 64; i++)
		snprintf(out + 2 * i, 3, "%02x", id[i]);
}

static void print_service_vm_json(struct json_obj *o, const struct vmc_daemon_info *di)
{
	char id[129] = "";

	if (di->has_service_vm_instance_id)
		hex64(id, di->service_vm_instance_id);
	json_bool(o, "service_vm_running", di->service_vm_running);
	json_uint(o, "service_vm_cid", di->service_vm_cid);
	json_str(o, "service_vm", di->service_vm ? di->service_vm : "");
	json_str(o, "service_vm_instance_id", id);
}

static void print_service_vm(const struct vmc_daemon_info *di)
{
	char id[129] = "-";

	if (di->has_service_vm_instance_id)
		hex64(id, di->service_vm_instance_id);
	if (di->service_vm_running)
		printf("service VM:  running, vm %s, cid %u\n", di->service_vm, di->service_vm_cid);
	else
		printf("service VM:  not running\n");
	printf("service VM instance id: %s\n", id);
}

static void print_daemon_info(const struct vmctl_ctx *ctx, const struct vmc_daemon_info *di)
{
	if (ctx->json) {
		struct json_obj o;

		json_begin(&o, stdout);
		json_str(&o, "version", di->version);
		json_str(&o, "mode", di->mode);
		json_str(&o, "hypervisor", di->hypervisor);
		json_str(&o, "hypervisor_reason", di->hypervisor_reason);
		json_str(&o, "vsock_mode", di->vsock_mode);
		json_uint(&o, "cid_min", di->cid_min);
		json_uint(&o, "cid_max", di->cid_max);
		json_str_array(&o, "features", (const char *const *)di->features, di->n_features);
		json_int(&o, "pid", di->pid);
		json_str(&o, "run_dir", di->run_dir);
		json_uint(&o, "vm_count", di->vm_count);
		json_uint(&o, "connection_count", di->connection_count);
		json_bool(&o, "vm_sandbox", di->vm_sandbox);
		json_str(&o, "vm_uid_range", di->vm_uid_range);
		json_str(&o, "vm_sandbox_reason", di->vm_sandbox_reason);
		print_service_vm_json(&o, di);
		json_end(&o);
		return;
	}
	printf("version:     %s\n", di->version);
	printf("mode:        %s\n", di->mode);
	if (*di->hypervisor_reason)
		printf("hypervisor:  %s (%s)\n", di->hypervisor, di->hypervisor_reason);
	else
		printf("hypervisor:  %s\n", di->hypervisor);
	printf("vsock mode:  %s\n", di->vsock_mode);
	printf("CID range:   %u..%u\n", di->cid_min, di->cid_max);
	printf("features:   ");
	if (!di->n_features)
		printf(" -");
	for (size_t i = 0; i < di->n_features; i++)
		printf(" %s", di->features[i]);
	printf("\n");
	printf("pid:         %d\n", di->pid);
	printf("run dir:     %s\n", di->run_dir);
	printf("VMs:         %u\n", di->vm_count);
	printf("connections: %u\n", di->connection_count);
	if (di->vm_sandbox_reason && *di->vm_sandbox_reason)
		printf("VMs run as:  %s\n", di->vm_sandbox_reason);
	print_service_vm(di);
}

int cmd_info(struct vmctl_ctx *ctx, int argc, char **argv)
{
	struct vm_error perr = { 0 };
	struct vmc_error err = { 0 };
	struct cmd_vm_opts o;
	struct vmc_client *cl;
	int r, ret = VMCTL_EXIT_OK;

	r = cmd_vm_parse(argc, argv, false, &o, &perr);
	if (r < 0)
		return vmctl_usage_error("info", &perr);
	if (r == VMCTL_PARSE_HELP) {
		fputs(cmd_info_help, stdout);
		return VMCTL_EXIT_OK;
	}
	cl = vmctl_connect(ctx);
	if (!cl)
		return VMCTL_EXIT_USAGE;
	if (o.vm) {
		struct vmc_vm_info vm;

		if (vmc_get_vm_info(cl, o.vm, &vm, &err) < 0) {
			ret = vmctl_rpc_error(&err);
		} else {
			vmctl_print_vm_info(ctx, &vm);
			vmc_vm_info_clear(&vm);
		}
	} else {
		struct vmc_daemon_info di;

		if (vmc_get_daemon_info(cl, &di, &err) < 0) {
			ret = vmctl_rpc_error(&err);
		} else {
			print_daemon_info(ctx, &di);
			vmc_daemon_info_clear(&di);
		}
	}
	vmc_close(cl);
	return ret;
}
