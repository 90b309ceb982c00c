/* fuzz_api.c - libFuzzer target: virtmgrd's API dispatch with the real
 * handlers (server/api.c) and VM state machine (server/vm.c), in process.
 *
 * A daemon is set up per input as main() does it, but with a QEMU binary and
 * a vsock backend that do not exist, so StartVm runs every check and then
 * fails (START_FAILED) without spawning anything; its run directory and
 * default guest files live in a temp dir made once. The peer is this
 * process on a socketpair (SO_PEERCRED: our own uid, so every method is
 * allowed). The input is a sequence of records
 *
 *     u8 method, u8 flags, u16 LE length, payload
 *
 * each sent as a ttrpc Request for VirtualizationService method
 * (method % 16) with that payload on the next odd stream id; flags bits 0-1
 * are the frame flags (bit 0 makes WatchVm a stream), bit 2 adds a 1 s
 * timeout_nano, bit 3 attaches two fds (a pipe's write end and a memfd) as
 * SCM_RIGHTS for FdRef fields. Payloads are whatever protobuf the input
 * holds: CreateVm configs with names, paths, sizes, disks, fds, env and
 * args; VM references by id or name; states, ports, log kinds. Replies are
 * read and dropped. After the last record the loop runs until idle, the
 * client side closes (owned VMs die with it), detached VMs are shut down,
 * the server is freed, and the daemon's fd count must be what it was.
 */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "lib/log.h"
#include "lib/ttrpc.h"
#include "protos/ttrpc.pb-c.h"
#include "server/api.h"
#include "server/daemon.h"
#include "server/vm.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const fuzz_methods[16] = {
	"CreateVm",	 "StartVm",	     "StopVm",	     "KillVm",	 "GetVmInfo",	  "ListVms",
	"WatchVm",	 "WaitVm",	     "ConnectVsock", "OpenLog",	 "AttachConsole", "AllocateInstanceId",
	"GetDaemonInfo", "IsFeatureEnabled", "SuspendVm",    "ResumeVm",
};

static char fuzz_dir[64];
static char fuzz_run[96], fuzz_guest[96];

static void fuzz_teardown(void)
{
	remove_tree(fuzz_dir);
}

static void fuzz_setup(void)
{
	char path[160];
	int fd;

	if (fuzz_dir[0])
		return;
	/* the loop's own fds (epoll, eventfd) exist before the first count */
	ev_run(ev_default_loop(EVFLAG_AUTO), EVRUN_NOWAIT);
	log_init("fuzz_api", LOG_LVL_ERROR);
	log_set_level((enum log_level)0);
	snprintf(fuzz_dir, sizeof(fuzz_dir), "/tmp/fuzz_api.XXXXXX");
	if (!mkdtemp(fuzz_dir))
		abort();
	atexit(fuzz_teardown);
	snprintf(fuzz_run, sizeof(fuzz_run), "%s/run", fuzz_dir);
	snprintf(fuzz_guest, sizeof(fuzz_guest), "%s/guest", fuzz_dir);
	if (mkdir_p(fuzz_run, 0755) < 0 || mkdir_p(fuzz_guest, 0755) < 0)
		abort();
	for (int i = 0; i < 2; i++) {
		snprintf(path, sizeof(path), "%s/%s", fuzz_guest, i ? "initramfs.img" : "vmlinuz");
		fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
		if (fd < 0 || write(fd, "not a kernel\n", 13) != 13)
			abort();
		close(fd);
	}
}

static unsigned fuzz_fd_count(void)
{
	DIR *d = opendir("/proc/self/fd");
	unsigned n = 0;

	if (!d)
		return 0;
	while (readdir(d))
		n++;
	closedir(d);
	return n;
}

static void on_close(struct ttrpc_conn *conn, void *opaque)
{
	vm_conn_closed(opaque, ttrpc_conn_id(conn));
}

static void drain(int fd)
{
	uint8_t buf[65536];

	while (read(fd, buf, sizeof(buf)) > 0)
		;
}

static void send_record(int sock, uint32_t sid, uint8_t method, uint8_t flags, const uint8_t *payload, size_t len)
{
	Ttrpc__Request req = TTRPC__REQUEST__INIT;
	struct ttrpc_header h = { .stream_id = sid, .type = TTRPC_TYPE_REQUEST, .flags = flags & 3 };
	union {
		char buf[CMSG_SPACE(2 * sizeof(int))];
		struct cmsghdr align;
	} cbuf;
	struct msghdr mh = { 0 };
	struct iovec iov[2];
	uint8_t hdr[TTRPC_HEADER_SIZE];
	cleanup_free uint8_t *body = NULL;
	int fds[2] = { -1, -1 }, p[2];
	size_t blen = 0;

	req.service = "virtmgr.v1.VirtualizationService";
	req.method = (char *)fuzz_methods[method % 16];
	req.payload.data = (uint8_t *)payload;
	req.payload.len = len;
	req.timeout_nano = flags & 4 ? 1000000000 : 0;
	body = ttrpc_pack(&req.base, &blen);
	h.length = (uint32_t)blen;
	ttrpc_header_encode(&h, hdr);
	iov[0] = (struct iovec){ hdr, sizeof(hdr) };
	iov[1] = (struct iovec){ body, blen };
	mh.msg_iov = iov;
	mh.msg_iovlen = 2;
	if ((flags & 8) && pipe2(p, O_CLOEXEC) == 0) {
		struct cmsghdr *c;

		close(p[0]);
		fds[0] = p[1];
		fds[1] = memfd_create("fuzz-api", MFD_CLOEXEC);
		if (fds[1] >= 0) {
			memset(&cbuf, 0, sizeof(cbuf));
			mh.msg_control = cbuf.buf;
			mh.msg_controllen = CMSG_SPACE(sizeof(fds));
			c = CMSG_FIRSTHDR(&mh);
			c->cmsg_level = SOL_SOCKET;
			c->cmsg_type = SCM_RIGHTS;
			c->cmsg_len = CMSG_LEN(sizeof(fds));
			memcpy(CMSG_DATA(c), fds, sizeof(fds));
		}
	}
	if (sendmsg(sock, &mh, MSG_NOSIGNAL) < 0 && errno != EPIPE && errno != ECONNRESET)
		abort();
	for (int i = 0; i < 2; i++)
		if (fds[i] >= 0)
			close(fds[i]);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct daemon d;
	struct vm_error err = { 0 };
	unsigned fds_before;
	uint32_t sid = 1;
	size_t pos = 0;
	int sv[2];

	fuzz_setup();
	fds_before = fuzz_fd_count();
	memset(&d, 0, sizeof(d));
	d.loop = ev_default_loop(EVFLAG_AUTO);
	d.cfg = (struct daemon_config){
		.socket_path = NULL,
		.run_dir = fuzz_run,
		.group = "virtualmachine",
		.guest_dir = fuzz_guest,
		.qemu_binary = "/nonexistent/qemu-system-x86_64",
		.vsock_mode = "user",
		.cid_min = 2048,
		.cid_max = 2051,
		.max_vms = 6,
		.limits = { .max_connections = 8, .max_streams_per_conn = 32, .max_out_bytes = 1u << 20 },
		.default_boot_timeout_ms = 60000,
		.default_stop_timeout_ms = 10000,
		.client_fd = -1,
		.ready_fd = -1,
		.sandbox = true,
		.vsock_backend = "/nonexistent/virtmgr-vsock",
	};
	d.accel = "tcg";
	snprintf(d.accel_reason, sizeof(d.accel_reason), "fuzz");
	d.vsock_mode = "user";
	d.group_gid = (gid_t)-1;
	d.next_cid = d.cfg.cid_min;
	d.api = ttrpc_server_new(d.loop);
	ttrpc_server_set_limits(d.api, &d.cfg.limits);
	ttrpc_server_set_conn_callbacks(d.api, NULL, on_close, &d);
	api_register(&d);

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		abort();
	if (!ttrpc_server_adopt(d.api, sv[1], &err))
		abort();
	fd_set_nonblock(sv[0], true);
	while (pos + 4 <= size) {
		uint8_t method = data[pos], flags = data[pos + 1];
		size_t len = MIN((size_t)(data[pos + 2] | data[pos + 3] << 8), size - pos - 4);

		send_record(sv[0], sid, method, flags, data + pos + 4, len);
		sid += 2;
		pos += 4 + len;
		for (int i = 0; i < 4; i++)
			ev_run(d.loop, EVRUN_NOWAIT);
		drain(sv[0]);
	}
	for (int i = 0; i < 8; i++)
		ev_run(d.loop, EVRUN_NOWAIT);
	drain(sv[0]);
	close(sv[0]);
	for (int i = 0; i < 8 && ttrpc_server_conn_count(d.api); i++)
		ev_run(d.loop, EVRUN_NOWAIT);
	vm_shutdown_all(&d);
	ttrpc_server_free(d.api);
	for (int i = 0; i < 4; i++)
		ev_run(d.loop, EVRUN_NOWAIT);
	if (fuzz_fd_count() != fds_before) {
		fprintf(stderr, "fuzz_api: %u fds before the input, %u after\n", fds_before, fuzz_fd_count());
		abort();
	}
	return 0;
}
