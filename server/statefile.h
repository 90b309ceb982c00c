/* statefile.h - the small key=value files in which virtmgrd records each
 * VM (<run_dir>/vms/<cid>/vm.state), so that a restarted daemon can adopt
 * detached VMs and stop orphaned ones. Written atomically (temp + fsync +
 * rename); read strictly: a torn, oversized or malformed file is an error
 * naming the file and line, never a crash.
 */
#ifndef VIRTMGR_STATEFILE_H
#define VIRTMGR_STATEFILE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "lib/util.h"

#define STATEFILE_MAX 8192
#define STATEFILE_MAX_KEYS 64

struct statefile {
	size_t n;
	char *keys[STATEFILE_MAX_KEYS];
	char *values[STATEFILE_MAX_KEYS];
};

/* Add a pair (copied); keys are [a-z0-9_]+, values have no control characters. */
void statefile_set(struct statefile *sf, const char *key, const char *value);
void statefile_set_u64(struct statefile *sf, const char *key, uint64_t value);
/**
 * statefile_write() - write @sf to @path atomically (mode 0600)
 * Return: 0, or -1 with @err.
 */
int statefile_write(const struct statefile *sf, const char *path, struct vm_error *err);
/**
 * statefile_parse() - parse @len bytes of @data (named @name in messages)
 * The first line must be the "virtmgr-vm-state 1" header; the file must end
 * with a newline (a torn write does not).
 * Return: 0, or -1 with @err (DATA_LOSS naming @name and the line).
 */
int statefile_parse(struct statefile *sf, const char *name, const char *data, size_t len, struct vm_error *err);
int statefile_read(struct statefile *sf, const char *path, struct vm_error *err);
/* Value of @key, or NULL. */
const char *statefile_get(const struct statefile *sf, const char *key);
/* Unsigned decimal value of @key within [0, max]. Return: 0, or -1 with @err naming the key. */
int statefile_get_u64(const struct statefile *sf, const char *key, uint64_t max, uint64_t *out, struct vm_error *err);
void statefile_clear(struct statefile *sf);

/* Start time of process @pid (field 22 of /proc/<pid>/stat). Return: 0 or -1. */
int proc_start_time(pid_t pid, uint64_t *out);

#endif
