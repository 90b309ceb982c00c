/* main.c - virtmgrd: option parsing, listeners (Unix socket, AF_VSOCK,
 * systemd LISTEN_FDS, or one client's socketpair in early spawn mode), signal
 * handling and the event loop. After start-up the daemon never exit()s:
 * errors are answered on the RPC that caused them.
 *
 * --idle-exit SEC (socket activation only): an ev_timer runs while no client
 * is connected; on_conn_open stops it, the last on_conn_close re-arms it.
 * When it fires with live VMs it re-arms itself (VMs end without a client
 * connection changing), so the daemon leaves the event loop at the first
 * expiry that finds no connection and no live VM; systemd keeps the socket
 * and starts the daemon again on the next connection.
 */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <grp.h>
#include <libgen.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/log.h"
#include "server/accel.h"
#include "server/api.h"
#include "server/caller.h"
#include "server/crashstore.h"
#include "server/servicevm.h"
#include "server/diskstore.h"
#include "server/daemon.h"
#include "server/early.h"
#include "server/metrics.h"
#include "server/sandbox.h"
#include "server/uidpool.h"
#include "server/vm.h"
#include "server/vm-diskgrow.h"
#include "server/vm-health.h"
#include "server/vm-stats.h"
#include "server/vms.h"
#include "server/vsock_host.h"

#define DEFAULT_RUN_DIR "/run/virtmgr"
#define DEFAULT_SOCKET DEFAULT_RUN_DIR "/virtmgrd.sock"
#define DEFAULT_STATE_DIR "/var/lib/virtmgr"
/* Early mode: under --root, so that nothing is written outside it. */
#define EARLY_SOCKET "/run/virtmgr/early.sock"
#define EARLY_RUN_DIR "/mnt/vm/early"

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: virtmgrd [OPTION]...\n"
		"The virtmgr VM manager daemon.\n\n"
		"  --socket PATH          listen on this Unix socket (default " DEFAULT_SOCKET
		")\n"
		"  --run-dir DIR          VM run directories under DIR/vms (default " DEFAULT_RUN_DIR
		")\n"
		"  --state-dir DIR        disk images under DIR/images (default " DEFAULT_STATE_DIR
		")\n"
		"  --group NAME           members may create VMs (default virtualmachine)\n"
		"  --guest-dir DIR        default guest kernel + initramfs (default " PKGDATADIR
		"/guest)\n"
		"  --qemu PATH            QEMU binary (default " QEMU_SYSTEM
		")\n"
		"  --accel kvm|tcg        override the accelerator choice\n"
		"  --vsock-mode MODE      auto, kernel (vhost-vsock) or user (vhost-user backend)\n"
		"  --cid-range MIN-MAX    CIDs for regular VMs (default 2048-65535)\n"
		"  --vsock-port PORT      also serve the API on AF_VSOCK PORT\n"
		"  --max-vms N            refuse CreateVm beyond N live VMs (default 256)\n"
		"  --max-connections N    refuse connections beyond N (default 4096)\n"
		"  --max-streams N        concurrent calls per connection (default 256)\n"
		"  --boot-timeout SEC     DEAD/HANGUP when not STARTED by then (default 60)\n"
		"  --stop-timeout SEC     graceful phase of StopVm (default 10)\n"
		"  --agent-timeout SEC    default image: kill a VM whose agent has not connected by then (default 120, 0 = never)\n"
		"  --health-interval SEC  call each STARTED/READY VM's agent (Agent/Ping) this often\n"
		"                         (default 5, 0 = no checks)\n"
		"  --health-misses N      unanswered checks in a row that make the guest unresponsive:\n"
		"                         an ERROR event, then the VM's on_hang policy (default 3)\n"
		"  --log-max-size BYTES   rotate each VM log (console, guest, qemu) at this size;\n"
		"                         K and M suffixes (default 2M, at least 4K)\n"
		"  --log-keep N           rotated files kept per VM log, 0..15 (default 3)\n"
		"  --crash-max-reports N  crash reports kept per VM, oldest dropped first (default 50, 0 = none)\n"
		"  --crash-max-bytes BYTES  bytes of crash reports kept per VM (default 256M)\n"
		"  --crash-max-core BYTES compressed core of one report, at most (default 64M)\n"
		"  --crash-rate N         crash reports a VM may send per minute (default 10)\n"
		"  --crash-share PCT      all crash reports together: at most PCT%% of the state\n"
		"                         directory's filesystem (default 10)\n"
		"  --tcg-tb-size MIB      TCG translation buffer per VM, 0 = QEMU's own default\n"
		"                         (default " VMSTATS_TB_SIZE_DEFAULT_STR ")\n"
		"  --no-balloon           no virtio-balloon in new VMs (no memory given back, no SetBalloon)\n"
		"  --metrics ADDR         serve Prometheus /metrics on ADDR: a Unix socket path (mode 0600)\n"
		"                         or a loopback HOST:PORT (default: off)\n"
		"  --net-pool CIDR        tap mode's IPv4 addresses, a /30 per VM (default " NET_TAP_DEFAULT_POOL
		")\n"
		"  --no-sandbox           do not run QEMU with -sandbox on\n"
		"  --vm-uid-range MIN-MAX when root: the uids (and equal gids) VMs' processes run\n"
		"                         under, one per VM (default " UIDPOOL_DEFAULT_RANGE
		")\n"
		"  --vsock-backend PATH   the vhost-user-vsock backend (default " LIBEXECDIR
		"/virtmgr-vsock)\n"
		"  --early                early-boot mode (AVF early_virtmgr rules): declared VMs\n"
		"                         only, static CIDs, run dirs in ROOT" EARLY_RUN_DIR
		",\n"
		"                         socket ROOT" EARLY_SOCKET
		" unless --socket is given\n"
		"  --root DIR             early mode: prefix of every path (tests)\n"
		"  --early-xsd PATH       early mode: schema for early_vms*.xml\n"
		"  --client-fd N          serve only this connected socket; exit when it closes\n"
		"  --ready-fd N           write one byte to N once serving\n"
		"  --idle-exit SEC        socket-activated: exit after SEC idle seconds with\n"
		"                         no connection and no live VM (default: never)\n"
		"  --service-vm-idle SEC  stop the attestation Service VM after SEC seconds\n"
		"                         without a request (default 30, 0 = never)\n"
		"  --log-level LEVEL      error, warning, info (default) or debug\n"
		"  --help, --version\n");
}

static int parse_u32(const char *opt, const char *s, uint32_t min, uint32_t max, uint32_t *out)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || end == s || *end || v < min || v > max || s[0] == '-') {
		fprintf(stderr, "virtmgrd: %s: \"%s\" is not a number in %u..%u\n", opt, s, min, max);
		return -1;
	}
	*out = (uint32_t)v;
	return 0;
}

/* BYTES with an optional K or M suffix (powers of 1024), as --log-max-size takes it. */
static int parse_size(const char *opt, const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
	unsigned long long v;
	char *end;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (!errno && end != s && s[0] != '-') {
		if ((*end == 'K' || *end == 'k') && v <= (ULLONG_MAX >> 10)) {
			v <<= 10;
			end++;
		} else if ((*end == 'M' || *end == 'm') && v <= (ULLONG_MAX >> 20)) {
			v <<= 20;
			end++;
		}
	}
	if (errno || end == s || *end || s[0] == '-' || v < min || v > max) {
		fprintf(stderr, "virtmgrd: %s: \"%s\" is not a size in %llu..%llu bytes (K and M suffixes allowed)\n",
			opt, s, (unsigned long long)min, (unsigned long long)max);
		return -1;
	}
	*out = v;
	return 0;
}

enum {
	OPT_SOCKET = 256,
	OPT_RUN_DIR,
	OPT_STATE_DIR,
	OPT_GROUP,
	OPT_GUEST_DIR,
	OPT_QEMU,
	OPT_ACCEL,
	OPT_VSOCK_MODE,
	OPT_CID_RANGE,
	OPT_VSOCK_PORT,
	OPT_MAX_VMS,
	OPT_MAX_CONN,
	OPT_MAX_STREAMS,
	OPT_BOOT_TIMEOUT,
	OPT_STOP_TIMEOUT,
	OPT_NO_SANDBOX,
	OPT_VM_UID_RANGE,
	OPT_NET_POOL,
	OPT_EARLY,
	OPT_ROOT,
	OPT_EARLY_XSD,
	OPT_CLIENT_FD,
	OPT_READY_FD,
	OPT_LOG_LEVEL,
	OPT_HELP,
	OPT_VERSION,
	OPT_AGENT_TIMEOUT,
	OPT_VSOCK_BACKEND,
	OPT_IDLE_EXIT,
	OPT_HEALTH_INTERVAL,
	OPT_HEALTH_MISSES,
	OPT_LOG_MAX_SIZE,
	OPT_LOG_KEEP,
	OPT_CRASH_MAX_REPORTS,
	OPT_CRASH_MAX_BYTES,
	OPT_CRASH_MAX_CORE,
	OPT_CRASH_RATE,
	OPT_CRASH_SHARE,
	OPT_TCG_TB_SIZE,
	OPT_SERVICE_VM_IDLE,
	OPT_NO_BALLOON,
	OPT_METRICS,
};

/* OpenLog passes a log and its rotated files in one reply. */
#define LOG_KEEP_MAX (TTRPC_MAX_FDS - 1)

/* --idle-exit state: lives in main()'s frame, reached through on_conn_*. */
struct idle_exit {
	struct daemon *d;
	ev_timer timer;
	uint32_t secs; /* 0 = never */
	unsigned nconns;
};

static int parse_args(int argc, char **argv, struct daemon_config *c, bool *socket_given, uint32_t *idle_secs)
{
	static const struct option opts[] = {
		{ "socket", required_argument, NULL, OPT_SOCKET },
		{ "run-dir", required_argument, NULL, OPT_RUN_DIR },
		{ "state-dir", required_argument, NULL, OPT_STATE_DIR },
		{ "group", required_argument, NULL, OPT_GROUP },
		{ "guest-dir", required_argument, NULL, OPT_GUEST_DIR },
		{ "qemu", required_argument, NULL, OPT_QEMU },
		{ "accel", required_argument, NULL, OPT_ACCEL },
		{ "vsock-mode", required_argument, NULL, OPT_VSOCK_MODE },
		{ "cid-range", required_argument, NULL, OPT_CID_RANGE },
		{ "vsock-port", required_argument, NULL, OPT_VSOCK_PORT },
		{ "max-vms", required_argument, NULL, OPT_MAX_VMS },
		{ "max-connections", required_argument, NULL, OPT_MAX_CONN },
		{ "max-streams", required_argument, NULL, OPT_MAX_STREAMS },
		{ "boot-timeout", required_argument, NULL, OPT_BOOT_TIMEOUT },
		{ "stop-timeout", required_argument, NULL, OPT_STOP_TIMEOUT },
		{ "agent-timeout", required_argument, NULL, OPT_AGENT_TIMEOUT },
		{ "health-interval", required_argument, NULL, OPT_HEALTH_INTERVAL },
		{ "health-misses", required_argument, NULL, OPT_HEALTH_MISSES },
		{ "log-max-size", required_argument, NULL, OPT_LOG_MAX_SIZE },
		{ "log-keep", required_argument, NULL, OPT_LOG_KEEP },
		{ "crash-max-reports", required_argument, NULL, OPT_CRASH_MAX_REPORTS },
		{ "crash-max-bytes", required_argument, NULL, OPT_CRASH_MAX_BYTES },
		{ "crash-max-core", required_argument, NULL, OPT_CRASH_MAX_CORE },
		{ "crash-rate", required_argument, NULL, OPT_CRASH_RATE },
		{ "crash-share", required_argument, NULL, OPT_CRASH_SHARE },
		{ "tcg-tb-size", required_argument, NULL, OPT_TCG_TB_SIZE },
		{ "no-balloon", no_argument, NULL, OPT_NO_BALLOON },
		{ "metrics", required_argument, NULL, OPT_METRICS },
		{ "no-sandbox", no_argument, NULL, OPT_NO_SANDBOX },
		{ "vm-uid-range", required_argument, NULL, OPT_VM_UID_RANGE },
		{ "net-pool", required_argument, NULL, OPT_NET_POOL },
		{ "vsock-backend", required_argument, NULL, OPT_VSOCK_BACKEND },
		{ "early", no_argument, NULL, OPT_EARLY },
		{ "root", required_argument, NULL, OPT_ROOT },
		{ "early-xsd", required_argument, NULL, OPT_EARLY_XSD },
		{ "client-fd", required_argument, NULL, OPT_CLIENT_FD },
		{ "ready-fd", required_argument, NULL, OPT_READY_FD },
		{ "log-level", required_argument, NULL, OPT_LOG_LEVEL },
		{ "idle-exit", required_argument, NULL, OPT_IDLE_EXIT },
		{ "service-vm-idle", required_argument, NULL, OPT_SERVICE_VM_IDLE },
		{ "help", no_argument, NULL, OPT_HELP },
		{ "version", no_argument, NULL, OPT_VERSION },
		{ NULL, 0, NULL, 0 },
	};
	bool run_dir_given = false, cid_range_given = false;
	uint32_t v;
	int o;

	while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (o) {
		case OPT_SOCKET:
			c->socket_path = optarg;
			*socket_given = true;
			break;
		case OPT_RUN_DIR:
			c->run_dir = optarg;
			run_dir_given = true;
			break;
		case OPT_STATE_DIR:
			c->state_dir = optarg;
			break;
		case OPT_GROUP:
			c->group = optarg;
			break;
		case OPT_GUEST_DIR:
			c->guest_dir = optarg;
			break;
		case OPT_QEMU:
			c->qemu_binary = optarg;
			break;
		case OPT_ACCEL:
			if (strcmp(optarg, "kvm") && strcmp(optarg, "tcg")) {
				fprintf(stderr, "virtmgrd: --accel: \"%s\" is not kvm or tcg\n", optarg);
				return -1;
			}
			c->accel = optarg;
			break;
		case OPT_VSOCK_MODE:
			if (strcmp(optarg, "auto") && strcmp(optarg, "kernel") && strcmp(optarg, "user")) {
				fprintf(stderr, "virtmgrd: --vsock-mode: \"%s\" is not auto, kernel or user\n", optarg);
				return -1;
			}
			c->vsock_mode = optarg;
			break;
		case OPT_CID_RANGE: {
			char *dash = strchr(optarg, '-');

			if (!dash) {
				fprintf(stderr, "virtmgrd: --cid-range: \"%s\" is not MIN-MAX\n", optarg);
				return -1;
			}
			*dash = '\0';
			cid_range_given = true;
			if (parse_u32("--cid-range", optarg, 3, UINT32_MAX - 1, &c->cid_min) < 0 ||
			    parse_u32("--cid-range", dash + 1, c->cid_min, UINT32_MAX - 1, &c->cid_max) < 0)
				return -1;
			break;
		}
		case OPT_VSOCK_PORT:
			if (parse_u32("--vsock-port", optarg, 1, UINT32_MAX - 1, &c->vsock_port) < 0)
				return -1;
			break;
		case OPT_MAX_VMS:
			if (parse_u32("--max-vms", optarg, 1, 1u << 20, &v) < 0)
				return -1;
			c->max_vms = v;
			break;
		case OPT_MAX_CONN:
			if (parse_u32("--max-connections", optarg, 1, 1u << 20, &v) < 0)
				return -1;
			c->limits.max_connections = v;
			break;
		case OPT_MAX_STREAMS:
			if (parse_u32("--max-streams", optarg, 1, 1u << 20, &v) < 0)
				return -1;
			c->limits.max_streams_per_conn = v;
			break;
		case OPT_BOOT_TIMEOUT:
			if (parse_u32("--boot-timeout", optarg, 1, 86400, &v) < 0)
				return -1;
			c->default_boot_timeout_ms = v * 1000;
			break;
		case OPT_STOP_TIMEOUT:
			if (parse_u32("--stop-timeout", optarg, 1, 86400, &v) < 0)
				return -1;
			c->default_stop_timeout_ms = v * 1000;
			break;
		case OPT_AGENT_TIMEOUT:
			if (parse_u32("--agent-timeout", optarg, 0, 86400, &v) < 0)
				return -1;
			c->agent_timeout_ms = v * 1000;
			break;
		case OPT_HEALTH_INTERVAL:
			if (parse_u32("--health-interval", optarg, 0, 3600, &v) < 0)
				return -1;
			c->health_interval_ms = v * 1000;
			break;
		case OPT_TCG_TB_SIZE:
			if (parse_u32("--tcg-tb-size", optarg, 0, 4096, &v) < 0)
				return -1;
			c->tcg_tb_size_mib = v;
			break;
		case OPT_METRICS:
			if (!*optarg) {
				fprintf(stderr, "virtmgrd: --metrics: empty address\n");
				return -1;
			}
			c->metrics_addr = optarg;
			break;
		case OPT_NO_BALLOON:
			c->no_balloon = true;
			break;
		case OPT_HEALTH_MISSES:
			if (parse_u32("--health-misses", optarg, 1, 1000, &v) < 0)
				return -1;
			c->health_misses = v;
			break;
		case OPT_LOG_MAX_SIZE:
			if (parse_size("--log-max-size", optarg, LOGFILE_MIN_BYTES, 1ull << 40,
				       &c->log_limits.max_bytes) < 0)
				return -1;
			break;
		case OPT_LOG_KEEP:
			if (parse_u32("--log-keep", optarg, 0, LOG_KEEP_MAX, &v) < 0)
				return -1;
			c->log_limits.keep = v;
			break;
		case OPT_CRASH_MAX_REPORTS:
			if (parse_u32("--crash-max-reports", optarg, 0, 100000, &c->crash_limits.max_reports) < 0)
				return -1;
			break;
		case OPT_CRASH_MAX_BYTES:
			if (parse_size("--crash-max-bytes", optarg, 0, 1ull << 40, &c->crash_limits.max_bytes) < 0)
				return -1;
			break;
		case OPT_CRASH_MAX_CORE:
			if (parse_size("--crash-max-core", optarg, 4096, 1ull << 40, &c->crash_limits.max_core) < 0)
				return -1;
			break;
		case OPT_CRASH_RATE:
			if (parse_u32("--crash-rate", optarg, 1, 100000, &c->crash_limits.rate) < 0)
				return -1;
			break;
		case OPT_CRASH_SHARE:
			if (parse_u32("--crash-share", optarg, 1, 100, &c->crash_limits.share_pct) < 0)
				return -1;
			break;
		case OPT_NO_SANDBOX:
			c->sandbox = false;
			break;
		case OPT_VM_UID_RANGE:
			c->vm_uid_range = optarg;
			break;
		case OPT_NET_POOL:
			c->net_pool = optarg;
			break;
		case OPT_VSOCK_BACKEND:
			c->vsock_backend = optarg;
			break;
		case OPT_EARLY:
			c->early = true;
			break;
		case OPT_ROOT:
			c->root = optarg;
			break;
		case OPT_EARLY_XSD:
			c->early_xsd = optarg;
			break;
		case OPT_CLIENT_FD:
			if (parse_u32("--client-fd", optarg, 0, 65535, &v) < 0)
				return -1;
			c->client_fd = (int)v;
			break;
		case OPT_READY_FD:
			if (parse_u32("--ready-fd", optarg, 0, 65535, &v) < 0)
				return -1;
			c->ready_fd = (int)v;
			break;
		case OPT_SERVICE_VM_IDLE:
			if (parse_u32("--service-vm-idle", optarg, 0, 86400 * 365, &c->service_vm_idle_s) < 0)
				return -1;
			break;
		case OPT_IDLE_EXIT:
			if (parse_u32("--idle-exit", optarg, 1, 86400 * 365, idle_secs) < 0)
				return -1;
			break;
		case OPT_LOG_LEVEL:
			if (!strcmp(optarg, "error"))
				log_set_level(LOG_LVL_ERROR);
			else if (!strcmp(optarg, "warning"))
				log_set_level(LOG_LVL_WARN);
			else if (!strcmp(optarg, "info"))
				log_set_level(LOG_LVL_INFO);
			else if (!strcmp(optarg, "debug"))
				log_set_level(LOG_LVL_DEBUG);
			else {
				fprintf(stderr, "virtmgrd: --log-level: \"%s\" is not error, warning, info or debug\n",
					optarg);
				return -1;
			}
			break;
		case OPT_HELP:
			usage(stdout);
			exit(0);
		case OPT_VERSION:
			printf("virtmgrd %s\n", PACKAGE_VERSION);
#ifdef VIRTMGR_TEST_HOOKS
			/* tests look for this line before using a hook (docs/virtmgrd.8) */
			printf("test hooks: on\n");
#endif
			exit(0);
		default:
			usage(stderr);
			return -1;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "virtmgrd: unexpected argument \"%s\"\n", argv[optind]);
		return -1;
	}
	if (c->root && !c->early) {
		fprintf(stderr, "virtmgrd: --root only applies with --early\n");
		return -1;
	}
	/* accepted (callers pass them whatever the mode), but they mean nothing here */
	if (c->early && run_dir_given)
		log_warn("--run-dir %s is not used with --early: early VMs run in ROOT" EARLY_RUN_DIR "/<cid>",
			 c->run_dir);
	if (c->early && cid_range_given)
		log_warn("--cid-range is not used with --early: early VMs have the CIDs their early_vms.xml declares");
	return 0;
}

static void on_conn_open(struct ttrpc_conn *conn, void *opaque)
{
	struct idle_exit *ie = opaque;

	/* early mode identifies the caller's executable now, not at CreateVm */
	caller_conn_open(ttrpc_conn_id(conn), ttrpc_conn_peer(conn), ie->d->cfg.early, ie->d->cfg.root);
	ie->nconns++;
	ev_timer_stop(ie->d->loop, &ie->timer);
}

static void on_idle_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct idle_exit *ie = w->data;
	struct daemon *d = ie->d;

	if (ie->nconns || d->nvms_alive || d->quitting) {
		if (!ie->nconns && !d->quitting)
			ev_timer_again(loop, w); /* VMs still run: look again later */
		return;
	}
	log_info("idle for %u s with no connection and no VM, exiting", ie->secs);
	d->quitting = true;
	vm_shutdown_all(d); /* frees the records of dead VMs */
	ev_break(loop, EVBREAK_ALL);
}

/*
 * Early mode: every path lives under the root (resolved, because the
 * caller's /proc/<pid>/exe is compared with it), the run directory is
 * ROOT/mnt/vm/early, the CID range reported is that of the partitions, and
 * without --socket the socket is ROOT/run/virtmgr/early.sock (not the
 * regular daemon's). @root_buf receives the strings @c now points to.
 */
static int early_config(struct daemon_config *c, bool socket_given, char **root_buf, char **run_dir_buf,
			char **socket_buf)
{
	const char *root = c->root && *c->root ? c->root : "/";
	uint32_t lo, hi;

	*root_buf = realpath(root, NULL);
	if (!*root_buf) {
		fprintf(stderr, "virtmgrd: --root %s: %s\n", root, strerror(errno));
		return -1;
	}
	if (!strcmp(*root_buf, "/"))
		(*root_buf)[0] = '\0';
	c->root = *root_buf;
	*run_dir_buf = xasprintf("%s" EARLY_RUN_DIR, c->root);
	c->run_dir = *run_dir_buf;
	if (!socket_given && c->client_fd < 0) {
		*socket_buf = xasprintf("%s" EARLY_SOCKET, c->root);
		c->socket_path = *socket_buf;
	}
	early_partition_cid_range(EARLY_SYSTEM, &c->cid_min, &hi);
	early_partition_cid_range(EARLY_ODM, &lo, &c->cid_max);
	return 0;
}

/* Spawn-per-client mode: the most the daemon waits for its children (QEMU,
 * vsock backends) to exit once its client is gone. */
#define CLIENT_GONE_DRAIN_S 10.0

static ev_timer drain_timer;

static void on_drain_timeout(struct ev_loop *loop, ev_timer *w, int revents)
{
	log_warn("children still running %.0f s after the client left, exiting anyway", CLIENT_GONE_DRAIN_S);
	ev_break(loop, EVBREAK_ALL);
}

static void on_conn_close(struct ttrpc_conn *conn, void *opaque)
{
	struct idle_exit *ie = opaque;
	struct daemon *d = ie->d;

	if (ie->nconns)
		ie->nconns--;
	if (ie->secs && !ie->nconns)
		ev_timer_again(d->loop, &ie->timer);
	vm_conn_closed(d, ttrpc_conn_id(conn));
	caller_conn_close(ttrpc_conn_id(conn));
	if (d->cfg.client_fd >= 0 && !d->quitting) {
		/*
		 * Spawn-per-client: our one client is gone. Kill its VMs, then
		 * let the loop run until the last child is reaped (the reapers'
		 * pidfd watchers are then all that keeps it alive), so that when
		 * this daemon is gone its QEMU and backends are too. The signal
		 * watchers (SIGTERM still ends the wait at once) and the drain
		 * timer, which bounds it, no longer count as activity (ev_unref).
		 */
		log_info("the client closed its connection, exiting");
		d->quitting = true;
		vm_shutdown_all(d);
		ev_timer_init(&drain_timer, on_drain_timeout, CLIENT_GONE_DRAIN_S, 0);
		ev_timer_start(d->loop, &drain_timer);
		for (int i = 0; i < 4; i++) /* sigterm, sigint, sighup, drain_timer */
			ev_unref(d->loop);
	}
}

static void on_signal(struct ev_loop *loop, ev_signal *w, int revents)
{
	struct daemon *d = w->data;

	if (w->signum == SIGHUP) {
		struct vm_error err = { 0 };

		if (!d->early)
			return;
		log_info("SIGHUP: re-reading early VM declarations");
		if (early_registry_reload(d->early, &err) < 0)
			log_warn("early VM declarations: %s (the previous table stays in use)", err.message);
		return;
	}
	log_info("signal %d: stopping (owned VMs are stopped, detached VMs keep running)", w->signum);
	d->quitting = true;
	vm_shutdown_all(d);
	ev_break(loop, EVBREAK_ALL);
}

/* systemd socket activation: LISTEN_PID must be us; fds start at 3. */
static int listen_systemd(struct daemon *d, int *count)
{
	const char *pid = getenv("LISTEN_PID"), *fds = getenv("LISTEN_FDS");
	struct vm_error err = { 0 };
	int n;

	*count = 0;
	if (!pid || !fds || (pid_t)strtol(pid, NULL, 10) != getpid())
		return 0;
	n = atoi(fds);
	for (int i = 0; i < n; i++) {
		fd_set_cloexec(3 + i, true);
		if (!ttrpc_server_listen_fd(d->api, 3 + i, &err)) {
			log_error("inherited fd %d: %s", 3 + i, err.message);
			return -1;
		}
	}
	unsetenv("LISTEN_PID");
	unsetenv("LISTEN_FDS");
	unsetenv("LISTEN_FDNAMES");
	*count = n;
	return 0;
}

static int listen_unix(struct daemon *d)
{
	struct vm_error err = { 0 };
	cleanup_free char *dir = xstrdup(d->cfg.socket_path);
	int r = mkdir_p(dirname(dir), 0755);

	if (r < 0) {
		log_error("cannot create the directory of %s: %s", d->cfg.socket_path, strerror(-r));
		return -1;
	}
	if (!ttrpc_server_listen_unix(d->api, d->cfg.socket_path, 0660, &err)) {
		log_error("%s", err.message);
		return -1;
	}
	if (geteuid() == 0 && d->group_exists && chown(d->cfg.socket_path, 0, d->group_gid) < 0)
		log_warn("cannot give %s to group %s: %s", d->cfg.socket_path, d->cfg.group, strerror(errno));
	log_info("listening on %s", d->cfg.socket_path);
	return 0;
}

/*
 * Fit the connection limit into the fd limit. Every connection costs two fds
 * (its socket and a pidfd pinning the peer), and every VM costs several
 * (QEMU's pidfd, console pipe, QMP socket, the vsock backend's pidfd, log
 * files). Were connections allowed to use up the fd
 * table, accept() would fail with EMFILE and new clients would wait in the
 * listen backlog with no answer, and StartVm would fail for lack of fds. So
 * the soft limit is raised to the hard one, a quarter of it (at least 32) is
 * kept for everything but connections, and --max-connections is lowered to
 * what the rest holds: clients beyond it are refused at once (accepted and
 * closed).
 */
static void fit_connection_limit(struct daemon *d)
{
	struct rlimit rl;
	rlim_t reserve, budget;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		return;
	if (rl.rlim_cur < rl.rlim_max) {
		rlim_t want = rl.rlim_max == RLIM_INFINITY ? 1u << 20 : rl.rlim_max;

		rl.rlim_cur = want;
		if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
			getrlimit(RLIMIT_NOFILE, &rl);
	}
	if (rl.rlim_cur == RLIM_INFINITY)
		return;
	reserve = MAX(rl.rlim_cur / 4, (rlim_t)32);
	budget = rl.rlim_cur > reserve + 2 ? (rl.rlim_cur - reserve) / 2 : 1;
	if (d->cfg.limits.max_connections && d->cfg.limits.max_connections <= budget)
		return;
	log_warn("RLIMIT_NOFILE is %llu: accepting at most %llu connections (not %u) so that %llu fds stay for VMs",
		 (unsigned long long)rl.rlim_cur, (unsigned long long)budget, d->cfg.limits.max_connections,
		 (unsigned long long)reserve);
	d->cfg.limits.max_connections = (unsigned)budget;
}

static void resolve_vsock_mode(struct daemon *d)
{
	bool kernel = vsock_host_probe() == VSOCK_HOST_KERNEL;

	if (!strcmp(d->cfg.vsock_mode, "kernel") || (!strcmp(d->cfg.vsock_mode, "auto") && kernel))
		d->vsock_mode = "kernel";
	else
		d->vsock_mode = "user";
}

int main(int argc, char **argv)
{
	struct daemon d = { 0 };
	struct idle_exit idle = { .d = &d };
	struct vm_error err = { 0 };
	bool socket_given = false;
	struct group *gr;
	int inherited = 0;
	cleanup_free char *early_root = NULL, *early_run_dir = NULL, *early_socket = NULL;

	log_init("virtmgrd", LOG_LVL_INFO);
	d.cfg = (struct daemon_config){
		.socket_path = DEFAULT_SOCKET,
		.run_dir = DEFAULT_RUN_DIR,
		.state_dir = DEFAULT_STATE_DIR,
		.group = "virtualmachine",
		.guest_dir = PKGDATADIR "/guest",
		.qemu_binary = QEMU_SYSTEM,
		.vsock_mode = "auto",
		.cid_min = 2048,
		.cid_max = 65535,
		.max_vms = 256,
		.limits = { .max_connections = 4096, .max_streams_per_conn = 256, .max_out_bytes = 8u << 20 },
		.default_boot_timeout_ms = 60000,
		.default_stop_timeout_ms = 10000,
		.agent_timeout_ms = VMS_DEFAULT_AGENT_TIMEOUT_MS,
		.health_interval_ms = VM_HEALTH_DEFAULT_INTERVAL_MS,
		.health_misses = VM_HEALTH_DEFAULT_MISSES,
		.tcg_tb_size_mib = VMSTATS_TB_SIZE_DEFAULT,
		.root = NULL,
		.client_fd = -1,
		.ready_fd = -1,
		.sandbox = true,
		.vm_uid_range = UIDPOOL_DEFAULT_RANGE,
		.net_pool = NET_TAP_DEFAULT_POOL,
		.log_limits = logfile_limits_default(),
		.crash_limits = { .max_reports = CRASH_DEFAULT_MAX_REPORTS,
				  .max_bytes = CRASH_DEFAULT_MAX_BYTES,
				  .max_core = CRASH_DEFAULT_MAX_CORE,
				  .rate = CRASH_DEFAULT_RATE,
				  .share_pct = CRASH_DEFAULT_SHARE_PCT },
		.service_vm_idle_s = SERVICEVM_DEFAULT_IDLE_S,
	};
	if (parse_args(argc, argv, &d.cfg, &socket_given, &idle.secs) < 0)
		return 2;
	if (d.cfg.early && early_config(&d.cfg, socket_given, &early_root, &early_run_dir, &early_socket) < 0)
		return 2;
	{
		uint32_t lo, hi;

		if (uidpool_parse_range(d.cfg.vm_uid_range, geteuid(), &lo, &hi, &err) < 0) {
			fprintf(stderr, "virtmgrd: --vm-uid-range: %s\n", err.message);
			return 2;
		}
		/* only root can give each VM's processes a uid of their own */
		d.sandboxed = geteuid() == 0;
		d.uids = uidpool_new(lo, hi);
	}
	if (net_pool_parse(&d.net_pool, d.cfg.net_pool, &err) < 0) {
		fprintf(stderr, "virtmgrd: --net-pool: %s\n", err.message);
		return 2;
	}
	/* the host's nftables and forwarding are touched at the first tap VM */
	if (d.cfg.early) {
		d.net_pool.tried = true;
		snprintf(d.net_pool.why, sizeof(d.net_pool.why), "not for early VMs");
	}
	signal(SIGPIPE, SIG_IGN);

	d.loop = ev_default_loop(EVFLAG_AUTO | EVFLAG_NOSIGMASK);
	if (d.cfg.accel) {
		d.accel = d.cfg.accel;
		snprintf(d.accel_reason, sizeof(d.accel_reason), "chosen with --accel");
	} else {
		d.accel = accel_detect(NULL, NULL, d.accel_reason, sizeof(d.accel_reason));
	}
	resolve_vsock_mode(&d);
	if (!d.cfg.vsock_backend)
		d.cfg.vsock_backend = getenv("VIRTMGR_VSOCK_BACKEND") ? getenv("VIRTMGR_VSOCK_BACKEND")
								      : LIBEXECDIR "/virtmgr-vsock";
	if (!strcmp(d.vsock_mode, "user") && access(d.cfg.vsock_backend, X_OK) < 0)
		log_warn("vsock backend %s: %s (VMs will fail to start; see --vsock-backend)", d.cfg.vsock_backend,
			 strerror(errno));
	gr = getgrnam(d.cfg.group);
	d.group_exists = gr != NULL;
	d.group_gid = gr ? gr->gr_gid : (gid_t)-1;
	d.next_cid = d.cfg.cid_min;
	if (mkdir_p(d.cfg.run_dir, 0755) < 0) {
		log_error("cannot create run directory %s: %s", d.cfg.run_dir, strerror(errno));
		return 1;
	}
	if (d.sandboxed && !d.cfg.early) {
		/* each VM's uid must reach its own run dir (and the sockets in it)
		 * by path, without listing the others: search-only */
		cleanup_free char *vms = xasprintf("%s/vms", d.cfg.run_dir);

		if (mkdir_p(vms, 0711) < 0 || chmod(vms, 0711) < 0) {
			log_error("cannot create %s: %s", vms, strerror(errno));
			return 1;
		}
		/* said now; each VM start refuses it with the same message */
		if (sandbox_dir_reachable(vms, &err) < 0)
			log_warn("%s", err.message);
	}

	if (d.cfg.early && early_registry_new(d.cfg.root, d.cfg.early_xsd, &d.early, &err) < 0) {
		log_error("%s", err.message);
		return 1;
	}
	fit_connection_limit(&d);
	d.api = ttrpc_server_new(d.loop);
	ttrpc_server_set_limits(d.api, &d.cfg.limits);
	ttrpc_server_set_conn_callbacks(d.api, on_conn_open, on_conn_close, &idle);
	if (!d.cfg.early) {
		d.disks = diskstore_new(d.loop, d.cfg.state_dir);
		d.crashes = crashstore_new(d.cfg.state_dir, &d.cfg.crash_limits);
		d.servicevm = servicevm_new(&d, d.cfg.service_vm_idle_s);
	}
	if (d.disks)
		diskstore_set_online_grow(d.disks, vm_disk_grow, &d); /* server/vm-diskgrow.c */
	api_register(&d);
	vm_stats_register(&d);
	d.vms_server = vms_server_new(d.loop, d.cfg.agent_timeout_ms);
	vm_health_start(&d);

	if (d.cfg.client_fd >= 0) {
		fd_set_cloexec(d.cfg.client_fd, true);
		if (!ttrpc_server_adopt(d.api, d.cfg.client_fd, &err)) {
			log_error("--client-fd %d: %s", d.cfg.client_fd, err.message);
			return 1;
		}
	} else {
		if (listen_systemd(&d, &inherited) < 0)
			return 1;
		if ((!inherited || socket_given) && listen_unix(&d) < 0)
			return 1;

		if (d.cfg.vsock_port) {
			if (!ttrpc_server_listen_vsock(d.api, (uint32_t)-1, d.cfg.vsock_port, &err)) {
				log_error("%s", err.message);
				return 1;
			}
			log_info("listening on AF_VSOCK port %u", d.cfg.vsock_port);
		}
	}
	if (idle.secs && !inherited) {
		log_info("--idle-exit applies only to a socket-activated daemon (LISTEN_FDS): ignored");
		idle.secs = 0;
	}
	if (d.cfg.metrics_addr && metrics_start(&d, d.cfg.metrics_addr, &err) < 0) {
		log_error("%s", err.message);
		return 1;
	}
	if (!d.cfg.early) {
		unsigned n = vm_restore_all(&d);

		if (n)
			log_info("took over %u VM%s from a previous virtmgrd", n, n == 1 ? "" : "s");
	}
	log_info("virtmgrd %s ready: mode %s, accelerator %s (%s), vsock %s, CIDs %u..%u", PACKAGE_VERSION,
		 d.cfg.early ? "early" : "regular", d.accel, d.accel_reason, d.vsock_mode, d.cfg.cid_min,
		 d.cfg.cid_max);
	if (d.sandboxed) {
		uint32_t lo, hi;

		uidpool_range(d.uids, &lo, &hi);
		log_info("VMs run as: uid range %u-%u, no capabilities, seccomp", lo, hi);
	} else {
		log_info("not root: VMs run as uid %u, like the daemon", (unsigned)geteuid());
	}
	if (d.cfg.early)
		log_info(
			"early mode: root %s, declarations in <root>/<partition>/etc/avf/early_vms*.xml, run dirs in %s",
			*d.cfg.root ? d.cfg.root : "/", d.cfg.run_dir);

	ev_signal_init(&d.sigterm, on_signal, SIGTERM);
	ev_signal_init(&d.sigint, on_signal, SIGINT);
	ev_signal_init(&d.sighup, on_signal, SIGHUP);
	d.sigterm.data = d.sigint.data = d.sighup.data = &d;
	ev_signal_start(d.loop, &d.sigterm);
	ev_signal_start(d.loop, &d.sigint);
	ev_signal_start(d.loop, &d.sighup);

	if (idle.secs) {
		ev_init(&idle.timer, on_idle_timer);
		idle.timer.repeat = idle.secs;
		idle.timer.data = &idle;
		if (!idle.nconns)
			ev_timer_again(d.loop, &idle.timer);
	}
	if (d.cfg.ready_fd >= 0) {
		if (write(d.cfg.ready_fd, "R", 1) != 1)
			log_warn("--ready-fd %d: %s", d.cfg.ready_fd, strerror(errno));
		close(d.cfg.ready_fd);
	}
	ev_run(d.loop, 0);
	if (ev_is_active(&drain_timer)) {
		for (int i = 0; i < 4; i++)
			ev_ref(d.loop);
		ev_timer_stop(d.loop, &drain_timer);
	}

	vm_health_stop(&d);
	metrics_stop(&d);
	/* before the server: a running image job still holds its call */
	diskstore_free(d.disks);
	servicevm_free(d.servicevm);
	ttrpc_server_free(d.api);
	vms_server_free(d.vms_server);
	early_registry_free(d.early);
	uidpool_free(d.uids);
	if (d.cfg.socket_path && !inherited && d.cfg.client_fd < 0)
		unlink(d.cfg.socket_path);
	crashstore_free(d.crashes);
	ev_loop_destroy(d.loop);
	return 0;
}
