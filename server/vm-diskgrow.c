/* vm-diskgrow.c - online resize of a store image that a running VM uses.
 *
 * Design. ResizeDiskImage of an image in use reaches here from the image
 * store (diskstore_set_online_grow()) with the image marked busy. Two steps,
 * both asynchronous on the loop:
 *   1. QMP block_resize of the VM's drive "diskN": QEMU grows the file
 *      through its own fd (raw: ftruncate; qcow2: its header) and tells the
 *      guest's virtio-blk driver the new capacity;
 *   2. Agent.StorageGrowFilesystem {label, size}: vmagent waits until the
 *      device shows the new size and grows the ext4 mounted from it with the
 *      kernel's EXT4_IOC_RESIZE_FS (no e2fsprogs in the guest).
 * The call is answered with the image's new DiskImage, or with the step
 * that failed (a qcow2 or a disk nobody mounted still grows: only the
 * device then). The VM is looked up by id at every step, so a VM that dies
 * meanwhile only fails the call; the image store is told in every case
 * (diskstore_online_done()), so the image is never left busy.
 */
#include "config.h"
#include "server/vm-diskgrow.h"

#include <inttypes.h>
#include <json-c/json.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "lib/log.h"
#include "server/diskstore.h"
#include "server/fdtconfig.h"
#include "server/vm-priv.h"

#define GROW_AGENT_SERVICE "virtmgr.v1.Agent"
#define GROW_TIMEOUT_S 30.0

struct grow_job {
	struct daemon *d;
	struct ttrpc_call *call; /* NULL once the client went away */
	uid_t owner;
	char name[65];
	char vm_id[13];
	char label[QEMU_DISK_LABEL_MAX + 1];
	uint64_t size;
	struct vsock_host_conn *connecting;
	struct ttrpc_conn *conn;
	bool closing;
};

static struct vm *grow_vm(struct grow_job *g)
{
	for (struct vm *vm = vm_next(g->d, NULL); vm; vm = vm_next(g->d, vm))
		if (!strcmp(vm->id, g->vm_id))
			return vm;
	return NULL;
}

static void grow_cancel_cb(struct ttrpc_call *call, void *opaque)
{
	struct grow_job *g = opaque;

	(void)call;
	g->call = NULL; /* the work goes on; nobody is told */
}

static void grow_finish(struct grow_job *g, const struct vm_error *err)
{
	struct ttrpc_conn *conn = g->conn;

	if (g->call)
		ttrpc_call_set_cancel(g->call, NULL, NULL);
	diskstore_online_done(g->d->disks, g->call, g->owner, g->name, err);
	if (err && err->code)
		log_info("disk image %s of uid %u: online resize for VM %s failed: %s", g->name, (unsigned)g->owner,
			 g->vm_id, err->message);
	g->conn = NULL;
	if (conn) {
		g->closing = true;
		ttrpc_conn_close(conn);
	}
	free(g);
}

static void grow_fail(struct grow_job *g, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void grow_fail(struct grow_job *g, int code, const char *fmt, ...)
{
	struct vm_error err = { 0 };
	va_list ap;

	err.code = code;
	va_start(ap, fmt);
	vsnprintf(err.message, sizeof(err.message), fmt, ap);
	va_end(ap);
	grow_finish(g, &err);
}

static void grow_agent_reply(const struct vm_error *status, const uint8_t *payload, size_t len, void *opaque)
{
	struct grow_job *g = opaque;
	Virtmgr__V1__StorageGrowResponse *resp;

	if (g->closing)
		return;
	if (status->code == VM_UNIMPLEMENTED) {
		grow_fail(g, VM_FAILED_PRECONDITION,
			  "disk image %s grew to %" PRIu64
			  " bytes, but the guest agent of VM %s cannot grow file "
			  "systems (an older vmagent)",
			  g->name, g->size, g->vm_id);
		return;
	}
	if (status->code != VM_OK) {
		grow_fail(g, status->code, "disk image %s grew to %" PRIu64 " bytes, but VM %s: %s", g->name, g->size,
			  g->vm_id, status->message);
		return;
	}
	resp = virtmgr__v1__storage_grow_response__unpack(NULL, len, payload);
	if (resp) {
		log_info("disk image %s of uid %u grown online to %" PRIu64 " bytes in VM %s (%s%s%s)", g->name,
			 (unsigned)g->owner, g->size, g->vm_id,
			 resp->mount_point && *resp->mount_point ? "mounted on " : "not mounted",
			 resp->mount_point ? resp->mount_point : "", *resp->fstype ? ", file system grown" : "");
		protobuf_c_message_free_unpacked(&resp->base, NULL);
	}
	grow_finish(g, NULL);
}

static void grow_conn_closed(struct ttrpc_conn *conn, void *opaque)
{
	struct grow_job *g = opaque;

	if (g->conn == conn)
		g->conn = NULL;
}

static void grow_connected(void *opaque, int fd, const struct vm_error *err)
{
	struct grow_job *g = opaque;
	Virtmgr__V1__StorageGrowRequest req = VIRTMGR__V1__STORAGE_GROW_REQUEST__INIT;

	g->connecting = NULL;
	if (fd < 0) {
		grow_fail(g, VM_UNAVAILABLE,
			  "disk image %s grew to %" PRIu64 " bytes, but the guest agent of VM %s: %s", g->name, g->size,
			  g->vm_id, err->message);
		return;
	}
	g->conn = ttrpc_client_conn_new(g->d->loop, fd, grow_conn_closed, g);
	req.label = g->label;
	req.size = g->size;
	/* on failure grow_agent_reply() has run already */
	ttrpc_conn_call(g->conn, GROW_AGENT_SERVICE, "StorageGrowFilesystem", &req.base,
			(uint64_t)(GROW_TIMEOUT_S * 1e9), grow_agent_reply, g);
}

static void grow_qmp_done(void *opaque, struct json_object *ret, const char *error)
{
	struct grow_job *g = opaque;
	struct vm *vm = grow_vm(g);
	struct vm_error err = { 0 };

	(void)ret;
	if (error) {
		grow_fail(g, VM_FAILED_PRECONDITION, "cannot resize disk image %s in VM %s: QEMU: %s", g->name,
			  g->vm_id, error);
		return;
	}
	if (!vm || vm->state == VIRTMGR__V1__VM_STATE__VM_STATE_DEAD) {
		grow_fail(g, VM_FAILED_PRECONDITION, "disk image %s grew to %" PRIu64 " bytes, but VM %s is gone",
			  g->name, g->size, g->vm_id);
		return;
	}
	g->connecting = vsock_host_connect_async(g->d->loop, &vm->vsock, VIRTMGR_AGENT_PORT, GROW_TIMEOUT_S,
						 grow_connected, g, &err);
	if (!g->connecting)
		grow_fail(g, VM_UNAVAILABLE,
			  "disk image %s grew to %" PRIu64 " bytes, but the guest agent of VM %s: %s", g->name, g->size,
			  g->vm_id, err.message);
}

/* QMP block_resize of disk @index (drive "diskN") to @size bytes. */
static int grow_block_resize(struct qemu *q, size_t index, uint64_t size, struct grow_job *g)
{
	struct json_object *args = json_object_new_object();
	char dev[32];
	int r;

	snprintf(dev, sizeof(dev), "disk%zu", index);
	json_object_object_add(args, "device", json_object_new_string(dev));
	json_object_object_add(args, "size", json_object_new_int64((int64_t)size));
	r = qemu_qmp_call(q, "block_resize", args, grow_qmp_done, g);
	json_object_put(args);
	return r;
}

void vm_disk_grow(void *opaque, struct ttrpc_call *call, uid_t owner, const char *name, const char *vm_id,
		  uint64_t size)
{
	struct grow_job *g = xzalloc(sizeof(*g));
	struct vm *vm;
	size_t i;

	g->d = opaque;
	g->call = call;
	g->owner = owner;
	g->size = size;
	snprintf(g->name, sizeof(g->name), "%s", name);
	snprintf(g->vm_id, sizeof(g->vm_id), "%s", vm_id);
	ttrpc_call_set_cancel(call, grow_cancel_cb, g);
	vm = grow_vm(g);
	if (!vm) {
		grow_fail(g, VM_FAILED_PRECONDITION, "disk image %s is used by VM %s, which is gone", name, vm_id);
		return;
	}
	for (i = 0; i < vm->ndisks; i++)
		if (!strcmp(vm->disks[i].image, name) && vm->disks[i].image_owner == owner)
			break;
	if (i == vm->ndisks) {
		grow_fail(g, VM_FAILED_PRECONDITION, "disk image %s is reserved by VM %s but not attached to it", name,
			  vm_id);
		return;
	}
	if (vm->state != VIRTMGR__V1__VM_STATE__VM_STATE_STARTED &&
	    vm->state != VIRTMGR__V1__VM_STATE__VM_STATE_READY) {
		grow_fail(g, VM_FAILED_PRECONDITION,
			  "disk image %s is used by VM %s, which is %s: resize it once the VM runs or is dead", name,
			  vm_id, vm_state_name(vm->state));
		return;
	}
	if (vm->disks[i].read_only) {
		grow_fail(g, VM_FAILED_PRECONDITION,
			  "disk image %s is attached read-only to VM %s: cannot resize it while the VM runs", name,
			  vm_id);
		return;
	}
	snprintf(g->label, sizeof(g->label), "%s", vm->disks[i].label);
	if (!vm->qemu || grow_block_resize(vm->qemu, i, size, g) < 0)
		grow_fail(g, VM_UNAVAILABLE, "cannot resize disk image %s in VM %s: QEMU's monitor is not connected",
			  name, vm_id);
}
