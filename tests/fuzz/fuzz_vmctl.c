/* fuzz_vmctl.c - libFuzzer target: vmctl's argument parsers
 * (client/vmctl.c and client/cmd_*.c), the pure functions tested by
 * tests/unit/test_vmctl_args.c.
 *
 * Byte 0 picks the parser (global options, run, stop, wait, logs, connect,
 * console, list, or the one-VM commands with the VM required or optional);
 * the rest is split at NUL bytes into at most 64 argument strings, each a
 * fresh heap copy so that ASan sees any read or write past its end (the
 * parsers may write into argv, e.g. --disk PATH,ro). The oracle: every
 * result is OK, HELP or -1, a -1 always comes with a status code and a
 * non-empty message, and on OK the strings the options point to lie inside
 * argv. VIRTMGR_SOCKET is unset so the global parser is deterministic.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "client/vmctl.h"

#define MAX_ARGS 64

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fuzz_check(int r, const struct vm_error *err)
{
	if (r != VMCTL_PARSE_OK && r != VMCTL_PARSE_HELP && r != -1)
		abort();
	if (r == -1 && (err->code == 0 || !err->message[0]))
		abort();
}

/* @s is NULL or one of argv's strings (or points inside one). */
static void fuzz_in_argv(const char *s, int argc, char **argv)
{
	if (!s)
		return;
	for (int i = 0; i < argc; i++)
		if (s >= argv[i] && s <= argv[i] + strlen(argv[i]))
			return;
	abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *argv[MAX_ARGS + 2];
	int argc = 0;
	struct vm_error err = { 0 };
	size_t pos = 1;
	int r;

	if (size < 1)
		return 0;
	unsetenv("VIRTMGR_SOCKET");
	argv[argc++] = strdup("vmctl");
	while (pos <= size && argc < MAX_ARGS + 1) {
		const uint8_t *end = memchr(data + pos, 0, size - pos);
		size_t len = end ? (size_t)(end - (data + pos)) : size - pos;
		char *a = malloc(len + 1);

		memcpy(a, data + pos, len);
		a[len] = '\0';
		argv[argc++] = a;
		pos += len + 1;
	}
	argv[argc] = NULL;

	switch (data[0] % 10) {
	case 0: {
		struct vmctl_ctx ctx = { 0 };
		int idx = -1;

		r = vmctl_parse_global(argc, argv, &ctx, &idx, &err);
		fuzz_check(r, &err);
		if (r == VMCTL_PARSE_OK && (idx < 1 || idx > argc || !ctx.socket))
			abort();
		break;
	}
	case 1: {
		struct cmd_run_opts o;

		memset(&o, 0, sizeof(o));
		r = cmd_run_parse(argc, argv, &o, &err);
		fuzz_check(r, &err);
		if (r == VMCTL_PARSE_OK) {
			fuzz_in_argv(o.cfg.name, argc, argv);
			fuzz_in_argv(o.console_file, argc, argv);
			for (size_t i = 0; i < o.cfg.n_disks; i++)
				fuzz_in_argv(o.disks[i].path, argc, argv);
		}
		cmd_run_opts_release(&o);
		break;
	}
	case 2: {
		struct cmd_stop_opts o;

		r = cmd_stop_parse(argc, argv, &o, &err);
		fuzz_check(r, &err);
		if (r == VMCTL_PARSE_OK)
			fuzz_in_argv(o.vm, argc, argv);
		break;
	}
	case 3: {
		struct cmd_wait_opts o;

		r = cmd_wait_parse(argc, argv, &o, &err);
		fuzz_check(r, &err);
		if (r == VMCTL_PARSE_OK)
			fuzz_in_argv(o.vm, argc, argv);
		break;
	}
	case 4: {
		struct cmd_logs_opts o;

		r = cmd_logs_parse(argc, argv, &o, &err);
		fuzz_check(r, &err);
		if (r == VMCTL_PARSE_OK)
			fuzz_in_argv(o.vm, argc, argv);
		break;
	}
	case 5: {
		struct cmd_connect_opts o;

		r = cmd_connect_parse(argc, argv, &o, &err);
		fuzz_check(r, &err);
		if (r == VMCTL_PARSE_OK)
			fuzz_in_argv(o.vm, argc, argv);
		break;
	}
	case 6: {
		struct cmd_console_opts o;

		r = cmd_console_parse(argc, argv, &o, &err);
		fuzz_check(r, &err);
		if (r == VMCTL_PARSE_OK)
			fuzz_in_argv(o.vm, argc, argv);
		break;
	}
	case 7:
		r = cmd_list_parse(argc, argv, &err);
		fuzz_check(r, &err);
		break;
	default: {
		struct cmd_vm_opts o;

		r = cmd_vm_parse(argc, argv, data[0] % 10 == 8, &o, &err);
		fuzz_check(r, &err);
		if (r == VMCTL_PARSE_OK) {
			fuzz_in_argv(o.vm, argc, argv);
			if (data[0] % 10 == 8 && !o.vm)
				abort();
		}
		break;
	}
	}
	for (int i = 0; i < argc; i++)
		free(argv[i]);
	return 0;
}
