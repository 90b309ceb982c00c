/* ttrpc-frame.c - the ttrpc frame codec and the packing of frame bodies.
 *
 * Design. The decoder is pure (no I/O): it is fed whatever a read returned
 * and yields one frame at a time, so splits at any byte boundary are
 * invisible to the layers above, and unit tests and the fuzzer drive it
 * directly. An oversize body is reported by its header (OVERSIZE) and then
 * skipped byte by byte, so only that stream fails; a first header byte
 * other than zero (a length of 16 MiB or more, i.e. not ttrpc) poisons the
 * decoder and the connection is closed. Bodies are packed by protobuf-c
 * only: ttrpc_frame_append() computes the body's size once, then packs the
 * frame straight into the caller's buffer (an output chunk), the envelope's
 * payload packed just past the frame and copied in by the envelope's own
 * packing; nothing here knows protobuf's wire format.
 */
#include "config.h"
#include "lib/ttrpc.h"
#include "lib/ttrpc-priv.h"

#include <stdio.h>
#include <string.h>

#include "protos/ttrpc.pb-c.h"

/* ------------------------------------------------------------------ codec */

static uint32_t be32_get(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void be32_put(uint8_t *p, uint32_t v)
{
	p[0] = v >> 24;
	p[1] = v >> 16;
	p[2] = v >> 8;
	p[3] = v;
}

void ttrpc_header_encode(const struct ttrpc_header *h, uint8_t out[TTRPC_HEADER_SIZE])
{
	be32_put(out, h->length);
	be32_put(out + 4, h->stream_id);
	out[8] = h->type;
	out[9] = h->flags;
}

void ttrpc_header_decode(const uint8_t in[TTRPC_HEADER_SIZE], struct ttrpc_header *h)
{
	h->length = be32_get(in);
	h->stream_id = be32_get(in + 4);
	h->type = in[8];
	h->flags = in[9];
}

void ttrpc_decoder_init(struct ttrpc_decoder *d, uint32_t max_data)
{
	memset(d, 0, sizeof(*d));
	d->max_data = max_data ? max_data : TTRPC_MAX_DATA;
}

void ttrpc_decoder_release(struct ttrpc_decoder *d)
{
	free(d->body);
	d->body = NULL;
	d->body_cap = 0;
}

enum ttrpc_decode_status ttrpc_decoder_feed(struct ttrpc_decoder *d, const uint8_t *buf, size_t len, size_t *consumed,
					    struct ttrpc_frame *frame)
{
	size_t pos = 0, n;

	*consumed = 0;
	if (d->failed)
		return TTRPC_DECODE_ERROR;
	for (;;) {
		if (d->skip) {
			n = MIN((size_t)d->skip, len - pos);
			d->skip -= n;
			pos += n;
			d->offset += n;
			if (d->skip)
				break;
			continue;
		}
		if (!d->in_body) {
			if (pos == len)
				break;
			if (d->hdr_have == 0)
				d->frame_offset = d->offset;
			n = MIN(TTRPC_HEADER_SIZE - d->hdr_have, len - pos);
			memcpy(d->hdr_buf + d->hdr_have, buf + pos, n);
			if (d->hdr_have == 0 && d->hdr_buf[0] != 0) {
				d->failed = true;
				*consumed = pos;
				return TTRPC_DECODE_ERROR;
			}
			d->hdr_have += n;
			pos += n;
			d->offset += n;
			if (d->hdr_have < TTRPC_HEADER_SIZE)
				break;
			ttrpc_header_decode(d->hdr_buf, &d->hdr);
			d->hdr_have = 0;
			frame->hdr = d->hdr;
			frame->offset = d->frame_offset;
			if (d->hdr.length > d->max_data) {
				d->skip = d->hdr.length;
				frame->data = NULL;
				*consumed = pos;
				return TTRPC_DECODE_OVERSIZE;
			}
			if (d->hdr.length == 0) {
				frame->data = NULL;
				*consumed = pos;
				return TTRPC_DECODE_FRAME;
			}
			if (d->body_cap < d->hdr.length) {
				/* Grow geometrically but never beyond the limit. */
				size_t cap = MAX((size_t)d->hdr.length, MIN(d->body_cap * 2, (size_t)d->max_data));
				free(d->body);
				d->body = xmalloc(cap);
				d->body_cap = cap;
			}
			d->body_have = 0;
			d->in_body = true;
		}
		n = MIN(d->hdr.length - d->body_have, len - pos);
		if (n)
			memcpy(d->body + d->body_have, buf + pos, n);
		d->body_have += n;
		pos += n;
		d->offset += n;
		if (d->body_have < d->hdr.length)
			break;
		d->in_body = false;
		frame->hdr = d->hdr;
		frame->data = d->body;
		frame->offset = d->frame_offset;
		*consumed = pos;
		return TTRPC_DECODE_FRAME;
	}
	*consumed = pos;
	return TTRPC_DECODE_NEED_MORE;
}

ssize_t ttrpc_decoder_last_start(const struct ttrpc_decoder *d, const uint8_t *buf, size_t len)
{
	uint64_t pos = 0;
	ssize_t last = -1;

	if (d->failed)
		return -1;
	if (d->skip) {
		pos = d->skip;
	} else if (d->in_body) {
		pos = d->hdr.length - d->body_have;
	} else if (d->hdr_have) {
		/* The rest of a partial header, then its body (skipped or not). */
		uint8_t lenbuf[4];

		for (size_t i = 0; i < 4; i++) {
			if (i < d->hdr_have)
				lenbuf[i] = d->hdr_buf[i];
			else if (i - d->hdr_have < len)
				lenbuf[i] = buf[i - d->hdr_have];
			else
				return -1;
		}
		pos = (uint64_t)(TTRPC_HEADER_SIZE - d->hdr_have) + be32_get(lenbuf);
	}
	while (pos < len) {
		last = (ssize_t)pos;
		if (len - pos < 4)
			break;
		pos += TTRPC_HEADER_SIZE + (uint64_t)be32_get(buf + pos);
	}
	return last;
}

uint8_t *ttrpc_buf_reserve(struct ttrpc_buf *b, size_t need)
{
	if (b->cap - b->len < need) {
		size_t cap = MAX(MAX(b->cap * 2, b->len + need), (size_t)256);

		b->p = xrealloc(b->p, cap);
		b->cap = cap;
	}
	return b->p + b->len;
}

uint8_t *ttrpc_pack(const ProtobufCMessage *msg, size_t *len)
{
	size_t n = msg ? protobuf_c_message_get_packed_size(msg) : 0;
	uint8_t *buf = xmalloc(n ? n : 1);

	if (n)
		protobuf_c_message_pack(msg, buf);
	*len = n;
	return buf;
}

size_t ttrpc_frame_append(struct ttrpc_buf *b, uint32_t stream_id, uint8_t type, uint8_t flags,
			  const ProtobufCMessage *body, ProtobufCBinaryData *payload, const ProtobufCMessage *inner,
			  size_t max)
{
	size_t plen = 0, blen;
	uint8_t *f;

	if (payload) {
		plen = inner ? protobuf_c_message_get_packed_size(inner) : 0;
		payload->len = plen;
		payload->data = NULL;
	}
	blen = protobuf_c_message_get_packed_size(body);
	if (blen > max)
		return 0;
	f = ttrpc_buf_reserve(b, TTRPC_HEADER_SIZE + blen + plen);
	if (plen) {
		/* The payload is packed past the frame, then copied into it by
		 * the envelope's own packing: protobuf-c writes every byte. */
		payload->data = f + TTRPC_HEADER_SIZE + blen;
		protobuf_c_message_pack(inner, payload->data);
	}
	protobuf_c_message_pack(body, f + TTRPC_HEADER_SIZE);
	ttrpc_header_encode(
		&(struct ttrpc_header){
			.length = (uint32_t)blen, .stream_id = stream_id, .type = type, .flags = flags },
		f);
	b->len += TTRPC_HEADER_SIZE + blen;
	return TTRPC_HEADER_SIZE + blen;
}

uint8_t *ttrpc_build_frame(uint32_t stream_id, uint8_t type, uint8_t flags, const uint8_t *data, size_t len,
			   size_t *out_len)
{
	struct ttrpc_header h = { .length = (uint32_t)len, .stream_id = stream_id, .type = type, .flags = flags };
	uint8_t *buf = xmalloc(TTRPC_HEADER_SIZE + len);

	ttrpc_header_encode(&h, buf);
	if (len)
		memcpy(buf + TTRPC_HEADER_SIZE, data, len);
	*out_len = TTRPC_HEADER_SIZE + len;
	return buf;
}

uint8_t *ttrpc_build_request(uint32_t stream_id, uint8_t flags, const char *service, const char *method,
			     const ProtobufCMessage *req, uint64_t timeout_ns, size_t *len)
{
	Ttrpc__Request r = TTRPC__REQUEST__INIT;
	struct ttrpc_buf b = { 0 };

	r.service = (char *)service;
	r.method = (char *)method;
	r.timeout_nano = timeout_ns > INT64_MAX ? INT64_MAX : (int64_t)timeout_ns;
	*len = ttrpc_frame_append(&b, stream_id, TTRPC_TYPE_REQUEST, flags, &r.base, &r.payload, req, SIZE_MAX);
	return b.p;
}

int ttrpc_parse_response(const uint8_t *body, size_t len, struct vm_error *status, uint8_t **payload, size_t *plen)
{
	Ttrpc__Response *r = ttrpc__response__unpack(NULL, len, body);

	*payload = NULL;
	*plen = 0;
	if (!r)
		return vm_error_set(status, VM_INTERNAL, "malformed ttrpc.Response from the peer");
	status->code = r->status ? r->status->code : VM_OK;
	snprintf(status->message, sizeof(status->message), "%s",
		 r->status && r->status->message ? r->status->message : "");
	if (r->payload.len) {
		*payload = xmalloc(r->payload.len);
		memcpy(*payload, r->payload.data, r->payload.len);
		*plen = r->payload.len;
	}
	ttrpc__response__free_unpacked(r, NULL);
	return 0;
}
