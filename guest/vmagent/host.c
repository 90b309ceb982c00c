/* host.c - vmagent's client of VirtualMachineService on the host.
 *
 * Design. The connection goes to host CID 2, port = host-port from the
 * configuration (= the guest's own CID, as AVF does), or to a Unix socket
 * given with --host-socket. Connecting is non-blocking and retried (200 ms,
 * then up to 1 s apart) until --connect-timeout; after that the agent gives
 * up on the host and runs on with the console markers alone. Once connected,
 * a lost connection (daemon restart, vsock device reset) is retried without
 * a deadline, up to 5 s apart. Reports
 * (started, ready, finished, errors) are queued in order while there is no
 * connection and sent as unary calls once there is one; a report whose call
 * fails because the connection broke goes back into the queue and the agent
 * reconnects. Log records are batched into ForwardLog calls of at most
 * HOST_LOG_BATCH records, one call in flight at a time, at most
 * HOST_LOG_QUEUE records buffered (the rest are counted and reported as
 * dropped), so a guest that logs faster than the host reads never grows the
 * agent's memory. agent_host_idle() tells the shutdown path when everything
 * was acknowledged.
 */
#include "config.h"

#include <errno.h>
#include <linux/vm_sockets.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "guest/vmagent/agent.h"
#include "lib/log.h"

#define HOST_SERVICE "virtmgr.v1.VirtualMachineService"
#define HOST_CALL_TIMEOUT_NS (10ull * 1000000000ull)
#define HOST_LOG_BATCH 64
#define HOST_LOG_QUEUE 1024
#define HOST_LOG_MSG_MAX 2048
#define HOST_LOG_DELAY_S 0.2
/* An empty ForwardLog when idle: a connection the host side dropped (the
 * vsock device is reset when the VM is paused) is noticed and re-made. */
#define HOST_HEARTBEAT_S 5.0

enum report_kind { REPORT_STARTED, REPORT_READY, REPORT_FINISHED, REPORT_ERROR, REPORT_EXTEND };

struct report {
	struct report *next;
	struct agent_host *h;
	enum report_kind kind;
	int code, signal;
	char *message;
	uint8_t data[64]; /* REPORT_EXTEND: REM index in code */
	size_t data_len;
};

struct agent_host {
	struct agent *a;
	struct ttrpc_conn *conn;
	int fd; /* connecting socket, -1 if none */
	ev_io connect_io;
	ev_timer retry_timer;
	double retry_s;
	uint64_t deadline_ns;
	bool gave_up;
	bool conn_broken; /* a call failed UNAVAILABLE: wait for on_close */
	bool connected_once;
	struct report *queue, **queue_tail;
	unsigned in_flight;
	Virtmgr__V1__LogRecord *logs[HOST_LOG_QUEUE];
	size_t nlogs;
	uint64_t dropped;
	bool log_in_flight;
	size_t log_sent; /* records in the call in flight */
	ev_timer log_timer;
	ev_timer heartbeat;
	void (*idle_cb)(struct agent *a);
	void (*settled_cb)(struct agent *a); /* once connected or given up */
};

static void host_connect(struct agent_host *h);
static void host_flush(struct agent_host *h);
static void heartbeat_cb(struct ev_loop *loop, ev_timer *w, int revents);

static void check_idle(struct agent_host *h)
{
	void (*cb)(struct agent * a) = h->idle_cb;

	if (cb && agent_host_idle(h)) {
		h->idle_cb = NULL;
		cb(h->a);
	}
}

bool agent_host_idle(const struct agent_host *h)
{
	if (h->gave_up)
		return true;
	return !h->queue && !h->in_flight && !h->nlogs && !h->log_in_flight;
}

/* The first connection is made or will never be: run what waited for it. */
static void settled(struct agent_host *h)
{
	void (*cb)(struct agent * a) = h->settled_cb;

	h->settled_cb = NULL;
	if (cb)
		cb(h->a);
}

void agent_host_on_settled(struct agent_host *h, void (*cb)(struct agent *a))
{
	h->settled_cb = cb;
	if (h->connected_once || h->gave_up)
		settled(h);
}

void agent_host_on_idle(struct agent_host *h, void (*cb)(struct agent *a))
{
	h->idle_cb = cb;
	/* logs still waiting for their timer go now */
	if (ev_is_active(&h->log_timer)) {
		ev_timer_stop(h->a->loop, &h->log_timer);
		host_flush(h);
	}
	check_idle(h);
}

static void give_up(struct agent_host *h, const char *why)
{
	struct ev_loop *loop = h->a->loop;

	agent_log(h->a, "cannot reach VirtualMachineService: %s; running without it", why);
	h->gave_up = true;
	if (ev_is_active(&h->retry_timer))
		ev_timer_stop(loop, &h->retry_timer);
	while (h->queue) {
		struct report *r = h->queue;

		h->queue = r->next;
		free(r->message);
		free(r);
	}
	h->queue_tail = &h->queue;
	for (size_t i = 0; i < h->nlogs; i++)
		protobuf_c_message_free_unpacked(&h->logs[i]->base, NULL);
	h->nlogs = 0;
	check_idle(h);
	settled(h);
}

static void schedule_retry(struct agent_host *h, const char *why)
{
	/* once the host was reached, it is only away (a daemon restart): keep trying */
	if (!h->connected_once && now_mono_ns() >= h->deadline_ns) {
		give_up(h, why);
		return;
	}
	log_debug("host connection: %s; retrying in %.1f s", why, h->retry_s);
	ev_timer_set(&h->retry_timer, h->retry_s, 0);
	ev_timer_start(h->a->loop, &h->retry_timer);
	h->retry_s = MIN(h->retry_s * 2, h->connected_once ? 5.0 : 1.0);
}

static void retry_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)loop;
	(void)revents;
	host_connect(w->data);
}

static void conn_closed(struct ttrpc_conn *conn, void *opaque)
{
	struct agent_host *h = opaque;

	(void)conn;
	h->conn = NULL;
	if (h->gave_up)
		return;
	agent_log(h->a, "VirtualMachineService connection closed; reconnecting");
	h->deadline_ns = now_mono_ns() + (uint64_t)(h->a->connect_timeout_s * 1e9);
	h->retry_s = 0.2;
	schedule_retry(h, "connection closed");
}

static void connected(struct agent_host *h, int fd)
{
	h->conn = ttrpc_client_conn_new(h->a->loop, fd, conn_closed, h);
	h->conn_broken = false;
	h->retry_s = 0.2;
	if (!h->connected_once)
		log_debug("connected to VirtualMachineService");
	h->connected_once = true;
	host_flush(h);
	settled(h);
}

static void connect_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct agent_host *h = w->data;
	int soerr = 0;
	socklen_t sl = sizeof(soerr);

	(void)revents;
	ev_io_stop(loop, w);
	if (getsockopt(h->fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) < 0)
		soerr = errno;
	if (soerr) {
		close(steal_fd(&h->fd));
		schedule_retry(h, strerror(soerr));
		return;
	}
	connected(h, steal_fd(&h->fd));
}

static void host_connect(struct agent_host *h)
{
	struct sockaddr_vm svm = { .svm_family = AF_VSOCK, .svm_cid = AGENT_HOST_CID };
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	struct sockaddr *sa;
	socklen_t salen;
	int fd;

	if (h->a->host_socket) {
		if (strlen(h->a->host_socket) >= sizeof(sun.sun_path)) {
			give_up(h, "--host-socket path too long");
			return;
		}
		strcpy(sun.sun_path, h->a->host_socket);
		sa = (struct sockaddr *)&sun;
		salen = sizeof(sun);
	} else {
		svm.svm_port = h->a->have_cfg ? h->a->cfg.host_port : h->a->cid;
		if (!svm.svm_port) {
			give_up(h, "the guest's CID is unknown (no configuration and no /dev/vsock)");
			return;
		}
		sa = (struct sockaddr *)&svm;
		salen = sizeof(svm);
	}
	fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		if (errno == EAFNOSUPPORT)
			give_up(h, strerror(errno));
		else
			schedule_retry(h, strerror(errno));
		return;
	}
	if (connect(fd, sa, salen) == 0) {
		connected(h, fd);
		return;
	}
	if (errno != EINPROGRESS) {
		int e = errno;

		close(fd);
		if (e == ENODEV || e == EAFNOSUPPORT || e == EPROTONOSUPPORT)
			give_up(h, strerror(e)); /* no vsock transport: waiting will not help */
		else
			schedule_retry(h, strerror(e));
		return;
	}
	h->fd = fd;
	ev_io_init(&h->connect_io, connect_cb, fd, EV_WRITE);
	h->connect_io.data = h;
	ev_io_start(h->a->loop, &h->connect_io);
}

struct agent_host *agent_host_new(struct agent *a)
{
	struct agent_host *h = xzalloc(sizeof(*h));

	h->a = a;
	h->fd = -1;
	h->queue_tail = &h->queue;
	h->retry_s = 0.2;
	h->deadline_ns = now_mono_ns() + (uint64_t)(a->connect_timeout_s * 1e9);
	ev_init(&h->retry_timer, retry_cb);
	h->retry_timer.data = h;
	ev_timer_init(&h->heartbeat, heartbeat_cb, HOST_HEARTBEAT_S, HOST_HEARTBEAT_S);
	h->heartbeat.data = h;
	ev_timer_start(a->loop, &h->heartbeat);
	host_connect(h);
	return h;
}

/* ---------------------------------------------------------------- reports */

static void enqueue(struct agent_host *h, struct report *r)
{
	r->next = NULL;
	*h->queue_tail = r;
	h->queue_tail = &r->next;
}

static void report_reply(const struct vm_error *status, const uint8_t *payload, size_t len, void *opaque)
{
	struct report *r = opaque;
	struct agent_host *h = r->h;

	(void)payload;
	(void)len;
	h->in_flight--;
	if (status->code == VM_UNAVAILABLE && !h->gave_up) {
		/* sent again after reconnecting, not on this connection */
		h->conn_broken = true;
		enqueue(h, r);
		return;
	}
	if (status->code)
		agent_log(h->a, "VirtualMachineService report failed: %s: %s", vm_status_name(status->code),
			  status->message);
	free(r->message);
	free(r);
	check_idle(h);
}

static void send_report(struct agent_host *h, struct report *r)
{
	Virtmgr__V1__Empty empty = VIRTMGR__V1__EMPTY__INIT;
	Virtmgr__V1__NotifyPayloadFinishedRequest fin = VIRTMGR__V1__NOTIFY_PAYLOAD_FINISHED_REQUEST__INIT;
	Virtmgr__V1__NotifyErrorRequest er = VIRTMGR__V1__NOTIFY_ERROR_REQUEST__INIT;
	Virtmgr__V1__ExtendMeasurementRequest ext = VIRTMGR__V1__EXTEND_MEASUREMENT_REQUEST__INIT;
	const ProtobufCMessage *msg = &empty.base;
	const char *method = "NotifyPayloadStarted";

	switch (r->kind) {
	case REPORT_STARTED:
		break;
	case REPORT_READY:
		method = "NotifyPayloadReady";
		break;
	case REPORT_FINISHED:
		method = "NotifyPayloadFinished";
		fin.exit_code = r->code;
		fin.signal = r->signal;
		msg = &fin.base;
		break;
	case REPORT_ERROR:
		method = "NotifyError";
		er.code = (Virtmgr__V1__ErrorCode)r->code;
		er.message = r->message;
		msg = &er.base;
		break;
	case REPORT_EXTEND:
		method = "ExtendMeasurement";
		ext.index = (uint32_t)r->code;
		ext.data.data = r->data;
		ext.data.len = r->data_len;
		msg = &ext.base;
		break;
	}
	h->in_flight++;
	/* on failure the callback has already run (and requeued or freed r) */
	ttrpc_conn_call(h->conn, HOST_SERVICE, method, msg, HOST_CALL_TIMEOUT_NS, report_reply, r);
}

static void log_reply(const struct vm_error *status, const uint8_t *payload, size_t len, void *opaque);

static void send_logs(struct agent_host *h)
{
	Virtmgr__V1__ForwardLogRequest req = VIRTMGR__V1__FORWARD_LOG_REQUEST__INIT;
	Virtmgr__V1__LogRecord drop = VIRTMGR__V1__LOG_RECORD__INIT;
	Virtmgr__V1__LogRecord *recs[HOST_LOG_BATCH + 1];
	char dropmsg[96];
	size_t n = MIN(h->nlogs, (size_t)HOST_LOG_BATCH);
	bool with_drop = false;

	if (!h->conn || h->conn_broken || h->log_in_flight || (!n && !h->dropped))
		return;
	memcpy(recs, h->logs, n * sizeof(recs[0]));
	if (h->dropped) {
		snprintf(dropmsg, sizeof(dropmsg), "vmagent: %llu log records dropped (host not keeping up)",
			 (unsigned long long)h->dropped);
		drop.timestamp_ns = now_real_ns();
		drop.priority = 4;
		drop.source = "vmagent";
		drop.message = dropmsg;
		recs[n] = &drop;
		with_drop = true;
		h->dropped = 0;
	}
	req.records = recs;
	req.n_records = n + (with_drop ? 1 : 0);
	h->log_in_flight = true;
	h->log_sent = n;
	ttrpc_conn_call(h->conn, HOST_SERVICE, "ForwardLog", &req.base, HOST_CALL_TIMEOUT_NS, log_reply, h);
}

static void log_reply(const struct vm_error *status, const uint8_t *payload, size_t len, void *opaque)
{
	struct agent_host *h = opaque;

	(void)payload;
	(void)len;
	h->log_in_flight = false;
	if (status->code == VM_UNAVAILABLE && !h->gave_up) {
		h->conn_broken = true;
		return; /* keep the records: sent again after reconnecting */
	}
	if (status->code)
		log_warn("ForwardLog failed: %s: %s", vm_status_name(status->code), status->message);
	for (size_t i = 0; i < h->log_sent && i < h->nlogs; i++)
		protobuf_c_message_free_unpacked(&h->logs[i]->base, NULL);
	if (h->log_sent <= h->nlogs) {
		memmove(h->logs, h->logs + h->log_sent, (h->nlogs - h->log_sent) * sizeof(h->logs[0]));
		h->nlogs -= h->log_sent;
	}
	h->log_sent = 0;
	if (h->nlogs >= HOST_LOG_BATCH || (h->nlogs && h->idle_cb))
		send_logs(h);
	else if (h->nlogs && !ev_is_active(&h->log_timer))
		ev_timer_start(h->a->loop, &h->log_timer);
	check_idle(h);
}

static void heartbeat_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct agent_host *h = w->data;
	Virtmgr__V1__ForwardLogRequest req = VIRTMGR__V1__FORWARD_LOG_REQUEST__INIT;

	if (h->gave_up) {
		ev_timer_stop(loop, w);
		return;
	}
	if (!h->conn || h->conn_broken || h->log_in_flight || h->nlogs || h->idle_cb)
		return;
	h->log_in_flight = true;
	h->log_sent = 0;
	ttrpc_conn_call(h->conn, HOST_SERVICE, "ForwardLog", &req.base, HOST_CALL_TIMEOUT_NS, log_reply, h);
}

static void log_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)loop;
	(void)revents;
	send_logs(w->data);
}

static void host_flush(struct agent_host *h)
{
	while (h->conn && !h->conn_broken && h->queue) {
		struct report *r = h->queue;

		h->queue = r->next;
		if (!h->queue)
			h->queue_tail = &h->queue;
		send_report(h, r);
	}
	send_logs(h);
}

static void report(struct agent_host *h, enum report_kind kind, int code, int signal, const char *message)
{
	struct report *r;

	if (h->gave_up)
		return;
	r = xzalloc(sizeof(*r));
	r->h = h;
	r->kind = kind;
	r->code = code;
	r->signal = signal;
	r->message = message ? xstrdup(message) : NULL;
	enqueue(h, r);
	host_flush(h);
}

void agent_host_extend(struct agent_host *h, unsigned index, const uint8_t *data, size_t len)
{
	struct report *r;

	if (h->gave_up)
		return;
	r = xzalloc(sizeof(*r));
	r->h = h;
	r->kind = REPORT_EXTEND;
	r->code = (int)index;
	r->data_len = MIN(len, sizeof(r->data));
	memcpy(r->data, data, r->data_len);
	enqueue(h, r);
	host_flush(h);
}

struct ttrpc_conn *agent_host_conn(struct agent_host *h)
{
	return h->conn && !h->conn_broken ? h->conn : NULL;
}

void agent_host_started(struct agent_host *h)
{
	report(h, REPORT_STARTED, 0, 0, NULL);
}

void agent_host_ready(struct agent_host *h)
{
	report(h, REPORT_READY, 0, 0, NULL);
}

void agent_host_finished(struct agent_host *h, int exit_code, int signal)
{
	report(h, REPORT_FINISHED, exit_code, signal, NULL);
}

void agent_host_error(struct agent_host *h, int code, const char *message)
{
	report(h, REPORT_ERROR, code, 0, message);
}

void agent_host_log(struct agent_host *h, uint64_t timestamp_ns, uint32_t priority, const char *source,
		    const char *message)
{
	Virtmgr__V1__LogRecord *rec;

	if (h->gave_up)
		return;
	if (h->nlogs >= HOST_LOG_QUEUE) {
		h->dropped++;
		return;
	}
	rec = xmalloc(sizeof(*rec));
	virtmgr__v1__log_record__init(rec);
	rec->timestamp_ns = timestamp_ns;
	rec->priority = priority;
	rec->source = xstrdup(source);
	rec->message = xstrndup(message, HOST_LOG_MSG_MAX);
	h->logs[h->nlogs++] = rec;
	if (!ev_is_active(&h->log_timer)) {
		ev_timer_init(&h->log_timer, log_timer_cb, HOST_LOG_DELAY_S, 0);
		h->log_timer.data = h;
	}
	if (h->nlogs >= HOST_LOG_BATCH)
		send_logs(h);
	else if (!ev_is_active(&h->log_timer))
		ev_timer_start(h->a->loop, &h->log_timer);
}
