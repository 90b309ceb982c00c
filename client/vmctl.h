/* vmctl.h - what the vmctl dispatcher and its subcommands share: the global
 * options, the exit codes, each command's parsed options (parsing is kept
 * apart from doing, so tests check it without a daemon) and the helpers that
 * print errors the same way everywhere.
 */
#ifndef VIRTMGR_VMCTL_H
#define VIRTMGR_VMCTL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "lib/util.h"
#include "client/virtmgr-client.h"

/* Exit codes (the table in docs/vmctl.md and vmctl(1)). `run`, `exec` and
 * `shell` exit with a payload's or command's code, so their own failures
 * use codes that other commands do not: 125, and 126/127 for exec. */
#define VMCTL_EXIT_OK 0
#define VMCTL_EXIT_RPC 1	  /* the daemon answered with an error status */
#define VMCTL_EXIT_USAGE 2	  /* bad arguments, or cannot connect */
#define VMCTL_EXIT_FAILED 125	  /* run, exec, shell: vmctl, the daemon or the agent failed (usage errors too) */
#define VMCTL_EXIT_CANNOT_RUN 126 /* exec: the agent could not start CMD (not executable, bad cwd) */
#define VMCTL_EXIT_NOT_FOUND 127  /* exec: CMD does not exist in the guest */

struct vmctl_ctx {
	const char *socket;  /* --socket, else $VIRTMGR_SOCKET, else the default */
	bool json;	     /* --json: one JSON object per line */
	uint64_t timeout_ms; /* --timeout: per-call deadline, 0 = none */
};

/* What a parse function returns besides -1 (error, @err filled). */
#define VMCTL_PARSE_OK 0
#define VMCTL_PARSE_HELP 1 /* --help was given: print help, exit 0 */

/**
 * vmctl_parse_global() - parse the options before the command
 * @cmd_index: index in @argv of the command name (== @argc if none)
 * Return: VMCTL_PARSE_OK, VMCTL_PARSE_HELP or -1.
 */
int vmctl_parse_global(int argc, char **argv, struct vmctl_ctx *ctx, int *cmd_index, struct vm_error *err);

/** vmctl_main() - the whole program. Return: the exit code. */
int vmctl_main(int argc, char **argv);

/* ---- value parsers shared by the commands; Return: 0 or -1 with @err ---- */
int vmctl_parse_u32(const char *s, const char *what, uint32_t *out, struct vm_error *err);
/* "UID" or "UID:GID" (GID defaults to UID), numbers below 4294967295. */
int vmctl_parse_user(const char *s, const char *what, uint32_t *uid, uint32_t *gid, struct vm_error *err);
/* Seconds, with optional fraction ("2", "0.5"), to milliseconds. */
int vmctl_parse_seconds(const char *s, const char *what, uint64_t *ms, struct vm_error *err);

/* ---- output helpers ---- */
/**
 * vmctl_connect() - connect to ctx->socket and apply ctx->timeout_ms
 * On failure prints "vmctl: cannot connect to PATH: ERR (is virtmgrd running?)".
 * Return: the client, or NULL (exit with VMCTL_EXIT_USAGE).
 */
struct vmc_client *vmctl_connect(const struct vmctl_ctx *ctx);
/** vmctl_rpc_error() - print "vmctl: CODE: message" for a failed library call. Return: VMCTL_EXIT_RPC. */
int vmctl_rpc_error(const struct vmc_error *err);
/** vmctl_usage_error() - print the error, the command's usage line and a hint. Return: VMCTL_EXIT_USAGE. */
int vmctl_usage_error(const char *cmd, const struct vm_error *err);
/** vmctl_print_vm_info() - every VmInfo field, as "key: value" lines or one JSON object. */
void vmctl_print_vm_info(const struct vmctl_ctx *ctx, const struct vmc_vm_info *vm);
/** vmctl_print_vm_brief() - "NAME: STATE (REASON)", or the full JSON object with --json. */
void vmctl_print_vm_brief(const struct vmctl_ctx *ctx, const struct vmc_vm_info *vm);
/** vmctl_format_time() - "2026-11-21 21:00:00 UTC" or "-" for 0, into @buf. Return: @buf. */
char *vmctl_format_time(uint64_t real_ns, char *buf, size_t size);

/* ---- commands ---- */
struct vmctl_command {
	const char *name;
	const char *summary;
	const char *help; /* first line is the usage line */
	int (*run)(struct vmctl_ctx *ctx, int argc, char **argv);
};

/** vmctl_find_command() - Return: the command called @name, or NULL. */
const struct vmctl_command *vmctl_find_command(const char *name);

/*
 * cmd_NAME() - run `vmctl NAME ...`: @argv[0] is the command's name, the
 * rest its arguments. Prints results to stdout and errors to stderr.
 * Return: the exit code (VMCTL_EXIT_*, or the payload's for `run`).
 */
int cmd_info(struct vmctl_ctx *ctx, int argc, char **argv);
int cmd_version(struct vmctl_ctx *ctx, int argc, char **argv);
int cmd_run(struct vmctl_ctx *ctx, int argc, char **argv);
int cmd_list(struct vmctl_ctx *ctx, int argc, char **argv);
int cmd_stop(struct vmctl_ctx *ctx, int argc, char **argv);
int cmd_kill(struct vmctl_ctx *ctx, int argc, char **argv);
int cmd_wait(struct vmctl_ctx *ctx, int argc, char **argv);
int cmd_console(struct vmctl_ctx *ctx, int argc, char **argv);
int cmd_logs(struct vmctl_ctx *ctx, int argc, char **argv);
int cmd_suspend(struct vmctl_ctx *ctx, int argc, char **argv);
int cmd_resume(struct vmctl_ctx *ctx, int argc, char **argv);
int cmd_connect(struct vmctl_ctx *ctx, int argc, char **argv);
int cmd_exec(struct vmctl_ctx *ctx, int argc, char **argv);
int cmd_shell(struct vmctl_ctx *ctx, int argc, char **argv);
int cmd_disk(struct vmctl_ctx *ctx, int argc, char **argv);
int cmd_stats(struct vmctl_ctx *ctx, int argc, char **argv);
int cmd_balloon(struct vmctl_ctx *ctx, int argc, char **argv);
int cmd_top(struct vmctl_ctx *ctx, int argc, char **argv);
extern const char cmd_stats_help[], cmd_balloon_help[], cmd_top_help[];
extern const char cmd_disk_help[];
int cmd_crashes(struct vmctl_ctx *ctx, int argc, char **argv);
extern const char cmd_crashes_help[];
int cmd_crash(struct vmctl_ctx *ctx, int argc, char **argv);
/* run --crash-core-limit: bytes with an optional K, M or G suffix, 4K..1T. Return: 0 or -1 with @err. */
int cmd_crash_parse_limit(const char *s, uint64_t *out, struct vm_error *err);
extern const char cmd_crash_help[];
int cmd_attest(struct vmctl_ctx *ctx, int argc, char **argv);
int cmd_attest_platform_key(struct vmctl_ctx *ctx, int argc, char **argv);
extern const char cmd_attest_help[];
extern const char cmd_exec_help[], cmd_shell_help[];

/* exec and shell (cmd_exec.c) */
struct cmd_exec_opts {
	const char *vm;		  /* NULL with agent_socket */
	const char *agent_socket; /* --agent-socket: a vmagent's Unix socket */
	bool tty;
	const char **env; /* KEY=VALUE, nenv of them */
	size_t nenv;
	const char *cwd;
	bool has_user; /* --user UID[:GID] */
	uint32_t uid, gid;
	char **argv; /* the command, argc words */
	int argc;
};
int cmd_exec_parse(int argc, char **argv, struct cmd_exec_opts *o, struct vm_error *err);
void cmd_exec_opts_release(struct cmd_exec_opts *o);
/**
 * vmctl_exec_run() - run @o's command in the guest (ConnectVsock to the
 * agent port, or @o->agent_socket) with stdio connected
 * Return: the remote exit status (128+N for signal N), VMCTL_EXIT_NOT_FOUND
 *         or VMCTL_EXIT_CANNOT_RUN when the agent could not start it,
 *         VMCTL_EXIT_FAILED when vmctl, the daemon or the agent failed.
 */
int vmctl_exec_run(struct vmctl_ctx *ctx, const struct cmd_exec_opts *o);
/** vmctl_exec_exit_code() - the exit code of a failed exec session with @err. Return: 125, 126 or 127. */
int vmctl_exec_exit_code(const struct vmc_error *err);

extern const char cmd_info_help[], cmd_version_help[], cmd_run_help[], cmd_list_help[], cmd_stop_help[],
	cmd_kill_help[], cmd_wait_help[], cmd_console_help[], cmd_logs_help[], cmd_suspend_help[], cmd_resume_help[],
	cmd_connect_help[];

/* Commands taking nothing but one VM (kill, suspend, resume) and info's optional VM. */
struct cmd_vm_opts {
	const char *vm; /* NULL if none given and allowed */
};
/**
 * cmd_vm_parse() - parse "CMD [VM]"
 * @vm_required: missing VM is an error
 * Return: VMCTL_PARSE_OK, VMCTL_PARSE_HELP or -1.
 */
int cmd_vm_parse(int argc, char **argv, bool vm_required, struct cmd_vm_opts *o, struct vm_error *err);

/**
 * vmctl_take_vm_operand() - the VM operand at argv[*@optind], more may follow
 * (present, not empty); *@optind moves past it
 * Return: VMCTL_PARSE_OK, or -1 with @err naming what was wrong.
 */
int vmctl_take_vm_operand(int argc, char **argv, int *optind, const char **vm, struct vm_error *err);

/**
 * vmctl_parse_vm_operand() - the single VM operand left after the options
 * (argv[@optind]): present, not empty, nothing after it
 * Return: VMCTL_PARSE_OK, or -1 with @err naming what was wrong.
 */
int vmctl_parse_vm_operand(int argc, char **argv, int optind, const char **vm, struct vm_error *err);

typedef int (*vmctl_vm_call_fn)(struct vmc_client *cl, const char *vm, struct vmc_vm_info *info, struct vmc_error *err);
/**
 * vmctl_vm_command() - the body of "vmctl CMD VM" commands that make one call
 * naming a VM and print its new state (kill, suspend, resume)
 * Return: a vmctl exit code.
 */
int vmctl_vm_command(struct vmctl_ctx *ctx, int argc, char **argv, const char *cmd, const char *help,
		     vmctl_vm_call_fn call);

struct cmd_run_opts {
	struct vmc_vm_config cfg; /* pointers into argv and the arrays below */
	struct vmc_disk *disks;
	struct vmc_mount *mounts;
	const char **env;
	struct vmc_share *shares;
	char **share_dirs; /* absolute forms of relative HOSTDIRs, made by cmd_run() */
	/* --root NAME|PATH[,rw][,fs=TYPE][,format=raw|qcow2]: a disk or, for a
	 * host directory, a share, added by cmd_run() (cmd_run_root.c) */
	char *root;
	bool root_rw, root_qcow2;
	const char *root_fstype;
	struct vmc_port_forward *ports; /* -p */
	char (*port_addrs)[16];		/* their host addresses */
	bool detach;
	bool events;
	const char *console_file;
	uint8_t instance_id[64]; /* --instance-id; cfg.instance_id points here */
};
/*
 * cmd_NAME_parse() - parse the arguments of `vmctl NAME` into the options
 * struct; strings point into @argv. Pure: no I/O, no daemon.
 * Return: VMCTL_PARSE_OK, VMCTL_PARSE_HELP, or -1 with @err naming the problem.
 */
int cmd_run_parse(int argc, char **argv, struct cmd_run_opts *o, struct vm_error *err);
/* cmd_run_root.c: --root into @o (pure), then into a disk or a share (looks at the file). Return: 0 or -1 with @err. */
int cmd_run_root_parse(char *arg, struct cmd_run_opts *o, struct vm_error *err);
int cmd_run_root_apply(struct cmd_run_opts *o, struct vm_error *err);
void cmd_run_opts_release(struct cmd_run_opts *o);

struct cmd_stop_opts {
	const char *vm;
	bool force;
	uint64_t timeout_ms;
};
int cmd_stop_parse(int argc, char **argv, struct cmd_stop_opts *o, struct vm_error *err);

struct cmd_wait_opts {
	const char *vm;
	enum vmc_vm_state state; /* default DEAD */
	uint64_t timeout_ms;
};
int cmd_wait_parse(int argc, char **argv, struct cmd_wait_opts *o, struct vm_error *err);

struct cmd_logs_opts {
	const char *vm;
	enum vmc_log_kind kind;
	bool follow;
};
int cmd_logs_parse(int argc, char **argv, struct cmd_logs_opts *o, struct vm_error *err);

struct cmd_connect_opts {
	const char *vm;
	uint32_t port;
};
int cmd_connect_parse(int argc, char **argv, struct cmd_connect_opts *o, struct vm_error *err);

struct cmd_console_opts {
	const char *vm;
};
int cmd_console_parse(int argc, char **argv, struct cmd_console_opts *o, struct vm_error *err);

int cmd_list_parse(int argc, char **argv, struct vm_error *err);

/**
 * vmctl_getopt_error() - turn getopt_long's '?'/':' into a message
 * Return: -1.
 */
int vmctl_getopt_error(int c, char **argv, struct vm_error *err);

/**
 * vmctl_bridge() - copy @in_fd to @sock and @sock to @out_fd until @sock
 * hits EOF; on EOF of @in_fd half-close @sock (shutdown SHUT_WR).
 * @escape: byte on @in_fd that ends the bridge (-1 = none)
 * Return: 0, 1 if ended by @escape, or -1 with errno on an I/O error.
 */
int vmctl_bridge(int in_fd, int out_fd, int sock, int escape);

/* resources: stats, balloon, top (cmd_stats.c, cmd_balloon.c, cmd_top.c) */
struct cmd_balloon_opts {
	const char *vm;
	uint32_t mib; /* 0 = deflate */
};
int cmd_balloon_parse(int argc, char **argv, struct cmd_balloon_opts *o, struct vm_error *err);

struct cmd_top_opts {
	uint64_t delay_ms;   /* between rounds */
	uint32_t iterations; /* 0 = until interrupted */
};
int cmd_top_parse(int argc, char **argv, struct cmd_top_opts *o, struct vm_error *err);

/** vmctl_print_stats_json() - @st as one JSON object (no newline) on @f. */
void vmctl_print_stats_json(FILE *f, const struct vmc_vm_stats *st);

#endif
