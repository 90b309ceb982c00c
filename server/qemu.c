/* qemu.c - one supervised QEMU process per VM.
 *
 * Start: everything that can be checked synchronously is (binary, kernel,
 * initrd and disks are opened here, so a missing or unreadable file is a
 * qemu_start() error naming it). QEMU gets those files as inherited fds at
 * fixed numbers: kernel and initrd as /proc/self/fd/N (QEMU loads them with a
 * plain open), disks through -add-fd + /dev/fdset/N (the block layer's way),
 * so no host path ever goes through QEMU's option parser and commas or
 * "json:" prefixes in paths cannot inject options. The QMP socket is bound
 * and listening before the fork and handed over with fd=, so the daemon's
 * connect can never race QEMU's start-up. The guest's serial console is a
 * socket chardev on run_dir/console.sock, made the same way (bound and
 * listening before the fork, handed over with fd=), and connected to by the
 * daemon before QEMU runs: with wait=on QEMU accepts that connection before
 * the guest starts, so no console byte is ever lost to a late connect. The
 * daemon reads it non-blockingly (bytes go to console.log and to
 * on_console) and writes console input into it (qemu_console_write()). A
 * daemon that restarts and adopts the QEMU connects to console.sock again
 * (QEMU accepts a new client once the old one is gone); what the guest
 * prints while no daemon is connected is discarded by QEMU. QEMU's stdin is
 * /dev/null, its stderr is appended to qemu.log.
 *
 * Logs: console.log is written here through a logfile writer, so it is
 * rotated at the configured bound as the bytes arrive; qemu.log is QEMU's
 * own stderr, so a timer checks it every few seconds and bounds it by
 * copy-and-truncate (logfile_rotate_copy()). An adopted QEMU continues both
 * files under the bound qemu_set_log_limits() gives.
 *
 * Exit: a pidfd watched by an ev_io turns readable when QEMU exits, child or
 * not. For a child it is reaped with waitid(P_PIDFD, WNOHANG). libev's
 * default loop reaps every child itself on SIGCHLD (waitpid(-1)), so on that
 * loop an ev_child watcher is also started and whichever sees the status
 * first wins. Before on_exit, the QMP socket and the console pipe are
 * drained, so the SHUTDOWN/GUEST_PANICKED events and the last console bytes
 * QEMU wrote are always accounted for.
 *
 * The child gets its own session (a daemon restart or a terminal hangup does
 * not reach it), no PR_SET_PDEATHSIG (detached VMs outlive the daemon),
 * default signal dispositions, an empty signal mask and only the fds listed
 * below. Callbacks may call qemu_free(); the object is released when the
 * callback returns.
 */
#include "config.h"

#include "server/qemu.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/sysmacros.h>
#include <sys/pidfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <json.h>

#include "lib/log.h"
#include "lib/reaper.h"
#include "server/logfile.h"
#include "server/qmp.h"
#include "server/sandbox.h"

#define QEMU_CONSOLE_CHUNK 65536
/* How often qemu.log, which QEMU appends to itself, is checked against the
 * bound: QEMU writes only its own diagnostics, so a few seconds' worth past
 * the bound is the most it can hold. */
#define QEMU_LOG_CHECK_SEC 5.0

struct qemu_status_query {
	struct qemu_status_query *next;
	qemu_status_fn fn;
	void *opaque;
};

struct qemu {
	struct ev_loop *loop;
	struct qemu_callbacks cb;
	void *opaque;

	pid_t pid;
	uint64_t start_time;
	bool is_child;
	int pidfd;
	ev_io pid_io;
	ev_child child_w; /* only on libev's default loop, for children */

	int console_fd; /* connection to QEMU's console chardev, or -1 */
	ev_io console_io;
	struct logfile *console_log;   /* run_dir/console.log, or NULL */
	uint64_t console_lost;	       /* bytes not written to console.log since it failed */
	struct logfile_limits log_lim; /* console.log and qemu.log */

	char *qemu_log_path;
	off_t qemu_log_start;	 /* size of qemu.log before this QEMU wrote to it */
	ev_timer qemu_log_timer; /* bounds qemu.log */
	char *qmp_path;
	char *console_path; /* run_dir/console.sock */
	struct qmp *qmp;
	struct qemu_status_query *queries; /* FIFO of query-status in flight */
	struct qemu_qmp_pending *calls;	   /* qemu_qmp_call()s in flight */

	struct qemu_exit exit;
	bool exited;
	bool kill_sent;
	int refs;
	bool freed;
};

/* ------------------------------------------------------------ helpers */

static void argv_add(char ***argv, size_t *n, size_t *cap, char *s)
{
	if (*n + 2 > *cap) {
		*cap = MAX(*cap * 2, (size_t)32);
		*argv = xrealloc(*argv, *cap * sizeof(**argv));
	}
	(*argv)[(*n)++] = s;
	(*argv)[*n] = NULL;
}

static void argv_free(char **argv)
{
	if (!argv)
		return;
	for (char **a = argv; *a; a++)
		free(*a);
	free(argv);
}

/* QemuOpts values escape ',' by doubling it. */
static char *opts_escape(const char *s)
{
	size_t n = 0;
	char *out = xmalloc(strlen(s) * 2 + 1);

	for (; *s; s++) {
		out[n++] = *s;
		if (*s == ',')
			out[n++] = ',';
	}
	out[n] = '\0';
	return out;
}

static int read_start_time(pid_t pid, uint64_t *out)
{
	char path[64];
	cleanup_free char *buf = NULL;
	const char *p;
	size_t len;
	int field = 3;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	if (read_file(path, 4096, &buf, &len, NULL) < 0)
		return -1;
	/* comm (field 2) may contain anything, including ") "; it ends at the last ')' */
	p = strrchr(buf, ')');
	if (!p)
		return -1;
	p++;
	while (*p && field < 22) {
		while (*p == ' ')
			p++;
		while (*p && *p != ' ')
			p++;
		field++;
	}
	while (*p == ' ')
		p++;
	if (field != 22 || !*p)
		return -1;
	errno = 0;
	*out = strtoull(p, NULL, 10);
	return errno ? -1 : 0;
}

/* PATH lookup for a binary named without '/'. Return: allocated path or NULL. */
static char *find_binary(const char *name)
{
	const char *path = getenv("PATH");

	if (strchr(name, '/'))
		return access(name, X_OK) == 0 ? xstrdup(name) : NULL;
	if (!path || !*path)
		path = "/usr/local/bin:/usr/bin:/bin";
	while (*path) {
		const char *colon = strchr(path, ':');
		size_t dlen = colon ? (size_t)(colon - path) : strlen(path);
		char *cand = xasprintf("%.*s/%s", (int)dlen, dlen ? path : ".", name);

		if (access(cand, X_OK) == 0)
			return cand;
		free(cand);
		path += dlen + (colon ? 1 : 0);
	}
	return NULL;
}

/* Open a file for QEMU, or take a duplicate of an fd the caller passed. */
static int open_input(const char *what, const char *path, int fd, int flags, struct vm_error *err)
{
	struct stat st;
	int out;

	if (path)
		fd = -1; /* a path wins: a zero-initialized fd field must not mean stdin */
	if (fd >= 0) {
		out = fcntl(fd, F_DUPFD_CLOEXEC, 3);
		if (out < 0)
			return vm_error_set_errno(err, VM_INVALID_ARGUMENT, errno, "%s fd %d", what, fd);
	} else {
		out = open(path, flags | O_CLOEXEC | O_NOCTTY);
		if (out < 0)
			return vm_error_errno(err, errno, "%s %s", what, path);
	}
	if (fstat(out, &st) < 0 || !(S_ISREG(st.st_mode) || S_ISBLK(st.st_mode))) {
		close(out);
		return vm_error_set(err, VM_INVALID_ARGUMENT, "%s %s is not a regular file or block device", what,
				    path ? path : "(fd)");
	}
	return out;
}

/* @srcs one after the other in one sealed memfd named @what. */
static int memfd_of(const char *what, const int *srcs, int nsrcs, struct vm_error *err)
{
	cleanup_close int mfd = memfd_create(what, MFD_CLOEXEC | MFD_ALLOW_SEALING);

	if (mfd < 0)
		return vm_error_errno(err, errno, "memfd for %s", what);
	for (int i = 0; i < nsrcs; i++) {
		off_t off = 0;

		for (;;) {
			ssize_t n = copy_file_range(srcs[i], &off, mfd, NULL, 1 << 24, 0);
			char buf[65536];

			if (n == 0)
				break;
			if (n > 0)
				continue;
			if (errno != EXDEV && errno != EINVAL && errno != ENOSYS && errno != EOPNOTSUPP)
				return vm_error_errno(err, errno, "copying %s", what);
			/* no in-kernel copy between these files: plain read/write */
			n = pread(srcs[i], buf, sizeof(buf), off);
			if (n < 0)
				return vm_error_errno(err, errno, "reading %s", what);
			if (n == 0)
				break;
			if (write_all(mfd, buf, (size_t)n) < 0)
				return vm_error_errno(err, errno, "writing %s memfd", what);
			off += n;
		}
	}
	fcntl(mfd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL);
	return steal_fd(&mfd);
}

/* initrd followed by extra_initrd in one sealed memfd (Linux unpacks
 * concatenated cpio archives, compressed or not, in order). */
static int concat_initrd(int initrd_fd, const char *extra, struct vm_error *err)
{
	cleanup_close int xfd = open_input("extra initrd", extra, -1, O_RDONLY, err);
	int srcs[2] = { initrd_fd, -1 };

	if (xfd < 0)
		return -1;
	srcs[1] = xfd;
	return memfd_of("virtmgr-initrd", srcs, 2, err);
}

/*
 * QEMU opens -kernel and -initrd as /proc/self/fd/N, which checks the file's
 * own permissions again: under a VM's uid, a file that only its owner may
 * read fails. Hand QEMU a memfd copy of such a file instead (@fd is
 * replaced). Return: 0, or -1 with @err filled.
 */
static int readable_for_vm(int *fd, const char *what, struct vm_error *err)
{
	struct stat st;
	int m;

	if (fstat(*fd, &st) < 0)
		return vm_error_errno(err, errno, "%s", what);
	if (S_ISREG(st.st_mode) && (st.st_mode & S_IROTH))
		return 0;
	m = memfd_of(what, fd, 1, err);
	if (m < 0)
		return -1;
	close(*fd);
	*fd = m;
	return 0;
}

/* A listening Unix socket at @path (a stale one is replaced). */
static int unix_listen(const char *path, struct vm_error *err)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	cleanup_close int fd = -1;

	if (strlen(path) >= sizeof(sa.sun_path))
		return vm_error_set(err, VM_INVALID_ARGUMENT, "socket path %s is too long (max %zu bytes)", path,
				    sizeof(sa.sun_path) - 1);
	strcpy(sa.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return vm_error_errno(err, errno, "socket for %s", path);
	if (unlink(path) < 0 && errno != ENOENT)
		return vm_error_errno(err, errno, "removing stale %s", path);
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		return vm_error_errno(err, errno, "bind %s", path);
	if (listen(fd, 4) < 0)
		return vm_error_errno(err, errno, "listen %s", path);
	return steal_fd(&fd);
}

/* qemu.log of a run dir, opened for appending (QEMU's stdout and stderr).
 * The run dir may belong to the VM's uid, which could plant a symlink. */
static int log_file_open(const char *path)
{
	return open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOCTTY | O_NOFOLLOW, 0600);
}

/* Bound qemu.log; its tail is then read from the start of the new file. */
static void qemu_log_check(struct qemu *q)
{
	struct vm_error err = { 0 };
	int r;

	if (!q->qemu_log_path)
		return;
	r = logfile_rotate_copy(q->qemu_log_path, &q->log_lim, &err);
	if (r < 0)
		log_warn("qemu %d: %s", (int)q->pid, err.message);
	else if (r > 0)
		q->qemu_log_start = 0;
}

static void qemu_log_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	qemu_log_check(w->data);
}

static void qemu_log_timer_start(struct qemu *q)
{
	ev_timer_set(&q->qemu_log_timer, QEMU_LOG_CHECK_SEC, QEMU_LOG_CHECK_SEC);
	ev_timer_start(q->loop, &q->qemu_log_timer);
}

static void qemu_log_timer_stop(struct qemu *q)
{
	if (ev_is_active(&q->qemu_log_timer))
		ev_timer_stop(q->loop, &q->qemu_log_timer);
}

/* A non-blocking connection to the console chardev listening at @path. */
static int console_connect(const char *path, struct vm_error *err)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	cleanup_close int fd = -1;

	if (strlen(path) >= sizeof(sa.sun_path))
		return vm_error_set(err, VM_INVALID_ARGUMENT, "socket path %s is too long", path);
	strcpy(sa.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return vm_error_errno(err, errno, "console socket");
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		return vm_error_errno(err, errno, "connect %s", path);
	fd_set_nonblock(fd, true);
	return steal_fd(&fd);
}

/* The last lines QEMU wrote to qemu.log since @start. */
static void read_stderr_tail(const char *path, off_t start, char *out, size_t size)
{
	cleanup_close int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
	struct stat st;
	off_t from;
	ssize_t n;
	char *nl;

	out[0] = '\0';
	if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode))
		return;
	/* shorter than where this QEMU started: it was rotated (truncated) since */
	if (st.st_size < start)
		start = 0;
	if (st.st_size <= start)
		return;
	from = MAX(start, st.st_size - (off_t)(size - 1));
	n = pread(fd, out, size - 1, from);
	if (n <= 0)
		return;
	out[n] = '\0';
	/* cut in the middle of a line: start at the next whole one */
	if (from > start && from > 0 && (nl = strchr(out, '\n')) && nl[1])
		memmove(out, nl + 1, strlen(nl + 1) + 1);
}

/* ------------------------------------------------------------ exit */

static void qemu_unref(struct qemu *q);

static void qemu_console_read(struct qemu *q)
{
	char buf[QEMU_CONSOLE_CHUNK];

	while (q->console_fd >= 0 && !q->freed) {
		ssize_t n = read(q->console_fd, buf, sizeof(buf));

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		if (n <= 0) {
			ev_io_stop(q->loop, &q->console_io);
			close(q->console_fd);
			q->console_fd = -1;
			return;
		}
		/* a full file system fails every write: say so once, and when it passes again */
		if (q->console_log && logfile_write(q->console_log, buf, (size_t)n) < 0) {
			if (!q->console_lost)
				log_warn(
					"qemu %d: writing console.log: %s (console output is lost until it works again)",
					(int)q->pid, strerror(errno));
			q->console_lost += (uint64_t)n;
		} else if (q->console_log && q->console_lost) {
			log_info("qemu %d: console.log is written again; %" PRIu64 " bytes were lost", (int)q->pid,
				 q->console_lost);
			q->console_lost = 0;
		}
		if (q->cb.on_console)
			q->cb.on_console(q->opaque, buf, (size_t)n);
	}
}

static void qemu_console_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct qemu *q = w->data;

	q->refs++;
	qemu_console_read(q);
	qemu_unref(q);
}

static void qemu_set_status(struct qemu_exit *e, int status)
{
	e->wait_status = status;
	if (WIFEXITED(status)) {
		e->exit_code = WEXITSTATUS(status);
		e->signal = 0;
	} else if (WIFSIGNALED(status)) {
		e->exit_code = -1;
		e->signal = WTERMSIG(status);
	}
}

/* QEMU is gone and its status (if knowable) is in q->exit: collect the rest, report. */
static void qemu_finish(struct qemu *q)
{
	if (q->exited)
		return;
	q->exited = true;
	ev_io_stop(q->loop, &q->pid_io);
	qemu_log_timer_stop(q);
	if (ev_is_active(&q->child_w))
		ev_child_stop(q->loop, &q->child_w);
	if (q->qmp)
		qmp_drain(q->qmp);
	if (!q->freed)
		qemu_console_read(q);
	q->exit.kill_sent = q->kill_sent;
	if (q->qemu_log_path)
		read_stderr_tail(q->qemu_log_path, q->qemu_log_start, q->exit.stderr_tail, sizeof(q->exit.stderr_tail));
	if (q->qmp_path)
		unlink(q->qmp_path);
	if (q->console_path)
		unlink(q->console_path);
	log_debug("qemu %d: exited (status %d, signal %d, reason \"%s\"%s)", (int)q->pid, q->exit.wait_status,
		  q->exit.signal, q->exit.shutdown_reason, q->exit.panicked ? ", panicked" : "");
	if (q->cb.on_exit && !q->freed)
		q->cb.on_exit(q->opaque, &q->exit);
}

static void qemu_child_cb(struct ev_loop *loop, ev_child *w, int revents)
{
	struct qemu *q = w->data;

	ev_child_stop(loop, w);
	q->refs++;
	qemu_set_status(&q->exit, w->rstatus);
	qemu_finish(q);
	qemu_unref(q);
}

static void qemu_pidfd_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct qemu *q = w->data;
	siginfo_t si;

	q->refs++;
	if (q->is_child) {
		int r;

		memset(&si, 0, sizeof(si));
		r = waitid((idtype_t)P_PIDFD, (id_t)q->pidfd, &si, WEXITED | WNOHANG);
		if (r == 0 && si.si_pid != 0) {
			if (si.si_code == CLD_EXITED)
				qemu_set_status(&q->exit, W_EXITCODE(si.si_status, 0));
			else
				qemu_set_status(&q->exit, si.si_status | (si.si_code == CLD_DUMPED ? WCOREFLAG : 0));
		} else if (ev_is_active(&q->child_w) || ev_is_pending(&q->child_w)) {
			/* libev's SIGCHLD handler reaped it first (the status is
			 * queued on the child watcher) or will once the exit is
			 * waitable: the child watcher reports it, with the status */
			ev_io_stop(loop, w);
			qemu_unref(q);
			return;
		} else if (r == 0) {
			/* gone but not yet waitable: the pidfd stays readable,
			 * so look again on the next loop iteration */
			qemu_unref(q);
			return;
		}
	}
	qemu_finish(q);
	qemu_unref(q);
}

/* ------------------------------------------------------------ QMP */

static void qemu_qmp_event(void *opaque, const char *name, struct json_object *data)
{
	struct qemu *q = opaque;

	if (strcmp(name, "SHUTDOWN") == 0) {
		const char *reason = qmp_get_string(data, "reason");

		if (reason)
			snprintf(q->exit.shutdown_reason, sizeof(q->exit.shutdown_reason), "%s", reason);
	} else if (strcmp(name, "GUEST_PANICKED") == 0) {
		q->exit.panicked = true;
	}
	log_debug("qemu %d: event %s", (int)q->pid, name);
	if (q->cb.on_event && !q->freed)
		q->cb.on_event(q->opaque, name);
}

static void qemu_qmp_close(void *opaque, const char *why)
{
	struct qemu *q = opaque;

	if (!q->exited)
		log_debug("qemu %d: QMP connection ended: %s", (int)q->pid, why);
}

static const struct qmp_callbacks qemu_qmp_cb = {
	.on_event = qemu_qmp_event,
	.on_close = qemu_qmp_close,
};

static void qemu_log_reply(void *opaque, struct json_object *ret, const char *error)
{
	if (error)
		log_warn("qemu: QMP %s failed: %.400s", (const char *)opaque, error);
}

static int qemu_command(struct qemu *q, const char *cmd)
{
	if (!q->qmp || q->exited || q->freed)
		return -1;
	return qmp_command(q->qmp, cmd, NULL, qemu_log_reply, (void *)cmd);
}

static void qemu_status_reply(void *opaque, struct json_object *ret, const char *error)
{
	struct qemu *q = opaque;
	struct qemu_status_query *sq = q->queries;

	if (!sq)
		return;
	q->queries = sq->next;
	sq->fn(sq->opaque, error ? NULL : qmp_get_string(ret, "status"));
	free(sq);
}

/* ------------------------------------------------------------ start */

struct qemu_spawn {
	char **argv;
	int fds[64]; /* fds[i] becomes fd i in QEMU */
	size_t nfds;
	char exec_err[512]; /* prefix written to stderr if exec fails */
	struct sandbox sb;  /* applied when confine */
	bool confine;
	int report_fd; /* write end of the sandbox report pipe, or -1 */
	/* KVM for a VM's uid: a node of its own in a private mount namespace */
	bool kvm_node;
	char kvm_dir[PATH_MAX];	 /* run_dir/.dev, where the node is made */
	char kvm_path[PATH_MAX]; /* run_dir/.dev/kvm */
};

/* Write "what: errno N" to the report pipe; async-signal-safe. */
static void spawn_report(int fd, const char *what, int e)
{
	char num[16];
	int i = (int)sizeof(num);

	num[--i] = '\n';
	do {
		num[--i] = (char)('0' + e % 10);
		e /= 10;
	} while (e && i > 0);
	if (fd < 0 || write(fd, what, strlen(what)) < 0 || write(fd, ": errno ", 8) < 0 ||
	    write(fd, num + i, sizeof(num) - (size_t)i) < 0) {
		/* nothing left to report to */
	}
}

/*
 * /dev/kvm is usually root's or the kvm group's, and a VM's uid has neither.
 * In a mount namespace of this child only, a fresh node of the same device,
 * owned by the VM's uid, is bind-mounted over /dev/kvm. The node is made on
 * a tmpfs of its own, since run directories often live on nodev mounts.
 * Return: 0, or -1 with the step in *what and errno set.
 */
static int spawn_kvm_node(const struct qemu_spawn *sp, const char **what)
{
	struct stat st;

	*what = "kvm: stat /dev/kvm";
	if (stat("/dev/kvm", &st) < 0 || !S_ISCHR(st.st_mode))
		return -1;
	*what = "kvm: unshare mount namespace";
	if (unshare(CLONE_NEWNS) < 0)
		return -1;
	*what = "kvm: make / a slave";
	if (mount(NULL, "/", NULL, MS_REC | MS_SLAVE, NULL) < 0)
		return -1;
	*what = "kvm: mount tmpfs";
	if (mount("virtmgr-dev", sp->kvm_dir, "tmpfs", MS_NOSUID | MS_NOEXEC, "mode=0700,size=4k") < 0)
		return -1;
	*what = "kvm: mknod";
	if (mknod(sp->kvm_path, S_IFCHR | 0600, st.st_rdev) < 0)
		return -1;
	*what = "kvm: chown";
	if (chown(sp->kvm_path, sp->sb.uid, sp->sb.gid) < 0)
		return -1;
	*what = "kvm: bind mount over /dev/kvm";
	if (mount(sp->kvm_path, "/dev/kvm", NULL, MS_BIND, NULL) < 0)
		return -1;
	/* the bind mount keeps the node; the tmpfs itself is not needed */
	*what = "kvm: unmount tmpfs";
	if (umount2(sp->kvm_dir, MNT_DETACH) < 0)
		return -1;
	return 0;
}

static int spawn_add_fd(struct qemu_spawn *sp, int fd)
{
	if (sp->nfds >= ARRAY_SIZE(sp->fds))
		return -1;
	sp->fds[sp->nfds] = fd;
	return (int)sp->nfds++;
}

/* In the forked child: only async-signal-safe calls from here on. */
static __attribute__((noreturn)) void spawn_child(struct qemu_spawn *sp, const char *binary)
{
	int tmp[ARRAY_SIZE(sp->fds)];
	sigset_t none;
	char num[16];
	int e, i, rep = -1;
	const char *what;

	setsid();
	for (int sig = 1; sig < NSIG; sig++)
		signal(sig, SIG_DFL);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);

	/* the report pipe goes above the target range, where no dup2 reaches */
	if (sp->report_fd >= 0) {
		rep = fcntl(sp->report_fd, F_DUPFD_CLOEXEC, (int)sp->nfds);
		if (rep < 0)
			goto fail;
	}
	/* move every fd above the target range first, so no dup2 clobbers a source */
	for (size_t k = 0; k < sp->nfds; k++) {
		tmp[k] = fcntl(sp->fds[k], F_DUPFD_CLOEXEC, (int)sp->nfds);
		if (tmp[k] < 0)
			goto fail;
	}
	for (size_t k = 0; k < sp->nfds; k++)
		if (dup2(tmp[k], (int)k) < 0)
			goto fail;
	if (rep < 0) {
		if (close_range((unsigned)sp->nfds, ~0U, 0) < 0)
			for (int fd = (int)sp->nfds; fd < 65536; fd++)
				close(fd);
	} else {
		for (int fd = (int)sp->nfds; fd < rep; fd++)
			close(fd);
		if (close_range((unsigned)rep + 1, ~0U, 0) < 0)
			for (int fd = rep + 1; fd < 65536; fd++)
				close(fd);
	}
	if (sp->confine) {
		struct sandbox sb = sp->sb;

		if (sp->kvm_node && spawn_kvm_node(sp, &what) < 0) {
			spawn_report(rep, what, errno);
			_exit(SANDBOX_EXIT_FAILED);
		}
		sb.report_fd = rep;
		if (sandbox_enter(&sb) < 0)
			_exit(SANDBOX_EXIT_FAILED);
	}
	execv(binary, sp->argv);
fail:
	e = errno;
	i = (int)sizeof(num);
	num[--i] = '\n';
	do {
		num[--i] = (char)('0' + e % 10);
		e /= 10;
	} while (e && i > 0);
	if (write(2, sp->exec_err, strlen(sp->exec_err)) < 0 || write(2, num + i, sizeof(num) - (size_t)i) < 0) {
		/* nothing left to report to */
	}
	_exit(127);
}

static bool valid_user_name(const char *s)
{
	if (!*s || strlen(s) > 32)
		return false;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') || *s == '_' ||
		      *s == '-' || *s == '.'))
			return false;
	return true;
}

static void qemu_release(struct qemu *q)
{
	while (q->queries) {
		struct qemu_status_query *next = q->queries->next;

		free(q->queries);
		q->queries = next;
	}
	free(q->qemu_log_path);
	free(q->qmp_path);
	free(q->console_path);
	free(q);
}

static void qemu_unref(struct qemu *q)
{
	if (--q->refs == 0 && q->freed)
		qemu_release(q);
}

static struct qemu *qemu_new(struct ev_loop *loop, const struct qemu_callbacks *cb, void *opaque)
{
	struct qemu *q = xzalloc(sizeof(*q));

	q->loop = loop;
	if (cb)
		q->cb = *cb;
	q->opaque = opaque;
	q->pidfd = -1;
	q->console_fd = -1;
	q->log_lim = logfile_limits_default();
	q->exit.wait_status = -1;
	q->exit.exit_code = -1;
	ev_init(&q->pid_io, qemu_pidfd_cb);
	q->pid_io.data = q;
	ev_init(&q->console_io, qemu_console_cb);
	q->console_io.data = q;
	ev_init(&q->qemu_log_timer, qemu_log_timer_cb);
	q->qemu_log_timer.data = q;
	ev_init(&q->child_w, qemu_child_cb);
	q->child_w.data = q;
	return q;
}

/* Close what a not-yet-published struct qemu holds (start/adopt failure). */
static void qemu_discard(struct qemu *q)
{
	if (q->qmp)
		qmp_free(q->qmp);
	if (q->pidfd >= 0)
		close(q->pidfd);
	if (q->console_fd >= 0)
		close(q->console_fd);
	logfile_free(q->console_log);
	qemu_release(q);
}

static int qemu_build_argv(const struct qemu_config *cfg, struct qemu_spawn *sp, const char *binary,
			   const int *disk_fds, int kernel_fd, int initrd_fd, int qmp_fd, int console_fd, int fw_cfg_fd,
			   struct vm_error *err)
{
	char **argv = NULL;
	size_t n = 0, cap = 0;
	bool kvm = strcmp(cfg->accel, "kvm") == 0;
	int fdn;

#define ADD(s) argv_add(&argv, &n, &cap, xstrdup(s))
#define ADDF(...) argv_add(&argv, &n, &cap, xasprintf(__VA_ARGS__))
	ADD(binary);
	ADD("-nodefaults");
	ADD("-no-user-config");
	ADD("-display");
	ADD("none");
	ADD("-machine");
	ADD("pc,memory-backend=mem");
	ADD("-accel");
	if (!kvm && cfg->tcg_tb_size_mib)
		ADDF("tcg,tb-size=%" PRIu32, cfg->tcg_tb_size_mib);
	else
		ADD(kvm ? "kvm" : "tcg");
	if (kvm) {
		ADD("-cpu");
		ADD("host");
	}
	ADD("-m");
	ADDF("%" PRIu32 "M", cfg->memory_mib);
	ADD("-smp");
	ADDF("%" PRIu32, cfg->cpus);
	/* shared guest memory: vhost-user backends map it */
	ADD("-object");
	ADDF("memory-backend-memfd,id=mem,size=%" PRIu32 "M,share=on", cfg->memory_mib);
	ADD("-no-reboot");
	ADD("-action");
	ADD("panic=shutdown");
	ADD("-device");
	ADD("pvpanic");
	ADD("-chardev");
	ADDF("socket,id=con,fd=%d,server=on,wait=on", console_fd);
	ADD("-serial");
	ADD("chardev:con");
	ADD("-chardev");
	ADDF("socket,id=qmp,fd=%d,server=on,wait=off", qmp_fd);
	ADD("-mon");
	ADD("chardev=qmp,mode=control");
	ADD("-kernel");
	ADDF("/proc/self/fd/%d", kernel_fd);
	if (initrd_fd >= 0) {
		ADD("-initrd");
		ADDF("/proc/self/fd/%d", initrd_fd);
	}
	if (cfg->cmdline) {
		ADD("-append");
		ADD(cfg->cmdline);
	}
	if (fw_cfg_fd >= 0) {
		/* an fd, so the file need not be the VM uid's to read */
		ADD("-fw_cfg");
		ADDF("name=opt/virtmgr/config,file=/proc/self/fd/%d", fw_cfg_fd);
	}
	for (size_t i = 0; i < cfg->ndisks; i++) {
		fdn = spawn_add_fd(sp, disk_fds[i]);
		if (fdn < 0) {
			argv_free(argv);
			return vm_error_set(err, VM_INVALID_ARGUMENT, "too many disks (%zu)", cfg->ndisks);
		}
		ADD("-add-fd");
		ADDF("fd=%d,set=%zu", fdn, i + 1);
		/* -drive opens writable images read-only first (auto-read-only)
		 * and the fdset holds only an O_RDWR fd: ask for read-write at once */
		ADD("-drive");
		ADDF("file=/dev/fdset/%zu,if=none,id=disk%zu,format=%s,readonly=%s", i + 1, i,
		     cfg->disks[i].qcow2 ? "qcow2" : "raw", cfg->disks[i].read_only ? "on" : "off,auto-read-only=off");
		ADD("-device");
		/* the guest finds a disk by its serial, not by its place on the bus */
		if (cfg->disks[i].label[0])
			ADDF("virtio-blk-pci,drive=disk%zu,serial=%s", i, cfg->disks[i].label);
		else
			ADDF("virtio-blk-pci,drive=disk%zu", i);
	}
	/* virtiofsd maps guest memory too: the memfd backend above is shared */
	for (size_t i = 0; i < cfg->nshares; i++) {
		cleanup_free char *path = opts_escape(cfg->shares[i].socket);
		cleanup_free char *tag = opts_escape(cfg->shares[i].tag);

		ADD("-chardev");
		ADDF("socket,id=fs%zu,path=%s", i, path);
		ADD("-device");
		ADDF("vhost-user-fs-pci,chardev=fs%zu,tag=%s", i, tag);
	}
	if (cfg->net_mac) {
		fdn = spawn_add_fd(sp, cfg->net_fd);
		if (fdn < 0) {
			argv_free(argv);
			return vm_error_set(err, VM_INVALID_ARGUMENT, "too many fds for the network device");
		}
		ADD("-netdev");
		if (cfg->net_tap)
			ADDF("tap,id=net0,fd=%d", fdn);
		else
			ADDF("stream,id=net0,server=off,addr.type=fd,addr.str=%d", fdn);
		ADD("-device");
		ADDF("virtio-net-pci,netdev=net0,mac=%s", cfg->net_mac);
	}
	if (cfg->vhost_user_vsock_socket) {
		cleanup_free char *path = opts_escape(cfg->vhost_user_vsock_socket);

		ADD("-chardev");
		ADDF("socket,id=vsock,path=%s", path);
		ADD("-device");
		ADD("vhost-user-vsock-pci,chardev=vsock");
	} else if (cfg->vhost_vsock_cid) {
		ADD("-device");
		ADDF("vhost-vsock-pci,guest-cid=%" PRIu32, cfg->vhost_vsock_cid);
	}
	if (cfg->balloon) {
		/* pages the guest frees go back to the host (docs/operations.md) */
		ADD("-device");
		ADD("virtio-balloon-pci,id=balloon0,free-page-reporting=on,deflate-on-oom=on");
	}
	if (cfg->sandbox) {
		ADD("-sandbox");
		ADDF("on,obsolete=deny,elevateprivileges=%s,spawn=deny,resourcecontrol=deny",
		     cfg->run_as_user ? "allow" : "deny");
	}
	if (cfg->run_as_user) {
		ADD("-runas");
		ADD(cfg->run_as_user);
	}
#undef ADD
#undef ADDF
	sp->argv = argv;
	return 0;
}

static int qemu_check_config(const struct qemu_config *cfg, struct vm_error *err)
{
	if (!cfg->binary || !*cfg->binary)
		return vm_error_set(err, VM_INVALID_ARGUMENT, "no QEMU binary configured");
	if (!cfg->accel || (strcmp(cfg->accel, "kvm") != 0 && strcmp(cfg->accel, "tcg") != 0))
		return vm_error_set(err, VM_INVALID_ARGUMENT, "accelerator \"%s\" is not kvm or tcg",
				    cfg->accel ? cfg->accel : "");
	if (!cfg->run_dir || !*cfg->run_dir)
		return vm_error_set(err, VM_INVALID_ARGUMENT, "no run directory");
	if (!cfg->kernel && cfg->kernel_fd < 0)
		return vm_error_set(err, VM_INVALID_ARGUMENT, "no kernel");
	if (cfg->memory_mib < 16 || cfg->memory_mib > 1024 * 1024)
		return vm_error_set(err, VM_INVALID_ARGUMENT, "memory %" PRIu32 " MiB is out of range (16..1048576)",
				    cfg->memory_mib);
	if (cfg->cpus < 1 || cfg->cpus > 255)
		return vm_error_set(err, VM_INVALID_ARGUMENT, "cpu count %" PRIu32 " is out of range (1..255)",
				    cfg->cpus);
	if (cfg->vhost_user_vsock_socket && cfg->vhost_vsock_cid)
		return vm_error_set(err, VM_INVALID_ARGUMENT, "both vhost-user-vsock and vhost-vsock requested");
	if (cfg->vhost_vsock_cid && cfg->vhost_vsock_cid < 3)
		return vm_error_set(err, VM_INVALID_ARGUMENT, "guest CID %" PRIu32 " is reserved",
				    cfg->vhost_vsock_cid);
	if (cfg->net_mac && (cfg->net_fd < 0 || strlen(cfg->net_mac) != 17 ||
			     cfg->net_mac[strspn(cfg->net_mac, "0123456789abcdefABCDEF:")]))
		return vm_error_set(err, VM_INVALID_ARGUMENT, "network device: MAC \"%s\" or fd %d is invalid",
				    cfg->net_mac, cfg->net_fd);
	if (cfg->extra_initrd && !cfg->initrd && cfg->initrd_fd < 0)
		return vm_error_set(err, VM_INVALID_ARGUMENT, "extra initrd without a base initrd");
	if (cfg->run_as_user && !valid_user_name(cfg->run_as_user))
		return vm_error_set(err, VM_INVALID_ARGUMENT, "invalid user name \"%s\" to run QEMU as",
				    cfg->run_as_user);
	for (size_t i = 0; i < cfg->ndisks; i++) {
		const char *l = cfg->disks[i].label;

		if (!cfg->disks[i].path && cfg->disks[i].fd < 0)
			return vm_error_set(err, VM_INVALID_ARGUMENT, "disk %zu has neither a path nor an fd", i);
		/* it goes into a -device option list: no ',' or '=' may pass */
		if (l[strspn(l, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-")])
			return vm_error_set(err, VM_INVALID_ARGUMENT, "disk %zu: invalid label \"%s\"", i, l);
	}
	return 0;
}

/* An fd for disk @d with exactly the access mode QEMU will ask /dev/fdset for. */
static int open_disk(const struct qemu_disk *d, size_t i, struct vm_error *err)
{
	char what[32];
	int want = d->read_only ? O_RDONLY : O_RDWR;
	int fd, fl;

	snprintf(what, sizeof(what), "disk %zu", i);
	if (d->path || d->fd < 0)
		return open_input(what, d->path, -1, want, err);
	fl = fcntl(d->fd, F_GETFL);
	if (fl < 0)
		return vm_error_set_errno(err, VM_INVALID_ARGUMENT, errno, "disk %zu fd %d", i, d->fd);
	if ((fl & O_ACCMODE) == want || (fl & O_ACCMODE) == O_RDWR) {
		if ((fl & O_ACCMODE) == want)
			return open_input(what, NULL, d->fd, 0, err);
		/* a read-write fd for a read-only disk: reopen read-only */
		char proc[64];

		snprintf(proc, sizeof(proc), "/proc/self/fd/%d", d->fd);
		fd = open_input(what, proc, -1, O_RDONLY, err);
		return fd;
	}
	return vm_error_set(err, VM_INVALID_ARGUMENT, "disk %zu: fd %d is read-only but the disk is writable", i,
			    d->fd);
}

int qemu_start(struct ev_loop *loop, const struct qemu_config *cfg, const struct qemu_callbacks *cb, void *opaque,
	       struct qemu **out, struct vm_error *err)
{
	struct qemu_spawn sp = { 0 };
	cleanup_free char *binary = NULL, *console_log = NULL;
	cleanup_close int qemu_log = -1, kernel_fd = -1, initrd_fd = -1, qmp_fd = -1, stdin_fd = -1;
	cleanup_close int console_listen = -1, fw_cfg_fd = -1, report_r = -1, report_w = -1;
	int disk_fds[32];
	int k_n, i_n = -1, q_n, c_n, f_n = -1, ret = -1;
	struct qemu *q = NULL;
	pid_t pid;

	for (size_t i = 0; i < ARRAY_SIZE(disk_fds); i++)
		disk_fds[i] = -1;
	if (qemu_check_config(cfg, err) < 0)
		return -1;
	if (cfg->ndisks > ARRAY_SIZE(disk_fds))
		return vm_error_set(err, VM_INVALID_ARGUMENT, "too many disks (%zu, max %zu)", cfg->ndisks,
				    ARRAY_SIZE(disk_fds));
	binary = find_binary(cfg->binary);
	if (!binary)
		return vm_error_set(err, VM_FAILED_PRECONDITION, "QEMU binary %s not found or not executable",
				    cfg->binary);

	q = qemu_new(loop, cb, opaque);
	q->is_child = true;
	q->qmp_path = xasprintf("%s/qmp.sock", cfg->run_dir);
	q->console_path = xasprintf("%s/console.sock", cfg->run_dir);
	q->qemu_log_path = xasprintf("%s/qemu.log", cfg->run_dir);
	console_log = xasprintf("%s/console.log", cfg->run_dir);

	kernel_fd = open_input("kernel", cfg->kernel, cfg->kernel_fd, O_RDONLY, err);
	if (kernel_fd < 0)
		goto out;
	if (cfg->initrd || cfg->initrd_fd >= 0) {
		initrd_fd = open_input("initrd", cfg->initrd, cfg->initrd_fd, O_RDONLY, err);
		if (initrd_fd < 0)
			goto out;
		if (cfg->extra_initrd) {
			int cat = concat_initrd(initrd_fd, cfg->extra_initrd, err);

			if (cat < 0)
				goto out;
			close(initrd_fd);
			initrd_fd = cat;
		}
	}
	for (size_t i = 0; i < cfg->ndisks; i++) {
		disk_fds[i] = open_disk(&cfg->disks[i], i, err);
		if (disk_fds[i] < 0)
			goto out;
	}
	stdin_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	if (stdin_fd < 0) {
		vm_error_errno(err, errno, "/dev/null");
		goto out;
	}
	qemu_log = log_file_open(q->qemu_log_path);
	if (qemu_log < 0) {
		vm_error_errno(err, errno, "%s", q->qemu_log_path);
		goto out;
	}
	q->qemu_log_start = lseek(qemu_log, 0, SEEK_END);
	if (q->qemu_log_start < 0)
		q->qemu_log_start = 0;
	if (cfg->log_limits)
		q->log_lim = *cfg->log_limits;
	q->console_log = logfile_open(console_log, &q->log_lim, err);
	if (!q->console_log)
		goto out;
	qmp_fd = unix_listen(q->qmp_path, err);
	if (qmp_fd < 0)
		goto out;
	console_listen = unix_listen(q->console_path, err);
	if (console_listen < 0)
		goto out;
	/* queued on the listening socket until QEMU's wait=on accept takes it */
	q->console_fd = console_connect(q->console_path, err);
	if (q->console_fd < 0)
		goto out;

	/* QEMU's fds: 0 /dev/null, 1 and 2 qemu.log, then the rest */
	spawn_add_fd(&sp, stdin_fd);
	spawn_add_fd(&sp, qemu_log);
	spawn_add_fd(&sp, qemu_log);
	q_n = spawn_add_fd(&sp, qmp_fd);
	c_n = spawn_add_fd(&sp, console_listen);
	if (cfg->confine && cfg->confine->change_ids &&
	    (readable_for_vm(&kernel_fd, "virtmgr-kernel", err) < 0 ||
	     (initrd_fd >= 0 && readable_for_vm(&initrd_fd, "virtmgr-initrd", err) < 0)))
		goto out;
	k_n = spawn_add_fd(&sp, kernel_fd);
	if (initrd_fd >= 0)
		i_n = spawn_add_fd(&sp, initrd_fd);
	if (cfg->fw_cfg_config) {
		fw_cfg_fd = open(cfg->fw_cfg_config, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
		if (fw_cfg_fd < 0) {
			vm_error_errno(err, errno, "%s", cfg->fw_cfg_config);
			goto out;
		}
		f_n = spawn_add_fd(&sp, fw_cfg_fd);
	}
	if (qemu_build_argv(cfg, &sp, binary, disk_fds, k_n, i_n, q_n, c_n, f_n, err) < 0)
		goto out;
	/* QEMU reopens it by /proc/self/fd: it must be the VM uid's to read */
	if (fw_cfg_fd >= 0 && cfg->confine && cfg->confine->change_ids &&
	    fchown(fw_cfg_fd, cfg->confine->uid, cfg->confine->gid) < 0) {
		vm_error_errno(err, errno, "chown %s to uid %u", cfg->fw_cfg_config, (unsigned)cfg->confine->uid);
		goto out;
	}
	sp.report_fd = -1;
	if (cfg->confine) {
		int p[2];

		sp.confine = true;
		sp.sb = *cfg->confine;
		if (pipe2(p, O_CLOEXEC) < 0) {
			vm_error_errno(err, errno, "pipe for QEMU's sandbox report");
			goto out;
		}
		report_r = p[0];
		report_w = p[1];
		sp.report_fd = report_w;
		if (sp.sb.change_ids && !strcmp(cfg->accel, "kvm")) {
			sp.kvm_node = true;
			snprintf(sp.kvm_dir, sizeof(sp.kvm_dir), "%s/.dev", cfg->run_dir);
			snprintf(sp.kvm_path, sizeof(sp.kvm_path), "%s/.dev/kvm", cfg->run_dir);
			if (mkdir(sp.kvm_dir, 0700) < 0 && errno != EEXIST) {
				vm_error_errno(err, errno, "%s", sp.kvm_dir);
				goto out;
			}
		}
	}
	snprintf(sp.exec_err, sizeof(sp.exec_err), "virtmgr: cannot execute %s: errno ", binary);
	{
		/* the command line, for whoever reads qemu.log later */
		char line[256];
		int len = snprintf(line, sizeof(line), "virtmgr: starting %s\n", binary);

		if (write_all(qemu_log, line, (size_t)MIN(len, (int)sizeof(line) - 1)) < 0)
			log_warn("writing %s: %s", q->qemu_log_path, strerror(errno));
		q->qemu_log_start = lseek(qemu_log, 0, SEEK_END);
	}

	pid = fork();
	if (pid < 0) {
		vm_error_errno(err, errno, "fork for QEMU");
		goto out;
	}
	if (pid == 0)
		spawn_child(&sp, binary);
	if (report_r >= 0) {
		/* EOF: the exec went ahead (the pipe is close-on-exec); a line: the
		 * child could not confine itself and exits instead of running */
		char why[256];

		close(steal_fd(&report_w));
		if (sandbox_report_read(report_r, pid, why, sizeof(why))) {
			vm_error_set(err, VM_FAILED_PRECONDITION, "QEMU could not be sandboxed: %s", why);
			goto out;
		}
	}

	q->pid = pid;
	q->pidfd = pidfd_open(pid, 0);
	if (q->pidfd < 0) {
		/* cannot supervise it: do not leave it running */
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		vm_error_errno(err, errno, "pidfd_open for QEMU pid %d", (int)pid);
		goto out;
	}
	fcntl(q->pidfd, F_SETFD, FD_CLOEXEC);
	if (read_start_time(pid, &q->start_time) < 0)
		log_warn("qemu %d: cannot read its start time", (int)pid);
	ev_io_set(&q->pid_io, q->pidfd, EV_READ);
	ev_io_start(loop, &q->pid_io);
	if (ev_is_default_loop(loop)) {
		ev_child_set(&q->child_w, pid, 0);
		ev_child_start(loop, &q->child_w);
	}
	ev_io_set(&q->console_io, q->console_fd, EV_READ);
	ev_io_start(loop, &q->console_io);
	qemu_log_timer_start(q);
	/* the socket already listens: this connect completes whenever QEMU gets going */
	if (qmp_connect(loop, q->qmp_path, &qemu_qmp_cb, q, &q->qmp, err) < 0)
		log_warn("qemu %d: %s (no QMP control)", (int)pid, err ? err->message : "QMP connect failed");
	log_info("qemu %d: started (%s)", (int)pid, cfg->run_dir);
	*out = steal_pointer(&q);
	ret = 0;
out:
	for (size_t i = 0; i < ARRAY_SIZE(disk_fds); i++)
		if (disk_fds[i] >= 0)
			close(disk_fds[i]);
	argv_free(sp.argv);
	if (q)
		qemu_discard(q);
	return ret;
}

int qemu_adopt(struct ev_loop *loop, pid_t pid, uint64_t start_time, const char *run_dir,
	       const struct qemu_callbacks *cb, void *opaque, struct qemu **out, struct vm_error *err)
{
	struct qemu *q;
	uint64_t st;
	struct vm_error qerr;

	if (pid <= 0)
		return vm_error_set(err, VM_INVALID_ARGUMENT, "invalid QEMU pid %d", (int)pid);
	q = qemu_new(loop, cb, opaque);
	q->pid = pid;
	q->start_time = start_time;
	q->pidfd = pidfd_open(pid, 0);
	if (q->pidfd < 0) {
		vm_error_set_errno(err, errno == ESRCH ? VM_NOT_FOUND : VM_INTERNAL, errno, "QEMU pid %d", (int)pid);
		qemu_discard(q);
		return -1;
	}
	fcntl(q->pidfd, F_SETFD, FD_CLOEXEC);
	/* the pidfd is pinned now; the start time tells whether it is the same process */
	if (read_start_time(pid, &st) < 0 || st != start_time) {
		vm_error_set(err, VM_NOT_FOUND, "QEMU pid %d is gone (pid reused or exited)", (int)pid);
		qemu_discard(q);
		return -1;
	}
	q->qmp_path = xasprintf("%s/qmp.sock", run_dir);
	q->console_path = xasprintf("%s/console.sock", run_dir);
	q->qemu_log_path = xasprintf("%s/qemu.log", run_dir);
	q->qemu_log_start = 0;
	ev_io_set(&q->pid_io, q->pidfd, EV_READ);
	ev_io_start(loop, &q->pid_io);
	if (qmp_connect(loop, q->qmp_path, &qemu_qmp_cb, q, &q->qmp, &qerr) < 0)
		log_warn("qemu %d: %s (no QMP control)", (int)pid, qerr.message);
	/* the console again, from where the previous daemon left it */
	q->console_fd = console_connect(q->console_path, &qerr);
	if (q->console_fd < 0) {
		log_warn("qemu %d: %s (its console is not captured)", (int)pid, qerr.message);
	} else {
		cleanup_free char *console_log = xasprintf("%s/console.log", run_dir);

		q->console_log = logfile_open(console_log, &q->log_lim, &qerr);
		if (!q->console_log)
			log_warn("qemu %d: %s (console output is not logged)", (int)pid, qerr.message);
		ev_io_set(&q->console_io, q->console_fd, EV_READ);
		ev_io_start(loop, &q->console_io);
	}
	qemu_log_timer_start(q);
	log_info("qemu %d: adopted (%s)", (int)pid, run_dir);
	*out = q;
	return 0;
}

void qemu_set_log_limits(struct qemu *q, const struct logfile_limits *lim)
{
	struct vm_error err = { 0 };

	q->log_lim = *lim;
	if (q->console_log) {
		cleanup_free char *path = xstrdup(logfile_path(q->console_log));

		/* reopened: the writer continues the file, counting its size toward the new bound */
		logfile_free(q->console_log);
		q->console_log = logfile_open(path, &q->log_lim, &err);
		if (!q->console_log)
			log_warn("qemu %d: %s (console output is not logged)", (int)q->pid, err.message);
	}
	qemu_log_check(q);
}

pid_t qemu_pid(const struct qemu *q)
{
	return q->pid;
}

uint64_t qemu_start_time(const struct qemu *q)
{
	return q->start_time;
}

int qemu_powerdown(struct qemu *q)
{
	return qemu_command(q, "system_powerdown");
}

int qemu_quit(struct qemu *q)
{
	return qemu_command(q, "quit");
}

int qemu_pause(struct qemu *q, bool pause)
{
	return qemu_command(q, pause ? "stop" : "cont");
}

ssize_t qemu_console_write(struct qemu *q, const void *buf, size_t len)
{
	ssize_t n;

	if (q->console_fd < 0 || q->exited || q->freed)
		return -EPIPE;
	n = send(q->console_fd, buf, len, MSG_NOSIGNAL | MSG_DONTWAIT);
	return n < 0 ? -errno : n;
}

/* One qemu_qmp_call() in flight; answered by its reply or by qemu_free(). */
struct qemu_qmp_pending {
	struct qemu_qmp_pending *next, **pprev;
	qemu_qmp_fn fn;
	void *opaque;
};

static void qemu_qmp_call_reply(void *opaque, struct json_object *ret, const char *error)
{
	struct qemu_qmp_pending *p = opaque;

	*p->pprev = p->next;
	if (p->next)
		p->next->pprev = p->pprev;
	p->fn(p->opaque, ret, error);
	free(p);
}

int qemu_qmp_call(struct qemu *q, const char *command, struct json_object *args, qemu_qmp_fn fn, void *opaque)
{
	struct qemu_qmp_pending *p;

	if (!q->qmp || q->exited || q->freed)
		return -1;
	p = xzalloc(sizeof(*p));
	p->fn = fn;
	p->opaque = opaque;
	/* linked first: a connection failing while the command is written answers it at once */
	p->next = q->calls;
	if (p->next)
		p->next->pprev = &p->next;
	p->pprev = &q->calls;
	q->calls = p;
	if (qmp_command(q->qmp, command, args, qemu_qmp_call_reply, p) < 0) {
		*p->pprev = p->next;
		if (p->next)
			p->next->pprev = p->pprev;
		free(p);
		return -1;
	}
	return 0;
}

/* QMP is gone: the calls in flight are answered now, since their replies never come. */
static void qemu_qmp_calls_fail(struct qemu *q)
{
	while (q->calls) {
		struct qemu_qmp_pending *p = q->calls;

		q->calls = p->next;
		if (q->calls)
			q->calls->pprev = &q->calls;
		p->fn(p->opaque, NULL, "QEMU is gone");
		free(p);
	}
}

int qemu_query_status(struct qemu *q, qemu_status_fn fn, void *opaque)
{
	struct qemu_status_query *sq, **pp;

	if (!q->qmp || q->exited || q->freed)
		return -1;
	if (qmp_command(q->qmp, "query-status", NULL, qemu_status_reply, q) < 0)
		return -1;
	sq = xzalloc(sizeof(*sq));
	sq->fn = fn;
	sq->opaque = opaque;
	for (pp = &q->queries; *pp; pp = &(*pp)->next)
		;
	*pp = sq;
	return 0;
}

bool qemu_qmp_ready(const struct qemu *q)
{
	return q->qmp && qmp_is_ready(q->qmp);
}

void qemu_kill(struct qemu *q)
{
	if (q->exited || q->pidfd < 0)
		return;
	if (pidfd_send_signal(q->pidfd, SIGKILL, NULL, 0) < 0 && errno != ESRCH)
		log_warn("qemu %d: SIGKILL: %s", (int)q->pid, strerror(errno));
	q->kill_sent = true;
}

void qemu_free(struct qemu *q, bool leave_running)
{
	if (!q)
		return;
	if (!q->exited && !leave_running)
		qemu_kill(q);
	ev_io_stop(q->loop, &q->pid_io);
	if (ev_is_active(&q->child_w))
		ev_child_stop(q->loop, &q->child_w);
	if (q->pidfd >= 0) {
		if (!q->exited && !leave_running && q->is_child) {
			/* a killed child that nobody watches any more */
			reaper_take(q->loop, q->pidfd);
		} else {
			close(q->pidfd);
		}
		q->pidfd = -1;
	}
	if (q->qmp) {
		qmp_free(q->qmp);
		q->qmp = NULL;
	}
	qemu_qmp_calls_fail(q);
	if (q->console_fd >= 0) {
		ev_io_stop(q->loop, &q->console_io);
		close(q->console_fd);
		q->console_fd = -1;
	}
	logfile_free(q->console_log);
	q->console_log = NULL;
	qemu_log_timer_stop(q);
	q->freed = true;
	if (q->refs == 0)
		qemu_release(q);
}

/* ---------------------------------------------------------------- block_resize (storage) */

