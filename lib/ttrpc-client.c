/* ttrpc-client.c - the ttrpc clients: blocking (vmctl, tests, tools) and
 * asynchronous on a libev loop (the daemon and the agent).
 *
 * Design. The blocking client: one socket, calls made one after another by a single thread, but
 * several streams may be open at once, so every read decodes all complete
 * frames it delivers and parks those of other open streams in a FIFO until
 * their owner asks. Frames for streams nobody waits for (a unary call that
 * timed out locally, a stream already ended) are dropped, their fds closed.
 * Waiting uses poll() against an absolute CLOCK_MONOTONIC deadline, so a
 * local timeout holds however the bytes trickle in. Sends are non-blocking
 * sendmsg() calls retried after poll(POLLOUT); the fds of a request go with
 * its first byte (see lib/ttrpc-priv.h for the fd rule). A send that stops
 * half way through a frame (timeout) or a corrupt input stream leaves the
 * client "broken": every later call fails with the reason.
 *
 * The asynchronous client is a struct ttrpc_conn of ttrpc-io.c without a
 * server: requests go out through its output queue, each pending call has
 * its stream id and an optional deadline timer, and its callback runs
 * exactly once - with the Response, on the deadline, or UNAVAILABLE when
 * the connection closes first.
 */
#include "config.h"
#include "lib/ttrpc.h"
#include "lib/ttrpc-priv.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "lib/log.h"
#include "protos/ttrpc.pb-c.h"

/* Buffered frames of other streams beyond this break the connection. */
#define CLIENT_MAX_PARKED (64u << 20)

struct cl_frame {
	struct cl_frame *next;
	struct ttrpc_header hdr;
	bool oversize;
	uint8_t *data;
	int fds[TTRPC_MAX_FDS];
	size_t nfds;
};

struct cl_stream {
	struct cl_stream *next;
	uint32_t id;
	bool abandoned; /* nobody reads it any more: drop its frames */
	bool ended;	/* Data with remote-closed seen */
};

struct ttrpc_client {
	int fd;
	uint32_t next_stream;
	struct ttrpc_decoder dec;
	struct ttrpc_fdq fdq;
	struct cl_frame *q_head, *q_tail;
	size_t parked;
	struct cl_stream *streams;
	bool broken;
	struct vm_error broken_err;
};

struct ttrpc_client *ttrpc_client_from_fd(int fd)
{
	struct ttrpc_client *cl = xzalloc(sizeof(*cl));

	fd_set_cloexec(fd, true);
	cl->fd = fd;
	cl->next_stream = 1;
	ttrpc_decoder_init(&cl->dec, TTRPC_MAX_DATA);
	return cl;
}

struct ttrpc_client *ttrpc_client_connect_unix(const char *path, struct vm_error *err)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	cleanup_close int fd = -1;
	int r;

	if (strlen(path) >= sizeof(sun.sun_path))
		return vm_error_set(err, VM_INVALID_ARGUMENT, "socket path %s is too long", path), NULL;
	strcpy(sun.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return vm_error_set_errno(err, VM_INTERNAL, errno, "socket"), NULL;
	do
		r = connect(fd, (struct sockaddr *)&sun, sizeof(sun));
	while (r < 0 && errno == EINTR);
	if (r < 0)
		return vm_error_set_errno(err, VM_UNAVAILABLE, errno, "connect to %s", path), NULL;
	return ttrpc_client_from_fd(steal_fd(&fd));
}

static void cl_frame_free(struct cl_frame *f)
{
	ttrpc_close_fds(f->fds, f->nfds);
	free(f->data);
	free(f);
}

void ttrpc_client_free(struct ttrpc_client *cl)
{
	if (!cl)
		return;
	while (cl->q_head) {
		struct cl_frame *f = cl->q_head;

		cl->q_head = f->next;
		cl_frame_free(f);
	}
	while (cl->streams) {
		struct cl_stream *s = cl->streams;

		cl->streams = s->next;
		free(s);
	}
	ttrpc_fdq_clear(&cl->fdq);
	ttrpc_decoder_release(&cl->dec);
	if (cl->fd >= 0)
		close(cl->fd);
	free(cl);
}

int ttrpc_client_fd(const struct ttrpc_client *cl)
{
	return cl->fd;
}

static struct cl_stream *cl_find_stream(struct ttrpc_client *cl, uint32_t id)
{
	for (struct cl_stream *s = cl->streams; s; s = s->next)
		if (s->id == id)
			return s;
	return NULL;
}

static struct cl_stream *cl_add_stream(struct ttrpc_client *cl)
{
	struct cl_stream *s = xzalloc(sizeof(*s));

	s->id = cl->next_stream;
	cl->next_stream += 2;
	s->next = cl->streams;
	cl->streams = s;
	return s;
}

static void cl_remove_stream(struct ttrpc_client *cl, uint32_t id)
{
	for (struct cl_stream **pp = &cl->streams; *pp; pp = &(*pp)->next) {
		if ((*pp)->id == id) {
			struct cl_stream *s = *pp;

			*pp = s->next;
			free(s);
			return;
		}
	}
}

/* Drop parked frames of @sid: nobody will ask for them. */
static void cl_purge(struct ttrpc_client *cl, uint32_t sid)
{
	struct cl_frame **pp = &cl->q_head, *last = NULL;

	while (*pp) {
		struct cl_frame *f = *pp;

		if (f->hdr.stream_id == sid) {
			*pp = f->next;
			cl->parked -= f->hdr.length;
			cl_frame_free(f);
		} else {
			last = f;
			pp = &f->next;
		}
	}
	cl->q_tail = last;
}

/* Nobody reads @s any more: drop what is parked and what is still to come. */
static void cl_abandon(struct ttrpc_client *cl, struct cl_stream *s)
{
	s->abandoned = true;
	cl_purge(cl, s->id);
}

static int cl_break(struct ttrpc_client *cl, struct vm_error *err, int code, const char *what, const char *detail)
{
	if (!cl->broken) {
		cl->broken = true;
		vm_error_set(&cl->broken_err, code, "%s%s%s", what, detail ? ": " : "", detail ? detail : "");
	}
	if (err)
		*err = cl->broken_err;
	return -1;
}

static int ms_until(uint64_t deadline)
{
	uint64_t now;

	if (!deadline)
		return -1;
	now = now_mono_ns();
	if (now >= deadline)
		return 0;
	return (int)MIN((deadline - now + 999999) / 1000000, (uint64_t)INT32_MAX);
}

/* Send a whole frame; @fds go with its first byte. */
static int cl_send(struct ttrpc_client *cl, const uint8_t *buf, size_t len, const int *fds, size_t nfds,
		   uint64_t deadline, struct vm_error *err)
{
	size_t off = 0;

	if (cl->broken)
		return cl_break(cl, err, 0, "", NULL);
	while (off < len) {
		struct iovec iov = { .iov_base = (void *)(buf + off), .iov_len = len - off };
		ssize_t n = ttrpc_sock_send(cl->fd, &iov, 1, off ? NULL : fds, off ? 0 : nfds);

		if (n == -EAGAIN) {
			struct pollfd p = { .fd = cl->fd, .events = POLLOUT };
			int r = poll(&p, 1, ms_until(deadline));

			if (r == 0) {
				if (off)
					return cl_break(cl, err, VM_DEADLINE_EXCEEDED,
							"deadline exceeded in the middle of sending a frame", NULL);
				return vm_error_set(err, VM_DEADLINE_EXCEEDED, "deadline exceeded sending a request");
			}
			if (r < 0 && errno != EINTR)
				return cl_break(cl, err, VM_UNAVAILABLE, "poll", strerror(errno));
			continue;
		}
		if (n < 0)
			return cl_break(cl, err, VM_UNAVAILABLE, "send to the ttrpc server", strerror((int)-n));
		off += (size_t)n;
	}
	return 0;
}

/* Park or drop one decoded frame. */
static void cl_take_frame(struct ttrpc_client *cl, enum ttrpc_decode_status ds, const struct ttrpc_frame *fr)
{
	struct cl_stream *s = cl_find_stream(cl, fr->hdr.stream_id);
	struct cl_frame *f = xzalloc(sizeof(*f));

	f->nfds = ttrpc_fdq_take(&cl->fdq, fr->offset, f->fds);
	if (!s || (s->abandoned && fr->hdr.type != TTRPC_TYPE_RESPONSE) ||
	    (fr->hdr.type != TTRPC_TYPE_RESPONSE && fr->hdr.type != TTRPC_TYPE_DATA)) {
		cl_frame_free(f);
		return;
	}
	if (s->abandoned) {
		/* The Response of a stream nobody waits for: forget the stream. */
		cl_remove_stream(cl, s->id);
		cl_frame_free(f);
		return;
	}
	f->hdr = fr->hdr;
	f->oversize = ds == TTRPC_DECODE_OVERSIZE;
	if (!f->oversize && fr->hdr.length) {
		f->data = xmalloc(fr->hdr.length);
		memcpy(f->data, fr->data, fr->hdr.length);
	}
	cl->parked += fr->hdr.length;
	if (cl->q_tail)
		cl->q_tail->next = f;
	else
		cl->q_head = f;
	cl->q_tail = f;
}

/* Read once (waiting up to @deadline) and decode. Return: 1 read, 0 timeout, -1 broken. */
static int cl_read(struct ttrpc_client *cl, uint64_t deadline, struct vm_error *err)
{
	uint8_t buf[65536];
	int fds[TTRPC_RECV_FDS];
	size_t nfds, pos = 0;
	ssize_t n;

	if (cl->broken)
		return cl_break(cl, err, 0, "", NULL);
	for (;;) {
		struct pollfd p = { .fd = cl->fd, .events = POLLIN };
		int r = poll(&p, 1, ms_until(deadline));

		if (r == 0)
			return 0;
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return cl_break(cl, err, VM_UNAVAILABLE, "poll", strerror(errno));
		}
		n = ttrpc_sock_recv(cl->fd, buf, sizeof(buf), fds, &nfds);
		if (n == -EAGAIN)
			continue;
		break;
	}
	if (n == 0) {
		ttrpc_close_fds(fds, nfds);
		return cl_break(cl, err, VM_UNAVAILABLE, "the ttrpc server closed the connection", NULL);
	}
	if (n < 0)
		return cl_break(cl, err, VM_UNAVAILABLE, "receive from the ttrpc server", strerror((int)-n));
	ttrpc_input_fds(&cl->fdq, &cl->dec, buf, (size_t)n, fds, nfds);
	while (pos < (size_t)n) {
		struct ttrpc_frame fr;
		size_t used;
		enum ttrpc_decode_status ds = ttrpc_decoder_feed(&cl->dec, buf + pos, (size_t)n - pos, &used, &fr);

		pos += used;
		if (ds == TTRPC_DECODE_ERROR)
			return cl_break(cl, err, VM_INTERNAL, "corrupt ttrpc frame header from the server", NULL);
		if (ds == TTRPC_DECODE_NEED_MORE)
			break;
		cl_take_frame(cl, ds, &fr);
	}
	if (cl->parked > CLIENT_MAX_PARKED)
		return cl_break(cl, err, VM_RESOURCE_EXHAUSTED, "too much unread stream data buffered", NULL);
	return 1;
}

/* Next parked or incoming frame of @sid. Return: 1 with *out, 0 timeout, -1 error. */
static int cl_wait(struct ttrpc_client *cl, uint32_t sid, uint64_t deadline, struct cl_frame **out,
		   struct vm_error *err)
{
	for (;;) {
		struct cl_frame *prev = NULL;
		int r;

		for (struct cl_frame *f = cl->q_head; f; prev = f, f = f->next) {
			if (f->hdr.stream_id != sid)
				continue;
			if (prev)
				prev->next = f->next;
			else
				cl->q_head = f->next;
			if (cl->q_tail == f)
				cl->q_tail = prev;
			f->next = NULL;
			cl->parked -= f->hdr.length;
			*out = f;
			return 1;
		}
		r = cl_read(cl, deadline, err);
		if (r <= 0)
			return r;
	}
}

/* Status of a Response frame into @err. Return: 0 OK, -1 failed (err filled). */
static int cl_response_status(const struct cl_frame *f, uint8_t **payload, size_t *plen, struct vm_error *err)
{
	struct vm_error st = { 0 };

	*payload = NULL;
	*plen = 0;
	if (f->oversize)
		return vm_error_set(err, VM_RESOURCE_EXHAUSTED, "response of %u bytes exceeds the %u byte limit",
				    f->hdr.length, TTRPC_MAX_DATA);
	if (ttrpc_parse_response(f->data, f->hdr.length, &st, payload, plen) < 0) {
		if (err)
			*err = st;
		return -1;
	}
	if (st.code != VM_OK) {
		free(steal_pointer(payload));
		if (err)
			*err = st;
		return -1;
	}
	return 0;
}

int ttrpc_client_call(struct ttrpc_client *cl, const char *service, const char *method, const ProtobufCMessage *req,
		      const int *fds, size_t nfds, const ProtobufCMessageDescriptor *resp_desc, ProtobufCMessage **resp,
		      int *rfds, size_t *nrfds, uint64_t timeout_ns, struct vm_error *err)
{
	uint64_t deadline = timeout_ns ? now_mono_ns() + timeout_ns : 0;
	size_t rcap = nrfds ? *nrfds : 0;
	cleanup_free uint8_t *buf = NULL;
	cleanup_free uint8_t *payload = NULL;
	struct cl_stream *s;
	struct cl_frame *f = NULL;
	size_t len, plen;
	int r;

	if (resp)
		*resp = NULL;
	if (nrfds)
		*nrfds = 0;
	if (nfds > TTRPC_MAX_FDS)
		return vm_error_set(err, VM_INVALID_ARGUMENT, "%zu fds for one call, at most %d", nfds, TTRPC_MAX_FDS);
	if (cl->broken)
		return cl_break(cl, err, 0, "", NULL);
	s = cl_add_stream(cl);
	buf = ttrpc_build_request(s->id, 0, service, method, req, timeout_ns, &len);
	if (len - TTRPC_HEADER_SIZE > TTRPC_MAX_DATA) {
		cl_remove_stream(cl, s->id);
		return vm_error_set(err, VM_RESOURCE_EXHAUSTED, "%s/%s: request of %zu bytes exceeds the limit",
				    service, method, len - TTRPC_HEADER_SIZE);
	}
	if (cl_send(cl, buf, len, fds, nfds, deadline, err) < 0) {
		cl_remove_stream(cl, s->id);
		return -1;
	}
	for (;;) {
		r = cl_wait(cl, s->id, deadline, &f, err);
		if (r <= 0)
			break;
		if (f->hdr.type == TTRPC_TYPE_RESPONSE)
			break;
		cl_frame_free(f); /* Data on a unary call: not ours to interpret */
		f = NULL;
	}
	if (r == 0) {
		cl_abandon(cl, s);
		return vm_error_set(err, VM_DEADLINE_EXCEEDED, "%s/%s: deadline exceeded", service, method);
	}
	if (r < 0) {
		cl_remove_stream(cl, s->id);
		return vm_error_prefix(err, "%s/%s", service, method);
	}
	cl_remove_stream(cl, s->id);
	r = cl_response_status(f, &payload, &plen, err);
	if (r == 0 && resp_desc && resp) {
		*resp = protobuf_c_message_unpack(resp_desc, NULL, plen, payload);
		if (!*resp)
			r = vm_error_set(err, VM_INTERNAL, "%s/%s: cannot unpack the response as %s", service, method,
					 resp_desc->name);
	}
	if (r == 0 && rfds && nrfds) {
		size_t i;

		for (i = 0; i < f->nfds && i < rcap; i++)
			rfds[i] = steal_fd(&f->fds[i]);
		*nrfds = i;
	}
	cl_frame_free(f);
	return r;
}

int64_t ttrpc_client_stream_open(struct ttrpc_client *cl, const char *service, const char *method,
				 const ProtobufCMessage *req, uint8_t flags, uint64_t timeout_ns, struct vm_error *err)
{
	cleanup_free uint8_t *buf = NULL;
	struct cl_stream *s;
	size_t len;

	if (cl->broken)
		return cl_break(cl, err, 0, "", NULL);
	if (!(flags & (TTRPC_FLAG_REMOTE_CLOSED | TTRPC_FLAG_REMOTE_OPEN)))
		flags |= TTRPC_FLAG_REMOTE_CLOSED;
	s = cl_add_stream(cl);
	buf = ttrpc_build_request(s->id, flags, service, method, req, timeout_ns, &len);
	if (cl_send(cl, buf, len, NULL, 0, 0, err) < 0) {
		cl_remove_stream(cl, s->id);
		return -1;
	}
	return s->id;
}

int ttrpc_client_stream_send(struct ttrpc_client *cl, uint32_t stream_id, const uint8_t *data, size_t len, bool close,
			     struct vm_error *err)
{
	cleanup_free uint8_t *buf = NULL;
	size_t flen;

	if (len > TTRPC_MAX_DATA)
		return vm_error_set(err, VM_RESOURCE_EXHAUSTED, "stream data of %zu bytes exceeds the limit", len);
	buf = ttrpc_build_frame(stream_id, TTRPC_TYPE_DATA, close ? TTRPC_FLAG_REMOTE_CLOSED : 0, data, len, &flen);
	return cl_send(cl, buf, flen, NULL, 0, 0, err);
}

int ttrpc_client_stream_recv(struct ttrpc_client *cl, uint32_t stream_id, uint8_t **data, size_t *len, int timeout_ms,
			     struct vm_error *err)
{
	uint64_t deadline = 0;
	struct cl_stream *s = cl_find_stream(cl, stream_id);
	struct cl_frame *f = NULL;
	cleanup_free uint8_t *payload = NULL;
	size_t plen;
	int r;

	*data = NULL;
	*len = 0;
	if (!s || s->abandoned)
		return vm_error_set(err, VM_INVALID_ARGUMENT, "stream %u is not open", stream_id);
	if (s->ended) {
		cl_abandon(cl, s);
		return 0;
	}
	if (timeout_ms >= 0)
		deadline = now_mono_ns() + (uint64_t)timeout_ms * 1000000 + (timeout_ms == 0);
	r = cl_wait(cl, stream_id, deadline, &f, err);
	if (r == 0)
		return vm_error_set(err, VM_DEADLINE_EXCEEDED, "stream %u: no data within %d ms", stream_id,
				    timeout_ms);
	if (r < 0)
		return -1;
	if (f->hdr.type == TTRPC_TYPE_DATA) {
		bool closed = f->hdr.flags & TTRPC_FLAG_REMOTE_CLOSED;

		if (f->oversize) {
			cl_frame_free(f);
			cl_abandon(cl, s);
			return vm_error_set(err, VM_RESOURCE_EXHAUSTED, "stream %u: data frame over the limit",
					    stream_id);
		}
		if (closed && !f->hdr.length) {
			cl_frame_free(f);
			cl_abandon(cl, s);
			return 0;
		}
		s->ended = closed;
		*data = steal_pointer(&f->data);
		*len = f->hdr.length;
		if (!*data)
			*data = xmalloc(1);
		cl_frame_free(f);
		return 1;
	}
	cl_remove_stream(cl, stream_id);
	r = cl_response_status(f, &payload, &plen, err);
	cl_frame_free(f);
	return r < 0 ? -1 : 0;
}

void ttrpc_client_stream_abandon(struct ttrpc_client *cl, uint32_t stream_id)
{
	struct cl_stream *s = cl_find_stream(cl, stream_id);

	if (s)
		cl_abandon(cl, s);
}

/* ------------------------------------------------------ asynchronous client */

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

void ttrpc_client_response(struct ttrpc_conn *c, const struct ttrpc_frame *fr)
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

void ttrpc_client_oversize(struct ttrpc_conn *c, const struct ttrpc_frame *fr, const char *msg)
{
	struct pending *p;
	struct vm_error st = { .code = VM_RESOURCE_EXHAUSTED };

	if (fr->hdr.type != TTRPC_TYPE_RESPONSE || !(p = conn_find_pending(c, fr->hdr.stream_id)))
		return;
	snprintf(st.message, sizeof(st.message), "response %s", msg);
	pending_finish(p, &st, NULL, 0);
}

void ttrpc_client_conn_closing(struct ttrpc_conn *c)
{
	while (c->pending) {
		struct vm_error st = { .code = VM_UNAVAILABLE };

		snprintf(st.message, sizeof(st.message), "ttrpc connection closed before the response");
		pending_finish(c->pending, &st, NULL, 0);
	}
	if (c->on_close)
		c->on_close(c, c->close_opaque);
}

struct ttrpc_conn *ttrpc_client_conn_new(struct ev_loop *loop, int fd, ttrpc_conn_cb on_close, void *opaque)
{
	struct ttrpc_conn *c = ttrpc_conn_new(loop, fd);

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
		ttrpc_conn_free(c);
}

int ttrpc_conn_call(struct ttrpc_conn *conn, const char *service, const char *method, const ProtobufCMessage *req,
		    uint64_t timeout_ns, ttrpc_reply_cb cb, void *opaque)
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
	if (ttrpc_conn_enqueue(conn, buf, len, NULL, 0) < 0)
		return 0; /* the close timer completes the call with UNAVAILABLE */
	if (!conn->depth)
		ttrpc_conn_flush(conn);
	return 0;
}
