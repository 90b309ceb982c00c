/* vsock_host.h - the daemon's one interface to guest vsock, whichever way
 * the host provides it.
 *
 * Two modes:
 *  - VSOCK_HOST_KERNEL: /dev/vhost-vsock works. QEMU gets
 *    `-device vhost-vsock-pci,guest-cid=CID` (qemu_config.vhost_vsock_cid)
 *    and the host uses real AF_VSOCK sockets.
 *  - VSOCK_HOST_USER: no vhost-vsock (every development machine). One
 *    `virtmgr-vsock` backend process per VM provides the device over
 *    vhost-user; host-side sockets are Unix sockets in the VM's run directory
 *    following Firecracker's hybrid convention.
 *
 * Daemon sequence for one VM:
 *
 *   enum vsock_host_mode mode = vsock_host_probe();          // once, at start-up
 *   struct vsock_host_vm v;
 *   vsock_host_prepare(&v, run_dir, cid, mode, &opts, &err); // before QEMU
 *   vsock_host_qemu_config(&v, &qemu_cfg);                   // fills the vsock fields
 *   ... watch v.backend_pidfd (user mode): if it fires before QEMU exits,
 *       the device is gone -> stop the VM with INFRASTRUCTURE_ERROR ...
 *   lfd = vsock_host_listen(&v, port, &err);                 // guest -> host port
 *   vsock_host_connect_async(loop, &v, port, timeout, cb, ...); // host -> guest port
 *   vsock_host_release(&v);                                  // after QEMU is gone
 *
 * User-mode files in the run directory: `vsock-vhost.sock` (QEMU's
 * vhost-user chardev), `vsock.sock` (hybrid socket for host-initiated
 * connections) and `vsock.sock_<port>` (a listener for guest port -> host
 * port). Both sockets are created by the daemon before the backend starts,
 * so neither QEMU nor a client can race the backend's start-up.
 *
 * QEMU arguments in user mode (see vsock_host_qemu_args()):
 *   -object memory-backend-memfd,id=mem,size=<M>M,share=on
 *   -machine memory-backend=mem                 (pc; or -numa node,memdev=mem)
 *   -chardev socket,id=vsock0,path=<run_dir>/vsock-vhost.sock
 *   -device vhost-user-vsock-pci,chardev=vsock0           (pc)
 *   -device vhost-user-vsock-device,chardev=vsock0        (microvm, plus
 *   -global virtio-mmio.force-legacy=false)
 */
#ifndef VIRTMGR_VSOCK_HOST_H
#define VIRTMGR_VSOCK_HOST_H

#include <ev.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "lib/util.h"

struct qemu_config;
struct sandbox;

enum vsock_host_mode {
	VSOCK_HOST_AUTO = 0,
	VSOCK_HOST_KERNEL = 1,
	VSOCK_HOST_USER = 2,
};

struct vsock_host_opts {
	const char *backend;	       /* virtmgr-vsock binary; NULL = LIBEXECDIR/virtmgr-vsock
				* (or $VIRTMGR_VSOCK_BACKEND when set) */
	const char *log_level;	       /* backend --log-level; NULL = "info" */
	int log_fd;		       /* backend stderr; -1 = the daemon's stderr */
	const struct sandbox *confine; /* sandbox_enter() before exec; NULL: none */
};

struct vsock_host_vm {
	enum vsock_host_mode mode; /* KERNEL or USER once prepared */
	uint32_t cid;
	char *vhost_user_path; /* user: QEMU's chardev path */
	char *uds_path;	       /* user: hybrid socket */
	pid_t backend_pid;     /* user: the backend, else -1 */
	int backend_pidfd;     /* user: pidfd of the backend (readable when it exits), else -1 */
	uid_t uid;	       /* user: owner of the sockets the backend and QEMU connect to; 0 = ours */
	uint64_t *bytes;       /* user: the backend's byte counters (vsock_dev.h), read-only map; NULL if none */
};

/**
 * vsock_host_bytes() - bytes the user-mode backend moved: @to_guest read
 * from host sockets, @from_guest written to them (0 and 0 without counters:
 * kernel vsock, or a backend adopted after a daemon restart)
 */
void vsock_host_bytes(const struct vsock_host_vm *vm, uint64_t *to_guest, uint64_t *from_guest);

/**
 * vsock_host_probe() - pick the mode this host supports
 * Return: VSOCK_HOST_KERNEL if /dev/vhost-vsock can be opened read-write,
 *         else VSOCK_HOST_USER.
 */
enum vsock_host_mode vsock_host_probe(void);

/** vsock_host_mode_name() - "kernel", "user" or "auto". Return: static string. */
const char *vsock_host_mode_name(enum vsock_host_mode mode);

/**
 * vsock_host_prepare() - set up guest vsock for one VM before QEMU starts
 * @run_dir: the VM's run directory (exists, private to the daemon)
 * @cid: the guest's CID (3..2^32-2)
 * @mode: AUTO probes; USER in a directory whose socket paths are too long
 *        for sockaddr_un fails with INVALID_ARGUMENT
 *
 * User mode creates both listening sockets and spawns the backend (its own
 * session, fds 3 and 4 are the sockets); it never blocks and never waits for
 * the backend. Kernel mode only records the CID.
 * Return: 0, or -1 with @err (nothing left behind).
 */
int vsock_host_prepare(struct vsock_host_vm *vm, const char *run_dir, uint32_t cid, enum vsock_host_mode mode,
		       const struct vsock_host_opts *opts, struct vm_error *err);

/**
 * vsock_host_qemu_config() - set the vsock fields of @cfg for this VM
 * (vhost_user_vsock_socket in user mode, vhost_vsock_cid in kernel mode).
 * The strings stay owned by @vm.
 */
void vsock_host_qemu_config(const struct vsock_host_vm *vm, struct qemu_config *cfg);

/**
 * vsock_host_qemu_args() - QEMU arguments for the vsock device
 * @microvm: virtio-mmio device instead of PCI
 * @memory_mib: guest memory size (user mode needs a shared memfd backend)
 * @argv: receives a NULL-terminated, xmalloc'd vector of xmalloc'd strings
 *        (free with vsock_host_free_args()); memory arguments included in
 *        user mode, so the caller must not add its own -m memory backend
 * Return: number of arguments.
 */
size_t vsock_host_qemu_args(const struct vsock_host_vm *vm, bool microvm, uint32_t memory_mib, char ***argv);

/** vsock_host_free_args() - free a vector from vsock_host_qemu_args(). */
void vsock_host_free_args(char **argv);

/**
 * vsock_host_listen_path() - user mode: the Unix path a guest connection to
 * host port @port reaches ("<uds>_<port>")
 * Return: xmalloc'd path, or NULL in kernel mode.
 */
char *vsock_host_listen_path(const struct vsock_host_vm *vm, uint32_t port);

/**
 * vsock_host_listen() - listen for guest connections to host port @port
 *
 * User mode: a Unix socket at vsock_host_listen_path() (only this VM can
 * reach it). Kernel mode: AF_VSOCK on VMADDR_CID_ANY:@port; accept with
 * vsock_host_accept() so other guests' connections are refused.
 * Return: non-blocking CLOEXEC listening fd, or -1 with @err.
 */
int vsock_host_listen(const struct vsock_host_vm *vm, uint32_t port, struct vm_error *err);

/**
 * vsock_host_accept() - accept one connection on a vsock_host_listen() fd
 *
 * In kernel mode a connection whose source CID is not @vm's is closed and
 * reported as PERMISSION_DENIED.
 * Return: non-blocking CLOEXEC fd; -1 with @err (code UNAVAILABLE and no
 *         message when nothing is pending: errno EAGAIN).
 */
int vsock_host_accept(const struct vsock_host_vm *vm, int lfd, struct vm_error *err);

/**
 * vsock_host_connect() - blocking connect to guest port @port (tools, tests;
 * never from the daemon's loop)
 * @timeout_ms: overall deadline for connect + handshake
 * Return: connected blocking CLOEXEC fd, or -1 with @err: UNAVAILABLE when
 *         nothing listens in the guest (user mode: the backend closes the
 *         client socket when the guest answers RST), DEADLINE_EXCEEDED.
 */
int vsock_host_connect(const struct vsock_host_vm *vm, uint32_t port, int timeout_ms, struct vm_error *err);

struct vsock_host_conn;

/* @fd: connected, non-blocking, CLOEXEC, owned by the callee; -1 on failure with @err filled. */
typedef void (*vsock_host_connect_cb)(void *opaque, int fd, const struct vm_error *err);

/**
 * vsock_host_connect_async() - connect to guest port @port without blocking
 * @timeout_s: deadline; the callback then gets DEADLINE_EXCEEDED
 *
 * The callback runs exactly once, from the loop (never from inside this
 * call), unless vsock_host_connect_cancel() is called first. @vm's paths
 * are copied.
 * Return: a handle, or NULL with @err if the attempt could not even start.
 */
struct vsock_host_conn *vsock_host_connect_async(struct ev_loop *loop, const struct vsock_host_vm *vm, uint32_t port,
						 double timeout_s, vsock_host_connect_cb cb, void *opaque,
						 struct vm_error *err);

/** vsock_host_connect_cancel() - abandon an attempt; the callback never runs. */
void vsock_host_connect_cancel(struct vsock_host_conn *c);

/**
 * vsock_host_release() - after QEMU is gone: SIGTERM the backend if it still
 * runs (through its pidfd), close the pidfd, remove the sockets. The backend
 * is not reaped here; the daemon's child watcher does that.
 */
void vsock_host_release(struct vsock_host_vm *vm);

/* ------------------------------------------------------------ supervision */

/*
 * Watching the backend (user mode). When the backend dies while QEMU runs,
 * the guest's vsock device is gone and the guest would hang on it, so the VM
 * must be stopped. The backend also exits when QEMU goes away, and may
 * notice that first: QEMU closes the vhost-user socket while it shuts down,
 * which can take long on a loaded machine. So after a short grace period
 * (longer after a clean exit, which is what a QEMU shutdown causes) QEMU is
 * asked for its run state: still "running" (or paused) means the backend
 * failed; "shutdown" or no answer means QEMU is exiting by itself and its
 * exit decides the VM's fate. Should that exit never come, failed() is
 * reported after 5 s anyway.
 */
struct vsock_host_watch_ops {
	/* Ask QEMU for its run state; call @done(@arg, status or NULL) later.
	 * Return: 0 when asked, -1 when QEMU cannot be asked. */
	int (*query)(void *opaque, void (*done)(void *arg, const char *status), void *arg);
	/* The backend is gone while QEMU runs; @message says how it ended. */
	void (*failed)(void *opaque, const char *message);
};

struct vsock_host_watch {
	struct ev_loop *loop;
	struct vsock_host_vm *vm;
	const struct vsock_host_watch_ops *ops;
	void *opaque;
	bool reaped;	/* nothing left to reap (or not ours to reap) */
	int phase;	/* 0 grace, 1 asking QEMU, 2 QEMU is shutting down */
	char death[96]; /* how the backend ended */
	ev_io io;	/* the backend's pidfd */
	ev_timer grace;
};

/**
 * vsock_host_watch_start() - watch @vm's backend (if it has one)
 * @ours: the backend is our child (false after adoption: PID 1 reaps it)
 */
void vsock_host_watch_start(struct vsock_host_watch *w, struct ev_loop *loop, struct vsock_host_vm *vm, bool ours,
			    const struct vsock_host_watch_ops *ops, void *opaque);

/**
 * vsock_host_watch_release() - stop watching and release @w's vsock_host_vm
 * (vsock_host_release()); a backend that is our child and still running is
 * reaped when it exits, never with a waitpid() that could take QEMU's status.
 */
void vsock_host_watch_release(struct vsock_host_watch *w);

/**
 * vsock_host_watch_forget() - daemon exit with the VM still running: stop
 * watching, close our pidfd, leave the backend and its sockets to the VM
 * (the next daemon adopts both).
 */
void vsock_host_watch_forget(struct vsock_host_watch *w);

#endif
