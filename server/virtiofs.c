/* virtiofs.c - one supervised virtiofsd per shared host folder (see
 * virtiofs.h for why it runs as the owner inside a user namespace).
 *
 * The child between fork and exec only makes system calls (the daemon is
 * single-threaded, but the rule is the same as sandbox_enter()'s): every
 * string it writes is prepared by the parent. A child that cannot set itself
 * up writes one line to a close-on-exec pipe and exits; the parent reads the
 * pipe until EOF (the exec went ahead) or that line (the error the client
 * sees). A virtiofsd that exits while its VM runs is reported through the
 * failed callback after a short grace: status 0 means it saw QEMU close the
 * socket, i.e. QEMU is exiting, and the VM's own exit usually arrives first.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lib/log.h"
#include "lib/reaper.h"
#include "server/sandbox.h"
#include "server/statefile.h" /* proc_start_time() */
#include "server/virtiofs.h"

bool virtiofs_share_check_tag(const char *tag)
{
	size_t n = tag ? strlen(tag) : 0;

	if (n == 0 || n > VIRTIOFS_TAG_MAX)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!((tag[i] >= 'a' && tag[i] <= 'z') || (tag[i] >= 'A' && tag[i] <= 'Z') ||
		      (tag[i] >= '0' && tag[i] <= '9') || tag[i] == '.' || tag[i] == '_' || tag[i] == '-'))
			return false;
	return true;
}

static const char *binary(void)
{
	const char *env = getenv("VIRTMGR_VIRTIOFSD");

	return env && *env ? env : VIRTIOFS_BINARY;
}

static int listen_at(const char *path, uid_t uid, struct vm_error *err)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };

	if (strlen(path) >= sizeof(sa.sun_path))
		return vm_error_set(err, VM_INVALID_ARGUMENT, "socket path %s is too long", path);
	strcpy(sa.sun_path, path);
	cleanup_close int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return vm_error_errno(err, errno, "socket for %s", path);
	if (unlink(path) < 0 && errno != ENOENT)
		return vm_error_errno(err, errno, "remove stale %s", path);
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		return vm_error_errno(err, errno, "bind %s", path);
	/* QEMU, under the VM's uid, connects by path */
	if ((uid && chown(path, uid, (gid_t)uid) < 0) || listen(fd, 1) < 0) {
		int e = errno;

		unlink(path);
		return vm_error_errno(err, e, "listen on %s", path);
	}
	return steal_fd(&fd);
}

/* async-signal-safe: one line "STEP: ERRNO" on @rep, then the caller exits */
static void child_report(int rep, const char *step)
{
	char num[16];
	int e = errno, i = (int)sizeof(num);

	num[--i] = '\0';
	do
		num[--i] = (char)('0' + e % 10);
	while ((e /= 10) && i > 0);
	if (rep < 0)
		return;
	(void)!write(rep, step, strlen(step));
	(void)!write(rep, ": errno ", 8);
	(void)!write(rep, num + i, strlen(num + i));
	(void)!write(rep, "\n", 1);
}

static int write_file(const char *path, const char *s)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return -1;
	n = write(fd, s, strlen(s));
	close(fd);
	return n == (ssize_t)strlen(s) ? 0 : -1;
}

struct child_args {
	const struct virtiofs_ids *ids;
	const char *dir;
	bool read_only;
	int lfd, rep;
	char uid_map[32], gid_map[32];
	char *const *argv;
};

static void child_run(const struct child_args *a)
{
	sigset_t none;
	int rep = a->rep >= 0 ? fcntl(a->rep, F_DUPFD_CLOEXEC, 10) : -1;
	int l = fcntl(a->lfd, F_DUPFD, 10);
	int devnull = open("/dev/null", O_RDWR);

	setsid();
	if (devnull >= 0) {
		dup2(devnull, 0);
		dup2(devnull, 1);
	}
	if (l < 0 || dup2(l, 3) < 0) {
		child_report(rep, "moving the socket to fd 3");
		_exit(127);
	}
	int keep[] = { 0, 1, 2, 3, rep };
	fd_close_from(4, keep, ARRAY_SIZE(keep) - (rep < 0));
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	signal(SIGPIPE, SIG_DFL);
	if (a->ids->change_ids) {
		/* virtiofsd drops supplementary groups itself (and cannot once
		 * setgroups is denied below): the owner's uid and gid decide */
		if (setgroups(0, NULL) < 0 || setresgid(a->ids->owner_gid, a->ids->owner_gid, a->ids->owner_gid) < 0 ||
		    setresuid(a->ids->owner_uid, a->ids->owner_uid, a->ids->owner_uid) < 0) {
			child_report(rep, "changing to the owner's ids");
			_exit(127);
		}
		/* the id change made us undumpable, which hides our own
		 * /proc/self/uid_map from us */
		prctl(PR_SET_DUMPABLE, 1, 0, 0, 0);
	}
	if (unshare(CLONE_NEWUSER | CLONE_NEWNS) < 0) {
		child_report(rep, "unshare(CLONE_NEWUSER|CLONE_NEWNS) (unprivileged user namespaces)");
		_exit(127);
	}
	if (write_file("/proc/self/setgroups", "deny") < 0 || write_file("/proc/self/uid_map", a->uid_map) < 0 ||
	    write_file("/proc/self/gid_map", a->gid_map) < 0) {
		child_report(rep, "writing the user namespace's id maps");
		_exit(127);
	}
	if (a->read_only) {
		struct statvfs sv;
		unsigned long keepf = 0;

		/* a remount must keep the flags the outer namespace locked */
		if (mount(a->dir, a->dir, NULL, MS_BIND | MS_REC, NULL) < 0 || statvfs(a->dir, &sv) < 0) {
			child_report(rep, "bind-mounting the folder read-only");
			_exit(127);
		}
		keepf = (sv.f_flag & ST_NOSUID ? MS_NOSUID : 0) | (sv.f_flag & ST_NODEV ? MS_NODEV : 0) |
			(sv.f_flag & ST_NOEXEC ? MS_NOEXEC : 0) | (sv.f_flag & ST_NOATIME ? MS_NOATIME : 0) |
			(sv.f_flag & ST_NODIRATIME ? MS_NODIRATIME : 0) | (sv.f_flag & ST_RELATIME ? MS_RELATIME : 0);
		if (mount(NULL, a->dir, NULL, MS_REMOUNT | MS_BIND | MS_RDONLY | keepf, NULL) < 0) {
			child_report(rep, "bind-mounting the folder read-only");
			_exit(127);
		}
	}
	execv(a->argv[0], a->argv);
	child_report(rep, "exec virtiofsd");
	_exit(127);
}

static void proc_exit_cb(struct ev_loop *loop, ev_io *io, int revents);

static int spawn_one(struct virtiofs_set *set, struct virtiofs_proc *p, const struct virtiofs_ids *ids,
		     struct vm_error *err)
{
	const struct virtiofs_share *s = p->share;
	cleanup_close int lfd = listen_at(p->socket_path, ids->qemu_uid, err);
	cleanup_close int rep_r = -1, rep_w = -1;
	cleanup_free char *source = NULL;
	struct child_args a = { .ids = ids, .dir = s->host_dir, .read_only = s->read_only, .rep = -1 };
	int pp[2];
	pid_t pid;

	if (lfd < 0)
		return -1;
	if (pipe2(pp, O_CLOEXEC) < 0)
		return vm_error_errno(err, errno, "pipe for virtiofsd");
	rep_r = pp[0];
	rep_w = pp[1];
	/* inside its namespace the owner is 0: virtiofsd keeps its caps there */
	snprintf(a.uid_map, sizeof(a.uid_map), "0 %u 1\n",
		 ids->change_ids ? (unsigned)ids->owner_uid : (unsigned)getuid());
	snprintf(a.gid_map, sizeof(a.gid_map), "0 %u 1\n",
		 ids->change_ids ? (unsigned)ids->owner_gid : (unsigned)getgid());
	source = xasprintf("source=%s", s->host_dir);
	/* --rlimit-nofile=0: raising the limit would need CAP_SYS_RESOURCE
	 * outside the namespace; cache=auto as the QEMU default */
	char *const argv[] = { (char *)binary(),
			       "--fd=3",
			       "-o",
			       source,
			       "-o",
			       "sandbox=namespace",
			       "-o",
			       "cache=auto",
			       "--rlimit-nofile=0",
			       "-o",
			       "log_level=warn",
			       NULL };
	a.argv = argv;
	a.lfd = lfd;
	a.rep = rep_w;
	pid = fork();
	if (pid < 0)
		return vm_error_errno(err, errno, "fork for virtiofsd");
	if (pid == 0)
		child_run(&a);
	close(steal_fd(&rep_w));
	char why[256];
	if (sandbox_report_read(rep_r, pid, why, sizeof(why))) {
		unlink(p->socket_path);
		return vm_error_set(err, VM_FAILED_PRECONDITION, "share %s (%s): virtiofsd could not start: %s", s->tag,
				    s->host_dir, why);
	}
	p->pid = pid;
	p->pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
	if (p->pidfd < 0) {
		int e = errno;

		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		unlink(p->socket_path);
		return vm_error_errno(err, e, "pidfd_open for virtiofsd");
	}
	fd_set_cloexec(p->pidfd, true);
	ev_io_init(&p->io, proc_exit_cb, p->pidfd, EV_READ);
	p->io.data = set;
	ev_io_start(set->loop, &p->io);
	log_info("virtiofsd pid %d for share %s (%s%s) at %s", (int)pid, s->tag, s->host_dir,
		 s->read_only ? ", read-only" : "", p->socket_path);
	return 0;
}

static void grace_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
	struct virtiofs_set *set = t->data;
	struct virtiofs_proc *p = (struct virtiofs_proc *)((char *)t - offsetof(struct virtiofs_proc, grace));

	if (set->failed)
		set->failed(set->opaque, p->death);
}

static void proc_exit_cb(struct ev_loop *loop, ev_io *io, int revents)
{
	struct virtiofs_set *set = io->data;
	struct virtiofs_proc *p = (struct virtiofs_proc *)((char *)io - offsetof(struct virtiofs_proc, io));
	siginfo_t si = { 0 };

	if (waitid(P_PIDFD, (id_t)p->pidfd, &si, WEXITED | WNOHANG) < 0 && errno == EAGAIN)
		return;
	ev_io_stop(loop, io);
	p->reaped = true;
	if (p->adopted) /* not our child: no status (PID 1 reaps it) */
		snprintf(p->death, sizeof(p->death), "virtiofsd (pid %d) for share %s (%s) exited", (int)p->pid,
			 p->share->tag, p->share->host_dir);
	else
		snprintf(p->death, sizeof(p->death), "virtiofsd (pid %d) for share %s (%s) %s %d", (int)p->pid,
			 p->share->tag, p->share->host_dir,
			 si.si_code == CLD_EXITED ? "exited with status" : "was killed by signal", si.si_status);
	log_warn("%s", p->death);
	ev_timer_init(&p->grace, grace_cb, si.si_code == CLD_EXITED && si.si_status == 0 ? 5.0 : 0.25, 0);
	p->grace.data = set;
	ev_timer_start(loop, &p->grace);
}

int virtiofs_start(struct virtiofs_set *set, struct ev_loop *loop, const char *run_dir,
		   const struct virtiofs_share *shares, size_t n, const struct virtiofs_ids *ids,
		   virtiofs_failed_cb failed, void *opaque, struct vm_error *err)
{
	memset(set, 0, sizeof(*set));
	if (n == 0)
		return 0;
	if (n > VIRTIOFS_MAX_SHARES)
		return vm_error_set(err, VM_INVALID_ARGUMENT, "%zu shares, at most %d", n, VIRTIOFS_MAX_SHARES);
	if (access(binary(), X_OK) < 0)
		return vm_error_set_errno(err, VM_FAILED_PRECONDITION, errno,
					  "shares need virtiofsd (%s, Debian package qemu-system-common)", binary());
	set->loop = loop;
	set->procs = xcalloc(n, sizeof(*set->procs));
	set->failed = failed;
	set->opaque = opaque;
	for (size_t i = 0; i < n; i++) {
		struct virtiofs_proc *p = &set->procs[i];

		p->share = &shares[i];
		p->pidfd = -1;
		p->pid = -1;
		p->socket_path = xasprintf("%s/virtiofs-%zu.sock", run_dir, i);
		set->n = i + 1;
		if (spawn_one(set, p, ids, err) < 0) {
			virtiofs_release(set);
			return -1;
		}
	}
	return 0;
}

/* A process that exited and waits for PID 1 to reap it (our children are reparented there). */
static bool proc_is_zombie(pid_t pid)
{
	cleanup_free char *path = xasprintf("/proc/%d/stat", (int)pid);
	char buf[512], *rp;
	ssize_t n;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return true;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return true;
	buf[n] = '\0';
	rp = strrchr(buf, ')');
	return !rp || rp[1] != ' ' || rp[2] == 'Z' || rp[2] == 'X';
}

int virtiofs_adopt(struct virtiofs_set *set, struct ev_loop *loop, const char *run_dir,
		   const struct virtiofs_share *shares, size_t n, const pid_t *pids, const uint64_t *starts,
		   virtiofs_failed_cb failed, void *opaque, struct vm_error *err)
{
	int r = 0;

	memset(set, 0, sizeof(*set));
	if (n == 0)
		return 0;
	set->loop = loop;
	set->procs = xcalloc(n, sizeof(*set->procs));
	set->failed = failed;
	set->opaque = opaque;
	set->n = n;
	for (size_t i = 0; i < n; i++) {
		struct virtiofs_proc *p = &set->procs[i];
		uint64_t now = 0;

		p->share = &shares[i];
		p->pid = pids[i];
		p->adopted = true;
		p->socket_path = xasprintf("%s/virtiofs-%zu.sock", run_dir, i);
		p->pidfd = pids[i] > 0 ? (int)syscall(SYS_pidfd_open, pids[i], 0) : -1;
		if (p->pidfd < 0 || proc_start_time(pids[i], &now) < 0 || now != starts[i] || proc_is_zombie(pids[i])) {
			if (p->pidfd >= 0)
				close(steal_fd(&p->pidfd));
			p->reaped = true;
			if (!r)
				r = vm_error_set(err, VM_UNAVAILABLE,
						 "virtiofsd (pid %d) for share %s (%s) died while virtmgrd was down",
						 (int)pids[i], shares[i].tag, shares[i].host_dir);
			continue;
		}
		fd_set_cloexec(p->pidfd, true);
		ev_io_init(&p->io, proc_exit_cb, p->pidfd, EV_READ);
		p->io.data = set;
		ev_io_start(loop, &p->io);
		log_info("virtiofsd pid %d for share %s (%s) adopted", (int)p->pid, shares[i].tag, shares[i].host_dir);
	}
	return r;
}

pid_t virtiofs_pid(const struct virtiofs_set *set, size_t i)
{
	return i < set->n && !set->procs[i].reaped ? set->procs[i].pid : -1;
}

const char *virtiofs_socket_path(const struct virtiofs_set *set, size_t i)
{
	return i < set->n ? set->procs[i].socket_path : NULL;
}

void virtiofs_release(struct virtiofs_set *set)
{
	for (size_t i = 0; i < set->n; i++) {
		struct virtiofs_proc *p = &set->procs[i];

		if (ev_is_active(&p->io))
			ev_io_stop(set->loop, &p->io);
		if (ev_is_active(&p->grace))
			ev_timer_stop(set->loop, &p->grace);
		if (p->pidfd >= 0 && !p->reaped) {
			/* its pid namespace's init: the worker inside goes with it */
			syscall(SYS_pidfd_send_signal, p->pidfd, SIGTERM, NULL, 0);
			reaper_take(set->loop, steal_fd(&p->pidfd));
		}
		if (p->pidfd >= 0)
			close(steal_fd(&p->pidfd));
		if (p->socket_path)
			unlink(p->socket_path);
		free(p->socket_path);
	}
	free(set->procs);
	memset(set, 0, sizeof(*set));
}
