/* test_cose.c - COSE_Sign1 and COSE_Key: round trips on both curves, a
 * flipped byte anywhere failing, the wrong key failing, malformed CBOR
 * named in the error, and the DER <-> r||s conversion against OpenSSL's
 * own verifier.
 */
#include "config.h"

#include <criterion/criterion.h>
#include <string.h>

#include <openssl/evp.h>

#include "lib/cose.h"

static const uint8_t msg[] = "measured launch";

static void round_trip(int bits, int alg)
{
	EVP_PKEY *k = cose_ec_generate(bits);
	uint8_t *out = NULL, *pl = NULL;
	size_t out_len, pl_len;
	char err[256];

	cr_assert_not_null(k);
	cr_assert_eq(cose_key_alg(k), alg);
	cr_assert_eq(cose_sign1_sign(k, msg, sizeof(msg), &out, &out_len, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(out[0], 0xd2, "tag 18 first"); /* 0xc0 | 18 */
	cr_assert_eq(cose_sign1_verify(k, out, out_len, &pl, &pl_len, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(pl_len, sizeof(msg));
	cr_assert_arr_eq(pl, msg, sizeof(msg));
	free(pl);
	free(out);
	EVP_PKEY_free(k);
}

Test(cose, round_trip_es256)
{
	round_trip(256, COSE_ALG_ES256);
}

Test(cose, round_trip_es384)
{
	round_trip(384, COSE_ALG_ES384);
}

Test(cose, every_flipped_byte_fails)
{
	EVP_PKEY *k = cose_ec_generate(256);
	uint8_t *out = NULL;
	size_t out_len, i;
	char err[256];

	cr_assert_eq(cose_sign1_sign(k, msg, sizeof(msg), &out, &out_len, err, sizeof(err)), 0);
	for (i = 0; i < out_len; i++) {
		out[i] ^= 0x01;
		cr_assert_neq(cose_sign1_verify(k, out, out_len, NULL, NULL, err, sizeof(err)), 0,
			      "byte %zu flipped still verifies", i);
		cr_assert_gt(strlen(err), 0);
		out[i] ^= 0x01;
	}
	/* the payload byte: the reason is the signature */
	out[out_len - 66 - 3] ^= 0x80;
	cr_assert_neq(cose_sign1_verify(k, out, out_len, NULL, NULL, err, sizeof(err)), 0);
	cr_assert_str_eq(err, "signature does not verify");
	free(out);
	EVP_PKEY_free(k);
}

Test(cose, wrong_key_fails)
{
	EVP_PKEY *k = cose_ec_generate(256), *other = cose_ec_generate(256), *big = cose_ec_generate(384);
	uint8_t *out = NULL;
	size_t out_len;
	char err[256];

	cr_assert_eq(cose_sign1_sign(k, msg, sizeof(msg), &out, &out_len, err, sizeof(err)), 0);
	cr_assert_eq(cose_sign1_verify(other, out, out_len, NULL, NULL, err, sizeof(err)), -1);
	cr_assert_str_eq(err, "signature does not verify");
	cr_assert_eq(cose_sign1_verify(big, out, out_len, NULL, NULL, err, sizeof(err)), -1);
	cr_assert(strstr(err, "does not match the key"), "%s", err);
	free(out);
	EVP_PKEY_free(k);
	EVP_PKEY_free(other);
	EVP_PKEY_free(big);
}

Test(cose, malformed_named)
{
	EVP_PKEY *k = cose_ec_generate(256);
	/* truncated array header, an int, an array of 3, trailing garbage */
	static const uint8_t trunc[] = { 0xd2, 0x84, 0x43 };
	static const uint8_t integer[] = { 0x05 };
	static const uint8_t three[] = { 0x83, 0x40, 0xa0, 0x40 };
	static const uint8_t wrongtag[] = { 0xd1, 0x84, 0x40, 0xa0, 0x40, 0x40 };
	uint8_t *out = NULL, *longer;
	size_t out_len;
	char err[256];

	cr_assert_eq(cose_sign1_verify(k, trunc, sizeof(trunc), NULL, NULL, err, sizeof(err)), -1);
	cr_assert(strstr(err, "malformed COSE_Sign1: not CBOR"), "%s", err);
	/* declared lengths far beyond the message: refused before any allocation */
	{
		static const uint8_t huge_map[] = { 0xd2, 0xbb, 0xbb, 0xbb, 0xbb, 0xbb, 0xbb, 0xbb, 0xbb, 0xbb, 0x01 };
		static const uint8_t huge_bstr[] = { 0x5a, 0xff, 0xff, 0xff, 0xff, 0x00 };
		static const uint8_t indefinite[] = { 0x9f, 0x40, 0xa0, 0x40, 0x40, 0xff };
		static uint8_t deep[64];

		cr_assert_eq(cose_sign1_verify(k, huge_map, sizeof(huge_map), NULL, NULL, err, sizeof(err)), -1);
		cr_assert(strstr(err, "do not fit"), "%s", err);
		cr_assert_eq(cose_sign1_verify(k, huge_bstr, sizeof(huge_bstr), NULL, NULL, err, sizeof(err)), -1);
		cr_assert(strstr(err, "do not fit"), "%s", err);
		cr_assert_eq(cose_cbor_wellformed(indefinite, sizeof(indefinite)), -1);
		memset(deep, 0x81, sizeof(deep));
		deep[63] = 0;
		cr_assert_eq(cose_cbor_wellformed(deep, sizeof(deep)), -1, "nesting deeper than COSE_MAX_DEPTH");
		cr_assert_eq(cose_cbor_wellformed(deep + 63 - COSE_MAX_DEPTH, COSE_MAX_DEPTH + 1), 0);
	}
	cr_assert_eq(cose_sign1_verify(k, integer, sizeof(integer), NULL, NULL, err, sizeof(err)), -1);
	cr_assert(strstr(err, "not an array of 4"), "%s", err);
	cr_assert_eq(cose_sign1_verify(k, three, sizeof(three), NULL, NULL, err, sizeof(err)), -1);
	cr_assert(strstr(err, "not an array of 4"), "%s", err);
	cr_assert_eq(cose_sign1_verify(k, wrongtag, sizeof(wrongtag), NULL, NULL, err, sizeof(err)), -1);
	cr_assert(strstr(err, "tag 17"), "%s", err);
	cr_assert_eq(cose_sign1_verify(k, trunc, 0, NULL, NULL, err, sizeof(err)), -1);
	cr_assert(strstr(err, "empty"), "%s", err);

	cr_assert_eq(cose_sign1_sign(k, msg, sizeof(msg), &out, &out_len, err, sizeof(err)), 0);
	longer = malloc(out_len + 1);
	memcpy(longer, out, out_len);
	longer[out_len] = 0;
	cr_assert_eq(cose_sign1_verify(k, longer, out_len + 1, NULL, NULL, err, sizeof(err)), -1);
	cr_assert(strstr(err, "after the CBOR item"), "%s", err);
	free(longer);
	free(out);
	EVP_PKEY_free(k);
}

Test(cose, rs_conversion)
{
	EVP_PKEY *k = cose_ec_generate(384);
	uint8_t raw[96], *der2 = NULL, small[64];
	unsigned char der[128];
	size_t der_len = sizeof(der), der2_len;
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();

	/* a DER signature from OpenSSL, to raw and back, still verifies */
	cr_assert_eq(EVP_DigestSignInit(ctx, NULL, EVP_sha384(), NULL, k), 1);
	cr_assert_eq(EVP_DigestSign(ctx, der, &der_len, msg, sizeof(msg)), 1);
	cr_assert_eq(cose_ecdsa_der_to_raw(der, der_len, 48, raw), 0);
	cr_assert_eq(cose_ecdsa_raw_to_der(raw, 48, &der2, &der2_len), 0);
	cr_assert_eq(der2_len, der_len);
	cr_assert_arr_eq(der2, der, der_len);
	/* r and s do not fit 32 bytes (almost surely: 2^-128 chance otherwise) */
	cr_assert_eq(cose_ecdsa_der_to_raw(der, der_len, 16, small), -1);
	/* trailing byte after the DER */
	cr_assert_eq(cose_ecdsa_der_to_raw(der, der_len + 1, 48, raw), -1);
	/* leading zeros: r = 1, s = 2 encode minimal and pad back */
	memset(raw, 0, sizeof(raw));
	raw[47] = 1;
	raw[95] = 2;
	free(der2);
	cr_assert_eq(cose_ecdsa_raw_to_der(raw, 48, &der2, &der2_len), 0);
	cr_assert_eq(der2_len, 8); /* 30 06 02 01 01 02 01 02 */
	memset(raw, 0xff, sizeof(raw));
	cr_assert_eq(cose_ecdsa_der_to_raw(der2, der2_len, 48, raw), 0);
	cr_assert_eq(raw[0], 0);
	cr_assert_eq(raw[47], 1);
	cr_assert_eq(raw[95], 2);
	OPENSSL_free(der2);
	EVP_MD_CTX_free(ctx);
	EVP_PKEY_free(k);
}

Test(cose, key_round_trip)
{
	for (int bits = 256; bits <= 384; bits += 128) {
		EVP_PKEY *k = cose_ec_generate(bits), *pub;
		uint8_t *enc = NULL, *out = NULL;
		size_t enc_len, out_len;
		char err[256];

		cr_assert_eq(cose_key_encode(k, &enc, &enc_len, err, sizeof(err)), 0, "%s", err);
		pub = cose_key_decode(enc, enc_len, err, sizeof(err));
		cr_assert_not_null(pub, "%s", err);
		cr_assert_eq(EVP_PKEY_eq(k, pub), 1);
		cr_assert_eq(cose_sign1_sign(k, msg, sizeof(msg), &out, &out_len, err, sizeof(err)), 0);
		cr_assert_eq(cose_sign1_verify(pub, out, out_len, NULL, NULL, err, sizeof(err)), 0, "%s", err);
		/* a point off the curve: flip a bit of y (last byte of the map) */
		enc[enc_len - 1] ^= 0x01;
		cr_assert_null(cose_key_decode(enc, enc_len, err, sizeof(err)));
		cr_assert(strstr(err, "point"), "%s", err);
		free(enc);
		free(out);
		EVP_PKEY_free(k);
		EVP_PKEY_free(pub);
	}
}
