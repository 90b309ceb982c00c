/* test_vsock_pkt.c - virtio-vsock header codec and the classification of
 * guest packets built in synthetic tx chains: good packets, wrong type /
 * destination / op -> RST, spoofed source -> dropped, truncated header or
 * payload -> device stops.
 */
#include "config.h"

#include <criterion/criterion.h>
#include <string.h>

#include "server/vsock/vq_synth.h"
#include "server/vsock/vsock_pkt.h"

#define GUEST_CID 42

static struct vq_synth s;
static struct vq_chain chain;
static struct vm_error err;

static void setup(void)
{
	cr_assert_eq(vq_synth_init(&s, 8, 1u << 20), 0);
}

static void teardown(void)
{
	vq_synth_free(&s);
}

TestSuite(vsock_pkt, .init = setup, .fini = teardown);

static struct vsock_hdr base_hdr(uint16_t op)
{
	return (struct vsock_hdr){ .src_cid = GUEST_CID,
				   .dst_cid = VSOCK_HOST_CID,
				   .src_port = 1025,
				   .dst_port = 80,
				   .type = VSOCK_TYPE_STREAM,
				   .op = op,
				   .buf_alloc = 65536 };
}

/* Put @h (+ @payload_room bytes) in one or two descriptors; split at @split if non-zero. */
static enum vsock_verdict parse(const struct vsock_hdr *h, uint32_t buf_len, uint32_t split, struct vsock_hdr *out,
				const char **why)
{
	uint8_t wire[VSOCK_HDR_SIZE];

	vsock_hdr_encode(h, wire);
	memcpy(s.ram + VQ_SYNTH_DATA, wire, MIN(sizeof(wire), (size_t)buf_len));
	if (split) {
		memmove(s.ram + VQ_SYNTH_DATA + 4096, s.ram + VQ_SYNTH_DATA + split, buf_len - split);
		vq_synth_desc(&s, 0, vq_synth_gpa(&s, VQ_SYNTH_DATA), split, VRING_DESC_F_NEXT, 1);
		vq_synth_desc(&s, 1, vq_synth_gpa(&s, VQ_SYNTH_DATA + 4096), buf_len - split, 0, 0);
	} else {
		vq_synth_desc(&s, 0, vq_synth_gpa(&s, VQ_SYNTH_DATA), buf_len, 0, 0);
	}
	vq_synth_avail(&s, 0);
	cr_assert_eq(virtq_pop(&s.vq, &chain, &err), 1, "%s", err.message);
	return vsock_pkt_parse(&chain, GUEST_CID, out, why);
}

Test(vsock_pkt, wire_layout_is_little_endian_and_packed)
{
	struct vsock_hdr h = { 0x0102030405060708ull, 2, 0x11223344, 0x55667788, 9, 1, 5, 3, 0xaabbccdd, 0x01020304 };
	uint8_t w[VSOCK_HDR_SIZE];
	struct vsock_hdr back;

	vsock_hdr_encode(&h, w);
	cr_assert_eq(w[0], 0x08);
	cr_assert_eq(w[7], 0x01);
	cr_assert_eq(w[8], 2);
	cr_assert_eq(w[16], 0x44);
	cr_assert_eq(w[20], 0x88);
	cr_assert_eq(w[24], 9);
	cr_assert_eq(w[28], 1);
	cr_assert_eq(w[30], 5);
	cr_assert_eq(w[32], 3);
	cr_assert_eq(w[36], 0xdd);
	cr_assert_eq(w[43], 0x01);
	vsock_hdr_decode(w, &back);
	cr_assert_eq(back.src_cid, h.src_cid);
	cr_assert_eq(back.dst_cid, h.dst_cid);
	cr_assert_eq(back.src_port, h.src_port);
	cr_assert_eq(back.dst_port, h.dst_port);
	cr_assert_eq(back.len, h.len);
	cr_assert_eq(back.type, h.type);
	cr_assert_eq(back.op, h.op);
	cr_assert_eq(back.flags, h.flags);
	cr_assert_eq(back.buf_alloc, h.buf_alloc);
	cr_assert_eq(back.fwd_cnt, h.fwd_cnt);
}

Test(vsock_pkt, request_to_host_is_accepted)
{
	struct vsock_hdr h = base_hdr(VSOCK_OP_REQUEST), out;
	const char *why;

	cr_assert_eq(parse(&h, VSOCK_HDR_SIZE, 0, &out, &why), VSOCK_PKT_OK, "%s", why);
	cr_assert_eq(out.dst_port, 80);
	cr_assert_eq(out.buf_alloc, 65536);
}

Test(vsock_pkt, header_split_across_descriptors)
{
	struct vsock_hdr h = base_hdr(VSOCK_OP_RW), out;
	const char *why;

	h.len = 100;
	cr_assert_eq(parse(&h, VSOCK_HDR_SIZE + 100, 10, &out, &why), VSOCK_PKT_OK, "%s", why);
	cr_assert_eq(out.len, 100);
	cr_assert_eq(out.src_port, 1025);
}

Test(vsock_pkt, seqpacket_gets_rst)
{
	struct vsock_hdr h = base_hdr(VSOCK_OP_REQUEST), out;
	const char *why;

	h.type = VSOCK_TYPE_SEQPACKET;
	cr_assert_eq(parse(&h, VSOCK_HDR_SIZE, 0, &out, &why), VSOCK_PKT_RST);
	cr_assert(strstr(why, "STREAM"));
}

Test(vsock_pkt, unknown_type_gets_rst)
{
	struct vsock_hdr h = base_hdr(VSOCK_OP_REQUEST), out;
	const char *why;

	h.type = 77;
	cr_assert_eq(parse(&h, VSOCK_HDR_SIZE, 0, &out, &why), VSOCK_PKT_RST);
}

Test(vsock_pkt, other_destination_cid_gets_rst)
{
	struct vsock_hdr h = base_hdr(VSOCK_OP_REQUEST), out;
	const char *why;

	h.dst_cid = 7;
	cr_assert_eq(parse(&h, VSOCK_HDR_SIZE, 0, &out, &why), VSOCK_PKT_RST);
	h.dst_cid = GUEST_CID;
	cr_assert_eq(parse(&h, VSOCK_HDR_SIZE, 0, &out, &why), VSOCK_PKT_RST, "its own CID is not the host");
}

Test(vsock_pkt, unknown_op_gets_rst)
{
	struct vsock_hdr h = base_hdr(99), out;
	const char *why;

	cr_assert_eq(parse(&h, VSOCK_HDR_SIZE, 0, &out, &why), VSOCK_PKT_RST);
	h.op = VSOCK_OP_INVALID;
	cr_assert_eq(parse(&h, VSOCK_HDR_SIZE, 0, &out, &why), VSOCK_PKT_RST);
}

Test(vsock_pkt, payload_on_control_packet_gets_rst)
{
	struct vsock_hdr h = base_hdr(VSOCK_OP_CREDIT_UPDATE), out;
	const char *why;

	h.len = 4;
	cr_assert_eq(parse(&h, VSOCK_HDR_SIZE + 4, 0, &out, &why), VSOCK_PKT_RST);
}

Test(vsock_pkt, spoofed_source_is_dropped)
{
	struct vsock_hdr h = base_hdr(VSOCK_OP_REQUEST), out;
	const char *why;

	h.src_cid = 43;
	cr_assert_eq(parse(&h, VSOCK_HDR_SIZE, 0, &out, &why), VSOCK_PKT_DROP);
}

Test(vsock_pkt, rst_is_never_answered)
{
	struct vsock_hdr h = base_hdr(VSOCK_OP_RST), out;
	const char *why;

	cr_assert_eq(parse(&h, VSOCK_HDR_SIZE, 0, &out, &why), VSOCK_PKT_OK);
	h.type = VSOCK_TYPE_SEQPACKET;
	cr_assert_eq(parse(&h, VSOCK_HDR_SIZE, 0, &out, &why), VSOCK_PKT_DROP);
	h.type = VSOCK_TYPE_STREAM;
	h.dst_cid = 9;
	cr_assert_eq(parse(&h, VSOCK_HDR_SIZE, 0, &out, &why), VSOCK_PKT_DROP);
}

Test(vsock_pkt, short_header_stops_the_device)
{
	struct vsock_hdr h = base_hdr(VSOCK_OP_REQUEST), out;
	const char *why;

	cr_assert_eq(parse(&h, VSOCK_HDR_SIZE - 1, 0, &out, &why), VSOCK_PKT_FATAL);
	cr_assert(strstr(why, "header"));
}

Test(vsock_pkt, payload_longer_than_buffer_stops_the_device)
{
	struct vsock_hdr h = base_hdr(VSOCK_OP_RW), out;
	const char *why;

	h.len = 101;
	cr_assert_eq(parse(&h, VSOCK_HDR_SIZE + 100, 0, &out, &why), VSOCK_PKT_FATAL);
	h.len = UINT32_MAX;
	cr_assert_eq(parse(&h, VSOCK_HDR_SIZE + 100, 0, &out, &why), VSOCK_PKT_FATAL);
}

Test(vsock_pkt, writable_only_chain_has_no_header)
{
	struct vsock_hdr out;
	const char *why;

	vq_synth_desc(&s, 0, vq_synth_gpa(&s, VQ_SYNTH_DATA), 4096, VRING_DESC_F_WRITE, 0);
	vq_synth_avail(&s, 0);
	cr_assert_eq(virtq_pop(&s.vq, &chain, &err), 1);
	cr_assert_eq(vsock_pkt_parse(&chain, GUEST_CID, &out, &why), VSOCK_PKT_FATAL);
}

Test(vsock_pkt, op_names)
{
	cr_assert_str_eq(vsock_op_name(VSOCK_OP_CREDIT_REQUEST), "CREDIT_REQUEST");
	cr_assert_str_eq(vsock_op_name(1000), "UNKNOWN");
}
