/* virtmgr-client.h - C client library for virtmgrd (libvirtmgr-client).
 *
 * A typed, blocking API over the daemon's ttrpc interface
 * (virtmgr.v1.VirtualizationService), plus command execution in a guest
 * through its agent (virtmgr.v1.Agent, reached with ConnectVsock). One
 * struct vmc_client is one connection; calls on it are made one after
 * another (use one client per thread). Every fallible function returns a
 * negative value (or NULL) and fills a struct vmc_error: err->code is the
 * gRPC status code the daemon answered with (VMC_STATUS_*; or a local one:
 * VMC_STATUS_UNAVAILABLE when the socket cannot be reached,
 * VMC_STATUS_DEADLINE_EXCEEDED when a timeout ran out,
 * VMC_STATUS_INVALID_ARGUMENT for bad arguments), err->message says what
 * failed.
 *
 * Results are returned in plain C structs that own their strings; free them
 * with the matching _clear() or _free() function. The header does not expose
 * protobuf-c types, and every name it defines starts with vmc_ or VMC_, so
 * programs need only this header and -lvirtmgr-client.
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

/* gRPC status codes (google.rpc.Code), the values of vmc_error.code. */
enum vmc_status {
	VMC_STATUS_OK = 0,
	VMC_STATUS_CANCELLED = 1,
	VMC_STATUS_UNKNOWN = 2,
	VMC_STATUS_INVALID_ARGUMENT = 3,
	VMC_STATUS_DEADLINE_EXCEEDED = 4,
	VMC_STATUS_NOT_FOUND = 5,
	VMC_STATUS_ALREADY_EXISTS = 6,
	VMC_STATUS_PERMISSION_DENIED = 7,
	VMC_STATUS_RESOURCE_EXHAUSTED = 8,
	VMC_STATUS_FAILED_PRECONDITION = 9,
	VMC_STATUS_ABORTED = 10,
	VMC_STATUS_OUT_OF_RANGE = 11,
	VMC_STATUS_UNIMPLEMENTED = 12,
	VMC_STATUS_INTERNAL = 13,
	VMC_STATUS_UNAVAILABLE = 14,
	VMC_STATUS_DATA_LOSS = 15,
	VMC_STATUS_UNAUTHENTICATED = 16,
};

#define VMC_ERROR_MSG_MAX 512

/* What a failed call fills. */
struct vmc_error {
	int code; /* enum vmc_status, never VMC_STATUS_OK after a failure */
	char message[VMC_ERROR_MSG_MAX];
};

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
	VMC_DEATH_WATCHDOG = 12, /* the agent stopped answering; on_hang kill */
};

/* What the daemon does when the VM's agent stops answering its health check. */
enum vmc_on_hang {
	VMC_ON_HANG_DEFAULT = 0, /* the daemon's default: kill */
	VMC_ON_HANG_NONE = 1,	 /* an ERROR event only */
	VMC_ON_HANG_KILL = 2,	 /* an ERROR event, then DEAD/WATCHDOG */
};

enum vmc_event_type {
	VMC_EVENT_STATE_CHANGED = 0,
	VMC_EVENT_PAYLOAD_STARTED = 1,
	VMC_EVENT_PAYLOAD_READY = 2,
	VMC_EVENT_PAYLOAD_FINISHED = 3,
	VMC_EVENT_ERROR = 4,
	VMC_EVENT_DIED = 5,
	VMC_EVENT_LOG = 6,
	VMC_EVENT_CRASH = 7, /* a crash report was kept; the message names it */
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
	char *mode;	  /* "regular" or "early" */
	char *hypervisor; /* "kvm" or "tcg" */
	char *hypervisor_reason;
	char *vsock_mode; /* "kernel" or "user" */
	uint32_t cid_min, cid_max;
	char **features;
	size_t n_features;
	int32_t pid;
	char *run_dir;
	uint32_t vm_count;
	uint32_t connection_count;
	bool vm_sandbox;	 /* VMs' processes get uids of their own */
	char *vm_uid_range;	 /* "MIN-MAX" when vm_sandbox, else "" */
	char *vm_sandbox_reason; /* who VMs' processes run as, in words */
	/* the attestation Service VM (docs/attestation.md) */
	bool service_vm_running;
	uint32_t service_vm_cid;	      /* 0 when not running */
	char *service_vm;		      /* its VM id while running, else "" */
	uint8_t service_vm_instance_id[64];   /* valid when has_service_vm_instance_id */
	bool has_service_vm_instance_id;
};

struct vmc_disk {
	const char *path;  /* host path, or NULL with fd >= 0 or an image */
	int fd;		   /* -1 = none */
	const char *image; /* an image of the caller's store, by name; NULL = none */
	bool read_only;
	bool qcow2;	   /* format qcow2, else raw */
	const char *label; /* the guest's /dev/disk/by-id/virtio-LABEL; NULL = default */
	bool measured;	   /* part of the launch measurement; must be read_only */
};

/* A file system vmagent mounts before the payload starts (docs/storage.md). */
struct vmc_mount {
	const char *source; /* a disk label (or a share tag for virtiofs) */
	const char *target; /* absolute guest path */
	const char *fstype; /* NULL = ext4 */
	bool read_only;
	const char *options; /* NULL = none */
};

/* A host folder shared with the guest (virtiofs), mounted by the guest agent. */
struct vmc_share {
	const char *host_dir;	/* absolute; a directory the caller can read */
	const char *tag;	/* NULL/"" = "shareN" (N its index) */
	const char *guest_path; /* absolute path in the guest */
	bool read_only;
};

/* A host port forwarded to a guest port (docs/network.md). */
struct vmc_port_forward {
	const char *host_address; /* NULL/"" = every address; else an IPv4 address */
	uint32_t host_port;
	uint32_t guest_port;
	bool udp; /* else TCP */
};

/* VmInfo.network: the VM's network device as the daemon set it up. */
struct vmc_net_info {
	char *mode;    /* "user" or "tap" */
	char *mac;     /* "02:76:6d:00:08:00" */
	char *address; /* the guest's IPv4 address with prefix, "10.0.2.15/24" */
	char *gateway;
	char **dns; /* n_dns strings */
	size_t n_dns;
	uint32_t mtu;
	struct vmc_port_forward *ports; /* n_ports; host_address owned here */
	size_t n_ports;
};

/* Initialise with vmc_vm_config_init() (all fds -1, everything else empty). */
struct vmc_vm_config {
	const char *name;
	const char *kernel; /* NULL = the daemon's default guest kernel */
	const char *initrd;
	int kernel_fd, initrd_fd; /* instead of kernel/initrd paths; -1 = none */
	const char *cmdline;
	uint32_t memory_mib; /* 0 = default */
	uint32_t cpus;	     /* 0 = default */
	const struct vmc_disk *disks;
	size_t n_disks;
	const uint8_t *instance_id; /* VMC_INSTANCE_ID_SIZE bytes, or NULL */
	size_t instance_id_len;
	const char *const *payload_args;
	size_t n_payload_args;
	const char *const *payload_env; /* "KEY=VALUE" */
	size_t n_payload_env;
	const char *payload_cwd;
	bool has_payload_user; /* run the payload as this guest user, not root */
	uint32_t payload_uid, payload_gid;
	int console_out; /* console output is also written here; -1 = none */
	int console_in;
	int log_out;
	bool detach;
	const char *accel; /* NULL/"" = daemon's choice, "kvm", "tcg" */
	uint32_t boot_timeout_ms;
	bool debug;
	enum vmc_on_hang on_hang;
	const struct vmc_mount *mounts;
	size_t n_mounts;
	const struct vmc_share *shares; /* at most 8 */
	size_t n_shares;
	/* the payload's root file system (docs/storage.md): a disk label or a
	 * share tag; NULL = the initramfs */
	const char *root;
	const char *root_fstype; /* NULL = ext4 (a share's is virtiofs) */
	bool root_writable;	 /* else read-only under a tmpfs overlay */
	uint64_t crash_core_limit; /* core bytes a crash report carries at most; 0 = 64 MiB */
	/* the network (docs/network.md): NULL/"" or "none" = no network
	 * device, "user" (passt) or "tap" */
	const char *net_mode;
	const struct vmc_port_forward *ports; /* forwarded host ports, at most 16 */
	size_t n_ports;
	const char *mac; /* NULL/"" = derived from the CID */
};

struct vmc_vm_info {
	char *id;
	char *name;
	uint32_t cid;
	enum vmc_vm_state state;
	enum vmc_death_reason death_reason;
	int32_t exit_code; /* valid when has_exit_code */
	bool has_exit_code;
	char *message;
	int32_t qemu_pid;
	char *run_dir;
	uint32_t owner_uid;
	int32_t owner_pid;
	char *accel;
	uint32_t memory_mib;
	uint32_t cpus;
	uint64_t created_ns; /* CLOCK_REALTIME */
	uint64_t started_ns;
	bool detached;
	bool early;
	bool suspended;
	uint8_t measurement[64]; /* launch measurement (docs/attestation.md) */
	size_t measurement_len;	 /* 0 when unknown */
	char *measurement_alg;	 /* "sha-256", "sha-384", "" */
	bool has_usage;		   /* the VM runs: the two figures below are set */
	uint64_t cpu_ns, rss_bytes; /* its host processes' CPU time and RSS (VmInfo.usage) */
	struct vmc_net_info *network; /* NULL: no network device */
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
struct vmc_client *vmc_connect(const char *path, struct vmc_error *err);

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
struct vmc_client *vmc_spawn_early(const char *virtmgrd_path, const char *const *extra_args, struct vmc_error *err);

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
int vmc_get_daemon_info(struct vmc_client *cl, struct vmc_daemon_info *info, struct vmc_error *err);
void vmc_daemon_info_clear(struct vmc_daemon_info *info);

/** vmc_is_feature_enabled() - IsFeatureEnabled. Return: 1 enabled, 0 not, -1 error. */
int vmc_is_feature_enabled(struct vmc_client *cl, const char *feature, struct vmc_error *err);

/**
 * vmc_get_platform_key() - GetPlatformKey: the Service VM's platform public
 * key, DER SubjectPublicKeyInfo (the daemon starts the Service VM if needed)
 * Return: 0 with a malloc()ed key in *@der / *@len, or -1.
 */
int vmc_get_platform_key(struct vmc_client *cl, uint8_t **der, size_t *len, struct vmc_error *err);

/**
 * vmc_allocate_instance_id() - AllocateInstanceId
 * @id: receives VMC_INSTANCE_ID_SIZE bytes
 * Return: 0, or -1 (also when the daemon answers with another size: DATA_LOSS).
 */
int vmc_allocate_instance_id(struct vmc_client *cl, uint8_t id[VMC_INSTANCE_ID_SIZE], struct vmc_error *err);

/* ------------------------------------------------------------ VMs */

void vmc_vm_config_init(struct vmc_vm_config *cfg);

/**
 * vmc_create_vm() - CreateVm
 * The fds in @cfg are passed to the daemon with the request (the caller keeps
 * and closes its copies).
 * Return: 0 with @info filled (free with vmc_vm_info_clear()), or -1.
 */
int vmc_create_vm(struct vmc_client *cl, const struct vmc_vm_config *cfg, struct vmc_vm_info *info,
		  struct vmc_error *err);

/** vmc_start_vm() - StartVm @vm (id or name). @info may be NULL. Return: 0 or -1. */
int vmc_start_vm(struct vmc_client *cl, const char *vm, struct vmc_vm_info *info, struct vmc_error *err);

/**
 * vmc_stop_vm() - StopVm: graceful shutdown for @timeout_ms (0 = daemon
 * default), then kill; @force skips the graceful phase. @info may be NULL.
 * Return: 0 or -1.
 */
int vmc_stop_vm(struct vmc_client *cl, const char *vm, uint32_t timeout_ms, bool force, struct vmc_vm_info *info,
		struct vmc_error *err);

/** vmc_kill_vm() - KillVm. @info may be NULL. Return: 0 or -1. */
int vmc_kill_vm(struct vmc_client *cl, const char *vm, struct vmc_vm_info *info, struct vmc_error *err);

/** vmc_suspend_vm() - SuspendVm. @info may be NULL. Return: 0 or -1. */
int vmc_suspend_vm(struct vmc_client *cl, const char *vm, struct vmc_vm_info *info, struct vmc_error *err);

/** vmc_resume_vm() - ResumeVm. @info may be NULL. Return: 0 or -1. */
int vmc_resume_vm(struct vmc_client *cl, const char *vm, struct vmc_vm_info *info, struct vmc_error *err);

/** vmc_get_vm_info() - GetVmInfo. Return: 0 or -1. */
int vmc_get_vm_info(struct vmc_client *cl, const char *vm, struct vmc_vm_info *info, struct vmc_error *err);

/**
 * vmc_list_vms() - ListVms: the VMs the caller may see
 * Return: 0 with *@vms (free with vmc_vm_info_array_free()) and *@n, or -1.
 */
int vmc_list_vms(struct vmc_client *cl, struct vmc_vm_info **vms, size_t *n, struct vmc_error *err);

void vmc_vm_info_clear(struct vmc_vm_info *info);
void vmc_vm_info_array_free(struct vmc_vm_info *vms, size_t n);

/**
 * vmc_wait_vm() - WaitVm: until @vm reaches @state (or a later one)
 * @timeout_ms: 0 = no limit beyond the client's per-call deadline
 * Return: 1 reached, 0 timed out (the daemon's timeout; @info holds the
 *         current state either way), -1 error.
 */
int vmc_wait_vm(struct vmc_client *cl, const char *vm, enum vmc_vm_state state, uint32_t timeout_ms,
		struct vmc_vm_info *info, struct vmc_error *err);

/**
 * vmc_watch_vm() - WatchVm: open a stream of events of @vm
 * @logs: also deliver guest log records as VMC_EVENT_LOG
 * The stream shares the connection: unary calls may be made while it is
 * open. Return: 0 with *@watch (free with vmc_watch_close()), or -1.
 */
int vmc_watch_vm(struct vmc_client *cl, const char *vm, bool logs, struct vmc_watch **watch, struct vmc_error *err);

/**
 * vmc_watch_next() - next event of @watch
 * @timeout_ms: -1 blocks, 0 polls
 * Return: 1 with @ev filled (free with vmc_event_clear()); 0 when the
 *         daemon ended the stream; -1 on error, with err->code
 *         DEADLINE_EXCEEDED when @timeout_ms ran out (the stream stays usable).
 */
int vmc_watch_next(struct vmc_watch *watch, int timeout_ms, struct vmc_event *ev, struct vmc_error *err);

/** vmc_watch_close() - forget the stream (events still in flight are dropped). */
void vmc_watch_close(struct vmc_watch *watch);
void vmc_event_clear(struct vmc_event *ev);

/** vmc_connect_vsock() - ConnectVsock to guest @port. Return: a connected stream fd, or -1. */
int vmc_connect_vsock(struct vmc_client *cl, const char *vm, uint32_t port, struct vmc_error *err);

/** vmc_open_log() - OpenLog. Return: a read-only fd of the current log file, or -1. */
int vmc_open_log(struct vmc_client *cl, const char *vm, enum vmc_log_kind kind, struct vmc_error *err);

/* Room for every file OpenLog can pass: the current one and the rotated ones. */
#define VMC_LOG_FILES_MAX 16

/**
 * vmc_open_log_all() - OpenLog, with the files the daemon rotated out of the log
 * @fds: out: read-only fds, oldest first, the current file last
 * @max: room in @fds (VMC_LOG_FILES_MAX holds all); the oldest files beyond it are dropped
 *
 * The daemon bounds each log (virtmgrd --log-max-size, --log-keep): when
 * the current file is full it becomes the newest rotated file and a new
 * current file starts. A reader that follows the last fd sees it stop
 * growing then; opening again gives the new current file.
 * Return: the number of fds (at least 1), or -1.
 */
int vmc_open_log_all(struct vmc_client *cl, const char *vm, enum vmc_log_kind kind, int *fds, size_t max,
		     struct vmc_error *err);

/**
 * vmc_attach_console() - AttachConsole
 * Return: a socket (reads: console output from now on, writes: console
 *         input), or -1.
 */
int vmc_attach_console(struct vmc_client *cl, const char *vm, struct vmc_error *err);

/* ------------------------------------------------------------ exec
 *
 * Running a command in a guest through its agent (vmagent), as `vmctl exec`
 * does. The exec session has a connection of its own to the agent (a
 * ConnectVsock to VMC_AGENT_PORT, or a socket the caller connected), so
 * the client stays free for other calls while it runs.
 *
 * Two forms:
 * - vmc_exec_simple() runs a command to its end: stdin from an fd, output
 *   to fds or a callback, the exit status returned.
 * - vmc_exec_start() returns a session to drive from the caller's own
 *   poll() loop: poll vmc_exec_fd() for POLLIN and call
 *   vmc_exec_process(ex, 0, ...) after it turns readable, and also before
 *   every poll() (frames may already be buffered); write stdin with
 *   vmc_exec_write_stdin() while vmc_exec_stdin_room() is not 0; resize,
 *   signal and close stdin at any time.
 *
 * Output is delivered as it arrives, to params.stdout_fd / stderr_fd (with
 * blocking writes: a slow reader slows the command down instead of filling
 * memory) or to params.output. Stdin is flow controlled: at most
 * VMC_EXEC_WINDOW bytes are in flight beyond what the agent has written to
 * the command, so a command that does not read makes no side buffer more.
 *
 * A command the agent cannot start fails the session (in
 * vmc_exec_process() or vmc_exec_simple()) with the agent's status:
 * VMC_STATUS_NOT_FOUND when the program does not exist,
 * VMC_STATUS_FAILED_PRECONDITION when it cannot be executed,
 * VMC_STATUS_INVALID_ARGUMENT for a bad argv or working directory. A lost
 * connection to the agent fails it with VMC_STATUS_UNAVAILABLE.
 */

#define VMC_AGENT_PORT 9100	   /* the agent's guest vsock port */
#define VMC_EXEC_WINDOW (1u << 20) /* stdin bytes in flight at most */

enum vmc_exec_stream {
	VMC_EXEC_STDOUT = 1,
	VMC_EXEC_STDERR = 2,
};

/* Output callback: @len bytes of the command's @stream (not NUL-terminated). */
typedef void (*vmc_exec_output_fn)(void *opaque, enum vmc_exec_stream stream, const void *data, size_t len);

/* Initialise with vmc_exec_params_init() (all fds -1, everything else empty). */
struct vmc_exec_params {
	const char *const *argv; /* the command; argv[0] is looked up in the guest's PATH */
	size_t argc;
	const char *const *env; /* "KEY=VALUE", added to the agent's environment */
	size_t n_env;
	const char *cwd; /* NULL = the agent's */
	bool has_user;	 /* run as this guest user, not root */
	uint32_t uid, gid;
	bool tty;		   /* on a pseudo-terminal: stdout and stderr merged */
	uint16_t rows, cols;	   /* the terminal's size with @tty; 0 = 24x80 */
	int stdin_fd;		   /* vmc_exec_simple(): copied to stdin until EOF; -1 = empty stdin */
	int stdout_fd, stderr_fd;  /* output written here; -1 = to @output (or dropped) */
	vmc_exec_output_fn output; /* output of streams without an fd; may be NULL */
	void *opaque;		   /* passed to @output */
};

/* How the command ended. */
struct vmc_exec_status {
	int exit_code; /* 0..255: its exit status, or 128 + @signal */
	int signal;    /* the signal that killed it, or 0 */
};

struct vmc_exec;

void vmc_exec_params_init(struct vmc_exec_params *p);

/**
 * vmc_exec_start() - start @p's command in @vm through the VM's agent
 * @cl: the connection used for ConnectVsock (only during this call)
 * @vm: VM id or name
 * @p: the command; @p and what it points to may go once this returns
 * @ex: receives the session
 *
 * Return: 0 with *@ex (free with vmc_exec_free()), or -1 when the agent
 *         cannot be reached (the daemon's status, e.g. NOT_FOUND for no
 *         such VM). Failures of the command itself come later, from
 *         vmc_exec_process().
 */
int vmc_exec_start(struct vmc_client *cl, const char *vm, const struct vmc_exec_params *p, struct vmc_exec **ex,
		   struct vmc_error *err);

/**
 * vmc_exec_start_fd() - like vmc_exec_start() over @fd, a stream socket
 * already connected to an agent (e.g. `vmagent --agent-socket PATH`, or an
 * fd from vmc_connect_vsock()); ownership of @fd passes to the session,
 * also on failure.
 * Return: 0 with *@ex, or -1.
 */
int vmc_exec_start_fd(int fd, const struct vmc_exec_params *p, struct vmc_exec **ex, struct vmc_error *err);

/** vmc_exec_fd() - Return: the session's socket, to poll for POLLIN (owned by @ex). */
int vmc_exec_fd(const struct vmc_exec *ex);

/**
 * vmc_exec_process() - handle what the agent sent: deliver output, take
 * stdin acknowledgements, note the exit status
 * @timeout_ms: how long to wait for the first frame: -1 blocks, 0 polls
 * @st: filled when the session ended (return 0)
 *
 * Handles every frame already available, then returns.
 * Return: 1 the command still runs (or its last output is still coming);
 *         0 it ended and all its output was delivered, *@st filled;
 *         -1 the session failed (see above), @err filled.
 */
int vmc_exec_process(struct vmc_exec *ex, int timeout_ms, struct vmc_exec_status *st, struct vmc_error *err);

/** vmc_exec_stdin_room() - Return: how many stdin bytes vmc_exec_write_stdin() takes now (0 after close). */
size_t vmc_exec_stdin_room(const struct vmc_exec *ex);

/**
 * vmc_exec_write_stdin() - send stdin bytes to the command
 * Takes at most vmc_exec_stdin_room() bytes; the room grows again as
 * vmc_exec_process() reads the agent's acknowledgements.
 * Return: the number of bytes taken (0 when the window is full), or -1.
 */
ssize_t vmc_exec_write_stdin(struct vmc_exec *ex, const void *data, size_t len, struct vmc_error *err);

/** vmc_exec_close_stdin() - end of the command's stdin (once; later calls do nothing). Return: 0 or -1. */
int vmc_exec_close_stdin(struct vmc_exec *ex, struct vmc_error *err);

/** vmc_exec_resize() - new terminal size for a @tty session. Return: 0 or -1. */
int vmc_exec_resize(struct vmc_exec *ex, uint16_t rows, uint16_t cols, struct vmc_error *err);

/** vmc_exec_signal() - deliver signal @sig to the command's process group. Return: 0 or -1. */
int vmc_exec_signal(struct vmc_exec *ex, int sig, struct vmc_error *err);

/**
 * vmc_exec_free() - close the session's connection (a command still
 * running is killed by the agent when it loses the connection)
 * @ex may be NULL.
 */
void vmc_exec_free(struct vmc_exec *ex);

/**
 * vmc_exec_simple() - run @p's command in @vm to its end
 *
 * Copies @p->stdin_fd to the command's stdin (-1: closes it at once),
 * writes its output to @p->stdout_fd / @p->stderr_fd or @p->output, and
 * waits until it ends. Honours the client's per-call timeout
 * (vmc_set_timeout()) for ConnectVsock only.
 * Return: 0 with *@st filled, or -1 (as vmc_exec_start() and
 *         vmc_exec_process(), or a read error on @p->stdin_fd).
 */
int vmc_exec_simple(struct vmc_client *cl, const char *vm, const struct vmc_exec_params *p, struct vmc_exec_status *st,
		    struct vmc_error *err);

/**
 * vmc_exec_simple_fd() - vmc_exec_simple() over @fd, connected to an agent
 * (ownership passes). Return: as vmc_exec_simple().
 */
int vmc_exec_simple_fd(int fd, const struct vmc_exec_params *p, struct vmc_exec_status *st, struct vmc_error *err);

/* ------------------------------------------------------------ names */

/* "STARTED", "KILLED", "PAYLOAD_FINISHED", "console", "INVALID_ARGUMENT", ...
 * Return: a static string ("?" for values outside the enum). */
const char *vmc_state_name(enum vmc_vm_state state);
const char *vmc_death_reason_name(enum vmc_death_reason reason);
const char *vmc_event_type_name(enum vmc_event_type type);
const char *vmc_log_kind_name(enum vmc_log_kind kind);
/* vmc_status_name(): the VMC_STATUS_ name without its prefix ("NOT_FOUND"). */
const char *vmc_status_name(int code);

/**
 * vmc_exit_code() - a dead VM's outcome as a process exit code
 * @vm: the VM's info (GetVmInfo / WaitVm)
 *
 * The payload's own exit code when it has one; else by death reason:
 * SHUTDOWN 0, HANGUP 129, CRASH 134, KILLED 137, START_FAILED 125,
 * INVALID_PAYLOAD_CONFIG 126, PAYLOAD_ERROR 127, AGENT_FAILED_TO_CONNECT
 * 124, INFRASTRUCTURE_ERROR 123, REBOOT 122, WATCHDOG 121, anything else
 * 255. `vmctl run`
 * exits with it (docs/vmctl.md).
 *
 * Return: 0..255.
 */
int vmc_exit_code(const struct vmc_vm_info *vm);

/* Parse a name as printed above (case-insensitive). Return: the value, or -1. */
int vmc_state_from_name(const char *name);
int vmc_log_kind_from_name(const char *name);

/* ---------------------------------------------------------------- disk images
 *
 * The caller's image store in the daemon (docs/storage.md). Names are
 * [A-Za-z0-9._-]{1,64}, not starting with '.'; root may name another
 * owner's image as "UID:NAME". Sizes are bytes (a multiple of 512).
 */
enum vmc_disk_format {
	VMC_DISK_FORMAT_RAW = 0,
	VMC_DISK_FORMAT_QCOW2 = 1,
};

struct vmc_disk_image {
	char *name;
	uint32_t owner_uid;
	enum vmc_disk_format format;
	uint64_t virtual_size;	 /* what a guest sees */
	uint64_t allocated_size; /* what the host stores */
	char *filesystem;	 /* "ext4" or "" */
	char *vm;		 /* id of the VM using it, or "" */
};

struct vmc_disk_create_opts {
	const char *name;
	uint64_t size;
	enum vmc_disk_format format;
	const char *filesystem; /* NULL/"" or "ext4" (raw images only) */
	const char *from_dir;	/* with ext4: copied in, read as the caller */
};

/** vmc_disk_image_clear() - free what @img owns. Return: nothing. */
void vmc_disk_image_clear(struct vmc_disk_image *img);
/** vmc_disk_list_free() - free an array from vmc_disk_list(). Return: nothing. */
void vmc_disk_list_free(struct vmc_disk_image *imgs, size_t n);
/** vmc_disk_create() - CreateDiskImage; @out (may be NULL) gets the new image. Return: 0 or -1. */
int vmc_disk_create(struct vmc_client *cl, const struct vmc_disk_create_opts *o, struct vmc_disk_image *out,
		    struct vmc_error *err);
/** vmc_disk_resize() - ResizeDiskImage to @size bytes (grow only; an ext4 inside grows too). Return: 0 or -1. */
int vmc_disk_resize(struct vmc_client *cl, const char *name, uint64_t size, struct vmc_disk_image *out,
		    struct vmc_error *err);
/** vmc_disk_list() - ListDiskImages: the caller's images (root: everyone's). Return: 0 or -1. */
int vmc_disk_list(struct vmc_client *cl, struct vmc_disk_image **imgs, size_t *n, struct vmc_error *err);
/** vmc_disk_delete() - DeleteDiskImage. Return: 0 or -1. */
int vmc_disk_delete(struct vmc_client *cl, const char *name, struct vmc_error *err);
/**
 * vmc_disk_import() - ImportDiskImage: a new image @name read from @fd (sent
 * with the call; the daemon reads from its current offset to EOF, so the
 * caller can watch the offset of @fd for progress)
 * Return: 0 or -1.
 */
int vmc_disk_import(struct vmc_client *cl, const char *name, int fd, enum vmc_disk_format format,
		    struct vmc_disk_image *out, struct vmc_error *err);
/** vmc_disk_export() - ExportDiskImage: the image's bytes written to @fd at its offset. Return: 0 or -1. */
int vmc_disk_export(struct vmc_client *cl, const char *name, int fd, struct vmc_disk_image *out, struct vmc_error *err);
/**
 * vmc_disk_init_partition() - InitializeWritablePartition (AVF): make the
 * file behind @fd @size bytes of zeroes, then @filesystem ("" or "ext4")
 * Return: 0 or -1.
 */
int vmc_disk_init_partition(struct vmc_client *cl, int fd, uint64_t size, const char *filesystem,
			    struct vmc_error *err);

/* ---- resources: GetVmStats, SetBalloon (docs/operations.md) ---- */

struct vmc_process_stats {
	char *name; /* "qemu", "vsock", "virtiofsd" */
	int pid;
	uint64_t cpu_user_ns, cpu_system_ns;
	uint64_t rss_bytes;
	uint64_t read_bytes, write_bytes; /* read/write system calls (/proc/PID/io) */
};

struct vmc_disk_stats {
	char *label;
	uint64_t read_bytes, write_bytes, read_ops, write_ops, flush_ops;
};

struct vmc_net_stats {
	char *name;
	uint64_t rx_bytes, tx_bytes, rx_packets, tx_packets;
};

struct vmc_vm_stats {
	char *vm;		/* id */
	uint64_t timestamp_ns;	/* daemon's CLOCK_MONOTONIC at the reading */
	uint64_t cpu_ns;	/* all its host processes, user + system */
	uint64_t rss_bytes;	/* all its host processes */
	uint64_t memory_bytes;	/* configured guest memory */
	uint32_t cpus;
	struct vmc_process_stats *processes;
	size_t n_processes;
	struct vmc_disk_stats *disks;
	size_t n_disks;
	struct vmc_net_stats *nets;
	size_t n_nets;
	bool balloon;		/* a balloon device answered */
	uint64_t balloon_actual_bytes, balloon_target_bytes;
	bool guest_stats_valid; /* the guest's own view below is known */
	uint64_t guest_total_bytes, guest_free_bytes, guest_available_bytes, guest_stats_age_s;
	uint64_t vsock_rx_bytes, vsock_tx_bytes;
};

/** vmc_get_vm_stats() - GetVmStats of @vm into @out (free with vmc_vm_stats_clear()). Return: 0 or -1. */
int vmc_get_vm_stats(struct vmc_client *cl, const char *vm, struct vmc_vm_stats *out, struct vmc_error *err);
/** vmc_vm_stats_clear() - free what @st owns. Return: nothing. */
void vmc_vm_stats_clear(struct vmc_vm_stats *st);
/**
 * vmc_set_balloon() - SetBalloon (AVF's setMemoryBalloon): ask the guest to
 * keep @target_bytes of memory (MiB granularity; 0 = all of it)
 * Return: 0 or -1.
 */
int vmc_set_balloon(struct vmc_client *cl, const char *vm, uint64_t target_bytes, struct vmc_error *err);

#ifdef __cplusplus
}
#endif

#endif
