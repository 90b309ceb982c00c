/* ttrpc-priv.h - what the files of the ttrpc core share: the frame packing
 * of ttrpc-frame.c, the socket I/O with SCM_RIGHTS and the queue that ties
 * received fds to the frame they were sent with (ttrpc-io.c), the state of
 * servers, connections and calls, and the hooks through which a connection
 * (ttrpc-io.c) hands frames to the server (ttrpc-server.c) or to the
 * asynchronous client (ttrpc-client.c).
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

#include <ev.h>
#include <stdbool.h>
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
void ttrpc_input_fds(struct ttrpc_fdq *q, const struct ttrpc_decoder *d, const uint8_t *buf, size_t len, const int *fds,
		     size_t nfds);

/* A packed Request frame (header + body) for @service/@method. Return: buffer, length in *len. */
uint8_t *ttrpc_build_request(uint32_t stream_id, uint8_t flags, const char *service, const char *method,
			     const ProtobufCMessage *req, uint64_t timeout_ns, size_t *len);
/* Header + @len bytes of @data as one buffer. */
uint8_t *ttrpc_build_frame(uint32_t stream_id, uint8_t type, uint8_t flags, const uint8_t *data, size_t len,
			   size_t *out_len);
/* Unpack a Response body into @err (code and message; OK = code 0) and its payload.
 * Return: 0, or -1 when the body is not a ttrpc.Response (err filled). */
int ttrpc_parse_response(const uint8_t *body, size_t len, struct vm_error *status, uint8_t **payload, size_t *plen);

void ttrpc_close_fds(int *fds, size_t n);

#define TTRPC_DEFAULT_MAX_OUT (8u << 20) /* output bytes a peer may leave unread */
#define TTRPC_READ_CHUNK 65536		 /* bytes per recvmsg() */
#define TTRPC_IOV_MAX 64		 /* chunks per sendmsg() */

/* ------------------------------------------------------------ shared state */

struct method_entry {
	struct method_entry *next;
	char *service;
	char *method;
	char *name; /* "Service/Method", shared by its calls */
	size_t service_len, method_len;
	const ProtobufCMessageDescriptor *input;
	ttrpc_handler_fn fn;
	void *opaque;
	uint64_t ended[TTRPC_STATUS_CODES]; /* calls answered, by status code (ttrpc_server_foreach_method) */
};

struct ttrpc_listener {
	struct ttrpc_listener *next;
	struct ttrpc_server *srv;
	ev_io io;
	ev_timer pause; /* accept paused after EMFILE/ENFILE */
	int fd;
	char *path; /* Unix socket we created (unlinked on close) */
	void *data;
	bool starved; /* out of fds: logged once until accept works again */
};

struct ttrpc_server {
	struct ev_loop *loop;
	struct method_entry *methods;
	struct ttrpc_listener *listeners;
	struct ttrpc_conn *conns;
	unsigned nconns;
	struct ttrpc_limits limits;
	ttrpc_conn_cb on_open, on_close;
	void *conn_opaque;
	double refuse_logged;	       /* ev_now() of the last "limit reached" line */
	unsigned refused;	       /* refused since that line */
	struct method_entry **mtab;    /* by (service, method), open addressing; newest entry wins */
	size_t mtab_size;	       /* a power of two, at least twice the methods */
	struct ttrpc_call *free_calls; /* ended calls' state, kept for the next ones */
	unsigned nfree_calls;
	struct out_chunk *spare;   /* a written output chunk, kept for the next batch */
	struct ttrpc_arena *arena; /* where requests are unpacked (ttrpc-server.c) */
};

#define TTRPC_FREE_CALLS_MAX 64

/*
 * Output is a queue of chunks of whole frames, back to back. Frames are
 * appended to the last chunk (answers are packed straight into it), so the
 * answers to one batch of requests are one buffer and go out in one
 * sendmsg(); a frame that carries fds gets a chunk of its own (the fd rule).
 */
struct out_chunk {
	struct out_chunk *next;
	struct ttrpc_buf b; /* the bytes; sent up to off */
	size_t off;
	int fds[TTRPC_MAX_FDS];
	size_t nfds; /* still to send with the first byte */
	bool sealed; /* nothing more is appended */
};

#define TTRPC_CHUNK_MAX 65536 /* a chunk past this takes no more frames */

#define TTRPC_SPARE_MAX (256u << 10) /* the server keeps one written chunk up to this size */

/* A pending call of the asynchronous client. */
struct pending {
	struct pending *next;
	struct ttrpc_conn *conn;
	uint32_t stream_id;
	ev_timer timer;
	ttrpc_reply_cb cb;
	void *opaque;
};

struct ttrpc_conn {
	struct ttrpc_conn *next, *prev; /* in srv->conns */
	struct ttrpc_server *srv;	/* NULL for a client connection */
	struct ttrpc_listener *listener;
	struct ev_loop *loop;
	int fd;
	uint64_t id;
	struct ttrpc_peer peer;
	ev_io rio, wio;
	ev_timer close_timer;
	struct ttrpc_decoder dec;
	struct ttrpc_fdq fdq;
	struct out_chunk *out_head, *out_tail;
	size_t out_bytes, max_out;
	struct ttrpc_call *calls;
	unsigned ncalls;
	struct pending *pending;
	uint32_t next_stream;
	unsigned depth;
	bool closed;		/* torn down; freed when depth drops to 0 */
	bool doomed;		/* output overflow: closing from close_timer */
	ttrpc_conn_cb on_close; /* client connections */
	void *close_opaque;
	ttrpc_conn_cb drain_cb;
	void *drain_opaque;
	size_t drain_low;
	bool drain_armed;
	void *data;
};

struct ttrpc_call {
	struct ttrpc_call *next, *prev;
	struct ttrpc_conn *conn;
	uint32_t stream_id;
	const char *name; /* "Service/Method", the method entry's */
	struct method_entry *method;
	bool stream;
	uint64_t deadline_ns;
	ev_timer timer;
	int fds[TTRPC_MAX_FDS];
	size_t nfds;
	ttrpc_call_cb cancel_cb;
	void *cancel_opaque;
	ttrpc_data_cb data_cb;
	void *data_opaque;
	bool ending; /* being cancelled: ends are ignored */
};

/* ------------------------------------------- connections (ttrpc-io.c) */

/* A connection on @loop for connected socket @fd (ownership passes): peer
 * identity read, reading started. Return: the connection. */
struct ttrpc_conn *ttrpc_conn_new(struct ev_loop *loop, int fd);
/* Tear down everything but the struct itself (calls cancelled, on_close run,
 * fds closed); idempotent. */
void ttrpc_conn_teardown(struct ttrpc_conn *c);
void ttrpc_conn_free(struct ttrpc_conn *c);
/* Write what the socket takes; arm or stop the write watcher; run the drain callback. */
void ttrpc_conn_flush(struct ttrpc_conn *c);
void ttrpc_conn_update_wio(struct ttrpc_conn *c);
/* The buffer the next frame is appended to (the connection must be open). */
struct ttrpc_buf *ttrpc_out_tail(struct ttrpc_conn *c);
/* Account for @len bytes just appended to the output. Return: 0, or -1 if
 * the connection was just condemned for not reading. */
int ttrpc_out_commit(struct ttrpc_conn *c, size_t len);
/* Queue a frame; @buf and @fds pass to the connection. Return: 0, or -1 if
 * the connection is closed or was just condemned for not reading. */
int ttrpc_conn_enqueue(struct ttrpc_conn *c, uint8_t *buf, size_t len, const int *fds, size_t nfds);

/* ------------------- what a connection hands its owner (server or client) */

/* ttrpc-server.c: a Request (its fds pass), a Data frame, an oversize frame
 * (@msg says so), the connection closing (calls cancelled, on_close), and
 * its removal from the server once torn down. */
void ttrpc_server_request(struct ttrpc_conn *c, const struct ttrpc_frame *fr, int *fds, size_t nfds);
void ttrpc_server_data(struct ttrpc_conn *c, const struct ttrpc_frame *fr);
void ttrpc_server_oversize(struct ttrpc_conn *c, const struct ttrpc_frame *fr, const char *msg);
void ttrpc_server_conn_closing(struct ttrpc_conn *c);
void ttrpc_server_conn_unlink(struct ttrpc_conn *c);
/* ttrpc-client.c (asynchronous client): a Response, an oversize frame, the
 * connection closing (pending calls fail with UNAVAILABLE, on_close). */
void ttrpc_client_response(struct ttrpc_conn *c, const struct ttrpc_frame *fr);
void ttrpc_client_oversize(struct ttrpc_conn *c, const struct ttrpc_frame *fr, const char *msg);
void ttrpc_client_conn_closing(struct ttrpc_conn *c);

#endif
