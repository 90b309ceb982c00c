/* virtq.h - guest memory table and split-virtqueue walker.
 *
 * Everything here works on plain memory: a struct vq_mem lists regions
 * (guest physical address, size, the frontend's virtual address for ring
 * addresses, and where the region is mapped in this process). The vhost-user
 * layer fills it from SET_MEM_TABLE; unit tests and the fuzzer fill it with
 * malloc'd buffers. The walker treats guest memory as hostile: every
 * descriptor is copied before it is checked, every address range must lie
 * inside the memory table, a chain is at most queue-size descriptors long,
 * and any violation is reported as an error (the device then stops).
 */
#ifndef VIRTMGR_VSOCK_VIRTQ_H
#define VIRTMGR_VSOCK_VIRTQ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/util.h"

#define VQ_MAX_REGIONS 8
#define VQ_MAX_SIZE 32768
/* iovecs one chain may produce (descriptors may split across regions) */
#define VQ_CHAIN_MAX_IOV 128

#define VRING_DESC_F_NEXT 1
#define VRING_DESC_F_WRITE 2
#define VRING_DESC_F_INDIRECT 4
#define VRING_AVAIL_F_NO_INTERRUPT 1

struct vq_region {
	uint64_t gpa; /* guest physical address */
	uint64_t size;
	uint64_t uaddr; /* frontend (QEMU) virtual address, for ring addresses */
	uint8_t *host;	/* where it is mapped here */
};

struct vq_mem {
	struct vq_region r[VQ_MAX_REGIONS];
	unsigned n;
};

struct vring_desc {
	uint64_t addr;
	uint32_t len;
	uint16_t flags;
	uint16_t next;
};

struct vring_avail {
	uint16_t flags;
	uint16_t idx;
	uint16_t ring[];
};

struct vring_used_elem {
	uint32_t id;
	uint32_t len;
};

struct vring_used {
	uint16_t flags;
	uint16_t idx;
	struct vring_used_elem ring[];
};

struct vq_iov {
	uint8_t *base;
	size_t len;
};

/* One popped descriptor chain: readable iovecs first, then writable ones. */
struct vq_chain {
	uint16_t head;
	unsigned nout, nin;
	uint64_t out_len, in_len;
	struct vq_iov iov[VQ_CHAIN_MAX_IOV];
};

struct virtq {
	const struct vq_mem *mem;
	uint16_t num;
	struct vring_desc *desc;
	struct vring_avail *avail;
	struct vring_used *used;
	uint16_t last_avail;
	uint16_t used_idx;
	bool ready;
	bool notify_owed; /* used buffers the driver has not been signalled for */
	int call_fd;
};

/**
 * vq_mem_gpa() - translate a guest physical range lying in one region
 * Return: host pointer, or NULL if [@gpa, @gpa+@len) is not inside one region.
 */
void *vq_mem_gpa(const struct vq_mem *mem, uint64_t gpa, uint64_t len);

/**
 * vq_mem_uaddr() - translate a frontend virtual range lying in one region
 * Return: host pointer, or NULL if the range is not inside one region.
 */
void *vq_mem_uaddr(const struct vq_mem *mem, uint64_t uaddr, uint64_t len);

/**
 * virtq_setup() - point @vq at rings given as frontend virtual addresses
 * @num: queue size, a power of two in 1..VQ_MAX_SIZE
 *
 * Checks that the three rings lie inside the memory table and are aligned,
 * and picks up the used index the driver/previous backend left.
 * Return: 0, or -1 with @err filled.
 */
int virtq_setup(struct virtq *vq, const struct vq_mem *mem, unsigned num, uint64_t desc_ua, uint64_t avail_ua,
		uint64_t used_ua, struct vm_error *err);

/**
 * virtq_setup_host() - like virtq_setup() for rings given as host pointers
 * (tests and the fuzzer build rings in plain memory).
 * Return: 0, or -1 with @err filled.
 */
int virtq_setup_host(struct virtq *vq, const struct vq_mem *mem, unsigned num, void *desc, void *avail, void *used,
		     struct vm_error *err);

/**
 * virtq_pop() - take the next available chain and translate it into @chain
 * Return: 1 with @chain filled, 0 if the ring is empty, -1 with @err filled
 * if the driver broke the ring (the device must stop).
 */
int virtq_pop(struct virtq *vq, struct vq_chain *chain, struct vm_error *err);

/** virtq_unpop() - give back the chain popped last (not yet pushed). */
void virtq_unpop(struct virtq *vq);

/** virtq_push() - return chain @head to the driver with @len bytes written. */
void virtq_push(struct virtq *vq, uint16_t head, uint32_t len);

/**
 * virtq_notify() - signal the driver (call eventfd) unless it suppressed
 * interrupts.
 */
void virtq_notify(struct virtq *vq);

/**
 * virtq_notify_later() - owe the driver a signal, sent by virtq_flush_notify()
 * so that buffers used by several events in a row cost one interrupt.
 */
void virtq_notify_later(struct virtq *vq);

/**
 * virtq_flush_notify() - send the signal owed, if any, while the ring is
 * still started and mapped (before the event loop sleeps, and before the
 * ring is stopped or its memory replaced).
 */
void virtq_flush_notify(struct virtq *vq);

/**
 * vq_chain_read() - copy up to @len readable bytes starting at @off
 * Return: bytes copied.
 */
size_t vq_chain_read(const struct vq_chain *chain, uint64_t off, void *dst, size_t len);

/**
 * vq_chain_write() - copy up to @len bytes into the writable part at @off
 * Return: bytes copied.
 */
size_t vq_chain_write(const struct vq_chain *chain, uint64_t off, const void *src, size_t len);

/**
 * vq_chain_slice() - iovecs covering [@off, @off+@len) of the readable part
 * (@writable false) or the writable part (true), at most @max of them.
 * Return: number of iovecs filled.
 */
unsigned vq_chain_slice(const struct vq_chain *chain, bool writable, uint64_t off, uint64_t len, struct vq_iov *out,
			unsigned max);

#endif
