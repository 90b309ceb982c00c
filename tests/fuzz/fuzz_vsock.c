/* fuzz_vsock.c - libFuzzer target: descriptor chains and vsock packets in a
 * synthetic guest memory.
 *
 * Input layout: byte 0 picks the queue size (2^(b%9)); then the descriptor
 * table (16 bytes per entry; addresses are folded into a window around the
 * guest memory region unless their top bit is set, so both in-range and
 * wild addresses are reached); then one byte for the available index and
 * 2 bytes per available-ring entry; the rest fills the data area. Every chain
 * is popped, its packet parsed, copied out and partly overwritten, exactly
 * as the device does. tests/fuzz/replay_vsock (tests/fuzz/replay.c) replays
 * the committed corpus in `make check`.
 */
#include "config.h"

#include <stdint.h>
#include <string.h>

#include "server/vsock/vq_synth.h"
#include "server/vsock/vsock_pkt.h"

#define FUZZ_RAM (256u * 1024)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static size_t take(const uint8_t **data, size_t *size, void *out, size_t n)
{
	size_t k = MIN(n, *size);

	memset(out, 0, n);
	memcpy(out, *data, k);
	*data += k;
	*size -= k;
	return k;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct vq_chain chain;
	struct vq_synth s;
	struct vm_error err;
	uint8_t b = 0;

	take(&data, &size, &b, 1);
	unsigned num = 1u << (b % 9);
	if (vq_synth_init(&s, num, FUZZ_RAM) < 0)
		abort();
	for (unsigned i = 0; i < num; i++) {
		struct vring_desc d;
		take(&data, &size, &d, sizeof(d));
		uint64_t addr = le64toh(d.addr);
		if (!(addr >> 63))
			addr = VQ_SYNTH_GPA - 256 + (addr % (FUZZ_RAM + 512));
		vq_synth_desc(&s, i, addr, le32toh(d.len), le16toh(d.flags), le16toh(d.next));
	}
	uint8_t navail = 0;
	take(&data, &size, &navail, 1);
	for (unsigned i = 0; i < navail; i++) {
		uint16_t head = 0;
		take(&data, &size, &head, sizeof(head));
		vq_synth_avail(&s, head);
	}
	memcpy(s.ram + VQ_SYNTH_DATA, data, MIN(size, (size_t)(FUZZ_RAM - VQ_SYNTH_DATA)));

	for (unsigned round = 0; round <= num + 1; round++) {
		int r = virtq_pop(&s.vq, &chain, &err);
		if (r <= 0)
			break;
		struct vsock_hdr h;
		const char *why;
		enum vsock_verdict v = vsock_pkt_parse(&chain, 3, &h, &why);
		if (v == VSOCK_PKT_OK && h.op == VSOCK_OP_RW) {
			static uint8_t sink[1 << 16];
			vq_chain_read(&chain, VSOCK_HDR_SIZE, sink, MIN((size_t)h.len, sizeof(sink)));
		}
		uint8_t wire[VSOCK_HDR_SIZE] = { 0 };
		vq_chain_write(&chain, 0, wire, sizeof(wire));
		struct vq_iov sl[8];
		vq_chain_slice(&chain, true, VSOCK_HDR_SIZE, 1 << 20, sl, 8);
		virtq_push(&s.vq, chain.head, (uint32_t)MIN(chain.in_len, (uint64_t)UINT32_MAX));
	}
	vq_synth_free(&s);
	return 0;
}
