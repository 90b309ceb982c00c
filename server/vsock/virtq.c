/* virtq.c - split virtqueue walker over a guest memory table.
 *
 * The driver (guest) owns the descriptor table and the available ring and can
 * change them at any time, so each descriptor is copied once into a local and
 * only the copy is checked and used. Bounds: a chain visits at most `num`
 * descriptors (a cycle or an over-long chain is an error), every buffer is
 * translated region by region and must be fully covered by the memory table,
 * readable descriptors must precede writable ones, and indirect descriptors
 * are rejected because the feature is not offered. Errors are fatal for the
 * device; the caller stops serving the VM.
 */
#include "config.h"

#include <endian.h>
#include <inttypes.h>
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "server/vsock/virtq.h"

static void *region_xlate(const struct vq_mem *mem, bool by_uaddr, uint64_t addr, uint64_t len)
{
	for (unsigned i = 0; i < mem->n; i++) {
		const struct vq_region *r = &mem->r[i];
		uint64_t base = by_uaddr ? r->uaddr : r->gpa;

		if (addr < base || addr - base >= r->size)
			continue;
		if (len > r->size - (addr - base))
			return NULL;
		return r->host + (addr - base);
	}
	return NULL;
}

void *vq_mem_gpa(const struct vq_mem *mem, uint64_t gpa, uint64_t len)
{
	return region_xlate(mem, false, gpa, len);
}

void *vq_mem_uaddr(const struct vq_mem *mem, uint64_t uaddr, uint64_t len)
{
	return region_xlate(mem, true, uaddr, len);
}

static int check_num(unsigned num, struct vm_error *err)
{
	if (num == 0 || num > VQ_MAX_SIZE || (num & (num - 1)))
		return vm_error_set(err, VM_INVALID_ARGUMENT, "queue size %u is not a power of two in 1..%u", num,
				    VQ_MAX_SIZE);
	return 0;
}

static int setup_common(struct virtq *vq, const struct vq_mem *mem, unsigned num, void *desc, void *avail, void *used,
			struct vm_error *err)
{
	if (!desc || !avail || !used)
		return vm_error_set(err, VM_INVALID_ARGUMENT, "vring (size %u) not inside guest memory", num);
	if (((uintptr_t)desc & 15) || ((uintptr_t)avail & 1) || ((uintptr_t)used & 3))
		return vm_error_set(err, VM_INVALID_ARGUMENT, "vring addresses misaligned");
	vq->mem = mem;
	vq->num = (uint16_t)num;
	vq->desc = desc;
	vq->avail = avail;
	vq->used = used;
	vq->used_idx = le16toh(__atomic_load_n(&vq->used->idx, __ATOMIC_ACQUIRE));
	return 0;
}

int virtq_setup(struct virtq *vq, const struct vq_mem *mem, unsigned num, uint64_t desc_ua, uint64_t avail_ua,
		uint64_t used_ua, struct vm_error *err)
{
	if (check_num(num, err) < 0)
		return -1;
	void *desc = vq_mem_uaddr(mem, desc_ua, (uint64_t)num * sizeof(struct vring_desc));
	/* flags, idx, ring[num], used_event */
	void *avail = vq_mem_uaddr(mem, avail_ua, 6 + 2 * (uint64_t)num);
	/* flags, idx, ring[num], avail_event */
	void *used = vq_mem_uaddr(mem, used_ua, 6 + 8 * (uint64_t)num);
	return setup_common(vq, mem, num, desc, avail, used, err);
}

int virtq_setup_host(struct virtq *vq, const struct vq_mem *mem, unsigned num, void *desc, void *avail, void *used,
		     struct vm_error *err)
{
	if (check_num(num, err) < 0)
		return -1;
	return setup_common(vq, mem, num, desc, avail, used, err);
}

/* Append the guest range [addr, addr+len) to the chain, split by region. */
static int chain_add(const struct virtq *vq, struct vq_chain *c, bool writable, uint64_t addr, uint32_t len,
		     struct vm_error *err)
{
	uint64_t left = len;

	if (addr + (uint64_t)len < addr)
		return vm_error_set(err, VM_OUT_OF_RANGE, "descriptor 0x%" PRIx64 "+%u wraps around", addr, len);
	while (left > 0) {
		const struct vq_region *hit = NULL;

		for (unsigned i = 0; i < vq->mem->n; i++) {
			const struct vq_region *r = &vq->mem->r[i];
			if (addr >= r->gpa && addr - r->gpa < r->size) {
				hit = r;
				break;
			}
		}
		if (!hit)
			return vm_error_set(err, VM_OUT_OF_RANGE,
					    "descriptor address 0x%" PRIx64 " (len %u) outside guest memory", addr,
					    len);
		if (c->nout + c->nin >= VQ_CHAIN_MAX_IOV)
			return vm_error_set(err, VM_OUT_OF_RANGE, "descriptor chain needs more than %d segments",
					    VQ_CHAIN_MAX_IOV);
		uint64_t n = MIN(left, hit->size - (addr - hit->gpa));
		struct vq_iov *iov = &c->iov[c->nout + c->nin];
		iov->base = hit->host + (addr - hit->gpa);
		iov->len = (size_t)n;
		addr += n;
		left -= n;
		if (writable)
			c->nin++;
		else
			c->nout++;
	}
	if (writable)
		c->in_len += len;
	else
		c->out_len += len;
	return 0;
}

int virtq_pop(struct virtq *vq, struct vq_chain *c, struct vm_error *err)
{
	if (!vq->ready)
		return 0;
	uint16_t avail_idx = le16toh(__atomic_load_n(&vq->avail->idx, __ATOMIC_ACQUIRE));
	uint16_t pending = (uint16_t)(avail_idx - vq->last_avail);

	if (pending == 0)
		return 0;
	if (pending > vq->num)
		return vm_error_set(err, VM_OUT_OF_RANGE, "available index moved by %u on a queue of %u", pending,
				    vq->num);
	uint16_t head = le16toh(__atomic_load_n(&vq->avail->ring[vq->last_avail % vq->num], __ATOMIC_RELAXED));
	if (head >= vq->num)
		return vm_error_set(err, VM_OUT_OF_RANGE, "chain head %u beyond queue size %u", head, vq->num);

	memset(c, 0, offsetof(struct vq_chain, iov));
	c->head = head;
	uint16_t idx = head;
	bool seen_write = false;
	/* A well-formed chain has at most num descriptors; more means a loop. */
	for (unsigned count = 0;; count++) {
		if (count >= vq->num)
			return vm_error_set(err, VM_OUT_OF_RANGE,
					    "descriptor chain at %u longer than queue size %u (loop?)", head, vq->num);
		struct vring_desc d;
		memcpy(&d, &vq->desc[idx], sizeof(d));
		uint64_t addr = le64toh(d.addr);
		uint32_t len = le32toh(d.len);
		uint16_t flags = le16toh(d.flags);
		uint16_t next = le16toh(d.next);

		if (flags & VRING_DESC_F_INDIRECT)
			return vm_error_set(err, VM_INVALID_ARGUMENT, "indirect descriptor %u not negotiated", idx);
		if (flags & VRING_DESC_F_WRITE) {
			seen_write = true;
		} else if (seen_write) {
			return vm_error_set(err, VM_INVALID_ARGUMENT, "readable descriptor %u after a writable one",
					    idx);
		}
		/* zero-length descriptors carry nothing and are skipped */
		if (len > 0 && chain_add(vq, c, seen_write, addr, len, err) < 0)
			return -1;
		if (!(flags & VRING_DESC_F_NEXT))
			break;
		if (next >= vq->num)
			return vm_error_set(err, VM_OUT_OF_RANGE, "descriptor %u: next %u beyond queue size %u", idx,
					    next, vq->num);
		idx = next;
	}
	vq->last_avail++;
	return 1;
}

void virtq_unpop(struct virtq *vq)
{
	vq->last_avail--;
}

void virtq_push(struct virtq *vq, uint16_t head, uint32_t len)
{
	struct vring_used_elem *e = &vq->used->ring[vq->used_idx % vq->num];

	e->id = htole32(head);
	e->len = htole32(len);
	vq->used_idx++;
	__atomic_store_n(&vq->used->idx, htole16(vq->used_idx), __ATOMIC_RELEASE);
}

void virtq_notify(struct virtq *vq)
{
	uint64_t one = 1;

	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	if (le16toh(__atomic_load_n(&vq->avail->flags, __ATOMIC_RELAXED)) & VRING_AVAIL_F_NO_INTERRUPT)
		return;
	if (vq->call_fd >= 0 && write(vq->call_fd, &one, sizeof(one)) < 0 && errno != EAGAIN) {
		/* QEMU owns the eventfd; a failed signal only delays the guest */
	}
}

void virtq_notify_later(struct virtq *vq)
{
	vq->notify_owed = true;
}

void virtq_flush_notify(struct virtq *vq)
{
	if (vq->notify_owed && vq->ready)
		virtq_notify(vq);
	vq->notify_owed = false;
}

static size_t chain_copy(const struct vq_chain *c, bool writable, uint64_t off, uint8_t *buf, size_t len)
{
	unsigned first = writable ? c->nout : 0;
	unsigned end = writable ? c->nout + c->nin : c->nout;
	size_t done = 0;

	for (unsigned i = first; i < end && done < len; i++) {
		const struct vq_iov *v = &c->iov[i];
		if (off >= v->len) {
			off -= v->len;
			continue;
		}
		size_t n = MIN(v->len - (size_t)off, len - done);
		if (writable)
			memcpy(v->base + off, buf + done, n);
		else
			memcpy(buf + done, v->base + off, n);
		done += n;
		off = 0;
	}
	return done;
}

size_t vq_chain_read(const struct vq_chain *c, uint64_t off, void *dst, size_t len)
{
	return chain_copy(c, false, off, dst, len);
}

size_t vq_chain_write(const struct vq_chain *c, uint64_t off, const void *src, size_t len)
{
	return chain_copy(c, true, off, (uint8_t *)src, len);
}

unsigned vq_chain_slice(const struct vq_chain *c, bool writable, uint64_t off, uint64_t len, struct vq_iov *out,
			unsigned max)
{
	unsigned first = writable ? c->nout : 0;
	unsigned end = writable ? c->nout + c->nin : c->nout;
	unsigned n = 0;

	for (unsigned i = first; i < end && len > 0 && n < max; i++) {
		const struct vq_iov *v = &c->iov[i];
		if (off >= v->len) {
			off -= v->len;
			continue;
		}
		size_t take = (size_t)MIN((uint64_t)(v->len - off), len);
		out[n].base = v->base + off;
		out[n].len = take;
		n++;
		len -= take;
		off = 0;
	}
	return n;
}
