/* test_virtq.c - the split-virtqueue walker on synthetic rings: good chains
 * and every way a hostile driver can break one (out-of-range and wrapping
 * addresses, loops, over-long chains, bad indices, indirect descriptors,
 * readable-after-writable), plus ring setup checks.
 */
#include "config.h"

#include <criterion/criterion.h>
#include <string.h>

#include "server/vsock/virtq.h"
#include "server/vsock/vq_synth.h"

#define RAM (1u << 20)

static struct vq_synth s;
static struct vq_chain chain;
static struct vm_error err;

static void setup(void)
{
	cr_assert_eq(vq_synth_init(&s, 16, RAM), 0);
	memset(&err, 0, sizeof(err));
}

static void teardown(void)
{
	vq_synth_free(&s);
}

TestSuite(virtq, .init = setup, .fini = teardown);

Test(virtq, empty_ring_pops_nothing)
{
	cr_assert_eq(virtq_pop(&s.vq, &chain, &err), 0);
}

Test(virtq, good_chain_readable_then_writable)
{
	vq_synth_desc(&s, 3, vq_synth_gpa(&s, VQ_SYNTH_DATA), 44, VRING_DESC_F_NEXT, 7);
	vq_synth_desc(&s, 7, vq_synth_gpa(&s, VQ_SYNTH_DATA + 100), 10, VRING_DESC_F_NEXT, 1);
	vq_synth_desc(&s, 1, vq_synth_gpa(&s, VQ_SYNTH_DATA + 200), 4096, VRING_DESC_F_WRITE, 0);
	vq_synth_avail(&s, 3);

	cr_assert_eq(virtq_pop(&s.vq, &chain, &err), 1, "%s", err.message);
	cr_assert_eq(chain.head, 3);
	cr_assert_eq(chain.nout, 2);
	cr_assert_eq(chain.nin, 1);
	cr_assert_eq(chain.out_len, 54);
	cr_assert_eq(chain.in_len, 4096);
	cr_assert_eq(chain.iov[0].base, s.ram + VQ_SYNTH_DATA);
	cr_assert_eq(chain.iov[2].base, s.ram + VQ_SYNTH_DATA + 200);
	cr_assert_eq(virtq_pop(&s.vq, &chain, &err), 0);

	virtq_push(&s.vq, 3, 123);
	cr_assert_eq(le16toh(s.used->idx), 1);
	cr_assert_eq(le32toh(s.used->ring[0].id), 3);
	cr_assert_eq(le32toh(s.used->ring[0].len), 123);
}

Test(virtq, chain_copy_crosses_segments)
{
	const char msg[] = "0123456789abcdef";
	char out[17] = { 0 };

	memcpy(s.ram + VQ_SYNTH_DATA, msg, 5);
	memcpy(s.ram + VQ_SYNTH_DATA + 64, msg + 5, 11);
	vq_synth_desc(&s, 0, vq_synth_gpa(&s, VQ_SYNTH_DATA), 5, VRING_DESC_F_NEXT, 1);
	vq_synth_desc(&s, 1, vq_synth_gpa(&s, VQ_SYNTH_DATA + 64), 11, VRING_DESC_F_NEXT, 2);
	vq_synth_desc(&s, 2, vq_synth_gpa(&s, VQ_SYNTH_DATA + 128), 3, VRING_DESC_F_WRITE | VRING_DESC_F_NEXT, 3);
	vq_synth_desc(&s, 3, vq_synth_gpa(&s, VQ_SYNTH_DATA + 256), 13, VRING_DESC_F_WRITE, 0);
	vq_synth_avail(&s, 0);
	cr_assert_eq(virtq_pop(&s.vq, &chain, &err), 1, "%s", err.message);

	cr_assert_eq(vq_chain_read(&chain, 0, out, 16), 16);
	cr_assert_str_eq(out, msg);
	cr_assert_eq(vq_chain_read(&chain, 14, out, 16), 2, "reads stop at the end of the readable part");
	cr_assert_eq(vq_chain_write(&chain, 1, "WXYZ", 4), 4);
	cr_assert_eq(memcmp(s.ram + VQ_SYNTH_DATA + 129, "WX", 2), 0);
	cr_assert_eq(memcmp(s.ram + VQ_SYNTH_DATA + 256, "YZ", 2), 0);
	cr_assert_eq(vq_chain_write(&chain, 10, msg, 16), 6, "writes stop at the end of the writable part");

	struct vq_iov sl[4];
	cr_assert_eq(vq_chain_slice(&chain, false, 3, 4, sl, 4), 2);
	cr_assert_eq(sl[0].len, 2);
	cr_assert_eq(sl[1].len, 2);
}

Test(virtq, zero_length_descriptor_is_skipped)
{
	vq_synth_desc(&s, 0, vq_synth_gpa(&s, VQ_SYNTH_DATA), 0, VRING_DESC_F_NEXT, 1);
	vq_synth_desc(&s, 1, vq_synth_gpa(&s, VQ_SYNTH_DATA), 8, 0, 0);
	vq_synth_avail(&s, 0);
	cr_assert_eq(virtq_pop(&s.vq, &chain, &err), 1, "%s", err.message);
	cr_assert_eq(chain.nout, 1);
	cr_assert_eq(chain.out_len, 8);
}

Test(virtq, zero_length_descriptor_outside_memory_is_harmless)
{
	vq_synth_desc(&s, 0, 0xdead0000ull, 0, 0, 0);
	vq_synth_avail(&s, 0);
	cr_assert_eq(virtq_pop(&s.vq, &chain, &err), 1, "%s", err.message);
	cr_assert_eq(chain.nout + chain.nin, 0);
}

Test(virtq, address_outside_memory)
{
	vq_synth_desc(&s, 0, 0x1000, 16, 0, 0);
	vq_synth_avail(&s, 0);
	cr_assert_eq(virtq_pop(&s.vq, &chain, &err), -1);
	cr_assert(strstr(err.message, "outside guest memory"), "%s", err.message);
}

Test(virtq, buffer_running_past_the_end_of_memory)
{
	vq_synth_desc(&s, 0, vq_synth_gpa(&s, RAM - 8), 16, 0, 0);
	vq_synth_avail(&s, 0);
	cr_assert_eq(virtq_pop(&s.vq, &chain, &err), -1);
	cr_assert(strstr(err.message, "outside guest memory"), "%s", err.message);
}

Test(virtq, address_wraps_around)
{
	vq_synth_desc(&s, 0, UINT64_MAX - 4, 16, 0, 0);
	vq_synth_avail(&s, 0);
	cr_assert_eq(virtq_pop(&s.vq, &chain, &err), -1);
	cr_assert(strstr(err.message, "wraps"), "%s", err.message);
}

Test(virtq, oversize_length)
{
	vq_synth_desc(&s, 0, vq_synth_gpa(&s, VQ_SYNTH_DATA), UINT32_MAX, 0, 0);
	vq_synth_avail(&s, 0);
	cr_assert_eq(virtq_pop(&s.vq, &chain, &err), -1);
}

Test(virtq, two_descriptor_cycle)
{
	vq_synth_desc(&s, 0, vq_synth_gpa(&s, VQ_SYNTH_DATA), 8, VRING_DESC_F_NEXT, 1);
	vq_synth_desc(&s, 1, vq_synth_gpa(&s, VQ_SYNTH_DATA), 8, VRING_DESC_F_NEXT, 0);
	vq_synth_avail(&s, 0);
	cr_assert_eq(virtq_pop(&s.vq, &chain, &err), -1);
	cr_assert(strstr(err.message, "loop"), "%s", err.message);
}

Test(virtq, self_loop_of_zero_length_descriptors)
{
	vq_synth_desc(&s, 5, 0, 0, VRING_DESC_F_NEXT, 5);
	vq_synth_avail(&s, 5);
	cr_assert_eq(virtq_pop(&s.vq, &chain, &err), -1);
	cr_assert(strstr(err.message, "loop"), "%s", err.message);
}

Test(virtq, chain_of_exactly_queue_size_is_fine)
{
	for (unsigned i = 0; i < 16; i++)
		vq_synth_desc(&s, i, vq_synth_gpa(&s, VQ_SYNTH_DATA + 8 * i), 8, i < 15 ? VRING_DESC_F_NEXT : 0,
			      (uint16_t)(i + 1));
	vq_synth_avail(&s, 0);
	cr_assert_eq(virtq_pop(&s.vq, &chain, &err), 1, "%s", err.message);
	cr_assert_eq(chain.out_len, 128);
}

Test(virtq, next_beyond_queue)
{
	vq_synth_desc(&s, 0, vq_synth_gpa(&s, VQ_SYNTH_DATA), 8, VRING_DESC_F_NEXT, 16);
	vq_synth_avail(&s, 0);
	cr_assert_eq(virtq_pop(&s.vq, &chain, &err), -1);
	cr_assert(strstr(err.message, "beyond queue size"), "%s", err.message);
}

Test(virtq, head_beyond_queue)
{
	vq_synth_avail(&s, 40);
	cr_assert_eq(virtq_pop(&s.vq, &chain, &err), -1);
	cr_assert(strstr(err.message, "head"), "%s", err.message);
}

Test(virtq, available_index_jumps_too_far)
{
	s.avail->idx = htole16(17);
	cr_assert_eq(virtq_pop(&s.vq, &chain, &err), -1);
	cr_assert(strstr(err.message, "available index"), "%s", err.message);
}

Test(virtq, indirect_descriptor_rejected)
{
	vq_synth_desc(&s, 0, vq_synth_gpa(&s, VQ_SYNTH_DATA), 16, VRING_DESC_F_INDIRECT, 0);
	vq_synth_avail(&s, 0);
	cr_assert_eq(virtq_pop(&s.vq, &chain, &err), -1);
	cr_assert(strstr(err.message, "indirect"), "%s", err.message);
}

Test(virtq, readable_after_writable_rejected)
{
	vq_synth_desc(&s, 0, vq_synth_gpa(&s, VQ_SYNTH_DATA), 16, VRING_DESC_F_WRITE | VRING_DESC_F_NEXT, 1);
	vq_synth_desc(&s, 1, vq_synth_gpa(&s, VQ_SYNTH_DATA), 16, 0, 0);
	vq_synth_avail(&s, 0);
	cr_assert_eq(virtq_pop(&s.vq, &chain, &err), -1);
	cr_assert(strstr(err.message, "after a writable"), "%s", err.message);
}

Test(virtq, unpop_returns_the_same_chain)
{
	vq_synth_desc(&s, 2, vq_synth_gpa(&s, VQ_SYNTH_DATA), 64, VRING_DESC_F_WRITE, 0);
	vq_synth_avail(&s, 2);
	cr_assert_eq(virtq_pop(&s.vq, &chain, &err), 1);
	virtq_unpop(&s.vq);
	cr_assert_eq(virtq_pop(&s.vq, &chain, &err), 1);
	cr_assert_eq(chain.head, 2);
}

Test(virtq, stopped_queue_pops_nothing)
{
	vq_synth_desc(&s, 0, vq_synth_gpa(&s, VQ_SYNTH_DATA), 8, 0, 0);
	vq_synth_avail(&s, 0);
	s.vq.ready = false;
	cr_assert_eq(virtq_pop(&s.vq, &chain, &err), 0);
}

Test(virtq, buffer_split_across_adjacent_regions)
{
	/* second region right after the first one, mapped elsewhere */
	static uint8_t other[4096];
	s.mem.r[1] = (struct vq_region){ VQ_SYNTH_GPA + RAM, sizeof(other), 0x7f1000000000ull, other };
	s.mem.n = 2;
	vq_synth_desc(&s, 0, vq_synth_gpa(&s, RAM - 10), 30, 0, 0);
	vq_synth_avail(&s, 0);
	cr_assert_eq(virtq_pop(&s.vq, &chain, &err), 1, "%s", err.message);
	cr_assert_eq(chain.nout, 2);
	cr_assert_eq(chain.iov[0].len, 10);
	cr_assert_eq(chain.iov[1].base, other);
	cr_assert_eq(chain.iov[1].len, 20);
}

Test(virtq, too_fragmented_chain)
{
	struct vq_synth big;
	cr_assert_eq(vq_synth_init(&big, 256, RAM), 0);
	for (unsigned i = 0; i < 200; i++)
		vq_synth_desc(&big, i, vq_synth_gpa(&big, VQ_SYNTH_DATA + i), 1, VRING_DESC_F_NEXT, (uint16_t)(i + 1));
	vq_synth_desc(&big, 200, vq_synth_gpa(&big, VQ_SYNTH_DATA), 1, 0, 0);
	vq_synth_avail(&big, 0);
	cr_assert_eq(virtq_pop(&big.vq, &chain, &err), -1);
	cr_assert(strstr(err.message, "segments"), "%s", err.message);
	vq_synth_free(&big);
}

Test(virtq, setup_checks)
{
	struct virtq q = { .call_fd = -1 };

	cr_assert_eq(virtq_setup(&q, &s.mem, 12, 0x7f0000000000ull, 0x7f0000001000ull, 0x7f0000002000ull, &err), -1);
	cr_assert(strstr(err.message, "power of two"), "%s", err.message);
	cr_assert_eq(virtq_setup(&q, &s.mem, 16, 0x1000, 0x7f0000001000ull, 0x7f0000002000ull, &err), -1);
	cr_assert(strstr(err.message, "not inside guest memory"), "%s", err.message);
	cr_assert_eq(
		virtq_setup(&q, &s.mem, 16, 0x7f0000000000ull + RAM - 64, 0x7f0000001000ull, 0x7f0000002000ull, &err),
		-1, "descriptor table running off the region");
	cr_assert_eq(virtq_setup(&q, &s.mem, 16, 0x7f0000000008ull, 0x7f0000001000ull, 0x7f0000002000ull, &err), -1);
	cr_assert(strstr(err.message, "misaligned"), "%s", err.message);
	cr_assert_eq(virtq_setup(&q, &s.mem, 16, 0x7f0000000000ull, 0x7f0000001000ull, 0x7f0000002000ull, &err), 0,
		     "%s", err.message);
	cr_assert_eq(q.desc, (void *)s.ram);
}

Test(virtq, memory_translation)
{
	cr_assert_eq(vq_mem_gpa(&s.mem, VQ_SYNTH_GPA, RAM), s.ram);
	cr_assert_null(vq_mem_gpa(&s.mem, VQ_SYNTH_GPA, RAM + 1));
	cr_assert_null(vq_mem_gpa(&s.mem, VQ_SYNTH_GPA - 1, 2));
	cr_assert_null(vq_mem_uaddr(&s.mem, 0x7f0000000000ull + RAM, 1));
	cr_assert_eq(vq_mem_uaddr(&s.mem, 0x7f0000000010ull, 16), s.ram + 16);
}
