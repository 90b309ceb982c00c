/* early_client.c - example early-boot client: run one declared early VM.
 *
 * An early-boot service (AVF's early_virtmgr clients) runs a VM that a
 * partition declares in <partition>/etc/avf/early_vms*.xml, with the static
 * CID given there. The daemon lets only the declared executable create it,
 * so this program is meant to be installed (copied) at the declared path,
 * e.g. /system/bin/vm_demo_early; by default the VM's name is the basename
 * of its own executable, so one binary serves several declarations.
 *
 * It either connects to a running `virtmgrd --early` (--socket) or, like
 * AVF's vmclient, forks a private one on a socketpair (--spawn VIRTMGRD,
 * see vmc_spawn_early()): then no socket path on a file system that may not
 * be mounted yet is needed, and the daemon lives exactly as long as this
 * client. Either way the VM belongs to this connection, so it is stopped
 * if the client dies.
 *
 * --info prints what GetDaemonInfo says and exits.
 *
 * Flow: GetDaemonInfo (refuse a daemon not in early mode: the static CID
 * is the point), CreateVm with the payload, StartVm, then WaitVm(DEAD) in
 * one-second slices so that SIGTERM/SIGINT can stop the VM gracefully
 * (StopVm) before exiting 128+signal. The exit status is the payload's exit
 * code, or, for a VM that died without one, the same per-death-reason codes
 * as `vmctl run` (docs/early-vms.md).
 *
 * Output: one line on stdout once the VM exists,
 *   early_client: vm <id> "<name>" cid <cid> run_dir <dir>
 * and one when it is dead,
 *   early_client: vm "<name>" DEAD (<reason>), exit code <n>
 * Errors go to stderr as "early_client: <call>: <STATUS>: <message>".
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <libgen.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/util.h"
#include "client/virtmgr-client.h"

#define PROG "early_client"
#define EXIT_RPC 1
#define EXIT_USAGE 2
#define WAIT_SLICE_MS 1000

static volatile sig_atomic_t got_signal;

static void on_signal(int sig)
{
	got_signal = sig;
}

static void usage(FILE *f)
{
	fprintf(f, "Usage: " PROG
		   " [OPTIONS] [-- CMD [ARGS...]]\n"
		   "Create the early VM declared for this executable, run CMD as its payload,\n"
		   "and exit with the payload's exit code.\n\n"
		   "  -s, --socket PATH        connect to a running virtmgrd --early on PATH\n"
		   "                           (default $" VMC_SOCKET_ENV
		   ")\n"
		   "      --spawn VIRTMGRD     fork a private `VIRTMGRD --early` for this client\n"
		   "  -D, --daemon-arg ARG     pass ARG to the spawned daemon (repeatable),\n"
		   "                           e.g. -D --root -D /mnt/root\n"
		   "  -n, --name NAME          VM name (default: basename of this executable)\n"
		   "  -m, --mem MIB            memory in MiB (default: the daemon's)\n"
		   "  -e, --env KEY=VALUE      payload environment (repeatable)\n"
		   "      --console FILE       append the VM's console to FILE\n"
		   "      --boot-timeout SEC   the VM must be STARTED within SEC seconds\n"
		   "      --stop-timeout SEC   graceful stop on SIGTERM/SIGINT (default 10)\n"
		   "      --info               print the daemon's mode, CID range and run\n"
		   "                           directory (GetDaemonInfo) and exit\n"
		   "  -h, --help               this help\n\n"
		   "Exit status: the payload's exit code; else by death reason: SHUTDOWN 0,\n"
		   "HANGUP 129, CRASH 134, KILLED 137, START_FAILED 125, others 122..127 or\n"
		   "255 (as vmctl run); 128+signal after SIGTERM/SIGINT; 1 when a call to the\n"
		   "daemon failed; 2 for usage errors.\n");
}

static int rpc_error(const char *call, const struct vmc_error *err)
{
	fprintf(stderr, PROG ": %s: %s: %s\n", call, vmc_status_name(err->code), err->message);
	return EXIT_RPC;
}

static int parse_seconds(const char *opt, const char *s, uint32_t *ms)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || end == s || *end || s[0] == '-' || v == 0 || v > 86400) {
		fprintf(stderr, PROG ": %s: \"%s\" is not a number of seconds in 1..86400\n", opt, s);
		return -1;
	}
	*ms = (uint32_t)v * 1000;
	return 0;
}

/* The name this program was installed under: /system/bin/vm_demo_early -> vm_demo_early. */
static char *own_name(const char *argv0)
{
	char exe[4096];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	cleanup_free char *copy = NULL;

	if (n > 0) {
		exe[n] = '\0';
		copy = xstrdup(exe);
	} else {
		copy = xstrdup(argv0);
	}
	return xstrdup(basename(copy));
}

/* Wait until @id is DEAD; on SIGTERM/SIGINT stop it first. */
static int wait_dead(struct vmc_client *cl, const char *id, uint32_t stop_timeout_ms, struct vmc_vm_info *info,
		     int *sig, struct vmc_error *err)
{
	bool stopping = false;

	for (;;) {
		int r;

		if (got_signal && !stopping) {
			*sig = got_signal;
			fprintf(stderr, PROG ": signal %d: stopping vm %s\n", *sig, id);
			stopping = true;
			if (vmc_stop_vm(cl, id, stop_timeout_ms, false, NULL, err) < 0) {
				rpc_error("StopVm", err);
				return -1;
			}
		}
		r = vmc_wait_vm(cl, id, VMC_STATE_DEAD, WAIT_SLICE_MS, info, err);
		if (r < 0) {
			rpc_error("WaitVm", err);
			return -1;
		}
		if (r == 1 && info->state == VMC_STATE_DEAD)
			return 0;
		vmc_vm_info_clear(info);
	}
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "socket", required_argument, NULL, 's' },
		{ "spawn", required_argument, NULL, 'S' },
		{ "daemon-arg", required_argument, NULL, 'D' },
		{ "name", required_argument, NULL, 'n' },
		{ "mem", required_argument, NULL, 'm' },
		{ "env", required_argument, NULL, 'e' },
		{ "console", required_argument, NULL, 'C' },
		{ "boot-timeout", required_argument, NULL, 'B' },
		{ "stop-timeout", required_argument, NULL, 'T' },
		{ "info", no_argument, NULL, 'I' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *socket_path = NULL, *spawn = NULL, *console = NULL;
	cleanup_free char *name = NULL, *id = NULL;
	cleanup_free const char **daemon_args = xcalloc((size_t)argc + 1, sizeof(char *));
	cleanup_free const char **env = xcalloc((size_t)argc + 1, sizeof(char *));
	size_t n_daemon_args = 0, n_env = 0;
	uint32_t stop_timeout_ms = 10000;
	struct vmc_vm_config cfg;
	struct vmc_daemon_info di = { 0 };
	struct vmc_vm_info info = { 0 };
	struct vmc_error err = { 0 };
	struct vmc_client *cl;
	struct sigaction sa = { .sa_handler = on_signal };
	cleanup_close int console_fd = -1;
	bool info_only = false;
	int c, sig = 0, rc;

	vmc_vm_config_init(&cfg);
	while ((c = getopt_long(argc, argv, "+s:D:n:m:e:h", opts, NULL)) != -1) {
		switch (c) {
		case 's':
			socket_path = optarg;
			break;
		case 'S':
			spawn = optarg;
			break;
		case 'D':
			daemon_args[n_daemon_args++] = optarg;
			break;
		case 'n':
			free(name);
			name = xstrdup(optarg);
			break;
		case 'm': {
			char *end;
			unsigned long v;

			errno = 0;
			v = strtoul(optarg, &end, 10);
			if (errno || end == optarg || *end || optarg[0] == '-' || v == 0 || v > UINT32_MAX) {
				fprintf(stderr, PROG ": --mem: \"%s\" is not a size in MiB\n", optarg);
				return EXIT_USAGE;
			}
			cfg.memory_mib = (uint32_t)v;
			break;
		}
		case 'e':
			if (!strchr(optarg, '=') || optarg[0] == '=') {
				fprintf(stderr, PROG ": --env: \"%s\" is not KEY=VALUE\n", optarg);
				return EXIT_USAGE;
			}
			env[n_env++] = optarg;
			break;
		case 'C':
			console = optarg;
			break;
		case 'B':
			if (parse_seconds("--boot-timeout", optarg, &cfg.boot_timeout_ms) < 0)
				return EXIT_USAGE;
			break;
		case 'T':
			if (parse_seconds("--stop-timeout", optarg, &stop_timeout_ms) < 0)
				return EXIT_USAGE;
			break;
		case 'I':
			info_only = true;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return EXIT_USAGE;
		}
	}
	if (socket_path && spawn) {
		fprintf(stderr, PROG ": --socket and --spawn exclude each other\n");
		return EXIT_USAGE;
	}
	if (n_daemon_args && !spawn) {
		fprintf(stderr, PROG ": --daemon-arg needs --spawn\n");
		return EXIT_USAGE;
	}
	if (!name)
		name = own_name(argv[0]);
	cfg.name = name;
	cfg.payload_args = (const char *const *)&argv[optind];
	cfg.n_payload_args = (size_t)(argc - optind);
	cfg.payload_env = env;
	cfg.n_payload_env = n_env;
	if (console) {
		console_fd = open(console, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOCTTY, 0600);
		if (console_fd < 0) {
			fprintf(stderr, PROG ": --console: cannot open %s: %s\n", console, strerror(errno));
			return EXIT_USAGE;
		}
		cfg.console_out = console_fd;
	}

	/* No SA_RESTART: a signal cuts the current one-second wait short. */
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);

	cl = spawn ? vmc_spawn_early(spawn, daemon_args, &err) : vmc_connect(socket_path, &err);
	if (!cl)
		return rpc_error(spawn ? "spawn" : "connect", &err);
	if (vmc_get_daemon_info(cl, &di, &err) < 0) {
		rc = rpc_error("GetDaemonInfo", &err);
		goto out;
	}
	if (info_only) {
		printf(PROG ": virtmgrd %s pid %d mode %s cids %u..%u run_dir %s hypervisor %s vsock %s\n", di.version,
		       (int)di.pid, di.mode, di.cid_min, di.cid_max, di.run_dir, di.hypervisor, di.vsock_mode);
		rc = 0;
		goto out;
	}
	if (strcmp(di.mode, "early")) {
		fprintf(stderr, PROG ": the daemon runs in %s mode; early VMs need virtmgrd --early\n", di.mode);
		rc = EXIT_RPC;
		goto out;
	}
	if (vmc_create_vm(cl, &cfg, &info, &err) < 0) {
		rc = rpc_error("CreateVm", &err);
		goto out;
	}
	/* the daemon holds its own copy of the console fd now */
	if (console_fd >= 0) {
		close(console_fd);
		console_fd = -1;
	}
	printf(PROG ": vm %s \"%s\" cid %u run_dir %s\n", info.id, info.name, info.cid, info.run_dir);
	fflush(stdout);
	id = xstrdup(info.id);
	vmc_vm_info_clear(&info);
	if (vmc_start_vm(cl, id, NULL, &err) < 0) {
		rc = rpc_error("StartVm", &err);
		goto out;
	}
	if (wait_dead(cl, id, stop_timeout_ms, &info, &sig, &err) < 0) {
		rc = EXIT_RPC;
		goto out;
	}
	rc = sig ? 128 + sig : vmc_exit_code(&info);
	printf(PROG ": vm \"%s\" DEAD (%s)%s%s, exit code %d\n", info.name, vmc_death_reason_name(info.death_reason),
	       *info.message ? ": " : "", info.message, rc);
	fflush(stdout);
	vmc_vm_info_clear(&info);
out:
	vmc_daemon_info_clear(&di);
	vmc_close(cl);
	return rc;
}
