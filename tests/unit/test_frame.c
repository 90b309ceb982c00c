/* test_frame.c - the ttrpc frame codec: header layout, incremental decoding
 * at every split point, the 4 MiB limit, corrupt headers and the look-ahead
 * that ties received fds to a frame.
 */
#include "config.h"

#include <criterion/criterion.h>
#include <string.h>

#include "lib/ttrpc.h"

struct decoded {
	struct ttrpc_header hdr;
	enum ttrpc_decode_status status;
	uint64_t offset;
	size_t len;
	uint8_t data[64];
};

static size_t append_frame(uint8_t *buf, uint32_t sid, uint8_t type, uint8_t flags, const char *body)
{
	struct ttrpc_header h = { .length = (uint32_t)strlen(body), .stream_id = sid, .type = type, .flags = flags };

	ttrpc_header_encode(&h, buf);
	memcpy(buf + TTRPC_HEADER_SIZE, body, h.length);
	return TTRPC_HEADER_SIZE + h.length;
}

/* Feed @buf in pieces cut at @cuts; collect the events. Return: count. */
static size_t decode_split(struct ttrpc_decoder *d, const uint8_t *buf, size_t len, const size_t *cuts, size_t ncuts,
			   struct decoded *out, size_t max)
{
	size_t n = 0, start = 0;

	for (size_t c = 0; c <= ncuts; c++) {
		size_t end = c < ncuts ? cuts[c] : len;
		size_t pos = start;

		while (pos < end) {
			struct ttrpc_frame fr;
			size_t used;
			enum ttrpc_decode_status st = ttrpc_decoder_feed(d, buf + pos, end - pos, &used, &fr);

			pos += used;
			if (st == TTRPC_DECODE_NEED_MORE) {
				cr_assert_eq(pos, end);
				break;
			}
			cr_assert_lt(n, max);
			out[n].status = st;
			if (st == TTRPC_DECODE_ERROR)
				return n + 1;
			out[n].hdr = fr.hdr;
			out[n].offset = fr.offset;
			out[n].len = st == TTRPC_DECODE_FRAME ? fr.hdr.length : 0;
			if (out[n].len) {
				cr_assert_leq(out[n].len, sizeof(out[n].data));
				memcpy(out[n].data, fr.data, out[n].len);
			}
			n++;
		}
		start = end;
	}
	return n;
}

Test(frame, header_layout)
{
	struct ttrpc_header h = { .length = 0x01020304, .stream_id = 0x0a0b0c0d, .type = 2, .flags = 3 }, back;
	uint8_t b[TTRPC_HEADER_SIZE];
	const uint8_t want[] = { 1, 2, 3, 4, 0x0a, 0x0b, 0x0c, 0x0d, 2, 3 };

	ttrpc_header_encode(&h, b);
	cr_assert_arr_eq(b, want, sizeof(want));
	ttrpc_header_decode(b, &back);
	cr_assert_eq(back.length, h.length);
	cr_assert_eq(back.stream_id, h.stream_id);
	cr_assert_eq(back.type, 2);
	cr_assert_eq(back.flags, 3);
}

Test(frame, every_split_point_and_pair)
{
	uint8_t buf[256];
	size_t len = 0;

	len += append_frame(buf + len, 1, TTRPC_TYPE_REQUEST, 0, "hello");
	len += append_frame(buf + len, 3, TTRPC_TYPE_DATA, TTRPC_FLAG_REMOTE_CLOSED, "");
	len += append_frame(buf + len, 1, TTRPC_TYPE_RESPONSE, 0, "world!");
	for (size_t a = 0; a <= len; a++) {
		for (size_t b = a; b <= len; b++) {
			struct ttrpc_decoder d;
			struct decoded out[8];
			size_t cuts[2] = { a, b };
			size_t n;

			ttrpc_decoder_init(&d, TTRPC_MAX_DATA);
			n = decode_split(&d, buf, len, cuts, 2, out, 8);
			cr_assert_eq(n, 3, "split %zu/%zu", a, b);
			cr_assert_eq(out[0].hdr.stream_id, 1);
			cr_assert_eq(out[0].len, 5);
			cr_assert_arr_eq(out[0].data, "hello", 5);
			cr_assert_eq(out[0].offset, 0);
			cr_assert_eq(out[1].hdr.stream_id, 3);
			cr_assert_eq(out[1].hdr.flags, TTRPC_FLAG_REMOTE_CLOSED);
			cr_assert_eq(out[1].len, 0);
			cr_assert_eq(out[1].offset, 15);
			cr_assert_eq(out[2].hdr.type, TTRPC_TYPE_RESPONSE);
			cr_assert_arr_eq(out[2].data, "world!", 6);
			cr_assert_eq(out[2].offset, 25);
			ttrpc_decoder_release(&d);
		}
	}
}

Test(frame, byte_by_byte)
{
	uint8_t buf[64];
	size_t len = append_frame(buf, 7, TTRPC_TYPE_DATA, 0, "abcdefgh");
	struct ttrpc_decoder d;
	int frames = 0;

	ttrpc_decoder_init(&d, 0);
	for (size_t i = 0; i < len; i++) {
		struct ttrpc_frame fr;
		size_t used;
		enum ttrpc_decode_status st = ttrpc_decoder_feed(&d, buf + i, 1, &used, &fr);

		cr_assert_eq(used, 1);
		if (i + 1 < len) {
			cr_assert_eq(st, TTRPC_DECODE_NEED_MORE);
		} else {
			cr_assert_eq(st, TTRPC_DECODE_FRAME);
			cr_assert_arr_eq(fr.data, "abcdefgh", 8);
			frames++;
		}
	}
	cr_assert_eq(frames, 1);
	ttrpc_decoder_release(&d);
}

/* A body of @len bytes: header, filler, then a small frame after it. */
static uint8_t *big_stream(uint32_t len, size_t *total)
{
	uint8_t *buf = calloc(1, TTRPC_HEADER_SIZE + (size_t)len + 64);
	struct ttrpc_header h = { .length = len, .stream_id = 5, .type = TTRPC_TYPE_REQUEST };

	ttrpc_header_encode(&h, buf);
	memset(buf + TTRPC_HEADER_SIZE, 0xab, len);
	*total = TTRPC_HEADER_SIZE + len;
	*total += append_frame(buf + *total, 7, TTRPC_TYPE_REQUEST, 0, "next");
	return buf;
}

static void check_big(uint32_t len, size_t chunk, enum ttrpc_decode_status want)
{
	size_t total, pos = 0;
	uint8_t *buf = big_stream(len, &total);
	struct ttrpc_decoder d;
	int big = 0, next = 0;

	ttrpc_decoder_init(&d, TTRPC_MAX_DATA);
	while (pos < total) {
		struct ttrpc_frame fr;
		size_t used, n = MIN(chunk, total - pos);
		enum ttrpc_decode_status st = ttrpc_decoder_feed(&d, buf + pos, n, &used, &fr);

		pos += used;
		cr_assert_neq(st, TTRPC_DECODE_ERROR);
		if (st == TTRPC_DECODE_NEED_MORE)
			continue;
		if (fr.hdr.stream_id == 5) {
			cr_assert_eq(st, want);
			cr_assert_eq(fr.hdr.length, len);
			if (st == TTRPC_DECODE_FRAME)
				cr_assert_eq(fr.data[len - 1], 0xab);
			big++;
		} else {
			cr_assert_eq(st, TTRPC_DECODE_FRAME);
			cr_assert_eq(fr.hdr.stream_id, 7);
			cr_assert_arr_eq(fr.data, "next", 4);
			cr_assert_eq(fr.offset, TTRPC_HEADER_SIZE + (uint64_t)len);
			next++;
		}
	}
	cr_assert_eq(big, 1);
	cr_assert_eq(next, 1);
	ttrpc_decoder_release(&d);
	free(buf);
}

Test(frame, max_size_accepted)
{
	check_big(TTRPC_MAX_DATA, 65536, TTRPC_DECODE_FRAME);
	check_big(TTRPC_MAX_DATA, 4099, TTRPC_DECODE_FRAME);
}

Test(frame, oversize_skipped_and_following_decoded)
{
	check_big(TTRPC_MAX_DATA + 1, 65536, TTRPC_DECODE_OVERSIZE);
	check_big(TTRPC_MAX_DATA + 1, 7, TTRPC_DECODE_OVERSIZE);
	check_big(TTRPC_MAX_DATA + 1, (size_t)TTRPC_MAX_DATA + 200, TTRPC_DECODE_OVERSIZE);
}

Test(frame, bad_first_byte)
{
	uint8_t buf[32];
	size_t len = append_frame(buf, 1, TTRPC_TYPE_REQUEST, 0, "ok");
	struct ttrpc_decoder d;
	struct decoded out[4];
	size_t n;

	buf[len] = 0x47; /* "GET /" */
	memcpy(buf + len + 1, "ET / HTTP/1.1", 13);
	ttrpc_decoder_init(&d, 0);
	n = decode_split(&d, buf, len + 14, NULL, 0, out, 4);
	cr_assert_eq(n, 2);
	cr_assert_eq(out[0].status, TTRPC_DECODE_FRAME);
	cr_assert_eq(out[1].status, TTRPC_DECODE_ERROR);
	/* It stays failed. */
	{
		struct ttrpc_frame fr;
		size_t used;

		cr_assert_eq(ttrpc_decoder_feed(&d, buf, len, &used, &fr), TTRPC_DECODE_ERROR);
		cr_assert_eq(used, 0);
	}
	ttrpc_decoder_release(&d);
}

Test(frame, interleaved_streams)
{
	uint8_t buf[512];
	size_t len = 0;
	struct ttrpc_decoder d;
	struct decoded out[16];
	size_t cuts[] = { 3, 11, 40, 41, 77 };
	size_t n;

	len += append_frame(buf + len, 1, TTRPC_TYPE_REQUEST, TTRPC_FLAG_REMOTE_OPEN, "open1");
	len += append_frame(buf + len, 3, TTRPC_TYPE_REQUEST, TTRPC_FLAG_REMOTE_CLOSED, "open3");
	len += append_frame(buf + len, 1, TTRPC_TYPE_DATA, 0, "d1a");
	len += append_frame(buf + len, 3, TTRPC_TYPE_DATA, 0, "d3a");
	len += append_frame(buf + len, 1, TTRPC_TYPE_DATA, TTRPC_FLAG_REMOTE_CLOSED, "d1b");
	len += append_frame(buf + len, 5, TTRPC_TYPE_REQUEST, 0, "unary5");
	ttrpc_decoder_init(&d, 0);
	n = decode_split(&d, buf, len, cuts, ARRAY_SIZE(cuts), out, 16);
	cr_assert_eq(n, 6);
	cr_assert_eq(out[0].hdr.stream_id, 1);
	cr_assert_eq(out[1].hdr.stream_id, 3);
	cr_assert_eq(out[2].hdr.stream_id, 1);
	cr_assert_arr_eq(out[2].data, "d1a", 3);
	cr_assert_eq(out[3].hdr.stream_id, 3);
	cr_assert_eq(out[4].hdr.flags, TTRPC_FLAG_REMOTE_CLOSED);
	cr_assert_eq(out[5].hdr.stream_id, 5);
	cr_assert_arr_eq(out[5].data, "unary5", 6);
	ttrpc_decoder_release(&d);
}

Test(frame, last_start_lookahead)
{
	uint8_t buf[128];
	size_t a = append_frame(buf, 1, TTRPC_TYPE_REQUEST, 0, "first");
	size_t b = append_frame(buf + a, 3, TTRPC_TYPE_REQUEST, 0, "second");
	struct ttrpc_decoder d;
	struct ttrpc_frame fr;
	size_t used;

	ttrpc_decoder_init(&d, 0);
	cr_assert_eq(ttrpc_decoder_last_start(&d, buf, a + b), (ssize_t)a);
	cr_assert_eq(ttrpc_decoder_last_start(&d, buf, a), 0);
	cr_assert_eq(ttrpc_decoder_last_start(&d, buf, a + 1), (ssize_t)a);
	/* Decoder in the middle of the first header (2 bytes in). */
	cr_assert_eq(ttrpc_decoder_feed(&d, buf, 2, &used, &fr), TTRPC_DECODE_NEED_MORE);
	cr_assert_eq(ttrpc_decoder_last_start(&d, buf + 2, a + b - 2), (ssize_t)(a - 2));
	cr_assert_eq(ttrpc_decoder_last_start(&d, buf + 2, a - 2), -1);
	/* In the body. */
	cr_assert_eq(ttrpc_decoder_feed(&d, buf + 2, 10, &used, &fr), TTRPC_DECODE_NEED_MORE);
	cr_assert_eq(ttrpc_decoder_last_start(&d, buf + 12, a + b - 12), (ssize_t)(a - 12));
	cr_assert_eq(ttrpc_decoder_last_start(&d, buf + 12, 3), -1);
	ttrpc_decoder_release(&d);
}

Test(frame, pack_empty_message)
{
	size_t len = 99;
	uint8_t *b = ttrpc_pack(NULL, &len);

	cr_assert_eq(len, 0);
	free(b);
}
