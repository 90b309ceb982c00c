/* vmctl.c - vmctl's dispatcher: global options, the command table, help,
 * and the helpers every command uses to connect and report errors.
 *
 * Like crun, each subcommand lives in its own file (cmd_*.c) and exports
 * cmd_NAME(ctx, argc, argv) with argv[0] = the command name. Every command
 * first parses its arguments into an options struct with a pure function
 * (cmd_NAME_parse) that the unit tests drive, then connects and calls the
 * daemon. Errors are printed in three shapes only: usage errors (exit 2),
 * connection errors (exit 2, with the socket path and a hint) and RPC
 * errors "vmctl: CODE: message" (exit 1). run, exec and shell, whose exit
 * code is a payload's, exit 125 for all three instead (vmctl.h).
 */
#include "config.h"
#include "client/vmctl.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "client/cmd_attest.h"
#include "client/json.h"

static const struct vmctl_command commands[] = {
	{ "info", "show the daemon, or one VM", cmd_info_help, cmd_info },
	{ "version", "show vmctl's and the daemon's versions", cmd_version_help, cmd_version },
	{ "run", "create and start a VM, stream its console, exit with its payload's code", cmd_run_help, cmd_run },
	{ "list", "list VMs", cmd_list_help, cmd_list },
	{ "stop", "stop a VM (graceful, then forced)", cmd_stop_help, cmd_stop },
	{ "kill", "kill a VM now", cmd_kill_help, cmd_kill },
	{ "wait", "wait until a VM reaches a state", cmd_wait_help, cmd_wait },
	{ "console", "attach to a VM's console", cmd_console_help, cmd_console },
	{ "logs", "print a VM's console, guest or QEMU log", cmd_logs_help, cmd_logs },
	{ "suspend", "pause a VM's vCPUs", cmd_suspend_help, cmd_suspend },
	{ "resume", "resume a suspended VM", cmd_resume_help, cmd_resume },
	{ "connect", "connect stdin/stdout to a vsock port of a VM", cmd_connect_help, cmd_connect },
	{ "exec", "run a command in a VM through the guest agent", cmd_exec_help, cmd_exec },
	{ "shell", "interactive shell in a VM through the guest agent", cmd_shell_help, cmd_shell },
	{ "disk", "create, list, resize, remove, import and export disk images", cmd_disk_help, cmd_disk },
	{ "crashes", "list crash reports", cmd_crashes_help, cmd_crashes },
	{ "crash", "show, get or remove a crash report (backtrace, core)", cmd_crash_help, cmd_crash },
	{ "stats", "show what a VM uses: CPU, memory, balloon, disk and vsock I/O", cmd_stats_help, cmd_stats },
	{ "top", "a refreshing table of every VM with CPU %, memory and I/O rates", cmd_top_help, cmd_top },
	{ "balloon", "set a VM's balloon target (memory left to the guest)", cmd_balloon_help, cmd_balloon },
	{ "attest", "the Service VM's platform key; verify attestation tokens", cmd_attest_help, cmd_attest },
	{ "measure", "predict a VM's launch measurement offline", cmd_measure_help, cmd_measure },
};

static const char global_usage[] = "Usage: vmctl [--socket PATH] [--json] [--timeout SEC] COMMAND [ARGS...]\n";

const struct vmctl_command *vmctl_find_command(const char *name)
{
	for (size_t i = 0; name && i < ARRAY_SIZE(commands); i++)
		if (!strcmp(commands[i].name, name))
			return &commands[i];
	return NULL;
}

static void print_global_help(FILE *f)
{
	fputs(global_usage, f);
	fputs("\nControl virtual machines of virtmgrd.\n\n"
	      "Global options:\n"
	      "  --socket PATH   daemon socket (default: $VIRTMGR_SOCKET, else " VMC_DEFAULT_SOCKET
	      ")\n"
	      "  --json          machine-readable output: one JSON object per line\n"
	      "  --timeout SEC   deadline for each call to the daemon (default: none)\n"
	      "  -h, --help      this help\n\nCommands:\n",
	      f);
	for (size_t i = 0; i < ARRAY_SIZE(commands); i++)
		fprintf(f, "  %-9s %s\n", commands[i].name, commands[i].summary);
	fputs("\n`vmctl help COMMAND` or `vmctl COMMAND --help` describes a command.\n"
	      "Exit codes: 0 ok, 1 the daemon answered with an error, 2 usage error or cannot connect;\n"
	      "`run` exits with the payload's exit code and `exec`/`shell` with the command's;\n"
	      "they exit 125 when vmctl or the daemon failed (see vmctl(1) / docs/vmctl.md).\n",
	      f);
}

int vmctl_getopt_error(int c, char **argv, struct vm_error *err)
{
	const char *arg = optind > 0 ? argv[optind - 1] : "?";

	if (c == ':')
		return vm_error_set(err, VM_INVALID_ARGUMENT, "option '%s' requires an argument", arg);
	if (optopt && optopt != '?')
		return vm_error_set(err, VM_INVALID_ARGUMENT, "unknown option '-%c'", optopt);
	return vm_error_set(err, VM_INVALID_ARGUMENT, "unknown option '%s'", arg);
}

int vmctl_parse_u32(const char *s, const char *what, uint32_t *out, struct vm_error *err)
{
	unsigned long long v;
	char *end;

	if (!s || !*s || *s == '-' || *s == '+' || *s == ' ')
		return vm_error_set(err, VM_INVALID_ARGUMENT, "invalid %s '%s': not a number", what, s ? s : "");
	errno = 0;
	v = strtoull(s, &end, 10);
	if (*end)
		return vm_error_set(err, VM_INVALID_ARGUMENT, "invalid %s '%s': not a number", what, s);
	if (errno == ERANGE || v > UINT32_MAX)
		return vm_error_set(err, VM_INVALID_ARGUMENT, "invalid %s '%s': too large", what, s);
	*out = (uint32_t)v;
	return 0;
}

int vmctl_parse_user(const char *s, const char *what, uint32_t *uid, uint32_t *gid, struct vm_error *err)
{
	cleanup_free char *copy = xstrdup(s ? s : "");
	char *colon = strchr(copy, ':');

	if (colon)
		*colon = '\0';
	if (vmctl_parse_u32(copy, what, uid, err) < 0 || (colon && vmctl_parse_u32(colon + 1, what, gid, err) < 0))
		return vm_error_prefix(err, "%s expects UID[:GID]", what);
	if (!colon)
		*gid = *uid;
	/* (uid_t)-1 means "unchanged" to setuid(): never a user */
	if (*uid == UINT32_MAX || *gid == UINT32_MAX)
		return vm_error_set(err, VM_INVALID_ARGUMENT, "invalid %s '%s': 4294967295 is not a user or group id",
				    what, s);
	return 0;
}

int vmctl_parse_seconds(const char *s, const char *what, uint64_t *ms, struct vm_error *err)
{
	uint64_t whole = 0, frac = 0, scale = 1000;
	const char *p = s;

	if (!s || !*s)
		return vm_error_set(err, VM_INVALID_ARGUMENT, "invalid %s '': expected seconds", what);
	if (*p < '0' || *p > '9')
		return vm_error_set(err, VM_INVALID_ARGUMENT, "invalid %s '%s': expected seconds, e.g. 10 or 0.5", what,
				    s);
	for (; *p >= '0' && *p <= '9'; p++) {
		whole = whole * 10 + (uint64_t)(*p - '0');
		if (whole > 100000000ull) /* > 3 years: surely a mistake */
			return vm_error_set(err, VM_INVALID_ARGUMENT, "invalid %s '%s': too large", what, s);
	}
	if (*p == '.') {
		p++;
		if (*p < '0' || *p > '9')
			return vm_error_set(err, VM_INVALID_ARGUMENT,
					    "invalid %s '%s': expected seconds, e.g. 10 or 0.5", what, s);
		for (; *p >= '0' && *p <= '9'; p++) {
			scale /= 10;
			frac += (uint64_t)(*p - '0') * scale;
		}
	}
	if (*p)
		return vm_error_set(err, VM_INVALID_ARGUMENT, "invalid %s '%s': expected seconds, e.g. 10 or 0.5", what,
				    s);
	*ms = whole * 1000 + frac;
	return 0;
}

int vmctl_parse_global(int argc, char **argv, struct vmctl_ctx *ctx, int *cmd_index, struct vm_error *err)
{
	static const struct option opts[] = {
		{ "socket", required_argument, NULL, 's' },
		{ "json", no_argument, NULL, 'j' },
		{ "timeout", required_argument, NULL, 't' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	ctx->socket = vmc_default_socket();
	ctx->json = false;
	ctx->timeout_ms = 0;
	*cmd_index = argc;
	optind = 0;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "+:h", opts, NULL)) != -1) {
		switch (c) {
		case 's':
			if (!*optarg)
				return vm_error_set(err, VM_INVALID_ARGUMENT, "--socket: empty path");
			ctx->socket = optarg;
			break;
		case 'j':
			ctx->json = true;
			break;
		case 't':
			if (vmctl_parse_seconds(optarg, "--timeout", &ctx->timeout_ms, err) < 0)
				return -1;
			break;
		case 'h':
			return VMCTL_PARSE_HELP;
		default:
			return vmctl_getopt_error(c, argv, err);
		}
	}
	*cmd_index = optind;
	return VMCTL_PARSE_OK;
}

struct vmc_client *vmctl_connect(const struct vmctl_ctx *ctx)
{
	struct vmc_error err = { 0 };
	struct vmc_client *cl = vmc_connect(ctx->socket, &err);

	if (!cl) {
		if (err.code == VMC_STATUS_UNAVAILABLE)
			fprintf(stderr, "vmctl: %s (is virtmgrd running?)\n", err.message);
		else
			fprintf(stderr, "vmctl: %s\n", err.message);
		return NULL;
	}
	vmc_set_timeout(cl, ctx->timeout_ms);
	return cl;
}

int vmctl_rpc_error(const struct vmc_error *err)
{
	fprintf(stderr, "vmctl: %s: %s\n", vmc_status_name(err->code), err->message);
	return VMCTL_EXIT_RPC;
}

int vmctl_usage_error(const char *cmd, const struct vm_error *err)
{
	const struct vmctl_command *c = vmctl_find_command(cmd);

	if (c) {
		fprintf(stderr, "vmctl %s: %s\n", cmd, err->message);
		fprintf(stderr, "%.*s", (int)(strcspn(c->help, "\n") + 1), c->help);
		fprintf(stderr, "Try 'vmctl help %s'.\n", cmd);
	} else {
		fprintf(stderr, "vmctl: %s\n", err->message);
		fputs(global_usage, stderr);
		fputs("Try 'vmctl --help'.\n", stderr);
	}
	return VMCTL_EXIT_USAGE;
}

char *vmctl_format_time(uint64_t real_ns, char *buf, size_t size)
{
	time_t t = (time_t)(real_ns / 1000000000ull);
	struct tm tm;

	if (!real_ns || !gmtime_r(&t, &tm) || !strftime(buf, size, "%Y-%m-%d %H:%M:%S UTC", &tm))
		snprintf(buf, size, "-");
	return buf;
}

/* "measurement" (lowercase hex, "" when unknown) and its algorithm. */
static void print_measurement(struct json_obj *o, const struct vmc_vm_info *vm)
{
	char hex[2 * sizeof(vm->measurement) + 1];

	for (size_t i = 0; i < vm->measurement_len; i++)
		snprintf(hex + 2 * i, 3, "%02x", vm->measurement[i]);
	hex[2 * vm->measurement_len] = '\0';
	if (o) {
		json_str(o, "measurement", hex);
		json_str(o, "measurement_alg", vm->measurement_alg ? vm->measurement_alg : "");
	} else {
		printf("measurement:  %s%s%s\n", vm->measurement_len ? vm->measurement_alg : "", vm->measurement_len ? ":" : "",
		       vm->measurement_len ? hex : "-");
	}
}

/* "network": {mode, mac, address, gateway, dns, mtu, ports: ["8080:80/tcp"]} */
static void vmctl_json_network(struct json_obj *o, const struct vmc_net_info *n)
{
	struct json_obj in;
	cleanup_free char **ports = xcalloc(n->n_ports + 1, sizeof(*ports));

	json_obj_begin(o, "network", &in);
	json_str(&in, "mode", n->mode);
	json_str(&in, "mac", n->mac);
	json_str(&in, "address", n->address);
	json_str(&in, "gateway", n->gateway);
	json_str_array(&in, "dns", (const char *const *)n->dns, n->n_dns);
	json_uint(&in, "mtu", n->mtu);
	for (size_t i = 0; i < n->n_ports; i++) {
		const struct vmc_port_forward *p = &n->ports[i];

		ports[i] = xasprintf("%s%s%u:%u/%s", p->host_address, *p->host_address ? ":" : "", p->host_port,
				     p->guest_port, p->udp ? "udp" : "tcp");
	}
	json_str_array(&in, "ports", (const char *const *)ports, n->n_ports);
	for (size_t i = 0; i < n->n_ports; i++)
		free(ports[i]);
	json_obj_end(&in);
}

void vmctl_print_vm_info(const struct vmctl_ctx *ctx, const struct vmc_vm_info *vm)
{
	char created[64], started[64];

	if (ctx->json) {
		struct json_obj o;

		json_begin(&o, stdout);
		json_str(&o, "id", vm->id);
		json_str(&o, "name", vm->name);
		json_uint(&o, "cid", vm->cid);
		json_str(&o, "state", vmc_state_name(vm->state));
		json_str(&o, "death_reason", vmc_death_reason_name(vm->death_reason));
		if (vm->has_exit_code)
			json_int(&o, "exit_code", vm->exit_code);
		else
			json_null(&o, "exit_code");
		json_str(&o, "message", vm->message);
		json_int(&o, "qemu_pid", vm->qemu_pid);
		json_str(&o, "run_dir", vm->run_dir);
		json_uint(&o, "owner_uid", vm->owner_uid);
		json_int(&o, "owner_pid", vm->owner_pid);
		json_str(&o, "accel", vm->accel);
		json_uint(&o, "memory_mib", vm->memory_mib);
		json_uint(&o, "cpus", vm->cpus);
		json_uint(&o, "created_ns", vm->created_ns);
		json_uint(&o, "started_ns", vm->started_ns);
		json_bool(&o, "detached", vm->detached);
		json_bool(&o, "early", vm->early);
		json_bool(&o, "suspended", vm->suspended);
		print_measurement(&o, vm);
		if (vm->has_usage) {
			json_uint(&o, "cpu_ns", vm->cpu_ns);
			json_uint(&o, "rss_bytes", vm->rss_bytes);
		}
		if (vm->network)
			vmctl_json_network(&o, vm->network);
		else
			json_null(&o, "network");
		json_end(&o);
		return;
	}
	printf("id:           %s\n", vm->id);
	printf("name:         %s\n", vm->name);
	printf("cid:          %u\n", vm->cid);
	printf("state:        %s%s\n", vmc_state_name(vm->state), vm->suspended ? " (suspended)" : "");
	printf("death reason: %s\n", vmc_death_reason_name(vm->death_reason));
	if (vm->has_exit_code)
		printf("exit code:    %d\n", vm->exit_code);
	else
		printf("exit code:    -\n");
	printf("message:      %s\n", *vm->message ? vm->message : "-");
	printf("qemu pid:     %d\n", vm->qemu_pid);
	printf("run dir:      %s\n", *vm->run_dir ? vm->run_dir : "-");
	printf("owner:        uid %u, pid %d\n", vm->owner_uid, vm->owner_pid);
	printf("accel:        %s\n", *vm->accel ? vm->accel : "-");
	printf("memory:       %u MiB\n", vm->memory_mib);
	printf("cpus:         %u\n", vm->cpus);
	printf("created:      %s\n", vmctl_format_time(vm->created_ns, created, sizeof(created)));
	printf("started:      %s\n", vmctl_format_time(vm->started_ns, started, sizeof(started)));
	print_measurement(NULL, vm);
	printf("detached:     %s\n", vm->detached ? "yes" : "no");
	printf("early:        %s\n", vm->early ? "yes" : "no");
	if (vm->has_usage)
		printf("usage:        cpu %.3f s, rss %.1f MiB (vmctl stats for more)\n", (double)vm->cpu_ns / 1e9,
		       (double)vm->rss_bytes / (1024.0 * 1024.0));
	if (vm->network) {
		const struct vmc_net_info *n = vm->network;

		printf("network:      %s, %s, gateway %s, mac %s\n", n->mode, n->address, n->gateway, n->mac);
		for (size_t i = 0; i < n->n_ports; i++)
			printf("port:         %s%s%u -> %u/%s\n", n->ports[i].host_address,
			       *n->ports[i].host_address ? ":" : "", n->ports[i].host_port, n->ports[i].guest_port,
			       n->ports[i].udp ? "udp" : "tcp");
	} else {
		printf("network:      none\n");
	}
}

static int cmd_help(int argc, char **argv)
{
	const struct vmctl_command *c;

	if (argc < 2) {
		print_global_help(stdout);
		return VMCTL_EXIT_OK;
	}
	c = vmctl_find_command(argv[1]);
	if (!c) {
		fprintf(stderr, "vmctl: unknown command '%s'\n", argv[1]);
		fputs("Try 'vmctl --help'.\n", stderr);
		return VMCTL_EXIT_USAGE;
	}
	fputs(c->help, stdout);
	return VMCTL_EXIT_OK;
}

int vmctl_main(int argc, char **argv)
{
	struct vmctl_ctx ctx;
	struct vm_error perr = { 0 };
	const struct vmctl_command *c;
	int idx, r;

	r = vmctl_parse_global(argc, argv, &ctx, &idx, &perr);
	if (r < 0)
		return vmctl_usage_error(NULL, &perr);
	if (r == VMCTL_PARSE_HELP) {
		print_global_help(stdout);
		return VMCTL_EXIT_OK;
	}
	if (idx >= argc) {
		fputs("vmctl: no command given\n", stderr);
		fputs(global_usage, stderr);
		fputs("Try 'vmctl --help'.\n", stderr);
		return VMCTL_EXIT_USAGE;
	}
	if (!strcmp(argv[idx], "help"))
		return cmd_help(argc - idx, argv + idx);
	c = vmctl_find_command(argv[idx]);
	if (!c) {
		fprintf(stderr, "vmctl: unknown command '%s'\n", argv[idx]);
		fputs("Try 'vmctl --help'.\n", stderr);
		return VMCTL_EXIT_USAGE;
	}
	r = c->run(&ctx, argc - idx, argv + idx);
	fflush(stdout);
	return r;
}

int cmd_vm_parse(int argc, char **argv, bool vm_required, struct cmd_vm_opts *o, struct vm_error *err)
{
	static const struct option opts[] = {
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	o->vm = NULL;
	optind = 0;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
		if (c == 'h')
			return VMCTL_PARSE_HELP;
		return vmctl_getopt_error(c, argv, err);
	}
	if (optind < argc)
		o->vm = argv[optind++];
	if (optind < argc)
		return vm_error_set(err, VM_INVALID_ARGUMENT, "unexpected argument '%s'", argv[optind]);
	if (vm_required && !o->vm)
		return vm_error_set(err, VM_INVALID_ARGUMENT, "missing VM (id or name)");
	if (o->vm && !*o->vm)
		return vm_error_set(err, VM_INVALID_ARGUMENT, "empty VM name");
	return VMCTL_PARSE_OK;
}

void vmctl_print_vm_brief(const struct vmctl_ctx *ctx, const struct vmc_vm_info *vm)
{
	if (ctx->json) {
		vmctl_print_vm_info(ctx, vm);
		return;
	}
	printf("%s: %s", *vm->name ? vm->name : vm->id, vmc_state_name(vm->state));
	if (vm->state == VMC_STATE_DEAD)
		printf(" (%s)", vmc_death_reason_name(vm->death_reason));
	if (vm->suspended)
		printf(" (suspended)");
	printf("\n");
}

int vmctl_vm_command(struct vmctl_ctx *ctx, int argc, char **argv, const char *cmd, const char *help,
		     vmctl_vm_call_fn call)
{
	struct vm_error perr = { 0 };
	struct vmc_error err = { 0 };
	struct cmd_vm_opts o;
	struct vmc_vm_info vm;
	struct vmc_client *cl;
	int r;

	r = cmd_vm_parse(argc, argv, true, &o, &perr);
	if (r < 0)
		return vmctl_usage_error(cmd, &perr);
	if (r == VMCTL_PARSE_HELP) {
		fputs(help, stdout);
		return VMCTL_EXIT_OK;
	}
	cl = vmctl_connect(ctx);
	if (!cl)
		return VMCTL_EXIT_USAGE;
	r = call(cl, o.vm, &vm, &err);
	vmc_close(cl);
	if (r < 0)
		return vmctl_rpc_error(&err);
	vmctl_print_vm_brief(ctx, &vm);
	vmc_vm_info_clear(&vm);
	return VMCTL_EXIT_OK;
}

int vmctl_take_vm_operand(int argc, char **argv, int *optind, const char **vm, struct vm_error *err)
{
	if (*optind >= argc)
		return vm_error_set(err, VM_INVALID_ARGUMENT, "missing VM (id or name)");
	*vm = argv[(*optind)++];
	if (!**vm)
		return vm_error_set(err, VM_INVALID_ARGUMENT, "empty VM name");
	return VMCTL_PARSE_OK;
}

int vmctl_parse_vm_operand(int argc, char **argv, int optind, const char **vm, struct vm_error *err)
{
	if (vmctl_take_vm_operand(argc, argv, &optind, vm, err) < 0)
		return -1;
	if (optind < argc)
		return vm_error_set(err, VM_INVALID_ARGUMENT, "unexpected argument '%s'", argv[optind]);
	return VMCTL_PARSE_OK;
}
