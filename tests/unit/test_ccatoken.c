/* test_ccatoken.c - the CCA token: made and verified on both curves, every
 * claim read back, the binding between the two tokens, a flipped byte, the
 * wrong platform key, a token with a platform token from another realm key
 * (binding broken) and malformed input, each failing with its reason.
 */
#include "config.h"

#include <criterion/criterion.h>
#include <string.h>

#include "lib/ccatoken.h"
#include "lib/cose.h"

static void fill(struct cca_realm_claims *r, struct cca_platform_claims *p, const char *alg, size_t mlen)
{
	memset(r, 0, sizeof(*r));
	memset(p, 0, sizeof(*p));
	for (size_t i = 0; i < 64; i++) {
		r->challenge[i] = (uint8_t)i;
		r->personalization[i] = (uint8_t)(0xa0 + i);
		r->rim[i] = (uint8_t)(i * 3);
		for (int j = 0; j < 4; j++)
			r->rem[j][i] = (uint8_t)(j + 1);
	}
	r->challenge_len = 48;
	r->hash_alg = alg;
	r->measurement_len = mlen;
	memset(p->implementation_id, 0x11, 32);
	memset(p->instance_id, 0x22, 33);
	p->instance_id[0] = 0x01;
	p->lifecycle = CCA_LIFECYCLE_NON_CCA_PLATFORM_DEBUG;
	p->hash_alg = "sha-256";
	p->n_sw = 2;
	p->sw[0] = (struct cca_sw_component){
		.type = "virtmgrd", .measurement_len = 32, .version = "1.0", .signer_id_len = 32, .hash_alg = "sha-256"
	};
	memset(p->sw[0].measurement, 0x33, 32);
	p->sw[1] = (struct cca_sw_component){ .type = "service-vm", .measurement_len = 32, .signer_id_len = 0 };
	memset(p->sw[1].measurement, 0x44, 32);
}

static void make(EVP_PKEY *rk, EVP_PKEY *pk, const char *alg, size_t mlen, uint8_t **tok, size_t *len)
{
	struct cca_realm_claims r;
	struct cca_platform_claims p;
	char err[256];

	fill(&r, &p, alg, mlen);
	cr_assert_eq(cca_token_make(&r, rk, &p, pk, tok, len, err, sizeof(err)), 0, "%s", err);
}

Test(ccatoken, round_trip_all_claims)
{
	EVP_PKEY *rk = cose_ec_generate(384), *pk = cose_ec_generate(256);
	struct cca_realm_claims r;
	struct cca_platform_claims p;
	struct cca_token_view v;
	uint8_t *tok = NULL, zero[16] = { 0 };
	size_t len;
	char err[256];

	fill(&r, &p, "sha-384", 48);
	make(rk, pk, "sha-384", 48, &tok, &len);
	cr_assert_eq(tok[0], 0xd9);
	cr_assert_eq(tok[1], 0x01);
	cr_assert_eq(tok[2], 0x8f); /* tag 399 */
	cr_assert_eq(cca_token_verify(tok, len, pk, &v, err, sizeof(err)), 0, "%s", err);
	cr_assert(v.platform_verified);
	cr_assert_str_eq(v.realm_profile, CCA_REALM_PROFILE);
	cr_assert_str_eq(v.platform_profile, CCA_PLATFORM_PROFILE);
	cr_assert_eq(v.realm_alg, COSE_ALG_ES384);
	cr_assert_eq(v.platform_alg, COSE_ALG_ES256);
	cr_assert_eq(v.challenge_len, 64);
	cr_assert_arr_eq(v.challenge, r.challenge, 48);
	cr_assert_arr_eq(v.challenge + 48, zero, 16, "short challenge zero-padded");
	cr_assert_arr_eq(v.personalization, r.personalization, 64);
	cr_assert_str_eq(v.hash_alg, "sha-384");
	cr_assert_str_eq(v.pub_key_hash_alg, "sha-384");
	cr_assert_eq(v.rim_len, 48);
	cr_assert_arr_eq(v.rim, r.rim, 48);
	for (int j = 0; j < 4; j++) {
		cr_assert_eq(v.rem_len[j], 48);
		cr_assert_arr_eq(v.rem[j], r.rem[j], 48);
	}
	cr_assert_eq(v.platform_challenge_len, 48);
	cr_assert_arr_eq(v.implementation_id, p.implementation_id, 32);
	cr_assert_arr_eq(v.instance_id, p.instance_id, 33);
	cr_assert_eq(v.lifecycle, CCA_LIFECYCLE_NON_CCA_PLATFORM_DEBUG);
	cr_assert_str_eq(v.platform_hash_alg, "sha-256");
	cr_assert_eq(v.n_sw, 2);
	cr_assert_str_eq(v.sw[0].type, "virtmgrd");
	cr_assert_str_eq(v.sw[0].version, "1.0");
	cr_assert_str_eq(v.sw[0].hash_alg, "sha-256");
	cr_assert_arr_eq(v.sw[0].measurement, p.sw[0].measurement, 32);
	cr_assert_str_eq(v.sw[1].type, "service-vm");
	cr_assert_str_eq(v.sw[1].version, "");
	/* no platform key: decoded, realm checked, not authenticated */
	cr_assert_eq(cca_token_verify(tok, len, NULL, &v, err, sizeof(err)), 0, "%s", err);
	cr_assert_not(v.platform_verified);
	free(tok);
	EVP_PKEY_free(rk);
	EVP_PKEY_free(pk);
}

Test(ccatoken, flipped_bytes_and_wrong_key)
{
	EVP_PKEY *rk = cose_ec_generate(256), *pk = cose_ec_generate(256), *other = cose_ec_generate(256);
	struct cca_token_view v;
	uint8_t *tok = NULL;
	size_t len, i, failed = 0;
	char err[256];

	make(rk, pk, "sha-256", 32, &tok, &len);
	cr_assert_eq(cca_token_verify(tok, len, other, &v, err, sizeof(err)), -1);
	cr_assert_str_eq(err, "platform token: signature does not verify");
	for (i = 0; i < len; i++) {
		tok[i] ^= 0x04;
		failed += cca_token_verify(tok, len, pk, &v, err, sizeof(err)) != 0;
		tok[i] ^= 0x04;
	}
	cr_assert_eq(failed, len, "%zu of %zu flipped bytes detected", failed, len);
	free(tok);
	EVP_PKEY_free(rk);
	EVP_PKEY_free(pk);
	EVP_PKEY_free(other);
}

/* The platform token of one token with the realm token of another, both
 * properly signed: only the binding can tell. */
Test(ccatoken, binding)
{
	EVP_PKEY *rk1 = cose_ec_generate(256), *rk2 = cose_ec_generate(256), *pk = cose_ec_generate(256);
	struct cca_token_view v;
	uint8_t *t1 = NULL, *t2 = NULL;
	size_t l1, l2;
	char err[256];

	make(rk1, pk, "sha-256", 32, &t1, &l1);
	make(rk2, pk, "sha-256", 32, &t2, &l2);
	cr_assert_eq(l1, l2);
	/* {44234: bstr platform, 44241: bstr realm}: the realm token is the
	 * tail; the lengths are equal, so splice the other token's realm part */
	size_t off = 0;
	for (size_t i = 0; i + 3 < l1; i++)
		if (t1[i] == 0x19 && t1[i + 1] == 0xac && t1[i + 2] == 0xd1) /* key 44241 */
			off = i;
	cr_assert_gt(off, 0);
	memcpy(t1 + off, t2 + off, l1 - off);
	cr_assert_eq(cca_token_verify(t1, l1, pk, &v, err, sizeof(err)), -1);
	cr_assert(strstr(err, "binding broken"), "%s", err);
	free(t1);
	free(t2);
	EVP_PKEY_free(rk1);
	EVP_PKEY_free(rk2);
	EVP_PKEY_free(pk);
}

Test(ccatoken, bad_input_named)
{
	EVP_PKEY *rk = cose_ec_generate(256), *pk = cose_ec_generate(256);
	struct cca_realm_claims r;
	struct cca_platform_claims p;
	struct cca_token_view v;
	static const uint8_t untagged[] = { 0xa0 };
	static const uint8_t empty_map[] = { 0xd9, 0x01, 0x8f, 0xa0 };
	uint8_t *tok = NULL;
	size_t len;
	char err[256];

	cr_assert_eq(cca_token_verify(untagged, sizeof(untagged), pk, &v, err, sizeof(err)), -1);
	cr_assert(strstr(err, "not CBOR tag 399"), "%s", err);
	cr_assert_eq(cca_token_verify(empty_map, sizeof(empty_map), pk, &v, err, sizeof(err)), -1);
	cr_assert(strstr(err, "44234"), "%s", err);
	fill(&r, &p, "sha-256", 32);
	r.challenge_len = 31;
	cr_assert_eq(cca_token_make(&r, rk, &p, pk, &tok, &len, err, sizeof(err)), -1);
	cr_assert(strstr(err, "challenge of 31 bytes"), "%s", err);
	fill(&r, &p, "sha-384", 32);
	cr_assert_eq(cca_token_make(&r, rk, &p, pk, &tok, &len, err, sizeof(err)), -1);
	cr_assert(strstr(err, "does not fit"), "%s", err);
	EVP_PKEY_free(rk);
	EVP_PKEY_free(pk);
}

/* A claim given twice: a reader that keeps the first and one that keeps
 * the last would see different tokens, so the map is refused. */
Test(ccatoken, duplicate_keys_refused)
{
	cbor_item_t *m = cbor_new_definite_map(3);
	uint8_t *buf = NULL;
	size_t len;

	cose_cbor_map_put(m, 10, cose_cbor_int(1));
	cose_cbor_map_put(m, 11, cose_cbor_int(2));
	cr_assert_eq(cose_cbor_map_unique(m, 8), 0);
	cose_cbor_map_put(m, 10, cose_cbor_int(3));
	cr_assert_eq(cose_cbor_map_unique(m, 8), -1);
	cr_assert_eq(cose_cbor_map_unique(m, 2), -1, "too many entries");
	cr_assert_eq(cose_cbor_serialize(m, &buf, &len), 0);
	free(buf);
	cbor_decref(&m);
}
