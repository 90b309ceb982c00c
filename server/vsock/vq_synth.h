/* vq_synth.h - synthetic guest memory and split rings in plain memory, for
 * the unit tests and the fuzzer that drive the virtqueue walker and the
 * packet parser without QEMU. Not part of the backend binary.
 *
 * Layout: one region of @ram_size bytes at guest physical address
 * VQ_SYNTH_GPA; descriptor table at offset 0, available ring after it, used
 * ring at the next 4-byte boundary; VQ_SYNTH_DATA onwards is free for
 * buffers.
 */
#ifndef VIRTMGR_VSOCK_VQ_SYNTH_H
#define VIRTMGR_VSOCK_VQ_SYNTH_H

#include <endian.h>
#include <stdlib.h>
#include <string.h>

#include "server/vsock/virtq.h"

#define VQ_SYNTH_GPA 0x100000ull
#define VQ_SYNTH_DATA 0x10000u

struct vq_synth {
	struct vq_mem mem;
	uint8_t *ram;
	size_t ram_size;
	unsigned num;
	struct vring_desc *desc;
	struct vring_avail *avail;
	struct vring_used *used;
	struct virtq vq;
};

/* Return: 0, or -1 if @num is not a valid queue size. */
static inline int vq_synth_init(struct vq_synth *s, unsigned num, size_t ram_size)
{
	struct vm_error err;

	memset(s, 0, sizeof(*s));
	s->ram_size = ram_size;
	s->ram = aligned_alloc(4096, ram_size);
	if (!s->ram)
		abort();
	memset(s->ram, 0, ram_size);
	s->num = num;
	s->mem.n = 1;
	s->mem.r[0] = (struct vq_region){ VQ_SYNTH_GPA, ram_size, 0x7f0000000000ull, s->ram };
	size_t avail_off = 16 * (size_t)num;
	size_t used_off = (avail_off + 6 + 2 * (size_t)num + 3) & ~(size_t)3;
	s->desc = (struct vring_desc *)s->ram;
	s->avail = (struct vring_avail *)(s->ram + avail_off);
	s->used = (struct vring_used *)(s->ram + used_off);
	s->vq.call_fd = -1;
	if (virtq_setup_host(&s->vq, &s->mem, num, s->desc, s->avail, s->used, &err) < 0)
		return -1;
	s->vq.ready = true;
	return 0;
}

static inline void vq_synth_free(struct vq_synth *s)
{
	free(s->ram);
	s->ram = NULL;
}

static inline uint64_t vq_synth_gpa(const struct vq_synth *s, size_t off)
{
	return VQ_SYNTH_GPA + off;
}

static inline void vq_synth_desc(struct vq_synth *s, unsigned idx, uint64_t gpa, uint32_t len, uint16_t flags,
				 uint16_t next)
{
	s->desc[idx].addr = htole64(gpa);
	s->desc[idx].len = htole32(len);
	s->desc[idx].flags = htole16(flags);
	s->desc[idx].next = htole16(next);
}

static inline void vq_synth_avail(struct vq_synth *s, uint16_t head)
{
	uint16_t idx = le16toh(s->avail->idx);

	s->avail->ring[idx % s->num] = htole16(head);
	s->avail->idx = htole16((uint16_t)(idx + 1));
}

#endif
