/* daemon.h - virtmgrd's configuration and process-wide state, shared by the
 * API handlers (api.c) and the VM state machine (vm.c). One libev loop,
 * one thread: every handler runs to completion without blocking.
 */
#ifndef VIRTMGR_DAEMON_H
#define VIRTMGR_DAEMON_H

#include <ev.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "server/net.h"
#include "lib/ttrpc.h"
#include "server/crashstore.h"
#include "server/logfile.h"

struct vm;
struct early_registry;
struct vms_server;
struct uidpool;
struct diskstore;
struct servicevm;
struct vm_crash_host;
struct metrics;

struct daemon_config {
	const char *socket_path; /* Unix socket; NULL when serving only inherited fds */
	const char *run_dir;	 /* /run/virtmgr; VMs live in <run_dir>/vms/<cid> */
	const char *state_dir;	 /* /var/lib/virtmgr; disk images in <state_dir>/images (diskstore.h) */
	const char *group;	 /* members may create VMs (regular mode) */
	const char *guest_dir;	 /* default kernel + initramfs */
	const char *qemu_binary;
	const char *accel;	/* NULL = detect */
	const char *vsock_mode; /* "auto", "kernel" or "user" */
	uint32_t cid_min, cid_max;
	uint32_t vsock_port; /* 0 = no AF_VSOCK listener */
	unsigned max_vms;
	struct ttrpc_limits limits;
	uint32_t default_boot_timeout_ms;
	uint32_t default_stop_timeout_ms;
	bool early;
	const char *root; /* early mode: prefix for every path ("" = /) */
	const char *early_xsd;
	int client_fd; /* early spawn-per-client: the one client */
	int ready_fd;
	bool sandbox;			  /* -sandbox on for QEMU */
	const char *vm_uid_range;	  /* --vm-uid-range MIN-MAX (used when root) */
	const char *net_pool;		  /* --net-pool CIDR: tap mode addresses (server/net.h) */
	const char *vsock_backend;	  /* virtmgr-vsock binary, NULL = installed one */
	uint32_t agent_timeout_ms;	  /* default image: the agent's first connection; 0 = none */
	struct logfile_limits log_limits; /* console.log, guest.log, qemu.log of every VM */
	uint32_t health_interval_ms;	  /* Agent/Ping every so often (vm-health.c); 0 = no checks */
	uint32_t health_misses;		  /* unanswered checks in a row that make a guest hung */
	struct crash_limits crash_limits; /* crash reports (crashstore.h) */
	uint32_t tcg_tb_size_mib;	  /* --tcg-tb-size: TCG translation buffer per VM, 0 = QEMU's default */
	uint32_t service_vm_idle_s;	  /* stop the Service VM after so long unused; 0 = never */
	bool no_balloon;		  /* --no-balloon: VMs get no virtio-balloon */
	const char *metrics_addr;	  /* --metrics: Unix socket path or loopback HOST:PORT; NULL = off */
};

struct daemon {
	struct ev_loop *loop;
	struct daemon_config cfg;
	struct ttrpc_server *api;      /* VirtualizationService */
	struct vms_server *vms_server; /* VirtualMachineService, for every VM (vms.c) */
	const char *accel;	       /* chosen accelerator */
	char accel_reason[256];
	const char *vsock_mode; /* resolved: "kernel" or "user" */
	gid_t group_gid;
	bool group_exists;
	struct vm *vms; /* list of every VM, alive or dead */
	unsigned nvms_alive;
	uint32_t next_cid;
	struct early_registry *early;
	bool sandboxed;		 /* root: each VM's processes get a uid of their own */
	struct uidpool *uids;	 /* those uids (--vm-uid-range) */
	struct net_pool net_pool; /* tap mode's addresses (server/net.h) */
	struct diskstore *disks; /* the image store; NULL in early mode (no /data yet) */
	struct crashstore *crashes; /* crash reports; NULL in early mode */
	struct servicevm *servicevm; /* the attestation Service VM; NULL in early mode */
	struct vm_crash_host *crash_host; /* kernel vsock: the shared crash port (vm-crash.c) */
	bool quitting;
	ev_timer health_timer; /* the guest health checks (vm-health.c) */
	uint64_t deaths[16];   /* VMs that died, by DeathReason (metrics.c) */
	struct metrics *metrics; /* --metrics endpoint, or NULL (metrics.c) */
	ev_signal sigterm, sigint, sighup;
};

#endif
