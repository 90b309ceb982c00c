/* test_agent_exec_args.c - `vmctl exec` argument parsing: the VM, options
 * before and after it, the command after "--", and the errors that name
 * what is wrong.
 */
#include "config.h"

#include <criterion/criterion.h>
#include <string.h>

#include "client/vmctl.h"

#define ARGV(...) ((char *[]){ __VA_ARGS__, NULL })

static int parse(char **argv, int argc, struct cmd_exec_opts *o, struct vm_error *err)
{
	memset(err, 0, sizeof(*err));
	return cmd_exec_parse(argc, argv, o, err);
}

Test(exec_args, plain)
{
	char **v = ARGV("exec", "myvm", "--", "cat", "-n");
	struct cmd_exec_opts o;
	struct vm_error err;

	cr_assert_eq(parse(v, 5, &o, &err), VMCTL_PARSE_OK, "%s", err.message);
	cr_assert_str_eq(o.vm, "myvm");
	cr_assert_eq(o.argc, 2);
	cr_assert_str_eq(o.argv[0], "cat");
	cr_assert_str_eq(o.argv[1], "-n");
	cr_assert_not(o.tty);
	cmd_exec_opts_release(&o);
}

Test(exec_args, options_after_vm)
{
	char **v = ARGV("exec", "myvm", "--tty", "-e", "A=1", "--env", "B=2", "--cwd", "/tmp", "--", "sh");
	struct cmd_exec_opts o;
	struct vm_error err;

	cr_assert_eq(parse(v, 11, &o, &err), VMCTL_PARSE_OK, "%s", err.message);
	cr_assert_str_eq(o.vm, "myvm");
	cr_assert(o.tty);
	cr_assert_eq(o.nenv, 2);
	cr_assert_str_eq(o.env[0], "A=1");
	cr_assert_str_eq(o.env[1], "B=2");
	cr_assert_str_eq(o.cwd, "/tmp");
	cr_assert_eq(o.argc, 1);
	cr_assert_str_eq(o.argv[0], "sh");
	cmd_exec_opts_release(&o);
}

Test(exec_args, agent_socket_needs_no_vm)
{
	char **v = ARGV("exec", "--agent-socket", "/run/a.sock", "--", "true");
	struct cmd_exec_opts o;
	struct vm_error err;

	cr_assert_eq(parse(v, 5, &o, &err), VMCTL_PARSE_OK, "%s", err.message);
	cr_assert_null(o.vm);
	cr_assert_str_eq(o.agent_socket, "/run/a.sock");
	cr_assert_str_eq(o.argv[0], "true");
	cmd_exec_opts_release(&o);
}

Test(exec_args, errors)
{
	struct {
		char **argv;
		int argc;
		const char *msg;
	} cases[] = {
		{ ARGV("exec"), 1, "missing VM" },
		{ ARGV("exec", "vm"), 2, "missing CMD" },
		{ ARGV("exec", "vm", "--"), 3, "missing CMD" },
		{ ARGV("exec", "vm", "-e", "NOEQ", "--", "x"), 6, "--env: 'NOEQ' is not KEY=VALUE" },
		{ ARGV("exec", "vm", "--bogus", "--", "x"), 5, "bogus" },
		{ ARGV("exec", "", "--", "x"), 4, "empty VM name" },
	};

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		struct cmd_exec_opts o;
		struct vm_error err;

		cr_assert_eq(parse(cases[i].argv, cases[i].argc, &o, &err), -1, "case %zu parsed", i);
		cr_assert(strstr(err.message, cases[i].msg), "case %zu: \"%s\" lacks \"%s\"", i, err.message,
			  cases[i].msg);
		cmd_exec_opts_release(&o);
	}
}

Test(exec_args, help)
{
	char **v = ARGV("exec", "--help");
	struct cmd_exec_opts o;
	struct vm_error err;

	cr_assert_eq(parse(v, 2, &o, &err), VMCTL_PARSE_HELP);
	cmd_exec_opts_release(&o);
	cr_assert(strstr(cmd_exec_help, "Usage: vmctl exec VM"));
}
