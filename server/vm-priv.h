/* vm-priv.h - what the files of the VM core share: struct vm and the few
 * core functions its concerns call back into. The core is vm.c (registry,
 * state machine, lifecycle), vm-config.c (CreateVm's configuration and fd
 * intake), vm-console.c (console sinks, attach, markers) and vm-persist.c
 * (state records and re-adoption). Nothing outside these files includes
 * this header: the rest of the daemon sees only vm.h.
 */
#ifndef VIRTMGR_VM_PRIV_H
#define VIRTMGR_VM_PRIV_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "server/marker.h"
#include "server/qemu.h"
#include "server/vm-console.h"
#include "server/vm.h"
#include "server/vms.h"
#include "server/net.h"
#include "server/virtiofs.h"
#include "server/vsock_host.h"

typedef Virtmgr__V1__VmState vm_state_t;
typedef Virtmgr__V1__DeathReason death_t;

struct vm_watcher;
struct vm_waiter;
struct logfile;
struct vm_health;
struct attest_vm;

struct vm {
	struct vm *next;
	struct daemon *d;
	char id[13];
	char *name;
	uint32_t cid;
	vm_state_t state;
	death_t death_reason;
	int exit_code;
	bool has_exit_code;
	char message[VM_ERROR_MSG_MAX];
	uid_t owner_uid;
	pid_t owner_pid;
	uint64_t owner_conn; /* 0 when detached */
	bool detached;
	bool suspended;
	char *accel;
	uint32_t memory_mib, cpus;
	uint64_t created_ns, started_ns;
	char *run_dir;
	uid_t uid; /* its processes' uid and gid; 0: the daemon's (not sandboxed) */
	/* configuration kept for start */
	int kernel_fd, initrd_fd;
	struct qemu_disk *disks;
	size_t ndisks;
	struct virtiofs_share *shares; /* host folders (server/virtiofs.h) */
	size_t nshares;
	gid_t owner_gid;	      /* virtiofsd runs as owner_uid:owner_gid */
	struct virtiofs_set virtiofs; /* runtime: one virtiofsd per share */
	struct net_vm net;	      /* network device and passt (server/net.h) */
	char *cmdline;
	uint32_t boot_timeout_ms;
	/* runtime */
	struct qemu *qemu;
	struct vm_console console;
	int log_out_fd;
	bool log_out_sock;		     /* log_out is a socket: send(MSG_DONTWAIT) */
	struct logfile *guest_log;	     /* run_dir/guest.log, opened at the first record */
	bool guest_log_failed;		     /* opening it failed: said once */
	death_t guest_error_reason;	     /* from NotifyError, used if it dies afterwards */
	struct vsock_host_vm vsock;	     /* guest vsock device (backend in user mode) */
	struct vsock_host_watch vsock_watch; /* .vm set while the device is prepared */
	bool stop_requested;		     /* StopVm: death is SHUTDOWN whatever the path */
	bool kill_requested;		     /* KillVm: death is KILLED */
	death_t forced_reason;		     /* set by a timer that killed it (HANGUP) */
	ev_timer boot_timer, stop_timer;
	int stop_phase;
	struct vm_watcher *watchers;
	struct vm_waiter *waiters;
	struct vms_vm *vms;	     /* guest agent protocol (vms.c) */
	struct attest_vm *attest;    /* REMs, attestation requests (attest.c) */
	bool daemon_owned;	     /* the daemon's own (the Service VM): no agent to check */
	Virtmgr__V1__OnHang on_hang; /* what a hung guest gets (vm-health.c) */
	struct vm_health *health;    /* its checks, while it is checked */
	/* this boot's console marker key and the last sequence accepted
	 * (marker.h): only lines signed with it are progress reports */
	struct marker_verifier markers;
	bool has_marker_key;
	struct vm_crash *crash; /* crash report uploads (vm-crash.c), while listening */
	uint64_t balloon_target_bytes; /* last SetBalloon, 0 = none (vm-stats.c) */
};

/* "STARTING" for VM_STATE_STARTING. Return: static string. */
const char *vm_state_name(vm_state_t s);
/* A zeroed record of @d with every fd -1. Return: never NULL. */
struct vm *vm_alloc(struct daemon *d);
/* Release everything @vm holds and free it (it must be unlinked). */
void vm_free(struct vm *vm);
/* Return: true if a live VM has @cid. */
bool vm_cid_in_use(struct daemon *d, uint32_t cid);
/* Send a VmEvent of @type (state, death reason and exit code as they are)
 * to @vm's WatchVm streams. */
void vm_event(struct vm *vm, Virtmgr__V1__EventType type, const char *message);
/* What QEMU reports, turned into the VM's state (vm.c). */
extern const struct qemu_callbacks vm_qemu_callbacks;
struct statefile;
/* An adopted VM's network (server/net.h) from its state file; passt
 * watched again, or the VM stopped when passt is gone. */
void vm_net_adopt(struct vm *vm, const struct statefile *sf);
/* Watch @vm's vsock backend (prepared in vm->vsock); @ours: it is our child. */
void vm_vsock_watch(struct vm *vm, bool ours);
/* Give @vm its VirtualMachineService state (id, cid and run_dir are set).
 * @config: NULL for an adopted VM. */
void vm_vms_new(struct vm *vm, const Virtmgr__V1__VmConfig *config, bool default_image);
/* Serve VirtualMachineService for @vm on host vsock port = its CID.
 * Return: 0, or -1 with @err. */
int vm_vms_listen(struct vm *vm, struct vm_error *err);

/* EVENT_TYPE_CRASH: a crash report @id was kept (vm-crash.c). */
void vm_event_crash(struct vm *vm, int32_t pid, const char *executable, int32_t signal, const char *id,
		    const char *message);

/* The progress the guest reports (console markers, VirtualMachineService). */
void vm_guest_started(struct vm *vm);
void vm_guest_ready(struct vm *vm);
void vm_guest_finished(struct vm *vm, int exit_code);
/* @code: virtmgr.v1.ErrorCode; the VM's death reason becomes
 * INVALID_PAYLOAD_CONFIG or PAYLOAD_ERROR if it dies afterwards. */
void vm_guest_error(struct vm *vm, int code, const char *message);

#endif
