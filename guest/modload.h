/* modload.h - load the kernel modules a list file names (modload.c). */
#ifndef VIRTMGR_GUEST_MODLOAD_H
#define VIRTMGR_GUEST_MODLOAD_H

/* Told about a module that could not be opened or loaded: @err is an errno. */
typedef void (*modload_report_fn)(void *opaque, const char *module, int err);

/**
 * modload_list() - finit_module() every module @list names, in order
 * @list: a file of absolute module paths, one per line, dependencies first
 *        (guest/mkimage.sh writes them); other lines are skipped
 * @report: called for each module that failed (EEXIST is not a failure)
 * Return: 0, or -errno if @list cannot be opened (nothing is loaded).
 */
int modload_list(const char *list, modload_report_fn report, void *opaque);

#endif
