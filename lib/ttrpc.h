/* ttrpc.h - containerd's ttrpc protocol on libev: frame codec, server with a
 * (service, method) dispatch table, unary and streaming calls, SCM_RIGHTS fd
 * passing, and the client side (blocking, for CLIs and tests; asynchronous on
 * a libev loop, for the daemon and the agent).
 *
 * Wire format (containerd PROTOCOL.md): a 10-byte header - u32 BE data
 * length, u32 BE stream id (odd = client initiated), u8 type (1 request,
 * 2 response, 3 data), u8 flags (0x1 remote closed, 0x2 remote open) -
 * then the body: a ttrpc.Request, a ttrpc.Response or raw stream data.
 * Bodies over TTRPC_MAX_DATA are rejected with RESOURCE_EXHAUSTED on their
 * stream only; a header whose first byte is not zero closes the connection.
 *
 * File descriptors travel as SCM_RIGHTS on the sendmsg() that carries the
 * first byte of the frame whose message refers to them (by index).
 */
#ifndef VIRTMGR_TTRPC_H
#define VIRTMGR_TTRPC_H

#include <ev.h>
#include <protobuf-c/protobuf-c.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "lib/util.h"

#define TTRPC_HEADER_SIZE 10
#define TTRPC_MAX_DATA (4u << 20)
#define TTRPC_MAX_FDS 16 /* per frame */

enum ttrpc_type {
	TTRPC_TYPE_REQUEST = 1,
	TTRPC_TYPE_RESPONSE = 2,
	TTRPC_TYPE_DATA = 3,
};

#define TTRPC_FLAG_REMOTE_CLOSED 0x1
#define TTRPC_FLAG_REMOTE_OPEN 0x2

/* ------------------------------------------------------------------ codec */

struct ttrpc_header {
	uint32_t length;
	uint32_t stream_id;
	uint8_t type;
	uint8_t flags;
};

void ttrpc_header_encode(const struct ttrpc_header *h, uint8_t out[TTRPC_HEADER_SIZE]);
void ttrpc_header_decode(const uint8_t in[TTRPC_HEADER_SIZE], struct ttrpc_header *h);

/*
 * Incremental frame decoder, fed arbitrary slices of a byte stream. Pure (no
 * I/O), so unit tests and the fuzzer drive it directly.
 */
enum ttrpc_decode_status {
	TTRPC_DECODE_NEED_MORE, /* consumed everything, no complete frame yet */
	TTRPC_DECODE_FRAME,	/* *frame holds a complete frame (valid until the next call) */
	TTRPC_DECODE_OVERSIZE,	/* *frame holds the header of a frame over the limit; its body is skipped */
	TTRPC_DECODE_ERROR,	/* stream is corrupt (first byte not zero); stop reading */
};

struct ttrpc_frame {
	struct ttrpc_header hdr;
	const uint8_t *data; /* hdr.length bytes */
	uint64_t offset;     /* stream offset of the frame's first header byte */
};

struct ttrpc_decoder {
	uint32_t max_data;
	uint8_t hdr_buf[TTRPC_HEADER_SIZE];
	size_t hdr_have;
	struct ttrpc_header hdr;
	uint8_t *body;
	size_t body_have;
	size_t body_cap;
	uint32_t skip; /* bytes of an oversize body still to discard */
	bool in_body;
	bool failed;
	uint64_t offset;       /* bytes consumed so far */
	uint64_t frame_offset; /* stream offset of the current frame's header */
};

void ttrpc_decoder_init(struct ttrpc_decoder *d, uint32_t max_data);
void ttrpc_decoder_release(struct ttrpc_decoder *d);
/**
 * ttrpc_decoder_feed() - consume bytes until one event happens
 * @consumed: how many bytes of @buf were used; call again with the rest.
 * Return: what happened.
 */
enum ttrpc_decode_status ttrpc_decoder_feed(struct ttrpc_decoder *d, const uint8_t *buf, size_t len, size_t *consumed,
					    struct ttrpc_frame *frame);

/**
 * ttrpc_decoder_last_start() - where the last frame beginning in @buf starts
 * Looks ahead without consuming, from the decoder's current state, over the
 * next @len bytes of the stream (used to tie SCM_RIGHTS fds to a frame).
 * Return: the offset in @buf, or -1 if no frame header begins in @buf.
 */
ssize_t ttrpc_decoder_last_start(const struct ttrpc_decoder *d, const uint8_t *buf, size_t len);

/* Pack @msg into a fresh buffer. Return: the buffer (caller frees), length in *len. */
uint8_t *ttrpc_pack(const ProtobufCMessage *msg, size_t *len);

/* ------------------------------------------------------------------ server */

struct ttrpc_server;
struct ttrpc_listener;
struct ttrpc_conn;
struct ttrpc_call;

/* Who is on the other end of a connection. */
struct ttrpc_peer {
	int family;    /* AF_UNIX or AF_VSOCK */
	bool has_cred; /* SO_PEERCRED available (AF_UNIX) */
	pid_t pid;
	uid_t uid;
	gid_t gid;
	uint32_t cid; /* AF_VSOCK source CID */
	uint32_t port;
	/* AF_UNIX: a pidfd of the peer taken when the connection was set up
	 * (SO_PEERPIDFD, else pidfd_open(pid)), so the peer process can be
	 * identified later without a pid-reuse race; -1 if unavailable. Owned
	 * by the connection. */
	int pidfd;
	/* AF_UNIX: the peer's supplementary groups as they were when it
	 * connected (SO_PEERGROUPS, like SO_PEERCRED); owned by the
	 * connection. has_groups is false where the kernel cannot tell. */
	bool has_groups;
	size_t ngroups;
	gid_t *groups;
};

/**
 * ttrpc_peer_in_group() - whether the peer had @gid as its primary or one of
 * its supplementary groups when it connected
 * Return: true if so.
 */
bool ttrpc_peer_in_group(const struct ttrpc_peer *peer, gid_t gid);

/*
 * A handler runs on the loop with the already unpacked request (freed when
 * the handler returns: copy what you keep). It must eventually end the call
 * with ttrpc_call_reply()/ttrpc_call_fail()/ttrpc_call_finish(), now or
 * later; if the connection closes or the deadline passes first, the cancel
 * callback (if set) runs and the call is gone afterwards.
 */
typedef void (*ttrpc_handler_fn)(struct ttrpc_call *call, const ProtobufCMessage *req, void *opaque);
typedef void (*ttrpc_call_cb)(struct ttrpc_call *call, void *opaque);
/* Data frame from the client on a streaming call; @closed = remote closed. */
typedef void (*ttrpc_data_cb)(struct ttrpc_call *call, const uint8_t *data, size_t len, bool closed, void *opaque);
typedef void (*ttrpc_conn_cb)(struct ttrpc_conn *conn, void *opaque);

struct ttrpc_limits {
	unsigned max_connections;      /* 0 = unlimited */
	unsigned max_streams_per_conn; /* concurrent calls per connection; 0 = unlimited */
	size_t max_out_bytes;	       /* buffered output per connection before it is dropped */
};

struct ttrpc_server *ttrpc_server_new(struct ev_loop *loop);
void ttrpc_server_free(struct ttrpc_server *srv);
void ttrpc_server_set_limits(struct ttrpc_server *srv, const struct ttrpc_limits *limits);
/* Called when a connection is accepted / before it is freed. on_open may
 * refuse the peer with ttrpc_conn_close() (then on_close runs at once). */
void ttrpc_server_set_conn_callbacks(struct ttrpc_server *srv, ttrpc_conn_cb on_open, ttrpc_conn_cb on_close,
				     void *opaque);
/**
 * ttrpc_server_add_method() - register @fn for @service/@method
 * @service: fully qualified, e.g. "virtmgr.v1.VirtualizationService"
 * @input: descriptor the Request payload is unpacked with (failure ->
 *         INVALID_ARGUMENT naming the message type)
 * Unknown service or method -> UNIMPLEMENTED naming them.
 */
void ttrpc_server_add_method(struct ttrpc_server *srv, const char *service, const char *method,
			     const ProtobufCMessageDescriptor *input, ttrpc_handler_fn fn, void *opaque);

/* Listen on a Unix socket (unlinks a stale socket first; chmod @mode). */
struct ttrpc_listener *ttrpc_server_listen_unix(struct ttrpc_server *srv, const char *path, mode_t mode,
						struct vm_error *err);
struct ttrpc_listener *ttrpc_server_listen_vsock(struct ttrpc_server *srv, uint32_t cid, uint32_t port,
						 struct vm_error *err);
/* Listen on an inherited, already listening socket (systemd LISTEN_FDS). */
struct ttrpc_listener *ttrpc_server_listen_fd(struct ttrpc_server *srv, int fd, struct vm_error *err);
/* Stop accepting and close the listening socket (unlinks a Unix path it created). */
void ttrpc_listener_close(struct ttrpc_listener *l);
void ttrpc_listener_set_data(struct ttrpc_listener *l, void *data);
void *ttrpc_listener_get_data(const struct ttrpc_listener *l);
/* Serve an already connected socket (e.g. one end of a socketpair); the fd
 * passes to the server. Return: the connection, or NULL (err filled; the fd
 * is closed if on_open refused it, left open if it is not a stream socket). */
struct ttrpc_conn *ttrpc_server_adopt(struct ttrpc_server *srv, int fd, struct vm_error *err);
unsigned ttrpc_server_conn_count(const struct ttrpc_server *srv);

/* gRPC status codes 0..16: the index of the counters below */
#define TTRPC_STATUS_CODES 17
/* One registered method and how many of its calls ended with each status
 * code (a reply, a failure, the deadline; not calls cut by a closed connection). */
typedef void (*ttrpc_method_stats_fn)(const char *service, const char *method,
				      const uint64_t ended[TTRPC_STATUS_CODES], void *opaque);
/** ttrpc_server_foreach_method() - call @fn for every registered method. */
void ttrpc_server_foreach_method(const struct ttrpc_server *srv, ttrpc_method_stats_fn fn, void *opaque);

const struct ttrpc_peer *ttrpc_conn_peer(const struct ttrpc_conn *conn);
uint64_t ttrpc_conn_id(const struct ttrpc_conn *conn);			   /* unique per process */
struct ttrpc_listener *ttrpc_conn_listener(const struct ttrpc_conn *conn); /* NULL if adopted */
void ttrpc_conn_set_data(struct ttrpc_conn *conn, void *data);
void *ttrpc_conn_get_data(const struct ttrpc_conn *conn);
/* Close now; pending calls are cancelled, on_close runs. */
void ttrpc_conn_close(struct ttrpc_conn *conn);
size_t ttrpc_conn_out_pending(const struct ttrpc_conn *conn);
/* Called once output pending drops to/below @low_water after having been above it. */
void ttrpc_conn_set_drain_cb(struct ttrpc_conn *conn, size_t low_water, ttrpc_conn_cb cb, void *opaque);

struct ttrpc_conn *ttrpc_call_conn(const struct ttrpc_call *call);
const struct ttrpc_peer *ttrpc_call_peer(const struct ttrpc_call *call);
const char *ttrpc_call_method(const struct ttrpc_call *call); /* "Service/Method" */
/* Absolute CLOCK_MONOTONIC deadline from timeout_nano, or 0 for none. */
uint64_t ttrpc_call_deadline_ns(const struct ttrpc_call *call);
/* The request had flag remote-open or remote-closed: a streaming call. */
bool ttrpc_call_is_stream(const struct ttrpc_call *call);
/* Take ownership of fd number @index received with the request; -1 if none. */
int ttrpc_call_take_fd(struct ttrpc_call *call, uint32_t index);
size_t ttrpc_call_nfds(const struct ttrpc_call *call);
void ttrpc_call_set_cancel(struct ttrpc_call *call, ttrpc_call_cb cb, void *opaque);
void ttrpc_call_set_data_cb(struct ttrpc_call *call, ttrpc_data_cb cb, void *opaque);

/* End the call with status OK and @msg; @fds (ownership passes, closed after sending). */
void ttrpc_call_reply(struct ttrpc_call *call, const ProtobufCMessage *msg, const int *fds, size_t nfds);
void ttrpc_call_fail(struct ttrpc_call *call, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
void ttrpc_call_fail_error(struct ttrpc_call *call, const struct vm_error *err);
/* Streaming: send @msg as a Data frame. Return: 0, or -1 if the connection is gone. */
int ttrpc_call_send(struct ttrpc_call *call, const ProtobufCMessage *msg);
/* Streaming: end with an OK Response (no payload). */
void ttrpc_call_finish(struct ttrpc_call *call);

/* ------------------------------------------------------------------ clients */

/* Blocking client: one connection, calls made one after another (streams may interleave). */
struct ttrpc_client;

struct ttrpc_client *ttrpc_client_connect_unix(const char *path, struct vm_error *err);
/* Wrap an already connected socket (ownership passes). */
struct ttrpc_client *ttrpc_client_from_fd(int fd);
void ttrpc_client_free(struct ttrpc_client *cl);
int ttrpc_client_fd(const struct ttrpc_client *cl);

/**
 * ttrpc_client_call() - unary call
 * @fds/@nfds: sent as SCM_RIGHTS with the request (not closed)
 * @resp: unpacked with @resp_desc (free with protobuf_c_message_free_unpacked)
 * @rfds/@nrfds: in: capacity of @rfds; out: fds received with the response
 * @timeout_ns: sent as timeout_nano and enforced locally; 0 = none
 * Return: 0, or -1 with @err holding the remote Status or the local failure.
 */
int ttrpc_client_call(struct ttrpc_client *cl, const char *service, const char *method, const ProtobufCMessage *req,
		      const int *fds, size_t nfds, const ProtobufCMessageDescriptor *resp_desc, ProtobufCMessage **resp,
		      int *rfds, size_t *nrfds, uint64_t timeout_ns, struct vm_error *err);

/* Streaming: open a stream (Request with @flags = TTRPC_FLAG_REMOTE_CLOSED
 * for server streaming, TTRPC_FLAG_REMOTE_OPEN when the client sends data).
 * Return: the stream id (> 0), or -1. */
int64_t ttrpc_client_stream_open(struct ttrpc_client *cl, const char *service, const char *method,
				 const ProtobufCMessage *req, uint8_t flags, uint64_t timeout_ns, struct vm_error *err);
/* Send a Data frame (raw bytes, usually a packed message); @close sets remote closed. */
int ttrpc_client_stream_send(struct ttrpc_client *cl, uint32_t stream_id, const uint8_t *data, size_t len, bool close,
			     struct vm_error *err);
/**
 * ttrpc_client_stream_recv() - next Data frame of @stream_id
 * @timeout_ms: -1 blocks, 0 polls
 * Return: 1 with *data and *len (the caller frees *data) for a Data frame;
 *         0 when the stream ended OK (Response or Data with remote closed);
 *         -1 with @err on a failed status, I/O error or timeout
 *            (err->code DEADLINE_EXCEEDED when @timeout_ms ran out).
 */
int ttrpc_client_stream_recv(struct ttrpc_client *cl, uint32_t stream_id, uint8_t **data, size_t *len, int timeout_ms,
			     struct vm_error *err);

/* Stop reading @stream_id: its parked and future frames are dropped (the
 * server is not told; its final Response is absorbed when it comes). */
void ttrpc_client_stream_abandon(struct ttrpc_client *cl, uint32_t stream_id);

/* Asynchronous client connection on a libev loop. */
typedef void (*ttrpc_reply_cb)(const struct vm_error *status, const uint8_t *payload, size_t len, void *opaque);

struct ttrpc_conn *ttrpc_client_conn_new(struct ev_loop *loop, int fd, ttrpc_conn_cb on_close, void *opaque);
/* Unary call; @cb runs exactly once (status->code 0 = OK), also on close or timeout.
 * When the call cannot be sent (connection closed: UNAVAILABLE; request over
 * TTRPC_MAX_DATA: RESOURCE_EXHAUSTED), @cb runs before this returns -1.
 * Return: 0 once the call is queued. */
int ttrpc_conn_call(struct ttrpc_conn *conn, const char *service, const char *method, const ProtobufCMessage *req,
		    uint64_t timeout_ns, ttrpc_reply_cb cb, void *opaque);

#endif
