/* virtmgr-client.h - C client library for virtmgrd (libvirtmgr-client).
 *
 * A typed, blocking API over the daemon's ttrpc interface
 * (virtmgr.v1.VirtualizationService). One struct vmc_client is one
 * connection; calls on it are made one after another (use one client per
 * thread). Every fallible function returns a negative value and fills a
 * struct vm_error: err->code is the gRPC status code the daemon answered
 * with (or a local one: UNAVAILABLE when the socket cannot be reached,
 * DEADLINE_EXCEEDED when a timeout ran out, INVALID_ARGUMENT for bad
 * arguments), err->message says what failed.
 *
 * Results are returned in plain C structs that own their strings; free them
 * with the matching _clear() or _free() function. The header does not expose
 * protobuf-c types, so programs need only this header and -lvirtmgr-client.
 *
 * VMs created by a connection belong to it: unless created with
 * config.detach, the daemon stops them when the connection closes.
 *
 * File descriptors: VmConfig fds (console_out, disks[].fd, ...) are sent
 * with CreateVm and stay open in the caller (close your copy afterwards).
 * Functions returning an fd (vmc_connect_vsock, vmc_open_log,
 * vmc_attach_console) hand over a new O_CLOEXEC descriptor.
 */
#ifndef VIRTMGR_CLIENT_H
#define VIRTMGR_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

#ifndef VIRTMGR_UTIL_H
/* The error contract (same layout as virtmgr's internal lib/util.h, which
 * defines it when this header is used inside the virtmgr tree). */
#define VM_ERROR_MSG_MAX 512
struct vm_error {
	int code;                       /* gRPC status code, 0 = OK */
	char message[VM_ERROR_MSG_MAX];
};
#endif

/* Default daemon socket, used when neither a path nor $VIRTMGR_SOCKET is given. */
#define VMC_DEFAULT_SOCKET "/run/virtmgr/virtmgrd.sock"
#define VMC_SOCKET_ENV "VIRTMGR_SOCKET"
#define VMC_SERVICE "virtmgr.v1.VirtualizationService"
#define VMC_INSTANCE_ID_SIZE 64

/* Values equal to the protocol's enums (protos/virtmgr.proto). */
enum vmc_vm_state {
	VMC_STATE_NOT_STARTED = 0,
	VMC_STATE_STARTING = 1,
	VMC_STATE_STARTED = 2,
	VMC_STATE_READY = 3,
	VMC_STATE_FINISHED = 4,
	VMC_STATE_DEAD = 5,
};

enum vmc_death_reason {
	VMC_DEATH_NONE = 0,
	VMC_DEATH_INFRASTRUCTURE_ERROR = 1,
	VMC_DEATH_KILLED = 2,
	VMC_DEATH_UNKNOWN = 3,
	VMC_DEATH_SHUTDOWN = 4,
	VMC_DEATH_START_FAILED = 5,
	VMC_DEATH_REBOOT = 6,
	VMC_DEATH_CRASH = 7,
	VMC_DEATH_HANGUP = 8,
	VMC_DEATH_AGENT_FAILED_TO_CONNECT = 9,
	VMC_DEATH_INVALID_PAYLOAD_CONFIG = 10,
	VMC_DEATH_PAYLOAD_ERROR = 11,
};

enum vmc_event_type {
	VMC_EVENT_STATE_CHANGED = 0,
	VMC_EVENT_PAYLOAD_STARTED = 1,
	VMC_EVENT_PAYLOAD_READY = 2,
	VMC_EVENT_PAYLOAD_FINISHED = 3,
	VMC_EVENT_ERROR = 4,
	VMC_EVENT_DIED = 5,
	VMC_EVENT_LOG = 6,
};

enum vmc_log_kind {
	VMC_LOG_CONSOLE = 0,
	VMC_LOG_GUEST = 1,
	VMC_LOG_QEMU = 2,
};

struct vmc_client;
struct vmc_watch;

struct vmc_daemon_info {
	char *version;
	char *mode;                     /* "regular" or "early" */
	char *hypervisor;               /* "kvm" or "tcg" */
	char *hypervisor_reason;
	char *vsock_mode;               /* "kernel" or "user" */
	uint32_t cid_min, cid_max;
	char **features;
	size_t n_features;
	int32_t pid;
	char *run_dir;
	uint32_t vm_count;
	uint32_t connection_count;
};

struct vmc_disk {
	const char *path;               /* host path, or NULL with fd >= 0 */
	int fd;                         /* -1 = none */
	bool read_only;
};

/* Initialise with vmc_vm_config_init() (all fds -1, everything else empty). */
struct vmc_vm_config {
	const char *name;
	const char *kernel;             /* NULL = the daemon's default guest kernel */
	const char *initrd;
	int kernel_fd, initrd_fd;       /* instead of kernel/initrd paths; -1 = none */
	const char *cmdline;
	uint32_t memory_mib;            /* 0 = default */
	uint32_t cpus;                  /* 0 = default */
	const struct vmc_disk *disks;
	size_t n_disks;
	const uint8_t *instance_id;     /* VMC_INSTANCE_ID_SIZE bytes, or NULL */
	size_t instance_id_len;
	const char *const *payload_args;
	size_t n_payload_args;
	const char *const *payload_env; /* "KEY=VALUE" */
	size_t n_payload_env;
	const char *payload_cwd;
	int console_out;                /* console output is also written here; -1 = none */
	int console_in;
	int log_out;
	bool detach;
	const char *accel;              /* NULL/"" = daemon's choice, "kvm", "tcg" */
	uint32_t boot_timeout_ms;
	bool debug;
};

struct vmc_vm_info {
	char *id;
	char *name;
	uint32_t cid;
	enum vmc_vm_state state;
	enum vmc_death_reason death_reason;
	int32_t exit_code;              /* valid when has_exit_code */
	bool has_exit_code;
	char *message;
	int32_t qemu_pid;
	char *run_dir;
	uint32_t owner_uid;
	int32_t owner_pid;
	char *accel;
	uint32_t memory_mib;
	uint32_t cpus;
	uint64_t created_ns;            /* CLOCK_REALTIME */
	uint64_t started_ns;
	bool detached;
	bool early;
	bool suspended;
};

struct vmc_event {
	char *vm;
	enum vmc_event_type type;
	enum vmc_vm_state state;
	enum vmc_death_reason death_reason;
	int32_t exit_code;
	int32_t error_code;
	char *message;
	uint64_t timestamp_ns;
};

/* ------------------------------------------------------------ connection */

/**
 * vmc_default_socket() - the socket vmc_connect(NULL) uses
 * Return: $VIRTMGR_SOCKET if set and not empty, else VMC_DEFAULT_SOCKET.
 */
const char *vmc_default_socket(void);

/**
 * vmc_connect() - connect to virtmgrd's Unix socket
 * @path: socket path, or NULL for vmc_default_socket()
 * On failure err->code is UNAVAILABLE and err->message reads
 * "cannot connect to PATH: <strerror>"; errno keeps the connect() error.
 * Return: a client, or NULL.
 */
struct vmc_client *vmc_connect(const char *path, struct vm_error *err);

/**
 * vmc_client_from_fd() - a client on an already connected stream socket
 * (a socketpair to a private daemon, an inherited connection); ownership
 * of @fd passes to the client.
 * Return: the client (never NULL).
 */
struct vmc_client *vmc_client_from_fd(int fd);

/**
 * vmc_spawn_early() - start a private early-mode daemon and connect to it
 * @virtmgrd_path: the virtmgrd binary
 * @extra_args: more daemon arguments (e.g. "--root", DIR), NULL-terminated; may be NULL
 *
 * Like AVF's vmclient with early_virtmgr: forks
 * `virtmgrd --early --client-fd N --ready-fd M [extra_args...]` where N is
 * one end of a socketpair (the daemon serves it as an ordinary connection)
 * and M the write end of a pipe on which the daemon writes one byte once it
 * serves requests. This call blocks until that byte arrives; if the daemon
 * exits first, it fails with UNAVAILABLE naming its exit status. The daemon
 * is owned by the client: vmc_close() closes the connection, sends it
 * SIGTERM and reaps it.
 * Return: a connected client, or NULL.
 */
struct vmc_client *vmc_spawn_early(const char *virtmgrd_path, const char *const *extra_args,
				   struct vm_error *err);

/**
 * vmc_close() - close the connection (non-detached VMs it created are stopped
 * by the daemon), stop and reap a daemon started by vmc_spawn_early().
 * @cl may be NULL.
 */
void vmc_close(struct vmc_client *cl);

/** vmc_set_timeout() - per-call deadline for later calls; 0 = none (the default). */
void vmc_set_timeout(struct vmc_client *cl, uint64_t timeout_ms);

/** vmc_client_fd() - Return: the connection's socket (for poll()), owned by @cl. */
int vmc_client_fd(const struct vmc_client *cl);

/** vmc_client_pid() - Return: pid of a daemon started by vmc_spawn_early(), else 0. */
pid_t vmc_client_pid(const struct vmc_client *cl);

/* ------------------------------------------------------------ daemon */

/** vmc_get_daemon_info() - GetDaemonInfo. Return: 0 or -1; free @info with vmc_daemon_info_clear(). */
int vmc_get_daemon_info(struct vmc_client *cl, struct vmc_daemon_info *info, struct vm_error *err);
void vmc_daemon_info_clear(struct vmc_daemon_info *info);

/** vmc_is_feature_enabled() - IsFeatureEnabled. Return: 1 enabled, 0 not, -1 error. */
int vmc_is_feature_enabled(struct vmc_client *cl, const char *feature, struct vm_error *err);

/**
 * vmc_allocate_instance_id() - AllocateInstanceId
 * @id: receives VMC_INSTANCE_ID_SIZE bytes
 * Return: 0, or -1 (also when the daemon answers with another size: DATA_LOSS).
 */
int vmc_allocate_instance_id(struct vmc_client *cl, uint8_t id[VMC_INSTANCE_ID_SIZE], struct vm_error *err);

/* ------------------------------------------------------------ VMs */

void vmc_vm_config_init(struct vmc_vm_config *cfg);

/**
 * vmc_create_vm() - CreateVm
 * The fds in @cfg are passed to the daemon with the request (the caller keeps
 * and closes its copies).
 * Return: 0 with @info filled (free with vmc_vm_info_clear()), or -1.
 */
int vmc_create_vm(struct vmc_client *cl, const struct vmc_vm_config *cfg, struct vmc_vm_info *info,
		  struct vm_error *err);

/** vmc_start_vm() - StartVm @vm (id or name). @info may be NULL. Return: 0 or -1. */
int vmc_start_vm(struct vmc_client *cl, const char *vm, struct vmc_vm_info *info, struct vm_error *err);

/**
 * vmc_stop_vm() - StopVm: graceful shutdown for @timeout_ms (0 = daemon
 * default), then kill; @force skips the graceful phase. @info may be NULL.
 * Return: 0 or -1.
 */
int vmc_stop_vm(struct vmc_client *cl, const char *vm, uint32_t timeout_ms, bool force,
		struct vmc_vm_info *info, struct vm_error *err);

/** vmc_kill_vm() - KillVm. @info may be NULL. Return: 0 or -1. */
int vmc_kill_vm(struct vmc_client *cl, const char *vm, struct vmc_vm_info *info, struct vm_error *err);

/** vmc_suspend_vm() - SuspendVm. @info may be NULL. Return: 0 or -1. */
int vmc_suspend_vm(struct vmc_client *cl, const char *vm, struct vmc_vm_info *info, struct vm_error *err);

/** vmc_resume_vm() - ResumeVm. @info may be NULL. Return: 0 or -1. */
int vmc_resume_vm(struct vmc_client *cl, const char *vm, struct vmc_vm_info *info, struct vm_error *err);

/** vmc_get_vm_info() - GetVmInfo. Return: 0 or -1. */
int vmc_get_vm_info(struct vmc_client *cl, const char *vm, struct vmc_vm_info *info, struct vm_error *err);

/**
 * vmc_list_vms() - ListVms: the VMs the caller may see
 * Return: 0 with *@vms (free with vmc_vm_info_array_free()) and *@n, or -1.
 */
int vmc_list_vms(struct vmc_client *cl, struct vmc_vm_info **vms, size_t *n, struct vm_error *err);

void vmc_vm_info_clear(struct vmc_vm_info *info);
void vmc_vm_info_array_free(struct vmc_vm_info *vms, size_t n);

/**
 * vmc_wait_vm() - WaitVm: until @vm reaches @state (or a later one)
 * @timeout_ms: 0 = no limit beyond the client's per-call deadline
 * Return: 1 reached, 0 timed out (the daemon's timeout; @info holds the
 *         current state either way), -1 error.
 */
int vmc_wait_vm(struct vmc_client *cl, const char *vm, enum vmc_vm_state state, uint32_t timeout_ms,
		struct vmc_vm_info *info, struct vm_error *err);

/**
 * vmc_watch_vm() - WatchVm: open a stream of events of @vm
 * @logs: also deliver guest log records as VMC_EVENT_LOG
 * The stream shares the connection: unary calls may be made while it is
 * open. Return: 0 with *@watch (free with vmc_watch_close()), or -1.
 */
int vmc_watch_vm(struct vmc_client *cl, const char *vm, bool logs, struct vmc_watch **watch,
		 struct vm_error *err);

/**
 * vmc_watch_next() - next event of @watch
 * @timeout_ms: -1 blocks, 0 polls
 * Return: 1 with @ev filled (free with vmc_event_clear()); 0 when the
 *         daemon ended the stream; -1 on error, with err->code
 *         DEADLINE_EXCEEDED when @timeout_ms ran out (the stream stays usable).
 */
int vmc_watch_next(struct vmc_watch *watch, int timeout_ms, struct vmc_event *ev, struct vm_error *err);

/** vmc_watch_close() - forget the stream (events still in flight are dropped). */
void vmc_watch_close(struct vmc_watch *watch);
void vmc_event_clear(struct vmc_event *ev);

/** vmc_connect_vsock() - ConnectVsock to guest @port. Return: a connected stream fd, or -1. */
int vmc_connect_vsock(struct vmc_client *cl, const char *vm, uint32_t port, struct vm_error *err);

/** vmc_open_log() - OpenLog. Return: a read-only fd of the log file, or -1. */
int vmc_open_log(struct vmc_client *cl, const char *vm, enum vmc_log_kind kind, struct vm_error *err);

/**
 * vmc_attach_console() - AttachConsole
 * Return: a socket (reads: console output from now on, writes: console
 *         input), or -1.
 */
int vmc_attach_console(struct vmc_client *cl, const char *vm, struct vm_error *err);

/* ------------------------------------------------------------ names */

/* "STARTED", "KILLED", "PAYLOAD_FINISHED", "console", "INVALID_ARGUMENT", ...
 * Return: a static string ("?" for values outside the enum). */
const char *vmc_state_name(enum vmc_vm_state state);
const char *vmc_death_reason_name(enum vmc_death_reason reason);
const char *vmc_event_type_name(enum vmc_event_type type);
const char *vmc_log_kind_name(enum vmc_log_kind kind);
const char *vmc_status_name(int code);

/**
 * vmc_exit_code() - a dead VM's outcome as a process exit code
 * @vm: the VM's info (GetVmInfo / WaitVm)
 *
 * The payload's own exit code when it has one; else by death reason:
 * SHUTDOWN 0, HANGUP 129, CRASH 134, KILLED 137, START_FAILED 125,
 * INVALID_PAYLOAD_CONFIG 126, PAYLOAD_ERROR 127, AGENT_FAILED_TO_CONNECT
 * 124, INFRASTRUCTURE_ERROR 123, REBOOT 122, anything else 255. `vmctl run`
 * exits with it (docs/vmctl.md).
 *
 * Return: 0..255.
 */
int vmc_exit_code(const struct vmc_vm_info *vm);

/* Parse a name as printed above (case-insensitive). Return: the value, or -1. */
int vmc_state_from_name(const char *name);
int vmc_log_kind_from_name(const char *name);

#ifdef __cplusplus
}
#endif

#endif
