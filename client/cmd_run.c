/* cmd_run.c - `vmctl run`: CreateVm + StartVm, then, unless --detach,
 * stay with the VM until it is DEAD and exit with its payload's exit code.
 *
 * The console reaches stdout through a pipe whose write end is passed with
 * CreateVm as console_out (or, with --console FILE, the file itself is
 * passed and nothing is copied). WatchVm is opened on the same connection
 * before StartVm so that no event is missed; the events share the socket
 * with unary calls, so the loop drains them with non-blocking reads before
 * it sleeps in poll() on the console pipe, the connection and a signalfd.
 * SIGINT/SIGTERM stop the VM (StopVm) and exit 128+signal. Because the VM is
 * owned by this connection, it also stops if vmctl dies.
 *
 * A VM that died without a payload exit code maps to a fixed code per death
 * reason (vmc_exit_code(), documented in docs/vmctl.md). vmctl's own
 * failures (usage, connection, a failed call) exit 125, as `docker run`
 * does, never 1 or 2, which a payload returns as often as anything.
 *
 * When stderr is a terminal (and without --json), a progress line
 * "vmctl: vm NAME: STATE 2.5s" is redrawn in place on stderr while the VM
 * boots: poll() then wakes every 250 ms. The line is erased before an event
 * is printed and redrawn after; it goes away for good at the first console
 * output (which shares the terminal) or once the VM is STARTED or dead.
 * Nothing of it appears when stderr is not a terminal.
 */
#include "config.h"
#include "client/vmctl.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/signalfd.h>
#include <time.h>

#include "client/json.h"

const char cmd_run_help[] =
	"Usage: vmctl run [OPTIONS] [-- CMD [ARGS...]]\n"
	"\n"
	"Create and start a VM. CMD, if given, is the payload the guest agent runs.\n"
	"Without --detach, vmctl streams the console to stdout, waits until the VM\n"
	"is dead and exits with the payload's exit code (see EXIT CODES); Ctrl-C or\n"
	"SIGTERM stops the VM. With --detach, prints the VM's id and exits: the VM\n"
	"keeps running after vmctl (and the daemon) exit.\n"
	"\n"
	"Options:\n"
	"  -n, --name NAME          VM name ([A-Za-z0-9._-], at most 64)\n"
	"      --kernel PATH        guest kernel (default: the daemon's)\n"
	"      --initrd PATH        guest initrd (default: the daemon's)\n"
	"      --cmdline STRING     appended to the kernel command line\n"
	"  -m, --mem MIB            memory in MiB (default: the daemon's, 256)\n"
	"  -c, --cpus N             vCPUs (default: 1)\n"
	"  -d, --disk NAME|PATH[,ro][,label=LABEL][,format=raw|qcow2][,measured]\n"
	"                           add a disk (repeatable): a store image by NAME,\n"
	"                           or a host file (a value with a '/'); ,ro makes it\n"
	"                           read-only; the guest finds it as\n"
	"                           /dev/disk/by-id/virtio-LABEL (default: the image\n"
	"                           name, else disk0, disk1... by position); ,measured\n"
	"                           puts its content in the launch measurement (needs ,ro)\n"
	"      --mount LABEL:GUESTPATH[,ro][,fs=TYPE][,opts=OPTIONS]\n"
	"                           mount disk LABEL on GUESTPATH before the payload\n"
	"                           starts (repeatable; TYPE defaults to ext4); it is\n"
	"                           unmounted before the VM powers off\n"
	"      --share HOSTDIR:GUESTPATH[,ro][,tag=TAG]\n"
	"                           share a host folder, mounted at GUESTPATH (virtiofs,\n"
	"                           repeatable, at most 8); tags default to share0, share1...\n"
	"      --root NAME|PATH[,rw][,fs=TYPE][,format=raw|qcow2]\n"
	"                           the payload's and exec sessions' / : a store image,\n"
	"                           a host file (a disk labelled root) or a host\n"
	"                           directory (a share); read-only under a tmpfs\n"
	"                           overlay unless ,rw; TYPE defaults to ext4\n"
	"      --net none|user|tap  the VM's network (docs/network.md); default: none,\n"
	"                           or user when -p is given. user: passt, unprivileged,\n"
	"                           guest 10.0.2.15/24, host loopback at 10.0.2.2;\n"
	"                           tap: a /30 from the daemon's pool (root daemon)\n"
	"  -p, --publish [HOSTADDR:]HOSTPORT:GUESTPORT[/udp]\n"
	"                           forward a host port to the guest (user mode,\n"
	"                           repeatable, at most 16; HOSTADDR defaults to every\n"
	"                           address)\n"
	"      --accel kvm|tcg      accelerator (default: the daemon's choice)\n"
	"      --instance-id HEX    the VM's 64-byte instance id (128 hex digits): the\n"
	"                           personalization value of its attestation tokens\n"
	"      --detach             start the VM detached, print its id and exit\n"
	"      --console FILE       write the console to FILE instead of stdout\n"
	"      --events             print the VM's events to stderr\n"
	"      --boot-timeout SEC   the VM must be STARTED within SEC seconds\n"
	"  -e, --env KEY=VALUE      payload environment (repeatable)\n"
	"      --cwd DIR            payload working directory\n"
	"  -u, --user UID[:GID]     run the payload as this guest user (GID defaults to\n"
	"                           UID; default root); an unprivileged payload cannot\n"
	"                           forge what the daemon reports about it\n"
	"      --debug              debug VM (more guest logging)\n"
	"      --on-hang none|kill  when the guest agent stops answering the daemon's\n"
	"                           health check: an ERROR event only, or also kill\n"
	"                           the VM (DEAD/WATCHDOG); default: the daemon's, kill\n"
	"      --crash-core-limit SIZE  crash reports carry at most SIZE bytes of core\n"
	"                           (K, M, G suffixes; default 64M; docs/crash-reports.md)\n"
	"  -h, --help               this help\n"
	"\n"
	"EXIT CODES (without --detach)\n"
	"  the payload's exit code if it reported one; otherwise by death reason:\n"
	"  SHUTDOWN 0, HANGUP 129, CRASH 134, KILLED 137, START_FAILED 125,\n"
	"  INVALID_PAYLOAD_CONFIG 126, PAYLOAD_ERROR 127, AGENT_FAILED_TO_CONNECT 124,\n"
	"  INFRASTRUCTURE_ERROR 123, REBOOT 122, WATCHDOG 121, anything else 255;\n"
	"  130/143 when vmctl was interrupted by SIGINT/SIGTERM (after stopping the VM);\n"
	"  125 when vmctl or the daemon failed (usage errors, no daemon, a failed call).\n";

enum {
	OPT_KERNEL = 0x100,
	OPT_INITRD,
	OPT_CMDLINE,
	OPT_ACCEL,
	OPT_DETACH,
	OPT_CONSOLE,
	OPT_EVENTS,
	OPT_BOOT_TIMEOUT,
	OPT_CWD,
	OPT_DEBUG,
	OPT_ON_HANG,
	OPT_MOUNT,
	OPT_INSTANCE_ID,
	OPT_SHARE = 0x180,
	OPT_ROOT = 0x1b0,
	OPT_CRASH_CORE_LIMIT = 0x1c0,
	OPT_NET,
};

void cmd_run_opts_release(struct cmd_run_opts *o)
{
	free(o->disks);
	free(o->mounts);
	o->mounts = NULL;
	free(o->env);
	o->disks = NULL;
	o->env = NULL;
	for (size_t i = 0; o->share_dirs && i < o->cfg.n_shares; i++)
		free(o->share_dirs[i]);
	free(o->share_dirs);
	free(o->shares);
	o->share_dirs = NULL;
	o->shares = NULL;
	free(o->ports);
	free(o->port_addrs);
	o->ports = NULL;
	o->port_addrs = NULL;
}

/* -p [HOSTADDR:]HOSTPORT:GUESTPORT[/udp|/tcp] */
static int parse_publish(const char *arg, struct vmc_port_forward *p, char addr[16], struct vm_error *err)
{
	char buf[64], *parts[3], *slash, *end;
	size_t n = 0;
	unsigned long v[2];

	if (strlen(arg) >= sizeof(buf))
		return vm_error_set(err, VM_INVALID_ARGUMENT, "invalid -p '%s': too long", arg);
	strcpy(buf, arg);
	slash = strchr(buf, '/');
	p->udp = false;
	if (slash) {
		*slash = '\0';
		if (!strcmp(slash + 1, "udp"))
			p->udp = true;
		else if (strcmp(slash + 1, "tcp"))
			return vm_error_set(err, VM_INVALID_ARGUMENT, "invalid -p '%s': protocol '%s' is not tcp or udp",
					    arg, slash + 1);
	}
	for (char *s = buf, *c; n < 3; s = c + 1) {
		parts[n++] = s;
		c = strchr(s, ':');
		if (!c)
			break;
		*c = '\0';
	}
	if (n < 2 || strchr(parts[n - 1], ':'))
		return vm_error_set(err, VM_INVALID_ARGUMENT,
				    "invalid -p '%s': expected [HOSTADDR:]HOSTPORT:GUESTPORT[/udp]", arg);
	for (size_t i = 0; i < 2; i++) {
		const char *s = parts[n - 2 + i];

		errno = 0;
		v[i] = strtoul(s, &end, 10);
		if (!*s || *end || errno || v[i] < 1 || v[i] > 65535)
			return vm_error_set(err, VM_INVALID_ARGUMENT, "invalid -p '%s': port '%s' is not in 1..65535",
					    arg, s);
	}
	addr[0] = '\0';
	if (n == 3) {
		if (strlen(parts[0]) >= 16)
			return vm_error_set(err, VM_INVALID_ARGUMENT, "invalid -p '%s': '%s' is not an IPv4 address",
					    arg, parts[0]);
		strcpy(addr, parts[0]);
	}
	p->host_address = addr;
	p->host_port = (uint32_t)v[0];
	p->guest_port = (uint32_t)v[1];
	return 0;
}

/*
 * "NAME|PATH[,ro|,rw][,label=LABEL][,format=raw|qcow2]" into @d (strings
 * point into @arg, which is cut at the commas). A value holding a '/' is a
 * host path, anything else a store image name. The options are taken from
 * the end, so a path may hold commas of its own.
 */
static int parse_disk(char *arg, struct vmc_disk *d, struct vm_error *err)
{
	char *comma;

	memset(d, 0, sizeof(*d));
	d->fd = -1;
	while ((comma = strrchr(arg, ','))) {
		const char *opt = comma + 1;

		if (!strcmp(opt, "ro") || !strcmp(opt, "rw"))
			d->read_only = opt[1] == 'o';
		else if (!strcmp(opt, "measured"))
			d->measured = true;
		else if (!strncmp(opt, "label=", 6) && opt[6])
			d->label = opt + 6;
		else if (!strcmp(opt, "format=raw") || !strcmp(opt, "format=qcow2"))
			d->qcow2 = opt[7] == 'q';
		else if (!strncmp(opt, "format=", 7))
			return vm_error_set(err, VM_INVALID_ARGUMENT,
					    "invalid --disk format '%s': expected raw or qcow2", opt + 7);
		else
			break; /* part of the path */
		*comma = '\0';
	}
	if (!*arg)
		return vm_error_set(err, VM_INVALID_ARGUMENT, "invalid --disk: empty path or image name");
	if (strchr(arg, '/'))
		d->path = arg;
	else
		d->image = arg;
	return 0;
}

/* "LABEL:GUESTPATH[,ro|,rw][,fs=TYPE][,opts=OPTIONS]" into @m (opts= last: it may hold commas). */
static int parse_mount(char *arg, struct vmc_mount *m, struct vm_error *err)
{
	char *colon = strchr(arg, ':'), *opts, *comma;

	memset(m, 0, sizeof(*m));
	if (!colon || colon == arg || colon[1] != '/')
		return vm_error_set(err, VM_INVALID_ARGUMENT,
				    "invalid --mount '%s': expected LABEL:GUESTPATH with an absolute GUESTPATH", arg);
	*colon = '\0';
	m->source = arg;
	m->target = colon + 1;
	if ((opts = strstr(m->target, ",opts="))) {
		m->options = opts + 6;
		*opts = '\0';
	}
	while ((comma = strrchr(m->target, ','))) {
		const char *opt = comma + 1;

		if (!strcmp(opt, "ro") || !strcmp(opt, "rw"))
			m->read_only = opt[1] == 'o';
		else if (!strncmp(opt, "fs=", 3) && opt[3])
			m->fstype = opt + 3;
		else
			return vm_error_set(err, VM_INVALID_ARGUMENT,
					    "invalid --mount option '%s': expected ro, rw, fs=TYPE or opts=OPTIONS",
					    opt);
		*comma = '\0';
	}
	return 0;
}

/* "HOSTDIR:GUESTPATH[,ro|,rw][,tag=TAG]" into @s (strings point into @arg). */
static int parse_share(char *arg, struct vmc_share *s, struct vm_error *err)
{
	char *colon = strchr(arg, ':'), *opt;

	memset(s, 0, sizeof(*s));
	if (!colon || colon == arg)
		return vm_error_set(err, VM_INVALID_ARGUMENT, "invalid --share '%s': expected HOSTDIR:GUESTPATH", arg);
	*colon = '\0';
	s->host_dir = arg;
	s->guest_path = colon + 1;
	opt = strchr(colon + 1, ',');
	if (opt)
		*opt++ = '\0';
	while (opt) {
		char *next = strchr(opt, ',');

		if (next)
			*next++ = '\0';
		if (!strcmp(opt, "ro") || !strcmp(opt, "rw"))
			s->read_only = opt[1] == 'o';
		else if (!strncmp(opt, "tag=", 4) && opt[4])
			s->tag = opt + 4;
		else
			return vm_error_set(err, VM_INVALID_ARGUMENT,
					    "invalid --share option '%s': expected ro, rw or tag=TAG", opt);
		opt = next;
	}
	if (s->guest_path[0] != '/')
		return vm_error_set(err, VM_INVALID_ARGUMENT, "invalid --share: GUESTPATH '%s' is not absolute",
				    s->guest_path);
	return 0;
}

int cmd_run_parse(int argc, char **argv, struct cmd_run_opts *o, struct vm_error *err)
{
	static const struct option opts[] = {
		{ "name", required_argument, NULL, 'n' },
		{ "kernel", required_argument, NULL, OPT_KERNEL },
		{ "initrd", required_argument, NULL, OPT_INITRD },
		{ "cmdline", required_argument, NULL, OPT_CMDLINE },
		{ "mem", required_argument, NULL, 'm' },
		{ "cpus", required_argument, NULL, 'c' },
		{ "disk", required_argument, NULL, 'd' },
		{ "mount", required_argument, NULL, OPT_MOUNT },
		{ "accel", required_argument, NULL, OPT_ACCEL },
		{ "detach", no_argument, NULL, OPT_DETACH },
		{ "instance-id", required_argument, NULL, OPT_INSTANCE_ID },
		{ "console", required_argument, NULL, OPT_CONSOLE },
		{ "events", no_argument, NULL, OPT_EVENTS },
		{ "boot-timeout", required_argument, NULL, OPT_BOOT_TIMEOUT },
		{ "env", required_argument, NULL, 'e' },
		{ "cwd", required_argument, NULL, OPT_CWD },
		{ "user", required_argument, NULL, 'u' },
		{ "debug", no_argument, NULL, OPT_DEBUG },
		{ "on-hang", required_argument, NULL, OPT_ON_HANG },
		{ "share", required_argument, NULL, OPT_SHARE },
		{ "root", required_argument, NULL, OPT_ROOT },
		{ "crash-core-limit", required_argument, NULL, OPT_CRASH_CORE_LIMIT },
		{ "net", required_argument, NULL, OPT_NET },
		{ "publish", required_argument, NULL, 'p' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct vmc_vm_config *cfg = &o->cfg;
	uint64_t ms;
	int c;

	memset(o, 0, sizeof(*o));
	vmc_vm_config_init(cfg);
	/* argc bounds how many --disk/--env there can be */
	o->disks = xcalloc((size_t)argc + 1, sizeof(*o->disks));
	o->mounts = xcalloc((size_t)argc + 1, sizeof(*o->mounts));
	cfg->mounts = o->mounts;
	o->env = xcalloc((size_t)argc + 1, sizeof(*o->env));
	cfg->disks = o->disks;
	cfg->payload_env = o->env;
	o->shares = xcalloc((size_t)argc + 1, sizeof(*o->shares));
	cfg->shares = o->shares;
	o->ports = xcalloc((size_t)argc + 1, sizeof(*o->ports));
	o->port_addrs = xcalloc((size_t)argc + 1, sizeof(*o->port_addrs));
	cfg->ports = o->ports;
	optind = 0;
	opterr = 0;
	/* '+': the payload command starts at the first non-option */
	while ((c = getopt_long(argc, argv, "+:n:m:c:d:e:u:p:h", opts, NULL)) != -1) {
		switch (c) {
		case 'n':
			if (!*optarg)
				return vm_error_set(err, VM_INVALID_ARGUMENT, "invalid --name: empty");
			cfg->name = optarg;
			break;
		case OPT_KERNEL:
			cfg->kernel = optarg;
			break;
		case OPT_INITRD:
			cfg->initrd = optarg;
			break;
		case OPT_CMDLINE:
			cfg->cmdline = optarg;
			break;
		case 'm':
			if (vmctl_parse_u32(optarg, "--mem", &cfg->memory_mib, err) < 0)
				return -1;
			if (!cfg->memory_mib)
				return vm_error_set(err, VM_INVALID_ARGUMENT, "invalid --mem '0': must be more than 0");
			break;
		case 'c':
			if (vmctl_parse_u32(optarg, "--cpus", &cfg->cpus, err) < 0)
				return -1;
			if (!cfg->cpus)
				return vm_error_set(err, VM_INVALID_ARGUMENT,
						    "invalid --cpus '0': must be more than 0");
			break;
		case 'd':
			if (parse_disk(optarg, &o->disks[cfg->n_disks], err) < 0)
				return -1;
			cfg->n_disks++;
			break;
		case OPT_MOUNT:
			if (parse_mount(optarg, &o->mounts[cfg->n_mounts], err) < 0)
				return -1;
			cfg->n_mounts++;
			break;
		case OPT_NET:
			if (strcmp(optarg, "none") && strcmp(optarg, "user") && strcmp(optarg, "tap"))
				return vm_error_set(err, VM_INVALID_ARGUMENT,
						    "invalid --net '%s': expected none, user or tap", optarg);
			cfg->net_mode = optarg;
			break;
		case 'p':
			if (parse_publish(optarg, &o->ports[cfg->n_ports], o->port_addrs[cfg->n_ports], err) < 0)
				return -1;
			cfg->n_ports++;
			break;
		case OPT_SHARE:
			if (parse_share(optarg, &o->shares[cfg->n_shares], err) < 0)
				return -1;
			cfg->n_shares++;
			break;
		case OPT_ROOT:
			if (cmd_run_root_parse(optarg, o, err) < 0)
				return -1;
			break;
		case OPT_ACCEL:
			if (strcmp(optarg, "kvm") && strcmp(optarg, "tcg"))
				return vm_error_set(err, VM_INVALID_ARGUMENT,
						    "invalid --accel '%s': expected kvm or tcg", optarg);
			cfg->accel = optarg;
			break;
		case OPT_DETACH:
			o->detach = true;
			cfg->detach = true;
			break;
		case OPT_CONSOLE:
			if (!*optarg)
				return vm_error_set(err, VM_INVALID_ARGUMENT, "invalid --console: empty path");
			o->console_file = optarg;
			break;
		case OPT_EVENTS:
			o->events = true;
			break;
		case OPT_BOOT_TIMEOUT:
			if (vmctl_parse_seconds(optarg, "--boot-timeout", &ms, err) < 0)
				return -1;
			if (ms == 0 || ms > UINT32_MAX)
				return vm_error_set(err, VM_INVALID_ARGUMENT,
						    "invalid --boot-timeout '%s': must be between 0.001 and 4294967 s",
						    optarg);
			cfg->boot_timeout_ms = (uint32_t)ms;
			break;
		case 'e': {
			const char *eq = strchr(optarg, '=');

			if (!eq || eq == optarg)
				return vm_error_set(err, VM_INVALID_ARGUMENT, "invalid --env '%s': expected KEY=VALUE",
						    optarg);
			o->env[cfg->n_payload_env++] = optarg;
			break;
		}
		case OPT_CWD:
			if (optarg[0] != '/')
				return vm_error_set(err, VM_INVALID_ARGUMENT,
						    "invalid --cwd '%s': must be an absolute path in the guest",
						    optarg);
			cfg->payload_cwd = optarg;
			break;
		case 'u':
			if (vmctl_parse_user(optarg, "--user", &cfg->payload_uid, &cfg->payload_gid, err) < 0)
				return -1;
			cfg->has_payload_user = true;
			break;
		case OPT_DEBUG:
			cfg->debug = true;
			break;
		case OPT_CRASH_CORE_LIMIT:
			if (cmd_crash_parse_limit(optarg, &cfg->crash_core_limit, err) < 0)
				return -1;
			break;
		case OPT_INSTANCE_ID: {
			size_t n = strlen(optarg);

			if (n != 2 * sizeof(o->instance_id) || strspn(optarg, "0123456789abcdefABCDEF") != n)
				return vm_error_set(err, VM_INVALID_ARGUMENT,
						    "--instance-id: expected %zu hex digits, got '%s'",
						    2 * sizeof(o->instance_id), optarg);
			for (size_t i = 0; i < sizeof(o->instance_id); i++) {
				unsigned v;

				sscanf(optarg + 2 * i, "%2x", &v);
				o->instance_id[i] = (uint8_t)v;
			}
			cfg->instance_id = o->instance_id;
			cfg->instance_id_len = sizeof(o->instance_id);
			break;
		}
		case OPT_ON_HANG:
			if (!strcmp(optarg, "none"))
				cfg->on_hang = VMC_ON_HANG_NONE;
			else if (!strcmp(optarg, "kill"))
				cfg->on_hang = VMC_ON_HANG_KILL;
			else
				return vm_error_set(err, VM_INVALID_ARGUMENT,
						    "invalid --on-hang '%s': expected none or kill", optarg);
			break;
		case 'h':
			return VMCTL_PARSE_HELP;
		default:
			return vmctl_getopt_error(c, argv, err);
		}
	}
	if (optind < argc) {
		cfg->payload_args = (const char *const *)&argv[optind];
		cfg->n_payload_args = (size_t)(argc - optind);
	}
	/* publishing a port asks for a network: user mode unless --net says */
	if (cfg->n_ports && !cfg->net_mode)
		cfg->net_mode = "user";
	if (o->detach && o->events)
		return vm_error_set(err, VM_INVALID_ARGUMENT, "--events needs a VM to watch: not with --detach");
	return VMCTL_PARSE_OK;
}

static void print_event(const struct vmctl_ctx *ctx, const char *name, const struct vmc_event *ev)
{
	if (ctx->json) {
		struct json_obj o;

		json_begin(&o, stderr);
		json_str(&o, "vm", name);
		json_str(&o, "event", vmc_event_type_name(ev->type));
		json_str(&o, "state", vmc_state_name(ev->state));
		json_str(&o, "death_reason", vmc_death_reason_name(ev->death_reason));
		json_int(&o, "exit_code", ev->exit_code);
		json_int(&o, "error_code", ev->error_code);
		json_str(&o, "message", ev->message);
		json_uint(&o, "timestamp_ns", ev->timestamp_ns);
		json_end(&o);
		return;
	}
	switch (ev->type) {
	case VMC_EVENT_STATE_CHANGED:
		fprintf(stderr, "vmctl: vm %s: %s\n", name, vmc_state_name(ev->state));
		break;
	case VMC_EVENT_PAYLOAD_FINISHED:
		fprintf(stderr, "vmctl: vm %s: PAYLOAD_FINISHED (exit code %d)\n", name, ev->exit_code);
		break;
	case VMC_EVENT_DIED:
		fprintf(stderr, "vmctl: vm %s: DIED (%s)%s%s\n", name, vmc_death_reason_name(ev->death_reason),
			*ev->message ? ": " : "", ev->message);
		break;
	case VMC_EVENT_ERROR:
		fprintf(stderr, "vmctl: vm %s: ERROR %d: %s\n", name, ev->error_code, ev->message);
		break;
	default:
		fprintf(stderr, "vmctl: vm %s: %s%s%s\n", name, vmc_event_type_name(ev->type), *ev->message ? ": " : "",
			ev->message);
		break;
	}
}

/* Copy what the console pipe holds to stdout. Return: false at EOF/error. */
static bool copy_console(int fd)
{
	char buf[65536];
	ssize_t n;

	for (;;) {
		n = read(fd, buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return true;
		if (n <= 0)
			return false;
		if (write_all(STDOUT_FILENO, buf, (size_t)n) < 0)
			return false;
	}
}

struct run_state {
	const struct vmctl_ctx *ctx;
	const struct cmd_run_opts *o;
	struct vmc_client *cl;
	struct vmc_watch *watch;
	const char *id;
	const char *name;
	bool dead;
	/* progress line while booting (stderr is a terminal) */
	bool progress;
	bool progress_shown;
	enum vmc_vm_state state;
	struct timespec t0;
};

static void progress_clear(struct run_state *st)
{
	if (st->progress_shown) {
		fputs("\r\033[K", stderr);
		fflush(stderr);
		st->progress_shown = false;
	}
}

static void progress_draw(struct run_state *st)
{
	struct timespec now;
	double secs;

	if (!st->progress)
		return;
	clock_gettime(CLOCK_MONOTONIC, &now);
	secs = (double)(now.tv_sec - st->t0.tv_sec) + (double)(now.tv_nsec - st->t0.tv_nsec) / 1e9;
	fprintf(stderr, "\r\033[Kvmctl: vm %s: %s %.1fs", st->name, vmc_state_name(st->state), secs);
	fflush(stderr);
	st->progress_shown = true;
}

/* A failed call: print it. Return: VMCTL_EXIT_FAILED, which a payload's own codes are told apart from. */
static int run_failed(const struct vmc_error *err)
{
	vmctl_rpc_error(err);
	return VMCTL_EXIT_FAILED;
}

/* Read every event already available. Return: 0, or -1 with @err. */
static int drain_events(struct run_state *st, struct vmc_error *err)
{
	struct vmc_event ev;
	int r;

	while (!st->dead) {
		r = vmc_watch_next(st->watch, 0, &ev, err);
		if (r < 0)
			return err->code == VMC_STATUS_DEADLINE_EXCEEDED ? 0 : -1;
		if (r == 0) {
			/* the daemon ends the stream once the VM is dead */
			st->dead = true;
			break;
		}
		progress_clear(st);
		if (st->o->events)
			print_event(st->ctx, st->name, &ev);
		if (ev.type == VMC_EVENT_STATE_CHANGED)
			st->state = ev.state;
		if (ev.type == VMC_EVENT_DIED || ev.state == VMC_STATE_DEAD)
			st->dead = true;
		if (st->dead || st->state >= VMC_STATE_STARTED)
			st->progress = false;
		vmc_event_clear(&ev);
	}
	return 0;
}

static int run_attached(struct run_state *st, int console_fd, int sig_fd)
{
	struct vmc_error err = { 0 };
	struct signalfd_siginfo si;
	struct vmc_vm_info vm;
	int code;

	while (!st->dead) {
		struct pollfd p[3] = {
			{ .fd = vmc_client_fd(st->cl), .events = POLLIN },
			{ .fd = sig_fd, .events = POLLIN },
			{ .fd = console_fd, .events = POLLIN },
		};

		if (drain_events(st, &err) < 0)
			return run_failed(&err);
		if (st->dead)
			break;
		progress_draw(st);
		if (poll(p, 3, st->progress ? 250 : -1) < 0) {
			if (errno == EINTR)
				continue;
			fprintf(stderr, "vmctl: run: poll: %s\n", strerror(errno));
			return VMCTL_EXIT_FAILED;
		}
		if (console_fd >= 0 && (p[2].revents & (POLLIN | POLLHUP | POLLERR))) {
			/* the console shares the terminal: a half-written console line
			 * must not be erased by a redraw, so the progress line ends */
			progress_clear(st);
			st->progress = false;
			if (!copy_console(console_fd)) {
				close(console_fd);
				console_fd = -1;
			}
		}
		if (p[1].revents & POLLIN) {
			progress_clear(st);
			if (read(sig_fd, &si, sizeof(si)) != sizeof(si))
				continue;
			if (!st->ctx->json)
				fprintf(stderr, "vmctl: %s: stopping vm %s\n", strsignal((int)si.ssi_signo), st->name);
			if (vmc_stop_vm(st->cl, st->id, 0, false, NULL, &err) < 0)
				vmctl_rpc_error(&err);
			if (console_fd >= 0) {
				copy_console(console_fd);
				close(console_fd);
			}
			return 128 + (int)si.ssi_signo;
		}
	}
	progress_clear(st);
	/* The VM is dead: QEMU has written everything; drain what the pipe
	 * still holds, waiting a little for the daemon to close its end. */
	while (console_fd >= 0) {
		struct pollfd p = { .fd = console_fd, .events = POLLIN };

		if (poll(&p, 1, 2000) <= 0 || !copy_console(console_fd)) {
			close(console_fd);
			console_fd = -1;
		}
	}
	if (vmc_get_vm_info(st->cl, st->id, &vm, &err) < 0)
		return run_failed(&err);
	if (st->o->events && !st->ctx->json && !vm.has_exit_code && vm.death_reason != VMC_DEATH_SHUTDOWN)
		fprintf(stderr, "vmctl: vm %s died: %s%s%s\n", st->name, vmc_death_reason_name(vm.death_reason),
			*vm.message ? ": " : "", vm.message);
	code = vmc_exit_code(&vm);
	vmc_vm_info_clear(&vm);
	return code;
}

int cmd_run(struct vmctl_ctx *ctx, int argc, char **argv)
{
	struct vm_error perr = { 0 };
	struct vmc_error err = { 0 };
	struct cmd_run_opts o;
	struct vmc_vm_info info;
	struct run_state st = { .ctx = ctx, .o = &o };
	cleanup_close int console_r = -1;
	cleanup_close int console_w = -1;
	cleanup_close int sig_fd = -1;
	sigset_t mask;
	int r;

	r = cmd_run_parse(argc, argv, &o, &perr);
	if (r < 0) {
		cmd_run_opts_release(&o);
		vmctl_usage_error("run", &perr);
		return VMCTL_EXIT_FAILED;
	}
	if (r == VMCTL_PARSE_HELP) {
		cmd_run_opts_release(&o);
		fputs(cmd_run_help, stdout);
		return VMCTL_EXIT_OK;
	}
	if (o.console_file) {
		console_w = open(o.console_file, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOCTTY, 0644);
		if (console_w < 0) {
			fprintf(stderr, "vmctl: run: cannot open --console %s: %s\n", o.console_file, strerror(errno));
			cmd_run_opts_release(&o);
			return VMCTL_EXIT_FAILED;
		}
	} else if (!o.detach) {
		int p[2];

		if (pipe2(p, O_CLOEXEC) < 0) {
			fprintf(stderr, "vmctl: run: pipe: %s\n", strerror(errno));
			cmd_run_opts_release(&o);
			return VMCTL_EXIT_FAILED;
		}
		console_r = p[0];
		console_w = p[1];
		fd_set_nonblock(console_r, true);
	}
	o.cfg.console_out = console_w;
	if (cmd_run_root_apply(&o, &perr) < 0) {
		fprintf(stderr, "vmctl: run: %s\n", perr.message);
		cmd_run_opts_release(&o);
		return VMCTL_EXIT_FAILED;
	}
	/* the daemon takes absolute host paths only: resolve relative ones here */
	o.share_dirs = xcalloc(o.cfg.n_shares + 1, sizeof(*o.share_dirs));
	for (size_t i = 0; i < o.cfg.n_shares; i++) {
		if (o.shares[i].host_dir[0] == '/')
			continue;
		o.share_dirs[i] = realpath(o.shares[i].host_dir, NULL);
		if (!o.share_dirs[i]) {
			fprintf(stderr, "vmctl: run: --share %s: %s\n", o.shares[i].host_dir, strerror(errno));
			cmd_run_opts_release(&o);
			return VMCTL_EXIT_FAILED;
		}
		o.shares[i].host_dir = o.share_dirs[i];
	}

	st.cl = vmctl_connect(ctx);
	if (!st.cl) {
		cmd_run_opts_release(&o);
		return VMCTL_EXIT_FAILED;
	}
	r = vmc_create_vm(st.cl, &o.cfg, &info, &err);
	cmd_run_opts_release(&o);
	/* the daemon holds the write end now; ours would keep the pipe from ending */
	if (console_w >= 0)
		close(steal_fd(&console_w));
	if (r < 0) {
		vmc_close(st.cl);
		return run_failed(&err);
	}
	st.id = info.id;
	st.name = *info.name ? info.name : info.id;

	if (!o.detach && vmc_watch_vm(st.cl, st.id, false, &st.watch, &err) < 0) {
		r = run_failed(&err);
		goto out;
	}
	/* block the signals before StartVm: from then on they stop the VM */
	sigemptyset(&mask);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGTERM);
	if (!o.detach) {
		sigprocmask(SIG_BLOCK, &mask, NULL);
		sig_fd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
		if (sig_fd < 0) {
			fprintf(stderr, "vmctl: run: signalfd: %s\n", strerror(errno));
			r = VMCTL_EXIT_FAILED;
			goto out;
		}
	}
	st.state = info.state;
	st.progress = !o.detach && !ctx->json && isatty(STDERR_FILENO);
	clock_gettime(CLOCK_MONOTONIC, &st.t0);
	if (vmc_start_vm(st.cl, st.id, NULL, &err) < 0) {
		r = run_failed(&err);
		goto out;
	}
	if (o.detach) {
		if (ctx->json) {
			struct json_obj jo;

			json_begin(&jo, stdout);
			json_str(&jo, "id", info.id);
			json_str(&jo, "name", info.name);
			json_uint(&jo, "cid", info.cid);
			json_end(&jo);
		} else {
			printf("%s\n", info.id);
		}
		r = VMCTL_EXIT_OK;
		goto out;
	}
	r = run_attached(&st, steal_fd(&console_r), sig_fd);
out:
	vmc_watch_close(st.watch);
	vmc_close(st.cl);
	vmc_vm_info_clear(&info);
	if (!o.detach)
		sigprocmask(SIG_UNBLOCK, &mask, NULL);
	return r;
}
