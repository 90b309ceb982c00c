/* cmd_console.c - `vmctl console VM`: AttachConsole hands back a socket
 * carrying the VM's console (reads: output from now on, writes: input).
 * When stdin is a terminal it is put in raw mode, so that keys reach the
 * guest unchanged, and Ctrl-] detaches (as in telnet and virsh console);
 * the terminal is restored on every way out.
 */
#include "config.h"
#include "client/vmctl.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <termios.h>

const char cmd_console_help[] =
	"Usage: vmctl console VM\n"
	"\n"
	"Attach the terminal to the console of VM (an id or a name): console output\n"
	"is printed from now on (`vmctl logs VM` shows earlier output) and input is\n"
	"sent to the guest. On a terminal, input is raw and Ctrl-] detaches.\n"
	"vmctl exits when the VM goes away or on Ctrl-].\n"
	"\n"
	"Options:\n"
	"  -h, --help   this help\n";

#define CONSOLE_ESCAPE 0x1d /* Ctrl-] */

int cmd_console_parse(int argc, char **argv, struct cmd_console_opts *o, struct vm_error *err)
{
	struct cmd_vm_opts vo;
	int r = cmd_vm_parse(argc, argv, true, &vo, err);

	o->vm = vo.vm;
	return r;
}

int cmd_console(struct vmctl_ctx *ctx, int argc, char **argv)
{
	struct vm_error perr = { 0 };
	struct vmc_error err = { 0 };
	struct cmd_console_opts o;
	struct termios saved, raw;
	struct vmc_client *cl;
	bool tty;
	int r, fd;

	r = cmd_console_parse(argc, argv, &o, &perr);
	if (r < 0)
		return vmctl_usage_error("console", &perr);
	if (r == VMCTL_PARSE_HELP) {
		fputs(cmd_console_help, stdout);
		return VMCTL_EXIT_OK;
	}
	cl = vmctl_connect(ctx);
	if (!cl)
		return VMCTL_EXIT_USAGE;
	fd = vmc_attach_console(cl, o.vm, &err);
	if (fd < 0) {
		vmc_close(cl);
		return vmctl_rpc_error(&err);
	}
	tty = isatty(STDIN_FILENO) && tcgetattr(STDIN_FILENO, &saved) == 0;
	if (tty) {
		fprintf(stderr, "Connected to the console of %s; escape character is ^]\n", o.vm);
		raw = saved;
		cfmakeraw(&raw);
		tcsetattr(STDIN_FILENO, TCSADRAIN, &raw);
	}
	r = vmctl_bridge(STDIN_FILENO, STDOUT_FILENO, fd, tty ? CONSOLE_ESCAPE : -1);
	if (tty) {
		tcsetattr(STDIN_FILENO, TCSADRAIN, &saved);
		fputs(r == 1 ? "\nDetached.\n" : "\n", stderr);
	}
	close(fd);
	vmc_close(cl);
	if (r < 0) {
		fprintf(stderr, "vmctl: console: %s\n", strerror(errno));
		return VMCTL_EXIT_RPC;
	}
	return VMCTL_EXIT_OK;
}
