/* marker.c - format and verify console markers (marker.h has the format).
 *
 * Design. The MAC is HMAC-SHA256 truncated to 128 bits, written here from
 * FIPS 180-4 and RFC 2104 (about a hundred lines) rather than taken from a
 * crypto library: vmagent is linked statically and the daemon's dependency
 * set is fixed, and one hash function is all either end needs. The unit
 * test checks it against the FIPS and RFC 4231 vectors.
 *
 * Parsing is strict and never trusts the line: the prefix, a canonical
 * decimal sequence number, exactly 32 lower-case hex digits, one of the
 * four verbs with canonical numbers, and for ERROR a message without
 * control characters. Only then is the MAC computed and compared in
 * constant time, and the sequence number checked against the last one
 * accepted. A line longer than MARKER_LINE_MAX is never a marker.
 */
#include "config.h"
#include "server/marker.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#define MARKER_DOMAIN "virtmgr-marker-v1\n"

/* ---------------------------------------------------------------- SHA-256 */

struct sha256 {
	uint32_t h[8];
	uint64_t total;
	uint8_t buf[64];
	size_t used;
};

static const uint32_t sha256_k[64] = {
	0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
	0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
	0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
	0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
	0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
	0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
	0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
	0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
};

static uint32_t ror(uint32_t x, unsigned n)
{
	return (x >> n) | (x << (32 - n));
}

static void sha256_block(struct sha256 *s, const uint8_t *p)
{
	uint32_t w[64], a, b, c, d, e, f, g, h;

	for (int i = 0; i < 16; i++)
		w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 | (uint32_t)p[4 * i + 2] << 8 |
		       p[4 * i + 3];
	for (int i = 16; i < 64; i++) {
		uint32_t s0 = ror(w[i - 15], 7) ^ ror(w[i - 15], 18) ^ (w[i - 15] >> 3);
		uint32_t s1 = ror(w[i - 2], 17) ^ ror(w[i - 2], 19) ^ (w[i - 2] >> 10);

		w[i] = w[i - 16] + s0 + w[i - 7] + s1;
	}
	a = s->h[0], b = s->h[1], c = s->h[2], d = s->h[3];
	e = s->h[4], f = s->h[5], g = s->h[6], h = s->h[7];
	for (int i = 0; i < 64; i++) {
		uint32_t t1 = h + (ror(e, 6) ^ ror(e, 11) ^ ror(e, 25)) + ((e & f) ^ (~e & g)) + sha256_k[i] + w[i];
		uint32_t t2 = (ror(a, 2) ^ ror(a, 13) ^ ror(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));

		h = g, g = f, f = e, e = d + t1;
		d = c, c = b, b = a, a = t1 + t2;
	}
	s->h[0] += a, s->h[1] += b, s->h[2] += c, s->h[3] += d;
	s->h[4] += e, s->h[5] += f, s->h[6] += g, s->h[7] += h;
}

static void sha256_init(struct sha256 *s)
{
	static const uint32_t iv[8] = { 0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
					0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19 };

	memcpy(s->h, iv, sizeof(iv));
	s->total = 0;
	s->used = 0;
}

static void sha256_update(struct sha256 *s, const void *data, size_t len)
{
	const uint8_t *p = data;

	s->total += len;
	while (len) {
		size_t n = MIN(len, 64 - s->used);

		memcpy(s->buf + s->used, p, n);
		s->used += n;
		p += n;
		len -= n;
		if (s->used == 64) {
			sha256_block(s, s->buf);
			s->used = 0;
		}
	}
}

static void sha256_final(struct sha256 *s, uint8_t out[32])
{
	uint64_t bits = s->total * 8;
	uint8_t pad = 0x80, zero = 0, len[8];

	sha256_update(s, &pad, 1);
	while (s->used != 56)
		sha256_update(s, &zero, 1);
	for (int i = 0; i < 8; i++)
		len[i] = (uint8_t)(bits >> (56 - 8 * i));
	sha256_update(s, len, 8);
	for (int i = 0; i < 8; i++) {
		out[4 * i] = (uint8_t)(s->h[i] >> 24);
		out[4 * i + 1] = (uint8_t)(s->h[i] >> 16);
		out[4 * i + 2] = (uint8_t)(s->h[i] >> 8);
		out[4 * i + 3] = (uint8_t)s->h[i];
	}
	explicit_bzero(s, sizeof(*s));
}

int marker_sha256_fd(int fd, uint8_t out[32])
{
	struct sha256 s;
	uint8_t buf[16384];
	ssize_t n;

	sha256_init(&s);
	while ((n = read(fd, buf, sizeof(buf))) != 0) {
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		sha256_update(&s, buf, (size_t)n);
	}
	sha256_final(&s, out);
	return 0;
}

void marker_hmac_sha256(const uint8_t *key, size_t key_len, const void *msg, size_t len, uint8_t out[32])
{
	uint8_t k[64] = { 0 }, pad[64], inner[32];
	struct sha256 s;

	if (key_len > 64) {
		sha256_init(&s);
		sha256_update(&s, key, key_len);
		sha256_final(&s, k);
	} else if (key_len) {
		memcpy(k, key, key_len);
	}
	for (int i = 0; i < 64; i++)
		pad[i] = k[i] ^ 0x36;
	sha256_init(&s);
	sha256_update(&s, pad, 64);
	sha256_update(&s, msg, len);
	sha256_final(&s, inner);
	for (int i = 0; i < 64; i++)
		pad[i] = k[i] ^ 0x5c;
	sha256_init(&s);
	sha256_update(&s, pad, 64);
	sha256_update(&s, inner, 32);
	sha256_final(&s, out);
	explicit_bzero(k, sizeof(k));
	explicit_bzero(pad, sizeof(pad));
	explicit_bzero(inner, sizeof(inner));
}

/* ---------------------------------------------------------------- keys */

int marker_key_generate(struct marker_key *key, struct vm_error *err)
{
	size_t got = 0;

	while (got < sizeof(key->bytes)) {
		ssize_t n = getrandom(key->bytes + got, sizeof(key->bytes) - got, 0);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return vm_error_set_errno(err, VM_INTERNAL, errno, "marker key: getrandom");
		got += (size_t)n;
	}
	return 0;
}

static const char hexdigits[] = "0123456789abcdef";

char *marker_key_to_hex(const struct marker_key *key, char out[2 * MARKER_KEY_LEN + 1])
{
	for (size_t i = 0; i < MARKER_KEY_LEN; i++) {
		out[2 * i] = hexdigits[key->bytes[i] >> 4];
		out[2 * i + 1] = hexdigits[key->bytes[i] & 15];
	}
	out[2 * MARKER_KEY_LEN] = '\0';
	return out;
}

/* Lower-case hex digit value, or -1. */
static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

static bool unhex(const char *s, uint8_t *out, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		int hi = hexval(s[2 * i]), lo = hexval(s[2 * i + 1]);

		if (hi < 0 || lo < 0)
			return false;
		out[i] = (uint8_t)(hi << 4 | lo);
	}
	return true;
}

int marker_key_from_hex(struct marker_key *key, const char *hex, struct vm_error *err)
{
	if (strlen(hex) != 2 * MARKER_KEY_LEN || !unhex(hex, key->bytes, MARKER_KEY_LEN))
		return vm_error_set(err, VM_INVALID_ARGUMENT, "marker key: expected %d hex digits", 2 * MARKER_KEY_LEN);
	return 0;
}

void marker_verifier_init(struct marker_verifier *v, const struct marker_key *key)
{
	v->key = *key;
	v->last_seq = 0;
}

/* ---------------------------------------------------------------- lines */

static void mac_of(const struct marker_key *key, const char *body, size_t len, uint8_t mac[32])
{
	char msg[sizeof(MARKER_DOMAIN) + MARKER_LINE_MAX];

	memcpy(msg, MARKER_DOMAIN, strlen(MARKER_DOMAIN));
	memcpy(msg + strlen(MARKER_DOMAIN), body, len);
	marker_hmac_sha256(key->bytes, MARKER_KEY_LEN, msg, strlen(MARKER_DOMAIN) + len, mac);
}

static bool is_control(unsigned char c)
{
	return c < 0x20 || c == 0x7f;
}

size_t marker_format(const struct marker_key *key, uint64_t seq, enum marker_kind kind, int code, const char *message,
		     char *buf, size_t size)
{
	char body[MARKER_LINE_MAX + 1], msg[MARKER_MESSAGE_MAX + 1];
	uint8_t mac[32];
	int blen, n;

	if (size < MARKER_LINE_MAX + 1 || seq == 0)
		return 0;
	switch (kind) {
	case MARKER_STARTED:
		blen = snprintf(body, sizeof(body), "%" PRIu64 " STARTED", seq);
		break;
	case MARKER_READY:
		blen = snprintf(body, sizeof(body), "%" PRIu64 " READY", seq);
		break;
	case MARKER_EXIT:
		if (code < 0 || code > 255)
			return 0;
		blen = snprintf(body, sizeof(body), "%" PRIu64 " EXIT %d", seq, code);
		break;
	case MARKER_ERROR: {
		size_t l = strlen(message ? message : "");

		if (code < 0 || code > 255)
			return 0;
		if (l > MARKER_MESSAGE_MAX) {
			/* cut at a character boundary: the host hands it on as a proto string */
			l = MARKER_MESSAGE_MAX;
			while (l && ((unsigned char)message[l] & 0xc0) == 0x80)
				l--;
		}
		for (size_t i = 0; i < l; i++)
			msg[i] = is_control((unsigned char)message[i]) ? '?' : message[i];
		msg[l] = '\0';
		if (!l)
			snprintf(msg, sizeof(msg), "?");
		blen = snprintf(body, sizeof(body), "%" PRIu64 " ERROR %d %s", seq, code, msg);
		break;
	}
	case MARKER_NONE:
	default:
		return 0;
	}
	if (blen < 0 || (size_t)blen >= sizeof(body))
		return 0;
	mac_of(key, body, (size_t)blen, mac);
	/* "<prefix><seq> <mac> <rest>": the MAC goes after the sequence number */
	{
		const char *sp = strchr(body, ' ');
		char hex[2 * MARKER_MAC_LEN + 1];

		for (size_t i = 0; i < MARKER_MAC_LEN; i++) {
			hex[2 * i] = hexdigits[mac[i] >> 4];
			hex[2 * i + 1] = hexdigits[mac[i] & 15];
		}
		hex[2 * MARKER_MAC_LEN] = '\0';
		n = snprintf(buf, size, MARKER_PREFIX "%.*s %s%s", (int)(sp - body), body, hex, sp);
	}
	explicit_bzero(mac, sizeof(mac));
	if (n < 0 || n > MARKER_LINE_MAX)
		return 0;
	return (size_t)n;
}

/* A canonical decimal number (no sign, no leading zero) up to @max at *p; advances *p. */
static bool take_number(const char **p, const char *end, uint64_t max, uint64_t *out)
{
	const char *s = *p;
	uint64_t v = 0;

	if (s >= end || *s < '0' || *s > '9' || (*s == '0' && s + 1 < end && s[1] >= '0' && s[1] <= '9'))
		return false;
	for (; s < end && *s >= '0' && *s <= '9'; s++) {
		if (v > (max - (uint64_t)(*s - '0')) / 10)
			return false;
		v = v * 10 + (uint64_t)(*s - '0');
	}
	*p = s;
	*out = v;
	return true;
}

static bool take(const char **p, const char *end, const char *word)
{
	size_t l = strlen(word);

	if ((size_t)(end - *p) < l || memcmp(*p, word, l))
		return false;
	*p += l;
	return true;
}

enum marker_kind marker_parse(struct marker_verifier *v, const char *line, size_t len, struct marker *out)
{
	const char *p = line, *end, *seq_start, *rest;
	char body[MARKER_LINE_MAX + 1];
	uint8_t want[MARKER_MAC_LEN], mac[32], diff = 0;
	uint64_t seq, num;
	size_t seq_len;

	memset(out, 0, sizeof(*out));
	if (len && line[len - 1] == '\r')
		len--;
	if (len > MARKER_LINE_MAX || len < strlen(MARKER_PREFIX))
		return MARKER_NONE;
	end = line + len;
	if (!take(&p, end, MARKER_PREFIX))
		return MARKER_NONE;
	seq_start = p;
	if (!take_number(&p, end, UINT64_MAX, &seq) || seq == 0 || !take(&p, end, " "))
		return MARKER_NONE;
	seq_len = (size_t)(p - 1 - seq_start);
	if (end - p < 2 * MARKER_MAC_LEN + 1 || !unhex(p, want, MARKER_MAC_LEN))
		return MARKER_NONE;
	p += 2 * MARKER_MAC_LEN;
	if (!take(&p, end, " "))
		return MARKER_NONE;
	rest = p;
	if (take(&p, end, "STARTED") && p == end) {
		out->kind = MARKER_STARTED;
	} else if ((p = rest, take(&p, end, "READY")) && p == end) {
		out->kind = MARKER_READY;
	} else if ((p = rest, take(&p, end, "EXIT "))) {
		if (!take_number(&p, end, 255, &num) || p != end)
			return MARKER_NONE;
		out->kind = MARKER_EXIT;
		out->code = (int)num;
	} else if ((p = rest, take(&p, end, "ERROR "))) {
		size_t mlen;

		if (!take_number(&p, end, 255, &num) || !take(&p, end, " "))
			return MARKER_NONE;
		mlen = (size_t)(end - p);
		if (mlen == 0 || mlen > MARKER_MESSAGE_MAX)
			return MARKER_NONE;
		for (size_t i = 0; i < mlen; i++)
			if (is_control((unsigned char)p[i]))
				return MARKER_NONE;
		out->kind = MARKER_ERROR;
		out->code = (int)num;
		memcpy(out->message, p, mlen);
		out->message[mlen] = '\0';
	} else {
		return MARKER_NONE;
	}
	/* the MAC covers "<seq> <rest>", as marker_format() made it */
	memcpy(body, seq_start, seq_len);
	body[seq_len] = ' ';
	memcpy(body + seq_len + 1, rest, (size_t)(end - rest));
	mac_of(&v->key, body, seq_len + 1 + (size_t)(end - rest), mac);
	for (size_t i = 0; i < MARKER_MAC_LEN; i++)
		diff |= (uint8_t)(mac[i] ^ want[i]);
	explicit_bzero(mac, sizeof(mac));
	if (diff != 0 || seq <= v->last_seq) {
		memset(out, 0, sizeof(*out));
		return MARKER_NONE;
	}
	v->last_seq = seq;
	return out->kind;
}
