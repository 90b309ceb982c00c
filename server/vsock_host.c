/* vsock_host.c - guest vsock for the daemon: kernel vhost-vsock or the
 * per-VM virtmgr-vsock backend, behind one interface (see vsock_host.h).
 *
 * Why one backend process per VM: the backend maps all of its guest's memory
 * and parses everything the guest writes into its rings. In its own process
 * a guest that breaks its device can only kill that process (and so its own
 * VM); the daemon stays single-threaded, never maps guest memory, and only
 * watches a pidfd. Everything here is non-blocking except
 * vsock_host_connect(), which is for tools and tests.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>
#include <linux/vm_sockets.h>

#include "lib/log.h"
#include "lib/reaper.h"
#include "server/qemu.h"
#include "server/sandbox.h"
#include "server/vsock_host.h"
#include "server/vsock/vsock_dev.h"

#define VHOST_USER_NAME "vsock-vhost.sock"
#define UDS_NAME "vsock.sock"

enum vsock_host_mode vsock_host_probe(void)
{
	int fd = open("/dev/vhost-vsock", O_RDWR | O_CLOEXEC);

	if (fd < 0)
		return VSOCK_HOST_USER;
	close(fd);
	return VSOCK_HOST_KERNEL;
}

const char *vsock_host_mode_name(enum vsock_host_mode mode)
{
	switch (mode) {
	case VSOCK_HOST_KERNEL:
		return "kernel";
	case VSOCK_HOST_USER:
		return "user";
	case VSOCK_HOST_AUTO:
		break;
	}
	return "auto";
}

static int unix_addr(const char *path, struct sockaddr_un *sa, struct vm_error *err)
{
	memset(sa, 0, sizeof(*sa));
	sa->sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(sa->sun_path))
		return vm_error_set(err, VM_INVALID_ARGUMENT, "socket path %s is longer than %zu bytes", path,
				    sizeof(sa->sun_path) - 1);
	strcpy(sa->sun_path, path);
	return 0;
}

static int unix_listen(const char *path, int backlog, struct vm_error *err)
{
	struct sockaddr_un sa;

	if (unix_addr(path, &sa, err) < 0)
		return -1;
	cleanup_close int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return vm_error_errno(err, errno, "socket for %s", path);
	if (unlink(path) < 0 && errno != ENOENT)
		return vm_error_errno(err, errno, "remove stale %s", path);
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		return vm_error_errno(err, errno, "bind %s", path);
	if (listen(fd, backlog) < 0) {
		int e = errno;
		unlink(path);
		return vm_error_errno(err, e, "listen on %s", path);
	}
	return steal_fd(&fd);
}

/* A socket the VM's processes connect to by path must be theirs to write. */
static int socket_give(const char *path, uid_t uid, struct vm_error *err)
{
	if (uid && chown(path, uid, (gid_t)uid) < 0)
		return vm_error_errno(err, errno, "chown %s to uid %u", path, (unsigned)uid);
	return 0;
}

static const char *backend_binary(const struct vsock_host_opts *opts)
{
	const char *env = getenv("VIRTMGR_VSOCK_BACKEND");

	if (opts && opts->backend)
		return opts->backend;
	if (env && *env)
		return env;
	return LIBEXECDIR "/virtmgr-vsock";
}

static void vm_clear(struct vsock_host_vm *vm)
{
	if (vm->bytes)
		munmap(vm->bytes, VSOCK_DEV_STATS_SIZE);
	free(vm->vhost_user_path);
	free(vm->uds_path);
	memset(vm, 0, sizeof(*vm));
	vm->backend_pid = -1;
	vm->backend_pidfd = -1;
}

int vsock_host_prepare(struct vsock_host_vm *vm, const char *run_dir, uint32_t cid, enum vsock_host_mode mode,
		       const struct vsock_host_opts *opts, struct vm_error *err)
{
	memset(vm, 0, sizeof(*vm));
	vm->backend_pid = -1;
	vm->backend_pidfd = -1;
	if (cid < 3 || cid == UINT32_MAX)
		return vm_error_set(err, VM_INVALID_ARGUMENT, "guest CID %" PRIu32 " out of range 3..%u", cid,
				    UINT32_MAX - 1);
	if (mode == VSOCK_HOST_AUTO)
		mode = vsock_host_probe();
	vm->mode = mode;
	vm->cid = cid;
	if (mode == VSOCK_HOST_KERNEL)
		return 0;

	vm->vhost_user_path = xasprintf("%s/" VHOST_USER_NAME, run_dir);
	vm->uds_path = xasprintf("%s/" UDS_NAME, run_dir);
	/* "<uds>_<port>" must fit too: reserve room for the longest port */
	struct sockaddr_un sa;
	cleanup_free char *longest = xasprintf("%s_%u", vm->uds_path, UINT32_MAX);
	if (unix_addr(longest, &sa, err) < 0) {
		vm_clear(vm);
		return vm_error_prefix(err, "vsock for CID %" PRIu32, cid);
	}
	cleanup_close int vfd = unix_listen(vm->vhost_user_path, 1, err);
	if (vfd < 0) {
		vm_clear(vm);
		return -1;
	}
	cleanup_close int ufd = unix_listen(vm->uds_path, 128, err);
	if (ufd < 0) {
		unlink(vm->vhost_user_path);
		vm_clear(vm);
		return -1;
	}
	/* QEMU, under the VM's uid, connects to the vhost-user socket by path */
	const struct sandbox *confine = opts ? opts->confine : NULL;
	if (confine && confine->change_ids)
		vm->uid = confine->uid;
	cleanup_close int report_r = -1, report_w = -1;
	if (socket_give(vm->vhost_user_path, vm->uid, err) < 0 || socket_give(vm->uds_path, vm->uid, err) < 0) {
		unlink(vm->vhost_user_path);
		unlink(vm->uds_path);
		vm_clear(vm);
		return -1;
	}
	if (confine) {
		int p[2];

		if (pipe2(p, O_CLOEXEC) < 0) {
			unlink(vm->vhost_user_path);
			unlink(vm->uds_path);
			vm_clear(vm);
			return vm_error_errno(err, errno, "pipe for the vsock backend's sandbox report");
		}
		report_r = p[0];
		report_w = p[1];
	}

	const char *bin = backend_binary(opts);
	char cidbuf[16];
	snprintf(cidbuf, sizeof(cidbuf), "%" PRIu32, cid);
	const char *level = opts && opts->log_level ? opts->log_level : "info";
	int log_fd = opts ? opts->log_fd : -1;
	char *argv[] = { (char *)bin,	"--vhost-user-fd", "3",	    "--uds-fd", "4",
			 "--uds",	vm->uds_path,	   "--cid", cidbuf,	"--log-level",
			 (char *)level, "--stats-fd",	   "5",	    NULL };
	/* byte counters the backend keeps in shared memory for GetVmStats */
	cleanup_close int stats_fd = memfd_create("virtmgr-vsock-stats", MFD_CLOEXEC);
	if (stats_fd >= 0 && ftruncate(stats_fd, VSOCK_DEV_STATS_SIZE) == 0) {
		void *m = mmap(NULL, VSOCK_DEV_STATS_SIZE, PROT_READ, MAP_SHARED, stats_fd, 0);

		vm->bytes = m == MAP_FAILED ? NULL : m;
	}
	if (!vm->bytes) {
		close(steal_fd(&stats_fd));
		argv[ARRAY_SIZE(argv) - 3] = NULL;
	}

	/* Opened here, as the daemon: the child execs it by fd once it runs as
	 * the VM's uid, which need not be able to reach a build tree or any
	 * other directory the binary lives in, only to execute the file. */
	cleanup_close int exe_fd = open(bin, O_PATH | O_CLOEXEC);
	if (exe_fd < 0) {
		int e = errno;
		unlink(vm->vhost_user_path);
		unlink(vm->uds_path);
		vm_clear(vm);
		return vm_error_errno(err, e, "the vsock backend %s", bin);
	}

	pid_t pid = fork();
	if (pid < 0) {
		int e = errno;
		unlink(vm->vhost_user_path);
		unlink(vm->uds_path);
		vm_clear(vm);
		return vm_error_errno(err, e, "fork for the vsock backend");
	}
	if (pid == 0) {
		/* child: only async-signal-safe calls until exec */
		setsid();
		int devnull = open("/dev/null", O_RDWR);
		if (devnull >= 0) {
			dup2(devnull, 0);
			dup2(devnull, 1);
		}
		if (log_fd >= 0)
			dup2(log_fd, 2);
		/* move the sockets to 3 and 4 without clobbering each other, and the
		 * report pipe (close-on-exec) above them */
		int rep = report_w >= 0 ? fcntl(report_w, F_DUPFD_CLOEXEC, 10) : -1;
		int exe = fcntl(exe_fd, F_DUPFD_CLOEXEC, 10);
		int v = fcntl(vfd, F_DUPFD, 10), u = fcntl(ufd, F_DUPFD, 10);
		int st = stats_fd >= 0 ? fcntl(stats_fd, F_DUPFD, 10) : -1;
		if (v < 0 || u < 0 || exe < 0 || dup2(v, 3) < 0 || dup2(u, 4) < 0 || (report_w >= 0 && rep < 0) ||
		    (stats_fd >= 0 && (st < 0 || dup2(st, 5) < 0)))
			_exit(127);
		int keep[] = { 0, 1, 2, 3, 4, st >= 0 ? 5 : 0, exe, rep };
		fd_close_from(5, keep, ARRAY_SIZE(keep) - (rep < 0));
		sigset_t none;
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		signal(SIGPIPE, SIG_DFL);
		if (confine) {
			struct sandbox sb = *confine;

			sb.report_fd = rep;
			if (sandbox_enter(&sb) < 0)
				_exit(SANDBOX_EXIT_FAILED);
		}
		syscall(SYS_execveat, exe, "", argv, environ, AT_EMPTY_PATH);
		if (rep >= 0) {
			const char *name = strerrorname_np(errno);
			static const char what[] = "cannot execute the backend binary: ";

			if (write(rep, what, sizeof(what) - 1) < 0 ||
			    write(rep, name ? name : "?", name ? strlen(name) : 1) < 0) {
				/* nothing left to tell */
			}
		}
		_exit(127);
	}
	if (report_r >= 0) {
		/* EOF: the exec went ahead; a line: the child could not confine itself */
		char why[256];

		close(steal_fd(&report_w));
		if (sandbox_report_read(report_r, pid, why, sizeof(why))) {
			unlink(vm->vhost_user_path);
			unlink(vm->uds_path);
			vm_clear(vm);
			return vm_error_set(err, VM_FAILED_PRECONDITION, "the vsock backend could not be sandboxed: %s",
					    why);
		}
	}
	vm->backend_pid = pid;
	vm->backend_pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
	if (vm->backend_pidfd < 0) {
		int e = errno;
		kill(pid, SIGKILL);
		unlink(vm->vhost_user_path);
		unlink(vm->uds_path);
		vm_clear(vm);
		return vm_error_errno(err, e, "pidfd_open for the vsock backend");
	}
	fd_set_cloexec(vm->backend_pidfd, true);
	log_info("vsock backend %s pid %d for CID %" PRIu32 " (%s)", bin, (int)pid, cid, vm->uds_path);
	return 0;
}

void vsock_host_qemu_config(const struct vsock_host_vm *vm, struct qemu_config *cfg)
{
	cfg->vhost_user_vsock_socket = NULL;
	cfg->vhost_vsock_cid = 0;
	if (vm->mode == VSOCK_HOST_USER)
		cfg->vhost_user_vsock_socket = vm->vhost_user_path;
	else if (vm->mode == VSOCK_HOST_KERNEL)
		cfg->vhost_vsock_cid = vm->cid;
}

size_t vsock_host_qemu_args(const struct vsock_host_vm *vm, bool microvm, uint32_t memory_mib, char ***out)
{
	char **a = xcalloc(12, sizeof(char *));
	size_t n = 0;

	if (vm->mode == VSOCK_HOST_USER) {
		a[n++] = xstrdup("-object");
		a[n++] = xasprintf("memory-backend-memfd,id=mem,size=%" PRIu32 "M,share=on", memory_mib);
		a[n++] = xstrdup("-machine");
		a[n++] = xstrdup("memory-backend=mem");
		a[n++] = xstrdup("-chardev");
		a[n++] = xasprintf("socket,id=vsock0,path=%s", vm->vhost_user_path);
		a[n++] = xstrdup("-device");
		a[n++] = xstrdup(microvm ? "vhost-user-vsock-device,chardev=vsock0"
					 : "vhost-user-vsock-pci,chardev=vsock0");
		if (microvm) {
			a[n++] = xstrdup("-global");
			a[n++] = xstrdup("virtio-mmio.force-legacy=false");
		}
	} else if (vm->mode == VSOCK_HOST_KERNEL) {
		a[n++] = xstrdup("-device");
		a[n++] = xasprintf("%s,guest-cid=%" PRIu32, microvm ? "vhost-vsock-device" : "vhost-vsock-pci",
				   vm->cid);
	}
	a[n] = NULL;
	*out = a;
	return n;
}

void vsock_host_free_args(char **argv)
{
	if (!argv)
		return;
	for (char **p = argv; *p; p++)
		free(*p);
	free(argv);
}

char *vsock_host_listen_path(const struct vsock_host_vm *vm, uint32_t port)
{
	if (vm->mode != VSOCK_HOST_USER)
		return NULL;
	return xasprintf("%s_%" PRIu32, vm->uds_path, port);
}

int vsock_host_listen(const struct vsock_host_vm *vm, uint32_t port, struct vm_error *err)
{
	if (vm->mode == VSOCK_HOST_USER) {
		cleanup_free char *path = vsock_host_listen_path(vm, port);
		/* the backend, under the VM's uid, connects to it by path */
		cleanup_close int fd = unix_listen(path, 128, err);
		if (fd < 0 || socket_give(path, vm->uid, err) < 0) {
			if (fd >= 0)
				unlink(path);
			return -1;
		}
		return steal_fd(&fd);
	}
	struct sockaddr_vm sa = { .svm_family = AF_VSOCK, .svm_cid = VMADDR_CID_ANY, .svm_port = port };
	cleanup_close int fd = socket(AF_VSOCK, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return vm_error_errno(err, errno, "AF_VSOCK socket");
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 128) < 0)
		return vm_error_errno(err, errno, "listen on vsock port %" PRIu32, port);
	return steal_fd(&fd);
}

int vsock_host_accept(const struct vsock_host_vm *vm, int lfd, struct vm_error *err)
{
	struct sockaddr_vm sa;
	socklen_t len = sizeof(sa);
	int fd = accept4(lfd, (struct sockaddr *)&sa, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);

	if (fd < 0) {
		if (errno == EAGAIN || errno == EINTR || errno == ECONNABORTED) {
			errno = EAGAIN;
			if (err) {
				err->code = VM_UNAVAILABLE;
				err->message[0] = '\0';
			}
			return -1;
		}
		return vm_error_errno(err, errno, "accept");
	}
	if (vm->mode == VSOCK_HOST_KERNEL && (sa.svm_family != AF_VSOCK || sa.svm_cid != vm->cid)) {
		close(fd);
		return vm_error_set(err, VM_PERMISSION_DENIED,
				    "vsock connection from CID %u refused (expected %" PRIu32 ")", sa.svm_cid, vm->cid);
	}
	return fd;
}

/* ---- connecting ---- */

struct vsock_host_conn {
	struct ev_loop *loop;
	enum vsock_host_mode mode;
	uint32_t port;
	int fd;
	bool handshake_sent;
	char line[32];
	size_t linelen;
	ev_io io;
	ev_timer timer;
	ev_idle idle; /* delivers failures found before the loop ran */
	struct vm_error err;
	vsock_host_connect_cb cb;
	void *opaque;
};

static void conn_finish(struct vsock_host_conn *c, bool ok)
{
	int fd = ok ? steal_fd(&c->fd) : -1;
	vsock_host_connect_cb cb = c->cb;
	void *opaque = c->opaque;
	struct vm_error err = c->err;

	vsock_host_connect_cancel(c);
	cb(opaque, fd, ok ? NULL : &err);
}

/*
 * Advance the attempt. Return: 1 connected, 0 waiting, -1 failed (c->err set).
 */
static int conn_step(struct vsock_host_conn *c)
{
	if (c->mode == VSOCK_HOST_KERNEL) {
		int soerr = 0;
		socklen_t len = sizeof(soerr);
		if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &soerr, &len) < 0)
			soerr = errno;
		if (soerr == 0)
			return 1;
		if (soerr == EINPROGRESS || soerr == EALREADY)
			return 0;
		return vm_error_errno(&c->err, soerr, "vsock connect to port %" PRIu32, c->port);
	}
	if (!c->handshake_sent) {
		char req[32];
		int n = snprintf(req, sizeof(req), "CONNECT %" PRIu32 "\n", c->port);
		/* a fresh socket's send buffer takes these few bytes at once */
		if (send(c->fd, req, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT) != n)
			return vm_error_set_errno(&c->err, VM_UNAVAILABLE, errno,
						  "vsock backend handshake for port %" PRIu32, c->port);
		c->handshake_sent = true;
	}
	/* one byte at a time: the guest may send data right after "OK" */
	for (;;) {
		char ch;
		ssize_t r = recv(c->fd, &ch, 1, MSG_DONTWAIT);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0 && errno == EAGAIN)
			return 0;
		if (r <= 0)
			return vm_error_set(&c->err, VM_UNAVAILABLE,
					    "guest vsock port %" PRIu32
					    ": connection refused (nothing listening in the guest)",
					    c->port);
		if (ch == '\n')
			break;
		if (c->linelen + 1 >= sizeof(c->line))
			return vm_error_set(&c->err, VM_INTERNAL, "vsock backend sent an over-long handshake reply");
		c->line[c->linelen++] = ch;
	}
	c->line[c->linelen] = '\0';
	if (strncmp(c->line, "OK ", 3) != 0)
		return vm_error_set(&c->err, VM_INTERNAL, "vsock backend replied \"%s\" instead of \"OK <port>\"",
				    c->line);
	return 1;
}

static void conn_io_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct vsock_host_conn *c = w->data;
	int r = conn_step(c);

	if (r != 0)
		conn_finish(c, r > 0);
	else if (c->mode == VSOCK_HOST_USER && !(w->events & EV_READ)) {
		ev_io_stop(loop, w);
		ev_io_set(w, c->fd, EV_READ);
		ev_io_start(loop, w);
	}
}

static void conn_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct vsock_host_conn *c = w->data;

	vm_error_set(&c->err, VM_DEADLINE_EXCEEDED, "vsock connect to guest port %" PRIu32 " timed out", c->port);
	conn_finish(c, false);
}

static void conn_idle_cb(struct ev_loop *loop, ev_idle *w, int revents)
{
	conn_finish(w->data, false);
}

struct vsock_host_conn *vsock_host_connect_async(struct ev_loop *loop, const struct vsock_host_vm *vm, uint32_t port,
						 double timeout_s, vsock_host_connect_cb cb, void *opaque,
						 struct vm_error *err)
{
	struct vsock_host_conn *c = xzalloc(sizeof(*c));
	bool failed = false;

	c->loop = loop;
	c->mode = vm->mode;
	c->port = port;
	c->cb = cb;
	c->opaque = opaque;
	c->fd = -1;
	if (vm->mode == VSOCK_HOST_USER) {
		struct sockaddr_un sa;
		if (unix_addr(vm->uds_path, &sa, err) < 0)
			goto fail;
		c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		if (c->fd < 0) {
			vm_error_errno(err, errno, "socket");
			goto fail;
		}
		if (connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
			/* the backend is gone or its backlog is full: report through the loop */
			vm_error_set_errno(&c->err, VM_UNAVAILABLE, errno, "vsock backend socket %s", vm->uds_path);
			failed = true;
		}
	} else if (vm->mode == VSOCK_HOST_KERNEL) {
		struct sockaddr_vm sa = { .svm_family = AF_VSOCK, .svm_cid = vm->cid, .svm_port = port };
		c->fd = socket(AF_VSOCK, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		if (c->fd < 0) {
			vm_error_errno(err, errno, "AF_VSOCK socket");
			goto fail;
		}
		if (connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 && errno != EINPROGRESS) {
			vm_error_set_errno(&c->err, VM_UNAVAILABLE, errno, "vsock connect to %" PRIu32 ":%" PRIu32,
					   vm->cid, port);
			failed = true;
		}
	} else {
		vm_error_set(err, VM_FAILED_PRECONDITION, "vsock not prepared for this VM");
		goto fail;
	}
	ev_io_init(&c->io, conn_io_cb, c->fd, EV_WRITE);
	c->io.data = c;
	ev_timer_init(&c->timer, conn_timer_cb, timeout_s, 0);
	c->timer.data = c;
	ev_idle_init(&c->idle, conn_idle_cb);
	c->idle.data = c;
	if (failed) {
		ev_idle_start(loop, &c->idle);
	} else {
		ev_io_start(loop, &c->io);
		ev_timer_start(loop, &c->timer);
	}
	return c;
fail:
	if (c->fd >= 0)
		close(c->fd);
	free(c);
	return NULL;
}

void vsock_host_connect_cancel(struct vsock_host_conn *c)
{
	if (!c)
		return;
	ev_io_stop(c->loop, &c->io);
	ev_timer_stop(c->loop, &c->timer);
	ev_idle_stop(c->loop, &c->idle);
	if (c->fd >= 0)
		close(c->fd);
	free(c);
}

struct sync_result {
	bool done;
	int fd;
	struct vm_error err;
};

static void sync_cb(void *opaque, int fd, const struct vm_error *err)
{
	struct sync_result *r = opaque;

	r->done = true;
	r->fd = fd;
	if (err)
		r->err = *err;
}

int vsock_host_connect(const struct vsock_host_vm *vm, uint32_t port, int timeout_ms, struct vm_error *err)
{
	struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
	struct sync_result r = { .fd = -1 };

	if (!loop)
		return vm_error_set(err, VM_INTERNAL, "cannot create an event loop");
	struct vsock_host_conn *c = vsock_host_connect_async(loop, vm, port, timeout_ms / 1000.0, sync_cb, &r, err);
	if (!c) {
		ev_loop_destroy(loop);
		return -1;
	}
	while (!r.done)
		ev_run(loop, EVRUN_ONCE);
	ev_loop_destroy(loop);
	if (r.fd < 0) {
		if (err)
			*err = r.err;
		return -1;
	}
	fd_set_nonblock(r.fd, false);
	return r.fd;
}

void vsock_host_bytes(const struct vsock_host_vm *vm, uint64_t *to_guest, uint64_t *from_guest)
{
	*to_guest = vm->bytes ? __atomic_load_n(&vm->bytes[0], __ATOMIC_RELAXED) : 0;
	*from_guest = vm->bytes ? __atomic_load_n(&vm->bytes[1], __ATOMIC_RELAXED) : 0;
}

void vsock_host_release(struct vsock_host_vm *vm)
{
	if (vm->backend_pidfd >= 0) {
		/* pidfd_send_signal never hits a recycled pid */
		syscall(SYS_pidfd_send_signal, vm->backend_pidfd, SIGTERM, NULL, 0);
		close(vm->backend_pidfd);
	}
	if (vm->vhost_user_path)
		unlink(vm->vhost_user_path);
	if (vm->uds_path)
		unlink(vm->uds_path);
	vm_clear(vm);
}

/* ------------------------------------------------------------ supervision */

static void watch_blame(struct vsock_host_watch *w)
{
	ev_timer_stop(w->loop, &w->grace);
	if (w->ops)
		w->ops->failed(w->opaque, w->death);
}

static void watch_status_cb(void *arg, const char *status)
{
	struct vsock_host_watch *w = arg;

	if (!w->ops || w->phase != 1)
		return;
	if (status && strcmp(status, "shutdown")) {
		watch_blame(w);
		return;
	}
	log_info("vm cid %u: %s while QEMU shuts down (%s)", w->vm->cid, w->death, status ? status : "QMP closed");
	w->phase = 2;
}

static void watch_grace_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
	struct vsock_host_watch *w = t->data;

	if (w->phase == 0 && w->ops->query(w->opaque, watch_status_cb, w) == 0) {
		w->phase = 1;
		ev_timer_set(t, 5.0, 0);
		ev_timer_start(loop, t);
		return;
	}
	watch_blame(w);
}

static void watch_exit_cb(struct ev_loop *loop, ev_io *io, int revents)
{
	struct vsock_host_watch *w = io->data;
	siginfo_t si = { 0 };

	if (waitid(P_PIDFD, (id_t)w->vm->backend_pidfd, &si, WEXITED | WNOHANG) < 0 && errno == EAGAIN)
		return;
	ev_io_stop(loop, io);
	w->reaped = true;
	if (si.si_code != CLD_EXITED && si.si_status == SIGSYS)
		snprintf(w->death, sizeof(w->death),
			 "the vsock backend (pid %d) was killed by its seccomp filter (SIGSYS)",
			 (int)w->vm->backend_pid);
	else
		snprintf(w->death, sizeof(w->death), "the vsock backend (pid %d) %s %d", (int)w->vm->backend_pid,
			 si.si_code == CLD_EXITED ? "exited with status" : "was killed by signal", si.si_status);
	/* Status 0: the backend saw QEMU close the vhost-user socket, i.e. QEMU
	 * is exiting (a guest power-off); on a loaded machine that exit can take
	 * longer than the short grace meant for a crashed backend. */
	w->phase = 0;
	ev_timer_init(&w->grace, watch_grace_cb, si.si_code == CLD_EXITED && si.si_status == 0 ? 5.0 : 0.25, 0);
	w->grace.data = w;
	ev_timer_start(loop, &w->grace);
}

void vsock_host_watch_start(struct vsock_host_watch *w, struct ev_loop *loop, struct vsock_host_vm *vm, bool ours,
			    const struct vsock_host_watch_ops *ops, void *opaque)
{
	w->loop = loop;
	w->vm = vm;
	w->ops = ops;
	w->opaque = opaque;
	w->reaped = !ours;
	w->phase = 0;
	if (vm->backend_pidfd < 0)
		return;
	ev_io_init(&w->io, watch_exit_cb, vm->backend_pidfd, EV_READ);
	w->io.data = w;
	ev_io_start(loop, &w->io);
}

static void watch_stop(struct vsock_host_watch *w)
{
	if (ev_is_active(&w->io))
		ev_io_stop(w->loop, &w->io);
	if (ev_is_active(&w->grace))
		ev_timer_stop(w->loop, &w->grace);
	w->ops = NULL;
}

void vsock_host_watch_release(struct vsock_host_watch *w)
{
	if (!w->vm)
		return;
	watch_stop(w);
	if (w->vm->backend_pidfd >= 0 && !w->reaped)
		reaper_take(w->loop, fcntl(w->vm->backend_pidfd, F_DUPFD_CLOEXEC, 3));
	vsock_host_release(w->vm);
	w->vm = NULL;
}

void vsock_host_watch_forget(struct vsock_host_watch *w)
{
	if (!w->vm)
		return;
	watch_stop(w);
	if (w->vm->backend_pidfd >= 0)
		close(steal_fd(&w->vm->backend_pidfd));
	free(w->vm->vhost_user_path);
	free(w->vm->uds_path);
	w->vm->vhost_user_path = w->vm->uds_path = NULL;
	w->vm = NULL;
}
