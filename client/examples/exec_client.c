/* exec_client.c - example: run a command in a guest with libvirtmgr-client.
 *
 *   exec_client [--socket PATH] VM CMD [ARG]...
 *
 * The shortest complete use of the library's exec: vmc_exec_simple() with
 * this program's stdin, stdout and stderr, exiting with the command's exit
 * code, or 125 when it could not be run (the error printed). vmctl exec
 * tells the agent's refusals apart (126, 127) with the event-driven form,
 * whose start fails only for the daemon's errors. It uses only
 * <virtmgr-client.h>.
 */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <virtmgr-client.h>

int main(int argc, char **argv)
{
	struct vmc_error err = { 0 };
	struct vmc_exec_params p;
	struct vmc_exec_status st;
	const char *socket_path = NULL;
	struct vmc_client *cl;
	int i = 1, r;

	if (argc > 2 && !strcmp(argv[1], "--socket")) {
		socket_path = argv[2];
		i = 3;
	}
	if (argc - i < 2) {
		fprintf(stderr, "Usage: exec_client [--socket PATH] VM CMD [ARG]...\n");
		return 125;
	}
	/* a reader of our stdout that goes away must not kill us mid-session */
	signal(SIGPIPE, SIG_IGN);
	cl = vmc_connect(socket_path, &err);
	if (!cl) {
		fprintf(stderr, "exec_client: %s\n", err.message);
		return 125;
	}
	vmc_exec_params_init(&p);
	p.argv = (const char *const *)argv + i + 1;
	p.argc = (size_t)(argc - i - 1);
	p.stdin_fd = STDIN_FILENO;
	p.stdout_fd = STDOUT_FILENO;
	p.stderr_fd = STDERR_FILENO;
	r = vmc_exec_simple(cl, argv[i], &p, &st, &err);
	vmc_close(cl);
	if (r == 0)
		return st.exit_code;
	fprintf(stderr, "exec_client: %s: %s\n", vmc_status_name(err.code), err.message);
	return 125;
}
