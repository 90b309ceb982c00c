/* agent.h - vmagent's process-wide state, shared by its parts:
 *   pid1.c    PID 1: mounts, modules, console, reaping, power button and
 *             signals, power-off; forks the agent process, which runs the rest
 *   main.c    the agent process: the payload's life, shutdown, command line
 *   config.c  the configuration device tree (agent_config.h)
 *   host.c    the VirtualMachineService client (guest -> host reports, logs)
 *   exec.c    the Agent service (Exec, Shutdown, GetGuestInfo)
 *   logfwd.c  /dev/log and /dev/kmsg, forwarded through host.c
 * One libev loop, one thread, in each of the two processes.
 */
#ifndef VIRTMGR_AGENT_H
#define VIRTMGR_AGENT_H

#include <ev.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "guest/vmagent/agent_config.h"
#include "lib/ttrpc.h"
#include "protos/virtmgr.pb-c.h"
#include "server/marker.h"

#define AGENT_VERSION PACKAGE_VERSION
#define AGENT_HOST_CID 2
#define AGENT_PATH "/bin:/sbin:/usr/bin:/usr/sbin"
/* abstract Unix socket of the attestation relay (attest.c, guest/vmattest) */
#define AGENT_ATTEST_SOCKET "virtmgr-attest"

enum agent_action {
	AGENT_ACTION_NONE,
	AGENT_ACTION_POWEROFF,
	AGENT_ACTION_REBOOT,
	AGENT_ACTION_EXIT, /* not PID 1: just exit */
};

struct agent_host;
struct agent_logfwd;

struct agent {
	struct ev_loop *loop;
	/* the default image's agent (PID 1's child): runs the payload, ends
	 * by powering the machine off; false for a service (--no-pid1) */
	bool machine;
	int init_fd; /* pipe to PID 1 for the final action, or -1 */
	int console; /* fd on /dev/console, or -1 */
	struct agent_config cfg;
	bool have_cfg;
	/* the configuration blob PID 1 read before forking the agent (then the
	 * fw_cfg file is gone): valid when boot_config_done */
	bool boot_config_done;
	int boot_config_r; /* as agent_config_read() */
	void *boot_config;
	size_t boot_config_len;
	struct vm_error boot_config_err;
	/* console markers: signed when the configuration carried a key, which
	 * lives only here (never in a child: agent_fork() wipes it) */
	bool signed_markers;
	struct marker_key marker_key;
	uint64_t marker_seq; /* last sequence number used */
	double started_at;   /* CLOCK_MONOTONIC seconds, for Ping */
	uint32_t cid;	     /* own CID, 0 if unknown */
	/* transports (tests and service use: Unix sockets instead of vsock) */
	const char *host_socket;  /* VirtualMachineService; NULL = vsock CID 2 */
	const char *agent_socket; /* Agent listener; NULL = vsock agent port */
	double connect_timeout_s;
	/* payload */
	char **payload_argv;
	char **payload_env; /* extra KEY=VALUE, NULL-terminated or NULL */
	const char *payload_cwd;
	bool has_payload_user; /* else the payload runs as root */
	uint32_t payload_uid, payload_gid;
	pid_t payload; /* > 0 while it runs */
	int exit_code;
	int exit_signal;
	bool payload_done;
	int ready_fd; /* read end of the readiness pipe, -1 once used */
	ev_io ready_io;
	/* shutdown */
	enum agent_action action;
	ev_timer grace_timer; /* payload's SIGTERM grace period */
	ev_timer final_timer; /* last reports' deadline before powering off */
	ev_signal sig_term, sig_usr2, sig_int;
	ev_child child;
	struct agent_host *host;
	struct agent_logfwd *logfwd;
	struct ttrpc_server *server;
	struct ttrpc_server *attest_server; /* the attestation socket (attest.c) */
	size_t mounted; /* cfg.mounts mounted so far (mounts.c) */
};

/* pid1.c */
/**
 * agent_pid1_start() - as PID 1: mount, open the console, load the modules,
 * then fork the agent process and stay in PID 1's loop (reaping, signals,
 * power button, power-off) for good. SIGTERM, SIGUSR2, SIGINT and SIGCHLD
 * are left blocked in the agent process until its loop watches them.
 * Return: in the agent process only, with @a->machine set and @a->init_fd
 *         the pipe to PID 1 (-1 if the fork failed and the agent is PID 1).
 */
void agent_pid1_start(struct agent *a);

/* crash.c: uncompressed core bytes a report carries at most by default */
#define AGENT_CRASH_CORE_LIMIT (64ull << 20)
/**
 * agent_crash_setup() - core_pattern to the collector, core_pipe_limit,
 * RLIMIT_CORE raised for the agent's children
 * @core_limit: uncompressed core bytes sent at most; 0 = the default
 * Return: 0, or -1 with errno.
 */
int agent_crash_setup(uint64_t core_limit);
/** agent_crash_collect() - the collector (argv[0] is "--collect-core"). Return: exit code. */
int agent_crash_collect(int argc, char **argv);

/* mounts.c */
/**
 * agent_disks_link() - /dev/disk/by-id/virtio-SERIAL for each virtio-blk disk with a serial
 * Return: nothing (what cannot be linked is logged).
 */
void agent_disks_link(struct agent *a);
/**
 * agent_fs_modules_load() - load the modules /lib/modules/fs/@fstype lists
 * (none for a built-in file system)
 * Return: nothing (what cannot be loaded is logged).
 */
void agent_fs_modules_load(struct agent *a, const char *fstype);
/**
 * agent_disk_wait() - the device of the disk labelled @label, waited for
 * (relinking /dev/disk/by-id as disks probe) up to 3 s, since a slow bus may
 * show it late
 * @dev: its path, /dev/disk/by-id/virtio-LABEL, whether found or not
 * Return: true if it exists.
 */
bool agent_disk_wait(struct agent *a, const char *label, char *dev, size_t devsz);
/**
 * agent_unmount() - unmount @target for a machine going down: a busy one
 * after killing every other process (once, *@killed), and if it still
 * cannot go it is remounted read-only; @flags as umount2()'s
 * Return: nothing (failures are logged).
 */
void agent_unmount(struct agent *a, const char *target, int flags, bool *killed);
/**
 * agent_mounts_setup() - link the disks, then mount @a->cfg.mounts in order
 * Return: 0, or -1 with @err naming the mount and the kernel's error (the
 *         mounts done so far stay, for agent_mounts_release()).
 */
int agent_mounts_setup(struct agent *a, struct vm_error *err);
/**
 * agent_mounts_release() - sync, then unmount what agent_mounts_setup()
 * mounted, in reverse order; a busy one after killing every other process,
 * else remounted read-only. Only for a machine about to go down.
 * Return: nothing.
 */
void agent_mounts_release(struct agent *a);

/* main.c */
/**
 * agent_memory_setup() - free page reporting at a small guest's scale
 * (memory.c): after the balloon module is loaded. Return: nothing.
 */
void agent_memory_setup(struct agent *a);
/** agent_log() - "vmagent: ..." on the console (stderr when not PID 1). Return: nothing. */
void agent_log(struct agent *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/**
 * agent_marker() - a whole console marker line in one write(), after a
 * newline so that it starts a line: signed (server/marker.h) when the
 * configuration carried a key, else the unsigned "VIRTMGR: ..." of older
 * daemons (which have no READY marker)
 * @code: EXIT: the exit code; ERROR: a virtmgr.v1.ErrorCode
 * @message: ERROR only
 * Return: nothing.
 */
void agent_marker(struct agent *a, enum marker_kind kind, int code, const char *message);
/**
 * agent_set_marker_key() - sign markers with @cfg's key, if it has one, and
 * wipe it from @cfg (the key stays in @a only). Return: nothing.
 */
void agent_set_marker_key(struct agent *a, struct agent_config *cfg);
/**
 * agent_request() - power off / reboot (PID 1) or exit: stop the payload
 * (SIGTERM, then SIGKILL after a grace period), flush reports, then act.
 * @why: logged on the console
 * Only the first request counts. Return: nothing.
 */
void agent_request(struct agent *a, enum agent_action action, const char *why);
/**
 * agent_fork() - fork() for the payload and Exec sessions: the child starts
 * with default dispositions and no blocked signals, and a signal sent to it
 * before that is held back rather than lost in the loop's handler. The
 * child's copy of the marker key is wiped before fork() returns in it.
 * Return: as fork().
 */
pid_t agent_fork(struct agent *a);
/** agent_child_env() - set the base environment (PATH, HOME, TERM) in a forked child. Return: nothing. */
void agent_child_env(void);
/**
 * agent_child_user() - in a forked child, become guest user @uid:@gid for
 * good: no supplementary groups, setgid, setuid, PR_SET_NO_NEW_PRIVS, and
 * HOME set to the user's home: its /etc/passwd entry if that directory
 * exists, else (@make_home: the default image, whose /etc/passwd has only
 * root) /run/home/<uid>, made for it, else "/"
 * Return: 0, or the errno of the step that failed.
 */
int agent_child_user(uint32_t uid, uint32_t gid, bool make_home);

/* host.c */
/**
 * agent_host_new() - start connecting to VirtualMachineService (retried
 * until a deadline; reports made meanwhile are queued in order)
 * Return: the client state (never NULL).
 */
struct agent_host *agent_host_new(struct agent *a);
/* Queue one report (sent in order once connected; dropped if the host was given up on). */
void agent_host_started(struct agent_host *h);
void agent_host_ready(struct agent_host *h);
void agent_host_finished(struct agent_host *h, int exit_code, int signal);
void agent_host_error(struct agent_host *h, int code, const char *message);
/* Queue ExtendMeasurement(@index, @data) (at most 64 bytes), in order with the reports. */
void agent_host_extend(struct agent_host *h, unsigned index, const uint8_t *data, size_t len);
/* The live connection to VirtualMachineService, or NULL. */
struct ttrpc_conn *agent_host_conn(struct agent_host *h);

/* attest.c: the guest's attestation socket (docs/attestation.md) */
/**
 * agent_attest_start() - serve ExtendMeasurement and RequestAttestation on
 * the abstract Unix socket AGENT_ATTEST_SOCKET, forwarding them to the host
 * Return: nothing (a failure is logged; the guest then has no attestation).
 */
void agent_attest_start(struct agent *a);
/**
 * agent_attest_payload() - extend REM[0] with the SHA-256 of the payload's
 * executable (@argv0 resolved like execvp() with @path), before it runs
 */
void agent_attest_payload(struct agent *a, const char *argv0, const char *path);
/* Queue one log record for ForwardLog (bounded: beyond the queue, counted as dropped). */
void agent_host_log(struct agent_host *h, uint64_t timestamp_ns, uint32_t priority, const char *source,
		    const char *message);
/** agent_host_idle() - Return: true when nothing is queued or in flight, or the host was given up on. */
bool agent_host_idle(const struct agent_host *h);
/**
 * agent_host_on_idle() - flush queued log records now and call @cb once
 * agent_host_idle() is true (at once if it already is). Return: nothing.
 */
void agent_host_on_idle(struct agent_host *h, void (*cb)(struct agent *a));
/**
 * agent_host_on_settled() - call @cb once the first connection to
 * VirtualMachineService is made or given up on (at once if it already is).
 * The host accepts one agent connection per boot, so an unprivileged
 * payload must not run before the agent holds it.
 * Return: nothing.
 */
void agent_host_on_settled(struct agent_host *h, void (*cb)(struct agent *a));

/* exec.c */
/**
 * agent_service_start() - serve Agent on vsock port @port (or a->agent_socket)
 * Return: 0, or -1 with @err.
 */
int agent_service_start(struct agent *a, uint32_t port, struct vm_error *err);
/** agent_exec_reaped() - a child exited. Return: true if it was an Exec session's process. */
bool agent_exec_reaped(struct agent *a, pid_t pid, int status);
/** agent_exec_kill_all() - send @sig to every Exec session's process group (shutdown). Return: nothing. */
void agent_exec_kill_all(struct agent *a, int sig);

/* logfwd.c */
/** agent_logfwd_start() - serve /dev/log and/or follow /dev/kmsg. Return: the state (never NULL). */
struct agent_logfwd *agent_logfwd_start(struct agent *a, bool dev_log, bool kmsg);

#endif
