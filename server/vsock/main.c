/* main.c - virtmgr-vsock: one vhost-user-vsock device backend per VM.
 *
 *   virtmgr-vsock (--vhost-user-fd N | --vhost-user PATH) --cid CID --uds PATH
 *                 [--uds-fd N] [--log-level error|warn|info|debug]
 *                 [--seccomp kill|log|off] [--no-seccomp]
 *
 * The vhost-user socket is a listening Unix socket, either inherited as fd N
 * (the daemon created it) or created at PATH. Exactly one QEMU connection is
 * served; the process exits 0 when QEMU disconnects and non-zero when QEMU or
 * the guest broke the protocol, so the daemon can tell a clean shutdown from
 * an infrastructure failure. Running the device in its own process means a
 * guest that breaks its device only takes down this process, and guest
 * memory is mapped here rather than in the daemon.
 *
 * Once QEMU is connected the process confines itself to the system calls
 * of its event loop (seccomp.h); a forbidden call kills it (SIGSYS), or with
 * --seccomp=log is logged and fails with EPERM, for development.
 * --no-seccomp (= --seccomp=off) is for debugging only.
 */
#include "config.h"

#include <errno.h>
#include <ev.h>
#include <getopt.h>
#include <sys/mman.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "lib/log.h"
#include "server/vsock/seccomp.h"
#include "server/vsock/vhost_user.h"
#include "server/vsock/vsock_dev.h"

struct backend {
	struct vu vu;
	struct vsock_dev *dev;
	uint64_t cid;
};

static void backend_kick(void *opaque, unsigned idx)
{
	struct backend *b = opaque;

	if (b->dev)
		vsock_dev_kick(b->dev, idx);
}

static int backend_get_config(void *opaque, uint32_t off, uint8_t *buf, uint32_t len)
{
	struct backend *b = opaque;
	uint8_t cfg[8];
	uint64_t le = htole64(b->cid);

	memcpy(cfg, &le, sizeof(cfg));
	if (off > sizeof(cfg) || len > sizeof(cfg) - off)
		return -1;
	memcpy(buf, cfg + off, len);
	return 0;
}

static void backend_reset(void *opaque)
{
	struct backend *b = opaque;

	if (b->dev)
		vsock_dev_reset(b->dev);
}

static void backend_fatal(void *opaque, const char *why)
{
	log_error("guest broke the vsock device: %s", why);
	exit(3);
}

static const struct vu_dev_ops backend_ops = {
	.kick = backend_kick,
	.get_config = backend_get_config,
	.reset = backend_reset,
};

static void usage(FILE *f)
{
	fprintf(f,
		"usage: virtmgr-vsock (--vhost-user-fd N | --vhost-user PATH) --cid CID --uds PATH\n"
		"                     [--uds-fd N] [--log-level error|warn|info|debug]\n"
		"                     [--seccomp kill|log|off] [--no-seccomp] [--stats-fd N]\n");
}

static int parse_fd(const char *s, const char *what)
{
	char *end;
	errno = 0;
	long v = strtol(s, &end, 10);
	if (errno || *end || v < 0 || v > 65535) {
		fprintf(stderr, "virtmgr-vsock: %s: bad fd \"%s\"\n", what, s);
		exit(2);
	}
	return (int)v;
}

static int listen_path(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };

	if (strlen(path) >= sizeof(sa.sun_path)) {
		log_error("%s: path too long", path);
		return -1;
	}
	strcpy(sa.sun_path, path);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	unlink(path);
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 1) < 0) {
		log_error("listen on %s: %s", path, strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "vhost-user-fd", required_argument, NULL, 'f' },
		{ "vhost-user", required_argument, NULL, 's' },
		{ "cid", required_argument, NULL, 'c' },
		{ "uds", required_argument, NULL, 'u' },
		{ "uds-fd", required_argument, NULL, 'U' },
		{ "log-level", required_argument, NULL, 'l' },
		{ "seccomp", required_argument, NULL, 'S' },
		{ "no-seccomp", no_argument, NULL, 'N' },
		{ "stats-fd", required_argument, NULL, 'T' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	int vfd = -1, ufd = -1, sfd = -1;
	const char *vpath = NULL, *uds = NULL;
	uint64_t cid = 0;
	enum log_level lvl = LOG_LVL_INFO;
	enum vsock_seccomp_mode sc = VSOCK_SECCOMP_KILL;
	int o;

	log_init("virtmgr-vsock", LOG_LVL_INFO);
	while ((o = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (o) {
		case 'f':
			vfd = parse_fd(optarg, "--vhost-user-fd");
			break;
		case 's':
			vpath = optarg;
			break;
		case 'c': {
			char *end;
			errno = 0;
			unsigned long long v = strtoull(optarg, &end, 10);
			if (errno || *end || v < 3 || v >= UINT32_MAX) {
				fprintf(stderr, "virtmgr-vsock: --cid: \"%s\" is not a guest CID (3..%u)\n", optarg,
					UINT32_MAX - 1);
				return 2;
			}
			cid = v;
			break;
		}
		case 'u':
			uds = optarg;
			break;
		case 'U':
			ufd = parse_fd(optarg, "--uds-fd");
			break;
		case 'l':
			if (!strcmp(optarg, "error"))
				lvl = LOG_LVL_ERROR;
			else if (!strcmp(optarg, "warn") || !strcmp(optarg, "warning"))
				lvl = LOG_LVL_WARN;
			else if (!strcmp(optarg, "info"))
				lvl = LOG_LVL_INFO;
			else if (!strcmp(optarg, "debug"))
				lvl = LOG_LVL_DEBUG;
			else {
				fprintf(stderr, "virtmgr-vsock: --log-level: unknown level \"%s\"\n", optarg);
				return 2;
			}
			break;
		case 'S':
			if (vsock_seccomp_parse(optarg, &sc) < 0) {
				fprintf(stderr, "virtmgr-vsock: --seccomp: \"%s\" is not kill, log or off\n", optarg);
				return 2;
			}
			break;
		case 'N':
			sc = VSOCK_SECCOMP_OFF;
			break;
		case 'T':
			sfd = parse_fd(optarg, "--stats-fd");
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind != argc || (vfd < 0) == !vpath || !cid || !uds) {
		usage(stderr);
		return 2;
	}
	log_set_level(lvl);
	signal(SIGPIPE, SIG_IGN);

	if (vpath && (vfd = listen_path(vpath)) < 0)
		return 1;
	fd_set_cloexec(vfd, true);
	/* an inherited socket may be non-blocking; waiting for QEMU is all we do */
	fd_set_nonblock(vfd, false);

	struct ev_loop *loop = ev_default_loop(EVFLAG_AUTO);
	struct backend b = { .cid = cid };
	struct vm_error err;
	/* the host-side socket exists before QEMU connects, so clients never race it */
	b.dev = vsock_dev_new(loop, cid, uds, ufd, vu_queue(&b.vu, 0), vu_queue(&b.vu, 1), backend_fatal, &b, &err);
	if (!b.dev) {
		log_error("%s", err.message);
		return 1;
	}
	if (sfd >= 0) {
		/* byte counters for virtmgrd (vsock_dev.h); mapped before seccomp */
		void *m = mmap(NULL, VSOCK_DEV_STATS_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, sfd, 0);

		if (m == MAP_FAILED)
			log_warn("--stats-fd %d: %s: no byte counters", sfd, strerror(errno));
		else
			vsock_dev_set_counters(b.dev, m);
		close(sfd);
	}
	int cfd;
	do
		cfd = accept4(vfd, NULL, NULL, SOCK_CLOEXEC);
	while (cfd < 0 && errno == EINTR);
	if (cfd < 0) {
		log_error("accept on the vhost-user socket: %s", strerror(errno));
		return 1;
	}
	close(vfd);
	log_info("QEMU connected; guest CID %" PRIu64 ", host sockets %s", cid, uds);
	vu_init(&b.vu, loop, cfd, &backend_ops, &b);
	/* set-up is over: from here on only the event loop's calls */
	if (vsock_seccomp_install(sc, &err) < 0) {
		log_error("%s", err.message);
		return 1;
	}
	if (sc == VSOCK_SECCOMP_OFF)
		log_warn("running without a seccomp filter (--no-seccomp)");
	ev_run(loop, 0);
	int status = b.vu.status < 0 ? 1 : b.vu.status;
	vsock_dev_free(b.dev);
	vu_cleanup(&b.vu);
	ev_loop_destroy(loop);
	return status;
}
