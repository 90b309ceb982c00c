/* logfile.h - per-VM log files with a bound on their size (see logfile.c). */
#ifndef VIRTMGR_LOGFILE_H
#define VIRTMGR_LOGFILE_H

#include <stddef.h>
#include <stdint.h>

struct vm_error;
struct logfile;

/* virtlogd's defaults: files of 2 MiB, 3 old ones kept. */
#define LOGFILE_DEFAULT_MAX_BYTES (2u << 20)
#define LOGFILE_DEFAULT_KEEP 3u
/* Below this a rotation per console line would be the norm. */
#define LOGFILE_MIN_BYTES 4096u
/* More old files than this is not a bound anybody means. */
#define LOGFILE_MAX_KEEP 100u

struct logfile_limits {
	uint64_t max_bytes; /* a file never grows past this */
	unsigned keep;	    /* rotated files kept: FILE.1 .. FILE.keep */
};

struct logfile_limits logfile_limits_default(void);
struct logfile *logfile_open(const char *path, const struct logfile_limits *lim, struct vm_error *err);
int logfile_write(struct logfile *lf, const void *buf, size_t len);
const char *logfile_path(const struct logfile *lf);
void logfile_free(struct logfile *lf);
int logfile_rotate_copy(const char *path, const struct logfile_limits *lim, struct vm_error *err);
int logfile_open_all(const char *path, unsigned keep, int *fds, struct vm_error *err);

#endif
