/* qemu.h - one QEMU process per VM: argv built as a vector (never a shell),
 * spawned with its console on a pipe, watched through a pidfd (works for
 * children and, after a daemon restart, for processes that are not), and
 * controlled over QMP on a Unix socket in the VM's run directory. Nothing
 * here blocks the loop.
 */
#ifndef VIRTMGR_QEMU_H
#define VIRTMGR_QEMU_H

#include <ev.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "lib/util.h"

struct qemu;
struct logfile_limits;
struct sandbox;
struct json_object;

#define QEMU_DISK_LABEL_MAX 20 /* a virtio-blk serial holds 20 bytes */

struct qemu_disk {
	const char *path; /* host path, or NULL when fd >= 0 (a path wins over fd) */
	int fd;		  /* -1, or an open fd handed to QEMU (add-fd) */
	bool read_only;
	bool qcow2;			     /* format=qcow2, else raw */
	char label[QEMU_DISK_LABEL_MAX + 1]; /* virtio-blk serial; "" = none */
	dev_t dev;			     /* the file, for the one-writer rule */
	ino_t ino;
	char image[65];	     /* the store image it is, or "" (vm-config.c) */
	uid_t image_owner;   /* whose store holds it (root may name UID:NAME) */
	bool image_reserved; /* diskstore_set_in_use() done for it */
};

/* a vhost-user-fs device: virtiofsd's socket and the tag the guest mounts */
struct qemu_share {
	const char *socket;
	const char *tag;
};

struct qemu_config {
	const char *binary;  /* qemu-system-x86_64 */
	const char *accel;   /* "kvm" or "tcg" */
	const char *run_dir; /* existing, 0700; qmp.sock, console.log, qemu.log go here */
	const char *kernel;  /* path, or NULL when kernel_fd >= 0 (a path wins over the fd) */
	int kernel_fd;
	const char *initrd; /* path or NULL (then initrd_fd if >= 0, else no initrd) */
	int initrd_fd;
	const char *extra_initrd;  /* optional per-VM initramfs concatenated after initrd, or NULL */
	const char *cmdline;	   /* full kernel command line */
	const char *fw_cfg_config; /* file for fw_cfg "opt/virtmgr/config" (the guest's config tree), or NULL */
	uint32_t memory_mib;
	uint32_t cpus;
	const struct qemu_disk *disks;
	size_t ndisks;
	const struct qemu_share *shares; /* vhost-user-fs-pci devices */
	size_t nshares;
	/* a virtio-net-pci device with this MAC on the connected stream socket
	 * net_fd (passt's, server/net.h); none when net_mac is NULL */
	const char *net_mac;
	int net_fd;
	bool net_tap; /* net_fd is a tap (-netdev tap), not passt's socket */
	/* vsock: exactly one of these, or neither */
	const char *vhost_user_vsock_socket;	 /* path of the vhost-user backend's socket */
	uint32_t vhost_vsock_cid;		 /* kernel vhost-vsock: guest-cid (0 = none) */
	bool sandbox;				 /* -sandbox on */
	const struct sandbox *confine;		 /* sandbox_enter() before exec; NULL: none */
	const char *run_as_user;		 /* -run-with user=... or NULL */
	const struct logfile_limits *log_limits; /* console.log, qemu.log; NULL: logfile_limits_default() */
	uint32_t tcg_tb_size_mib;		 /* TCG translation buffer (-accel tcg,tb-size=N); 0: QEMU's default */
	bool balloon;				 /* virtio-balloon "balloon0" with free page reporting */
};

struct qemu_exit {
	int wait_status; /* as from waitpid when known (child), else -1 */
	int signal;	 /* killing signal, 0 if exited */
	int exit_code;	 /* exit code if exited, else -1 */
	/* Last QMP SHUTDOWN event's reason ("guest-shutdown", "guest-reset",
	 * "guest-panic", "host-qmp-quit", ...) or "" if none was seen. */
	char shutdown_reason[32];
	bool panicked;		/* GUEST_PANICKED was seen */
	char stderr_tail[1024]; /* last lines of QEMU's stderr (qemu.log) */
	bool kill_sent;		/* qemu_kill() (or qemu_free() killing it) was called;
	                           * the only hint for an adopted QEMU, whose status is unknown */
};

struct qemu_callbacks {
	/* Console bytes, as they arrive (also appended to run_dir/console.log). */
	void (*on_console)(void *opaque, const char *buf, size_t len);
	/* A QMP event by name (e.g. "SHUTDOWN", "GUEST_PANICKED", "STOP", "RESUME"). */
	void (*on_event)(void *opaque, const char *name);
	/* QEMU is gone (reaped or its pidfd fired); the struct qemu stays valid until qemu_free(). */
	void (*on_exit)(void *opaque, const struct qemu_exit *exit);
};

/**
 * qemu_start() - spawn QEMU for @cfg; returns at once (QMP connects in the background)
 * Return: 0 with *out set, or -1 with @err (START_FAILED material: message
 *         names what could not be set up).
 */
int qemu_start(struct ev_loop *loop, const struct qemu_config *cfg, const struct qemu_callbacks *cb, void *opaque,
	       struct qemu **out, struct vm_error *err);
/**
 * qemu_adopt() - watch an already running QEMU (after a daemon restart)
 * @pid, @start_time: the process and its /proc/<pid>/stat start time, checked
 *                    so a recycled pid is never adopted
 * Return: 0, or -1 with @err when the process is gone or is not that QEMU.
 */
int qemu_adopt(struct ev_loop *loop, pid_t pid, uint64_t start_time, const char *run_dir,
	       const struct qemu_callbacks *cb, void *opaque, struct qemu **out, struct vm_error *err);
/**
 * qemu_set_log_limits() - bound console.log and qemu.log by @lim from now on
 * @q: the QEMU (an adopted one: qemu_adopt() starts with the defaults)
 * @lim: the bound; the current files are continued and count toward it
 */
void qemu_set_log_limits(struct qemu *q, const struct logfile_limits *lim);
pid_t qemu_pid(const struct qemu *q);
uint64_t qemu_start_time(const struct qemu *q); /* /proc/<pid>/stat field 22 */
/* Graceful: QMP system_powerdown. Return: 0 if sent, -1 if QMP is not connected. */
int qemu_powerdown(struct qemu *q);
/* QMP quit. */
int qemu_quit(struct qemu *q);
/* QMP stop / cont. */
int qemu_pause(struct qemu *q, bool pause);
/**
 * qemu_console_write() - type into the guest's serial console
 * @q: the QEMU
 * @buf: bytes
 * @len: their number
 *
 * Non-blocking: when QEMU is not reading, fewer bytes (or none) are taken,
 * as a serial line would drop them.
 *
 * Return: bytes taken, or -errno (-EAGAIN when none could be, -EPIPE when
 * there is no console connection).
 */
ssize_t qemu_console_write(struct qemu *q, const void *buf, size_t len);
/* Answer of qemu_query_status(): QMP's "status" ("running", "paused",
 * "shutdown", ...), or NULL when the query failed or QMP closed. */
typedef void (*qemu_status_fn)(void *opaque, const char *status);
/* QMP query-status. Return: 0 if sent (@fn is called once), -1 if QMP is not connected. */
int qemu_query_status(struct qemu *q, qemu_status_fn fn, void *opaque);
/* Return: true once the QMP session is negotiated (commands go out at once). */
bool qemu_qmp_ready(const struct qemu *q);
/*
 * Answer of qemu_qmp_call(): @ret is the "return" member (borrowed for the
 * call) or NULL with @error; "QEMU is gone" when QEMU exits or is freed
 * before answering. Called exactly once.
 */
typedef void (*qemu_qmp_fn)(void *opaque, struct json_object *ret, const char *error);
/**
 * qemu_qmp_call() - send QMP @command with @args (a JSON object or NULL; borrowed)
 * Return: 0 if sent (@fn is called once, possibly from qemu_free()), -1 if
 *         QMP is not connected (@fn is not called).
 */
int qemu_qmp_call(struct qemu *q, const char *command, struct json_object *args, qemu_qmp_fn fn, void *opaque);
/* SIGKILL (through the pidfd). */
void qemu_kill(struct qemu *q);
/* Stop watching; kills QEMU first unless it already exited or @leave_running. */
void qemu_free(struct qemu *q, bool leave_running);

#endif
