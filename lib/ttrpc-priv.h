/* ttrpc-priv.h - internals shared by the event-loop side (ttrpc.c) and the
 * blocking client (ttrpc-client.c): socket I/O with SCM_RIGHTS and the queue
 * that ties received fds to the frame they were sent with.
 *
 * The fd rule (see docs/protocol.md): a sender passes the fds of a frame on
 * the sendmsg() that carries the frame's first byte, and that sendmsg()
 * carries bytes of that frame only. Linux ends a stream recvmsg() right
 * after the skb that carried SCM_RIGHTS, so the fds of a recvmsg() belong to
 * the LAST frame whose header begins in the bytes of that same recvmsg().
 * The reader computes that frame's stream offset before decoding the bytes
 * (ttrpc_decoder_last_start()) and queues the fds under it; when the decoder
 * returns the frame starting at that offset, the fds are handed over. Queued
 * fds whose offset was passed without a frame are closed.
 */
#ifndef VIRTMGR_TTRPC_PRIV_H
#define VIRTMGR_TTRPC_PRIV_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "lib/ttrpc.h"

/*
 * Ended calls and one written output chunk are kept by a server for reuse.
 * Not in AddressSanitizer builds: a recycled block would hide a
 * use-after-free of the call or chunk that held it before.
 */
#if defined(__SANITIZE_ADDRESS__)
#define TTRPC_RECYCLE 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define TTRPC_RECYCLE 0
#endif
#endif
#ifndef TTRPC_RECYCLE
#define TTRPC_RECYCLE 1
#endif

/* Growable bytes: output chunks, frames being built. */
struct ttrpc_buf {
	uint8_t *p;
	size_t len, cap;
};

/* Room for @need more bytes after b->len (b->len is not moved). Return: where they go. */
uint8_t *ttrpc_buf_reserve(struct ttrpc_buf *b, size_t need);

/**
 * ttrpc_frame_append() - append one frame whose body protobuf-c packs
 * @body: the frame's body (ttrpc.Request or ttrpc.Response, or a stream's
 *        Data message)
 * @payload: the envelope's payload field, a member of @body, or NULL; it is
 *           set to the packing of @inner (empty when @inner is NULL)
 * @max: the largest body accepted
 * Sizes are computed once (protobuf_c_message_get_packed_size()) and the
 * bytes packed straight into @b.
 * Return: the frame's length, or 0 when the body would exceed @max
 * (nothing appended).
 */
size_t ttrpc_frame_append(struct ttrpc_buf *b, uint32_t stream_id, uint8_t type, uint8_t flags,
			  const ProtobufCMessage *body, ProtobufCBinaryData *payload, const ProtobufCMessage *inner,
			  size_t max);

/* Most fds accepted in one recvmsg(); extras are closed. */
#define TTRPC_RECV_FDS 64

struct ttrpc_fdq_entry {
	struct ttrpc_fdq_entry *next;
	uint64_t offset;
	size_t nfds;
	int fds[TTRPC_RECV_FDS];
};

struct ttrpc_fdq {
	struct ttrpc_fdq_entry *head, *tail;
};

/* Queue @fds (ownership passes) for the frame starting at stream @offset. */
void ttrpc_fdq_push(struct ttrpc_fdq *q, uint64_t offset, const int *fds, size_t nfds);
/* Move the fds of the frame at @offset into @fds (at most TTRPC_MAX_FDS, the
 * rest closed), closing stale entries. Return: number of fds. */
size_t ttrpc_fdq_take(struct ttrpc_fdq *q, uint64_t offset, int *fds);
void ttrpc_fdq_clear(struct ttrpc_fdq *q);

/*
 * recvmsg() with MSG_CMSG_CLOEXEC. Return: bytes read (0 = EOF) or -errno;
 * fds received in *nfds/@fds (TTRPC_RECV_FDS capacity).
 */
ssize_t ttrpc_sock_recv(int fd, uint8_t *buf, size_t len, int *fds, size_t *nfds);
/* sendmsg() with MSG_NOSIGNAL and @fds as SCM_RIGHTS. Return: bytes or -errno. */
ssize_t ttrpc_sock_send(int fd, const struct iovec *iov, int iovcnt, const int *fds, size_t nfds);

/*
 * Feed one recvmsg() worth of input: if @nfds, queue the fds under the last
 * frame starting in @buf. Then the caller runs the decoder over @buf.
 */
void ttrpc_input_fds(struct ttrpc_fdq *q, const struct ttrpc_decoder *d, const uint8_t *buf, size_t len,
		     const int *fds, size_t nfds);

/* A packed Request frame (header + body) for @service/@method. Return: buffer, length in *len. */
uint8_t *ttrpc_build_request(uint32_t stream_id, uint8_t flags, const char *service, const char *method,
			     const ProtobufCMessage *req, uint64_t timeout_ns, size_t *len);
/* Header + @len bytes of @data as one buffer. */
uint8_t *ttrpc_build_frame(uint32_t stream_id, uint8_t type, uint8_t flags, const uint8_t *data, size_t len,
			   size_t *out_len);
/* Unpack a Response body into @err (code and message; OK = code 0) and its payload.
 * Return: 0, or -1 when the body is not a ttrpc.Response (err filled). */
int ttrpc_parse_response(const uint8_t *body, size_t len, struct vm_error *status, uint8_t **payload,
			 size_t *plen);

void ttrpc_close_fds(int *fds, size_t n);

#endif
