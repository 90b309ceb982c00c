/* ttrpc-server.c - the ttrpc server: methods by (service, method), calls
 * with deadlines and streams, answers, listeners and accept.
 *
 * Design. Calls are kept per connection by stream id. A call ends exactly
 * once: by the handler (reply/fail/finish), by its deadline
 * (DEADLINE_EXCEEDED is sent and the cancel callback runs) or by the
 * connection closing (cancel callback). The Request envelope and the input
 * message are unpacked by protobuf-c and freed when the handler returns;
 * answers are packed by protobuf-c straight into the connection's output
 * chunk (ttrpc_frame_append()), and written by the flush that ends the
 * callback they were made in, so one batch of requests gets one write.
 * Methods are found through a hash table; ended calls' state and one written
 * output chunk are kept for reuse (not in AddressSanitizer builds, see
 * TTRPC_RECYCLE). Listeners accept a bounded batch per wake-up and pause on
 * fd exhaustion instead of spinning.
 */
#include "config.h"
#include "lib/ttrpc.h"
#include "lib/ttrpc-priv.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/vm_sockets.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include "lib/log.h"
#include "protos/ttrpc.pb-c.h"

static struct ttrpc_arena *arena_new(void);

struct ttrpc_server *ttrpc_server_new(struct ev_loop *loop)
{
	struct ttrpc_server *srv = xzalloc(sizeof(*srv));

	srv->loop = loop;
	srv->limits.max_out_bytes = TTRPC_DEFAULT_MAX_OUT;
	srv->arena = arena_new();
	return srv;
}

void ttrpc_server_free(struct ttrpc_server *srv)
{
	if (!srv)
		return;
	while (srv->listeners)
		ttrpc_listener_close(srv->listeners);
	while (srv->conns) {
		struct ttrpc_conn *c = srv->conns;

		ttrpc_conn_teardown(c);
		if (!c->depth)
			ttrpc_conn_free(c);
		else
			c->srv = NULL; /* freed by the callback that is unwinding */
	}
	while (srv->methods) {
		struct method_entry *m = srv->methods;

		srv->methods = m->next;
		free(m->service);
		free(m->method);
		free(m->name);
		free(m);
	}
	free(srv->mtab);
	free(srv->arena);
	while (srv->free_calls) {
		struct ttrpc_call *call = srv->free_calls;

		srv->free_calls = call->next;
		free(call);
	}
	if (srv->spare) {
		free(srv->spare->b.p);
		free(srv->spare);
	}
	free(srv);
}

void ttrpc_server_set_limits(struct ttrpc_server *srv, const struct ttrpc_limits *limits)
{
	srv->limits = *limits;
	if (!srv->limits.max_out_bytes)
		srv->limits.max_out_bytes = TTRPC_DEFAULT_MAX_OUT;
}

void ttrpc_server_set_conn_callbacks(struct ttrpc_server *srv, ttrpc_conn_cb on_open, ttrpc_conn_cb on_close,
				     void *opaque)
{
	srv->on_open = on_open;
	srv->on_close = on_close;
	srv->conn_opaque = opaque;
}

/* The method's name and the service's length: services are few, methods tell entries apart. */
static size_t method_hash(size_t slen, const char *method, size_t mlen)
{
	uint64_t h = 0xcbf29ce484222325ull ^ slen; /* FNV-1a */

	for (size_t i = 0; i < mlen; i++)
		h = (h ^ (uint8_t)method[i]) * 0x100000001b3ull;
	return (size_t)(h ^ h >> 29);
}

static struct method_entry *server_lookup(const struct ttrpc_server *srv, const char *service, size_t slen,
					  const char *method, size_t mlen)
{
	size_t mask = srv->mtab_size - 1;

	if (!srv->mtab)
		return NULL;
	for (size_t i = method_hash(slen, method, mlen) & mask;; i = (i + 1) & mask) {
		struct method_entry *m = srv->mtab[i];

		if (!m)
			return NULL;
		if (m->service_len == slen && m->method_len == mlen && !memcmp(m->method, method, mlen) &&
		    !memcmp(m->service, service, slen))
			return m;
	}
}

/* Rebuild the lookup table from the list (newest first, so a re-registered method replaces the old). */
static void server_index_methods(struct ttrpc_server *srv)
{
	size_t n = 0, size = 8;

	for (struct method_entry *m = srv->methods; m; m = m->next)
		n++;
	while (size < 2 * n)
		size *= 2;
	free(srv->mtab);
	srv->mtab = xcalloc(size, sizeof(*srv->mtab));
	srv->mtab_size = size;
	for (struct method_entry *m = srv->methods; m; m = m->next) {
		size_t i = method_hash(m->service_len, m->method, m->method_len) & (size - 1);

		if (server_lookup(srv, m->service, m->service_len, m->method, m->method_len))
			continue;
		while (srv->mtab[i])
			i = (i + 1) & (size - 1);
		srv->mtab[i] = m;
	}
}

void ttrpc_server_add_method(struct ttrpc_server *srv, const char *service, const char *method,
			     const ProtobufCMessageDescriptor *input, ttrpc_handler_fn fn, void *opaque)
{
	struct method_entry *m = xzalloc(sizeof(*m));

	m->service = xstrdup(service);
	m->method = xstrdup(method);
	m->name = xasprintf("%s/%s", service, method);
	m->service_len = strlen(service);
	m->method_len = strlen(method);
	m->input = input;
	m->fn = fn;
	m->opaque = opaque;
	m->next = srv->methods;
	srv->methods = m;
	server_index_methods(srv);
}

unsigned ttrpc_server_conn_count(const struct ttrpc_server *srv)
{
	return srv->nconns;
}

/* ------------------------------------------------------------------ calls */

/*
 * Queue a Response that ends stream @stream_id with @code and @msg, no
 * payload. Return: 0, or -1 if the connection is closed or was just
 * condemned for not reading.
 */
static int send_status(struct ttrpc_conn *c, uint32_t stream_id, int code, const char *msg)
{
	Ttrpc__Response r = TTRPC__RESPONSE__INIT;
	Ttrpc__Status st = TTRPC__STATUS__INIT;
	size_t len;

	if (c->closed || c->doomed)
		return -1;
	st.code = code;
	st.message = (char *)(msg ? msg : "");
	r.status = &st;
	/* no limit to check: messages are VM_ERROR_MSG_MAX bytes at most */
	len = ttrpc_frame_append(ttrpc_out_tail(c), stream_id, TTRPC_TYPE_RESPONSE, 0, &r.base, NULL, NULL, SIZE_MAX);
	if (ttrpc_out_commit(c, len) < 0)
		return -1;
	ttrpc_conn_update_wio(c);
	return 0;
}

static void call_unlink_free(struct ttrpc_call *call)
{
	struct ttrpc_conn *c = call->conn;

	if (call->prev)
		call->prev->next = call->next;
	else
		c->calls = call->next;
	if (call->next)
		call->next->prev = call->prev;
	c->ncalls--;
	ev_timer_stop(c->loop, &call->timer);
	ttrpc_close_fds(call->fds, call->nfds);
	if (TTRPC_RECYCLE && c->srv && c->srv->nfree_calls < TTRPC_FREE_CALLS_MAX) {
		call->next = c->srv->free_calls;
		c->srv->free_calls = call;
		c->srv->nfree_calls++;
		return;
	}
	free(call);
}

static struct ttrpc_call *call_alloc(struct ttrpc_server *srv)
{
	struct ttrpc_call *call = srv->free_calls;

	if (!call)
		return xzalloc(sizeof(*call));
	srv->free_calls = call->next;
	srv->nfree_calls--;
	memset(call, 0, sizeof(*call));
	return call;
}

static struct ttrpc_call *conn_find_call(struct ttrpc_conn *c, uint32_t stream_id)
{
	for (struct ttrpc_call *call = c->calls; call; call = call->next)
		if (call->stream_id == stream_id)
			return call;
	return NULL;
}

static void call_cancel(struct ttrpc_call *call)
{
	ttrpc_call_cb cb = call->cancel_cb;
	void *opaque = call->cancel_opaque;

	/* The cancel callback must not be able to end it a second time. */
	call->ending = true;
	call->cancel_cb = NULL;
	if (cb)
		cb(call, opaque);
	call_unlink_free(call);
}

/* Count how @call ended, by status code (metrics: calls by method and status). */
static void call_count(const struct ttrpc_call *call, int code)
{
	if (call->method)
		call->method->ended[(unsigned)code < TTRPC_STATUS_CODES ? code : VM_UNKNOWN]++;
}

void ttrpc_server_foreach_method(const struct ttrpc_server *srv, ttrpc_method_stats_fn fn, void *opaque)
{
	for (const struct method_entry *m = srv->methods; m; m = m->next)
		fn(m->service, m->method, m->ended, opaque);
}

static void call_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct ttrpc_call *call = w->data;
	struct ttrpc_conn *c = call->conn;
	char msg[600];

	snprintf(msg, sizeof(msg), "%s: deadline exceeded", call->name);
	call_count(call, VM_DEADLINE_EXCEEDED);
	c->depth++;
	send_status(c, call->stream_id, VM_DEADLINE_EXCEEDED, msg);
	call_cancel(call);
	ttrpc_conn_flush(c);
	c->depth--;
	if (c->closed && !c->depth)
		ttrpc_conn_free(c);
}

struct ttrpc_conn *ttrpc_call_conn(const struct ttrpc_call *call)
{
	return call->conn;
}

const struct ttrpc_peer *ttrpc_call_peer(const struct ttrpc_call *call)
{
	return &call->conn->peer;
}

const char *ttrpc_call_method(const struct ttrpc_call *call)
{
	return call->name;
}

uint64_t ttrpc_call_deadline_ns(const struct ttrpc_call *call)
{
	return call->deadline_ns;
}

bool ttrpc_call_is_stream(const struct ttrpc_call *call)
{
	return call->stream;
}

int ttrpc_call_take_fd(struct ttrpc_call *call, uint32_t index)
{
	if (index >= call->nfds)
		return -1;
	return steal_fd(&call->fds[index]);
}

size_t ttrpc_call_nfds(const struct ttrpc_call *call)
{
	return call->nfds;
}

void ttrpc_call_set_cancel(struct ttrpc_call *call, ttrpc_call_cb cb, void *opaque)
{
	call->cancel_cb = cb;
	call->cancel_opaque = opaque;
}

void ttrpc_call_set_data_cb(struct ttrpc_call *call, ttrpc_data_cb cb, void *opaque)
{
	call->data_cb = cb;
	call->data_opaque = opaque;
}

static void call_end(struct ttrpc_call *call, int code, const char *msg)
{
	struct ttrpc_conn *c = call->conn;

	if (call->ending)
		return;
	call_count(call, code);
	send_status(c, call->stream_id, code, msg);
	call_unlink_free(call);
	if (!c->depth)
		ttrpc_conn_flush(c);
}

void ttrpc_call_reply(struct ttrpc_call *call, const ProtobufCMessage *msg, const int *fds, size_t nfds)
{
	struct ttrpc_conn *c = call->conn;
	Ttrpc__Response r = TTRPC__RESPONSE__INIT;
	Ttrpc__Status ok = TTRPC__STATUS__INIT;
	size_t len;

	if (call->ending || c->closed || c->doomed) {
		for (size_t i = 0; i < nfds; i++)
			if (fds[i] >= 0)
				close(fds[i]);
		if (!call->ending)
			call_unlink_free(call);
		return;
	}
	/* An OK Response carries an empty Status, as containerd's servers send it. */
	r.status = &ok;
	if (nfds) {
		/* a frame with fds goes in a chunk of its own */
		struct ttrpc_buf b = { 0 };

		len = ttrpc_frame_append(&b, call->stream_id, TTRPC_TYPE_RESPONSE, 0, &r.base, &r.payload, msg,
					 TTRPC_MAX_DATA);
		if (len)
			ttrpc_conn_enqueue(c, b.p, len, fds, nfds);
		else
			free(b.p);
	} else {
		/* no write watcher here: the flush below, or the one that ends the
		 * connection's callback this runs in, writes it or arms one */
		len = ttrpc_frame_append(ttrpc_out_tail(c), call->stream_id, TTRPC_TYPE_RESPONSE, 0, &r.base,
					 &r.payload, msg, TTRPC_MAX_DATA);
		if (len)
			ttrpc_out_commit(c, len);
	}
	if (!len) {
		/* The peer would refuse it: say so instead of sending it. */
		log_warn("ttrpc: conn %llu: stream %u: response over %u bytes exceeds the limit",
			 (unsigned long long)c->id, call->stream_id, TTRPC_MAX_DATA);
		for (size_t i = 0; i < nfds; i++)
			if (fds[i] >= 0)
				close(fds[i]);
		send_status(c, call->stream_id, VM_RESOURCE_EXHAUSTED, "response exceeds the 4 MiB message limit");
	}
	call_count(call, len ? VM_OK : VM_RESOURCE_EXHAUSTED);
	call_unlink_free(call);
	if (!c->depth)
		ttrpc_conn_flush(c);
}

void ttrpc_call_fail(struct ttrpc_call *call, int code, const char *fmt, ...)
{
	char msg[VM_ERROR_MSG_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	call_end(call, code ? code : VM_UNKNOWN, msg);
}

void ttrpc_call_fail_error(struct ttrpc_call *call, const struct vm_error *err)
{
	call_end(call, err->code ? err->code : VM_UNKNOWN, err->message);
}

int ttrpc_call_send(struct ttrpc_call *call, const ProtobufCMessage *msg)
{
	struct ttrpc_conn *c = call->conn;
	size_t len;

	if (c->closed || c->doomed || call->ending)
		return -1;
	len = ttrpc_frame_append(ttrpc_out_tail(c), call->stream_id, TTRPC_TYPE_DATA, 0, msg, NULL, NULL,
				 TTRPC_MAX_DATA);
	if (!len) {
		log_warn("ttrpc: %s: stream message over the 4 MiB limit not sent", call->name);
		return -1;
	}
	if (ttrpc_out_commit(c, len) < 0)
		return -1;
	ttrpc_conn_update_wio(c);
	if (!c->depth)
		ttrpc_conn_flush(c);
	return c->closed || c->doomed ? -1 : 0;
}

void ttrpc_call_finish(struct ttrpc_call *call)
{
	call_end(call, VM_OK, "");
}

/* ---- requests ---- */

static bool server_knows_service(const struct ttrpc_server *srv, const char *service, size_t slen)
{
	for (const struct method_entry *m = srv->methods; m; m = m->next)
		if (m->service_len == slen && !memcmp(m->service, service, slen))
			return true;
	return false;
}

/*
 * Requests are unpacked by protobuf-c into a per-server arena: the
 * ttrpc.Request envelope and the handler's input message live only until the
 * handler returns, so instead of a malloc() and a free() per string, bytes
 * field and message, allocations are carved from one block and the block is
 * rewound afterwards. What does not fit goes to malloc() and is freed by
 * protobuf_c_message_free_unpacked() (whose free is a no-op for arena
 * memory). Marks nest, so a handler that somehow got another request
 * unpacked before returning would still be safe. Off in AddressSanitizer
 * builds (TTRPC_RECYCLE), where every allocation is its own.
 */
#define TTRPC_ARENA_SIZE 16384

struct ttrpc_arena {
	ProtobufCAllocator alloc;
	size_t used;
	unsigned spills; /* allocations that went to malloc() */
	_Alignas(16) uint8_t buf[TTRPC_ARENA_SIZE];
};

static void *arena_alloc(void *data, size_t size)
{
	struct ttrpc_arena *ar = data;
	size_t n = (size + 15) & ~(size_t)15;

	if (TTRPC_RECYCLE && n >= size && TTRPC_ARENA_SIZE - ar->used >= n) {
		void *p = ar->buf + ar->used;

		ar->used += n;
		return p;
	}
	ar->spills++;
	return malloc(size);
}

static void arena_free(void *data, void *p)
{
	struct ttrpc_arena *ar = data;
	uintptr_t u = (uintptr_t)p, lo = (uintptr_t)ar->buf;

	if (u < lo || u >= lo + TTRPC_ARENA_SIZE)
		free(p);
}

static struct ttrpc_arena *arena_new(void)
{
	struct ttrpc_arena *ar = xzalloc(sizeof(*ar));

	ar->alloc.alloc = arena_alloc;
	ar->alloc.free = arena_free;
	ar->alloc.allocator_data = ar;
	return ar;
}

/* Release what was unpacked since @used/@spills were read, rewind the arena. */
static void arena_release(struct ttrpc_arena *ar, size_t used, unsigned spills, ProtobufCMessage *in,
			  Ttrpc__Request *req)
{
	if (ar->spills != spills) {
		if (in)
			protobuf_c_message_free_unpacked(in, &ar->alloc);
		if (req)
			ttrpc__request__free_unpacked(req, &ar->alloc);
	}
	ar->used = used;
}

void ttrpc_server_request(struct ttrpc_conn *c, const struct ttrpc_frame *fr, int *fds, size_t nfds)
{
	struct ttrpc_server *srv = c->srv;
	uint32_t sid = fr->hdr.stream_id;
	struct ttrpc_arena *ar = srv->arena;
	size_t mark = ar->used;
	unsigned spills = ar->spills;
	Ttrpc__Request *req;
	struct method_entry *m;
	ProtobufCMessage *in;
	struct ttrpc_call *call;
	char msg[VM_ERROR_MSG_MAX];
	size_t slen, mlen;

	if (!(sid & 1) || conn_find_call(c, sid)) {
		log_warn("ttrpc: conn %llu: request on %s stream %u; closing", (unsigned long long)c->id,
			 sid & 1 ? "busy" : "even", sid);
		ttrpc_close_fds(fds, nfds);
		ttrpc_conn_close(c);
		return;
	}
	if (srv->limits.max_streams_per_conn && c->ncalls >= srv->limits.max_streams_per_conn) {
		snprintf(msg, sizeof(msg), "too many concurrent calls on this connection (limit %u)",
			 srv->limits.max_streams_per_conn);
		send_status(c, sid, VM_RESOURCE_EXHAUSTED, msg);
		ttrpc_close_fds(fds, nfds);
		return;
	}
	req = ttrpc__request__unpack(&ar->alloc, fr->hdr.length, fr->data);
	if (!req) {
		ar->used = mark;
		send_status(c, sid, VM_INVALID_ARGUMENT, "cannot unpack ttrpc.Request");
		ttrpc_close_fds(fds, nfds);
		return;
	}
	slen = strlen(req->service);
	mlen = strlen(req->method);
	m = server_lookup(srv, req->service, slen, req->method, mlen);
	if (!m) {
		if (server_knows_service(srv, req->service, slen))
			snprintf(msg, sizeof(msg), "method %s/%s not implemented", req->service, req->method);
		else
			snprintf(msg, sizeof(msg), "service %s not implemented (method %s)", req->service, req->method);
		send_status(c, sid, VM_UNIMPLEMENTED, msg);
		ttrpc_close_fds(fds, nfds);
		arena_release(ar, mark, spills, NULL, req);
		return;
	}
	in = protobuf_c_message_unpack(m->input, &ar->alloc, req->payload.len, req->payload.data);
	if (!in) {
		snprintf(msg, sizeof(msg), "%s: cannot unpack the payload as %s", m->name, m->input->name);
		send_status(c, sid, VM_INVALID_ARGUMENT, msg);
		ttrpc_close_fds(fds, nfds);
		arena_release(ar, mark, spills, NULL, req);
		return;
	}
	call = call_alloc(srv);
	call->conn = c;
	call->stream_id = sid;
	call->name = m->name;
	call->method = m;
	call->stream = fr->hdr.flags & (TTRPC_FLAG_REMOTE_CLOSED | TTRPC_FLAG_REMOTE_OPEN);
	memcpy(call->fds, fds, nfds * sizeof(int));
	call->nfds = nfds;
	call->next = c->calls;
	if (c->calls)
		c->calls->prev = call;
	c->calls = call;
	c->ncalls++;
	ev_timer_init(&call->timer, call_timer_cb, 0, 0);
	call->timer.data = call;
	if (req->timeout_nano > 0) {
		call->deadline_ns = now_mono_ns() + (uint64_t)req->timeout_nano;
		ev_timer_set(&call->timer, (double)req->timeout_nano / 1e9, 0);
		ev_timer_start(c->loop, &call->timer);
	}
	m->fn(call, in, m->opaque);
	arena_release(ar, mark, spills, in, req);
}

void ttrpc_server_data(struct ttrpc_conn *c, const struct ttrpc_frame *fr)
{
	struct ttrpc_call *call = conn_find_call(c, fr->hdr.stream_id);
	bool closed = fr->hdr.flags & TTRPC_FLAG_REMOTE_CLOSED;

	if (!call) {
		log_debug("ttrpc: conn %llu: data for unknown stream %u dropped", (unsigned long long)c->id,
			  fr->hdr.stream_id);
		return;
	}
	if (call->data_cb)
		call->data_cb(call, fr->data, fr->hdr.length, closed, call->data_opaque);
}

void ttrpc_server_oversize(struct ttrpc_conn *c, const struct ttrpc_frame *fr, const char *msg)
{
	if (fr->hdr.type == TTRPC_TYPE_REQUEST) {
		send_status(c, fr->hdr.stream_id, VM_RESOURCE_EXHAUSTED, msg);
	} else if (fr->hdr.type == TTRPC_TYPE_DATA) {
		struct ttrpc_call *call = conn_find_call(c, fr->hdr.stream_id);

		if (call && !call->ending) {
			send_status(c, call->stream_id, VM_RESOURCE_EXHAUSTED, msg);
			call_cancel(call);
		}
	}
}

void ttrpc_server_conn_closing(struct ttrpc_conn *c)
{
	while (c->calls)
		call_cancel(c->calls);
	if (c->srv->on_close)
		c->srv->on_close(c, c->srv->conn_opaque);
}

void ttrpc_server_conn_unlink(struct ttrpc_conn *c)
{
	struct ttrpc_server *srv = c->srv;

	if (c->prev)
		c->prev->next = c->next;
	else
		srv->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	srv->nconns--;
}

/* ------------------------------------------------------------- connections */

static struct ttrpc_conn *server_add_conn(struct ttrpc_server *srv, int fd, struct ttrpc_listener *l)
{
	struct ttrpc_conn *c = ttrpc_conn_new(srv->loop, fd);

	c->srv = srv;
	c->listener = l;
	c->max_out = srv->limits.max_out_bytes;
	c->next = srv->conns;
	if (srv->conns)
		srv->conns->prev = c;
	srv->conns = c;
	srv->nconns++;
	if (srv->on_open) {
		/* on_open may refuse the peer by closing the connection. */
		c->depth++;
		srv->on_open(c, srv->conn_opaque);
		c->depth--;
		if (c->closed) {
			ttrpc_conn_free(c);
			return NULL;
		}
	}
	return c;
}

struct ttrpc_conn *ttrpc_server_adopt(struct ttrpc_server *srv, int fd, struct vm_error *err)
{
	struct ttrpc_conn *c;
	int type;
	socklen_t tl = sizeof(type);

	if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &tl) < 0)
		return vm_error_set_errno(err, VM_INVALID_ARGUMENT, errno, "fd %d is not a socket", fd), NULL;
	if (type != SOCK_STREAM)
		return vm_error_set(err, VM_INVALID_ARGUMENT, "fd %d is not a stream socket", fd), NULL;
	c = server_add_conn(srv, fd, NULL);
	if (!c)
		vm_error_set(err, VM_PERMISSION_DENIED, "connection on fd %d refused when opened", fd);
	return c;
}

/* --------------------------------------------------------------- listeners */

/*
 * Connections accepted per wake-up of a listener. A burst larger than this
 * waits in the backlog for the next loop iteration (the watcher is level
 * triggered), so one burst cannot starve the connections already open.
 */
#define TTRPC_ACCEPT_BATCH 64

/*
 * The system's largest accept backlog (net.core.somaxconn; listen() caps
 * any larger value to it). A burst of clients that connect at once, each
 * sending a call before it reads, waits there instead of failing connect()
 * with EAGAIN while the loop accepts them batch by batch.
 */
static int listen_backlog(void)
{
	char buf[32];
	int fd = open("/proc/sys/net/core/somaxconn", O_RDONLY | O_CLOEXEC);
	ssize_t n = fd >= 0 ? read(fd, buf, sizeof(buf) - 1) : -1;
	long v;

	if (fd >= 0)
		close(fd);
	if (n <= 0)
		return SOMAXCONN;
	buf[n] = 0;
	v = strtol(buf, NULL, 10);
	return v > 0 && v <= INT_MAX ? (int)v : SOMAXCONN;
}

static void listener_pause_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct ttrpc_listener *l = w->data;

	ev_io_start(loop, &l->io);
}

static void listener_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct ttrpc_listener *l = w->data;
	struct ttrpc_server *srv = l->srv;

	for (int i = 0; i < TTRPC_ACCEPT_BATCH; i++) {
		int fd = accept4(l->fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);

		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
				/* The pending connection stays queued: pause instead of spinning. */
				if (!l->starved)
					log_warn("ttrpc: accept: %s; pausing accept (retried every 100 ms)",
						 strerror(errno));
				l->starved = true;
				ev_io_stop(loop, &l->io);
				ev_timer_set(&l->pause, 0.1, 0);
				ev_timer_start(loop, &l->pause);
			} else if (errno != EAGAIN) {
				log_warn("ttrpc: accept: %s", strerror(errno));
			}
			return;
		}
		if (l->starved) {
			log_info("ttrpc: accepting connections again");
			l->starved = false;
		}
		if (srv->limits.max_connections && srv->nconns >= srv->limits.max_connections) {
			/* At most one line a second however fast they come. */
			srv->refused++;
			if (ev_now(loop) - srv->refuse_logged >= 1.0) {
				log_warn("ttrpc: connection limit (%u) reached; refused %u new connection(s)",
					 srv->limits.max_connections, srv->refused);
				srv->refuse_logged = ev_now(loop);
				srv->refused = 0;
			}
			close(fd);
			continue;
		}
		server_add_conn(srv, fd, l);
	}
}

static struct ttrpc_listener *listener_new(struct ttrpc_server *srv, int fd)
{
	struct ttrpc_listener *l = xzalloc(sizeof(*l));

	l->srv = srv;
	l->fd = fd;
	ev_io_init(&l->io, listener_cb, fd, EV_READ);
	l->io.data = l;
	ev_timer_init(&l->pause, listener_pause_cb, 0, 0);
	l->pause.data = l;
	ev_io_start(srv->loop, &l->io);
	l->next = srv->listeners;
	srv->listeners = l;
	return l;
}

struct ttrpc_listener *ttrpc_server_listen_unix(struct ttrpc_server *srv, const char *path, mode_t mode,
						struct vm_error *err)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	cleanup_close int fd = -1;
	struct ttrpc_listener *l;
	struct stat st;

	if (strlen(path) >= sizeof(sun.sun_path))
		return vm_error_set(err, VM_INVALID_ARGUMENT, "socket path %s is too long", path), NULL;
	strcpy(sun.sun_path, path);
	if (lstat(path, &st) == 0) {
		int probe;

		if (!S_ISSOCK(st.st_mode))
			return vm_error_set(err, VM_ALREADY_EXISTS, "%s exists and is not a socket", path), NULL;
		/* Stale only if nobody answers: never steal a live server's socket. */
		probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (probe >= 0 && connect(probe, (struct sockaddr *)&sun, sizeof(sun)) == 0) {
			close(probe);
			return vm_error_set(err, VM_ALREADY_EXISTS, "another server is listening on %s", path), NULL;
		}
		if (probe >= 0)
			close(probe);
		if (unlink(path) < 0)
			return vm_error_set_errno(err, VM_INTERNAL, errno, "unlink stale socket %s", path), NULL;
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return vm_error_set_errno(err, VM_INTERNAL, errno, "socket for %s", path), NULL;
	if (bind(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0)
		return vm_error_set_errno(err, VM_INTERNAL, errno, "bind %s", path), NULL;
	if (chmod(path, mode) < 0) {
		vm_error_set_errno(err, VM_INTERNAL, errno, "chmod %s", path);
		unlink(path);
		return NULL;
	}
	if (listen(fd, listen_backlog()) < 0) {
		vm_error_set_errno(err, VM_INTERNAL, errno, "listen on %s", path);
		unlink(path);
		return NULL;
	}
	l = listener_new(srv, steal_fd(&fd));
	l->path = xstrdup(path);
	return l;
}

struct ttrpc_listener *ttrpc_server_listen_vsock(struct ttrpc_server *srv, uint32_t cid, uint32_t port,
						 struct vm_error *err)
{
	struct sockaddr_vm svm = { .svm_family = AF_VSOCK, .svm_cid = cid, .svm_port = port };
	cleanup_close int fd = socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);

	if (fd < 0)
		return vm_error_set_errno(err, VM_UNAVAILABLE, errno, "vsock socket (port %u)", port), NULL;
	if (bind(fd, (struct sockaddr *)&svm, sizeof(svm)) < 0)
		return vm_error_set_errno(err, VM_UNAVAILABLE, errno, "bind vsock cid %u port %u", cid, port), NULL;
	if (listen(fd, listen_backlog()) < 0)
		return vm_error_set_errno(err, VM_UNAVAILABLE, errno, "listen on vsock port %u", port), NULL;
	return listener_new(srv, steal_fd(&fd));
}

struct ttrpc_listener *ttrpc_server_listen_fd(struct ttrpc_server *srv, int fd, struct vm_error *err)
{
	int acc = 0;
	socklen_t al = sizeof(acc);

	if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &acc, &al) < 0)
		return vm_error_set_errno(err, VM_INVALID_ARGUMENT, errno, "inherited fd %d", fd), NULL;
	if (!acc)
		return vm_error_set(err, VM_INVALID_ARGUMENT, "inherited fd %d is not a listening socket", fd), NULL;
	if (fd_set_nonblock(fd, true) < 0 || fd_set_cloexec(fd, true) < 0)
		return vm_error_set_errno(err, VM_INTERNAL, errno, "inherited fd %d", fd), NULL;
	return listener_new(srv, fd);
}

void ttrpc_listener_close(struct ttrpc_listener *l)
{
	struct ttrpc_server *srv = l->srv;
	struct ttrpc_listener **pp;

	for (pp = &srv->listeners; *pp; pp = &(*pp)->next)
		if (*pp == l) {
			*pp = l->next;
			break;
		}
	for (struct ttrpc_conn *c = srv->conns; c; c = c->next)
		if (c->listener == l)
			c->listener = NULL;
	ev_io_stop(srv->loop, &l->io);
	ev_timer_stop(srv->loop, &l->pause);
	close(l->fd);
	if (l->path)
		unlink(l->path);
	free(l->path);
	free(l);
}

void ttrpc_listener_set_data(struct ttrpc_listener *l, void *data)
{
	l->data = data;
}

void *ttrpc_listener_get_data(const struct ttrpc_listener *l)
{
	return l->data;
}
