/* test_vsock_host.c - the daemon's vsock interface and the backend process:
 *  - vsock_host_prepare() spawns the real virtmgr-vsock with its sockets and
 *    vsock_host_release() makes it exit (seen through the pidfd);
 *  - vsock_host_connect_async() against a hybrid socket peer played by the
 *    test: success without losing bytes after "OK", refusal, garbage,
 *    deadline, missing socket;
 *  - the backend driven by a vhost-user frontend played by the test (fault
 *    injection): GET_CONFIG returns the CID; a looping descriptor chain or a
 *    bad queue index makes the backend exit non-zero with the reason logged.
 */
#include "config.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>

#include "server/vsock/virtq.h"
#include "server/vsock_host.h"

static char dir[64];

static void setup(void)
{
	strcpy(dir, "/tmp/vsock-host-XXXXXX");
	cr_assert_not_null(mkdtemp(dir));
}

static void teardown(void)
{
	remove_tree(dir);
}

TestSuite(vsock_host, .init = setup, .fini = teardown);

static int listen_at(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	cr_assert(fd >= 0 && bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 && listen(fd, 8) == 0);
	return fd;
}

static bool wait_exit(int pidfd, int ms)
{
	struct pollfd p = { .fd = pidfd, .events = POLLIN };
	return poll(&p, 1, ms) == 1;
}

Test(vsock_host, prepare_spawns_backend_and_release_stops_it)
{
	struct vsock_host_vm v;
	struct vm_error err = { 0 };
	struct vsock_host_opts opts = { .backend = VSOCK_BACKEND_PATH, .log_level = "warn", .log_fd = -1 };
	char **args;

	cr_assert_eq(vsock_host_prepare(&v, dir, 7, VSOCK_HOST_USER, &opts, &err), 0, "%s", err.message);
	cr_assert_eq(v.mode, VSOCK_HOST_USER);
	cr_assert(v.backend_pid > 0 && v.backend_pidfd >= 0);
	cr_assert_eq(access(v.vhost_user_path, F_OK), 0);
	cr_assert_eq(access(v.uds_path, F_OK), 0);
	cr_assert_not(wait_exit(v.backend_pidfd, 100), "backend must wait for QEMU");

	size_t n = vsock_host_qemu_args(&v, false, 512, &args);
	cr_assert_eq(n, 8);
	cr_assert_str_eq(args[1], "memory-backend-memfd,id=mem,size=512M,share=on");
	cr_assert(strstr(args[5], "vsock-vhost.sock"));
	cr_assert_str_eq(args[7], "vhost-user-vsock-pci,chardev=vsock0");
	vsock_host_free_args(args);
	char *p = vsock_host_listen_path(&v, 9999);
	cr_assert(strstr(p, "/vsock.sock_9999"));
	free(p);

	int pidfd = dup(v.backend_pidfd);
	pid_t pid = v.backend_pid;
	char uds[256];
	snprintf(uds, sizeof(uds), "%s", v.uds_path);
	vsock_host_release(&v);
	cr_assert(wait_exit(pidfd, 10000), "backend still running after release");
	int st;
	cr_assert_eq(waitpid(pid, &st, 0), pid);
	cr_assert(WIFSIGNALED(st) && WTERMSIG(st) == SIGTERM);
	cr_assert_neq(access(uds, F_OK), 0, "sockets are removed");
	close(pidfd);
}

Test(vsock_host, prepare_rejects_bad_cid_and_long_paths)
{
	struct vsock_host_vm v;
	struct vm_error err = { 0 };
	char longdir[200];

	cr_assert_eq(vsock_host_prepare(&v, dir, 2, VSOCK_HOST_USER, NULL, &err), -1);
	cr_assert(strstr(err.message, "CID 2"), "%s", err.message);
	memset(longdir, 'x', sizeof(longdir) - 1);
	longdir[0] = '/';
	longdir[sizeof(longdir) - 1] = '\0';
	cr_assert_eq(vsock_host_prepare(&v, longdir, 5, VSOCK_HOST_USER, NULL, &err), -1);
	cr_assert(strstr(err.message, "longer than"), "%s", err.message);
	cr_assert_eq(v.backend_pid, -1);
}

/* ---- async connect against a hybrid peer played here ---- */

struct result {
	bool done;
	int fd;
	struct vm_error err;
};

static void on_connect(void *opaque, int fd, const struct vm_error *err)
{
	struct result *r = opaque;

	r->done = true;
	r->fd = fd;
	if (err)
		r->err = *err;
}

static struct vsock_host_vm user_vm(char *path)
{
	struct vsock_host_vm v = {
		.mode = VSOCK_HOST_USER, .cid = 5, .uds_path = path, .backend_pid = -1, .backend_pidfd = -1
	};
	return v;
}

/* Start a connect, let it send its request, hand the server side back. */
static int start(struct ev_loop *loop, const struct vsock_host_vm *v, int lfd, struct result *r, double timeout)
{
	char req[32] = { 0 };
	struct vm_error err;

	cr_assert_not_null(vsock_host_connect_async(loop, v, 77, timeout, on_connect, r, &err), "%s", err.message);
	cr_assert_not(r->done, "callback must not run inside the call");
	int s = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	cr_assert(s >= 0);
	ev_run(loop, EVRUN_NOWAIT);
	cr_assert_eq(read(s, req, sizeof(req) - 1), 11);
	cr_assert_str_eq(req, "CONNECT 77\n");
	return s;
}

Test(vsock_host, connect_async_keeps_bytes_after_ok)
{
	struct ev_loop *loop = ev_loop_new(0);
	cleanup_free char *path = xasprintf("%s/h.sock", dir);
	int lfd = listen_at(path);
	struct vsock_host_vm v = user_vm(path);
	struct result r = { .fd = -1 };
	char buf[16] = { 0 };

	int s = start(loop, &v, lfd, &r, 30);
	cr_assert_eq(write(s, "OK 1073741824\nhello", 19), 19);
	while (!r.done)
		ev_run(loop, EVRUN_ONCE);
	cr_assert(r.fd >= 0, "%s", r.err.message);
	cr_assert_eq(fcntl(r.fd, F_GETFD) & FD_CLOEXEC, FD_CLOEXEC);
	cr_assert_eq(read(r.fd, buf, sizeof(buf)), 5);
	cr_assert_str_eq(buf, "hello");
	close(r.fd);
	close(s);
	close(lfd);
	ev_loop_destroy(loop);
}

Test(vsock_host, connect_async_refused_by_guest)
{
	struct ev_loop *loop = ev_loop_new(0);
	cleanup_free char *path = xasprintf("%s/h.sock", dir);
	int lfd = listen_at(path);
	struct vsock_host_vm v = user_vm(path);
	struct result r = { .fd = -1 };

	close(start(loop, &v, lfd, &r, 30));
	while (!r.done)
		ev_run(loop, EVRUN_ONCE);
	cr_assert_eq(r.fd, -1);
	cr_assert_eq(r.err.code, VM_UNAVAILABLE);
	cr_assert(strstr(r.err.message, "nothing listening in the guest"), "%s", r.err.message);
	close(lfd);
	ev_loop_destroy(loop);
}

Test(vsock_host, connect_async_garbage_reply)
{
	struct ev_loop *loop = ev_loop_new(0);
	cleanup_free char *path = xasprintf("%s/h.sock", dir);
	int lfd = listen_at(path);
	struct vsock_host_vm v = user_vm(path);
	struct result r = { .fd = -1 };

	int s = start(loop, &v, lfd, &r, 30);
	cr_assert_eq(write(s, "NOPE\n", 5), 5);
	while (!r.done)
		ev_run(loop, EVRUN_ONCE);
	cr_assert_eq(r.fd, -1);
	cr_assert(strstr(r.err.message, "NOPE"), "%s", r.err.message);
	close(s);
	close(lfd);
	ev_loop_destroy(loop);
}

Test(vsock_host, connect_async_deadline)
{
	struct ev_loop *loop = ev_loop_new(0);
	cleanup_free char *path = xasprintf("%s/h.sock", dir);
	int lfd = listen_at(path);
	struct vsock_host_vm v = user_vm(path);
	struct result r = { .fd = -1 };

	int s = start(loop, &v, lfd, &r, 0.05);
	while (!r.done)
		ev_run(loop, EVRUN_ONCE);
	cr_assert_eq(r.err.code, VM_DEADLINE_EXCEEDED, "%s", r.err.message);
	close(s);
	close(lfd);
	ev_loop_destroy(loop);
}

Test(vsock_host, connect_async_no_backend)
{
	struct ev_loop *loop = ev_loop_new(0);
	cleanup_free char *path = xasprintf("%s/missing.sock", dir);
	struct vsock_host_vm v = user_vm(path);
	struct result r = { .fd = -1 };
	struct vm_error err;

	cr_assert_not_null(vsock_host_connect_async(loop, &v, 1, 5, on_connect, &r, &err));
	cr_assert_not(r.done);
	while (!r.done)
		ev_run(loop, EVRUN_ONCE);
	cr_assert_eq(r.err.code, VM_UNAVAILABLE);
	cr_assert(strstr(r.err.message, "missing.sock"), "%s", r.err.message);
	ev_loop_destroy(loop);
}

Test(vsock_host, connect_cancel_never_calls_back)
{
	struct ev_loop *loop = ev_loop_new(0);
	cleanup_free char *path = xasprintf("%s/missing.sock", dir);
	struct vsock_host_vm v = user_vm(path);
	struct result r = { .fd = -1 };
	struct vm_error err;

	struct vsock_host_conn *c = vsock_host_connect_async(loop, &v, 1, 5, on_connect, &r, &err);
	vsock_host_connect_cancel(c);
	ev_run(loop, EVRUN_NOWAIT);
	cr_assert_not(r.done);
	ev_loop_destroy(loop);
}

/* ---- the backend under a frontend played here ---- */

struct fe {
	int sock;
	pid_t pid;
	char log[256];
	uint8_t *ram;
	int memfd;
};

#define FE_RAM (1u << 20)
#define FE_UADDR(fe, off) ((uint64_t)(uintptr_t)((fe)->ram + (off)))

static void fe_send(struct fe *fe, uint32_t req, uint32_t flags, const void *payload, uint32_t size, int *fds, int nfds)
{
	uint8_t buf[512];
	uint32_t hdr[3] = { req, 0x1 | flags, size };
	union {
		char c[CMSG_SPACE(8 * sizeof(int))];
		struct cmsghdr align;
	} cbuf;
	memcpy(buf, hdr, 12);
	if (size)
		memcpy(buf + 12, payload, size);
	struct iovec iov = { buf, 12 + size };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
	if (nfds) {
		mh.msg_control = cbuf.c;
		mh.msg_controllen = CMSG_SPACE(nfds * sizeof(int));
		struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(nfds * sizeof(int));
		memcpy(CMSG_DATA(c), fds, nfds * sizeof(int));
	}
	cr_assert_eq(sendmsg(fe->sock, &mh, MSG_NOSIGNAL), (ssize_t)(12 + size));
}

static uint32_t fe_reply(struct fe *fe, void *payload, uint32_t max)
{
	uint32_t hdr[3];
	cr_assert_eq(read(fe->sock, hdr, 12), 12);
	cr_assert_leq(hdr[2], max);
	cr_assert_eq(read(fe->sock, payload, hdr[2]), (ssize_t)hdr[2]);
	return hdr[2];
}

static void fe_start(struct fe *fe, uint64_t cid)
{
	char vpath[100], upath[100];
	snprintf(vpath, sizeof(vpath), "%s/vhost.sock", dir);
	snprintf(upath, sizeof(upath), "%s/vsock.sock", dir);
	snprintf(fe->log, sizeof(fe->log), "%s/backend.log", dir);
	int vfd = listen_at(vpath);
	fe->pid = fork();
	if (fe->pid == 0) {
		char cidbuf[32];
		int log = open(fe->log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		dup2(log, 2);
		dup2(vfd, 3);
		snprintf(cidbuf, sizeof(cidbuf), "%llu", (unsigned long long)cid);
		execl(VSOCK_BACKEND_PATH, "virtmgr-vsock", "--vhost-user-fd", "3", "--cid", cidbuf, "--uds", upath,
		      "--log-level", "debug", NULL);
		_exit(127);
	}
	close(vfd);
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", vpath);
	fe->sock = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	cr_assert_eq(connect(fe->sock, (struct sockaddr *)&sa, sizeof(sa)), 0);

	fe->memfd = memfd_create("guest", MFD_CLOEXEC);
	cr_assert(fe->memfd >= 0 && ftruncate(fe->memfd, FE_RAM) == 0);
	fe->ram = mmap(NULL, FE_RAM, PROT_READ | PROT_WRITE, MAP_SHARED, fe->memfd, 0);
	cr_assert_neq(fe->ram, MAP_FAILED);
}

static int fe_wait(struct fe *fe)
{
	int st;
	cr_assert_eq(waitpid(fe->pid, &st, 0), fe->pid);
	cr_assert(WIFEXITED(st));
	return WEXITSTATUS(st);
}

static char *fe_log(struct fe *fe)
{
	char *s = NULL;
	size_t len;
	read_file(fe->log, 65536, &s, &len, NULL);
	return s ? s : xstrdup("");
}

/* Negotiate, map memory and start the tx queue (1) with rings at 0/0x1000/0x2000. */
static void fe_setup_tx(struct fe *fe, int *kick)
{
	uint64_t u64;
	uint8_t buf[64];

	fe_send(fe, 1, 0, NULL, 0, NULL, 0); /* GET_FEATURES */
	cr_assert_eq(fe_reply(fe, &u64, 8), 8);
	cr_assert(u64 & (1ull << 32), "VERSION_1 offered");
	fe_send(fe, 15, 0, NULL, 0, NULL, 0); /* GET_PROTOCOL_FEATURES */
	fe_reply(fe, &u64, 8);
	cr_assert(u64 & (1ull << 9), "CONFIG offered");
	u64 = (1ull << 9) | (1ull << 3);
	fe_send(fe, 16, 0, &u64, 8, NULL, 0);
	fe_send(fe, 3, 0, NULL, 0, NULL, 0); /* SET_OWNER */
	uint32_t cfg[3] = { 0, 8, 0 };
	uint8_t creq[20] = { 0 };
	memcpy(creq, cfg, 12);
	fe_send(fe, 24, 0, creq, 20, NULL, 0); /* GET_CONFIG */
	cr_assert_eq(fe_reply(fe, buf, sizeof(buf)), 20);
	uint64_t cid;
	memcpy(&cid, buf + 12, 8);
	cr_assert_eq(le64toh(cid), 1234);

	u64 = (1ull << 32) | (1ull << 30);
	fe_send(fe, 2, 0x8, &u64, 8, NULL, 0); /* SET_FEATURES, NEED_REPLY */
	fe_reply(fe, &u64, 8);
	cr_assert_eq(u64, 0, "REPLY_ACK success");
	uint64_t mem[2 + 4] = { 1, 0x100000, FE_RAM, FE_UADDR(fe, 0), 0 };
	fe_send(fe, 5, 0, mem, 8 + 32, &fe->memfd, 1); /* SET_MEM_TABLE */
	uint32_t st[2] = { 1, 8 };
	fe_send(fe, 8, 0, st, 8, NULL, 0); /* SET_VRING_NUM 1 = 8 */
	st[1] = 0;
	fe_send(fe, 10, 0, st, 8, NULL, 0); /* SET_VRING_BASE */
	struct {
		uint32_t index, flags;
		uint64_t desc, used, avail, log;
	} addr = { 1, 0, FE_UADDR(fe, 0), FE_UADDR(fe, 0x2000), FE_UADDR(fe, 0x1000), 0 };
	fe_send(fe, 9, 0, &addr, sizeof(addr), NULL, 0);
	int call = eventfd(0, EFD_CLOEXEC);
	u64 = 1;
	fe_send(fe, 13, 0, &u64, 8, &call, 1); /* SET_VRING_CALL */
	*kick = eventfd(0, EFD_CLOEXEC);
	fe_send(fe, 12, 0, &u64, 8, kick, 1); /* SET_VRING_KICK */
	close(call);
}

Test(vsock_host, backend_stops_on_descriptor_loop)
{
	struct fe fe;
	int kick;

	fe_start(&fe, 1234);
	fe_setup_tx(&fe, &kick);
	struct vring_desc *d = (struct vring_desc *)fe.ram;
	d[0] = (struct vring_desc){ 0x100000 + 0x4000, 44, VRING_DESC_F_NEXT, 1 };
	d[1] = (struct vring_desc){ 0x100000 + 0x4000, 44, VRING_DESC_F_NEXT, 0 };
	struct vring_avail *a = (struct vring_avail *)(fe.ram + 0x1000);
	a->ring[0] = 0;
	__atomic_store_n(&a->idx, 1, __ATOMIC_RELEASE);
	uint64_t one = 1;
	cr_assert_eq(write(kick, &one, 8), 8);
	cr_assert_eq(fe_wait(&fe), 3);
	cleanup_free char *log = fe_log(&fe);
	cr_assert(strstr(log, "guest broke the vsock device") && strstr(log, "loop"), "%s", log);
	close(kick);
	close(fe.sock);
}

Test(vsock_host, backend_stops_on_bad_queue_index)
{
	struct fe fe;
	uint32_t st[2] = { 5, 8 };

	fe_start(&fe, 1234);
	fe_send(&fe, 8, 0, st, 8, NULL, 0);
	cr_assert_eq(fe_wait(&fe), 1);
	cleanup_free char *log = fe_log(&fe);
	cr_assert(strstr(log, "queue index 5 out of range"), "%s", log);
	close(fe.sock);
}

Test(vsock_host, backend_exits_0_when_frontend_leaves)
{
	struct fe fe;
	int kick;

	fe_start(&fe, 1234);
	fe_setup_tx(&fe, &kick);
	close(fe.sock);
	cr_assert_eq(fe_wait(&fe), 0);
	close(kick);
}

Test(vsock_host, client_giving_up_before_the_guest_answers_is_forgotten)
{
	struct fe fe;
	int kick;
	char upath[100];

	fe_start(&fe, 1234);
	fe_setup_tx(&fe, &kick); /* no rx queue: the REQUEST cannot reach the guest */
	snprintf(upath, sizeof(upath), "%s/vsock.sock", dir);
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", upath);
	int c = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	cr_assert_eq(connect(c, (struct sockaddr *)&sa, sizeof(sa)), 0);
	cr_assert_eq(write(c, "CONNECT 5\n", 10), 10);
	close(c);
	bool seen = false;
	for (int i = 0; i < 500 && !seen; i++) {
		cleanup_free char *log = fe_log(&fe);
		seen = strstr(log, "gave up before the guest answered") != NULL;
		if (!seen)
			usleep(20000);
	}
	cr_assert(seen, "backend did not notice the client leaving");
	close(fe.sock);
	cr_assert_eq(fe_wait(&fe), 0);
	close(kick);
}
