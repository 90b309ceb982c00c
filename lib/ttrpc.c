/* ttrpc.c - ttrpc frame codec, the libev server and the asynchronous client.
 *
 * Design. The codec is a pure incremental decoder: it is fed whatever a
 * read returned and yields one frame at a time, so splits at any byte
 * boundary are invisible to the layers above. An oversize body is reported
 * by its header (OVERSIZE) and then skipped byte by byte, so only that stream
 * fails; a first header byte other than zero (a length of 16 MiB or more,
 * i.e. not ttrpc) poisons the decoder and the connection is closed.
 *
 * A struct ttrpc_conn is one socket on the loop, either served (requests in,
 * responses out) or used as an asynchronous client (requests out). Input is
 * read non-blocking in chunks and decoded, and every complete frame of a read
 * is handled before anything is written; output is a queue of buffers of
 * whole frames (answers are packed straight into the last one) written with
 * sendmsg() as the socket accepts them, so one batch of requests gets one
 * write. A frame that carries fds has a buffer of its own and is written by a
 * sendmsg() of its own that begins with its first byte (the fd rule, see
 * lib/ttrpc-priv.h). protobuf-c packs every body: its size is computed once
 * and the bytes are packed into the output chunk itself (the envelope's
 * payload is packed just past the frame and copied in by the envelope's
 * packing, one copy). Output is bounded: once more than
 * max_out_bytes are queued the peer is not reading, the queue is dropped and
 * the connection closed from a zero-delay timer (never from inside the
 * caller's reply, so handlers are not re-entered).
 *
 * Calls are kept per connection by stream id. A call ends exactly once:
 * by the handler (reply/fail/finish), by its deadline (DEADLINE_EXCEEDED is
 * sent and the cancel callback runs) or by the connection closing (cancel
 * callback). Connection teardown that happens inside one of our own libev
 * callbacks is deferred until that callback unwinds (conn->depth), so a
 * handler may close its own connection.
 */
#include "config.h"
#include "lib/ttrpc.h"

#include <sys/syscall.h>
#include "lib/ttrpc-priv.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/vm_sockets.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include "lib/log.h"
#include "protos/ttrpc.pb-c.h"

#define TTRPC_DEFAULT_MAX_OUT (8u << 20)
#define TTRPC_READ_CHUNK 65536
#define TTRPC_IOV_MAX 64

/* ------------------------------------------------------------------ codec */

static uint32_t be32_get(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void be32_put(uint8_t *p, uint32_t v)
{
	p[0] = v >> 24;
	p[1] = v >> 16;
	p[2] = v >> 8;
	p[3] = v;
}

void ttrpc_header_encode(const struct ttrpc_header *h, uint8_t out[TTRPC_HEADER_SIZE])
{
	be32_put(out, h->length);
	be32_put(out + 4, h->stream_id);
	out[8] = h->type;
	out[9] = h->flags;
}

void ttrpc_header_decode(const uint8_t in[TTRPC_HEADER_SIZE], struct ttrpc_header *h)
{
	h->length = be32_get(in);
	h->stream_id = be32_get(in + 4);
	h->type = in[8];
	h->flags = in[9];
}

void ttrpc_decoder_init(struct ttrpc_decoder *d, uint32_t max_data)
{
	memset(d, 0, sizeof(*d));
	d->max_data = max_data ? max_data : TTRPC_MAX_DATA;
}

void ttrpc_decoder_release(struct ttrpc_decoder *d)
{
	free(d->body);
	d->body = NULL;
	d->body_cap = 0;
}

enum ttrpc_decode_status ttrpc_decoder_feed(struct ttrpc_decoder *d, const uint8_t *buf, size_t len,
					    size_t *consumed, struct ttrpc_frame *frame)
{
	size_t pos = 0, n;

	*consumed = 0;
	if (d->failed)
		return TTRPC_DECODE_ERROR;
	for (;;) {
		if (d->skip) {
			n = MIN((size_t)d->skip, len - pos);
			d->skip -= n;
			pos += n;
			d->offset += n;
			if (d->skip)
				break;
			continue;
		}
		if (!d->in_body) {
			if (pos == len)
				break;
			if (d->hdr_have == 0)
				d->frame_offset = d->offset;
			n = MIN(TTRPC_HEADER_SIZE - d->hdr_have, len - pos);
			memcpy(d->hdr_buf + d->hdr_have, buf + pos, n);
			if (d->hdr_have == 0 && d->hdr_buf[0] != 0) {
				d->failed = true;
				*consumed = pos;
				return TTRPC_DECODE_ERROR;
			}
			d->hdr_have += n;
			pos += n;
			d->offset += n;
			if (d->hdr_have < TTRPC_HEADER_SIZE)
				break;
			ttrpc_header_decode(d->hdr_buf, &d->hdr);
			d->hdr_have = 0;
			frame->hdr = d->hdr;
			frame->offset = d->frame_offset;
			if (d->hdr.length > d->max_data) {
				d->skip = d->hdr.length;
				frame->data = NULL;
				*consumed = pos;
				return TTRPC_DECODE_OVERSIZE;
			}
			if (d->hdr.length == 0) {
				frame->data = NULL;
				*consumed = pos;
				return TTRPC_DECODE_FRAME;
			}
			if (d->body_cap < d->hdr.length) {
				/* Grow geometrically but never beyond the limit. */
				size_t cap = MAX((size_t)d->hdr.length, MIN(d->body_cap * 2, (size_t)d->max_data));
				free(d->body);
				d->body = xmalloc(cap);
				d->body_cap = cap;
			}
			d->body_have = 0;
			d->in_body = true;
		}
		n = MIN(d->hdr.length - d->body_have, len - pos);
		if (n)
			memcpy(d->body + d->body_have, buf + pos, n);
		d->body_have += n;
		pos += n;
		d->offset += n;
		if (d->body_have < d->hdr.length)
			break;
		d->in_body = false;
		frame->hdr = d->hdr;
		frame->data = d->body;
		frame->offset = d->frame_offset;
		*consumed = pos;
		return TTRPC_DECODE_FRAME;
	}
	*consumed = pos;
	return TTRPC_DECODE_NEED_MORE;
}

ssize_t ttrpc_decoder_last_start(const struct ttrpc_decoder *d, const uint8_t *buf, size_t len)
{
	uint64_t pos = 0;
	ssize_t last = -1;

	if (d->failed)
		return -1;
	if (d->skip) {
		pos = d->skip;
	} else if (d->in_body) {
		pos = d->hdr.length - d->body_have;
	} else if (d->hdr_have) {
		/* The rest of a partial header, then its body (skipped or not). */
		uint8_t lenbuf[4];

		for (size_t i = 0; i < 4; i++) {
			if (i < d->hdr_have)
				lenbuf[i] = d->hdr_buf[i];
			else if (i - d->hdr_have < len)
				lenbuf[i] = buf[i - d->hdr_have];
			else
				return -1;
		}
		pos = (uint64_t)(TTRPC_HEADER_SIZE - d->hdr_have) + be32_get(lenbuf);
	}
	while (pos < len) {
		last = (ssize_t)pos;
		if (len - pos < 4)
			break;
		pos += TTRPC_HEADER_SIZE + (uint64_t)be32_get(buf + pos);
	}
	return last;
}

/* ------------------------------------------------------------------ packing */

uint8_t *ttrpc_buf_reserve(struct ttrpc_buf *b, size_t need)
{
	if (b->cap - b->len < need) {
		size_t cap = MAX(MAX(b->cap * 2, b->len + need), (size_t)256);

		b->p = xrealloc(b->p, cap);
		b->cap = cap;
	}
	return b->p + b->len;
}

uint8_t *ttrpc_pack(const ProtobufCMessage *msg, size_t *len)
{
	size_t n = msg ? protobuf_c_message_get_packed_size(msg) : 0;
	uint8_t *buf = xmalloc(n ? n : 1);

	if (n)
		protobuf_c_message_pack(msg, buf);
	*len = n;
	return buf;
}

size_t ttrpc_frame_append(struct ttrpc_buf *b, uint32_t stream_id, uint8_t type, uint8_t flags,
			  const ProtobufCMessage *body, ProtobufCBinaryData *payload, const ProtobufCMessage *inner,
			  size_t max)
{
	size_t plen = 0, blen;
	uint8_t *f;

	if (payload) {
		plen = inner ? protobuf_c_message_get_packed_size(inner) : 0;
		payload->len = plen;
		payload->data = NULL;
	}
	blen = protobuf_c_message_get_packed_size(body);
	if (blen > max)
		return 0;
	f = ttrpc_buf_reserve(b, TTRPC_HEADER_SIZE + blen + plen);
	if (plen) {
		/* The payload is packed past the frame, then copied into it by
		 * the envelope's own packing: protobuf-c writes every byte. */
		payload->data = f + TTRPC_HEADER_SIZE + blen;
		protobuf_c_message_pack(inner, payload->data);
	}
	protobuf_c_message_pack(body, f + TTRPC_HEADER_SIZE);
	ttrpc_header_encode(&(struct ttrpc_header){ .length = (uint32_t)blen, .stream_id = stream_id,
						    .type = type, .flags = flags },
			    f);
	b->len += TTRPC_HEADER_SIZE + blen;
	return TTRPC_HEADER_SIZE + blen;
}

/* ------------------------------------------------------ shared internals */

void ttrpc_close_fds(int *fds, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (fds[i] >= 0)
			close(fds[i]);
		fds[i] = -1;
	}
}

void ttrpc_fdq_push(struct ttrpc_fdq *q, uint64_t offset, const int *fds, size_t nfds)
{
	struct ttrpc_fdq_entry *e = xzalloc(sizeof(*e));

	e->offset = offset;
	e->nfds = MIN(nfds, (size_t)TTRPC_RECV_FDS);
	memcpy(e->fds, fds, e->nfds * sizeof(int));
	if (q->tail)
		q->tail->next = e;
	else
		q->head = e;
	q->tail = e;
}

size_t ttrpc_fdq_take(struct ttrpc_fdq *q, uint64_t offset, int *fds)
{
	size_t n = 0;

	while (q->head && q->head->offset <= offset) {
		struct ttrpc_fdq_entry *e = q->head;

		q->head = e->next;
		if (!q->head)
			q->tail = NULL;
		if (e->offset == offset) {
			for (size_t i = 0; i < e->nfds; i++) {
				if (n < TTRPC_MAX_FDS)
					fds[n++] = e->fds[i];
				else
					close(e->fds[i]);
			}
			if (e->nfds > TTRPC_MAX_FDS)
				log_warn("ttrpc: frame carried %zu fds, more than %d; extras closed", e->nfds,
					 TTRPC_MAX_FDS);
		} else {
			log_warn("ttrpc: %zu fds received without a frame; closed", e->nfds);
			ttrpc_close_fds(e->fds, e->nfds);
		}
		free(e);
	}
	return n;
}

void ttrpc_fdq_clear(struct ttrpc_fdq *q)
{
	while (q->head) {
		struct ttrpc_fdq_entry *e = q->head;

		q->head = e->next;
		ttrpc_close_fds(e->fds, e->nfds);
		free(e);
	}
	q->tail = NULL;
}

ssize_t ttrpc_sock_recv(int fd, uint8_t *buf, size_t len, int *fds, size_t *nfds)
{
	union {
		struct cmsghdr hdr;
		char buf[CMSG_SPACE(sizeof(int) * TTRPC_RECV_FDS)];
	} cbuf;
	struct iovec iov = { .iov_base = buf, .iov_len = len };
	struct msghdr msg = {
		.msg_iov = &iov,
		.msg_iovlen = 1,
		.msg_control = cbuf.buf,
		.msg_controllen = sizeof(cbuf.buf),
	};
	ssize_t n;

	*nfds = 0;
	do
		n = recvmsg(fd, &msg, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		size_t cnt = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		int tmp[TTRPC_RECV_FDS];

		memcpy(tmp, CMSG_DATA(c), MIN(cnt, (size_t)TTRPC_RECV_FDS) * sizeof(int));
		for (size_t i = 0; i < cnt && i < TTRPC_RECV_FDS; i++) {
			if (*nfds < TTRPC_RECV_FDS)
				fds[(*nfds)++] = tmp[i];
			else
				close(tmp[i]);
		}
	}
	if (msg.msg_flags & MSG_CTRUNC)
		log_warn("ttrpc: ancillary data truncated, some received fds were dropped");
	return n;
}

ssize_t ttrpc_sock_send(int fd, const struct iovec *iov, int iovcnt, const int *fds, size_t nfds)
{
	union {
		struct cmsghdr hdr;
		char buf[CMSG_SPACE(sizeof(int) * TTRPC_MAX_FDS)];
	} cbuf;
	struct msghdr msg = { .msg_iov = (struct iovec *)iov, .msg_iovlen = iovcnt };
	ssize_t n;

	if (nfds) {
		struct cmsghdr *c;

		nfds = MIN(nfds, (size_t)TTRPC_MAX_FDS);
		memset(&cbuf, 0, sizeof(cbuf));
		msg.msg_control = cbuf.buf;
		msg.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
		c = CMSG_FIRSTHDR(&msg);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
		memcpy(CMSG_DATA(c), fds, sizeof(int) * nfds);
	}
	do
		n = sendmsg(fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
	while (n < 0 && errno == EINTR);
	return n < 0 ? -errno : n;
}

void ttrpc_input_fds(struct ttrpc_fdq *q, const struct ttrpc_decoder *d, const uint8_t *buf, size_t len,
		     const int *fds, size_t nfds)
{
	ssize_t start;

	if (!nfds)
		return;
	start = ttrpc_decoder_last_start(d, buf, len);
	if (start < 0) {
		log_warn("ttrpc: %zu fds arrived without the start of a frame; closed", nfds);
		for (size_t i = 0; i < nfds; i++)
			close(fds[i]);
		return;
	}
	ttrpc_fdq_push(q, d->offset + (uint64_t)start, fds, nfds);
}

uint8_t *ttrpc_build_frame(uint32_t stream_id, uint8_t type, uint8_t flags, const uint8_t *data, size_t len,
			   size_t *out_len)
{
	struct ttrpc_header h = { .length = (uint32_t)len, .stream_id = stream_id, .type = type, .flags = flags };
	uint8_t *buf = xmalloc(TTRPC_HEADER_SIZE + len);

	ttrpc_header_encode(&h, buf);
	if (len)
		memcpy(buf + TTRPC_HEADER_SIZE, data, len);
	*out_len = TTRPC_HEADER_SIZE + len;
	return buf;
}

uint8_t *ttrpc_build_request(uint32_t stream_id, uint8_t flags, const char *service, const char *method,
			     const ProtobufCMessage *req, uint64_t timeout_ns, size_t *len)
{
	Ttrpc__Request r = TTRPC__REQUEST__INIT;
	struct ttrpc_buf b = { 0 };

	r.service = (char *)service;
	r.method = (char *)method;
	r.timeout_nano = timeout_ns > INT64_MAX ? INT64_MAX : (int64_t)timeout_ns;
	*len = ttrpc_frame_append(&b, stream_id, TTRPC_TYPE_REQUEST, flags, &r.base, &r.payload, req, SIZE_MAX);
	return b.p;
}

int ttrpc_parse_response(const uint8_t *body, size_t len, struct vm_error *status, uint8_t **payload,
			 size_t *plen)
{
	Ttrpc__Response *r = ttrpc__response__unpack(NULL, len, body);

	*payload = NULL;
	*plen = 0;
	if (!r)
		return vm_error_set(status, VM_INTERNAL, "malformed ttrpc.Response from the peer");
	status->code = r->status ? r->status->code : VM_OK;
	snprintf(status->message, sizeof(status->message), "%s",
		 r->status && r->status->message ? r->status->message : "");
	if (r->payload.len) {
		*payload = xmalloc(r->payload.len);
		memcpy(*payload, r->payload.data, r->payload.len);
		*plen = r->payload.len;
	}
	ttrpc__response__free_unpacked(r, NULL);
	return 0;
}

/* ------------------------------------------------------------------ server */

struct method_entry {
	struct method_entry *next;
	char *service;
	char *method;
	char *name;                      /* "Service/Method", shared by its calls */
	size_t service_len, method_len;
	const ProtobufCMessageDescriptor *input;
	ttrpc_handler_fn fn;
	void *opaque;
};

struct ttrpc_listener {
	struct ttrpc_listener *next;
	struct ttrpc_server *srv;
	ev_io io;
	ev_timer pause;           /* accept paused after EMFILE/ENFILE */
	int fd;
	char *path;               /* Unix socket we created (unlinked on close) */
	void *data;
	bool starved;             /* out of fds: logged once until accept works again */
};

struct ttrpc_server {
	struct ev_loop *loop;
	struct method_entry *methods;
	struct ttrpc_listener *listeners;
	struct ttrpc_conn *conns;
	unsigned nconns;
	struct ttrpc_limits limits;
	ttrpc_conn_cb on_open, on_close;
	void *conn_opaque;
	double refuse_logged;     /* ev_now() of the last "limit reached" line */
	unsigned refused;         /* refused since that line */
	struct method_entry **mtab;      /* by (service, method), open addressing; newest entry wins */
	size_t mtab_size;                /* a power of two, at least twice the methods */
	struct ttrpc_call *free_calls;   /* ended calls' state, kept for the next ones */
	unsigned nfree_calls;
	struct out_chunk *spare;         /* a written output chunk, kept for the next batch */
};

#define TTRPC_FREE_CALLS_MAX 64

/*
 * Output is a queue of chunks of whole frames, back to back. Frames are
 * appended to the last chunk (answers are packed straight into it), so the
 * answers to one batch of requests are one buffer and go out in one
 * sendmsg(); a frame that carries fds gets a chunk of its own (the fd rule).
 */
struct out_chunk {
	struct out_chunk *next;
	struct ttrpc_buf b;       /* the bytes; sent up to off */
	size_t off;
	int fds[TTRPC_MAX_FDS];
	size_t nfds;              /* still to send with the first byte */
	bool sealed;              /* nothing more is appended */
};

#define TTRPC_CHUNK_MAX 65536          /* a chunk past this takes no more frames */
#define TTRPC_SPARE_MAX (256u << 10)   /* the server keeps one written chunk up to this size */

/* A pending call of the asynchronous client. */
struct pending {
	struct pending *next;
	struct ttrpc_conn *conn;
	uint32_t stream_id;
	ev_timer timer;
	ttrpc_reply_cb cb;
	void *opaque;
};

struct ttrpc_conn {
	struct ttrpc_conn *next, *prev;  /* in srv->conns */
	struct ttrpc_server *srv;        /* NULL for a client connection */
	struct ttrpc_listener *listener;
	struct ev_loop *loop;
	int fd;
	uint64_t id;
	struct ttrpc_peer peer;
	ev_io rio, wio;
	ev_timer close_timer;
	struct ttrpc_decoder dec;
	struct ttrpc_fdq fdq;
	struct out_chunk *out_head, *out_tail;
	size_t out_bytes, max_out;
	struct ttrpc_call *calls;
	unsigned ncalls;
	struct pending *pending;
	uint32_t next_stream;
	unsigned depth;
	bool closed;                     /* torn down; freed when depth drops to 0 */
	bool doomed;                     /* output overflow: closing from close_timer */
	ttrpc_conn_cb on_close;          /* client connections */
	void *close_opaque;
	ttrpc_conn_cb drain_cb;
	void *drain_opaque;
	size_t drain_low;
	bool drain_armed;
	void *data;
};

struct ttrpc_call {
	struct ttrpc_call *next, *prev;
	struct ttrpc_conn *conn;
	uint32_t stream_id;
	const char *name;                /* "Service/Method", the method entry's */
	struct method_entry *method;
	bool stream;
	uint64_t deadline_ns;
	ev_timer timer;
	int fds[TTRPC_MAX_FDS];
	size_t nfds;
	ttrpc_call_cb cancel_cb;
	void *cancel_opaque;
	ttrpc_data_cb data_cb;
	void *data_opaque;
	bool ending;                     /* being cancelled: ends are ignored */
};

static uint64_t conn_next_id = 1;

static void conn_teardown(struct ttrpc_conn *c);
static void conn_free(struct ttrpc_conn *c);
static void conn_flush(struct ttrpc_conn *c);

struct ttrpc_server *ttrpc_server_new(struct ev_loop *loop)
{
	struct ttrpc_server *srv = xzalloc(sizeof(*srv));

	srv->loop = loop;
	srv->limits.max_out_bytes = TTRPC_DEFAULT_MAX_OUT;
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

		conn_teardown(c);
		if (!c->depth)
			conn_free(c);
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
	uint64_t h = 0xcbf29ce484222325ull ^ slen;  /* FNV-1a */

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

/* ---- output ---- */

static void conn_update_wio(struct ttrpc_conn *c)
{
	if (c->out_head && !c->closed)
		ev_io_start(c->loop, &c->wio);
	else
		ev_io_stop(c->loop, &c->wio);
}

static void out_chunk_free(struct ttrpc_conn *c, struct out_chunk *ch)
{
	ttrpc_close_fds(ch->fds, ch->nfds);
	if (TTRPC_RECYCLE && c->srv && !c->srv->spare && ch->b.cap <= TTRPC_SPARE_MAX) {
		ch->next = NULL;
		ch->b.len = ch->off = ch->nfds = 0;
		ch->sealed = false;
		c->srv->spare = ch;
		return;
	}
	free(ch->b.p);
	free(ch);
}

static void out_drop_all(struct ttrpc_conn *c)
{
	while (c->out_head) {
		struct out_chunk *ch = c->out_head;

		c->out_head = ch->next;
		out_chunk_free(c, ch);
	}
	c->out_tail = NULL;
	c->out_bytes = 0;
}

static struct out_chunk *out_chunk_new(struct ttrpc_conn *c)
{
	struct out_chunk *ch;

	if (c->srv && c->srv->spare) {
		ch = c->srv->spare;
		c->srv->spare = NULL;
	} else {
		ch = xzalloc(sizeof(*ch));
	}
	if (c->out_tail)
		c->out_tail->next = ch;
	else
		c->out_head = ch;
	c->out_tail = ch;
	return ch;
}

/* The buffer the next frame is appended to (the connection must be open). */
static struct ttrpc_buf *out_tail_buf(struct ttrpc_conn *c)
{
	struct out_chunk *ch = c->out_tail;

	if (!ch || ch->sealed || ch->b.len >= TTRPC_CHUNK_MAX)
		ch = out_chunk_new(c);
	return &ch->b;
}

static void close_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct ttrpc_conn *c = w->data;

	ttrpc_conn_close(c);
}

/* Drop the output and close from a zero-delay timer (never re-entrantly). */
static void conn_doom(struct ttrpc_conn *c)
{
	if (c->closed || c->doomed)
		return;
	c->doomed = true;
	out_drop_all(c);
	ev_io_stop(c->loop, &c->rio);
	ev_io_stop(c->loop, &c->wio);
	ev_timer_set(&c->close_timer, 0, 0);
	ev_timer_start(c->loop, &c->close_timer);
}

/*
 * Account for @len bytes just appended to the output. Return: 0, or -1 if
 * the connection was just condemned for not reading.
 */
static int out_commit(struct ttrpc_conn *c, size_t len)
{
	c->out_bytes += len;
	if (c->drain_cb && c->out_bytes > c->drain_low)
		c->drain_armed = true;
	if (c->out_bytes > c->max_out) {
		log_warn("ttrpc: conn %llu: peer is not reading (%zu bytes queued, limit %zu); disconnecting",
			 (unsigned long long)c->id, c->out_bytes, c->max_out);
		conn_doom(c);
		return -1;
	}
	return 0;
}

/*
 * Queue a frame; @buf and @fds pass to the connection. Return: 0, or -1 if
 * the connection is closed or was just condemned for not reading.
 */
static int conn_enqueue(struct ttrpc_conn *c, uint8_t *buf, size_t len, const int *fds, size_t nfds)
{
	struct out_chunk *ch;

	if (c->closed || c->doomed) {
		free(buf);
		for (size_t i = 0; i < nfds; i++)
			if (fds[i] >= 0)
				close(fds[i]);
		return -1;
	}
	if (nfds && c->peer.family != AF_UNIX) {
		log_warn("ttrpc: conn %llu: cannot pass fds on this transport; %zu fds dropped",
			 (unsigned long long)c->id, nfds);
		for (size_t i = 0; i < nfds; i++)
			if (fds[i] >= 0)
				close(fds[i]);
		nfds = 0;
	}
	if (nfds > TTRPC_MAX_FDS) {
		log_warn("ttrpc: conn %llu: %zu fds for one frame, only %d sent", (unsigned long long)c->id, nfds,
			 TTRPC_MAX_FDS);
		for (size_t i = TTRPC_MAX_FDS; i < nfds; i++)
			close(fds[i]);
		nfds = TTRPC_MAX_FDS;
	}
	if (nfds || len >= TTRPC_CHUNK_MAX) {
		/* a chunk of its own, taking the buffer as it is */
		ch = xzalloc(sizeof(*ch));
		ch->b = (struct ttrpc_buf){ .p = buf, .len = len, .cap = len };
		ch->sealed = true;
		if (nfds)
			memcpy(ch->fds, fds, nfds * sizeof(int));
		ch->nfds = nfds;
		if (c->out_tail)
			c->out_tail->next = ch;
		else
			c->out_head = ch;
		c->out_tail = ch;
	} else {
		struct ttrpc_buf *b = out_tail_buf(c);

		memcpy(ttrpc_buf_reserve(b, len), buf, len);
		b->len += len;
		free(buf);
	}
	if (out_commit(c, len) < 0)
		return -1;
	conn_update_wio(c);
	return 0;
}

/* Write as much as the socket takes. Return: 0, or -1 on a fatal error. */
static int conn_write(struct ttrpc_conn *c)
{
	while (c->out_head) {
		struct iovec iov[TTRPC_IOV_MAX];
		struct out_chunk *ch = c->out_head;
		const int *fds = NULL;
		size_t nfds = 0;
		int n = 0;
		ssize_t w;

		if (ch->nfds) {
			/* A frame with fds goes alone, starting at its first byte. */
			iov[0].iov_base = ch->b.p + ch->off;
			iov[0].iov_len = ch->b.len - ch->off;
			n = 1;
			fds = ch->fds;
			nfds = ch->nfds;
		} else {
			for (; ch && n < TTRPC_IOV_MAX && !ch->nfds; ch = ch->next, n++) {
				iov[n].iov_base = ch->b.p + ch->off;
				iov[n].iov_len = ch->b.len - ch->off;
			}
		}
		w = ttrpc_sock_send(c->fd, iov, n, fds, nfds);
		if (w == -EAGAIN)
			break;
		if (w < 0) {
			log_debug("ttrpc: conn %llu: send: %s", (unsigned long long)c->id, strerror((int)-w));
			return -1;
		}
		if (nfds) {
			/* The kernel holds its own references now. */
			ttrpc_close_fds(c->out_head->fds, c->out_head->nfds);
			c->out_head->nfds = 0;
		}
		c->out_bytes -= (size_t)w;
		while ((ch = c->out_head)) {
			size_t left = ch->b.len - ch->off;

			if ((size_t)w < left) {
				ch->off += (size_t)w;
				break;
			}
			w -= (ssize_t)left;
			c->out_head = ch->next;
			if (!c->out_head)
				c->out_tail = NULL;
			out_chunk_free(c, ch);
		}
	}
	return 0;
}

static void conn_flush(struct ttrpc_conn *c)
{
	if (c->closed || c->doomed)
		return;
	if (conn_write(c) < 0) {
		conn_doom(c);
		return;
	}
	conn_update_wio(c);
	if (c->drain_armed && c->out_bytes <= c->drain_low) {
		c->drain_armed = false;
		if (c->drain_cb)
			c->drain_cb(c, c->drain_opaque);
	}
}

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
	len = ttrpc_frame_append(out_tail_buf(c), stream_id, TTRPC_TYPE_RESPONSE, 0, &r.base, NULL, NULL,
				 SIZE_MAX);
	if (out_commit(c, len) < 0)
		return -1;
	conn_update_wio(c);
	return 0;
}

/* ---- calls ---- */

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

static void call_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct ttrpc_call *call = w->data;
	struct ttrpc_conn *c = call->conn;
	char msg[600];

	snprintf(msg, sizeof(msg), "%s: deadline exceeded", call->name);
	c->depth++;
	send_status(c, call->stream_id, VM_DEADLINE_EXCEEDED, msg);
	call_cancel(call);
	conn_flush(c);
	c->depth--;
	if (c->closed && !c->depth)
		conn_free(c);
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
	send_status(c, call->stream_id, code, msg);
	call_unlink_free(call);
	if (!c->depth)
		conn_flush(c);
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
			conn_enqueue(c, b.p, len, fds, nfds);
		else
			free(b.p);
	} else {
		/* no write watcher here: the flush below, or the one that ends the
		 * connection's callback this runs in, writes it or arms one */
		len = ttrpc_frame_append(out_tail_buf(c), call->stream_id, TTRPC_TYPE_RESPONSE, 0, &r.base,
					 &r.payload, msg, TTRPC_MAX_DATA);
		if (len)
			out_commit(c, len);
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
	call_unlink_free(call);
	if (!c->depth)
		conn_flush(c);
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
	len = ttrpc_frame_append(out_tail_buf(c), call->stream_id, TTRPC_TYPE_DATA, 0, msg, NULL, NULL,
				 TTRPC_MAX_DATA);
	if (!len) {
		log_warn("ttrpc: %s: stream message over the 4 MiB limit not sent", call->name);
		return -1;
	}
	if (out_commit(c, len) < 0)
		return -1;
	conn_update_wio(c);
	if (!c->depth)
		conn_flush(c);
	return c->closed || c->doomed ? -1 : 0;
}

void ttrpc_call_finish(struct ttrpc_call *call)
{
	call_end(call, VM_OK, "");
}

/* ---- input ---- */

static bool server_knows_service(const struct ttrpc_server *srv, const char *service, size_t slen)
{
	for (const struct method_entry *m = srv->methods; m; m = m->next)
		if (m->service_len == slen && !memcmp(m->service, service, slen))
			return true;
	return false;
}

static void request_free(Ttrpc__Request **req)
{
	if (*req)
		ttrpc__request__free_unpacked(*req, NULL);
}

static void conn_handle_request(struct ttrpc_conn *c, const struct ttrpc_frame *fr, int *fds, size_t nfds)
{
	struct ttrpc_server *srv = c->srv;
	uint32_t sid = fr->hdr.stream_id;
	__attribute__((cleanup(request_free))) Ttrpc__Request *req = NULL;
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
	req = ttrpc__request__unpack(NULL, fr->hdr.length, fr->data);
	if (!req) {
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
			snprintf(msg, sizeof(msg), "service %s not implemented (method %s)", req->service,
				 req->method);
		send_status(c, sid, VM_UNIMPLEMENTED, msg);
		ttrpc_close_fds(fds, nfds);
		return;
	}
	in = protobuf_c_message_unpack(m->input, NULL, req->payload.len, req->payload.data);
	if (!in) {
		snprintf(msg, sizeof(msg), "%s: cannot unpack the payload as %s", m->name, m->input->name);
		send_status(c, sid, VM_INVALID_ARGUMENT, msg);
		ttrpc_close_fds(fds, nfds);
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
	protobuf_c_message_free_unpacked(in, NULL);
}

static void conn_handle_data(struct ttrpc_conn *c, const struct ttrpc_frame *fr)
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

static void pending_finish(struct pending *p, const struct vm_error *st, const uint8_t *payload, size_t len)
{
	struct ttrpc_conn *c = p->conn;
	struct pending **pp;

	for (pp = &c->pending; *pp; pp = &(*pp)->next)
		if (*pp == p) {
			*pp = p->next;
			break;
		}
	ev_timer_stop(c->loop, &p->timer);
	p->cb(st, payload, len, p->opaque);
	free(p);
}

static struct pending *conn_find_pending(struct ttrpc_conn *c, uint32_t sid)
{
	for (struct pending *p = c->pending; p; p = p->next)
		if (p->stream_id == sid)
			return p;
	return NULL;
}

static void conn_handle_response(struct ttrpc_conn *c, const struct ttrpc_frame *fr)
{
	struct pending *p = conn_find_pending(c, fr->hdr.stream_id);
	struct vm_error st = { 0 };
	cleanup_free uint8_t *payload = NULL;
	size_t plen;

	if (!p)
		return;
	ttrpc_parse_response(fr->data, fr->hdr.length, &st, &payload, &plen);
	pending_finish(p, &st, payload, plen);
}

/* Handle one decoded frame. Return: false to stop reading. */
static bool conn_handle_frame(struct ttrpc_conn *c, enum ttrpc_decode_status ds, const struct ttrpc_frame *fr)
{
	int fds[TTRPC_MAX_FDS];
	size_t nfds = ttrpc_fdq_take(&c->fdq, fr->offset, fds);

	if (fr->hdr.type < TTRPC_TYPE_REQUEST || fr->hdr.type > TTRPC_TYPE_DATA) {
		log_warn("ttrpc: conn %llu: unknown frame type %u; closing", (unsigned long long)c->id,
			 fr->hdr.type);
		ttrpc_close_fds(fds, nfds);
		ttrpc_conn_close(c);
		return false;
	}
	if (ds == TTRPC_DECODE_OVERSIZE) {
		char msg[128];

		ttrpc_close_fds(fds, nfds);
		snprintf(msg, sizeof(msg), "message of %u bytes exceeds the %u byte limit", fr->hdr.length,
			 c->dec.max_data);
		log_warn("ttrpc: conn %llu: stream %u: %s", (unsigned long long)c->id, fr->hdr.stream_id, msg);
		if (c->srv && fr->hdr.type == TTRPC_TYPE_REQUEST) {
			send_status(c, fr->hdr.stream_id, VM_RESOURCE_EXHAUSTED, msg);
		} else if (c->srv && fr->hdr.type == TTRPC_TYPE_DATA) {
			struct ttrpc_call *call = conn_find_call(c, fr->hdr.stream_id);

			if (call && !call->ending) {
				send_status(c, call->stream_id, VM_RESOURCE_EXHAUSTED, msg);
				call_cancel(call);
			}
		} else if (!c->srv && fr->hdr.type == TTRPC_TYPE_RESPONSE) {
			struct pending *p = conn_find_pending(c, fr->hdr.stream_id);
			struct vm_error st = { .code = VM_RESOURCE_EXHAUSTED };

			snprintf(st.message, sizeof(st.message), "response %s", msg);
			if (p)
				pending_finish(p, &st, NULL, 0);
		}
		return !c->closed;
	}
	if (c->srv && fr->hdr.type == TTRPC_TYPE_REQUEST) {
		conn_handle_request(c, fr, fds, nfds);
		return !c->closed;
	}
	if (nfds) {
		log_warn("ttrpc: conn %llu: fds with a frame of type %u; closed", (unsigned long long)c->id,
			 fr->hdr.type);
		ttrpc_close_fds(fds, nfds);
	}
	if (c->srv && fr->hdr.type == TTRPC_TYPE_DATA)
		conn_handle_data(c, fr);
	else if (!c->srv && fr->hdr.type == TTRPC_TYPE_RESPONSE)
		conn_handle_response(c, fr);
	else
		log_debug("ttrpc: conn %llu: frame type %u ignored", (unsigned long long)c->id, fr->hdr.type);
	return !c->closed;
}

static void conn_read(struct ttrpc_conn *c)
{
	uint8_t buf[TTRPC_READ_CHUNK];

	/* Bounded per wakeup so one busy peer cannot starve the others. */
	for (int round = 0; round < 16 && !c->closed && !c->doomed; round++) {
		int fds[TTRPC_RECV_FDS];
		size_t nfds, pos = 0;
		ssize_t n = ttrpc_sock_recv(c->fd, buf, sizeof(buf), fds, &nfds);

		if (n == -EAGAIN)
			return;
		if (n <= 0) {
			ttrpc_close_fds(fds, nfds);
			if (n < 0)
				log_debug("ttrpc: conn %llu: recv: %s", (unsigned long long)c->id, strerror((int)-n));
			ttrpc_conn_close(c);
			return;
		}
		ttrpc_input_fds(&c->fdq, &c->dec, buf, (size_t)n, fds, nfds);
		while (pos < (size_t)n && !c->closed && !c->doomed) {
			struct ttrpc_frame fr;
			size_t used;
			enum ttrpc_decode_status ds = ttrpc_decoder_feed(&c->dec, buf + pos, (size_t)n - pos, &used, &fr);

			pos += used;
			if (ds == TTRPC_DECODE_ERROR) {
				log_warn("ttrpc: conn %llu: corrupt frame header (first byte not zero); closing",
					 (unsigned long long)c->id);
				ttrpc_conn_close(c);
				return;
			}
			if (ds == TTRPC_DECODE_NEED_MORE)
				break;
			if (!conn_handle_frame(c, ds, &fr))
				return;
		}
		if ((size_t)n < sizeof(buf))
			return;
	}
}

static void conn_io_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct ttrpc_conn *c = w->data;

	c->depth++;
	if (revents & EV_READ && w == &c->rio)
		conn_read(c);
	if (!c->closed)
		conn_flush(c);
	c->depth--;
	if (c->closed && !c->depth)
		conn_free(c);
}

#ifndef SO_PEERPIDFD
#define TTRPC_SO_PEERPIDFD 77
#else
#define TTRPC_SO_PEERPIDFD SO_PEERPIDFD
#endif

static void conn_fill_peer(struct ttrpc_conn *c)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);

	memset(&c->peer, 0, sizeof(c->peer));
	c->peer.pidfd = -1;
	if (getsockname(c->fd, (struct sockaddr *)&ss, &sl) == 0)
		c->peer.family = ss.ss_family;
	if (c->peer.family == AF_UNIX) {
		struct ucred cred;
		socklen_t cl = sizeof(cred);

		int pidfd = -1;
		socklen_t pl = sizeof(pidfd);

		if (getsockopt(c->fd, SOL_SOCKET, SO_PEERCRED, &cred, &cl) == 0) {
			c->peer.has_cred = true;
			c->peer.pid = cred.pid;
			c->peer.uid = cred.uid;
			c->peer.gid = cred.gid;
		}
		/* SO_PEERPIDFD pins the process that connected (Linux 6.5); the
		 * fallback is right unless the pid was reused since connect() */
		if (getsockopt(c->fd, SOL_SOCKET, TTRPC_SO_PEERPIDFD, &pidfd, &pl) == 0 && pidfd >= 0)
			c->peer.pidfd = pidfd;
		else if (c->peer.has_cred && c->peer.pid > 0)
			c->peer.pidfd = (int)syscall(SYS_pidfd_open, c->peer.pid, 0);
	} else if (c->peer.family == AF_VSOCK) {
		struct sockaddr_vm svm;
		socklen_t vl = sizeof(svm);

		if (getpeername(c->fd, (struct sockaddr *)&svm, &vl) == 0) {
			c->peer.cid = svm.svm_cid;
			c->peer.port = svm.svm_port;
		}
	}
}

static struct ttrpc_conn *conn_new(struct ev_loop *loop, int fd)
{
	struct ttrpc_conn *c = xzalloc(sizeof(*c));

	fd_set_nonblock(fd, true);
	fd_set_cloexec(fd, true);
	c->loop = loop;
	c->fd = fd;
	c->id = conn_next_id++;
	c->max_out = TTRPC_DEFAULT_MAX_OUT;
	c->next_stream = 1;
	ttrpc_decoder_init(&c->dec, TTRPC_MAX_DATA);
	ev_io_init(&c->rio, conn_io_cb, fd, EV_READ);
	ev_io_init(&c->wio, conn_io_cb, fd, EV_WRITE);
	c->rio.data = c->wio.data = c;
	ev_timer_init(&c->close_timer, close_timer_cb, 0, 0);
	c->close_timer.data = c;
	conn_fill_peer(c);
	ev_io_start(loop, &c->rio);
	return c;
}

static struct ttrpc_conn *server_add_conn(struct ttrpc_server *srv, int fd, struct ttrpc_listener *l)
{
	struct ttrpc_conn *c = conn_new(srv->loop, fd);

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
			conn_free(c);
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

/* Tear down everything but the struct itself; idempotent. */
static void conn_teardown(struct ttrpc_conn *c)
{
	struct ttrpc_server *srv = c->srv;

	if (c->closed)
		return;
	c->closed = true;
	ev_io_stop(c->loop, &c->rio);
	ev_io_stop(c->loop, &c->wio);
	ev_timer_stop(c->loop, &c->close_timer);
	c->depth++;
	while (c->calls)
		call_cancel(c->calls);
	while (c->pending) {
		struct vm_error st = { .code = VM_UNAVAILABLE };

		snprintf(st.message, sizeof(st.message), "ttrpc connection closed before the response");
		pending_finish(c->pending, &st, NULL, 0);
	}
	if (srv) {
		if (srv->on_close)
			srv->on_close(c, srv->conn_opaque);
	} else if (c->on_close) {
		c->on_close(c, c->close_opaque);
	}
	c->depth--;
	out_drop_all(c);
	ttrpc_fdq_clear(&c->fdq);
	ttrpc_decoder_release(&c->dec);
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	if (c->peer.pidfd >= 0)
		close(c->peer.pidfd);
	c->peer.pidfd = -1;
	if (srv) {
		if (c->prev)
			c->prev->next = c->next;
		else
			srv->conns = c->next;
		if (c->next)
			c->next->prev = c->prev;
		srv->nconns--;
		/* A listener paused at the connection limit may accept again. */
	}
}

static void conn_free(struct ttrpc_conn *c)
{
	free(c);
}

void ttrpc_conn_close(struct ttrpc_conn *c)
{
	if (c->closed)
		return;
	conn_teardown(c);
	if (!c->depth)
		conn_free(c);
}

const struct ttrpc_peer *ttrpc_conn_peer(const struct ttrpc_conn *conn)
{
	return &conn->peer;
}

uint64_t ttrpc_conn_id(const struct ttrpc_conn *conn)
{
	return conn->id;
}

struct ttrpc_listener *ttrpc_conn_listener(const struct ttrpc_conn *conn)
{
	return conn->listener;
}

void ttrpc_conn_set_data(struct ttrpc_conn *conn, void *data)
{
	conn->data = data;
}

void *ttrpc_conn_get_data(const struct ttrpc_conn *conn)
{
	return conn->data;
}

size_t ttrpc_conn_out_pending(const struct ttrpc_conn *conn)
{
	return conn->out_bytes;
}

void ttrpc_conn_set_drain_cb(struct ttrpc_conn *conn, size_t low_water, ttrpc_conn_cb cb, void *opaque)
{
	conn->drain_low = low_water;
	conn->drain_cb = cb;
	conn->drain_opaque = opaque;
	conn->drain_armed = cb && conn->out_bytes > low_water;
}

/* ---- listeners ---- */

static void listener_pause_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct ttrpc_listener *l = w->data;

	ev_io_start(loop, &l->io);
}

static void listener_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct ttrpc_listener *l = w->data;
	struct ttrpc_server *srv = l->srv;

	for (int i = 0; i < 64; i++) {
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
	if (listen(fd, 128) < 0) {
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
	if (listen(fd, 128) < 0)
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

/* ------------------------------------------------------ asynchronous client */

struct ttrpc_conn *ttrpc_client_conn_new(struct ev_loop *loop, int fd, ttrpc_conn_cb on_close, void *opaque)
{
	struct ttrpc_conn *c = conn_new(loop, fd);

	c->on_close = on_close;
	c->close_opaque = opaque;
	return c;
}

static void pending_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct pending *p = w->data;
	struct ttrpc_conn *c = p->conn;
	struct vm_error st = { .code = VM_DEADLINE_EXCEEDED };

	snprintf(st.message, sizeof(st.message), "ttrpc call on stream %u: deadline exceeded", p->stream_id);
	c->depth++;
	pending_finish(p, &st, NULL, 0);
	c->depth--;
	if (c->closed && !c->depth)
		conn_free(c);
}

int ttrpc_conn_call(struct ttrpc_conn *conn, const char *service, const char *method,
		    const ProtobufCMessage *req, uint64_t timeout_ns, ttrpc_reply_cb cb, void *opaque)
{
	struct pending *p;
	uint8_t *buf;
	size_t len;

	if (conn->closed || conn->doomed || conn->srv) {
		struct vm_error st = { .code = VM_UNAVAILABLE };

		snprintf(st.message, sizeof(st.message), "ttrpc connection is %s",
			 conn->srv ? "a server connection" : "closed");
		cb(&st, NULL, 0, opaque);
		return -1;
	}
	p = xzalloc(sizeof(*p));
	p->conn = conn;
	p->stream_id = conn->next_stream;
	conn->next_stream += 2;
	p->cb = cb;
	p->opaque = opaque;
	ev_timer_init(&p->timer, pending_timer_cb, (double)timeout_ns / 1e9, 0);
	p->timer.data = p;
	if (timeout_ns)
		ev_timer_start(conn->loop, &p->timer);
	p->next = conn->pending;
	conn->pending = p;
	buf = ttrpc_build_request(p->stream_id, 0, service, method, req, timeout_ns, &len);
	if (len - TTRPC_HEADER_SIZE > TTRPC_MAX_DATA) {
		struct vm_error st = { .code = VM_RESOURCE_EXHAUSTED };

		free(buf);
		snprintf(st.message, sizeof(st.message), "%s/%s: request exceeds the 4 MiB message limit", service,
			 method);
		pending_finish(p, &st, NULL, 0);
		return -1;
	}
	if (conn_enqueue(conn, buf, len, NULL, 0) < 0)
		return 0; /* the close timer completes the call with UNAVAILABLE */
	if (!conn->depth)
		conn_flush(conn);
	return 0;
}
