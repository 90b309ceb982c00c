/* vsock_pkt.h - virtio-vsock packet header (virtio spec 5.10) and the checks
 * applied to every packet the guest sends.
 *
 * The header is 44 little-endian bytes at the start of a tx chain's readable
 * part; the payload follows. vsock_pkt_parse() copies the header out of the
 * chain (so the guest cannot change it behind our back) and classifies the
 * packet: accept it, answer with RST, silently drop it, or stop the device.
 */
#ifndef VIRTMGR_VSOCK_PKT_H
#define VIRTMGR_VSOCK_PKT_H

#include <stdint.h>

#include "server/vsock/virtq.h"

#define VSOCK_HDR_SIZE 44
#define VSOCK_HOST_CID 2

enum vsock_op {
	VSOCK_OP_INVALID = 0,
	VSOCK_OP_REQUEST = 1,
	VSOCK_OP_RESPONSE = 2,
	VSOCK_OP_RST = 3,
	VSOCK_OP_SHUTDOWN = 4,
	VSOCK_OP_RW = 5,
	VSOCK_OP_CREDIT_UPDATE = 6,
	VSOCK_OP_CREDIT_REQUEST = 7,
};

#define VSOCK_TYPE_STREAM 1
#define VSOCK_TYPE_SEQPACKET 2

#define VSOCK_SHUTDOWN_RCV 1
#define VSOCK_SHUTDOWN_SEND 2

struct vsock_hdr {
	uint64_t src_cid;
	uint64_t dst_cid;
	uint32_t src_port;
	uint32_t dst_port;
	uint32_t len;
	uint16_t type;
	uint16_t op;
	uint32_t flags;
	uint32_t buf_alloc;
	uint32_t fwd_cnt;
};

enum vsock_verdict {
	VSOCK_PKT_OK,	 /* dispatch it */
	VSOCK_PKT_RST,	 /* answer with RST, nothing else */
	VSOCK_PKT_DROP,	 /* ignore (never answer an RST with an RST) */
	VSOCK_PKT_FATAL, /* the chain cannot be a packet: stop the device */
};

/** vsock_hdr_decode() - little-endian wire bytes to @h. */
void vsock_hdr_decode(const uint8_t wire[VSOCK_HDR_SIZE], struct vsock_hdr *h);

/** vsock_hdr_encode() - @h to little-endian wire bytes. */
void vsock_hdr_encode(const struct vsock_hdr *h, uint8_t wire[VSOCK_HDR_SIZE]);

/**
 * vsock_pkt_parse() - read and classify the packet in a tx chain
 * @guest_cid: the CID the guest must use as source
 * @why: receives a static reason for anything but VSOCK_PKT_OK
 *
 * Return: the verdict; @h is filled whenever the header could be read.
 */
enum vsock_verdict vsock_pkt_parse(const struct vq_chain *chain, uint64_t guest_cid, struct vsock_hdr *h,
				   const char **why);

/** vsock_op_name() - "REQUEST", ... Return: static string. */
const char *vsock_op_name(unsigned op);

#endif
