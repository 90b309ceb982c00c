/* vm-stats.c - GetVmStats and SetBalloon.
 *
 * Host figures come from /proc of the VM's processes (QEMU, the vsock
 * backend, virtiofsd): small procfs reads that never block. Guest figures
 * come from QEMU over QMP, which is asynchronous: the handler sends
 * query-blockstats, query-balloon and the balloon's guest-stats (after
 * switching their polling on) through qemu_qmp_call(), and the call is
 * answered from the loop once every reply is in. qemu_qmp_call() answers
 * every command exactly once (with "QEMU is gone" when QEMU dies first), so
 * a request is freed when its count of outstanding replies reaches zero;
 * a client that goes away meanwhile only clears the request's call.
 */
#include "config.h"
#include "server/vm-stats.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/log.h"
#include "protos/virtmgr.pb-c.h"
#include "server/api.h"
#include "server/qmp.h"
#include "server/vm-priv.h"

#define SERVICE "virtmgr.v1.VirtualizationService"
#define MIB ((uint64_t)1024 * 1024)
/* QEMU, the vsock backend and one virtiofsd per share */
#define VMSTATS_MAX_PROCS (2 + VIRTIOFS_MAX_SHARES)

/* ---------------------------------------------------------------- /proc */

/* Read a small procfs file into @buf (NUL-terminated). Return: bytes, or -1. */
static ssize_t read_small(const char *path, char *buf, size_t size)
{
	cleanup_close int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return -1;
	do
		n = read(fd, buf, size - 1);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -1;
	buf[n] = '\0';
	return n;
}

/* The number after "@key" at the start of a line of @text, or 0. */
static uint64_t field_after(const char *text, const char *key)
{
	size_t klen = strlen(key);

	for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL)
		if (!strncmp(p, key, klen))
			return strtoull(p + klen, NULL, 10);
	return 0;
}

int vmstats_read_proc(pid_t pid, struct vmstats_proc *out)
{
	static long tick;
	char path[64], buf[4096];
	unsigned long long utime = 0, stime = 0;
	const char *p;

	memset(out, 0, sizeof(*out));
	out->pid = pid;
	if (!tick)
		tick = sysconf(_SC_CLK_TCK);
	if (tick <= 0)
		tick = 100;
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	if (read_small(path, buf, sizeof(buf)) < 0)
		return -1;
	/* comm may hold spaces and parentheses: fields start after the last ')' */
	p = strrchr(buf, ')');
	if (!p || sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &utime, &stime) != 2) {
		errno = EINVAL;
		return -1;
	}
	out->cpu_user_ns = (uint64_t)utime * (1000000000ull / (uint64_t)tick);
	out->cpu_system_ns = (uint64_t)stime * (1000000000ull / (uint64_t)tick);
	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	if (read_small(path, buf, sizeof(buf)) < 0)
		return -1;
	out->rss_bytes = field_after(buf, "VmRSS:") * 1024;
	/* io needs ptrace access: the daemon's own children or root; else 0 */
	snprintf(path, sizeof(path), "/proc/%d/io", (int)pid);
	if (read_small(path, buf, sizeof(buf)) >= 0) {
		out->read_bytes = field_after(buf, "rchar:");
		out->write_bytes = field_after(buf, "wchar:");
	}
	return 0;
}

/* ---------------------------------------------------------------- GetVmStats */

struct stats_req {
	struct ttrpc_call *call; /* NULL once the client went away */
	int pending;		 /* QMP replies still to come */
	Virtmgr__V1__VmStats st;
	char id[sizeof(((struct vm *)0)->id)];
	Virtmgr__V1__ProcessStats procs[VMSTATS_MAX_PROCS];
	Virtmgr__V1__ProcessStats *proc_ptrs[VMSTATS_MAX_PROCS];
	char proc_names[VMSTATS_MAX_PROCS][16];
	Virtmgr__V1__BalloonStats balloon;
	/* disks: QEMU names them disk0, disk1... (qemu.c); labels copied at the call */
	size_t ndisks;
	char (*labels)[QEMU_DISK_LABEL_MAX + 8];
	Virtmgr__V1__DiskStats *disks;
	Virtmgr__V1__DiskStats **disk_ptrs;
};

static void stats_req_free(struct stats_req *r)
{
	free(r->labels);
	free(r->disks);
	free(r->disk_ptrs);
	free(r);
}

static void stats_cancel(struct ttrpc_call *call, void *opaque)
{
	struct stats_req *r = opaque;

	(void)call;
	r->call = NULL;
}

static void stats_done(struct stats_req *r)
{
	Virtmgr__V1__GetVmStatsResponse resp = VIRTMGR__V1__GET_VM_STATS_RESPONSE__INIT;

	if (--r->pending > 0)
		return;
	if (r->call) {
		ttrpc_call_set_cancel(r->call, NULL, NULL);
		resp.stats = &r->st;
		ttrpc_call_reply(r->call, &resp.base, NULL, 0);
	}
	stats_req_free(r);
}

static uint64_t json_u64(struct json_object *obj, const char *key)
{
	struct json_object *v;
	int64_t x;

	if (!obj || !json_object_is_type(obj, json_type_object) || !json_object_object_get_ex(obj, key, &v))
		return 0;
	x = json_object_get_int64(v);
	return x > 0 ? (uint64_t)x : 0; /* QEMU says -1 for "unknown" */
}

static void stats_blockstats(void *opaque, struct json_object *ret, const char *error)
{
	struct stats_req *r = opaque;
	size_t n;

	if (error) {
		log_debug("vm %s: query-blockstats: %s", r->id, error);
	} else if (json_object_is_type(ret, json_type_array)) {
		n = json_object_array_length(ret);
		for (size_t i = 0; i < n; i++) {
			struct json_object *e = json_object_array_get_idx(ret, i), *stats = NULL;
			const char *dev = qmp_get_string(e, "device");
			char *end;
			unsigned long idx;

			if (!dev || strncmp(dev, "disk", 4) || !json_object_object_get_ex(e, "stats", &stats))
				continue;
			idx = strtoul(dev + 4, &end, 10);
			if (*end || end == dev + 4 || idx >= r->ndisks)
				continue;
			r->disks[idx].read_bytes = json_u64(stats, "rd_bytes");
			r->disks[idx].write_bytes = json_u64(stats, "wr_bytes");
			r->disks[idx].read_ops = json_u64(stats, "rd_operations");
			r->disks[idx].write_ops = json_u64(stats, "wr_operations");
			r->disks[idx].flush_ops = json_u64(stats, "flush_operations");
		}
	}
	stats_done(r);
}

static void stats_balloon(void *opaque, struct json_object *ret, const char *error)
{
	struct stats_req *r = opaque;

	if (!error) {
		r->balloon.present = true;
		r->balloon.actual_bytes = json_u64(ret, "actual");
	} else {
		log_debug("vm %s: query-balloon: %s", r->id, error);
	}
	stats_done(r);
}

static void stats_guest(void *opaque, struct json_object *ret, const char *error)
{
	struct stats_req *r = opaque;
	struct json_object *stats = NULL;
	uint64_t last;

	if (!error && json_object_object_get_ex(ret, "stats", &stats)) {
		last = json_u64(ret, "last-update");
		/* last-update is 0 until the guest has sent statistics once */
		if (last) {
			uint64_t now = now_real_ns() / 1000000000ull;

			r->balloon.guest_stats_valid = true;
			r->balloon.guest_stats_age_s = now > last ? now - last : 0;
			r->balloon.guest_total_bytes = json_u64(stats, "stat-total-memory");
			r->balloon.guest_free_bytes = json_u64(stats, "stat-free-memory");
			r->balloon.guest_available_bytes = json_u64(stats, "stat-available-memory");
		}
	} else if (error) {
		log_debug("vm %s: guest-stats: %s", r->id, error);
	}
	stats_done(r);
}

static void stats_ignore(void *opaque, struct json_object *ret, const char *error)
{
	struct stats_req *r = opaque;

	(void)ret;
	if (error)
		log_debug("vm %s: balloon polling: %s", r->id, error);
	stats_done(r);
}

static void stats_add_proc(struct stats_req *r, const char *name, pid_t pid)
{
	struct vmstats_proc p;
	Virtmgr__V1__ProcessStats *ps;

	if (pid <= 0 || r->st.n_processes >= VMSTATS_MAX_PROCS || vmstats_read_proc(pid, &p) < 0)
		return;
	ps = &r->procs[r->st.n_processes];
	virtmgr__v1__process_stats__init(ps);
	snprintf(r->proc_names[r->st.n_processes], sizeof(r->proc_names[0]), "%s", name);
	ps->name = r->proc_names[r->st.n_processes];
	ps->pid = (int32_t)pid;
	ps->cpu_user_ns = p.cpu_user_ns;
	ps->cpu_system_ns = p.cpu_system_ns;
	ps->rss_bytes = p.rss_bytes;
	ps->read_bytes = p.read_bytes;
	ps->write_bytes = p.write_bytes;
	r->proc_ptrs[r->st.n_processes++] = ps;
	r->st.cpu_ns += p.cpu_user_ns + p.cpu_system_ns;
	r->st.rss_bytes += p.rss_bytes;
}

/* Send @cmd for @r; a command that cannot be sent does not count. */
static void stats_send(struct stats_req *r, struct qemu *q, const char *cmd, struct json_object *args, qemu_qmp_fn fn)
{
	r->pending++;
	if (qemu_qmp_call(q, cmd, args, fn, r) < 0)
		r->pending--;
}

static void api_get_vm_stats(struct ttrpc_call *call, const ProtobufCMessage *msg, void *opaque)
{
	const Virtmgr__V1__GetVmStatsRequest *req = (const void *)msg;
	struct daemon *d = opaque;
	struct stats_req *r;
	struct vm *vm;

	if (!api_allowed(d, call) || !(vm = api_find(d, call, req->vm)))
		return;
	if (!vm->qemu || vm->state == VIRTMGR__V1__VM_STATE__VM_STATE_DEAD) {
		ttrpc_call_fail(call, VM_FAILED_PRECONDITION, "vm %s is %s: no processes to measure", vm->id,
				vm_state_name(vm->state));
		return;
	}
	r = xzalloc(sizeof(*r));
	r->call = call;
	snprintf(r->id, sizeof(r->id), "%s", vm->id);
	virtmgr__v1__vm_stats__init(&r->st);
	virtmgr__v1__balloon_stats__init(&r->balloon);
	r->st.vm = r->id;
	r->st.timestamp_ns = now_mono_ns();
	r->st.memory_bytes = (uint64_t)vm->memory_mib * MIB;
	r->st.cpus = vm->cpus;
	r->st.processes = r->proc_ptrs;
	r->st.balloon = &r->balloon;
	r->balloon.target_bytes = vm->balloon_target_bytes;

	stats_add_proc(r, "qemu", qemu_pid(vm->qemu));
	if (vm->vsock.backend_pid > 0)
		stats_add_proc(r, "vsock", vm->vsock.backend_pid);
	vsock_host_bytes(&vm->vsock, &r->st.vsock_rx_bytes, &r->st.vsock_tx_bytes);
	for (size_t i = 0; i < vm->virtiofs.n; i++)
		stats_add_proc(r, "virtiofsd", vm->virtiofs.procs[i].pid);
	/* network interfaces: none yet; a VM with a network adds its NetStats here */

	r->ndisks = vm->ndisks;
	if (r->ndisks) {
		r->labels = xcalloc(r->ndisks, sizeof(*r->labels));
		r->disks = xcalloc(r->ndisks, sizeof(*r->disks));
		r->disk_ptrs = xcalloc(r->ndisks, sizeof(*r->disk_ptrs));
		for (size_t i = 0; i < r->ndisks; i++) {
			virtmgr__v1__disk_stats__init(&r->disks[i]);
			if (vm->disks[i].label[0])
				snprintf(r->labels[i], sizeof(r->labels[i]), "%s", vm->disks[i].label);
			else
				snprintf(r->labels[i], sizeof(r->labels[i]), "disk%zu", i);
			r->disks[i].label = r->labels[i];
			r->disk_ptrs[i] = &r->disks[i];
		}
		r->st.n_disks = r->ndisks;
		r->st.disks = r->disk_ptrs;
	}

	/* one extra count so no reply can finish the request while commands go out */
	r->pending = 1;
	if (r->ndisks)
		stats_send(r, vm->qemu, "query-blockstats", NULL, stats_blockstats);
	stats_send(r, vm->qemu, "query-balloon", NULL, stats_balloon);
	{
		struct json_object *set = json_object_new_object(), *get = json_object_new_object();

		/* polling is switched on at the first request and stays on
		 * (setting the same interval again does not restart it) */
		json_object_object_add(set, "path", json_object_new_string("/machine/peripheral/balloon0"));
		json_object_object_add(set, "property", json_object_new_string("guest-stats-polling-interval"));
		json_object_object_add(set, "value", json_object_new_int(VMSTATS_GUEST_POLL_S));
		json_object_object_add(get, "path", json_object_new_string("/machine/peripheral/balloon0"));
		json_object_object_add(get, "property", json_object_new_string("guest-stats"));
		stats_send(r, vm->qemu, "qom-set", set, stats_ignore);
		stats_send(r, vm->qemu, "qom-get", get, stats_guest);
		json_object_put(set);
		json_object_put(get);
	}
	ttrpc_call_set_cancel(call, stats_cancel, r);
	stats_done(r);
}

void vm_stats_usage(const struct vm *vm, struct vm_usage *out)
{
	pid_t pids[VMSTATS_MAX_PROCS];
	size_t n = 0;
	struct vmstats_proc p;

	memset(out, 0, sizeof(*out));
	if (!vm->qemu || vm->state == VIRTMGR__V1__VM_STATE__VM_STATE_DEAD)
		return;
	out->running = true;
	pids[n++] = qemu_pid(vm->qemu);
	if (vm->vsock.backend_pid > 0)
		pids[n++] = vm->vsock.backend_pid;
	for (size_t i = 0; i < vm->virtiofs.n && n < VMSTATS_MAX_PROCS; i++)
		pids[n++] = vm->virtiofs.procs[i].pid;
	for (size_t i = 0; i < n; i++) {
		if (pids[i] <= 0 || vmstats_read_proc(pids[i], &p) < 0)
			continue;
		out->cpu_ns += p.cpu_user_ns + p.cpu_system_ns;
		out->rss_bytes += p.rss_bytes;
	}
	vsock_host_bytes(&vm->vsock, &out->vsock_rx_bytes, &out->vsock_tx_bytes);
	out->balloon_target_bytes = vm->balloon_target_bytes;
}

void vm_stats_fill_usage(const struct vm *vm, Virtmgr__V1__VmUsage *u, Virtmgr__V1__VmInfo *info)
{
	struct vm_usage use;

	vm_stats_usage(vm, &use);
	if (!use.running)
		return;
	virtmgr__v1__vm_usage__init(u);
	u->cpu_ns = use.cpu_ns;
	u->rss_bytes = use.rss_bytes;
	info->usage = u;
}

/* ---------------------------------------------------------------- SetBalloon */

/* qemu_qmp_call() answers before the VM record can go (qemu_free() in its
 * death answers what is in flight), so @vm is valid in the reply. */
struct balloon_req {
	struct ttrpc_call *call;
	struct vm *vm;
	uint64_t target; /* recorded once QEMU accepted it; 0 = none */
	char id[sizeof(((struct vm *)0)->id)];
};

static void balloon_cancel(struct ttrpc_call *call, void *opaque)
{
	struct balloon_req *b = opaque;

	(void)call;
	b->call = NULL;
}

static void balloon_reply(void *opaque, struct json_object *ret, const char *error)
{
	struct balloon_req *b = opaque;
	Virtmgr__V1__Empty resp = VIRTMGR__V1__EMPTY__INIT;

	(void)ret;
	if (!error)
		b->vm->balloon_target_bytes = b->target;
	if (b->call) {
		ttrpc_call_set_cancel(b->call, NULL, NULL);
		if (error)
			ttrpc_call_fail(b->call, VM_FAILED_PRECONDITION, "vm %s: QEMU refused the balloon target: %s",
					b->id, error);
		else
			ttrpc_call_reply(b->call, &resp.base, NULL, 0);
	}
	free(b);
}

static void api_set_balloon(struct ttrpc_call *call, const ProtobufCMessage *msg, void *opaque)
{
	const Virtmgr__V1__SetBalloonRequest *req = (const void *)msg;
	struct daemon *d = opaque;
	struct json_object *args;
	struct balloon_req *b;
	uint64_t mem, target;
	struct vm *vm;
	int r;

	if (!api_allowed(d, call) || !(vm = api_find(d, call, req->vm)))
		return;
	if (!vm->qemu || !qemu_qmp_ready(vm->qemu) || vm->state == VIRTMGR__V1__VM_STATE__VM_STATE_DEAD) {
		ttrpc_call_fail(call, VM_FAILED_PRECONDITION, "vm %s is %s: no balloon to set", vm->id,
				vm_state_name(vm->state));
		return;
	}
	mem = (uint64_t)vm->memory_mib * MIB;
	target = req->target_bytes ? req->target_bytes / MIB * MIB : mem;
	if (target > mem) {
		ttrpc_call_fail(call, VM_INVALID_ARGUMENT,
				"target_bytes: %" PRIu64 " MiB is more than vm %s's memory (%" PRIu32 " MiB)",
				target / MIB, vm->id, vm->memory_mib);
		return;
	}
	if (target < VMSTATS_BALLOON_MIN_MIB * MIB) {
		ttrpc_call_fail(call, VM_INVALID_ARGUMENT,
				"target_bytes: %" PRIu64 " MiB is below the minimum of %d MiB", target / MIB,
				VMSTATS_BALLOON_MIN_MIB);
		return;
	}
	b = xzalloc(sizeof(*b));
	b->call = call;
	b->vm = vm;
	b->target = target == mem ? 0 : target;
	snprintf(b->id, sizeof(b->id), "%s", vm->id);
	args = json_object_new_object();
	json_object_object_add(args, "value", json_object_new_int64((int64_t)target));
	r = qemu_qmp_call(vm->qemu, "balloon", args, balloon_reply, b);
	json_object_put(args);
	if (r < 0) {
		free(b);
		ttrpc_call_fail(call, VM_FAILED_PRECONDITION, "vm %s: QEMU's monitor is not connected", vm->id);
		return;
	}
	log_info("vm %s: balloon target %" PRIu64 " MiB", vm->id, target / MIB);
	ttrpc_call_set_cancel(call, balloon_cancel, b);
}

void vm_stats_register(struct daemon *d)
{
	ttrpc_server_add_method(d->api, SERVICE, "GetVmStats", &virtmgr__v1__get_vm_stats_request__descriptor,
				api_get_vm_stats, d);
	ttrpc_server_add_method(d->api, SERVICE, "SetBalloon", &virtmgr__v1__set_balloon_request__descriptor,
				api_set_balloon, d);
}
