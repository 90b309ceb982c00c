/* vm-stats.h - what a VM uses: GetVmStats (CPU and memory of its host
 * processes, block I/O, the balloon and the guest's own memory view, vsock
 * backend bytes) and SetBalloon (AVF's setMemoryBalloon).
 * docs/operations.md, "Resources and metrics".
 */
#ifndef VIRTMGR_VM_STATS_H
#define VIRTMGR_VM_STATS_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "protos/virtmgr.pb-c.h"
#include "server/daemon.h"

/* --tcg-tb-size default, MiB (chosen by measurement: docs/performance.md) */
#define VMSTATS_TB_SIZE_DEFAULT 64
#define VMSTATS_TB_SIZE_DEFAULT_STR "64"

/* Smallest balloon target SetBalloon accepts: the default guest needs about this much. */
#define VMSTATS_BALLOON_MIN_MIB 64

/* Seconds between the guest's balloon statistics (QOM guest-stats-polling-interval). */
#define VMSTATS_GUEST_POLL_S 2

/* One host process as /proc shows it. */
struct vmstats_proc {
	pid_t pid;
	uint64_t cpu_user_ns, cpu_system_ns;
	uint64_t rss_bytes;
	uint64_t read_bytes, write_bytes; /* /proc/PID/io rchar, wchar; 0 when unreadable */
};

/**
 * vmstats_read_proc() - CPU time, RSS and I/O bytes of @pid from /proc
 * (stat, status, io); reads of small procfs files, which do not block
 * Return: 0 with @out filled, or -1 with errno when the process is gone.
 */
int vmstats_read_proc(pid_t pid, struct vmstats_proc *out);

struct vm;

/* What a running VM uses, from /proc and the backend's counters only (no QMP). */
struct vm_usage {
	bool running;	    /* QEMU is there to measure */
	uint64_t cpu_ns;    /* its host processes, user + system */
	uint64_t rss_bytes; /* its host processes */
	uint64_t vsock_rx_bytes, vsock_tx_bytes;
	uint64_t balloon_target_bytes; /* the last SetBalloon, 0 = none */
};

/**
 * vm_stats_usage() - @vm's usage without waiting for anything (the metrics
 * endpoint, which answers at once); running is false for a VM without QEMU
 */
void vm_stats_usage(const struct vm *vm, struct vm_usage *out);

/**
 * vm_stats_fill_usage() - point @info->usage at @u filled for @vm when it
 * runs (VmInfo.usage of ListVms and GetVmInfo); left unset otherwise
 */
void vm_stats_fill_usage(const struct vm *vm, Virtmgr__V1__VmUsage *u, Virtmgr__V1__VmInfo *info);

/** vm_stats_register() - add GetVmStats and SetBalloon to d->api. */
void vm_stats_register(struct daemon *d);

#endif
