/* diskstore.c - per-owner disk images, made and changed by Debian's tools.
 *
 * Layout: <state>/images/ (0755) holds one directory per owner uid (0711,
 * the daemon's), which holds <name>.img (raw) or <name>.qcow2 and
 * <name>.meta ("filesystem=ext4" when the image was made with one). Image
 * files belong to their owner (mode 0600), so that the tools, which run as
 * the owner, can write them while the owner cannot add, rename or replace
 * files in the directory behind the daemon's back.
 *
 * Work on an image (qemu-img create/resize/info, mke2fs, e2fsck, resize2fs,
 * the copy of an import or export) runs in one forked child per call: the
 * child drops to the caller's uid/gid (sandbox_enter(): no supplementary
 * groups, no capabilities, no_new_privs) before touching anything a client
 * named, runs the steps one after the other and exits. Its stderr is a pipe
 * the loop reads (bounded, DISKSTORE_STDERR_MAX kept) and puts in the
 * error the client gets. The loop learns of the exit from an ev_child
 * watcher and answers the call then, so it never waits for a tool.
 *
 * Import and export copy through the fd the client passed with read() and
 * write(), which move that fd's shared file offset: the client sees the
 * progress of a long copy from its own descriptor (vmctl does, on a TTY).
 *
 * Which VM uses an image is kept here, set and cleared by the VM core; an
 * image that is in use or that has an operation running cannot be resized,
 * deleted, exported or given to a second VM.
 */
#include "config.h"
#include "server/diskstore.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lib/log.h"
#include "server/sandbox.h"

#define DS_NAME_MAX 64
#define DS_FROM_DIR_MAX 4096
#define DS_MAX_STEPS 4
#define DS_MAX_ARGS 16
/* children at once, over every owner: a client cannot fork the host to death */
#define DS_MAX_JOBS 32

enum ds_kind { DS_CREATE, DS_RESIZE, DS_IMPORT, DS_EXPORT, DS_INIT };

/* An image reserved by a VM or by a running operation. */
struct ds_use {
	struct ds_use *next;
	uid_t owner;
	char name[DS_NAME_MAX + 1];
	char *vm_id; /* NULL: only an operation holds it */
	bool busy;   /* an operation is running on it */
};

struct ds_job {
	struct ds_job *next;
	struct diskstore *s;
	struct ttrpc_call *call; /* NULL once the caller went away */
	enum ds_kind kind;
	uid_t owner;
	gid_t gid;
	char name[DS_NAME_MAX + 1];
	int format;
	char *path;	/* the image (NULL for DS_INIT) */
	bool fresh;	/* created by this job: removed when it fails */
	bool ext4;	/* the image holds (or gets) an ext4 filesystem */
	int client_fd;	/* import/export/init: the fd passed with the call */
	uint64_t size;	/* create, resize, init */
	char *from_dir; /* create */
	char *argv[DS_MAX_STEPS][DS_MAX_ARGS];
	int ok_max[DS_MAX_STEPS]; /* highest exit code of a step that is success (e2fsck: 1) */
	unsigned nsteps;
	pid_t pid;
	int err_fd;
	ev_child child_w;
	ev_io err_w;
	char errbuf[DISKSTORE_STDERR_MAX + 1];
	size_t errlen;
};

struct diskstore {
	struct ev_loop *loop;
	char *dir; /* <state>/images */
	struct ds_use *uses;
	struct ds_job *jobs;
	unsigned njobs;
	diskstore_grow_fn grow_fn; /* online resize of an image in use */
	void *grow_opaque;
};

static const char *const ds_ext[] = {
	[VIRTMGR__V1__DISK_FORMAT__DISK_FORMAT_RAW] = "img", [VIRTMGR__V1__DISK_FORMAT__DISK_FORMAT_QCOW2] = "qcow2"
};
static const char *const ds_fmt[] = {
	[VIRTMGR__V1__DISK_FORMAT__DISK_FORMAT_RAW] = "raw", [VIRTMGR__V1__DISK_FORMAT__DISK_FORMAT_QCOW2] = "qcow2"
};

bool diskstore_name_valid(const char *name)
{
	size_t n = 0;

	if (!name || !*name || *name == '.')
		return false;
	for (const char *p = name; *p; p++, n++)
		if (n >= DS_NAME_MAX || !((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
					  (*p >= '0' && *p <= '9') || *p == '.' || *p == '_' || *p == '-'))
			return false;
	return true;
}

struct diskstore *diskstore_new(struct ev_loop *loop, const char *state_dir)
{
	struct diskstore *s = xzalloc(sizeof(*s));

	s->loop = loop;
	s->dir = xasprintf("%s/images", state_dir);
	return s;
}

/* ------------------------------------------------------------ in use */

static struct ds_use *ds_use_find(struct diskstore *s, uid_t owner, const char *name)
{
	for (struct ds_use *u = s->uses; u; u = u->next)
		if (u->owner == owner && !strcmp(u->name, name))
			return u;
	return NULL;
}

static struct ds_use *ds_use_get(struct diskstore *s, uid_t owner, const char *name)
{
	struct ds_use *u = ds_use_find(s, owner, name);

	if (u)
		return u;
	u = xzalloc(sizeof(*u));
	u->owner = owner;
	snprintf(u->name, sizeof(u->name), "%s", name);
	u->next = s->uses;
	s->uses = u;
	return u;
}

static void ds_use_gc(struct diskstore *s, struct ds_use *u)
{
	if (u->vm_id || u->busy)
		return;
	for (struct ds_use **pp = &s->uses; *pp; pp = &(*pp)->next)
		if (*pp == u) {
			*pp = u->next;
			free(u);
			return;
		}
}

/* FAILED_PRECONDITION when @name is used by a VM or an operation. */
static int ds_check_free(struct diskstore *s, uid_t owner, const char *name, const char *what, struct vm_error *err)
{
	struct ds_use *u = ds_use_find(s, owner, name);

	if (u && u->vm_id)
		return vm_error_set(err, VM_FAILED_PRECONDITION, "disk image %s is used by VM %s: cannot %s it", name,
				    u->vm_id, what);
	if (u && u->busy)
		return vm_error_set(err, VM_FAILED_PRECONDITION,
				    "disk image %s is busy: another operation is running on it", name);
	return 0;
}

/* ------------------------------------------------------------ paths */

static char *ds_owner_dir(struct diskstore *s, uid_t owner)
{
	return xasprintf("%s/%u", s->dir, (unsigned)owner);
}

/* Create <state>/images/<uid> (0711, the daemon's) when missing; refuse
 * anything else planted there. */
static int ds_prepare_owner_dir(struct diskstore *s, uid_t owner, struct vm_error *err)
{
	cleanup_free char *dir = ds_owner_dir(s, owner);
	struct stat st;

	if (mkdir_p(s->dir, 0755) < 0)
		return vm_error_errno(err, errno, "image store %s", s->dir);
	if (mkdir(dir, 0711) < 0 && errno != EEXIST)
		return vm_error_errno(err, errno, "image store %s", dir);
	if (lstat(dir, &st) < 0)
		return vm_error_errno(err, errno, "image store %s", dir);
	if (!S_ISDIR(st.st_mode) || st.st_uid != geteuid())
		return vm_error_set(err, VM_INTERNAL, "image store %s is not a directory of the daemon's", dir);
	return 0;
}

/* Which file holds @name: the format found, or -1 (none). */
static int ds_find(struct diskstore *s, uid_t owner, const char *name, char **path)
{
	for (int f = 0; f < (int)ARRAY_SIZE(ds_ext); f++) {
		cleanup_free char *p = xasprintf("%s/%u/%s.%s", s->dir, (unsigned)owner, name, ds_ext[f]);
		struct stat st;

		if (lstat(p, &st) == 0 && S_ISREG(st.st_mode)) {
			if (path)
				*path = steal_pointer(&p);
			return f;
		}
	}
	return -1;
}

/* "NAME" (the caller's) or, for root, "UID:NAME". */
static int ds_resolve(const struct diskstore_caller *who, const char *ref, uid_t *owner, char name[DS_NAME_MAX + 1],
		      struct vm_error *err)
{
	const char *colon = ref ? strchr(ref, ':') : NULL;

	*owner = who->uid;
	if (colon && who->uid == 0) {
		char *end;
		unsigned long u;

		errno = 0;
		u = strtoul(ref, &end, 10);
		if (end != colon || end == ref || errno || u >= UINT32_MAX)
			return vm_error_set(err, VM_INVALID_ARGUMENT, "name: \"%.80s\": UID:NAME needs a numeric uid",
					    ref);
		*owner = (uid_t)u;
		ref = colon + 1;
	}
	if (!diskstore_name_valid(ref))
		return vm_error_set(err, VM_INVALID_ARGUMENT,
				    "name: \"%.80s\" is not a valid image name ([A-Za-z0-9._-]{1,64}, not starting "
				    "with '.')",
				    ref ? ref : "");
	snprintf(name, DS_NAME_MAX + 1, "%s", ref);
	return 0;
}

static bool ds_meta_ext4(struct diskstore *s, uid_t owner, const char *name)
{
	cleanup_free char *p = xasprintf("%s/%u/%s.meta", s->dir, (unsigned)owner, name);
	char buf[64] = "";
	int fd = open(p, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	ssize_t n;

	if (fd < 0)
		return false;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	return n > 0 && strstr(buf, "filesystem=ext4\n");
}

static int ds_meta_write(struct diskstore *s, uid_t owner, const char *name, bool ext4, struct vm_error *err)
{
	cleanup_free char *p = xasprintf("%s/%u/%s.meta", s->dir, (unsigned)owner, name);
	const char *text = ext4 ? "filesystem=ext4\n" : "filesystem=\n";
	int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
	bool ok;

	if (fd < 0)
		return vm_error_errno(err, errno, "%s", p);
	ok = write(fd, text, strlen(text)) == (ssize_t)strlen(text);
	close(fd);
	return ok ? 0 : vm_error_set(err, VM_INTERNAL, "%s: short write", p);
}

static void ds_remove(struct diskstore *s, uid_t owner, const char *name, const char *path)
{
	cleanup_free char *meta = xasprintf("%s/%u/%s.meta", s->dir, (unsigned)owner, name);

	unlink(path);
	unlink(meta);
}

char *diskstore_image_path(struct diskstore *s, uid_t owner, const char *name, int *format, struct vm_error *err)
{
	char *path = NULL;
	int f;

	if (!diskstore_name_valid(name)) {
		vm_error_set(err, VM_INVALID_ARGUMENT, "disk image name \"%.80s\" is not valid", name ? name : "");
		return NULL;
	}
	f = ds_find(s, owner, name, &path);
	if (f < 0) {
		vm_error_set(err, VM_NOT_FOUND, "no disk image \"%s\"", name);
		return NULL;
	}
	if (format)
		*format = f;
	return path;
}

int diskstore_set_in_use(struct diskstore *s, uid_t owner, const char *name, const char *vm_id, struct vm_error *err)
{
	struct ds_use *u;

	if (!diskstore_name_valid(name))
		return vm_error_set(err, VM_INVALID_ARGUMENT, "disk image name \"%.80s\" is not valid",
				    name ? name : "");
	if (ds_find(s, owner, name, NULL) < 0)
		return vm_error_set(err, VM_NOT_FOUND, "no disk image \"%s\"", name);
	u = ds_use_find(s, owner, name);
	if (u && u->vm_id && !strcmp(u->vm_id, vm_id))
		return 0;
	if (ds_check_free(s, owner, name, "attach", err) < 0)
		return -1;
	u = ds_use_get(s, owner, name);
	u->vm_id = xstrdup(vm_id);
	return 0;
}

void diskstore_clear_in_use(struct diskstore *s, uid_t owner, const char *name, const char *vm_id)
{
	struct ds_use *u = s ? ds_use_find(s, owner, name ? name : "") : NULL;

	if (!u || !u->vm_id || (vm_id && strcmp(u->vm_id, vm_id)))
		return;
	free(u->vm_id);
	u->vm_id = NULL;
	ds_use_gc(s, u);
}

/* ------------------------------------------------------------ image info */

static void ds_fill(struct diskstore *s, uid_t owner, const char *name, int format, const char *path,
		    Virtmgr__V1__DiskImage *img)
{
	struct ds_use *u = ds_use_find(s, owner, name);
	struct stat st;
	int fd;

	img->name = xstrdup(name);
	img->owner_uid = owner;
	img->format = format;
	img->filesystem = ds_meta_ext4(s, owner, name) ? "ext4" : "";
	img->vm = u && u->vm_id ? u->vm_id : "";
	/* only the daemon's own store files are opened here, never a client path */
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
	if (fd < 0 || fstat(fd, &st) < 0) {
		if (fd >= 0)
			close(fd);
		return;
	}
	img->allocated_size = (uint64_t)st.st_blocks * 512;
	img->virtual_size = (uint64_t)st.st_size;
	if (format == VIRTMGR__V1__DISK_FORMAT__DISK_FORMAT_QCOW2) {
		/* qcow2 header: magic "QFI\xfb" at 0, the virtual size (BE u64) at 24 */
		uint8_t h[32];

		if (pread(fd, h, sizeof(h), 0) == (ssize_t)sizeof(h) && !memcmp(h, "QFI\xfb", 4)) {
			uint64_t v = 0;

			for (int i = 24; i < 32; i++)
				v = v << 8 | h[i];
			img->virtual_size = v;
		}
	}
	close(fd);
}

static void ds_reply_image(struct diskstore *s, struct ttrpc_call *call, uid_t owner, const char *name)
{
	Virtmgr__V1__DiskImageResponse resp = VIRTMGR__V1__DISK_IMAGE_RESPONSE__INIT;
	Virtmgr__V1__DiskImage img = VIRTMGR__V1__DISK_IMAGE__INIT;
	cleanup_free char *path = NULL;
	int f = ds_find(s, owner, name, &path);

	if (f < 0) {
		ttrpc_call_fail(call, VM_NOT_FOUND, "no disk image \"%s\"", name);
		return;
	}
	ds_fill(s, owner, name, f, path, &img);
	resp.image = &img;
	ttrpc_call_reply(call, &resp.base, NULL, 0);
	free(img.name);
}

/* ------------------------------------------------------------ children */

static void ds_job_free(struct ds_job *j)
{
	if (j->err_fd >= 0) {
		ev_io_stop(j->s->loop, &j->err_w);
		close(j->err_fd);
	}
	if (j->client_fd >= 0)
		close(j->client_fd);
	for (unsigned i = 0; i < j->nsteps; i++)
		for (unsigned a = 0; j->argv[i][a]; a++)
			free(j->argv[i][a]);
	free(j->path);
	free(j->from_dir);
	free(j);
}

static void ds_job_unlink(struct ds_job *j)
{
	for (struct ds_job **pp = &j->s->jobs; *pp; pp = &(*pp)->next)
		if (*pp == j) {
			*pp = j->next;
			j->s->njobs--;
			return;
		}
}

static void ds_step(struct ds_job *j, int ok_max, ...)
{
	va_list ap;
	unsigned n = 0;
	const char *a;

	va_start(ap, ok_max);
	while ((a = va_arg(ap, const char *)) && n < DS_MAX_ARGS - 1)
		j->argv[j->nsteps][n++] = xstrdup(a);
	va_end(ap);
	j->argv[j->nsteps][n] = NULL;
	j->ok_max[j->nsteps++] = ok_max;
}

/* In the child: copy @in to @out until EOF. Return: 0, or -1 (message on stderr). */
static int ds_copy(int in, int out, const char *what)
{
	static char buf[1 << 16];

	for (;;) {
		ssize_t n = read(in, buf, sizeof(buf)), w = 0;

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			dprintf(2, "%s: read: %s\n", what, strerror(errno));
			return -1;
		}
		if (n == 0)
			return 0;
		while (w < n) {
			ssize_t m = write(out, buf + w, (size_t)(n - w));

			if (m < 0 && errno == EINTR)
				continue;
			if (m <= 0) {
				dprintf(2, "%s: write: %s\n", what, m < 0 ? strerror(errno) : "no progress");
				return -1;
			}
			w += m;
		}
	}
}

/* In the child, as the owner: the job's own work, then its steps. */
static _Noreturn void ds_child(struct ds_job *j)
{
	if (j->kind == DS_IMPORT || j->kind == DS_EXPORT) {
		int fd = open(j->path, (j->kind == DS_IMPORT ? O_WRONLY | O_TRUNC : O_RDONLY) | O_CLOEXEC | O_NOFOLLOW);

		if (fd < 0) {
			dprintf(2, "%s: %s\n", j->name, strerror(errno));
			_exit(1);
		}
		if (j->kind == DS_IMPORT ? ds_copy(j->client_fd, fd, "import") : ds_copy(fd, j->client_fd, "export"))
			_exit(1);
		if (fsync(j->kind == DS_IMPORT ? fd : j->client_fd) < 0 && errno != EINVAL && errno != EROFS) {
			dprintf(2, "fsync: %s\n", strerror(errno));
			_exit(1);
		}
	}
	if (j->kind == DS_INIT) {
		/* zeroed first, so that "empty" means empty and mke2fs starts clean */
		if (ftruncate(j->client_fd, 0) < 0 || ftruncate(j->client_fd, (off_t)j->size) < 0) {
			dprintf(2, "partition fd: ftruncate: %s\n", strerror(errno));
			_exit(1);
		}
	}
	for (unsigned i = 0; i < j->nsteps; i++) {
		pid_t pid = fork();
		int st;

		if (pid < 0) {
			dprintf(2, "fork: %s\n", strerror(errno));
			_exit(1);
		}
		if (pid == 0) {
			execvp(j->argv[i][0], j->argv[i]);
			dprintf(2, "%s: %s\n", j->argv[i][0], strerror(errno));
			_exit(127);
		}
		while (waitpid(pid, &st, 0) < 0)
			if (errno != EINTR)
				_exit(1);
		if (!WIFEXITED(st) || WEXITSTATUS(st) > j->ok_max[i]) {
			if (WIFSIGNALED(st))
				dprintf(2, "%s: killed by signal %d\n", j->argv[i][0], WTERMSIG(st));
			else
				dprintf(2, "%s exited with status %d\n", j->argv[i][0], WEXITSTATUS(st));
			_exit(1);
		}
	}
	_exit(0);
}

static void ds_err_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct ds_job *j = w->data;
	char buf[4096];
	ssize_t n;

	(void)revents;
	while ((n = read(j->err_fd, buf, sizeof(buf))) > 0) {
		size_t keep = MIN((size_t)n, DISKSTORE_STDERR_MAX - j->errlen);

		memcpy(j->errbuf + j->errlen, buf, keep);
		j->errlen += keep;
	}
	if (n == 0) {
		ev_io_stop(loop, w);
		close(j->err_fd);
		j->err_fd = -1;
	}
}

static void ds_job_done(struct ds_job *j, bool ok)
{
	struct diskstore *s = j->s;
	struct vm_error err = { 0 };
	struct ds_use *u = j->path ? ds_use_find(s, j->owner, j->name) : NULL;

	if (u) {
		u->busy = false;
		ds_use_gc(s, u);
	}
	if (ok && j->kind == DS_CREATE && ds_meta_write(s, j->owner, j->name, j->ext4, &err) < 0)
		ok = false;
	if (!ok && j->fresh)
		ds_remove(s, j->owner, j->name, j->path);
	if (!j->call)
		return;
	if (!ok) {
		static const char *const verbs[] = { "create", "resize", "import", "export", "initialize" };
		char *msg = j->errbuf;
		size_t len = j->errlen;

		/* the tool's last words: trailing newlines dropped, lines joined */
		while (len && (msg[len - 1] == '\n' || msg[len - 1] == ' '))
			len--;
		msg[len] = '\0';
		for (char *p = msg; *p; p++)
			if (*p == '\n')
				*p = ' ';
		if (err.code)
			ttrpc_call_fail_error(j->call, &err);
		else if (j->kind == DS_INIT)
			ttrpc_call_fail(j->call, VM_FAILED_PRECONDITION, "cannot initialize the partition: %s",
					len ? msg : "the tool failed");
		else
			ttrpc_call_fail(j->call, VM_FAILED_PRECONDITION, "cannot %s disk image %s: %s", verbs[j->kind],
					j->name, len ? msg : "the tool failed");
		return;
	}
	if (j->kind == DS_INIT) {
		Virtmgr__V1__Empty e = VIRTMGR__V1__EMPTY__INIT;

		ttrpc_call_reply(j->call, &e.base, NULL, 0);
		return;
	}
	ds_reply_image(s, j->call, j->owner, j->name);
}

static void ds_child_cb(struct ev_loop *loop, ev_child *w, int revents)
{
	struct ds_job *j = w->data;

	(void)revents;
	ev_child_stop(loop, w);
	/* what the child wrote before exiting is in the pipe now */
	if (j->err_fd >= 0)
		ds_err_cb(loop, &j->err_w, EV_READ);
	ds_job_unlink(j);
	ds_job_done(j, WIFEXITED(w->rstatus) && WEXITSTATUS(w->rstatus) == 0);
	ds_job_free(j);
}

static void ds_cancel_cb(struct ttrpc_call *call, void *opaque)
{
	struct ds_job *j = opaque;

	(void)call;
	j->call = NULL; /* the work goes on; nobody is told */
}

/* Start @j's child; on failure the call is failed and @j freed. */
static void ds_job_start(struct diskstore *s, struct ds_job *j)
{
	/* a root caller's work runs as root: it may read what root reads */
	struct sandbox sb = {
		.change_ids = geteuid() == 0 && j->owner != 0, .uid = j->owner, .gid = j->gid, .report_fd = -1
	};
	struct vm_error err = { 0 };
	int p[2];
	pid_t pid;

	j->s = s;
	if (s->njobs >= DS_MAX_JOBS) {
		vm_error_set(&err, VM_RESOURCE_EXHAUSTED,
			     "%u disk image operations are running already: try again later", s->njobs);
		goto fail;
	}
	if (pipe2(p, O_CLOEXEC) < 0) {
		vm_error_errno(&err, errno, "pipe");
		goto fail;
	}
	pid = fork();
	if (pid < 0) {
		vm_error_errno(&err, errno, "fork");
		close(p[0]);
		close(p[1]);
		goto fail;
	}
	if (pid == 0) {
		int devnull = open("/dev/null", O_RDWR | O_CLOEXEC);

		/* its own group, so that shutting down kills the tool it runs too */
		setpgid(0, 0);

		if (dup2(p[1], 2) < 0 || devnull < 0 || dup2(devnull, 0) < 0 || dup2(devnull, 1) < 0)
			_exit(1);
		if (j->client_fd >= 0) {
			/* fd 3 for the tools (/dev/fd/3); stays open across exec */
			if (j->client_fd == 3 ? fcntl(3, F_SETFD, 0) < 0 : dup2(j->client_fd, 3) < 0)
				_exit(1);
			j->client_fd = 3;
		}
		signal(SIGPIPE, SIG_DFL);
		/* Debian's tools from Debian's places, whatever PATH the daemon got */
		setenv("PATH", "/usr/sbin:/usr/bin:/sbin:/bin", 1);
		sb.report_fd = 2;
		if (sandbox_enter(&sb) < 0)
			_exit(SANDBOX_EXIT_FAILED);
		ds_child(j);
	}
	close(p[1]);
	j->pid = pid;
	j->err_fd = p[0];
	fd_set_nonblock(j->err_fd, true);
	ev_io_init(&j->err_w, ds_err_cb, j->err_fd, EV_READ);
	j->err_w.data = j;
	ev_io_start(s->loop, &j->err_w);
	ev_child_init(&j->child_w, ds_child_cb, pid, 0);
	j->child_w.data = j;
	ev_child_start(s->loop, &j->child_w);
	/* the parent's copy is not needed: the child holds it */
	if (j->client_fd >= 0) {
		close(j->client_fd);
		j->client_fd = -1;
	}
	j->next = s->jobs;
	s->jobs = j;
	s->njobs++;
	if (j->call)
		ttrpc_call_set_cancel(j->call, ds_cancel_cb, j);
	return;
fail:
	if (j->call)
		ttrpc_call_fail_error(j->call, &err);
	j->call = NULL;
	ds_job_done(j, false);
	ds_job_free(j);
}

static struct ds_job *ds_job_new(struct ttrpc_call *call, enum ds_kind kind, const struct diskstore_caller *who)
{
	struct ds_job *j = xzalloc(sizeof(*j));

	j->call = call;
	j->kind = kind;
	j->owner = who->uid;
	j->gid = who->gid;
	j->client_fd = -1;
	j->err_fd = -1;
	return j;
}

void diskstore_free(struct diskstore *s)
{
	if (!s)
		return;
	while (s->jobs) {
		struct ds_job *j = s->jobs;
		int st;

		s->jobs = j->next;
		ev_child_stop(s->loop, &j->child_w);
		kill(-j->pid, SIGKILL);
		kill(j->pid, SIGKILL);
		while (waitpid(j->pid, &st, 0) < 0 && errno == EINTR)
			;
		if (j->call)
			ttrpc_call_fail(j->call, VM_UNAVAILABLE, "virtmgrd is shutting down");
		j->call = NULL;
		if (j->fresh)
			ds_remove(s, j->owner, j->name, j->path);
		ds_job_free(j);
	}
	while (s->uses) {
		struct ds_use *u = s->uses;

		s->uses = u->next;
		free(u->vm_id);
		free(u);
	}
	free(s->dir);
	free(s);
}

/* ------------------------------------------------------------ calls */

/* Create the empty image file for @j (O_EXCL), the owner's, mode 0600. */
static int ds_create_file(struct diskstore *s, struct ds_job *j, struct vm_error *err)
{
	int fd;

	if (ds_prepare_owner_dir(s, j->owner, err) < 0)
		return -1;
	if (ds_find(s, j->owner, j->name, NULL) >= 0)
		return vm_error_set(err, VM_ALREADY_EXISTS, "disk image %s exists already", j->name);
	j->path = xasprintf("%s/%u/%s.%s", s->dir, (unsigned)j->owner, j->name, ds_ext[j->format]);
	fd = open(j->path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0) {
		if (errno == EEXIST)
			return vm_error_set(err, VM_ALREADY_EXISTS, "disk image %s exists already", j->name);
		return vm_error_errno(err, errno, "disk image %s", j->path);
	}
	if (geteuid() == 0 && fchown(fd, j->owner, j->gid) < 0) {
		int e = errno;

		close(fd);
		unlink(j->path);
		return vm_error_errno(err, e, "chown %s", j->path);
	}
	close(fd);
	j->fresh = true;
	ds_use_get(s, j->owner, j->name)->busy = true;
	return 0;
}

static int ds_check_format(int format, struct vm_error *err)
{
	if (format < 0 || format >= (int)ARRAY_SIZE(ds_ext))
		return vm_error_set(err, VM_INVALID_ARGUMENT, "format: %d is not a DiskFormat (raw or qcow2)", format);
	return 0;
}

static int ds_check_size(uint64_t size, struct vm_error *err)
{
	if (size == 0)
		return vm_error_set(err, VM_INVALID_ARGUMENT, "size: must be more than 0 bytes");
	if (size > DISKSTORE_MAX_SIZE)
		return vm_error_set(err, VM_INVALID_ARGUMENT, "size: %" PRIu64 " bytes is over the limit of %llu", size,
				    DISKSTORE_MAX_SIZE);
	if (size % 512)
		return vm_error_set(err, VM_INVALID_ARGUMENT, "size: %" PRIu64 " is not a multiple of 512 bytes", size);
	return 0;
}

static int ds_check_fs(const char *fs, bool *ext4, struct vm_error *err)
{
	*ext4 = fs && !strcmp(fs, "ext4");
	if (fs && *fs && !*ext4)
		return vm_error_set(err, VM_INVALID_ARGUMENT,
				    "filesystem: \"%.40s\" is not supported (\"\" or \"ext4\")", fs);
	return 0;
}

void diskstore_create(struct diskstore *s, struct ttrpc_call *call, const struct diskstore_caller *who,
		      const Virtmgr__V1__CreateDiskImageRequest *req)
{
	struct ds_job *j = ds_job_new(call, DS_CREATE, who);
	struct vm_error err = { 0 };
	char size[32];

	if (ds_resolve(who, req->name, &j->owner, j->name, &err) < 0 || ds_check_format(req->format, &err) < 0 ||
	    ds_check_size(req->size, &err) < 0 || ds_check_fs(req->filesystem, &j->ext4, &err) < 0)
		goto fail;
	if (req->from_dir && *req->from_dir) {
		if (!j->ext4) {
			vm_error_set(&err, VM_INVALID_ARGUMENT, "from_dir: needs filesystem \"ext4\"");
			goto fail;
		}
		if (req->from_dir[0] != '/' || strlen(req->from_dir) >= DS_FROM_DIR_MAX) {
			vm_error_set(&err, VM_INVALID_ARGUMENT, "from_dir: \"%.80s\" is not an absolute path",
				     req->from_dir);
			goto fail;
		}
		/* a daemon that is not root cannot read as anyone but itself */
		if (geteuid() != 0 && who->uid != geteuid()) {
			vm_error_set(&err, VM_PERMISSION_DENIED,
				     "from_dir: virtmgrd runs as uid %u and cannot read %.80s as uid %u",
				     (unsigned)geteuid(), req->from_dir, (unsigned)who->uid);
			goto fail;
		}
		j->from_dir = xstrdup(req->from_dir);
	}
	if (j->ext4 && req->format != VIRTMGR__V1__DISK_FORMAT__DISK_FORMAT_RAW) {
		vm_error_set(&err, VM_INVALID_ARGUMENT,
			     "filesystem: ext4 is made on raw images only (resize2fs works on raw files)");
		goto fail;
	}
	if (j->owner != who->uid)
		j->gid = j->owner; /* root creating for another owner: that owner's ids, not root's */
	j->format = req->format;
	j->size = req->size;
	if (ds_create_file(s, j, &err) < 0)
		goto fail;
	snprintf(size, sizeof(size), "%" PRIu64, req->size);
	ds_step(j, 0, "qemu-img", "create", "-q", "-f", ds_fmt[j->format], j->path, size, NULL);
	if (j->ext4 && j->from_dir)
		ds_step(j, 0, "mke2fs", "-q", "-F", "-t", "ext4", "-d", j->from_dir, j->path, NULL);
	else if (j->ext4)
		ds_step(j, 0, "mke2fs", "-q", "-F", "-t", "ext4", j->path, NULL);
	ds_job_start(s, j);
	return;
fail:
	ttrpc_call_fail_error(call, &err);
	j->call = NULL;
	ds_job_done(j, false);
	ds_job_free(j);
}

void diskstore_resize(struct diskstore *s, struct ttrpc_call *call, const struct diskstore_caller *who,
		      const Virtmgr__V1__ResizeDiskImageRequest *req)
{
	Virtmgr__V1__DiskImage img = VIRTMGR__V1__DISK_IMAGE__INIT;
	struct ds_job *j = ds_job_new(call, DS_RESIZE, who);
	struct vm_error err = { 0 };
	struct ds_use *u;
	bool online;
	char size[32];

	if (ds_resolve(who, req->name, &j->owner, j->name, &err) < 0 || ds_check_size(req->size, &err) < 0)
		goto fail;
	j->format = ds_find(s, j->owner, j->name, &j->path);
	if (j->format < 0) {
		vm_error_set(&err, VM_NOT_FOUND, "no disk image \"%s\"", j->name);
		goto fail;
	}
	u = ds_use_find(s, j->owner, j->name);
	online = u && u->vm_id && !u->busy && s->grow_fn;
	if (!online && ds_check_free(s, j->owner, j->name, "resize", &err) < 0)
		goto fail;
	ds_fill(s, j->owner, j->name, j->format, j->path, &img);
	free(img.name);
	if (req->size < img.virtual_size) {
		vm_error_set(&err, VM_FAILED_PRECONDITION,
			     "disk image %s is %" PRIu64 " bytes: shrinking it to %" PRIu64 " is not supported",
			     j->name, img.virtual_size, req->size);
		goto fail;
	}
	if (online) {
		/* the VM's QEMU grows the file, its agent the file system */
		u->busy = true;
		s->grow_fn(s->grow_opaque, call, j->owner, j->name, u->vm_id, req->size);
		ds_job_free(j);
		return;
	}
	if (j->owner != who->uid)
		j->gid = j->owner;
	j->ext4 = ds_meta_ext4(s, j->owner, j->name);
	ds_use_get(s, j->owner, j->name)->busy = true;
	snprintf(size, sizeof(size), "%" PRIu64, req->size);
	ds_step(j, 0, "qemu-img", "resize", "-q", "-f", ds_fmt[j->format], j->path, size, NULL);
	if (j->ext4) {
		/* resize2fs wants a freshly checked filesystem; e2fsck exits 1 when it fixed something */
		ds_step(j, 1, "e2fsck", "-f", "-p", j->path, NULL);
		ds_step(j, 0, "resize2fs", "-p", j->path, NULL);
	}
	ds_job_start(s, j);
	return;
fail:
	ttrpc_call_fail_error(call, &err);
	ds_job_free(j);
}

static int ds_cmp_img(const void *a, const void *b)
{
	const Virtmgr__V1__DiskImage *x = *(Virtmgr__V1__DiskImage *const *)a, *y = *(Virtmgr__V1__DiskImage *const *)b;

	if (x->owner_uid != y->owner_uid)
		return x->owner_uid < y->owner_uid ? -1 : 1;
	return strcmp(x->name, y->name);
}

/* Add the images of @owner to the list. */
static void ds_list_owner(struct diskstore *s, uid_t owner, Virtmgr__V1__DiskImage ***imgs, size_t *n, size_t *cap)
{
	cleanup_free char *dir = ds_owner_dir(s, owner);
	DIR *d = opendir(dir);
	struct dirent *de;

	if (!d)
		return;
	while ((de = readdir(d))) {
		char *dot = strrchr(de->d_name, '.');
		char name[DS_NAME_MAX + 1];
		int f = -1;

		if (!dot || de->d_name[0] == '.')
			continue;
		for (int i = 0; i < (int)ARRAY_SIZE(ds_ext); i++)
			if (!strcmp(dot + 1, ds_ext[i]))
				f = i;
		if (f < 0 || (size_t)(dot - de->d_name) > DS_NAME_MAX)
			continue;
		snprintf(name, sizeof(name), "%.*s", (int)(dot - de->d_name), de->d_name);
		if (!diskstore_name_valid(name))
			continue;
		if (de->d_type != DT_REG) {
			struct stat st;

			/* d_type is DT_UNKNOWN on some filesystems: ask, without following links */
			if (de->d_type != DT_UNKNOWN || fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
			    !S_ISREG(st.st_mode))
				continue;
		}
		if (*n == *cap) {
			*cap = *cap ? *cap * 2 : 16;
			*imgs = xrealloc(*imgs, *cap * sizeof(**imgs));
		}
		(*imgs)[*n] = xzalloc(sizeof(***imgs));
		virtmgr__v1__disk_image__init((*imgs)[*n]);
		{
			cleanup_free char *path = xasprintf("%s/%s", dir, de->d_name);

			ds_fill(s, owner, name, f, path, (*imgs)[*n]);
		}
		(*n)++;
	}
	closedir(d);
}

void diskstore_list(struct diskstore *s, struct ttrpc_call *call, const struct diskstore_caller *who)
{
	Virtmgr__V1__ListDiskImagesResponse resp = VIRTMGR__V1__LIST_DISK_IMAGES_RESPONSE__INIT;
	Virtmgr__V1__DiskImage **imgs = NULL;
	size_t n = 0, cap = 0;

	if (who->uid == 0) {
		DIR *d = opendir(s->dir);
		struct dirent *de;

		while (d && (de = readdir(d))) {
			char *end;
			unsigned long u = strtoul(de->d_name, &end, 10);

			if (de->d_name[0] >= '0' && de->d_name[0] <= '9' && !*end && u < UINT32_MAX)
				ds_list_owner(s, (uid_t)u, &imgs, &n, &cap);
		}
		if (d)
			closedir(d);
	} else {
		ds_list_owner(s, who->uid, &imgs, &n, &cap);
	}
	if (n)
		qsort(imgs, n, sizeof(*imgs), ds_cmp_img);
	resp.n_images = n;
	resp.images = imgs;
	ttrpc_call_reply(call, &resp.base, NULL, 0);
	for (size_t i = 0; i < n; i++) {
		free(imgs[i]->name);
		free(imgs[i]);
	}
	free(imgs);
}

void diskstore_delete(struct diskstore *s, struct ttrpc_call *call, const struct diskstore_caller *who,
		      const Virtmgr__V1__DiskImageRef *req)
{
	Virtmgr__V1__Empty e = VIRTMGR__V1__EMPTY__INIT;
	struct vm_error err = { 0 };
	cleanup_free char *path = NULL;
	char name[DS_NAME_MAX + 1];
	uid_t owner;

	if (ds_resolve(who, req->name, &owner, name, &err) < 0)
		goto fail;
	if (ds_find(s, owner, name, &path) < 0) {
		vm_error_set(&err, VM_NOT_FOUND, "no disk image \"%s\"", name);
		goto fail;
	}
	if (ds_check_free(s, owner, name, "delete", &err) < 0)
		goto fail;
	/* a file of the daemon's own store, named by the daemon: unlink is not a client path */
	if (unlink(path) < 0) {
		vm_error_errno(&err, errno, "disk image %s", path);
		goto fail;
	}
	ds_remove(s, owner, name, path);
	ttrpc_call_reply(call, &e.base, NULL, 0);
	return;
fail:
	ttrpc_call_fail_error(call, &err);
}

void diskstore_transfer(struct diskstore *s, struct ttrpc_call *call, const struct diskstore_caller *who,
			const Virtmgr__V1__TransferDiskImageRequest *req, bool import)
{
	struct ds_job *j = ds_job_new(call, import ? DS_IMPORT : DS_EXPORT, who);
	struct vm_error err = { 0 };

	if (ds_resolve(who, req->name, &j->owner, j->name, &err) < 0)
		goto fail;
	if (!req->fd || (j->client_fd = ttrpc_call_take_fd(call, req->fd->index)) < 0) {
		vm_error_set(&err, VM_INVALID_ARGUMENT, "fd: no file descriptor passed with the call");
		goto fail;
	}
	if (j->owner != who->uid)
		j->gid = j->owner;
	if (import) {
		if (ds_check_format(req->format, &err) < 0)
			goto fail;
		j->format = req->format;
		if (ds_create_file(s, j, &err) < 0)
			goto fail;
		/* an import must be an image qemu-img reads in the format it claims */
		ds_step(j, 0, "qemu-img", "info", "-f", ds_fmt[j->format], j->path, NULL);
	} else {
		j->format = ds_find(s, j->owner, j->name, &j->path);
		if (j->format < 0) {
			vm_error_set(&err, VM_NOT_FOUND, "no disk image \"%s\"", j->name);
			goto fail;
		}
		if (ds_check_free(s, j->owner, j->name, "export", &err) < 0)
			goto fail;
		ds_use_get(s, j->owner, j->name)->busy = true;
	}
	ds_job_start(s, j);
	return;
fail:
	ttrpc_call_fail_error(call, &err);
	j->call = NULL;
	ds_job_done(j, false);
	ds_job_free(j);
}

void diskstore_init_partition(struct diskstore *s, struct ttrpc_call *call, const struct diskstore_caller *who,
			      const Virtmgr__V1__InitializeWritablePartitionRequest *req)
{
	struct ds_job *j = ds_job_new(call, DS_INIT, who);
	struct vm_error err = { 0 };

	if (ds_check_size(req->size, &err) < 0 || ds_check_fs(req->filesystem, &j->ext4, &err) < 0)
		goto fail;
	if (!req->fd || (j->client_fd = ttrpc_call_take_fd(call, req->fd->index)) < 0) {
		vm_error_set(&err, VM_INVALID_ARGUMENT, "fd: no file descriptor passed with the call");
		goto fail;
	}
	j->size = req->size;
	snprintf(j->name, sizeof(j->name), "partition");
	if (j->ext4)
		ds_step(j, 0, "mke2fs", "-q", "-F", "-t", "ext4", "/dev/fd/3", NULL);
	ds_job_start(s, j);
	return;
fail:
	ttrpc_call_fail_error(call, &err);
	ds_job_free(j);
}

/* ------------------------------------------------------------ online resize */

void diskstore_set_online_grow(struct diskstore *s, diskstore_grow_fn fn, void *opaque)
{
	s->grow_fn = fn;
	s->grow_opaque = opaque;
}

void diskstore_online_done(struct diskstore *s, struct ttrpc_call *call, uid_t owner, const char *name,
			   const struct vm_error *err)
{
	struct ds_use *u = ds_use_find(s, owner, name);

	if (u) {
		u->busy = false;
		ds_use_gc(s, u);
	}
	if (!call)
		return;
	if (err && err->code)
		ttrpc_call_fail_error(call, err);
	else
		ds_reply_image(s, call, owner, name);
}

int diskstore_resolve(uid_t caller, const char *ref, uid_t *owner, char name[DS_NAME_MAX + 1], struct vm_error *err)
{
	struct diskstore_caller who = { .uid = caller };

	return ds_resolve(&who, ref, owner, name, err);
}
