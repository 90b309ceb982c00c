/* cmd_version.c - `vmctl version`: vmctl's own version, then the daemon's
 * (GetDaemonInfo). vmctl's version is printed even when the daemon cannot
 * be reached, which then still exits 2.
 */
#include "config.h"
#include "client/vmctl.h"

#include <stdio.h>

#include "client/json.h"

const char cmd_version_help[] =
	"Usage: vmctl version\n"
	"\n"
	"Print vmctl's version and the version of the daemon it talks to.\n"
	"\n"
	"Options:\n"
	"  -h, --help   this help\n";

int cmd_version(struct vmctl_ctx *ctx, int argc, char **argv)
{
	struct vm_error perr = { 0 };
	struct vmc_error err = { 0 };
	struct vmc_daemon_info di;
	struct cmd_vm_opts o;
	struct vmc_client *cl;
	int r;

	r = cmd_vm_parse(argc, argv, false, &o, &perr);
	if (r == 0 && o.vm)
		r = vm_error_set(&perr, VM_INVALID_ARGUMENT, "unexpected argument '%s'", o.vm);
	if (r < 0)
		return vmctl_usage_error("version", &perr);
	if (r == VMCTL_PARSE_HELP) {
		fputs(cmd_version_help, stdout);
		return VMCTL_EXIT_OK;
	}
	if (!ctx->json)
		printf("vmctl %s\n", PACKAGE_VERSION);
	fflush(stdout);
	cl = vmctl_connect(ctx);
	if (!cl)
		return VMCTL_EXIT_USAGE;
	r = vmc_get_daemon_info(cl, &di, &err);
	vmc_close(cl);
	if (r < 0)
		return vmctl_rpc_error(&err);
	if (ctx->json) {
		struct json_obj jo;

		json_begin(&jo, stdout);
		json_str(&jo, "vmctl", PACKAGE_VERSION);
		json_str(&jo, "virtmgrd", di.version);
		json_end(&jo);
	} else {
		printf("virtmgrd %s\n", di.version);
	}
	vmc_daemon_info_clear(&di);
	return VMCTL_EXIT_OK;
}
