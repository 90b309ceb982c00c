/* crashstore.h - crash reports kept under the state directory, per owner
 * and VM name, within quotas; and the three API calls that read them
 * (docs/crash-reports.md).
 *
 * Files: <state_dir>/crashes/<owner uid>/<vm name>/<id>/report.json (the
 * metadata, json-c) and core.gz (the core as the guest compressed it). A
 * report being received lives in a ".part-<id>" directory next to them
 * and becomes visible by rename once complete; leftovers are removed at
 * start-up.
 */
#ifndef VIRTMGR_CRASHSTORE_H
#define VIRTMGR_CRASHSTORE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "lib/ttrpc.h"
#include "lib/util.h"

struct crashstore;
struct crash_upload;

struct crash_limits {
	unsigned max_reports; /* per VM (owner + name); oldest dropped first */
	uint64_t max_bytes;   /* per VM: stored bytes */
	uint64_t max_core;    /* one report's compressed core, at most */
	unsigned rate;	      /* reports per VM per minute (bucket of this size) */
	unsigned share_pct;   /* every report together: this % of the state filesystem */
};

#define CRASH_DEFAULT_MAX_REPORTS 50u
#define CRASH_DEFAULT_MAX_BYTES (256ull << 20)
#define CRASH_DEFAULT_MAX_CORE (64ull << 20)
#define CRASH_DEFAULT_RATE 10u
#define CRASH_DEFAULT_SHARE_PCT 10u
#define CRASH_KERNEL_TEXT_MAX (16u << 10)

/* What is known of a report before its core arrives. */
struct crash_meta {
	bool kernel;
	const char *vm_id, *vm_name;
	uid_t owner_uid;
	uint32_t cid;
	int32_t pid, tid, signal;
	uint32_t uid, gid;
	const char *executable, *comm;
	uint64_t crash_time_ns;
};

/**
 * crashstore_new() - open (and index) <state_dir>/crashes
 * Return: the store; never NULL (a directory that cannot be read is logged).
 */
struct crashstore *crashstore_new(const char *state_dir, const struct crash_limits *lim);
void crashstore_free(struct crashstore *s);

/**
 * crashstore_begin() - start receiving a user crash report
 * Return: the upload, or NULL with @err (RESOURCE_EXHAUSTED when the
 *         state directory's share is used up).
 */
struct crash_upload *crashstore_begin(struct crashstore *s, const struct crash_meta *m, struct vm_error *err);
/** crashstore_write() - append compressed core bytes. Return: 0, or -1 with @err (the upload is then to be aborted). */
int crashstore_write(struct crash_upload *u, const void *data, size_t len, struct vm_error *err);
/** crashstore_received() - compressed bytes written so far. */
uint64_t crashstore_received(const struct crash_upload *u);
/**
 * crashstore_commit() - the upload is complete: keep it (frees @u)
 * @core_size/@truncated: what the guest says of the uncompressed core
 * @id: receives the report id (17 bytes)
 * Return: 0, or -1 with @err (nothing kept).
 */
int crashstore_commit(struct crashstore *s, struct crash_upload *u, uint64_t core_size, bool truncated, char *id,
		      struct vm_error *err);
/** crashstore_abort() - drop an upload and its files (frees @u; NULL is fine). */
void crashstore_abort(struct crash_upload *u);

/**
 * crashstore_add_kernel() - keep a kernel crash report with @text (the
 * console's last lines, at most CRASH_KERNEL_TEXT_MAX bytes kept)
 * Return: 0 with @id filled, or -1 with @err.
 */
int crashstore_add_kernel(struct crashstore *s, const struct crash_meta *m, const char *text, char *id,
			  struct vm_error *err);

/** crashstore_count() - reports kept for one VM. */
unsigned crashstore_count(const struct crashstore *s, uid_t owner, const char *vm_name);

/* VirtualizationService: ListCrashReports, GetCrashReport, DeleteCrashReport.
 * @opaque is the struct crashstore; callers see their own reports, root all. */
/** crashstore_api_register() - add the three methods to @srv's @service. */
void crashstore_api_register(struct ttrpc_server *srv, const char *service, struct crashstore *s);
void crashstore_api_list(struct ttrpc_call *call, const ProtobufCMessage *msg, void *opaque);
void crashstore_api_get(struct ttrpc_call *call, const ProtobufCMessage *msg, void *opaque);
void crashstore_api_delete(struct ttrpc_call *call, const ProtobufCMessage *msg, void *opaque);

#endif
