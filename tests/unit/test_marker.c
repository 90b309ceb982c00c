/* test_marker.c - console markers: HMAC-SHA256 against RFC 4231, a round
 * trip of every kind, and everything a payload could print instead being
 * plain text: the old unsigned markers (the exact line of the issue), a
 * wrong key, no MAC, a tampered field, a truncated or overlong line, a
 * replay, and non-canonical numbers.
 */
#include "config.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "server/marker.h"

static void hex(const uint8_t *b, size_t n, char *out)
{
	for (size_t i = 0; i < n; i++)
		sprintf(out + 2 * i, "%02x", b[i]);
}

static void check_hmac(const uint8_t *key, size_t klen, const char *msg, const char *want)
{
	uint8_t mac[32];
	char got[65];

	marker_hmac_sha256(key, klen, msg, strlen(msg), mac);
	hex(mac, 32, got);
	cr_assert_str_eq(got, want, "HMAC of \"%.20s...\"", msg);
}

Test(marker, hmac_sha256_rfc4231)
{
	uint8_t k1[20], k6[131];

	memset(k1, 0x0b, sizeof(k1));
	memset(k6, 0xaa, sizeof(k6));
	check_hmac(k1, sizeof(k1), "Hi There", "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7");
	check_hmac((const uint8_t *)"Jefe", 4, "what do ya want for nothing?",
		   "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
	check_hmac(k6, sizeof(k6), "Test Using Larger Than Block-Size Key - Hash Key First",
		   "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54");
	check_hmac(k6, sizeof(k6),
		   "This is a test using a larger than block-size key and a larger than block-size data. The key "
		   "needs to be hashed before being used by the HMAC algorithm.",
		   "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2");
}

static struct marker_key test_key(uint8_t seed)
{
	struct marker_key k;

	for (size_t i = 0; i < MARKER_KEY_LEN; i++)
		k.bytes[i] = (uint8_t)(seed + i * 7);
	return k;
}

static enum marker_kind parse(struct marker_verifier *v, const char *line, struct marker *m)
{
	return marker_parse(v, line, strlen(line), m);
}

Test(marker, round_trip)
{
	struct marker_key k = test_key(1);
	struct marker_verifier v;
	struct marker m;
	char line[MARKER_LINE_MAX + 1];

	marker_verifier_init(&v, &k);
	cr_assert_gt(marker_format(&k, 1, MARKER_STARTED, 0, NULL, line, sizeof(line)), 0);
	cr_assert_eq(strncmp(line, MARKER_PREFIX "1 ", strlen(MARKER_PREFIX "1 ")), 0, "%s", line);
	cr_assert_eq(parse(&v, line, &m), MARKER_STARTED, "%s", line);
	cr_assert_gt(marker_format(&k, 2, MARKER_READY, 0, NULL, line, sizeof(line)), 0);
	cr_assert_eq(parse(&v, line, &m), MARKER_READY);
	cr_assert_gt(marker_format(&k, 3, MARKER_EXIT, 3, NULL, line, sizeof(line)), 0);
	cr_assert_eq(parse(&v, line, &m), MARKER_EXIT);
	cr_assert_eq(m.code, 3);
	cr_assert_gt(marker_format(&k, MARKER_SEQ_PID1, MARKER_ERROR, 0, "the guest agent process died (x)", line,
				   sizeof(line)),
		     0);
	cr_assert_eq(parse(&v, line, &m), MARKER_ERROR);
	cr_assert_eq(m.code, 0);
	cr_assert_str_eq(m.message, "the guest agent process died (x)");
	cr_assert_eq(v.last_seq, MARKER_SEQ_PID1);
}

Test(marker, trailing_cr_is_ignored)
{
	struct marker_key k = test_key(2);
	struct marker_verifier v;
	struct marker m;
	char line[MARKER_LINE_MAX + 2];
	size_t n;

	marker_verifier_init(&v, &k);
	n = marker_format(&k, 1, MARKER_EXIT, 0, NULL, line, sizeof(line));
	line[n++] = '\r';
	cr_assert_eq(marker_parse(&v, line, n, &m), MARKER_EXIT);
}

Test(marker, payload_lines_are_plain_text)
{
	struct marker_key k = test_key(3);
	struct marker_verifier v;
	struct marker m;
	static const char *lines[] = {
		"VIRTMGR: EXIT 0", /* the line */
		"VIRTMGR: STARTED",
		"VIRTMGR: ERROR 0 x",
		"VIRTMGR/1 1 EXIT 0",
		"VIRTMGR/1 1 00000000000000000000000000000000 EXIT 0",
		"VIRTMGR/1 1 00000000000000000000000000000000 STARTED",
		"VIRTMGR/1",
		"VIRTMGR/1 ",
		"",
	};

	marker_verifier_init(&v, &k);
	for (size_t i = 0; i < sizeof(lines) / sizeof(lines[0]); i++) {
		cr_assert_eq(parse(&v, lines[i], &m), MARKER_NONE, "\"%s\"", lines[i]);
		cr_assert_eq(m.kind, MARKER_NONE);
	}
	cr_assert_eq(v.last_seq, 0);
}

Test(marker, wrong_key)
{
	struct marker_key k = test_key(4), other = test_key(5);
	struct marker_verifier v;
	struct marker m;
	char line[MARKER_LINE_MAX + 1];

	marker_verifier_init(&v, &k);
	cr_assert_gt(marker_format(&other, 1, MARKER_EXIT, 0, NULL, line, sizeof(line)), 0);
	cr_assert_eq(parse(&v, line, &m), MARKER_NONE);
	/* a real one after the forgery is still accepted */
	cr_assert_gt(marker_format(&k, 1, MARKER_EXIT, 3, NULL, line, sizeof(line)), 0);
	cr_assert_eq(parse(&v, line, &m), MARKER_EXIT);
	cr_assert_eq(m.code, 3);
}

Test(marker, tampered_fields)
{
	struct marker_key k = test_key(6);
	struct marker_verifier v;
	struct marker m;
	char line[MARKER_LINE_MAX + 1], copy[MARKER_LINE_MAX + 8];
	size_t n;

	marker_verifier_init(&v, &k);
	n = marker_format(&k, 5, MARKER_EXIT, 3, NULL, line, sizeof(line));
	cr_assert_gt(n, 0);
	/* the exit code changed */
	strcpy(copy, line);
	copy[n - 1] = '0';
	cr_assert_eq(parse(&v, copy, &m), MARKER_NONE, "%s", copy);
	/* the sequence number changed */
	strcpy(copy, line);
	copy[strlen(MARKER_PREFIX)] = '6';
	cr_assert_eq(parse(&v, copy, &m), MARKER_NONE, "%s", copy);
	/* one MAC digit flipped */
	strcpy(copy, line);
	copy[strlen(MARKER_PREFIX "5 ")] ^= 1;
	cr_assert_eq(parse(&v, copy, &m), MARKER_NONE, "%s", copy);
	/* upper-case MAC: not canonical */
	strcpy(copy, line);
	for (char *p = copy + strlen(MARKER_PREFIX "5 "); *p != ' '; p++)
		if (*p >= 'a' && *p <= 'f')
			*p = (char)(*p - 'a' + 'A');
	if (strcmp(copy, line))
		cr_assert_eq(parse(&v, copy, &m), MARKER_NONE, "%s", copy);
	/* text after the marker */
	snprintf(copy, sizeof(copy), "%s x", line);
	cr_assert_eq(parse(&v, copy, &m), MARKER_NONE, "%s", copy);
	/* text before it */
	snprintf(copy, sizeof(copy), "x%s", line);
	cr_assert_eq(parse(&v, copy, &m), MARKER_NONE, "%s", copy);
	/* the genuine line still counts */
	cr_assert_eq(parse(&v, line, &m), MARKER_EXIT);
}

Test(marker, truncated)
{
	struct marker_key k = test_key(7);
	struct marker_verifier v;
	struct marker m;
	char line[MARKER_LINE_MAX + 1];
	size_t n;

	marker_verifier_init(&v, &k);
	n = marker_format(&k, 1, MARKER_ERROR, 1, "payload-args: bad", line, sizeof(line));
	for (size_t l = 0; l < n; l++)
		cr_assert_eq(marker_parse(&v, line, l, &m), MARKER_NONE, "first %zu bytes", l);
	/* and "EXIT 25" is not a prefix-forgery of "EXIT 255" */
	n = marker_format(&k, 2, MARKER_EXIT, 255, NULL, line, sizeof(line));
	cr_assert_eq(marker_parse(&v, line, n - 1, &m), MARKER_NONE);
	cr_assert_eq(marker_parse(&v, line, n, &m), MARKER_EXIT);
	cr_assert_eq(m.code, 255);
}

Test(marker, overlong)
{
	struct marker_key k = test_key(8);
	struct marker_verifier v;
	struct marker m;
	char msg[1000], line[MARKER_LINE_MAX + 1], big[MARKER_LINE_MAX + 64];
	size_t n;

	memset(msg, 'x', sizeof(msg) - 1);
	msg[sizeof(msg) - 1] = '\0';
	marker_verifier_init(&v, &k);
	/* a long message is cut so that the line still fits */
	n = marker_format(&k, 1, MARKER_ERROR, 4, msg, line, sizeof(line));
	cr_assert_gt(n, 0);
	cr_assert_leq(n, MARKER_LINE_MAX);
	cr_assert_eq(parse(&v, line, &m), MARKER_ERROR);
	cr_assert_eq(strlen(m.message), MARKER_MESSAGE_MAX);
	/* a line longer than MARKER_LINE_MAX is never a marker */
	memset(big, 'x', sizeof(big));
	memcpy(big, line, n);
	cr_assert_eq(marker_parse(&v, big, sizeof(big), &m), MARKER_NONE);
	/* a buffer too small, an exit code out of range, no kind */
	cr_assert_eq(marker_format(&k, 2, MARKER_EXIT, 0, NULL, line, 16), 0);
	cr_assert_eq(marker_format(&k, 2, MARKER_EXIT, 256, NULL, line, sizeof(line)), 0);
	cr_assert_eq(marker_format(&k, 2, MARKER_NONE, 0, NULL, line, sizeof(line)), 0);
	cr_assert_eq(marker_format(&k, 0, MARKER_STARTED, 0, NULL, line, sizeof(line)), 0);
}

Test(marker, message_sanitized_and_cut_at_utf8_boundary)
{
	struct marker_key k = test_key(9);
	struct marker_verifier v;
	struct marker m;
	char msg[MARKER_MESSAGE_MAX + 8], line[MARKER_LINE_MAX + 1];

	marker_verifier_init(&v, &k);
	cr_assert_gt(marker_format(&k, 1, MARKER_ERROR, 1, "a\nb\tc", line, sizeof(line)), 0);
	cr_assert_eq(parse(&v, line, &m), MARKER_ERROR);
	cr_assert_str_eq(m.message, "a?b?c");
	/* "é" (2 bytes) straddling the cut is dropped whole */
	memset(msg, 'x', MARKER_MESSAGE_MAX - 1);
	memcpy(msg + MARKER_MESSAGE_MAX - 1, "\xc3\xa9zz", 5);
	cr_assert_gt(marker_format(&k, 2, MARKER_ERROR, 1, msg, line, sizeof(line)), 0);
	cr_assert_eq(parse(&v, line, &m), MARKER_ERROR);
	cr_assert_eq(strlen(m.message), MARKER_MESSAGE_MAX - 1);
}

Test(marker, replay_and_order)
{
	struct marker_key k = test_key(10);
	struct marker_verifier v;
	struct marker m;
	char first[MARKER_LINE_MAX + 1], second[MARKER_LINE_MAX + 1];

	marker_verifier_init(&v, &k);
	marker_format(&k, 1, MARKER_STARTED, 0, NULL, first, sizeof(first));
	marker_format(&k, 2, MARKER_EXIT, 3, NULL, second, sizeof(second));
	cr_assert_eq(parse(&v, first, &m), MARKER_STARTED);
	cr_assert_eq(parse(&v, first, &m), MARKER_NONE, "a replay is plain text");
	cr_assert_eq(parse(&v, second, &m), MARKER_EXIT);
	cr_assert_eq(parse(&v, second, &m), MARKER_NONE);
	cr_assert_eq(parse(&v, first, &m), MARKER_NONE, "an older one too");
}

Test(marker, keys)
{
	struct marker_key a, b, c;
	struct vm_error err = { 0 };
	char h[2 * MARKER_KEY_LEN + 1];

	cr_assert_eq(marker_key_generate(&a, &err), 0, "%s", err.message);
	cr_assert_eq(marker_key_generate(&b, &err), 0, "%s", err.message);
	cr_assert_neq(memcmp(&a, &b, sizeof(a)), 0, "two boots, two keys");
	marker_key_to_hex(&a, h);
	cr_assert_eq(strlen(h), 64);
	cr_assert_eq(marker_key_from_hex(&c, h, &err), 0, "%s", err.message);
	cr_assert_eq(memcmp(&a, &c, sizeof(a)), 0);
	cr_assert_eq(marker_key_from_hex(&c, "abc", &err), -1);
	h[3] = 'G';
	cr_assert_eq(marker_key_from_hex(&c, h, &err), -1);
	cr_assert(strstr(err.message, "marker key"), "%s", err.message);
}
