/* early.h - early VMs: declarations in <partition>/etc/avf/early_vms*.xml,
 * who may create them, and where they keep their run directory.
 *
 * `virtmgrd --early` serves clients that run before /data is mounted. A VM
 * is allowed only if the partition the caller's executable lives on declares
 * it (name, static CID, path of the one executable allowed to create it).
 * This module owns those rules; the daemon calls it from CreateVm:
 *
 *   early_caller_exe()         -> the caller's executable, e.g. /vendor/bin/x,
 *                                 as identified when it connected (caller.h)
 *   early_find_vm()            -> the declaration for (caller, VmConfig.name)
 *   early_check_config()       -> no vendor modules, no assigned devices
 *   early_run_dir_prepare()    -> locks the CID, <root>/mnt/vm/early/<cid>,
 *                                 wiped, 0700
 *   ...on destroy: early_run_dir_remove() (unlocks the CID)
 *
 * and early_registry_reload() on SIGHUP. Lookups follow AVF's per-name
 * rule: only the entries of the requested name decide its lookup; a bad
 * entry fails its own name and is logged, a file that is not well-formed
 * UTF-8 XML fails its whole partition. Every path takes a root prefix
 * (`--root DIR`, "" or "/" for the real root) so tests run unprivileged.
 */
#ifndef VIRTMGR_EARLY_H
#define VIRTMGR_EARLY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "lib/util.h"

struct caller;

/* Partitions that may declare early VMs, in the order of early_partition_name(). */
enum early_partition {
	EARLY_SYSTEM,
	EARLY_SYSTEM_EXT,
	EARLY_PRODUCT,
	EARLY_VENDOR,
	EARLY_ODM,
	EARLY_PARTITION_COUNT,
};

/* Largest file accepted as one early_vms*.xml. */
#define EARLY_XML_MAX (1024 * 1024)

/* The default schema, installed by etc/early.mk; `--early-xsd PATH` overrides. */
#define EARLY_XSD_DEFAULT PKGDATADIR "/early_vms.xsd"

/* One declared early VM; strings are owned (early_vm_clear() frees them). */
struct early_vm {
	enum early_partition partition;
	char *name;
	uint32_t cid;
	char *path;    /* as declared, e.g. /vendor/bin/x (no root prefix) */
	char *file;    /* the declaring file, with root prefix */
	unsigned line; /* line of its <early_vm> in @file */
};

struct early_registry;

/**
 * early_partition_name() - "system", "system_ext", ... for @p
 * Return: static string, "?" for an unknown value.
 */
const char *early_partition_name(enum early_partition p);

/**
 * early_partition_lookup() - partition by name
 * @name: first component of a path, e.g. "vendor"
 * @out: the partition
 * @err: PERMISSION_DENIED "Early VMs are not supported for <name>"
 * Return: 0 or -1.
 */
int early_partition_lookup(const char *name, enum early_partition *out, struct vm_error *err);

/**
 * early_partition_cid_range() - the CIDs a partition's VMs may use
 * @p: partition
 * @lo: first CID of the range
 * @hi: last CID of the range (inclusive)
 *
 * system 100..199, system_ext and product 200..299, vendor and odm 300..399.
 */
void early_partition_cid_range(enum early_partition p, uint32_t *lo, uint32_t *hi);

/**
 * early_registry_new() - create the declaration cache for @root
 * @root: root prefix ("" or "/" = the real root); stored as given, without
 *        a trailing slash
 * @xsd_path: schema file, NULL for EARLY_XSD_DEFAULT
 * @out: the new registry
 * @err: FAILED_PRECONDITION when the schema cannot be loaded
 *
 * Only the schema is read here; a partition's files are read on its first
 * lookup and cached, successful or not, until early_registry_reload().
 * Return: 0 or -1.
 */
int early_registry_new(const char *root, const char *xsd_path, struct early_registry **out, struct vm_error *err);

/** early_registry_free() - free @reg (NULL is fine). */
void early_registry_free(struct early_registry *reg);

/**
 * early_registry_load() - read one partition's files now (if not cached)
 * @reg: registry
 * @p: partition
 * @err: the cached load error: FAILED_PRECONDITION naming file and line
 *
 * A partition's table is replaced only when all of its files can be read
 * and are well-formed UTF-8 XML with an <early_vms> root; on failure the
 * previous table (if any) stays in use and the error is remembered for
 * lookups that the old table cannot answer. Entries that break the schema
 * or a rule do not fail the load: they are logged (file:line, entry, why)
 * and fail only the lookups of their own name.
 * Return: 0 or -1.
 */
int early_registry_load(struct early_registry *reg, enum early_partition p, struct vm_error *err);

/**
 * early_registry_reload() - re-read every partition (SIGHUP)
 * @reg: registry
 * @err: the first partition's error; every failure is also logged
 *
 * Partitions whose files cannot be read as XML keep their previous table.
 * Return: 0 when every partition loaded, else -(number of failed partitions).
 */
int early_registry_reload(struct early_registry *reg, struct vm_error *err);

/**
 * early_registry_load_buffer() - replace @p's table with one in-memory file
 * @reg: registry
 * @p: partition whose rules apply
 * @file: name used in messages
 * @data: file contents (need not be NUL-terminated)
 * @len: length of @data
 * @err: FAILED_PRECONDITION naming @file and line
 *
 * For tools and fuzzing: the same checks as a file on disk.
 * Return: number of usable declared VMs, or -1 (table unchanged).
 */
int early_registry_load_buffer(struct early_registry *reg, enum early_partition p, const char *file, const void *data,
			       size_t len, struct vm_error *err);

/**
 * early_registry_count() - number of usable VMs @p declares (after loading it)
 * Return: count, or -1 with @err if the partition does not load.
 */
int early_registry_count(struct early_registry *reg, enum early_partition p, struct vm_error *err);

/**
 * early_normalize_path() - split a root-less executable path into partition
 * and the path as declarations spell it
 * @path: absolute path, e.g. /system/vendor/bin/x
 * @part: the partition (vendor)
 * @norm: newly allocated normalized path (/vendor/bin/x), may be NULL
 * @err: PERMISSION_DENIED "Early VMs are not supported for <partition>"
 *
 * A leading /system before /system_ext, /product, /vendor or /odm is dropped
 * (system-as-root layouts), then the first component is the partition.
 * Return: 0 or -1.
 */
int early_normalize_path(const char *path, enum early_partition *part, char **norm, struct vm_error *err);

/**
 * early_find_vm() - the declaration a caller may create
 * @reg: registry
 * @caller_path: the caller's executable without root prefix (from
 *               early_caller_exe()); normalized again here
 * @vm_name: VmConfig.name
 * @out: filled with owned copies on success (free with early_vm_clear())
 * @err: PERMISSION_DENIED for an unsupported partition, NOT_FOUND when the
 *       partition declares no VM @vm_name, FAILED_PRECONDITION naming file,
 *       line and entry when @vm_name is declared twice or its entry breaks
 *       the schema or a rule, PERMISSION_DENIED when the declaration names
 *       another executable, FAILED_PRECONDITION when the partition's files
 *       cannot be read as XML
 *
 * Only the entries named @vm_name are considered (AVF's find_early_vm):
 * problems of other entries do not fail this lookup.
 * Return: 0 or -1.
 */
int early_find_vm(struct early_registry *reg, const char *caller_path, const char *vm_name, struct early_vm *out,
		  struct vm_error *err);

/** early_vm_clear() - free the strings of @vm and zero it. */
void early_vm_clear(struct early_vm *vm);

/**
 * early_caller_exe() - the executable a caller connected with, normalized
 * @c: the caller's record (caller_of_conn())
 * @proc_dir: procfs mount, NULL for "/proc"
 * @out: newly allocated normalized path (see early_normalize_path())
 * @err: as caller_exe_check() (PERMISSION_DENIED when the process exited,
 *       its executable was deleted, or it runs another one than when it
 *       connected), or PERMISSION_DENIED for an unsupported partition
 * Return: 0 or -1.
 */
int early_caller_exe(const struct caller *c, const char *proc_dir, char **out, struct vm_error *err);

/**
 * early_caller_path_pidfd() - early_caller_exe() for a process, not a connection
 * @root: unused (the root was applied when the caller connected)
 * @proc_dir: procfs mount, NULL for "/proc"
 * @pid: the caller's pid
 * @pidfd: unused (each connection's record holds its own)
 * @out: newly allocated normalized path
 * @err: PERMISSION_DENIED when no connection of @pid was identified, or
 *       when any connection of @pid fails early_caller_exe()
 *
 * For a request whose connection is not at hand: every live connection of
 * @pid (caller_conn_open()) must still run the file it connected with, so
 * a connection opened before an execve() cannot be used after it.
 * Prefer early_caller_exe() with the request's connection.
 * Return: 0 or -1.
 */
int early_caller_path_pidfd(const char *root, const char *proc_dir, pid_t pid, int pidfd, char **out,
			    struct vm_error *err);

/**
 * early_check_config() - refuse VmConfig fields early VMs may not use
 * @vendor_modules: VmConfig.vendor_modules (NULL or "" = unset)
 * @assigned_devices: VmConfig.assigned_devices
 * @n_assigned_devices: its length
 * @err: INVALID_ARGUMENT naming the field
 * Return: 0 or -1.
 */
int early_check_config(const char *vendor_modules, char *const *assigned_devices, size_t n_assigned_devices,
		       struct vm_error *err);

/**
 * early_run_dir() - <root>/mnt/vm/early/<cid>
 * Return: newly allocated path.
 */
char *early_run_dir(const char *root, uint32_t cid);

/**
 * early_cid_lock_path() - <root>/mnt/vm/early/<cid>.lock
 * Return: newly allocated path.
 */
char *early_cid_lock_path(const char *root, uint32_t cid);

/**
 * early_cid_lock() - lock a CID against other early daemons
 * @root: root prefix
 * @cid: the CID
 * @err: ALREADY_EXISTS naming the lock file when another process (or
 *       another open of it in this one) holds it; INTERNAL naming the path
 *
 * flock(LOCK_EX | LOCK_NB) on early_cid_lock_path(), created if needed.
 * Hold the fd while the VM lives; the kernel releases the lock when it is
 * closed or the process dies.
 * Return: the locked fd (O_CLOEXEC), or -1.
 */
int early_cid_lock(const char *root, uint32_t cid, struct vm_error *err);

/** early_cid_unlock() - release a lock from early_cid_lock() (-1 is fine). */
void early_cid_unlock(int fd);

/**
 * early_run_dir_prepare() - remove and re-create an early VM's run directory
 * @root: root prefix
 * @cid: the VM's CID
 * @out: newly allocated path of the directory (may be NULL)
 * @err: INTERNAL naming the path; ALREADY_EXISTS when another early daemon
 *       holds the CID's lock or a process still listens on a socket in the
 *       directory (a VM of another early daemon)
 *
 * Early VMs have static CIDs, so whatever a previous VM with this CID left
 * is removed first, unless it is still in use. The CID is locked first
 * (early_cid_lock()) and stays locked until early_run_dir_remove() or the
 * end of this process; then the live-socket check covers daemons that do
 * not lock. The directory is created with mode 0700.
 * Return: 0 or -1.
 */
int early_run_dir_prepare(const char *root, uint32_t cid, char **out, struct vm_error *err);

/**
 * early_run_dir_remove() - remove an early VM's run directory and unlock its
 * CID (on destroy)
 * @root: root prefix
 * @cid: the VM's CID
 * @err: INTERNAL naming the path (a missing directory is not an error)
 * Return: 0 or -1.
 */
int early_run_dir_remove(const char *root, uint32_t cid, struct vm_error *err);

#endif
