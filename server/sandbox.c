/* sandbox.c - confinement of a VM's processes; the rules are in sandbox.h.
 *
 * sandbox_enter() runs between fork and execve, so it touches no allocator,
 * no stdio and no locks: capabilities go through the raw capget/capset
 * system calls (no libcap), messages are assembled by hand, and the one
 * allocation (the BPF program) was made by the parent. The order matters:
 * dropping the bounding set and setgroups() need capabilities, so they come
 * before the ids change; the explicit capset() after setresuid() covers the
 * inheritable set and a SECBIT_KEEP_CAPS or SECBIT_NO_SETUID_FIXUP left by
 * whoever started the daemon, which would otherwise keep capabilities
 * across the switch. Then every result is read back, since a silent partial
 * drop is worse than a refused start.
 */
#include "config.h"
#include "server/sandbox.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <linux/seccomp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

int sandbox_filter_compile(scmp_filter_ctx ctx, struct sandbox_filter *out, struct vm_error *err)
{
	cleanup_close int fd = memfd_create("seccomp-bpf", MFD_CLOEXEC);
	struct stat st;
	int r;

	out->insns = NULL;
	out->len = 0;
	if (fd < 0)
		return vm_error_errno(err, errno, "memfd for the seccomp program");
	/* libseccomp 2.5 exports only to an fd; 2.6's seccomp_export_bpf_mem()
	 * would save the round trip */
	r = seccomp_export_bpf(ctx, fd);
	if (r < 0)
		return vm_error_set_errno(err, VM_INTERNAL, -r, "seccomp_export_bpf");
	if (fstat(fd, &st) < 0)
		return vm_error_errno(err, errno, "fstat of the seccomp program");
	if (st.st_size <= 0 || st.st_size % sizeof(struct sock_filter) ||
	    st.st_size / sizeof(struct sock_filter) > BPF_MAXINSNS)
		return vm_error_set(err, VM_INTERNAL, "seccomp program of %lld bytes is not a BPF program",
				    (long long)st.st_size);
	cleanup_free struct sock_filter *insns = xmalloc((size_t)st.st_size);
	for (off_t off = 0; off < st.st_size;) {
		ssize_t n = pread(fd, (char *)insns + off, (size_t)(st.st_size - off), off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return vm_error_errno(err, n < 0 ? errno : EIO, "reading back the seccomp program");
		off += n;
	}
	out->len = (unsigned short)(st.st_size / sizeof(struct sock_filter));
	out->insns = steal_pointer(&insns);
	return 0;
}

void sandbox_filter_release(struct sandbox_filter *f)
{
	free(f->insns);
	f->insns = NULL;
	f->len = 0;
}

/* ---- the child side: system calls only ---- */

static size_t put_str(char *buf, size_t at, size_t cap, const char *s)
{
	while (*s && at + 1 < cap)
		buf[at++] = *s++;
	return at;
}

static size_t put_uint(char *buf, size_t at, size_t cap, unsigned long v)
{
	char tmp[24];
	size_t n = 0;

	do
		tmp[n++] = (char)('0' + v % 10);
	while ((v /= 10) && n < sizeof(tmp));
	while (n && at + 1 < cap)
		buf[at++] = tmp[--n];
	return at;
}

/* "sandbox: STEP: ERRNAME (N)\n" to the report fd; keeps errno */
static int fail(const struct sandbox *sb, const char *step, int errnum)
{
	char msg[256];
	size_t at = 0;
	/* a table lookup in glibc, documented AS-safe */
	const char *name = strerrorname_np(errnum);

	at = put_str(msg, at, sizeof(msg), "sandbox: ");
	at = put_str(msg, at, sizeof(msg), step);
	at = put_str(msg, at, sizeof(msg), ": ");
	at = put_str(msg, at, sizeof(msg), name ? name : "errno");
	at = put_str(msg, at, sizeof(msg), " (");
	at = put_uint(msg, at, sizeof(msg), (unsigned long)errnum);
	at = put_str(msg, at, sizeof(msg), ")\n");
	if (sb->report_fd >= 0) {
		ssize_t r;

		do
			r = write(sb->report_fd, msg, at);
		while (r < 0 && errno == EINTR);
	}
	errno = errnum;
	return -1;
}

static int caps_get(struct __user_cap_data_struct data[2])
{
	struct __user_cap_header_struct hdr = { .version = _LINUX_CAPABILITY_VERSION_3 };

	return (int)syscall(SYS_capget, &hdr, data);
}

static int caps_clear(void)
{
	struct __user_cap_header_struct hdr = { .version = _LINUX_CAPABILITY_VERSION_3 };
	struct __user_cap_data_struct data[2] = { 0 };

	return (int)syscall(SYS_capset, &hdr, data);
}

static int bounding_clear(void)
{
	/* the kernel answers EINVAL past its last capability */
	for (unsigned long cap = 0; cap < 64; cap++) {
		if (prctl(PR_CAPBSET_READ, cap, 0, 0, 0) < 0) {
			if (errno == EINVAL)
				return 0;
			return -1;
		}
		if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0)
			return -1;
	}
	return 0;
}

int sandbox_enter(const struct sandbox *sb)
{
	struct __user_cap_data_struct caps[2];
	uid_t ru, eu, su;
	gid_t rg, eg, sg;

	if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 && errno != EINVAL)
		return fail(sb, "clearing the ambient capabilities", errno);
	if (sb->change_ids) {
		if (sb->uid == 0 || sb->gid == 0)
			return fail(sb, "refusing uid or gid 0 for a VM", EINVAL);
		if (bounding_clear() < 0)
			return fail(sb, "dropping the bounding set", errno);
		if (setgroups(0, NULL) < 0)
			return fail(sb, "setgroups", errno);
		if (setresgid(sb->gid, sb->gid, sb->gid) < 0)
			return fail(sb, "setresgid", errno);
		if (setresuid(sb->uid, sb->uid, sb->uid) < 0)
			return fail(sb, "setresuid", errno);
		if (getresuid(&ru, &eu, &su) < 0 || getresgid(&rg, &eg, &sg) < 0)
			return fail(sb, "reading back the ids", errno);
		if (ru != sb->uid || eu != sb->uid || su != sb->uid || rg != sb->gid || eg != sb->gid ||
		    sg != sb->gid || getgroups(0, NULL) != 0)
			return fail(sb, "ids not what was set", EPERM);
		/* a non-root process may always lower its own sets */
		if (caps_clear() < 0)
			return fail(sb, "clearing the capability sets", errno);
		if (caps_get(caps) < 0)
			return fail(sb, "reading back the capability sets", errno);
		for (int i = 0; i < 2; i++)
			if (caps[i].effective || caps[i].permitted || caps[i].inheritable)
				return fail(sb, "capabilities left after the drop", EPERM);
		if (prctl(PR_CAPBSET_READ, 0, 0, 0, 0) != 0)
			return fail(sb, "bounding set left after the drop", EPERM);
	}
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		return fail(sb, "PR_SET_NO_NEW_PRIVS", errno);
	if (sb->filter) {
		struct sock_fprog prog = { .len = sb->filter->len, .filter = sb->filter->insns };

		if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog, 0, 0) < 0)
			return fail(sb, "loading the seccomp filter", errno);
	}
	return 0;
}

/* ---- the parent side ---- */

int sandbox_run_dir_prepare(const char *path, const struct sandbox *sb, struct vm_error *err)
{
	cleanup_close int fd = -1;
	struct stat st;

	if (mkdir(path, 0700) < 0 && errno != EEXIST)
		return vm_error_errno(err, errno, "cannot create run directory %s", path);
	/* O_NOFOLLOW: a symlink planted in its place must not be chowned */
	fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return vm_error_errno(err, errno, "run directory %s", path);
	if (fstat(fd, &st) < 0)
		return vm_error_errno(err, errno, "run directory %s", path);
	if (st.st_uid != geteuid() && !(sb->change_ids && st.st_uid == sb->uid))
		return vm_error_set(err, VM_PERMISSION_DENIED, "run directory %s belongs to uid %u, not to the daemon",
				    path, (unsigned)st.st_uid);
	if (sb->change_ids && fchown(fd, sb->uid, sb->gid) < 0)
		return vm_error_errno(err, errno, "cannot hand run directory %s to uid %u", path, (unsigned)sb->uid);
	if (fchmod(fd, 0700) < 0)
		return vm_error_errno(err, errno, "chmod 0700 %s", path);
	return 0;
}

/**
 * sandbox_dir_reachable() - whether other uids can search every directory
 * down to @dir
 *
 * A VM's QEMU and backend run under the VM's own uid and open sockets in its
 * run dir by path, so every directory above it must be searchable by others;
 * this names the one that is not, instead of QEMU's bare "Permission denied".
 * Return: 0, or -1 with @err (FAILED_PRECONDITION) naming the directory.
 */
int sandbox_dir_reachable(const char *dir, struct vm_error *err)
{
	cleanup_free char *path = realpath(dir, NULL);
	struct stat st;

	if (!path)
		return vm_error_errno(err, errno, "run directory %s", dir);
	for (char *slash = path + strlen(path); slash; slash = strrchr(path, '/')) {
		if (stat(*path ? path : "/", &st) < 0)
			return vm_error_errno(err, errno, "run directory: %s", *path ? path : "/");
		if (!(st.st_mode & S_IXOTH))
			return vm_error_set(err, VM_FAILED_PRECONDITION,
					    "%s is not searchable by other users (mode %04o): VMs run under uids of "
					    "their own (--vm-uid-range) and must reach their run directory %s; "
					    "use a run directory all of whose parents have o+x",
					    *path ? path : "/", (unsigned)(st.st_mode & 07777), dir);
		if (slash == path)
			break;
		*slash = 0;
	}
	return 0;
}

/**
 * sandbox_report_read() - wait for a confined child's verdict
 * @report_r: the read end of the child's report pipe (its write end closed
 *            in the parent)
 * @pid: the child, reaped here if it reported a failure
 * @why: out, the child's reason (first line), NUL-terminated
 * @size: size of @why
 *
 * EOF means the exec went ahead (the write end is close-on-exec); a line
 * means the child could not confine itself (or exec) and exits.
 * Return: 1 if the child failed (@why filled, @pid reaped), 0 if it runs.
 */
int sandbox_report_read(int report_r, pid_t pid, char *why, size_t size)
{
	ssize_t n;

	do
		n = read(report_r, why, size - 1);
	while (n < 0 && errno == EINTR);
	if (n <= 0)
		return 0;
	why[n] = '\0';
	why[strcspn(why, "\n")] = '\0';
	waitpid(pid, NULL, 0);
	return 1;
}
