/* ttrpc-io.c - a ttrpc connection on a libev loop: socket I/O with
 * SCM_RIGHTS, the queue that ties received fds to their frame, input
 * decoding and the output queue. Shared by the server (ttrpc-server.c) and
 * the asynchronous client (ttrpc-client.c), which get each decoded frame
 * through the hooks of lib/ttrpc-priv.h.
 *
 * Design. Input is read non-blocking in chunks (bounded per wake-up, so one
 * busy peer cannot starve the others) and decoded, and every complete frame
 * of a read is handled before anything is written. Output is a queue of
 * chunks of whole frames, back to back: frames are packed straight into the
 * last chunk, so the answers to one batch of requests are one buffer and go
 * out in one sendmsg(). A frame that carries fds has a chunk of its own and
 * is written by a sendmsg() of its own that begins with its first byte (the
 * fd rule, see lib/ttrpc-priv.h). Output is bounded: once more than
 * max_out bytes are queued the peer is not reading, the queue is dropped
 * and the connection closed from a zero-delay timer (never from inside the
 * caller's reply, so handlers are not re-entered). Teardown that happens
 * inside one of our own libev callbacks is deferred until that callback
 * unwinds (conn->depth), so a handler may close its own connection.
 */
#include "config.h"
#include "lib/ttrpc.h"
#include "lib/ttrpc-priv.h"

#include <errno.h>
#include <linux/vm_sockets.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>

#include "lib/log.h"

static uint64_t conn_next_id = 1;

/* ---------------------------------------------- socket I/O, received fds */

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

void ttrpc_input_fds(struct ttrpc_fdq *q, const struct ttrpc_decoder *d, const uint8_t *buf, size_t len, const int *fds,
		     size_t nfds)
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

/* ------------------------------------------------------------------ output */

void ttrpc_conn_update_wio(struct ttrpc_conn *c)
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
struct ttrpc_buf *ttrpc_out_tail(struct ttrpc_conn *c)
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
int ttrpc_out_commit(struct ttrpc_conn *c, size_t len)
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
int ttrpc_conn_enqueue(struct ttrpc_conn *c, uint8_t *buf, size_t len, const int *fds, size_t nfds)
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
		struct ttrpc_buf *b = ttrpc_out_tail(c);

		memcpy(ttrpc_buf_reserve(b, len), buf, len);
		b->len += len;
		free(buf);
	}
	if (ttrpc_out_commit(c, len) < 0)
		return -1;
	ttrpc_conn_update_wio(c);
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

void ttrpc_conn_flush(struct ttrpc_conn *c)
{
	if (c->closed || c->doomed)
		return;
	if (conn_write(c) < 0) {
		conn_doom(c);
		return;
	}
	ttrpc_conn_update_wio(c);
	if (c->drain_armed && c->out_bytes <= c->drain_low) {
		c->drain_armed = false;
		if (c->drain_cb)
			c->drain_cb(c, c->drain_opaque);
	}
}

/* ------------------------------------------------------------------ input */

/* Handle one decoded frame. Return: false to stop reading. */
static bool conn_handle_frame(struct ttrpc_conn *c, enum ttrpc_decode_status ds, const struct ttrpc_frame *fr)
{
	int fds[TTRPC_MAX_FDS];
	size_t nfds = ttrpc_fdq_take(&c->fdq, fr->offset, fds);

	if (fr->hdr.type < TTRPC_TYPE_REQUEST || fr->hdr.type > TTRPC_TYPE_DATA) {
		log_warn("ttrpc: conn %llu: unknown frame type %u; closing", (unsigned long long)c->id, fr->hdr.type);
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
		if (c->srv)
			ttrpc_server_oversize(c, fr, msg);
		else
			ttrpc_client_oversize(c, fr, msg);
		return !c->closed;
	}
	if (c->srv && fr->hdr.type == TTRPC_TYPE_REQUEST) {
		ttrpc_server_request(c, fr, fds, nfds);
		return !c->closed;
	}
	if (nfds) {
		log_warn("ttrpc: conn %llu: fds with a frame of type %u; closed", (unsigned long long)c->id,
			 fr->hdr.type);
		ttrpc_close_fds(fds, nfds);
	}
	if (c->srv && fr->hdr.type == TTRPC_TYPE_DATA)
		ttrpc_server_data(c, fr);
	else if (!c->srv && fr->hdr.type == TTRPC_TYPE_RESPONSE)
		ttrpc_client_response(c, fr);
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
			enum ttrpc_decode_status ds = ttrpc_decoder_feed(&c->dec, buf + pos, (size_t)n - pos, &used,
									 &fr);

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
		ttrpc_conn_flush(c);
	c->depth--;
	if (c->closed && !c->depth)
		ttrpc_conn_free(c);
}

/* ------------------------------------------------------------- connections */

#ifndef SO_PEERPIDFD
#define TTRPC_SO_PEERPIDFD 77
#else
#define TTRPC_SO_PEERPIDFD SO_PEERPIDFD
#endif

#ifndef SO_PEERGROUPS
#define SO_PEERGROUPS 59
#endif
/* The kernel allows 65536 supplementary groups; nobody means that many. */
#define TTRPC_PEER_GROUPS_MAX 65536

/* SO_PEERGROUPS: the groups captured when the peer connected, the one place
 * the daemon learns them (no /proc reads that race with the peer's exec). */
static void conn_fill_groups(struct ttrpc_conn *c)
{
	socklen_t len = 64 * sizeof(gid_t);

	for (int tries = 0; tries < 2; tries++) {
		gid_t *g = xmalloc(len ? len : sizeof(gid_t));
		socklen_t got = len;

		if (getsockopt(c->fd, SOL_SOCKET, SO_PEERGROUPS, g, &got) == 0) {
			c->peer.groups = g;
			c->peer.ngroups = got / sizeof(gid_t);
			c->peer.has_groups = true;
			return;
		}
		free(g);
		/* ERANGE tells the size needed in got */
		if (errno != ERANGE || got <= len || got > TTRPC_PEER_GROUPS_MAX * sizeof(gid_t))
			return;
		len = got;
	}
}

bool ttrpc_peer_in_group(const struct ttrpc_peer *peer, gid_t gid)
{
	if (!peer->has_cred)
		return false;
	if (peer->gid == gid)
		return true;
	for (size_t i = 0; i < peer->ngroups; i++)
		if (peer->groups[i] == gid)
			return true;
	return false;
}

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
		conn_fill_groups(c);
	} else if (c->peer.family == AF_VSOCK) {
		struct sockaddr_vm svm;
		socklen_t vl = sizeof(svm);

		if (getpeername(c->fd, (struct sockaddr *)&svm, &vl) == 0) {
			c->peer.cid = svm.svm_cid;
			c->peer.port = svm.svm_port;
		}
	}
}

struct ttrpc_conn *ttrpc_conn_new(struct ev_loop *loop, int fd)
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

void ttrpc_conn_teardown(struct ttrpc_conn *c)
{
	if (c->closed)
		return;
	c->closed = true;
	ev_io_stop(c->loop, &c->rio);
	ev_io_stop(c->loop, &c->wio);
	ev_timer_stop(c->loop, &c->close_timer);
	c->depth++;
	if (c->srv)
		ttrpc_server_conn_closing(c);
	else
		ttrpc_client_conn_closing(c);
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
	free(c->peer.groups);
	c->peer.groups = NULL;
	c->peer.ngroups = 0;
	if (c->srv)
		ttrpc_server_conn_unlink(c);
}

void ttrpc_conn_free(struct ttrpc_conn *c)
{
	free(c);
}

void ttrpc_conn_close(struct ttrpc_conn *c)
{
	if (c->closed)
		return;
	ttrpc_conn_teardown(c);
	if (!c->depth)
		ttrpc_conn_free(c);
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
