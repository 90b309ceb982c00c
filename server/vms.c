/* vms.c - VirtualMachineService (guest -> host) and the guest's
 * configuration device tree.
 *
 * Design. One ttrpc server serves VirtualMachineService for every VM; each
 * VM brings its own listening socket (vms_listen), tagged with the VM's
 * state, and each accepted connection is tagged the same way, so a handler
 * always knows which VM is calling from the connection alone: a guest can
 * only ever report about itself. Kernel-mode (AF_VSOCK) connections whose
 * source CID is not the VM's are closed at once.
 *
 * One agent connection per boot. AF_VSOCK needs no privilege in the guest,
 * so a payload running as an unprivileged user could open its own
 * connection to this port and report for the agent. The agent connects
 * before it starts such a payload (guest/vmagent/main.c) and keeps its
 * connection for the boot (it survives a pause), so the first connection
 * is the agent's: every later one, while or after it, is refused, counted
 * and said in the daemon's log and the VM's guest log, and never reaches
 * a handler. A daemon restarted under a running VM takes the first
 * connection after adoption (the agent reconnects within seconds); a
 * payload running as guest root can do all the agent can (docs/guest.md,
 * "Trust model"). Everything from the guest
 * is untrusted: a report reaches the VM core only through the struct
 * vms_events callbacks it gave (the core ignores backward moves), bad
 * values are refused with INVALID_ARGUMENT, log records are capped in
 * number per call and in size, and control characters in them are replaced
 * so a guest cannot forge lines in guest.log. Nothing here includes the VM
 * core: the server, the agent timeout and the VM's identity are given.
 *
 * When the default image is used, the agent must connect within the agent
 * timeout (--agent-timeout, default 120 s: TCG guests on a loaded host boot
 * slowly) or the VM is killed with
 * AGENT_FAILED_TO_CONNECT (failed(VMS_AGENT_TIMEOUT)). If the agent's last
 * connection closes and none comes back, the core hears failed(VMS_AGENT_LOST)
 * a moment later (the delay lets a normal power-off or a stop win the race)
 * and decides from the VM's state whether the agent died.
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
#include "server/rootfs.h"

#define VMS_LOST_DELAY_S 10.0
#define VMS_REFUSED_LOGGED 8 /* refused connections said one by one; then at powers of 2 */

struct vms_conn {
	struct vms_conn *next;
	struct vms_vm *v;
	struct ttrpc_conn *conn;
};

struct vms_server {
	struct ttrpc_server *srv;
	struct ev_loop *loop;
	uint32_t agent_timeout_ms;
};

struct vms_vm {
	struct vms_server *s;
	const struct vms_events *ev;
	void *opaque;
	char *id, *name, *run_dir;
	uint32_t cid;
	bool default_image;
	char **args, **env;
	size_t nargs, nenv;
	char *cwd;
	char **mounts; /* fdtconfig.h "mounts": 5 strings a mount */
	size_t nmounts;
	char **shares; /* tag, guest path, "ro"|"rw" per share; NULL-terminated */
	size_t nshares_str;
	char **root; /* fdtconfig.h "root": source, fstype, "ro"|"rw"; or NULL */
	char **network; /* fdtconfig.h "network"; NULL-terminated or NULL */
	size_t nnetwork;
	bool has_payload_user;
	uint32_t payload_uid, payload_gid;
	bool has_instance_id;
	uint8_t instance_id[64];
	bool debug;
	uint64_t crash_core_limit; /* VmConfig.crash_core_limit */
	char *config_path;
	struct ttrpc_listener *listener;
	struct vms_conn *conns;
	unsigned nconns;
	bool connected_once; /* the boot's agent connection was taken */
	uint64_t refused;    /* connections refused after it */
	ev_timer agent_timer, lost_timer;
	const struct vms_attest_ops *attest; /* server/attest.c, through the core */
	void *attest_opaque;
};

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

struct vms_vm *vms_vm_new(struct vms_server *s, const struct vms_identity *id, const Virtmgr__V1__VmConfig *c,
			  bool default_image, const struct vms_events *events, void *opaque)
{
	struct vms_vm *v = xzalloc(sizeof(*v));

	v->s = s;
	v->ev = events;
	v->opaque = opaque;
	v->id = xstrdup(id->id);
	v->name = xstrdup(id->name);
	v->run_dir = xstrdup(id->run_dir);
	v->cid = id->cid;
	v->default_image = default_image;
	if (!c)
		return v; /* a VM adopted after a restart: it is configured already */
	v->args = strv_dup(c->payload_args, c->n_payload_args);
	v->nargs = c->n_payload_args;
	v->env = strv_dup(c->payload_env, c->n_payload_env);
	v->nenv = c->n_payload_env;
	v->cwd = c->payload_cwd && *c->payload_cwd ? xstrdup(c->payload_cwd) : NULL;
	v->mounts = xcalloc(5 * c->n_mounts + 1, sizeof(*v->mounts));
	for (size_t i = 0; i < c->n_mounts; i++) {
		const Virtmgr__V1__Mount *m = c->mounts[i];

		v->mounts[5 * i] = xstrdup(m->source);
		v->mounts[5 * i + 1] = xstrdup(m->target);
		v->mounts[5 * i + 2] = xstrdup(m->fstype && *m->fstype ? m->fstype : "ext4");
		v->mounts[5 * i + 3] = xstrdup(m->read_only ? "ro" : "rw");
		v->mounts[5 * i + 4] = xstrdup(m->options ? m->options : "");
	}
	v->nmounts = c->n_mounts;
	if (c->payload_user) {
		v->has_payload_user = true;
		v->payload_uid = c->payload_user->uid;
		v->payload_gid = c->payload_user->gid;
	}
	if (c->instance_id.len == sizeof(v->instance_id)) {
		memcpy(v->instance_id, c->instance_id.data, sizeof(v->instance_id));
		v->has_instance_id = true;
	}
	v->debug = c->debug;
	v->crash_core_limit = c->crash_core_limit;
	/* the tags default as in vm-config.c: shareN */
	v->shares = xcalloc(3 * c->n_shares + 1, sizeof(*v->shares));
	for (size_t i = 0; i < c->n_shares; i++) {
		const Virtmgr__V1__Share *sh = c->shares[i];

		v->shares[3 * i] = sh->tag && *sh->tag ? xstrdup(sh->tag) : xasprintf("share%zu", i);
		v->shares[3 * i + 1] = xstrdup(sh->guest_path ? sh->guest_path : "");
		v->shares[3 * i + 2] = xstrdup(sh->read_only ? "ro" : "rw");
	}
	v->nshares_str = 3 * c->n_shares;
	v->root = rootfs_strings(c);
	return v;
}

void vms_vm_free(struct vms_vm *v)
{
	if (!v)
		return;
	vms_close(v);
	free(v->id);
	free(v->name);
	free(v->run_dir);
	strv_free(v->args);
	strv_free(v->env);
	strv_free(v->mounts);
	strv_free(v->shares);
	strv_free(v->root);
	strv_free(v->network);
	free(v->cwd);
	free(v->config_path);
	free(v);
}

void vms_vm_set_network(struct vms_vm *v, char **strings, size_t n)
{
	strv_free(v->network);
	v->network = strings;
	v->nnetwork = n;
}

int vms_prepare(struct vms_vm *v, const struct marker_key *key, const char **path, struct vm_error *err)
{
	struct fdtconfig fc = { 0 };
	cleanup_free void *blob = NULL;
	size_t len;
	int r;

	fc.vm_id = v->id;
	fc.name = v->name;
	fc.cid = v->cid;
	fc.instance_id = v->has_instance_id ? v->instance_id : NULL;
	fc.payload_args = v->args;
	fc.n_payload_args = v->nargs;
	fc.payload_env = v->env;
	fc.n_payload_env = v->nenv;
	fc.payload_cwd = v->cwd;
	fc.mounts = v->mounts;
	fc.n_mounts = v->nmounts;
	fc.has_payload_user = v->has_payload_user;
	fc.payload_uid = v->payload_uid;
	fc.payload_gid = v->payload_gid;
	fc.marker_key = key->bytes;
	fc.agent_port = VIRTMGR_AGENT_PORT;
	fc.host_port = v->cid;
	fc.debug = v->debug;
	fc.crash_core_limit = v->crash_core_limit;
	fc.shares = v->shares;
	fc.n_shares = v->nshares_str;
	fc.root = v->root;
	fc.network = v->network;
	fc.n_network = v->nnetwork;
	if (fdtconfig_build(&fc, &blob, &len, err) < 0)
		return -1;
#ifdef VIRTMGR_TEST_HOOKS
	{
		/* tests/integration/agent_guest.sh: a malformed tree reaches vmagent */
		const char *trunc = getenv("VIRTMGR_TEST_CONFIG_TRUNCATE");

		if (trunc && *trunc) {
			size_t n = strtoul(trunc, NULL, 10);

			log_warn("vm %s: VIRTMGR_TEST_CONFIG_TRUNCATE: handing the guest %zu of %zu config bytes",
				 v->id, MIN(n, len), len);
			len = MIN(n, len);
		}
	}
#endif
	free(v->config_path);
	v->config_path = xasprintf("%s/config.dtb", v->run_dir);
	/* the key is in it: 0600 in the daemon's run directory */
	r = write_file_atomic(v->config_path, blob, len, 0600, err);
	explicit_bzero(blob, len);
	if (r < 0)
		return vm_error_prefix(err, "vm %s: guest configuration", v->id);
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

#define VMS_HANDLER_PROLOGUE                                                     \
	struct vms_vm *v = call_vm(call);                                        \
	if (!v) {                                                                \
		ttrpc_call_fail(call, VM_FAILED_PRECONDITION, "the VM is gone"); \
		return;                                                          \
	}

static void on_started(struct ttrpc_call *call, const ProtobufCMessage *msg, void *opaque)
{
	VMS_HANDLER_PROLOGUE
	v->ev->started(v->opaque);
	reply_empty(call);
}

static void on_ready(struct ttrpc_call *call, const ProtobufCMessage *msg, void *opaque)
{
	VMS_HANDLER_PROLOGUE
	v->ev->ready(v->opaque);
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
	v->ev->finished(v->opaque, req->exit_code);
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
	v->ev->error(v->opaque, req->code, text);
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
	/* a callback may close @v: its connections then lose their data */
	for (size_t i = 0; i < req->n_records && call_vm(call) == v; i++) {
		const Virtmgr__V1__LogRecord *r = req->records[i];
		cleanup_free char *source = sanitize(r->source, 32);
		cleanup_free char *text = sanitize(r->message, VMS_MAX_LOG_MESSAGE);

		v->ev->log(v->opaque, r->timestamp_ns, r->priority > 191 ? 191 : r->priority, source, text);
	}
	reply_empty(call);
}

/* ---------------------------------------------------------------- connections */

static void on_extend(struct ttrpc_call *call, const ProtobufCMessage *msg, void *opaque)
{
	VMS_HANDLER_PROLOGUE
	(void)opaque;
	if (!v->attest) {
		ttrpc_call_fail(call, VM_FAILED_PRECONDITION, "attestation is not available for this VM");
		return;
	}
	v->attest->extend(v->attest_opaque, call, (const void *)msg);
}

static void on_attest(struct ttrpc_call *call, const ProtobufCMessage *msg, void *opaque)
{
	VMS_HANDLER_PROLOGUE
	(void)opaque;
	if (!v->attest) {
		ttrpc_call_fail(call, VM_FAILED_PRECONDITION, "attestation is not available for this VM");
		return;
	}
	v->attest->request(v->attest_opaque, call, (const void *)msg);
}

void vms_set_attest(struct vms_vm *v, const struct vms_attest_ops *ops, void *opaque)
{
	v->attest = ops;
	v->attest_opaque = opaque;
}

static void agent_timeout_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct vms_vm *v = w->data;
	char msg[160];

	snprintf(msg, sizeof(msg), "the guest agent did not connect to VirtualMachineService within %.1f s",
		 v->s->agent_timeout_ms / 1000.0);
	log_warn("vm %s: %s", v->id, msg);
	v->ev->failed(v->opaque, VMS_AGENT_TIMEOUT, msg);
}

static void lost_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct vms_vm *v = w->data;

	if (v->nconns)
		return;
	v->ev->failed(v->opaque, VMS_AGENT_LOST,
		      "the guest agent's connection closed before the payload finished (the agent died)");
}

/* A connection after the boot's agent connection: not the agent's. */
static void refuse(struct vms_vm *v, struct ttrpc_conn *conn)
{
	char msg[200];

	v->refused++;
	ttrpc_conn_close(conn);
	/* a payload may try in a loop: say the first ones, then at powers of two */
	if (v->refused > VMS_REFUSED_LOGGED && (v->refused & (v->refused - 1)))
		return;
	snprintf(msg, sizeof(msg),
		 "VirtualMachineService: refused connection #%llu: the agent's connection of this boot %s",
		 (unsigned long long)v->refused, v->nconns ? "is open" : "was closed");
	log_warn("vm %s: %s", v->id, msg);
	v->ev->log(v->opaque, now_real_ns(), VMS_LOG_DAEMON_WARNING, "virtmgrd", msg);
}

static void conn_open(struct ttrpc_conn *conn, void *opaque)
{
	struct ttrpc_listener *l = ttrpc_conn_listener(conn);
	struct vms_vm *v = l ? ttrpc_listener_get_data(l) : NULL;
	const struct ttrpc_peer *peer = ttrpc_conn_peer(conn);
	struct vms_conn *c;

	if (!v) {
		ttrpc_conn_close(conn);
		return;
	}
	if (peer->family == AF_VSOCK && peer->cid != v->cid) {
		log_warn("vm %s: VirtualMachineService: refusing a connection from CID %u (the VM is CID %u)", v->id,
			 peer->cid, v->cid);
		ttrpc_conn_close(conn);
		return;
	}
	if (v->connected_once) {
		refuse(v, conn);
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
		ev_timer_stop(v->s->loop, &v->agent_timer);
	if (ev_is_active(&v->lost_timer))
		ev_timer_stop(v->s->loop, &v->lost_timer);
	if (!v->connected_once)
		log_info("vm %s: guest agent connected", v->id);
	v->connected_once = true;
	v->ev->connected(v->opaque);
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
	if (!v->nconns && v->listener) {
		ev_timer_init(&v->lost_timer, lost_cb, VMS_LOST_DELAY_S, 0);
		v->lost_timer.data = v;
		ev_timer_start(v->s->loop, &v->lost_timer);
	}
}

struct vms_server *vms_server_new(struct ev_loop *loop, uint32_t agent_timeout_ms)
{
	struct ttrpc_limits lim = { .max_connections = 0, .max_streams_per_conn = 32, .max_out_bytes = 1u << 20 };
	struct vms_server *s = xzalloc(sizeof(*s));

	s->loop = loop;
	s->agent_timeout_ms = agent_timeout_ms;
	s->srv = ttrpc_server_new(loop);
	ttrpc_server_set_limits(s->srv, &lim);
	ttrpc_server_set_conn_callbacks(s->srv, conn_open, conn_close, NULL);
	ttrpc_server_add_method(s->srv, VMS_SERVICE, "NotifyPayloadStarted", &virtmgr__v1__empty__descriptor,
				on_started, NULL);
	ttrpc_server_add_method(s->srv, VMS_SERVICE, "NotifyPayloadReady", &virtmgr__v1__empty__descriptor, on_ready,
				NULL);
	ttrpc_server_add_method(s->srv, VMS_SERVICE, "NotifyPayloadFinished",
				&virtmgr__v1__notify_payload_finished_request__descriptor, on_finished, NULL);
	ttrpc_server_add_method(s->srv, VMS_SERVICE, "NotifyError", &virtmgr__v1__notify_error_request__descriptor,
				on_error, NULL);
	ttrpc_server_add_method(s->srv, VMS_SERVICE, "ForwardLog", &virtmgr__v1__forward_log_request__descriptor,
				on_log, NULL);
	ttrpc_server_add_method(s->srv, VMS_SERVICE, "ExtendMeasurement",
				&virtmgr__v1__extend_measurement_request__descriptor, on_extend, NULL);
	ttrpc_server_add_method(s->srv, VMS_SERVICE, "RequestAttestation",
				&virtmgr__v1__request_attestation_request__descriptor, on_attest, NULL);
	return s;
}

void vms_server_free(struct vms_server *s)
{
	if (!s)
		return;
	ttrpc_server_free(s->srv);
	free(s);
}

int vms_listen(struct vms_vm *v, int fd, struct vm_error *err)
{
	if (v->listener) {
		ttrpc_listener_close(v->listener);
		v->listener = NULL;
	}
	v->listener = ttrpc_server_listen_fd(v->s->srv, fd, err);
	if (!v->listener) {
		close(fd);
		return vm_error_prefix(err, "vm %s: VirtualMachineService listener", v->id);
	}
	ttrpc_listener_set_data(v->listener, v);
	if (v->default_image && v->s->agent_timeout_ms && !v->connected_once) {
		ev_timer_init(&v->agent_timer, agent_timeout_cb, v->s->agent_timeout_ms / 1000.0, 0);
		v->agent_timer.data = v;
		ev_timer_start(v->s->loop, &v->agent_timer);
	}
	return 0;
}

void vms_close(struct vms_vm *v)
{
	if (!v)
		return;
	if (ev_is_active(&v->agent_timer))
		ev_timer_stop(v->s->loop, &v->agent_timer);
	if (ev_is_active(&v->lost_timer))
		ev_timer_stop(v->s->loop, &v->lost_timer);
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

uint64_t vms_refused(const struct vms_vm *v)
{
	return v ? v->refused : 0;
}
