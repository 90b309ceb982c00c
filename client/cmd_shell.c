/* cmd_shell.c - `vmctl shell VM`: an interactive /bin/sh in the guest, i.e.
 * `vmctl exec --tty VM -- /bin/sh` (cmd_exec.c): the local terminal goes to
 * raw mode, window size changes follow, and vmctl exits with the shell's
 * status, or with exec's 125..127 when it could not run (usage errors
 * included).
 */
#include "config.h"
#include "client/vmctl.h"

#include <getopt.h>
#include <stdio.h>
#include <string.h>

const char cmd_shell_help[] =
	"Usage: vmctl shell VM\n"
	"\n"
	"Open an interactive shell (/bin/sh on a pseudo-terminal) inside VM (an id\n"
	"or a name) through the guest agent. Exit the shell to leave.\n"
	"\n"
	"Options:\n"
	"  -h, --help   this help\n";

int cmd_shell(struct vmctl_ctx *ctx, int argc, char **argv)
{
	static char *shell[] = { "/bin/sh", NULL };
	static const struct option opts[] = {
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct cmd_exec_opts o = { 0 };
	struct vm_error err = { 0 };
	int c;

	optind = 0;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
		if (c == 'h') {
			fputs(cmd_shell_help, stdout);
			return VMCTL_EXIT_OK;
		}
		vmctl_getopt_error(c, argv, &err);
		vmctl_usage_error("shell", &err);
		return VMCTL_EXIT_FAILED;
	}
	if (optind >= argc || !*argv[optind]) {
		vm_error_set(&err, VM_INVALID_ARGUMENT, "missing VM (id or name)");
		vmctl_usage_error("shell", &err);
		return VMCTL_EXIT_FAILED;
	}
	if (optind + 1 < argc) {
		vm_error_set(&err, VM_INVALID_ARGUMENT, "unexpected argument '%s'", argv[optind + 1]);
		vmctl_usage_error("shell", &err);
		return VMCTL_EXIT_FAILED;
	}
	o.vm = argv[optind];
	o.tty = true;
	o.argv = shell;
	o.argc = 1;
	return vmctl_exec_run(ctx, &o);
}
