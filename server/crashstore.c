/* crashstore.c - crash reports on disk, their index and quotas, and the
 * API calls that read them (crashstore.h, docs/crash-reports.md).
 *
 * Design. The index is a list in memory, rebuilt at start-up by reading
 * every report.json, so reports outlive the VM and the daemon. A guest is
 * untrusted, so every byte it sends counts against three bounds checked
 * as the bytes arrive: one report's core (max_core), the VM's bytes
 * (max_bytes, after dropping its older reports) and the share of the
 * state filesystem all reports together may take (share_pct). The count
 * quota drops the VM's oldest reports when a new one is kept. Writes are
 * the chunks the guest sent (64 KiB at most), so none holds the loop long.
 */
#include "config.h"
#include "server/crashstore.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "lib/log.h"
#include "protos/virtmgr.pb-c.h"

#define CRASH_JSON_MAX (64u << 10)

struct crash_entry {
	struct crash_entry *next;
	char id[17];
	bool kernel;
	char *vm_id, *vm_name, *executable, *comm, *kernel_text;
	uid_t owner_uid;
	uint32_t cid, uid, gid;
	int32_t pid, tid, signal;
	uint64_t crash_time_ns, received_ns, core_size, core_stored, bytes;
	bool truncated;
	char *dir; /* <root>/<uid>/<vm>/<id> */
};

struct crashstore {
	char *root; /* <state_dir>/crashes */
	char *state_dir;
	struct crash_limits lim;
	struct crash_entry *list; /* oldest first */
	uint64_t total;		  /* bytes of every report kept */
	unsigned uploads;
};

struct crash_upload {
	struct crashstore *s;
	struct crash_entry *e; /* not in the list yet */
	char *part;	       /* the .part-<id> directory */
	int fd;		       /* part/core.gz */
	uint64_t written;
};

/* ------------------------------------------------------------ entries */

static void entry_free(struct crash_entry *e)
{
	if (!e)
		return;
	free(e->vm_id);
	free(e->vm_name);
	free(e->executable);
	free(e->comm);
	free(e->kernel_text);
	free(e->dir);
	free(e);
}

static struct crash_entry *entry_from_meta(const struct crash_meta *m)
{
	struct crash_entry *e = xzalloc(sizeof(*e));
	uint8_t rnd[8];

	if (getrandom(rnd, sizeof(rnd), 0) != sizeof(rnd))
		for (size_t i = 0; i < sizeof(rnd); i++)
			rnd[i] = (uint8_t)(rand() ^ (int)now_real_ns());
	for (size_t i = 0; i < sizeof(rnd); i++)
		snprintf(e->id + 2 * i, 3, "%02x", rnd[i]);
	e->kernel = m->kernel;
	e->vm_id = xstrdup(m->vm_id ? m->vm_id : "");
	e->vm_name = xstrdup(m->vm_name ? m->vm_name : "");
	e->executable = xstrdup(m->executable ? m->executable : "");
	e->comm = xstrdup(m->comm ? m->comm : "");
	e->owner_uid = m->owner_uid;
	e->cid = m->cid;
	e->pid = m->pid;
	e->tid = m->tid;
	e->signal = m->signal;
	e->uid = m->uid;
	e->gid = m->gid;
	e->crash_time_ns = m->crash_time_ns;
	e->received_ns = now_real_ns();
	return e;
}

static char *vm_dir(const struct crashstore *s, uid_t owner, const char *vm_name)
{
	return xasprintf("%s/%u/%s", s->root, (unsigned)owner, vm_name);
}

static void store_unlink(struct crashstore *s, struct crash_entry *e)
{
	for (struct crash_entry **pp = &s->list; *pp; pp = &(*pp)->next)
		if (*pp == e) {
			*pp = e->next;
			break;
		}
	s->total -= MIN(s->total, e->bytes);
}

static void store_append(struct crashstore *s, struct crash_entry *e)
{
	struct crash_entry **pp = &s->list;

	while (*pp && (*pp)->received_ns <= e->received_ns)
		pp = &(*pp)->next;
	e->next = *pp;
	*pp = e;
	s->total += e->bytes;
}

static void entry_remove(struct crashstore *s, struct crash_entry *e)
{
	int r;

	store_unlink(s, e);
	r = remove_tree(e->dir);
	if (r < 0)
		log_warn("crash report %s: cannot remove %s: %s", e->id, e->dir, strerror(-r));
	entry_free(e);
}

static bool same_vm(const struct crash_entry *e, uid_t owner, const char *vm_name)
{
	return e->owner_uid == owner && !strcmp(e->vm_name, vm_name);
}

unsigned crashstore_count(const struct crashstore *s, uid_t owner, const char *vm_name)
{
	unsigned n = 0;

	for (const struct crash_entry *e = s->list; e; e = e->next)
		n += same_vm(e, owner, vm_name);
	return n;
}

static uint64_t vm_bytes(const struct crashstore *s, uid_t owner, const char *vm_name)
{
	uint64_t n = 0;

	for (const struct crash_entry *e = s->list; e; e = e->next)
		if (same_vm(e, owner, vm_name))
			n += e->bytes;
	return n;
}

/* Drop the VM's oldest reports until @count more reports and @bytes more
 * bytes fit its quotas. */
static void make_room(struct crashstore *s, uid_t owner, const char *vm_name, unsigned count, uint64_t bytes)
{
	for (;;) {
		struct crash_entry *oldest = NULL;

		if (crashstore_count(s, owner, vm_name) + count <= s->lim.max_reports &&
		    vm_bytes(s, owner, vm_name) + bytes <= s->lim.max_bytes)
			return;
		for (struct crash_entry *e = s->list; e && !oldest; e = e->next)
			if (same_vm(e, owner, vm_name))
				oldest = e;
		if (!oldest)
			return;
		log_info("crash report %s of vm %s dropped: the VM's quota (%u reports, %" PRIu64 " bytes) is full",
			 oldest->id, vm_name, s->lim.max_reports, s->lim.max_bytes);
		entry_remove(s, oldest);
	}
}

/* The share of the state filesystem every report together may use. */
static uint64_t share_cap(const struct crashstore *s)
{
	struct statvfs st;

	/* before the first report, crashes/ may not exist yet */
	if (statvfs(s->root, &st) < 0 && statvfs(s->state_dir, &st) < 0)
		return 0;
	return (uint64_t)st.f_blocks * st.f_frsize / 100 * s->lim.share_pct;
}

/* ------------------------------------------------------------ JSON */

static json_object *entry_json(const struct crash_entry *e)
{
	json_object *o = json_object_new_object();

	json_object_object_add(o, "id", json_object_new_string(e->id));
	json_object_object_add(o, "kind", json_object_new_string(e->kernel ? "kernel" : "user"));
	json_object_object_add(o, "vm_id", json_object_new_string(e->vm_id));
	json_object_object_add(o, "vm_name", json_object_new_string(e->vm_name));
	json_object_object_add(o, "owner_uid", json_object_new_int64(e->owner_uid));
	json_object_object_add(o, "cid", json_object_new_int64(e->cid));
	json_object_object_add(o, "pid", json_object_new_int64(e->pid));
	json_object_object_add(o, "tid", json_object_new_int64(e->tid));
	json_object_object_add(o, "uid", json_object_new_int64(e->uid));
	json_object_object_add(o, "gid", json_object_new_int64(e->gid));
	json_object_object_add(o, "signal", json_object_new_int64(e->signal));
	json_object_object_add(o, "executable", json_object_new_string(e->executable));
	json_object_object_add(o, "comm", json_object_new_string(e->comm));
	json_object_object_add(o, "crash_time_ns", json_object_new_uint64(e->crash_time_ns));
	json_object_object_add(o, "received_ns", json_object_new_uint64(e->received_ns));
	json_object_object_add(o, "core_size", json_object_new_uint64(e->core_size));
	json_object_object_add(o, "core_stored", json_object_new_uint64(e->core_stored));
	json_object_object_add(o, "core_truncated", json_object_new_boolean(e->truncated));
	if (e->kernel_text)
		json_object_object_add(o, "kernel_text", json_object_new_string(e->kernel_text));
	return o;
}

static const char *jstr(json_object *o, const char *key)
{
	json_object *v;

	return json_object_object_get_ex(o, key, &v) && json_object_is_type(v, json_type_string)
		       ? json_object_get_string(v)
		       : "";
}

static uint64_t juint(json_object *o, const char *key)
{
	json_object *v;

	return json_object_object_get_ex(o, key, &v) ? json_object_get_uint64(v) : 0;
}

static int64_t jint(json_object *o, const char *key)
{
	json_object *v;

	return json_object_object_get_ex(o, key, &v) ? json_object_get_int64(v) : 0;
}

static int entry_write_json(const struct crash_entry *e, const char *dir, struct vm_error *err)
{
	json_object *o = entry_json(e);
	cleanup_free char *path = xasprintf("%s/report.json", dir);
	const char *text = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_NOSLASHESCAPE);
	int r = write_file_atomic(path, text, strlen(text), 0600, err);

	json_object_put(o);
	return r;
}

/* Read one report directory; Return: the entry or NULL (logged). */
static struct crash_entry *entry_load(const char *dir, uid_t owner, const char *vm_name, const char *id)
{
	cleanup_free char *path = xasprintf("%s/report.json", dir);
	cleanup_free char *text = NULL;
	struct vm_error err = { 0 };
	struct crash_entry *e;
	json_object *o;
	size_t len;
	struct stat st;

	if (read_file(path, CRASH_JSON_MAX, &text, &len, &err) < 0) {
		log_warn("crash report %s: %s", dir, err.message);
		return NULL;
	}
	o = json_tokener_parse(text);
	if (!o || !json_object_is_type(o, json_type_object) || strcmp(jstr(o, "id"), id)) {
		log_warn("crash report %s: report.json is not a report of id %s", dir, id);
		json_object_put(o);
		return NULL;
	}
	e = xzalloc(sizeof(*e));
	snprintf(e->id, sizeof(e->id), "%s", id);
	e->kernel = !strcmp(jstr(o, "kind"), "kernel");
	e->vm_id = xstrdup(jstr(o, "vm_id"));
	e->vm_name = xstrdup(vm_name); /* the directory decides, not the file */
	e->owner_uid = owner;
	e->executable = xstrdup(jstr(o, "executable"));
	e->comm = xstrdup(jstr(o, "comm"));
	if (e->kernel)
		e->kernel_text = xstrdup(jstr(o, "kernel_text"));
	e->cid = (uint32_t)jint(o, "cid");
	e->pid = (int32_t)jint(o, "pid");
	e->tid = (int32_t)jint(o, "tid");
	e->uid = (uint32_t)jint(o, "uid");
	e->gid = (uint32_t)jint(o, "gid");
	e->signal = (int32_t)jint(o, "signal");
	e->crash_time_ns = juint(o, "crash_time_ns");
	e->received_ns = juint(o, "received_ns");
	e->core_size = juint(o, "core_size");
	e->core_stored = juint(o, "core_stored");
	e->truncated = json_object_get_boolean(json_object_object_get(o, "core_truncated"));
	e->bytes = len;
	cleanup_free char *core = xasprintf("%s/core.gz", dir);
	if (stat(core, &st) == 0)
		e->bytes += (uint64_t)st.st_size;
	e->dir = xstrdup(dir);
	json_object_put(o);
	return e;
}

static bool id_valid(const char *s)
{
	size_t n = 0;

	for (; s[n]; n++)
		if (!((s[n] >= '0' && s[n] <= '9') || (s[n] >= 'a' && s[n] <= 'f')))
			return false;
	return n == 16;
}

static void load_vm(struct crashstore *s, uid_t owner, const char *vm_name, const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;

	if (!d)
		return;
	while ((de = readdir(d))) {
		cleanup_free char *path = xasprintf("%s/%s", dir, de->d_name);
		struct crash_entry *e;

		if (!strncmp(de->d_name, ".part-", 6)) {
			remove_tree(path); /* cut off by the last daemon's exit */
			continue;
		}
		if (!id_valid(de->d_name))
			continue;
		e = entry_load(path, owner, vm_name, de->d_name);
		if (e)
			store_append(s, e);
	}
	closedir(d);
}

static void load_all(struct crashstore *s)
{
	DIR *top = opendir(s->root);
	struct dirent *ue;

	if (!top) {
		if (errno != ENOENT)
			log_warn("crash reports: cannot read %s: %s", s->root, strerror(errno));
		return;
	}
	while ((ue = readdir(top))) {
		char *end;
		unsigned long uid = strtoul(ue->d_name, &end, 10);
		cleanup_free char *udir = xasprintf("%s/%s", s->root, ue->d_name);
		DIR *vd;
		struct dirent *ve;

		if (ue->d_name[0] < '0' || ue->d_name[0] > '9' || *end || uid > UINT32_MAX)
			continue;
		if (!(vd = opendir(udir)))
			continue;
		while ((ve = readdir(vd))) {
			cleanup_free char *vdir = NULL;

			if (ve->d_name[0] == '.')
				continue;
			vdir = xasprintf("%s/%s", udir, ve->d_name);
			load_vm(s, (uid_t)uid, ve->d_name, vdir);
		}
		closedir(vd);
	}
	closedir(top);
}

struct crashstore *crashstore_new(const char *state_dir, const struct crash_limits *lim)
{
	struct crashstore *s = xzalloc(sizeof(*s));
	unsigned n = 0;

	s->root = xasprintf("%s/crashes", state_dir);
	s->state_dir = xstrdup(state_dir);
	s->lim = *lim;
	load_all(s);
	for (struct crash_entry *e = s->list; e; e = e->next)
		n++;
	if (n)
		log_info("crash reports: %u kept in %s (%" PRIu64 " bytes)", n, s->root, s->total);
	return s;
}

void crashstore_free(struct crashstore *s)
{
	if (!s)
		return;
	while (s->list) {
		struct crash_entry *e = s->list;

		s->list = e->next;
		entry_free(e);
	}
	free(s->root);
	free(s->state_dir);
	free(s);
}

/* ------------------------------------------------------------ receiving */

static int make_part(struct crashstore *s, struct crash_entry *e, char **part, struct vm_error *err)
{
	cleanup_free char *vdir = vm_dir(s, e->owner_uid, e->vm_name);

	int r = mkdir_p(vdir, 0700);

	if (r < 0)
		return vm_error_errno(err, -r, "crash reports: cannot create %s", vdir);
	*part = xasprintf("%s/.part-%s", vdir, e->id);
	if (mkdir(*part, 0700) < 0) {
		int en = errno;

		free(steal_pointer(part));
		return vm_error_errno(err, en, "crash reports: cannot create a directory in %s", vdir);
	}
	e->dir = xasprintf("%s/%s", vdir, e->id);
	return 0;
}

struct crash_upload *crashstore_begin(struct crashstore *s, const struct crash_meta *m, struct vm_error *err)
{
	struct crash_upload *u;
	struct crash_entry *e;
	cleanup_free char *core = NULL;
	uint64_t cap = share_cap(s);

	if (s->lim.max_reports == 0 || s->lim.max_bytes == 0) {
		vm_error_set(err, VM_FAILED_PRECONDITION, "crash reports are disabled on this host");
		return NULL;
	}
	if (cap && s->total >= cap) {
		vm_error_set(err, VM_RESOURCE_EXHAUSTED,
			     "crash reports already use their share of the state directory (%" PRIu64 " of %" PRIu64
			     " bytes)",
			     s->total, cap);
		return NULL;
	}
	e = entry_from_meta(m);
	u = xzalloc(sizeof(*u));
	u->s = s;
	u->e = e;
	u->fd = -1;
	if (make_part(s, e, &u->part, err) < 0) {
		crashstore_abort(u);
		return NULL;
	}
	core = xasprintf("%s/core.gz", u->part);
	u->fd = open(core, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (u->fd < 0) {
		vm_error_errno(err, errno, "crash reports: cannot create %s", core);
		crashstore_abort(u);
		return NULL;
	}
	s->uploads++;
	return u;
}

int crashstore_write(struct crash_upload *u, const void *data, size_t len, struct vm_error *err)
{
	struct crashstore *s = u->s;
	uint64_t cap;

	if (u->written + len > s->lim.max_core)
		return vm_error_set(err, VM_RESOURCE_EXHAUSTED, "core larger than %" PRIu64 " compressed bytes",
				    s->lim.max_core);
	if (u->written + len > s->lim.max_bytes)
		return vm_error_set(err, VM_RESOURCE_EXHAUSTED,
				    "core larger than the VM's crash report quota (%" PRIu64 " bytes)",
				    s->lim.max_bytes);
	cap = share_cap(s);
	if (cap && s->total + u->written + len > cap)
		return vm_error_set(err, VM_RESOURCE_EXHAUSTED,
				    "crash reports would exceed their share of the state directory (%" PRIu64 " bytes)",
				    cap);
	if (write_all(u->fd, data, len) < 0)
		return vm_error_errno(err, errno, "crash reports: writing a core in %s", u->part);
	u->written += len;
	return 0;
}

uint64_t crashstore_received(const struct crash_upload *u)
{
	return u->written;
}

void crashstore_abort(struct crash_upload *u)
{
	if (!u)
		return;
	if (u->fd >= 0)
		close(u->fd);
	if (u->part)
		remove_tree(u->part);
	if (u->s && u->s->uploads)
		u->s->uploads--;
	free(u->part);
	entry_free(u->e);
	free(u);
}

/* Rename the part directory into place and index it. */
static int keep(struct crashstore *s, struct crash_entry *e, const char *part, struct vm_error *err)
{
	if (entry_write_json(e, part, err) < 0)
		return -1;
	e->bytes += 1024; /* report.json, roughly */
	make_room(s, e->owner_uid, e->vm_name, 1, e->bytes);
	if (rename(part, e->dir) < 0)
		return vm_error_errno(err, errno, "crash reports: rename %s", part);
	store_append(s, e);
	return 0;
}

int crashstore_commit(struct crashstore *s, struct crash_upload *u, uint64_t core_size, bool truncated, char *id,
		      struct vm_error *err)
{
	struct crash_entry *e = u->e;

	if (close(steal_fd(&u->fd)) < 0) {
		vm_error_errno(err, errno, "crash reports: writing a core in %s", u->part);
		crashstore_abort(u);
		return -1;
	}
	e->core_size = core_size;
	e->core_stored = u->written;
	e->truncated = truncated;
	e->bytes = u->written;
	if (keep(s, e, u->part, err) < 0) {
		crashstore_abort(u);
		return -1;
	}
	snprintf(id, 17, "%s", e->id);
	u->e = NULL; /* the index holds it now */
	free(steal_pointer(&u->part));
	crashstore_abort(u);
	return 0;
}

int crashstore_add_kernel(struct crashstore *s, const struct crash_meta *m, const char *text, char *id,
			  struct vm_error *err)
{
	struct crash_entry *e;
	cleanup_free char *part = NULL;
	size_t len = strlen(text);

	if (s->lim.max_reports == 0 || s->lim.max_bytes == 0)
		return vm_error_set(err, VM_FAILED_PRECONDITION, "crash reports are disabled on this host");
	e = entry_from_meta(m);
	e->kernel = true;
	/* the end holds the panic */
	e->kernel_text = xstrdup(text + (len > CRASH_KERNEL_TEXT_MAX ? len - CRASH_KERNEL_TEXT_MAX : 0));
	e->bytes = strlen(e->kernel_text);
	if (make_part(s, e, &part, err) < 0 || keep(s, e, part, err) < 0) {
		if (part)
			remove_tree(part);
		entry_free(e);
		return -1;
	}
	snprintf(id, 17, "%s", e->id);
	return 0;
}

/* ------------------------------------------------------------ API */

static bool may_see(const struct ttrpc_peer *peer, const struct crash_entry *e)
{
	return peer->uid == 0 || peer->uid == geteuid() || peer->uid == e->owner_uid;
}

static bool api_peer(struct ttrpc_call *call)
{
	if (ttrpc_call_peer(call)->has_cred)
		return true;
	ttrpc_call_fail(call, VM_PERMISSION_DENIED, "callers over AF_VSOCK may not read crash reports");
	return false;
}

static void fill(const struct crash_entry *e, Virtmgr__V1__CrashReport *r)
{
	virtmgr__v1__crash_report__init(r);
	r->id = (char *)e->id;
	r->kind = e->kernel ? VIRTMGR__V1__CRASH_KIND__CRASH_KIND_KERNEL : VIRTMGR__V1__CRASH_KIND__CRASH_KIND_USER;
	r->vm_id = e->vm_id;
	r->vm_name = e->vm_name;
	r->owner_uid = e->owner_uid;
	r->cid = e->cid;
	r->pid = e->pid;
	r->tid = e->tid;
	r->uid = e->uid;
	r->gid = e->gid;
	r->signal = e->signal;
	r->executable = e->executable;
	r->comm = e->comm;
	r->crash_time_ns = e->crash_time_ns;
	r->received_ns = e->received_ns;
	r->core_size = e->core_size;
	r->core_stored = e->core_stored;
	r->core_truncated = e->truncated;
	r->kernel_text = e->kernel_text ? e->kernel_text : "";
}

static struct crash_entry *api_find(struct crashstore *s, struct ttrpc_call *call, const char *id)
{
	if (!id || !*id) {
		ttrpc_call_fail(call, VM_INVALID_ARGUMENT, "id: missing crash report id");
		return NULL;
	}
	for (struct crash_entry *e = s->list; e; e = e->next)
		if (!strcmp(e->id, id) && may_see(ttrpc_call_peer(call), e))
			return e;
	ttrpc_call_fail(call, VM_NOT_FOUND, "no crash report \"%s\"", id);
	return NULL;
}

void crashstore_api_list(struct ttrpc_call *call, const ProtobufCMessage *msg, void *opaque)
{
	const Virtmgr__V1__ListCrashReportsRequest *req = (const void *)msg;
	Virtmgr__V1__ListCrashReportsResponse resp = VIRTMGR__V1__LIST_CRASH_REPORTS_RESPONSE__INIT;
	struct crashstore *s = opaque;
	const struct ttrpc_peer *peer = ttrpc_call_peer(call);
	size_t n = 0, i = 0;

	if (!api_peer(call))
		return;
	for (struct crash_entry *e = s->list; e; e = e->next)
		n++;
	cleanup_free Virtmgr__V1__CrashReport *reps = xcalloc(n ? n : 1, sizeof(*reps));
	cleanup_free Virtmgr__V1__CrashReport **ptrs = xcalloc(n ? n : 1, sizeof(*ptrs));
	for (struct crash_entry *e = s->list; e; e = e->next) {
		if (!may_see(peer, e))
			continue;
		if (req->vm && *req->vm && strcmp(req->vm, e->vm_id) && strcmp(req->vm, e->vm_name))
			continue;
		fill(e, &reps[i]);
		ptrs[i] = &reps[i];
		i++;
	}
	resp.n_reports = i;
	resp.reports = ptrs;
	ttrpc_call_reply(call, &resp.base, NULL, 0);
}

void crashstore_api_get(struct ttrpc_call *call, const ProtobufCMessage *msg, void *opaque)
{
	const Virtmgr__V1__CrashReportRef *req = (const void *)msg;
	Virtmgr__V1__GetCrashReportResponse resp = VIRTMGR__V1__GET_CRASH_REPORT_RESPONSE__INIT;
	Virtmgr__V1__CrashReport rep;
	Virtmgr__V1__FdRef ref = VIRTMGR__V1__FD_REF__INIT;
	struct crash_entry *e;
	int fd = -1; /* ownership passes to the reply */

	if (!api_peer(call) || !(e = api_find(opaque, call, req->id)))
		return;
	fill(e, &rep);
	resp.report = &rep;
	if (!e->kernel) {
		cleanup_free char *path = xasprintf("%s/core.gz", e->dir);

		fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
		if (fd < 0) {
			ttrpc_call_fail(call, VM_DATA_LOSS, "crash report %s: cannot open its core: %s", e->id,
					strerror(errno));
			return;
		}
		ref.index = 0;
		resp.core = &ref;
	}
	ttrpc_call_reply(call, &resp.base, fd >= 0 ? &fd : NULL, fd >= 0 ? 1 : 0);
}

void crashstore_api_delete(struct ttrpc_call *call, const ProtobufCMessage *msg, void *opaque)
{
	const Virtmgr__V1__CrashReportRef *req = (const void *)msg;
	Virtmgr__V1__Empty resp = VIRTMGR__V1__EMPTY__INIT;
	struct crash_entry *e;

	if (!api_peer(call) || !(e = api_find(opaque, call, req->id)))
		return;
	log_info("crash report %s of vm %s deleted by uid %u", e->id, e->vm_name, (unsigned)ttrpc_call_peer(call)->uid);
	entry_remove(opaque, e);
	ttrpc_call_reply(call, &resp.base, NULL, 0);
}

void crashstore_api_register(struct ttrpc_server *srv, const char *service, struct crashstore *s)
{
	ttrpc_server_add_method(srv, service, "ListCrashReports", &virtmgr__v1__list_crash_reports_request__descriptor,
				crashstore_api_list, s);
	ttrpc_server_add_method(srv, service, "GetCrashReport", &virtmgr__v1__crash_report_ref__descriptor,
				crashstore_api_get, s);
	ttrpc_server_add_method(srv, service, "DeleteCrashReport", &virtmgr__v1__crash_report_ref__descriptor,
				crashstore_api_delete, s);
}
