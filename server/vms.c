/* vms.c - VirtualMachineService (guest -> host) and the guest's
 * configuration device tree.
 *
 * Design. One ttrpc server serves VirtualMachineService for every VM; each
 * VM brings its own listening socket (vms_listen), tagged with the VM's
 * state, and each accepted connection is tagged the same way, so a handler
 * always knows which VM is calling from the connection alone: a guest can
 * only ever report about itself. Kernel-mode (AF_VSOCK) connections whose
 * source CID is not the VM's are closed at once. Everything from the guest
 * is untrusted: the handlers only move the VM's state forward through vm.c's
 * hooks (which ignore backward moves), log records are capped in number per
 * call and in size, and control characters in them are replaced so a guest
 * cannot forge lines in guest.log.
 *
 * When the default image is used, the agent must connect within the agent
 * timeout (--agent-timeout, default 120 s: TCG guests on a loaded host boot
 * slowly) or the VM is killed with
 * AGENT_FAILED_TO_CONNECT. If the agent's last connection closes while the
 * payload has not finished, the VM gets an error event a moment later (the
 * delay lets a normal power-off or a stop win the race): the agent died.
 */
#include "config.h"
#include "server/vms.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "lib/log.h"
#include "lib/ttrpc.h"
#include "server/fdtconfig.h"
#include "server/vm.h"

#define VMS_LOST_DELAY_S 2.0
#define VMS_MAX_CONNS 4

struct vms_conn {
	struct vms_conn *next;
	struct vms_vm *v;
	struct ttrpc_conn *conn;
};

struct vms_vm {
	struct vm *vm;
	bool default_image;
	char **args, **env;
	size_t nargs, nenv;
	char *cwd;
	bool has_instance_id;
	uint8_t instance_id[64];
	bool debug;
	char *config_path;
	struct ttrpc_listener *listener;
	struct vms_conn *conns;
	unsigned nconns;
	bool connected_once;
	ev_timer agent_timer, lost_timer;
	struct ev_loop *loop;
};

static struct ttrpc_server *vms_server;
static uint32_t agent_timeout_ms = VMS_DEFAULT_AGENT_TIMEOUT_MS;

void vms_set_agent_timeout(uint32_t ms)
{
	agent_timeout_ms = ms;
}

static char **strv_dup(char *const *v, size_t n)
{
	char **out = xcalloc(n + 1, sizeof(*out));

	for (size_t i = 0; i < n; i++)
		out[i] = xstrdup(v[i]);
	return out;
}

static void strv_free(char **v)
{
	for (char **p = v; p && *p; p++)
		free(*p);
	free(v);
}

struct vms_vm *vms_vm_new(const Virtmgr__V1__VmConfig *c, bool default_image)
{
	struct vms_vm *v = xzalloc(sizeof(*v));

	v->default_image = default_image;
	if (!c)
		return v;       /* a VM adopted after a restart: it is configured already */
	v->args = strv_dup(c->payload_args, c->n_payload_args);
	v->nargs = c->n_payload_args;
	v->env = strv_dup(c->payload_env, c->n_payload_env);
	v->nenv = c->n_payload_env;
	v->cwd = c->payload_cwd && *c->payload_cwd ? xstrdup(c->payload_cwd) : NULL;
	if (c->instance_id.len == sizeof(v->instance_id)) {
		memcpy(v->instance_id, c->instance_id.data, sizeof(v->instance_id));
		v->has_instance_id = true;
	}
	v->debug = c->debug;
	return v;
}

void vms_vm_free(struct vms_vm *v)
{
	if (!v)
		return;
	if (v->vm)
		vms_close(v->vm);
	strv_free(v->args);
	strv_free(v->env);
	free(v->cwd);
	free(v->config_path);
	free(v);
}

int vms_prepare(struct vm *vm, struct vms_vm *v, const char **path, struct vm_error *err)
{
	Virtmgr__V1__VmInfo info = VIRTMGR__V1__VM_INFO__INIT;
	struct fdtconfig fc = { 0 };
	cleanup_free void *blob = NULL;
	const char *trunc = getenv("VIRTMGR_TEST_CONFIG_TRUNCATE");
	size_t len;

	v->vm = vm;
	vm_fill_info(vm, &info);
	fc.vm_id = info.id;
	fc.name = info.name;
	fc.cid = info.cid;
	fc.instance_id = v->has_instance_id ? v->instance_id : NULL;
	fc.payload_args = v->args;
	fc.n_payload_args = v->nargs;
	fc.payload_env = v->env;
	fc.n_payload_env = v->nenv;
	fc.payload_cwd = v->cwd;
	fc.agent_port = VIRTMGR_AGENT_PORT;
	fc.host_port = info.cid;
	fc.debug = v->debug;
	if (fdtconfig_build(&fc, &blob, &len, err) < 0)
		return -1;
	if (trunc && *trunc) {
		size_t n = strtoul(trunc, NULL, 10);

		log_warn("vm %s: VIRTMGR_TEST_CONFIG_TRUNCATE: handing the guest %zu of %zu config bytes", info.id,
			 MIN(n, len), len);
		len = MIN(n, len);
	}
	free(v->config_path);
	v->config_path = xasprintf("%s/config.dtb", vm_run_dir(vm));
	if (write_file_atomic(v->config_path, blob, len, 0600, err) < 0)
		return vm_error_prefix(err, "vm %s: guest configuration", info.id);
	*path = v->config_path;
	return 0;
}

/* ---------------------------------------------------------------- handlers */

static struct vms_vm *call_vm(struct ttrpc_call *call)
{
	struct vms_conn *c = ttrpc_conn_get_data(ttrpc_call_conn(call));

	return c ? c->v : NULL;
}

static void reply_empty(struct ttrpc_call *call)
{
	Virtmgr__V1__Empty empty = VIRTMGR__V1__EMPTY__INIT;

	ttrpc_call_reply(call, &empty.base, NULL, 0);
}

#define VMS_HANDLER_PROLOGUE                                                        \
	struct vms_vm *v = call_vm(call);                                            \
	if (!v || !v->vm) {                                                          \
		ttrpc_call_fail(call, VM_FAILED_PRECONDITION, "the VM is gone"); \
		return;                                                              \
	}

static void on_started(struct ttrpc_call *call, const ProtobufCMessage *msg, void *opaque)
{
	VMS_HANDLER_PROLOGUE
	vm_guest_started(v->vm);
	reply_empty(call);
}

static void on_ready(struct ttrpc_call *call, const ProtobufCMessage *msg, void *opaque)
{
	VMS_HANDLER_PROLOGUE
	vm_guest_ready(v->vm);
	reply_empty(call);
}

static void on_finished(struct ttrpc_call *call, const ProtobufCMessage *msg, void *opaque)
{
	const Virtmgr__V1__NotifyPayloadFinishedRequest *req = (const void *)msg;

	VMS_HANDLER_PROLOGUE
	if (req->exit_code < 0 || req->exit_code > 255) {
		ttrpc_call_fail(call, VM_INVALID_ARGUMENT, "exit_code: %d is outside 0..255", req->exit_code);
		return;
	}
	vm_guest_finished(v->vm, req->exit_code);
	reply_empty(call);
}

/* A copy of @s cut to @max bytes with control characters (but tab) as '?'. */
static char *sanitize(const char *s, size_t max)
{
	char *out = xstrndup(s ? s : "", max);

	for (char *p = out; *p; p++)
		if (((unsigned char)*p < 0x20 && *p != '\t') || *p == 0x7f)
			*p = '?';
	return out;
}

static void on_error(struct ttrpc_call *call, const ProtobufCMessage *msg, void *opaque)
{
	const Virtmgr__V1__NotifyErrorRequest *req = (const void *)msg;
	cleanup_free char *text = NULL;

	VMS_HANDLER_PROLOGUE
	text = sanitize(req->message, 400);
	vm_guest_error(v->vm, req->code, text);
	reply_empty(call);
}

static void on_log(struct ttrpc_call *call, const ProtobufCMessage *msg, void *opaque)
{
	const Virtmgr__V1__ForwardLogRequest *req = (const void *)msg;

	VMS_HANDLER_PROLOGUE
	if (req->n_records > VMS_MAX_LOG_RECORDS) {
		ttrpc_call_fail(call, VM_RESOURCE_EXHAUSTED, "records: %zu exceed %u per call", req->n_records,
				VMS_MAX_LOG_RECORDS);
		return;
	}
	for (size_t i = 0; i < req->n_records && v->vm; i++) {
		const Virtmgr__V1__LogRecord *r = req->records[i];
		cleanup_free char *source = sanitize(r->source, 32);
		cleanup_free char *text = sanitize(r->message, VMS_MAX_LOG_MESSAGE);

		vm_guest_log(v->vm, r->timestamp_ns, r->priority > 191 ? 191 : r->priority, source, text);
	}
	reply_empty(call);
}

/* ---------------------------------------------------------------- connections */

static void agent_timeout_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct vms_vm *v = w->data;
	char msg[160];

	snprintf(msg, sizeof(msg), "the guest agent did not connect to VirtualMachineService within %.1f s",
		 agent_timeout_ms / 1000.0);
	log_warn("vm %s: %s", vm_id(v->vm), msg);
	vm_fail(v->vm, VIRTMGR__V1__DEATH_REASON__DEATH_REASON_AGENT_FAILED_TO_CONNECT, msg);
}

static void lost_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct vms_vm *v = w->data;
	Virtmgr__V1__VmState st = vm_state(v->vm);

	if (v->nconns || st >= VIRTMGR__V1__VM_STATE__VM_STATE_FINISHED ||
	    st < VIRTMGR__V1__VM_STATE__VM_STATE_STARTING)
		return;
	vm_guest_error(v->vm, VIRTMGR__V1__ERROR_CODE__ERROR_CODE_UNKNOWN,
		       "the guest agent's connection closed before the payload finished (the agent died)");
}

static void conn_open(struct ttrpc_conn *conn, void *opaque)
{
	struct ttrpc_listener *l = ttrpc_conn_listener(conn);
	struct vms_vm *v = l ? ttrpc_listener_get_data(l) : NULL;
	const struct ttrpc_peer *peer = ttrpc_conn_peer(conn);
	struct vms_conn *c;

	if (!v || !v->vm) {
		ttrpc_conn_close(conn);
		return;
	}
	if (peer->family == AF_VSOCK && peer->cid != vm_cid(v->vm)) {
		log_warn("vm %s: VirtualMachineService: refusing a connection from CID %u (the VM is CID %u)",
			 vm_id(v->vm), peer->cid, vm_cid(v->vm));
		ttrpc_conn_close(conn);
		return;
	}
	if (v->nconns >= VMS_MAX_CONNS) {
		log_warn("vm %s: VirtualMachineService: more than %u agent connections, refusing one", vm_id(v->vm),
			 VMS_MAX_CONNS);
		ttrpc_conn_close(conn);
		return;
	}
	c = xzalloc(sizeof(*c));
	c->v = v;
	c->conn = conn;
	c->next = v->conns;
	v->conns = c;
	v->nconns++;
	ttrpc_conn_set_data(conn, c);
	if (ev_is_active(&v->agent_timer))
		ev_timer_stop(v->loop, &v->agent_timer);
	if (ev_is_active(&v->lost_timer))
		ev_timer_stop(v->loop, &v->lost_timer);
	if (!v->connected_once)
		log_info("vm %s: guest agent connected", vm_id(v->vm));
	v->connected_once = true;
	vm_guest_connected(v->vm);
}

static void conn_close(struct ttrpc_conn *conn, void *opaque)
{
	struct vms_conn *c = ttrpc_conn_get_data(conn);
	struct vms_vm *v;

	if (!c)
		return;
	ttrpc_conn_set_data(conn, NULL);
	v = c->v;
	for (struct vms_conn **pp = &v->conns; *pp; pp = &(*pp)->next)
		if (*pp == c) {
			*pp = c->next;
			v->nconns--;
			break;
		}
	free(c);
	if (!v->nconns && v->vm && v->listener) {
		ev_timer_init(&v->lost_timer, lost_cb, VMS_LOST_DELAY_S, 0);
		v->lost_timer.data = v;
		ev_timer_start(v->loop, &v->lost_timer);
	}
}

static void server_init(struct daemon *d)
{
	struct ttrpc_limits lim = { .max_connections = 0, .max_streams_per_conn = 32, .max_out_bytes = 1u << 20 };

	if (vms_server)
		return;
	vms_server = ttrpc_server_new(d->loop);
	ttrpc_server_set_limits(vms_server, &lim);
	ttrpc_server_set_conn_callbacks(vms_server, conn_open, conn_close, NULL);
	ttrpc_server_add_method(vms_server, VMS_SERVICE, "NotifyPayloadStarted", &virtmgr__v1__empty__descriptor,
				on_started, NULL);
	ttrpc_server_add_method(vms_server, VMS_SERVICE, "NotifyPayloadReady", &virtmgr__v1__empty__descriptor,
				on_ready, NULL);
	ttrpc_server_add_method(vms_server, VMS_SERVICE, "NotifyPayloadFinished",
				&virtmgr__v1__notify_payload_finished_request__descriptor, on_finished, NULL);
	ttrpc_server_add_method(vms_server, VMS_SERVICE, "NotifyError", &virtmgr__v1__notify_error_request__descriptor,
				on_error, NULL);
	ttrpc_server_add_method(vms_server, VMS_SERVICE, "ForwardLog", &virtmgr__v1__forward_log_request__descriptor,
				on_log, NULL);
}

int vms_listen(struct daemon *d, struct vm *vm, int fd, struct vm_error *err)
{
	struct vms_vm *v = vm_vms(vm);

	if (!v) {
		close(fd);
		return vm_error_set(err, VM_INTERNAL, "vm %s: no guest agent state", vm_id(vm));
	}
	server_init(d);
	v->vm = vm;
	v->loop = d->loop;
	if (v->listener) {
		ttrpc_listener_close(v->listener);
		v->listener = NULL;
	}
	v->listener = ttrpc_server_listen_fd(vms_server, fd, err);
	if (!v->listener) {
		close(fd);
		return vm_error_prefix(err, "vm %s: VirtualMachineService listener", vm_id(vm));
	}
	ttrpc_listener_set_data(v->listener, v);
	if (v->default_image && agent_timeout_ms && !v->connected_once) {
		ev_timer_init(&v->agent_timer, agent_timeout_cb, agent_timeout_ms / 1000.0, 0);
		v->agent_timer.data = v;
		ev_timer_start(d->loop, &v->agent_timer);
	}
	return 0;
}

void vms_close(struct vm *vm)
{
	struct vms_vm *v = vm_vms(vm);

	if (!v || !v->loop)
		return;
	if (ev_is_active(&v->agent_timer))
		ev_timer_stop(v->loop, &v->agent_timer);
	if (ev_is_active(&v->lost_timer))
		ev_timer_stop(v->loop, &v->lost_timer);
	if (v->listener) {
		ttrpc_listener_close(v->listener);
		v->listener = NULL;
	}
	while (v->conns) {
		struct vms_conn *c = v->conns;

		v->conns = c->next;
		v->nconns--;
		ttrpc_conn_set_data(c->conn, NULL);
		ttrpc_conn_close(c->conn);
		free(c);
	}
}
