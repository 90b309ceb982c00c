/* vhost_user.c - vhost-user backend protocol, the subset QEMU's
 * vhost-user-vsock frontend uses.
 *
 * Messages are small and the frontend waits for each reply, so one message
 * is read per readiness event with blocking reads. Offered: VIRTIO_F_VERSION_1
 * and VHOST_USER_F_PROTOCOL_FEATURES; protocol features CONFIG (QEMU's vsock
 * frontend requires it to read guest_cid) and REPLY_ACK. Anything malformed
 * (bad sizes, queue index out of range, a memory table that does not map,
 * an unknown request) ends the session with a non-zero status: the frontend
 * is QEMU, and a confused QEMU must not keep a half-working device.
 *
 * Rings: QEMU 7.2 enables vrings when it starts the device; a ring is
 * processed once it has a size, addresses and a kick fd, unless the frontend
 * disabled it with SET_VRING_ENABLE 0. GET_VRING_BASE stops it.
 *
 * Stopping is not a reset: QEMU stops the device when the VM is paused
 * (QMP stop, SuspendVm) and starts it again on resume, giving back with
 * SET_VRING_BASE the index GET_VRING_BASE returned; connections must
 * survive that. When the driver in the guest reset the device in between,
 * the queues restart at another index (0): then, and on RESET_OWNER or a
 * frontend disconnect, the device's connections are reset.
 */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include "lib/log.h"
#include "server/vsock/vhost_user.h"

enum {
	VHOST_USER_GET_FEATURES = 1,
	VHOST_USER_SET_FEATURES = 2,
	VHOST_USER_SET_OWNER = 3,
	VHOST_USER_RESET_OWNER = 4,
	VHOST_USER_SET_MEM_TABLE = 5,
	VHOST_USER_SET_VRING_NUM = 8,
	VHOST_USER_SET_VRING_ADDR = 9,
	VHOST_USER_SET_VRING_BASE = 10,
	VHOST_USER_GET_VRING_BASE = 11,
	VHOST_USER_SET_VRING_KICK = 12,
	VHOST_USER_SET_VRING_CALL = 13,
	VHOST_USER_SET_VRING_ERR = 14,
	VHOST_USER_GET_PROTOCOL_FEATURES = 15,
	VHOST_USER_SET_PROTOCOL_FEATURES = 16,
	VHOST_USER_GET_QUEUE_NUM = 17,
	VHOST_USER_SET_VRING_ENABLE = 18,
	VHOST_USER_GET_CONFIG = 24,
};

#define VHOST_USER_VERSION 0x1
#define VHOST_USER_REPLY 0x4
#define VHOST_USER_NEED_REPLY 0x8
#define VHOST_USER_VRING_NOFD (1u << 8)
#define VHOST_USER_MAX_FDS 8
#define VHOST_USER_MAX_PAYLOAD 4096

#define VIRTIO_F_VERSION_1 32
#define VHOST_USER_F_PROTOCOL_FEATURES 30
#define VHOST_USER_PROTOCOL_F_REPLY_ACK 3
#define VHOST_USER_PROTOCOL_F_CONFIG 9

#define VU_FEATURES ((uint64_t)((1ull << VIRTIO_F_VERSION_1) | (1ull << VHOST_USER_F_PROTOCOL_FEATURES)))
#define VU_PROTOCOL_FEATURES ((1ull << VHOST_USER_PROTOCOL_F_REPLY_ACK) | (1ull << VHOST_USER_PROTOCOL_F_CONFIG))

struct vu_hdr {
	uint32_t request;
	uint32_t flags;
	uint32_t size;
};

struct vu_state {
	uint32_t index;
	uint32_t num;
};

struct vu_addr {
	uint32_t index;
	uint32_t flags;
	uint64_t desc, used, avail, log;
};

struct vu_region {
	uint64_t gpa, size, uaddr, mmap_offset;
};

struct vu_memory {
	uint32_t nregions;
	uint32_t padding;
	struct vu_region regions[VQ_MAX_REGIONS];
};

struct vu_config {
	uint32_t offset;
	uint32_t size;
	uint32_t flags;
	uint8_t region[256];
};

struct vu_msg {
	struct vu_hdr hdr;
	union {
		uint64_t u64;
		struct vu_state state;
		struct vu_addr addr;
		struct vu_memory mem;
		struct vu_config config;
		uint8_t raw[VHOST_USER_MAX_PAYLOAD];
	} p;
	int fds[VHOST_USER_MAX_FDS];
	unsigned nfds;
};

static int fail(struct vu *vu, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int fail(struct vu *vu, const char *fmt, ...)
{
	char buf[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	log_error("vhost-user: %s", buf);
	vu->status = 1;
	return -1;
}

static int read_full(int fd, void *buf, size_t len)
{
	uint8_t *p = buf;

	while (len > 0) {
		ssize_t r = read(fd, p, len);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return r < 0 ? -errno : -EPIPE;
		p += r;
		len -= (size_t)r;
	}
	return 0;
}

/* Return: 1 message read, 0 frontend gone, -1 protocol error. */
static int read_msg(struct vu *vu, struct vu_msg *m)
{
	union {
		char buf[CMSG_SPACE(VHOST_USER_MAX_FDS * sizeof(int))];
		struct cmsghdr align;
	} cbuf;
	struct iovec iov = { &m->hdr, sizeof(m->hdr) };
	struct msghdr mh = {
		.msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf.buf, .msg_controllen = sizeof(cbuf.buf)
	};
	ssize_t r;

	m->nfds = 0;
	do
		r = recvmsg(vu->fd, &mh, MSG_CMSG_CLOEXEC);
	while (r < 0 && errno == EINTR);
	if (r == 0 || (r < 0 && errno == ECONNRESET))
		return 0;
	if (r < 0)
		return fail(vu, "recvmsg: %s", strerror(errno));
	for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		unsigned n = (unsigned)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
		for (unsigned i = 0; i < n && m->nfds < VHOST_USER_MAX_FDS; i++)
			memcpy(&m->fds[m->nfds++], CMSG_DATA(c) + i * sizeof(int), sizeof(int));
	}
	if (mh.msg_flags & MSG_CTRUNC)
		return fail(vu, "too many file descriptors in one message");
	if ((size_t)r < sizeof(m->hdr) && read_full(vu->fd, (uint8_t *)&m->hdr + r, sizeof(m->hdr) - (size_t)r) < 0)
		return fail(vu, "short message header");
	if ((m->hdr.flags & 0x3) != VHOST_USER_VERSION)
		return fail(vu, "request %u: unsupported version flags 0x%x", m->hdr.request, m->hdr.flags);
	if (m->hdr.size > VHOST_USER_MAX_PAYLOAD)
		return fail(vu, "request %u: payload of %u bytes too large", m->hdr.request, m->hdr.size);
	if (m->hdr.size && read_full(vu->fd, &m->p, m->hdr.size) < 0)
		return fail(vu, "request %u: short payload", m->hdr.request);
	return 1;
}

static int send_reply(struct vu *vu, const struct vu_msg *req, const void *payload, uint32_t size)
{
	struct vu_hdr h = { req->hdr.request, VHOST_USER_VERSION | VHOST_USER_REPLY, size };
	struct iovec iov[2] = { { &h, sizeof(h) }, { (void *)payload, size } };
	struct msghdr mh = { .msg_iov = iov, .msg_iovlen = 2 };
	size_t want = sizeof(h) + size;
	ssize_t r;

	do
		r = sendmsg(vu->fd, &mh, MSG_NOSIGNAL);
	while (r < 0 && errno == EINTR);
	if (r < 0 || (size_t)r != want)
		return fail(vu, "reply to request %u: %s", req->hdr.request, r < 0 ? strerror(errno) : "short write");
	return 0;
}

static int reply_u64(struct vu *vu, const struct vu_msg *req, uint64_t v)
{
	return send_reply(vu, req, &v, sizeof(v));
}

static int need_size(struct vu *vu, const struct vu_msg *m, size_t size)
{
	if (m->hdr.size < size)
		return fail(vu, "request %u: payload of %u bytes, expected %zu", m->hdr.request, m->hdr.size, size);
	return 0;
}

static struct vu_vring *ring_of(struct vu *vu, uint32_t index)
{
	if (index >= VU_MAX_QUEUES) {
		fail(vu, "queue index %u out of range (device has %d queues)", index, VU_MAX_QUEUES);
		return NULL;
	}
	return &vu->vring[index];
}

static void ring_stop(struct vu *vu, struct vu_vring *r)
{
	virtq_flush_notify(&r->vq);
	ev_io_stop(vu->loop, &r->kick_w);
	if (r->kick_fd >= 0)
		close(r->kick_fd);
	r->kick_fd = -1;
	r->vq.ready = false;
}

/* (Re)derive host pointers for a ring; start it if everything is known. */
static int ring_update(struct vu *vu, struct vu_vring *r, unsigned idx)
{
	struct vm_error err;

	if (r->kick_fd < 0 || !r->addr_set || vu->mem.n == 0) {
		r->vq.ready = false;
		return 0;
	}
	uint16_t last_avail = r->vq.last_avail;
	if (virtq_setup(&r->vq, &vu->mem, r->num, r->desc_ua, r->avail_ua, r->used_ua, &err) < 0)
		return fail(vu, "queue %u: %s", idx, err.message);
	r->vq.last_avail = last_avail;
	r->vq.ready = r->enabled;
	if (!ev_is_active(&r->kick_w)) {
		ev_io_set(&r->kick_w, r->kick_fd, EV_READ);
		ev_io_start(vu->loop, &r->kick_w);
	}
	if (r->vq.ready)
		vu->ops->kick(vu->opaque, idx);
	return 0;
}

static void unmap_all(struct vu *vu)
{
	for (unsigned i = 0; i < vu->mem.n; i++)
		munmap(vu->map_base[i], vu->map_len[i]);
	vu->mem.n = 0;
}

static int set_mem_table(struct vu *vu, struct vu_msg *m)
{
	struct vu_memory *mem = &m->p.mem;

	if (need_size(vu, m, 8) < 0)
		return -1;
	if (mem->nregions == 0 || mem->nregions > VQ_MAX_REGIONS || mem->nregions != m->nfds ||
	    m->hdr.size < 8 + mem->nregions * sizeof(struct vu_region))
		return fail(vu, "memory table with %u regions and %u fds", mem->nregions, m->nfds);
	for (unsigned i = 0; i < VU_MAX_QUEUES; i++) {
		virtq_flush_notify(&vu->vring[i].vq);
		vu->vring[i].vq.ready = false;
	}
	unmap_all(vu);
	for (unsigned i = 0; i < mem->nregions; i++) {
		struct vu_region *r = &mem->regions[i];
		uint64_t len = r->size + r->mmap_offset;

		struct stat st;

		if (r->size == 0 || len < r->size || r->gpa + r->size < r->gpa || r->uaddr + r->size < r->uaddr ||
		    len > SIZE_MAX)
			return fail(vu, "memory region %u: bad size/offset", i);
		/* a mapping past the end of the file faults (SIGBUS) when touched */
		if (fstat(m->fds[i], &st) < 0 || !S_ISREG(st.st_mode) || (uint64_t)st.st_size < len)
			return fail(vu,
				    "memory region %u: %" PRIu64 " bytes at offset %" PRIu64
				    " exceed its %lld-byte file",
				    i, r->size, r->mmap_offset, (long long)st.st_size);
		void *p = mmap(NULL, (size_t)len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE, m->fds[i], 0);
		if (p == MAP_FAILED)
			return fail(vu, "memory region %u (%" PRIu64 " bytes): mmap: %s", i, len, strerror(errno));
		vu->map_base[i] = p;
		vu->map_len[i] = (size_t)len;
		vu->mem.r[i] = (struct vq_region){ r->gpa, r->size, r->uaddr, (uint8_t *)p + r->mmap_offset };
		vu->mem.n = i + 1;
		log_debug("region %u: gpa 0x%" PRIx64 " size 0x%" PRIx64 " uaddr 0x%" PRIx64, i, r->gpa, r->size,
			  r->uaddr);
	}
	for (unsigned i = 0; i < VU_MAX_QUEUES; i++)
		if (ring_update(vu, &vu->vring[i], i) < 0)
			return -1;
	return 0;
}

static int handle(struct vu *vu, struct vu_msg *m)
{
	struct vu_vring *r;
	int fd;

	switch (m->hdr.request) {
	case VHOST_USER_GET_FEATURES:
		return reply_u64(vu, m, VU_FEATURES);
	case VHOST_USER_SET_FEATURES:
		if (need_size(vu, m, 8) < 0)
			return -1;
		if (m->p.u64 & ~VU_FEATURES)
			return fail(vu, "frontend set unoffered features 0x%" PRIx64,
				    (uint64_t)(m->p.u64 & ~VU_FEATURES));
		vu->features = m->p.u64;
		break;
	case VHOST_USER_GET_PROTOCOL_FEATURES:
		return reply_u64(vu, m, VU_PROTOCOL_FEATURES);
	case VHOST_USER_SET_PROTOCOL_FEATURES:
		if (need_size(vu, m, 8) < 0)
			return -1;
		vu->protocol_features = m->p.u64 & VU_PROTOCOL_FEATURES;
		break;
	case VHOST_USER_GET_QUEUE_NUM:
		return reply_u64(vu, m, VU_MAX_QUEUES);
	case VHOST_USER_SET_OWNER:
		break;
	case VHOST_USER_RESET_OWNER:
		for (unsigned i = 0; i < VU_MAX_QUEUES; i++)
			ring_stop(vu, &vu->vring[i]);
		vu->ops->reset(vu->opaque);
		break;
	case VHOST_USER_SET_MEM_TABLE:
		if (set_mem_table(vu, m) < 0)
			return -1;
		break;
	case VHOST_USER_SET_VRING_NUM:
		if (need_size(vu, m, sizeof(struct vu_state)) < 0 || !(r = ring_of(vu, m->p.state.index)))
			return -1;
		if (m->p.state.num == 0 || m->p.state.num > VQ_MAX_SIZE || (m->p.state.num & (m->p.state.num - 1)))
			return fail(vu, "queue %u: bad size %u", m->p.state.index, m->p.state.num);
		r->num = m->p.state.num;
		break;
	case VHOST_USER_SET_VRING_ADDR:
		if (need_size(vu, m, sizeof(struct vu_addr)) < 0 || !(r = ring_of(vu, m->p.addr.index)))
			return -1;
		r->desc_ua = m->p.addr.desc;
		r->avail_ua = m->p.addr.avail;
		r->used_ua = m->p.addr.used;
		r->addr_set = true;
		if (ring_update(vu, r, m->p.addr.index) < 0)
			return -1;
		break;
	case VHOST_USER_SET_VRING_BASE:
		if (need_size(vu, m, sizeof(struct vu_state)) < 0 || !(r = ring_of(vu, m->p.state.index)))
			return -1;
		if (r->stopped && (uint16_t)m->p.state.num != r->stop_base) {
			log_info(
				"vhost-user: queue %u restarts at %u, not at %u where it stopped: the guest reset "
				"the device, dropping its connections",
				m->p.state.index, m->p.state.num, r->stop_base);
			vu->ops->reset(vu->opaque);
		}
		r->stopped = false;
		r->vq.last_avail = (uint16_t)m->p.state.num;
		break;
	case VHOST_USER_GET_VRING_BASE: {
		if (need_size(vu, m, sizeof(struct vu_state)) < 0 || !(r = ring_of(vu, m->p.state.index)))
			return -1;
		struct vu_state st = { m->p.state.index, r->vq.last_avail };
		ring_stop(vu, r);
		r->addr_set = false;
		/* stopped, not reset (a pause): connections wait for the restart */
		r->stopped = true;
		r->stop_base = r->vq.last_avail;
		return send_reply(vu, m, &st, sizeof(st));
	}
	case VHOST_USER_SET_VRING_KICK:
	case VHOST_USER_SET_VRING_CALL:
	case VHOST_USER_SET_VRING_ERR: {
		if (need_size(vu, m, 8) < 0 || !(r = ring_of(vu, (uint32_t)(m->p.u64 & 0xff))))
			return -1;
		unsigned idx = (unsigned)(m->p.u64 & 0xff);
		bool nofd = m->p.u64 & VHOST_USER_VRING_NOFD;
		if (nofd != (m->nfds == 0))
			return fail(vu, "request %u: fd flag and %u fds disagree", m->hdr.request, m->nfds);
		fd = nofd ? -1 : m->fds[0];
		if (!nofd)
			m->fds[0] = -1; /* taken */
		if (m->hdr.request == VHOST_USER_SET_VRING_KICK) {
			if (fd < 0)
				return fail(vu, "queue %u: polling mode (no kick fd) not supported", idx);
			ring_stop(vu, r);
			r->kick_fd = fd;
			if (ring_update(vu, r, idx) < 0)
				return -1;
		} else if (m->hdr.request == VHOST_USER_SET_VRING_CALL) {
			if (r->vq.call_fd >= 0)
				close(r->vq.call_fd);
			r->vq.call_fd = fd;
		} else {
			if (r->err_fd >= 0)
				close(r->err_fd);
			r->err_fd = fd;
		}
		break;
	}
	case VHOST_USER_SET_VRING_ENABLE:
		if (need_size(vu, m, sizeof(struct vu_state)) < 0 || !(r = ring_of(vu, m->p.state.index)))
			return -1;
		r->enabled = m->p.state.num != 0;
		if (ring_update(vu, r, m->p.state.index) < 0)
			return -1;
		break;
	case VHOST_USER_GET_CONFIG: {
		struct vu_config *c = &m->p.config;
		if (need_size(vu, m, 12) < 0)
			return -1;
		if (c->size > sizeof(c->region) || m->hdr.size < 12 + c->size)
			return fail(vu, "GET_CONFIG of %u bytes", c->size);
		memset(c->region, 0, c->size);
		if (vu->ops->get_config(vu->opaque, c->offset, c->region, c->size) < 0)
			return fail(vu, "GET_CONFIG offset %u size %u outside the config space", c->offset, c->size);
		return send_reply(vu, m, c, 12 + c->size);
	}
	default:
		if (m->hdr.flags & VHOST_USER_NEED_REPLY) {
			log_warn("vhost-user: request %u not supported", m->hdr.request);
			return reply_u64(vu, m, 1);
		}
		return fail(vu, "request %u not supported", m->hdr.request);
	}
	if ((m->hdr.flags & VHOST_USER_NEED_REPLY) &&
	    (vu->protocol_features & (1ull << VHOST_USER_PROTOCOL_F_REPLY_ACK)))
		return reply_u64(vu, m, 0);
	return 0;
}

static void vu_io_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct vu *vu = w->data;
	struct vu_msg m;
	int r = read_msg(vu, &m);

	if (r > 0) {
		log_debug("vhost-user: request %u size %u fds %u", m.hdr.request, m.hdr.size, m.nfds);
		r = handle(vu, &m);
		for (unsigned i = 0; i < m.nfds; i++)
			if (m.fds[i] >= 0 && m.hdr.request != VHOST_USER_SET_MEM_TABLE)
				close(m.fds[i]);
		if (m.hdr.request == VHOST_USER_SET_MEM_TABLE)
			for (unsigned i = 0; i < m.nfds; i++)
				close(m.fds[i]); /* the mappings keep the memory */
		if (r == 0)
			return;
	} else {
		for (unsigned i = 0; i < m.nfds; i++)
			close(m.fds[i]);
	}
	if (r == 0) {
		log_info("vhost-user: frontend disconnected");
		vu->status = 0;
	}
	ev_io_stop(loop, w);
	ev_break(loop, EVBREAK_ALL);
}

static void vu_kick_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct vu *vu = w->data;
	unsigned idx;
	uint64_t v;

	for (idx = 0; idx < VU_MAX_QUEUES; idx++)
		if (&vu->vring[idx].kick_w == w)
			break;
	if (read(w->fd, &v, sizeof(v)) < 0 && errno != EAGAIN && errno != EINTR) {
		fail(vu, "queue %u: kick fd: %s", idx, strerror(errno));
		ev_break(loop, EVBREAK_ALL);
		return;
	}
	if (vu->vring[idx].vq.ready)
		vu->ops->kick(vu->opaque, idx);
}

void vu_init(struct vu *vu, struct ev_loop *loop, int fd, const struct vu_dev_ops *ops, void *opaque)
{
	memset(vu, 0, sizeof(*vu));
	vu->loop = loop;
	vu->fd = fd;
	vu->ops = ops;
	vu->opaque = opaque;
	vu->status = -1;
	for (unsigned i = 0; i < VU_MAX_QUEUES; i++) {
		struct vu_vring *r = &vu->vring[i];
		r->kick_fd = -1;
		r->err_fd = -1;
		r->vq.call_fd = -1;
		r->enabled = true;
		ev_init(&r->kick_w, vu_kick_cb);
		r->kick_w.data = vu;
	}
	fd_set_nonblock(fd, false);
	ev_io_init(&vu->io, vu_io_cb, fd, EV_READ);
	vu->io.data = vu;
	ev_io_start(loop, &vu->io);
}

struct virtq *vu_queue(struct vu *vu, unsigned idx)
{
	return &vu->vring[idx].vq;
}

void vu_cleanup(struct vu *vu)
{
	for (unsigned i = 0; i < VU_MAX_QUEUES; i++) {
		struct vu_vring *r = &vu->vring[i];
		ring_stop(vu, r);
		if (r->vq.call_fd >= 0)
			close(r->vq.call_fd);
		if (r->err_fd >= 0)
			close(r->err_fd);
		r->vq.call_fd = r->err_fd = -1;
	}
	unmap_all(vu);
	ev_io_stop(vu->loop, &vu->io);
	if (vu->fd >= 0)
		close(vu->fd);
	vu->fd = -1;
}
