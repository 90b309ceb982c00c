/* api.c - the VirtualizationService handlers: permission checks, VM lookup
 * by id or name, and the translation between protobuf messages and the VM
 * state machine (vm.c). A handler never blocks: calls that wait (StopVm,
 * KillVm, WaitVm, WatchVm) park the ttrpc call on the VM and are answered
 * from the loop later.
 */
#include "config.h"
#include "server/api.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <unistd.h>

#include "lib/log.h"
#include "protos/virtmgr.pb-c.h"
#include "server/attest.h"
#include "server/diskstore.h"
#include "server/servicevm.h"
#include "server/logfile.h"
#include "server/uidpool.h"
#include "server/vm-stats.h"
#include "server/vm.h"

#define SERVICE "virtmgr.v1.VirtualizationService"

/* What IsFeatureEnabled and GetDaemonInfo report. */
static const char *const api_features[] = {
	"create-vm", "console-fds",    "detach",      "watch-events", "wait",	     "suspend-resume",
	"open-log",  "attach-console", "instance-id", "vsock",	      "disk-images", "vm-stats", "balloon",
	"crash-reports", "network-user",
};

/* Regular mode: root or a member of the configured group may use the API. */
bool api_allowed(struct daemon *d, struct ttrpc_call *call)
{
	const struct ttrpc_peer *peer = ttrpc_call_peer(call);

	if (!peer->has_cred) {
		ttrpc_call_fail(call, VM_PERMISSION_DENIED, "callers over AF_VSOCK may not manage VMs");
		return false;
	}
	if (d->cfg.early || peer->uid == 0 || peer->uid == geteuid() ||
	    (d->group_exists && ttrpc_peer_in_group(peer, d->group_gid)))
		return true;
	ttrpc_call_fail(call, VM_PERMISSION_DENIED, "uid %u is neither root nor a member of group \"%s\"",
			(unsigned)peer->uid, d->cfg.group);
	return false;
}

/*
 * A failed call always reaches the client with a status that says what
 * failed. A fallible function that returned -1 without filling @err is a
 * bug: debug builds (NDEBUG unset) stop on it here; release builds answer
 * INTERNAL naming the method rather than an empty UNKNOWN.
 */
static void api_fail(struct ttrpc_call *call, struct vm_error *err)
{
	assert(err->code != VM_OK && err->message[0]);
	if (err->code == VM_OK)
		err->code = VM_INTERNAL;
	if (!err->message[0])
		snprintf(err->message, sizeof(err->message), "internal error in %s", ttrpc_call_method(call));
	ttrpc_call_fail_error(call, err);
}

struct vm *api_find(struct daemon *d, struct ttrpc_call *call, const char *ref)
{
	struct vm *vm;

	if (!ref || !*ref) {
		ttrpc_call_fail(call, VM_INVALID_ARGUMENT, "vm: missing VM id or name");
		return NULL;
	}
	vm = vm_lookup(d, ref, ttrpc_call_peer(call));
	if (!vm)
		/* the same answer whether it does not exist or belongs to someone else */
		ttrpc_call_fail(call, VM_NOT_FOUND, "no VM \"%s\"", ref);
	return vm;
}

static void reply_info(struct ttrpc_call *call, struct vm *vm)
{
	Virtmgr__V1__VmInfo info = VIRTMGR__V1__VM_INFO__INIT;
	Virtmgr__V1__VmInfoResponse resp = VIRTMGR__V1__VM_INFO_RESPONSE__INIT;
	Virtmgr__V1__VmUsage usage;

	vm_fill_info(vm, &info);
	vm_stats_fill_usage(vm, &usage, &info);
	resp.vm = &info;
	ttrpc_call_reply(call, &resp.base, NULL, 0);
}

static void api_create_vm(struct ttrpc_call *call, const ProtobufCMessage *msg, void *opaque)
{
	const Virtmgr__V1__CreateVmRequest *req = (const void *)msg;
	struct daemon *d = opaque;
	Virtmgr__V1__VmInfo info = VIRTMGR__V1__VM_INFO__INIT;
	Virtmgr__V1__CreateVmResponse resp = VIRTMGR__V1__CREATE_VM_RESPONSE__INIT;
	struct vm_error err = { 0 };
	struct vm *vm;

	if (!api_allowed(d, call))
		return;
	if (vm_create(d, req->config, call, &vm, &err) < 0) {
		api_fail(call, &err);
		return;
	}
	vm_fill_info(vm, &info);
	resp.vm = &info;
	ttrpc_call_reply(call, &resp.base, NULL, 0);
}

static void api_start_vm(struct ttrpc_call *call, const ProtobufCMessage *msg, void *opaque)
{
	const Virtmgr__V1__VmRef *req = (const void *)msg;
	struct daemon *d = opaque;
	struct vm_error err = { 0 };
	struct vm *vm;

	if (!api_allowed(d, call) || !(vm = api_find(d, call, req->vm)))
		return;
	if (vm_start(vm, &err) < 0) {
		api_fail(call, &err);
		return;
	}
	reply_info(call, vm);
}

static void api_stop_vm(struct ttrpc_call *call, const ProtobufCMessage *msg, void *opaque)
{
	const Virtmgr__V1__StopVmRequest *req = (const void *)msg;
	struct daemon *d = opaque;
	struct vm *vm;

	if (!api_allowed(d, call) || !(vm = api_find(d, call, req->vm)))
		return;
	vm_stop(vm, req->timeout_ms, req->force);
	vm_reply_when_dead(vm, call);
}

static void api_kill_vm(struct ttrpc_call *call, const ProtobufCMessage *msg, void *opaque)
{
	const Virtmgr__V1__VmRef *req = (const void *)msg;
	struct daemon *d = opaque;
	struct vm *vm;

	if (!api_allowed(d, call) || !(vm = api_find(d, call, req->vm)))
		return;
	vm_kill(vm);
	vm_reply_when_dead(vm, call);
}

static void api_get_vm_info(struct ttrpc_call *call, const ProtobufCMessage *msg, void *opaque)
{
	const Virtmgr__V1__VmRef *req = (const void *)msg;
	struct daemon *d = opaque;
	struct vm *vm;

	if (!api_allowed(d, call) || !(vm = api_find(d, call, req->vm)))
		return;
	reply_info(call, vm);
}

static void api_list_vms(struct ttrpc_call *call, const ProtobufCMessage *msg, void *opaque)
{
	struct daemon *d = opaque;
	const struct ttrpc_peer *peer = ttrpc_call_peer(call);
	Virtmgr__V1__ListVmsResponse resp = VIRTMGR__V1__LIST_VMS_RESPONSE__INIT;
	unsigned n = vm_count(d), i = 0;
	cleanup_free Virtmgr__V1__VmInfo *infos = NULL;
	cleanup_free Virtmgr__V1__VmInfo **ptrs = NULL;
	cleanup_free Virtmgr__V1__VmUsage *usages = NULL;

	if (!api_allowed(d, call))
		return;
	infos = xcalloc(n ? n : 1, sizeof(*infos));
	usages = xcalloc(n ? n : 1, sizeof(*usages));
	ptrs = xcalloc(n ? n : 1, sizeof(*ptrs));
	for (struct vm *vm = vm_next(d, NULL); vm && i < n; vm = vm_next(d, vm)) {
		if (!vm_visible_to(vm, peer))
			continue;
		virtmgr__v1__vm_info__init(&infos[i]);
		vm_fill_info(vm, &infos[i]);
		vm_stats_fill_usage(vm, &usages[i], &infos[i]);
		ptrs[i] = &infos[i];
		i++;
	}
	resp.n_vms = i;
	resp.vms = ptrs;
	ttrpc_call_reply(call, &resp.base, NULL, 0);
}

static void api_watch_vm(struct ttrpc_call *call, const ProtobufCMessage *msg, void *opaque)
{
	const Virtmgr__V1__WatchVmRequest *req = (const void *)msg;
	struct daemon *d = opaque;
	struct vm *vm;

	if (!ttrpc_call_is_stream(call)) {
		ttrpc_call_fail(call, VM_INVALID_ARGUMENT,
				"WatchVm streams events: send its Request with flag remote-closed (0x1)");
		return;
	}
	if (!api_allowed(d, call) || !(vm = api_find(d, call, req->vm)))
		return;
	vm_watch(vm, call, req->logs);
}

static void api_wait_vm(struct ttrpc_call *call, const ProtobufCMessage *msg, void *opaque)
{
	const Virtmgr__V1__WaitVmRequest *req = (const void *)msg;
	struct daemon *d = opaque;
	struct vm *vm;

	if (!api_allowed(d, call) || !(vm = api_find(d, call, req->vm)))
		return;
	if ((unsigned)req->state > VIRTMGR__V1__VM_STATE__VM_STATE_DEAD) {
		ttrpc_call_fail(call, VM_INVALID_ARGUMENT, "state: %d is not a VmState", (int)req->state);
		return;
	}
	vm_wait(vm, req->state, req->timeout_ms, call);
}

static void api_open_log(struct ttrpc_call *call, const ProtobufCMessage *msg, void *opaque)
{
	const Virtmgr__V1__OpenLogRequest *req = (const void *)msg;
	static const char *const files[] = { "console.log", "guest.log", "qemu.log" };
	Virtmgr__V1__VmInfo info = VIRTMGR__V1__VM_INFO__INIT;
	Virtmgr__V1__OpenLogResponse resp = VIRTMGR__V1__OPEN_LOG_RESPONSE__INIT;
	Virtmgr__V1__FdRef refs[TTRPC_MAX_FDS], *older[TTRPC_MAX_FDS];
	struct daemon *d = opaque;
	cleanup_free char *path = NULL;
	struct vm_error err = { 0 };
	int fds[TTRPC_MAX_FDS];
	struct vm *vm;
	unsigned keep;
	int n;

	if (!api_allowed(d, call) || !(vm = api_find(d, call, req->vm)))
		return;
	if ((unsigned)req->kind >= ARRAY_SIZE(files)) {
		ttrpc_call_fail(call, VM_INVALID_ARGUMENT, "kind: %d is not a LogKind", (int)req->kind);
		return;
	}
	vm_fill_info(vm, &info);
	if (!*info.run_dir) {
		ttrpc_call_fail(call, VM_FAILED_PRECONDITION, "vm %s is dead: its run directory is gone", info.id);
		return;
	}
	path = xasprintf("%s/%s", info.run_dir, files[req->kind]);
	/* the rotated files too, oldest first, so a reader sees what the bound kept */
	keep = MIN(d->cfg.log_limits.keep, (unsigned)TTRPC_MAX_FDS - 1);
	n = logfile_open_all(path, keep, fds, &err);
	if (n < 0) {
		vm_error_prefix(&err, "vm %s", info.id);
		api_fail(call, &err);
		return;
	}
	for (int i = 0; i < n; i++) {
		virtmgr__v1__fd_ref__init(&refs[i]);
		refs[i].index = (uint32_t)i;
		older[i] = &refs[i];
	}
	resp.fd = &refs[n - 1];
	resp.n_older = (size_t)n - 1;
	resp.older = older;
	ttrpc_call_reply(call, &resp.base, fds, (size_t)n);
}

static void api_connect_vsock(struct ttrpc_call *call, const ProtobufCMessage *msg, void *opaque)
{
	const Virtmgr__V1__ConnectVsockRequest *req = (const void *)msg;
	struct daemon *d = opaque;
	struct vm_error err = { 0 };
	struct vm *vm;

	if (!api_allowed(d, call) || !(vm = api_find(d, call, req->vm)))
		return;
	if (vm_connect_vsock(vm, req->port, call, &err) < 0)
		api_fail(call, &err);
}

static void api_attach_console(struct ttrpc_call *call, const ProtobufCMessage *msg, void *opaque)
{
	const Virtmgr__V1__VmRef *req = (const void *)msg;
	Virtmgr__V1__AttachConsoleResponse resp = VIRTMGR__V1__ATTACH_CONSOLE_RESPONSE__INIT;
	Virtmgr__V1__FdRef ref = VIRTMGR__V1__FD_REF__INIT;
	struct daemon *d = opaque;
	struct vm_error err = { 0 };
	struct vm *vm;
	int fd;

	if (!api_allowed(d, call) || !(vm = api_find(d, call, req->vm)))
		return;
	if (vm_attach_console(vm, &fd, &err) < 0) {
		api_fail(call, &err);
		return;
	}
	resp.fd = &ref;
	ttrpc_call_reply(call, &resp.base, &fd, 1);
}

static void api_allocate_instance_id(struct ttrpc_call *call, const ProtobufCMessage *msg, void *opaque)
{
	Virtmgr__V1__AllocateInstanceIdResponse resp = VIRTMGR__V1__ALLOCATE_INSTANCE_ID_RESPONSE__INIT;
	uint8_t id[64];
	size_t got = 0;

	while (got < sizeof(id)) {
		ssize_t n = getrandom(id + got, sizeof(id) - got, 0);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			struct vm_error err = { 0 };

			vm_error_errno(&err, errno, "getrandom");
			api_fail(call, &err);
			return;
		}
		got += (size_t)n;
	}
	resp.instance_id.data = id;
	resp.instance_id.len = sizeof(id);
	ttrpc_call_reply(call, &resp.base, NULL, 0);
}

static void api_get_daemon_info(struct ttrpc_call *call, const ProtobufCMessage *msg, void *opaque)
{
	/* getpid() is a system call every time; the daemon's pid does not change */
	static pid_t self;
	struct daemon *d = opaque;
	Virtmgr__V1__DaemonInfo info = VIRTMGR__V1__DAEMON_INFO__INIT;
	Virtmgr__V1__ServiceVmInfo svm_info = VIRTMGR__V1__SERVICE_VM_INFO__INIT;
	char range[32], reason[128];
	uint32_t lo = 0, hi = 0;

	info.version = PACKAGE_VERSION;
	info.mode = d->cfg.early ? "early" : "regular";
	info.hypervisor = (char *)d->accel;
	info.hypervisor_reason = d->accel_reason;
	info.vsock_mode = (char *)d->vsock_mode;
	info.cid_min = d->cfg.cid_min;
	info.cid_max = d->cfg.cid_max;
	info.n_features = ARRAY_SIZE(api_features);
	info.features = (char **)api_features;
	if (!self)
		self = getpid();
	info.pid = (int32_t)self;
	info.run_dir = (char *)d->cfg.run_dir;
	info.vm_count = d->nvms_alive;
	info.connection_count = ttrpc_server_conn_count(d->api);
	/* no pool where VMs are not sandboxed (not root, or early mode) */
	if (d->uids)
		uidpool_range(d->uids, &lo, &hi);
	snprintf(range, sizeof(range), "%" PRIu32 "-%" PRIu32, lo, hi);
	info.vm_sandbox = d->sandboxed && d->uids != NULL;
	info.vm_uid_range = d->sandboxed ? range : "";
	if (d->sandboxed)
		snprintf(reason, sizeof(reason), "uid range %s, no capabilities, seccomp (virtmgr-vsock)", range);
	else
		snprintf(reason, sizeof(reason), "not root: VMs run as uid %u, like the daemon", (unsigned)geteuid());
	info.vm_sandbox_reason = reason;
	if (d->servicevm) {
		info.service_vm = &svm_info;
		servicevm_fill_info(d->servicevm, &svm_info);
	}
	ttrpc_call_reply(call, &info.base, NULL, 0);
}

static void api_is_feature_enabled(struct ttrpc_call *call, const ProtobufCMessage *msg, void *opaque)
{
	const Virtmgr__V1__IsFeatureEnabledRequest *req = (const void *)msg;
	Virtmgr__V1__IsFeatureEnabledResponse resp = VIRTMGR__V1__IS_FEATURE_ENABLED_RESPONSE__INIT;

	for (size_t i = 0; i < ARRAY_SIZE(api_features); i++)
		if (req->feature && !strcmp(req->feature, api_features[i]))
			resp.enabled = true;
	ttrpc_call_reply(call, &resp.base, NULL, 0);
}

static void api_pause(struct ttrpc_call *call, const Virtmgr__V1__VmRef *req, struct daemon *d, bool pause)
{
	struct vm_error err = { 0 };
	struct vm *vm;

	if (!api_allowed(d, call) || !(vm = api_find(d, call, req->vm)))
		return;
	if (vm_pause(vm, pause, &err) < 0) {
		api_fail(call, &err);
		return;
	}
	reply_info(call, vm);
}

static void api_suspend_vm(struct ttrpc_call *call, const ProtobufCMessage *msg, void *opaque)
{
	api_pause(call, (const void *)msg, opaque, true);
}

static void api_resume_vm(struct ttrpc_call *call, const ProtobufCMessage *msg, void *opaque)
{
	api_pause(call, (const void *)msg, opaque, false);
}

/* ---- disk images (server/diskstore.c does the work and answers) ---- */

/* The image store exists in regular mode only; the caller's ids own what it makes. */
static bool api_disks(struct daemon *d, struct ttrpc_call *call, struct diskstore_caller *who)
{
	const struct ttrpc_peer *peer = ttrpc_call_peer(call);

	if (!api_allowed(d, call))
		return false;
	if (!d->disks) {
		ttrpc_call_fail(call, VM_FAILED_PRECONDITION,
				"this daemon has no disk image store (early mode: no /data yet)");
		return false;
	}
	who->uid = peer->uid;
	who->gid = peer->gid;
	return true;
}

static void api_create_disk_image(struct ttrpc_call *call, const ProtobufCMessage *msg, void *opaque)
{
	struct daemon *d = opaque;
	struct diskstore_caller who;

	if (api_disks(d, call, &who))
		diskstore_create(d->disks, call, &who, (const void *)msg);
}

static void api_resize_disk_image(struct ttrpc_call *call, const ProtobufCMessage *msg, void *opaque)
{
	struct daemon *d = opaque;
	struct diskstore_caller who;

	if (api_disks(d, call, &who))
		diskstore_resize(d->disks, call, &who, (const void *)msg);
}

static void api_list_disk_images(struct ttrpc_call *call, const ProtobufCMessage *msg, void *opaque)
{
	struct daemon *d = opaque;
	struct diskstore_caller who;

	(void)msg;
	if (api_disks(d, call, &who))
		diskstore_list(d->disks, call, &who);
}

static void api_delete_disk_image(struct ttrpc_call *call, const ProtobufCMessage *msg, void *opaque)
{
	struct daemon *d = opaque;
	struct diskstore_caller who;

	if (api_disks(d, call, &who))
		diskstore_delete(d->disks, call, &who, (const void *)msg);
}

static void api_import_disk_image(struct ttrpc_call *call, const ProtobufCMessage *msg, void *opaque)
{
	struct daemon *d = opaque;
	struct diskstore_caller who;

	if (api_disks(d, call, &who))
		diskstore_transfer(d->disks, call, &who, (const void *)msg, true);
}

static void api_export_disk_image(struct ttrpc_call *call, const ProtobufCMessage *msg, void *opaque)
{
	struct daemon *d = opaque;
	struct diskstore_caller who;

	if (api_disks(d, call, &who))
		diskstore_transfer(d->disks, call, &who, (const void *)msg, false);
}

static void api_initialize_writable_partition(struct ttrpc_call *call, const ProtobufCMessage *msg, void *opaque)
{
	struct daemon *d = opaque;
	struct diskstore_caller who;

	if (api_disks(d, call, &who))
		diskstore_init_partition(d->disks, call, &who, (const void *)msg);
}

/* The Service VM's platform key (server/attest.c); any caller allowed to use the daemon. */
static void api_get_platform_key(struct ttrpc_call *call, const ProtobufCMessage *msg, void *opaque)
{
	struct daemon *d = opaque;

	(void)msg;
	if (api_allowed(d, call))
		attest_platform_key(d->servicevm, call);
}

void api_register(struct daemon *d)
{
	static const struct {
		const char *method;
		const ProtobufCMessageDescriptor *input;
		ttrpc_handler_fn fn;
	} methods[] = {
		{ "CreateVm", &virtmgr__v1__create_vm_request__descriptor, api_create_vm },
		{ "StartVm", &virtmgr__v1__vm_ref__descriptor, api_start_vm },
		{ "StopVm", &virtmgr__v1__stop_vm_request__descriptor, api_stop_vm },
		{ "KillVm", &virtmgr__v1__vm_ref__descriptor, api_kill_vm },
		{ "GetVmInfo", &virtmgr__v1__vm_ref__descriptor, api_get_vm_info },
		{ "ListVms", &virtmgr__v1__list_vms_request__descriptor, api_list_vms },
		{ "WatchVm", &virtmgr__v1__watch_vm_request__descriptor, api_watch_vm },
		{ "WaitVm", &virtmgr__v1__wait_vm_request__descriptor, api_wait_vm },
		{ "ConnectVsock", &virtmgr__v1__connect_vsock_request__descriptor, api_connect_vsock },
		{ "OpenLog", &virtmgr__v1__open_log_request__descriptor, api_open_log },
		{ "AttachConsole", &virtmgr__v1__vm_ref__descriptor, api_attach_console },
		{ "AllocateInstanceId", &virtmgr__v1__allocate_instance_id_request__descriptor,
		  api_allocate_instance_id },
		{ "GetDaemonInfo", &virtmgr__v1__get_daemon_info_request__descriptor, api_get_daemon_info },
		{ "IsFeatureEnabled", &virtmgr__v1__is_feature_enabled_request__descriptor, api_is_feature_enabled },
		{ "SuspendVm", &virtmgr__v1__vm_ref__descriptor, api_suspend_vm },
		{ "ResumeVm", &virtmgr__v1__vm_ref__descriptor, api_resume_vm },
		{ "CreateDiskImage", &virtmgr__v1__create_disk_image_request__descriptor, api_create_disk_image },
		{ "ResizeDiskImage", &virtmgr__v1__resize_disk_image_request__descriptor, api_resize_disk_image },
		{ "ListDiskImages", &virtmgr__v1__list_disk_images_request__descriptor, api_list_disk_images },
		{ "DeleteDiskImage", &virtmgr__v1__disk_image_ref__descriptor, api_delete_disk_image },
		{ "ImportDiskImage", &virtmgr__v1__transfer_disk_image_request__descriptor, api_import_disk_image },
		{ "ExportDiskImage", &virtmgr__v1__transfer_disk_image_request__descriptor, api_export_disk_image },
		{ "InitializeWritablePartition", &virtmgr__v1__initialize_writable_partition_request__descriptor,
		  api_initialize_writable_partition },
		{ "GetPlatformKey", &virtmgr__v1__get_platform_key_request__descriptor, api_get_platform_key },
	};

	for (size_t i = 0; i < ARRAY_SIZE(methods); i++)
		ttrpc_server_add_method(d->api, SERVICE, methods[i].method, methods[i].input, methods[i].fn, d);
	if (d->crashes)
		crashstore_api_register(d->api, SERVICE, d->crashes);
}
