/* vsock_dev.c - virtio-vsock stream connections between a guest and host
 * Unix sockets.
 *
 * Host side follows Firecracker's hybrid convention: a host client connects
 * to the --uds socket and writes "CONNECT <port>\n"; once the guest accepts
 * it reads "OK <hostport>\n" and then raw bytes. A guest connection to host
 * port P is forwarded to the Unix socket "<uds>_P".
 *
 * Flow control. Guest to host: the guest may send at most our buf_alloc
 * bytes beyond the fwd_cnt we advertised. Payload is written straight from
 * guest memory to the host socket; what the socket does not take is kept in
 * a per-connection ring of exactly buf_alloc bytes, so the tx queue is always
 * drained, a slow host reader throttles only its own connection (through
 * credit), and memory per connection is bounded. A guest sending beyond its
 * credit gets its connection reset. Host to guest: a host socket is read only
 * while the guest's credit (buf_alloc - (tx_cnt - fwd_cnt)) is positive and
 * an rx buffer is free, directly into the rx buffer.
 *
 * The rx queue is fed from a round-robin list of connections that have
 * something to send (control packet or readable data), plus a small bounded
 * queue of RSTs for packets that match no connection. One packet per chain.
 *
 * Interrupts: using buffers only owes the guest a signal; an ev_prepare
 * watcher sends what is owed, once per queue, before the loop sleeps, so
 * the kicks and socket events handled in one loop iteration cost the guest
 * one interrupt per queue (under TCG each one is emulated work in the
 * guest and a wakeup of QEMU's main loop).
 */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/un.h>

#include "lib/log.h"
#include "server/vsock/vsock_dev.h"
#include "server/vsock/vsock_pkt.h"

#define HASH_BUCKETS 256
#define RST_QUEUE 256
#define MAX_RX_PAYLOAD (64 * 1024)
#define HOST_PORT_BASE 0x40000000u

enum vc_state { VC_HANDSHAKE, VC_CONNECTING, VC_ESTABLISHED, VC_CLOSING };

enum {
	P_REQUEST = 1u << 0,
	P_RESPONSE = 1u << 1,
	P_RST = 1u << 2,
	P_SHUTDOWN = 1u << 3,
	P_CREDIT = 1u << 4,
	P_DATA = 1u << 5,
};

struct vconn {
	struct vsock_dev *dev;
	uint32_t guest_port, host_port;
	int fd;
	enum vc_state state;
	ev_io rio, wio;
	bool hashed, queued;
	LIST_ENTRY(vconn) hlink;
	LIST_ENTRY(vconn) alink;
	TAILQ_ENTRY(vconn) rlink;
	unsigned pending;
	char line[32];
	size_t linelen;
	/* guest -> host bytes the host socket has not taken yet */
	uint8_t *buf;
	size_t head, len;
	uint32_t fwd_cnt, fwd_cnt_sent;
	/* host -> guest */
	uint32_t peer_buf_alloc, peer_fwd_cnt, tx_cnt;
	bool host_eof, guest_shut_send, guest_shut_rcv, host_shut_wr;
	bool early_data; /* host client wrote before "OK": stop watching for hangup */
};

struct rst_ent {
	uint64_t peer_cid; /* the CID the guest addressed, so its socket matches */
	uint32_t host_port, guest_port;
};

struct vsock_dev {
	struct ev_loop *loop;
	uint64_t cid;
	char *uds;
	int lfd;
	ev_io lio;
	struct virtq *rx, *tx;
	vsock_dev_fatal_fn fatal;
	void *opaque;
	LIST_HEAD(, vconn) hash[HASH_BUCKETS];
	TAILQ_HEAD(, vconn) ready;
	LIST_HEAD(, vconn) all;
	struct rst_ent rsts[RST_QUEUE];
	unsigned rst_head, rst_n;
	unsigned nconns;
	uint32_t next_port;
	bool broken, in_rx;
	ev_prepare notify_w; /* sends the interrupts owed before the loop sleeps */
	struct vq_chain chain;
	uint64_t *counters; /* VSOCK_DEV_STATS_SIZE of shared memory, or NULL */
};

/* One writer (this process); the reader (virtmgrd) loads each u64 atomically. */
static void dev_count(struct vsock_dev *dev, unsigned which, size_t n)
{
	if (dev->counters)
		__atomic_store_n(&dev->counters[which], dev->counters[which] + n, __ATOMIC_RELAXED);
}

void vsock_dev_set_counters(struct vsock_dev *dev, uint64_t *counters)
{
	dev->counters = counters;
}

static void dev_fatal(struct vsock_dev *dev, const char *why)
{
	dev->broken = true;
	dev->fatal(dev->opaque, why);
}

static unsigned hash_key(uint32_t gport, uint32_t hport)
{
	return (gport * 2654435761u ^ hport * 40503u) % HASH_BUCKETS;
}

static struct vconn *conn_find(struct vsock_dev *dev, uint32_t gport, uint32_t hport)
{
	struct vconn *c;

	LIST_FOREACH(c, &dev->hash[hash_key(gport, hport)], hlink)
	if (c->guest_port == gport && c->host_port == hport)
		return c;
	return NULL;
}

static void conn_hash(struct vconn *c)
{
	LIST_INSERT_HEAD(&c->dev->hash[hash_key(c->guest_port, c->host_port)], c, hlink);
	c->hashed = true;
}

static void conn_close_fd(struct vconn *c)
{
	if (c->fd < 0)
		return;
	ev_io_stop(c->dev->loop, &c->rio);
	ev_io_stop(c->dev->loop, &c->wio);
	close(c->fd);
	c->fd = -1;
}

static void conn_free(struct vconn *c)
{
	struct vsock_dev *dev = c->dev;

	log_debug("connection guest port %u <-> host port %u closed", c->guest_port, c->host_port);
	conn_close_fd(c);
	if (c->hashed)
		LIST_REMOVE(c, hlink);
	if (c->queued)
		TAILQ_REMOVE(&dev->ready, c, rlink);
	LIST_REMOVE(c, alink);
	free(c->buf);
	free(c);
	dev->nconns--;
}

static void conn_schedule(struct vconn *c, unsigned bits)
{
	c->pending |= bits;
	if (!c->queued) {
		TAILQ_INSERT_TAIL(&c->dev->ready, c, rlink);
		c->queued = true;
	}
}

/* Tear the connection down and tell the guest with an RST. */
static void conn_reset(struct vconn *c)
{
	conn_close_fd(c);
	c->state = VC_CLOSING;
	c->pending = 0;
	if (c->hashed)
		conn_schedule(c, P_RST);
	else
		conn_free(c);
}

static uint32_t conn_credit(const struct vconn *c)
{
	uint32_t inflight = c->tx_cnt - c->peer_fwd_cnt;

	return inflight >= c->peer_buf_alloc ? 0 : c->peer_buf_alloc - inflight;
}

static void conn_update_rio(struct vconn *c)
{
	bool want = c->fd >= 0 && c->state == VC_ESTABLISHED && !c->host_eof && !c->guest_shut_rcv &&
		    !(c->pending & P_DATA) && conn_credit(c) > 0;

	if (c->state == VC_HANDSHAKE)
		want = true;
	/* while the guest has not answered, notice a client that gives up */
	if (c->state == VC_CONNECTING)
		want = c->fd >= 0 && !c->early_data;
	if (want && !ev_is_active(&c->rio))
		ev_io_start(c->dev->loop, &c->rio);
	else if (!want && ev_is_active(&c->rio))
		ev_io_stop(c->dev->loop, &c->rio);
}

static void conn_update_wio(struct vconn *c)
{
	bool want = c->fd >= 0 && c->len > 0;

	if (want && !ev_is_active(&c->wio))
		ev_io_start(c->dev->loop, &c->wio);
	else if (!want && ev_is_active(&c->wio))
		ev_io_stop(c->dev->loop, &c->wio);
}

static void conn_maybe_credit(struct vconn *c)
{
	if (c->fwd_cnt - c->fwd_cnt_sent >= VSOCK_DEV_BUF_ALLOC / 4)
		conn_schedule(c, P_CREDIT);
}

/* After a guest SHUTDOWN, once everything buffered reached the host. */
static void conn_check_shutdown(struct vconn *c)
{
	if (c->len > 0 || c->state != VC_ESTABLISHED)
		return;
	if (c->guest_shut_send && c->guest_shut_rcv) {
		/* the guest closed: acknowledge with RST, as Linux expects */
		conn_reset(c);
		return;
	}
	if (c->guest_shut_send && !c->host_shut_wr && c->fd >= 0) {
		shutdown(c->fd, SHUT_WR);
		c->host_shut_wr = true;
	}
}

static void rx_run(struct vsock_dev *dev);

static ssize_t send_iov(int fd, struct iovec *iov, unsigned n)
{
	struct msghdr msg = { .msg_iov = iov, .msg_iovlen = n };
	ssize_t r;

	do
		r = sendmsg(fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
	while (r < 0 && errno == EINTR);
	return r;
}

/* Write the ring buffer to the host socket. Return: -1 if the socket failed. */
static int conn_flush(struct vconn *c)
{
	while (c->len > 0) {
		struct iovec iov[2];
		size_t first = MIN(c->len, VSOCK_DEV_BUF_ALLOC - c->head);
		unsigned n = 1;

		iov[0] = (struct iovec){ c->buf + c->head, first };
		if (first < c->len) {
			iov[1] = (struct iovec){ c->buf, c->len - first };
			n = 2;
		}
		ssize_t r = send_iov(c->fd, iov, n);
		if (r < 0) {
			if (errno == EAGAIN)
				break;
			log_debug("host port %u: write failed: %s", c->host_port, strerror(errno));
			return -1;
		}
		c->head = (c->head + (size_t)r) % VSOCK_DEV_BUF_ALLOC;
		c->len -= (size_t)r;
		c->fwd_cnt += (uint32_t)r;
		dev_count(c->dev, 1, (size_t)r);
	}
	return 0;
}

static void conn_wio_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct vconn *c = w->data;
	struct vsock_dev *dev = c->dev;

	if (conn_flush(c) < 0) {
		conn_reset(c);
	} else {
		conn_update_wio(c);
		conn_maybe_credit(c);
		conn_check_shutdown(c);
	}
	rx_run(dev);
}

/* Guest payload for an established connection. */
static void conn_recv_guest(struct vconn *c, const struct vq_chain *chain, uint32_t len)
{
	uint64_t off = VSOCK_HDR_SIZE;

	if (len == 0)
		return;
	if (c->len + len > VSOCK_DEV_BUF_ALLOC) {
		log_warn("guest port %u -> host port %u: %u bytes exceed the credit granted, resetting", c->guest_port,
			 c->host_port, len);
		conn_reset(c);
		return;
	}
	if (c->len == 0) {
		struct vq_iov sl[VQ_CHAIN_MAX_IOV];
		struct iovec iov[VQ_CHAIN_MAX_IOV];
		unsigned n = vq_chain_slice(chain, false, off, len, sl, VQ_CHAIN_MAX_IOV);

		for (unsigned i = 0; i < n; i++)
			iov[i] = (struct iovec){ sl[i].base, sl[i].len };
		ssize_t r = send_iov(c->fd, iov, n);
		if (r < 0 && errno != EAGAIN) {
			log_debug("host port %u: write failed: %s", c->host_port, strerror(errno));
			conn_reset(c);
			return;
		}
		if (r > 0) {
			c->fwd_cnt += (uint32_t)r;
			dev_count(c->dev, 1, (size_t)r);
			off += (uint64_t)r;
			len -= (uint32_t)r;
		}
	}
	if (len > 0) {
		if (!c->buf)
			c->buf = xmalloc(VSOCK_DEV_BUF_ALLOC);
		size_t tail = (c->head + c->len) % VSOCK_DEV_BUF_ALLOC;
		size_t first = MIN((size_t)len, VSOCK_DEV_BUF_ALLOC - tail);
		vq_chain_read(chain, off, c->buf + tail, first);
		if (first < len)
			vq_chain_read(chain, off + first, c->buf, len - first);
		c->len += len;
		conn_update_wio(c);
	}
	conn_maybe_credit(c);
}

static struct vconn *conn_new(struct vsock_dev *dev, int fd, enum vc_state state);

static void queue_rst(struct vsock_dev *dev, uint64_t peer_cid, uint32_t host_port, uint32_t guest_port)
{
	if (dev->rst_n == RST_QUEUE) {
		log_debug("RST queue full, dropping RST to guest port %u", guest_port);
		return;
	}
	dev->rsts[(dev->rst_head + dev->rst_n) % RST_QUEUE] = (struct rst_ent){ peer_cid, host_port, guest_port };
	dev->rst_n++;
}

/* Guest REQUEST to host port P: connect to "<uds>_P". */
static void guest_connect(struct vsock_dev *dev, const struct vsock_hdr *h)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int n = snprintf(sa.sun_path, sizeof(sa.sun_path), "%s_%" PRIu32, dev->uds, h->dst_port);

	if (dev->nconns >= VSOCK_DEV_MAX_CONNS || n < 0 || (size_t)n >= sizeof(sa.sun_path)) {
		queue_rst(dev, h->dst_cid, h->dst_port, h->src_port);
		return;
	}
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		log_debug("guest port %u -> %s: %s", h->src_port, sa.sun_path, strerror(errno));
		if (fd >= 0)
			close(fd);
		queue_rst(dev, h->dst_cid, h->dst_port, h->src_port);
		return;
	}
	struct vconn *c = conn_new(dev, fd, VC_ESTABLISHED);
	c->guest_port = h->src_port;
	c->host_port = h->dst_port;
	c->peer_buf_alloc = h->buf_alloc;
	c->peer_fwd_cnt = h->fwd_cnt;
	conn_hash(c);
	log_debug("guest port %u connected to %s", c->guest_port, sa.sun_path);
	conn_schedule(c, P_RESPONSE);
}

static void tx_packet(struct vsock_dev *dev, const struct vq_chain *chain)
{
	struct vsock_hdr h;
	const char *why;
	enum vsock_verdict v = vsock_pkt_parse(chain, dev->cid, &h, &why);

	switch (v) {
	case VSOCK_PKT_FATAL:
		dev_fatal(dev, why);
		return;
	case VSOCK_PKT_DROP:
		log_debug("dropping %s from guest port %u: %s", vsock_op_name(h.op), h.src_port, why);
		return;
	case VSOCK_PKT_RST:
		log_debug("resetting %s from guest port %u to %" PRIu64 ":%u: %s", vsock_op_name(h.op), h.src_port,
			  h.dst_cid, h.dst_port, why);
		queue_rst(dev, h.dst_cid, h.dst_port, h.src_port);
		return;
	case VSOCK_PKT_OK:
		break;
	}

	struct vconn *c = conn_find(dev, h.src_port, h.dst_port);
	if (!c) {
		if (h.op == VSOCK_OP_REQUEST)
			guest_connect(dev, &h);
		else if (h.op != VSOCK_OP_RST)
			queue_rst(dev, h.dst_cid, h.dst_port, h.src_port);
		return;
	}
	if (c->state == VC_CLOSING)
		return; /* our RST is on its way */
	c->peer_buf_alloc = h.buf_alloc;
	c->peer_fwd_cnt = h.fwd_cnt;
	if (h.op != VSOCK_OP_RW && h.op != VSOCK_OP_CREDIT_UPDATE)
		log_debug("guest port %u -> host port %u: %s len %u flags %u", h.src_port, h.dst_port,
			  vsock_op_name(h.op), h.len, h.flags);

	switch (h.op) {
	case VSOCK_OP_REQUEST:
		conn_reset(c); /* duplicate */
		return;
	case VSOCK_OP_RESPONSE: {
		if (c->state != VC_CONNECTING) {
			conn_reset(c);
			return;
		}
		char ok[32];
		int n = snprintf(ok, sizeof(ok), "OK %" PRIu32 "\n", c->host_port);
		/* the first bytes on a fresh socket: the send buffer is empty */
		if (send(c->fd, ok, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT) != n) {
			conn_reset(c);
			return;
		}
		c->state = VC_ESTABLISHED;
		log_debug("host port %u connected to guest port %u", c->host_port, c->guest_port);
		break;
	}
	case VSOCK_OP_RST:
		conn_free(c);
		return;
	case VSOCK_OP_SHUTDOWN:
		if (h.flags & VSOCK_SHUTDOWN_SEND)
			c->guest_shut_send = true;
		if (h.flags & VSOCK_SHUTDOWN_RCV)
			c->guest_shut_rcv = true;
		conn_check_shutdown(c);
		if (c->state == VC_CLOSING)
			return;
		break;
	case VSOCK_OP_RW:
		if (c->state != VC_ESTABLISHED || c->guest_shut_send) {
			conn_reset(c);
			return;
		}
		conn_recv_guest(c, chain, h.len);
		if (c->state == VC_CLOSING)
			return;
		break;
	case VSOCK_OP_CREDIT_REQUEST:
		conn_schedule(c, P_CREDIT);
		break;
	case VSOCK_OP_CREDIT_UPDATE:
	default:
		break;
	}
	conn_update_rio(c);
}

static void put_hdr(const struct vq_chain *chain, const struct vsock_hdr *h)
{
	uint8_t wire[VSOCK_HDR_SIZE];

	vsock_hdr_encode(h, wire);
	vq_chain_write(chain, 0, wire, sizeof(wire));
}

static struct vsock_hdr conn_hdr(struct vconn *c, enum vsock_op op)
{
	struct vsock_hdr h = {
		.src_cid = VSOCK_HOST_CID,
		.dst_cid = c->dev->cid,
		.src_port = c->host_port,
		.dst_port = c->guest_port,
		.type = VSOCK_TYPE_STREAM,
		.op = op,
		.buf_alloc = VSOCK_DEV_BUF_ALLOC,
		.fwd_cnt = c->fwd_cnt,
	};
	c->fwd_cnt_sent = c->fwd_cnt;
	return h;
}

/*
 * Put the connection's most urgent packet into @chain.
 * Return: bytes used in the chain, 0 if the connection had nothing to send.
 */
static uint32_t conn_fill(struct vconn *c, const struct vq_chain *chain)
{
	struct vsock_hdr h;
	uint32_t used = VSOCK_HDR_SIZE;

	for (;;) {
		if (c->pending & P_RST) {
			h = conn_hdr(c, VSOCK_OP_RST);
			put_hdr(chain, &h);
			conn_free(c);
			return used;
		}
		if (c->pending & (P_REQUEST | P_RESPONSE)) {
			h = conn_hdr(c, (c->pending & P_REQUEST) ? VSOCK_OP_REQUEST : VSOCK_OP_RESPONSE);
			c->pending &= ~(P_REQUEST | P_RESPONSE);
			break;
		}
		if (c->pending & P_DATA) {
			uint64_t room = chain->in_len - VSOCK_HDR_SIZE;
			uint32_t max = (uint32_t)MIN(MIN((uint64_t)conn_credit(c), room), (uint64_t)MAX_RX_PAYLOAD);
			if (max == 0 || c->fd < 0) {
				c->pending &= ~P_DATA;
				continue;
			}
			struct vq_iov sl[VQ_CHAIN_MAX_IOV];
			struct iovec iov[VQ_CHAIN_MAX_IOV];
			unsigned n = vq_chain_slice(chain, true, VSOCK_HDR_SIZE, max, sl, VQ_CHAIN_MAX_IOV);
			for (unsigned i = 0; i < n; i++)
				iov[i] = (struct iovec){ sl[i].base, sl[i].len };
			ssize_t r;
			do
				r = readv(c->fd, iov, (int)n);
			while (r < 0 && errno == EINTR);
			if (r > 0) {
				h = conn_hdr(c, VSOCK_OP_RW);
				h.len = (uint32_t)r;
				c->tx_cnt += (uint32_t)r;
				used += (uint32_t)r;
				dev_count(c->dev, 0, (size_t)r);
				break;
			}
			c->pending &= ~P_DATA;
			if (r == 0) {
				c->host_eof = true;
				c->pending |= P_SHUTDOWN;
			} else if (errno != EAGAIN) {
				log_debug("host port %u: read failed: %s", c->host_port, strerror(errno));
				conn_close_fd(c);
				c->state = VC_CLOSING;
				c->pending = P_RST;
			}
			continue;
		}
		if (c->pending & P_SHUTDOWN) {
			h = conn_hdr(c, VSOCK_OP_SHUTDOWN);
			h.flags = VSOCK_SHUTDOWN_SEND;
			c->pending &= ~P_SHUTDOWN;
			break;
		}
		if (c->pending & P_CREDIT) {
			h = conn_hdr(c, VSOCK_OP_CREDIT_UPDATE);
			break;
		}
		conn_update_rio(c);
		return 0;
	}
	c->pending &= ~P_CREDIT;
	put_hdr(chain, &h);
	if (c->pending)
		conn_schedule(c, 0);
	conn_update_rio(c);
	return used;
}

static void rx_run(struct vsock_dev *dev)
{
	struct vm_error err;
	bool pushed = false;

	if (dev->in_rx)
		return;
	dev->in_rx = true;
	while (!dev->broken && (dev->rst_n > 0 || !TAILQ_EMPTY(&dev->ready))) {
		struct vq_chain *chain = &dev->chain;
		int r = virtq_pop(dev->rx, chain, &err);
		if (r < 0) {
			dev_fatal(dev, err.message);
			break;
		}
		if (r == 0)
			break;
		if (chain->in_len < VSOCK_HDR_SIZE) {
			dev_fatal(dev, "rx buffer shorter than the packet header");
			break;
		}
		uint32_t used;
		if (dev->rst_n > 0) {
			struct rst_ent *e = &dev->rsts[dev->rst_head];
			struct vsock_hdr h = {
				.src_cid = e->peer_cid,
				.dst_cid = dev->cid,
				.src_port = e->host_port,
				.dst_port = e->guest_port,
				.type = VSOCK_TYPE_STREAM,
				.op = VSOCK_OP_RST,
			};
			put_hdr(chain, &h);
			dev->rst_head = (dev->rst_head + 1) % RST_QUEUE;
			dev->rst_n--;
			used = VSOCK_HDR_SIZE;
		} else {
			struct vconn *c = TAILQ_FIRST(&dev->ready);
			TAILQ_REMOVE(&dev->ready, c, rlink);
			c->queued = false;
			used = conn_fill(c, chain);
		}
		if (used == 0) {
			virtq_unpop(dev->rx);
			continue;
		}
		virtq_push(dev->rx, chain->head, used);
		pushed = true;
	}
	if (pushed)
		virtq_notify_later(dev->rx);
	dev->in_rx = false;
}

static void notify_cb(struct ev_loop *loop, ev_prepare *w, int revents)
{
	struct vsock_dev *dev = w->data;

	virtq_flush_notify(dev->tx);
	virtq_flush_notify(dev->rx);
}

static uint32_t alloc_host_port(struct vsock_dev *dev, uint32_t gport)
{
	for (;;) {
		uint32_t p = dev->next_port++;
		if (dev->next_port < HOST_PORT_BASE)
			dev->next_port = HOST_PORT_BASE;
		if (!conn_find(dev, gport, p))
			return p;
	}
}

/* Read "CONNECT <port>\n" byte by byte so no payload is consumed. */
static void conn_handshake(struct vconn *c)
{
	struct vsock_dev *dev = c->dev;

	for (;;) {
		char ch;
		ssize_t r = recv(c->fd, &ch, 1, MSG_DONTWAIT);
		if (r < 0 && (errno == EAGAIN || errno == EINTR))
			return;
		if (r <= 0) {
			conn_free(c);
			return;
		}
		if (ch != '\n') {
			if (c->linelen + 1 >= sizeof(c->line)) {
				log_warn("host client: handshake line too long, closing");
				conn_free(c);
				return;
			}
			c->line[c->linelen++] = ch;
			continue;
		}
		c->line[c->linelen] = '\0';
		break;
	}
	char *end;
	const char *num = c->line + strlen("CONNECT ");
	unsigned long port = 0;
	if (strncmp(c->line, "CONNECT ", 8) == 0 && *num >= '0' && *num <= '9') {
		errno = 0;
		port = strtoul(num, &end, 10);
	}
	if (strncmp(c->line, "CONNECT ", 8) != 0 || *num < '0' || *num > '9' || errno || *end || port > UINT32_MAX) {
		log_warn("host client: bad handshake \"%s\" (want \"CONNECT <port>\"), closing", c->line);
		conn_free(c);
		return;
	}
	c->guest_port = (uint32_t)port;
	c->host_port = alloc_host_port(dev, c->guest_port);
	c->state = VC_CONNECTING;
	/* the guest's credit is unknown until its RESPONSE */
	conn_hash(c);
	conn_schedule(c, P_REQUEST);
	conn_update_rio(c);
}

static void conn_rio_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct vconn *c = w->data;
	struct vsock_dev *dev = c->dev;

	if (c->state == VC_HANDSHAKE) {
		conn_handshake(c);
	} else if (c->state == VC_CONNECTING) {
		char ch;
		ssize_t r = recv(c->fd, &ch, 1, MSG_PEEK | MSG_DONTWAIT);
		if (r > 0) {
			c->early_data = true;
			ev_io_stop(loop, w);
		} else if (r == 0 || (errno != EAGAIN && errno != EINTR)) {
			log_debug("host client for guest port %u gave up before the guest answered", c->guest_port);
			if (c->pending & P_REQUEST)
				conn_free(c); /* the guest never heard of it */
			else
				conn_reset(c);
		}
	} else {
		ev_io_stop(loop, w);
		conn_schedule(c, P_DATA);
	}
	rx_run(dev);
}

static struct vconn *conn_new(struct vsock_dev *dev, int fd, enum vc_state state)
{
	struct vconn *c = xzalloc(sizeof(*c));

	c->dev = dev;
	c->fd = fd;
	c->state = state;
	ev_io_init(&c->rio, conn_rio_cb, fd, EV_READ);
	ev_io_init(&c->wio, conn_wio_cb, fd, EV_WRITE);
	c->rio.data = c;
	c->wio.data = c;
	LIST_INSERT_HEAD(&dev->all, c, alink);
	dev->nconns++;
	return c;
}

static void listen_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct vsock_dev *dev = w->data;

	for (;;) {
		int fd = accept4(dev->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
				log_warn("accept on %s: %s", dev->uds, strerror(errno));
			return;
		}
		if (dev->nconns >= VSOCK_DEV_MAX_CONNS) {
			log_warn("%u connections open, refusing a host client", dev->nconns);
			close(fd);
			continue;
		}
		struct vconn *c = conn_new(dev, fd, VC_HANDSHAKE);
		conn_update_rio(c);
	}
}

static int listen_uds(const char *path, struct vm_error *err)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };

	if (strlen(path) >= sizeof(sa.sun_path))
		return vm_error_set(err, VM_INVALID_ARGUMENT, "socket path %s too long", path);
	strcpy(sa.sun_path, path);
	cleanup_close int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return vm_error_set_errno(err, VM_INTERNAL, errno, "socket");
	unlink(path);
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 128) < 0)
		return vm_error_set_errno(err, VM_INTERNAL, errno, "listen on %s", path);
	return steal_fd(&fd);
}

struct vsock_dev *vsock_dev_new(struct ev_loop *loop, uint64_t guest_cid, const char *uds, int listen_fd,
				struct virtq *rx, struct virtq *tx, vsock_dev_fatal_fn fatal, void *opaque,
				struct vm_error *err)
{
	if (guest_cid < 3 || guest_cid > UINT32_MAX - 1) {
		vm_error_set(err, VM_INVALID_ARGUMENT, "guest CID %" PRIu64 " out of range 3..%u", guest_cid,
			     UINT32_MAX - 1);
		return NULL;
	}
	if (listen_fd < 0) {
		listen_fd = listen_uds(uds, err);
		if (listen_fd < 0)
			return NULL;
	} else if (fd_set_nonblock(listen_fd, true) < 0) {
		vm_error_set_errno(err, VM_INTERNAL, errno, "listening socket for %s", uds);
		return NULL;
	}
	struct vsock_dev *dev = xzalloc(sizeof(*dev));
	dev->loop = loop;
	dev->cid = guest_cid;
	dev->uds = xstrdup(uds);
	dev->lfd = listen_fd;
	dev->rx = rx;
	dev->tx = tx;
	dev->fatal = fatal;
	dev->opaque = opaque;
	dev->next_port = HOST_PORT_BASE;
	for (unsigned i = 0; i < HASH_BUCKETS; i++)
		LIST_INIT(&dev->hash[i]);
	TAILQ_INIT(&dev->ready);
	LIST_INIT(&dev->all);
	ev_io_init(&dev->lio, listen_cb, listen_fd, EV_READ);
	dev->lio.data = dev;
	ev_io_start(loop, &dev->lio);
	ev_prepare_init(&dev->notify_w, notify_cb);
	dev->notify_w.data = dev;
	ev_prepare_start(loop, &dev->notify_w);
	return dev;
}

void vsock_dev_kick(struct vsock_dev *dev, unsigned idx)
{
	struct vm_error err;
	bool pushed = false;

	if (idx == VSOCK_QUEUE_TX) {
		while (!dev->broken) {
			int r = virtq_pop(dev->tx, &dev->chain, &err);
			if (r < 0) {
				dev_fatal(dev, err.message);
				return;
			}
			if (r == 0)
				break;
			tx_packet(dev, &dev->chain);
			if (dev->broken)
				return;
			virtq_push(dev->tx, dev->chain.head, 0);
			pushed = true;
		}
		if (pushed)
			virtq_notify_later(dev->tx);
	}
	rx_run(dev);
}

void vsock_dev_reset(struct vsock_dev *dev)
{
	while (!LIST_EMPTY(&dev->all))
		conn_free(LIST_FIRST(&dev->all));
	dev->rst_n = 0;
}

void vsock_dev_free(struct vsock_dev *dev)
{
	if (!dev)
		return;
	vsock_dev_reset(dev);
	ev_io_stop(dev->loop, &dev->lio);
	ev_prepare_stop(dev->loop, &dev->notify_w);
	close(dev->lfd);
	free(dev->uds);
	free(dev);
}
