/* vsock_pkt.c - virtio-vsock header codec and guest packet classification.
 *
 * Policy (see docs/vsock.md): a chain too short for its header or its
 * declared payload is a broken driver and stops the device; a packet with a
 * spoofed source CID is dropped; anything the device does not implement
 * (SEQPACKET or unknown type, unknown op, a destination other than the host)
 * gets an RST so the guest socket fails promptly instead of hanging.
 */
#include "config.h"

#include <endian.h>
#include <string.h>

#include "server/vsock/vsock_pkt.h"

void vsock_hdr_decode(const uint8_t w[VSOCK_HDR_SIZE], struct vsock_hdr *h)
{
	uint64_t u64;
	uint32_t u32;
	uint16_t u16;

#define GET(field, var, off, conv)                    \
	do {                                          \
		memcpy(&var, w + (off), sizeof(var)); \
		h->field = conv(var);                 \
	} while (0)
	GET(src_cid, u64, 0, le64toh);
	GET(dst_cid, u64, 8, le64toh);
	GET(src_port, u32, 16, le32toh);
	GET(dst_port, u32, 20, le32toh);
	GET(len, u32, 24, le32toh);
	GET(type, u16, 28, le16toh);
	GET(op, u16, 30, le16toh);
	GET(flags, u32, 32, le32toh);
	GET(buf_alloc, u32, 36, le32toh);
	GET(fwd_cnt, u32, 40, le32toh);
#undef GET
}

void vsock_hdr_encode(const struct vsock_hdr *h, uint8_t w[VSOCK_HDR_SIZE])
{
	uint64_t u64;
	uint32_t u32;
	uint16_t u16;

#define PUT(field, var, off, conv)                    \
	do {                                          \
		var = conv(h->field);                 \
		memcpy(w + (off), &var, sizeof(var)); \
	} while (0)
	PUT(src_cid, u64, 0, htole64);
	PUT(dst_cid, u64, 8, htole64);
	PUT(src_port, u32, 16, htole32);
	PUT(dst_port, u32, 20, htole32);
	PUT(len, u32, 24, htole32);
	PUT(type, u16, 28, htole16);
	PUT(op, u16, 30, htole16);
	PUT(flags, u32, 32, htole32);
	PUT(buf_alloc, u32, 36, htole32);
	PUT(fwd_cnt, u32, 40, htole32);
#undef PUT
}

const char *vsock_op_name(unsigned op)
{
	static const char *const names[] = { "INVALID",	 "REQUEST", "RESPONSE",	     "RST",
					     "SHUTDOWN", "RW",	    "CREDIT_UPDATE", "CREDIT_REQUEST" };
	return op < ARRAY_SIZE(names) ? names[op] : "UNKNOWN";
}

enum vsock_verdict vsock_pkt_parse(const struct vq_chain *c, uint64_t guest_cid, struct vsock_hdr *h, const char **why)
{
	uint8_t wire[VSOCK_HDR_SIZE];

	*why = NULL;
	memset(h, 0, sizeof(*h));
	if (c->out_len < VSOCK_HDR_SIZE || vq_chain_read(c, 0, wire, sizeof(wire)) != sizeof(wire)) {
		*why = "tx buffer shorter than the packet header";
		return VSOCK_PKT_FATAL;
	}
	vsock_hdr_decode(wire, h);
	if (h->len > c->out_len - VSOCK_HDR_SIZE) {
		*why = "packet length exceeds its tx buffer";
		return VSOCK_PKT_FATAL;
	}
	if (h->src_cid != guest_cid) {
		*why = "source CID is not the guest's CID";
		return VSOCK_PKT_DROP;
	}
	if (h->op == VSOCK_OP_RST) {
		/* never answer an RST; an RST of the wrong type is ignored too */
		if (h->type != VSOCK_TYPE_STREAM || h->dst_cid != VSOCK_HOST_CID) {
			*why = "RST for a connection that cannot exist";
			return VSOCK_PKT_DROP;
		}
		return VSOCK_PKT_OK;
	}
	if (h->type != VSOCK_TYPE_STREAM) {
		*why = "socket type not supported (only STREAM)";
		return VSOCK_PKT_RST;
	}
	if (h->dst_cid != VSOCK_HOST_CID) {
		*why = "destination CID is not the host (2)";
		return VSOCK_PKT_RST;
	}
	if (h->op < VSOCK_OP_REQUEST || h->op > VSOCK_OP_CREDIT_REQUEST) {
		*why = "unknown operation";
		return VSOCK_PKT_RST;
	}
	if (h->op != VSOCK_OP_RW && h->len != 0) {
		*why = "payload on a control packet";
		return VSOCK_PKT_RST;
	}
	return VSOCK_PKT_OK;
}
