/* vhost_user.h - backend side of the vhost-user protocol (QEMU's
 * docs/interop/vhost-user.rst), the subset a vhost-user-vsock frontend uses.
 *
 * One frontend connection is served. Guest memory arrives as memfd regions
 * (SET_MEM_TABLE) and is mapped here; each vring becomes a struct virtq the
 * device reads. The device plugs in through struct vu_dev_ops.
 */
#ifndef VIRTMGR_VSOCK_VHOST_USER_H
#define VIRTMGR_VSOCK_VHOST_USER_H

#include <ev.h>
#include <stdint.h>

#include "lib/util.h"
#include "server/vsock/virtq.h"

#define VU_MAX_QUEUES 2

struct vu_dev_ops {
	/* buffers were added to queue @idx, or it just started */
	void (*kick)(void *opaque, unsigned idx);
	/* copy the device config space (up to @len bytes at @off) into @buf */
	int (*get_config)(void *opaque, uint32_t off, uint8_t *buf, uint32_t len);
	/* the frontend reset the device or stopped a queue */
	void (*reset)(void *opaque);
};

struct vu_vring {
	struct virtq vq;
	unsigned num;
	uint64_t desc_ua, avail_ua, used_ua;
	bool addr_set;
	int kick_fd, err_fd;
	ev_io kick_w;
	bool enabled;
	bool stopped;	    /* by GET_VRING_BASE, until SET_VRING_BASE */
	uint16_t stop_base; /* the index GET_VRING_BASE returned */
};

struct vu {
	struct ev_loop *loop;
	int fd;
	ev_io io;
	uint64_t features, protocol_features;
	struct vq_mem mem;
	size_t map_len[VQ_MAX_REGIONS];
	uint8_t *map_base[VQ_MAX_REGIONS];
	struct vu_vring vring[VU_MAX_QUEUES];
	const struct vu_dev_ops *ops;
	void *opaque;
	int status; /* exit status once finished, -1 while running */
};

/**
 * vu_init() - serve the frontend connected on @fd (takes ownership)
 * Return: nothing; @vu->status becomes 0 when the frontend disconnects and
 * non-zero on a protocol violation, after which the loop is broken.
 */
void vu_init(struct vu *vu, struct ev_loop *loop, int fd, const struct vu_dev_ops *ops, void *opaque);

/** vu_queue() - the virtq of queue @idx (valid until vu_cleanup()). */
struct virtq *vu_queue(struct vu *vu, unsigned idx);

/** vu_cleanup() - unmap guest memory and close every fd. */
void vu_cleanup(struct vu *vu);

#endif
