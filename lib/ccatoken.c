/* ccatoken.c - make and verify the CCA attestation token (lib/ccatoken.h).
 *
 * Making: the realm claims map is signed with the realm attestation key,
 * whose COSE_Key goes into the claims themselves (44237); the platform
 * claims carry as challenge the hash of exactly those COSE_Key bytes, with
 * the algorithm the realm token names in 44240, and are signed with the
 * platform key. Verifying reverses it and trusts nothing until checked:
 * the realm signature against its own embedded key, then the binding,
 * then (given a key) the platform signature. Every claim has a type and a
 * bound; a claim out of shape is named in the error.
 */
#include "lib/ccatoken.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cbor.h>
#include <openssl/crypto.h>

#include "lib/cose.h"

static int cca_err(char *err, size_t errsz, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int cca_err(char *err, size_t errsz, const char *fmt, ...)
{
	va_list ap;

	if (err && errsz) {
		va_start(ap, fmt);
		vsnprintf(err, errsz, fmt, ap);
		va_end(ap);
	}
	return -1;
}

const EVP_MD *cca_hash_alg_md(const char *name)
{
	if (!name)
		return NULL;
	if (!strcmp(name, "sha-256"))
		return EVP_sha256();
	if (!strcmp(name, "sha-384"))
		return EVP_sha384();
	if (!strcmp(name, "sha-512"))
		return EVP_sha512();
	return NULL;
}

static const char *key_hash_alg(EVP_PKEY *key)
{
	switch (cose_key_alg(key)) {
	case COSE_ALG_ES256:
		return "sha-256";
	case COSE_ALG_ES384:
		return "sha-384";
	default:
		return NULL;
	}
}

static int digest(const char *alg, const uint8_t *buf, size_t len, uint8_t *out, size_t *out_len)
{
	const EVP_MD *md = cca_hash_alg_md(alg);
	unsigned int n = 0;

	if (!md || EVP_Digest(buf, len, out, &n, md, NULL) != 1)
		return -1;
	*out_len = n;
	return 0;
}

static cbor_item_t *bstr(const uint8_t *b, size_t n)
{
	cbor_item_t *it = cbor_build_bytestring(b, n);

	if (!it)
		abort();
	return it;
}

static cbor_item_t *tstr(const char *s)
{
	cbor_item_t *it = cbor_build_string(s);

	if (!it)
		abort();
	return it;
}

static int sign_map(cbor_item_t *map, EVP_PKEY *key, uint8_t **out, size_t *out_len, const char *what, char *err,
		    size_t errsz)
{
	uint8_t *payload = NULL;
	size_t plen;
	int rc;

	if (cose_cbor_serialize(map, &payload, &plen) < 0)
		return cca_err(err, errsz, "cannot encode the %s claims", what);
	rc = cose_sign1_sign(key, payload, plen, out, out_len, err, errsz);
	free(payload);
	return rc;
}

int cca_token_make(const struct cca_realm_claims *realm, EVP_PKEY *realm_key,
		   const struct cca_platform_claims *platform, EVP_PKEY *platform_key, uint8_t **token, size_t *len,
		   char *err, size_t errsz)
{
	uint8_t *ckey = NULL, *rtok = NULL, *ptok = NULL, chal[64], hash[EVP_MAX_MD_SIZE];
	size_t ckey_len, rtok_len, ptok_len, hash_len, i;
	cbor_item_t *rmap = NULL, *pmap = NULL, *rems, *sw, *top = NULL, *tag = NULL;
	const char *pk_alg = key_hash_alg(realm_key);
	int rc = -1;

	if (!pk_alg)
		return cca_err(err, errsz, "realm key is not an EC P-256 or P-384 key");
	if (realm->challenge_len < 32 || realm->challenge_len > 64)
		return cca_err(err, errsz, "challenge of %zu bytes; it must be 32 to 64", realm->challenge_len);
	if (!cca_hash_alg_md(realm->hash_alg) ||
	    (size_t)EVP_MD_get_size(cca_hash_alg_md(realm->hash_alg)) != realm->measurement_len)
		return cca_err(err, errsz, "realm hash algorithm \"%s\" does not fit %zu-byte measurements",
			       realm->hash_alg ? realm->hash_alg : "(none)", realm->measurement_len);
	if (platform->n_sw > CCA_MAX_SW)
		return cca_err(err, errsz, "%zu software components, at most %d", platform->n_sw, CCA_MAX_SW);
	if (!cca_hash_alg_md(platform->hash_alg))
		return cca_err(err, errsz, "platform hash algorithm \"%s\" is not sha-256/384/512",
			       platform->hash_alg ? platform->hash_alg : "(none)");
	if (cose_key_encode(realm_key, &ckey, &ckey_len, err, errsz) < 0)
		return -1;

	memset(chal, 0, sizeof(chal));
	memcpy(chal, realm->challenge, realm->challenge_len);
	rmap = cbor_new_definite_map(8);
	cose_cbor_map_put(rmap, CCA_PROFILE, tstr(CCA_REALM_PROFILE));
	cose_cbor_map_put(rmap, CCA_REALM_CHALLENGE, bstr(chal, 64));
	cose_cbor_map_put(rmap, CCA_REALM_PERSONALIZATION, bstr(realm->personalization, 64));
	cose_cbor_map_put(rmap, CCA_REALM_HASH_ALG, tstr(realm->hash_alg));
	cose_cbor_map_put(rmap, CCA_REALM_PUB_KEY, bstr(ckey, ckey_len));
	cose_cbor_map_put(rmap, CCA_REALM_RIM, bstr(realm->rim, realm->measurement_len));
	rems = cbor_new_definite_array(4);
	for (i = 0; i < 4; i++)
		if (!cbor_array_push(rems, cbor_move(bstr(realm->rem[i], realm->measurement_len))))
			abort();
	cose_cbor_map_put(rmap, CCA_REALM_REM, rems);
	cose_cbor_map_put(rmap, CCA_REALM_PUB_KEY_HASH_ALG, tstr(pk_alg));
	if (sign_map(rmap, realm_key, &rtok, &rtok_len, "realm", err, errsz) < 0)
		goto out;

	if (digest(pk_alg, ckey, ckey_len, hash, &hash_len) < 0) {
		cca_err(err, errsz, "cannot hash the realm key");
		goto out;
	}
	pmap = cbor_new_definite_map(9);
	cose_cbor_map_put(pmap, CCA_PROFILE, tstr(CCA_PLATFORM_PROFILE));
	cose_cbor_map_put(pmap, CCA_PLAT_CHALLENGE, bstr(hash, hash_len));
	cose_cbor_map_put(pmap, CCA_PLAT_IMPLEMENTATION_ID, bstr(platform->implementation_id, 32));
	cose_cbor_map_put(pmap, CCA_PLAT_INSTANCE_ID, bstr(platform->instance_id, 33));
	cose_cbor_map_put(pmap, CCA_PLAT_CONFIG, bstr(platform->config, platform->config_len));
	cose_cbor_map_put(pmap, CCA_PLAT_LIFECYCLE, cose_cbor_int(platform->lifecycle));
	cose_cbor_map_put(pmap, CCA_PLAT_HASH_ALG, tstr(platform->hash_alg));
	sw = cbor_new_definite_array(platform->n_sw);
	for (i = 0; i < platform->n_sw; i++) {
		const struct cca_sw_component *c = &platform->sw[i];
		size_t n = 2 + (c->version != NULL) + 1 + (c->hash_alg != NULL);
		cbor_item_t *m = cbor_new_definite_map(n);

		cose_cbor_map_put(m, CCA_SW_TYPE, tstr(c->type ? c->type : ""));
		cose_cbor_map_put(m, CCA_SW_MEASUREMENT, bstr(c->measurement, c->measurement_len));
		if (c->version)
			cose_cbor_map_put(m, CCA_SW_VERSION, tstr(c->version));
		cose_cbor_map_put(m, CCA_SW_SIGNER_ID, bstr(c->signer_id, c->signer_id_len));
		if (c->hash_alg)
			cose_cbor_map_put(m, CCA_SW_HASH_ALG, tstr(c->hash_alg));
		if (!cbor_array_push(sw, cbor_move(m)))
			abort();
	}
	cose_cbor_map_put(pmap, CCA_PLAT_SW_COMPONENTS, sw);
	if (sign_map(pmap, platform_key, &ptok, &ptok_len, "platform", err, errsz) < 0)
		goto out;

	top = cbor_new_definite_map(2);
	cose_cbor_map_put(top, CCA_KEY_PLATFORM_TOKEN, bstr(ptok, ptok_len));
	cose_cbor_map_put(top, CCA_KEY_REALM_TOKEN, bstr(rtok, rtok_len));
	tag = cbor_build_tag(CCA_TOKEN_TAG, top);
	if (!tag || cose_cbor_serialize(tag, token, len) < 0) {
		cca_err(err, errsz, "cannot encode the token");
		goto out;
	}
	rc = 0;
out:
	if (tag)
		cbor_decref(&tag);
	if (top)
		cbor_decref(&top);
	if (rmap)
		cbor_decref(&rmap);
	if (pmap)
		cbor_decref(&pmap);
	free(ckey);
	free(rtok);
	free(ptok);
	return rc;
}

/* ---- decoding ---- */

/* Copy byte-string claim @key of @map into @out (@min..@max bytes). */
static int get_bstr(const cbor_item_t *map, int64_t key, const char *name, uint8_t *out, size_t min, size_t max,
		    size_t *out_len, char *err, size_t errsz)
{
	cbor_item_t *it = cose_cbor_map_get(map, key);
	size_t n;

	if (!it)
		return cca_err(err, errsz, "claim %lld (%s) is missing", (long long)key, name);
	if (!cbor_isa_bytestring(it) || !cbor_bytestring_is_definite(it))
		return cca_err(err, errsz, "claim %lld (%s) is not a byte string", (long long)key, name);
	n = cbor_bytestring_length(it);
	if (n < min || n > max)
		return cca_err(err, errsz, "claim %lld (%s) has %zu bytes, expected %zu..%zu", (long long)key, name, n,
			       min, max);
	memcpy(out, cbor_bytestring_handle(it), n);
	if (out_len)
		*out_len = n;
	return 0;
}

static int text_of(const cbor_item_t *it, char *out, size_t outsz)
{
	size_t n;

	if (!it || !cbor_isa_string(it) || !cbor_string_is_definite(it))
		return -1;
	n = cbor_string_length(it);
	if (n >= outsz || memchr(cbor_string_handle(it), 0, n))
		return -1;
	memcpy(out, cbor_string_handle(it), n);
	out[n] = 0;
	return 0;
}

static int get_tstr(const cbor_item_t *map, int64_t key, const char *name, char *out, size_t outsz, char *err,
		    size_t errsz)
{
	cbor_item_t *it = cose_cbor_map_get(map, key);

	if (!it)
		return cca_err(err, errsz, "claim %lld (%s) is missing", (long long)key, name);
	if (text_of(it, out, outsz) < 0)
		return cca_err(err, errsz, "claim %lld (%s) is not a text string of under %zu bytes", (long long)key,
			       name, outsz);
	return 0;
}

static int parse_realm(const cbor_item_t *m, struct cca_token_view *v, char *err, size_t errsz)
{
	cbor_item_t *rems;
	size_t n, i;

	if (cose_cbor_map_unique(m, 32) < 0)
		return cca_err(err, errsz, "realm claims are not a map of at most 32 unique keys");
	if (get_tstr(m, CCA_PROFILE, "realm profile", v->realm_profile, sizeof(v->realm_profile), err, errsz) < 0)
		return -1;
	if (strcmp(v->realm_profile, CCA_REALM_PROFILE))
		return cca_err(err, errsz, "realm profile \"%s\" is not \"%s\"", v->realm_profile, CCA_REALM_PROFILE);
	if (get_bstr(m, CCA_REALM_CHALLENGE, "challenge", v->challenge, 64, 64, &v->challenge_len, err, errsz) < 0 ||
	    get_bstr(m, CCA_REALM_PERSONALIZATION, "personalization value", v->personalization, 64, 64, NULL, err,
		     errsz) < 0 ||
	    get_tstr(m, CCA_REALM_HASH_ALG, "hash algorithm", v->hash_alg, sizeof(v->hash_alg), err, errsz) < 0 ||
	    get_bstr(m, CCA_REALM_PUB_KEY, "realm public key", v->realm_pub_key, 1, sizeof(v->realm_pub_key),
		     &v->realm_pub_key_len, err, errsz) < 0 ||
	    get_tstr(m, CCA_REALM_PUB_KEY_HASH_ALG, "public key hash algorithm", v->pub_key_hash_alg,
		     sizeof(v->pub_key_hash_alg), err, errsz) < 0)
		return -1;
	if (!cca_hash_alg_md(v->hash_alg))
		return cca_err(err, errsz, "realm hash algorithm \"%s\" is not sha-256/384/512", v->hash_alg);
	if (!cca_hash_alg_md(v->pub_key_hash_alg))
		return cca_err(err, errsz, "public key hash algorithm \"%s\" is not sha-256/384/512",
			       v->pub_key_hash_alg);
	n = (size_t)EVP_MD_get_size(cca_hash_alg_md(v->hash_alg));
	if (get_bstr(m, CCA_REALM_RIM, "RIM", v->rim, n, n, &v->rim_len, err, errsz) < 0)
		return -1;
	rems = cose_cbor_map_get(m, CCA_REALM_REM);
	if (!rems || !cbor_isa_array(rems) || !cbor_array_is_definite(rems) || cbor_array_size(rems) != 4)
		return cca_err(err, errsz, "claim 44239 (REMs) is not an array of 4");
	for (i = 0; i < 4; i++) {
		cbor_item_t *r = cbor_array_handle(rems)[i];

		if (!cbor_isa_bytestring(r) || !cbor_bytestring_is_definite(r) || cbor_bytestring_length(r) != n)
			return cca_err(err, errsz, "REM[%zu] is not a %zu-byte string", i, n);
		memcpy(v->rem[i], cbor_bytestring_handle(r), n);
		v->rem_len[i] = n;
	}
	return 0;
}

static int parse_sw(const cbor_item_t *m, struct cca_sw_view *s, size_t idx, char *err, size_t errsz)
{
	cbor_item_t *it;

	if (cose_cbor_map_unique(m, 16) < 0)
		return cca_err(err, errsz, "software component %zu is not a map of unique keys", idx);
	if (get_tstr(m, CCA_SW_TYPE, "component type", s->type, sizeof(s->type), err, errsz) < 0 ||
	    get_bstr(m, CCA_SW_MEASUREMENT, "component measurement", s->measurement, 0, 64, &s->measurement_len, err,
		     errsz) < 0 ||
	    get_bstr(m, CCA_SW_SIGNER_ID, "component signer id", s->signer_id, 0, 64, &s->signer_id_len, err, errsz) <
		    0)
		return -1;
	it = cose_cbor_map_get(m, CCA_SW_VERSION);
	if (it && text_of(it, s->version, sizeof(s->version)) < 0)
		return cca_err(err, errsz, "software component %zu: version is not a short text", idx);
	it = cose_cbor_map_get(m, CCA_SW_HASH_ALG);
	if (it && text_of(it, s->hash_alg, sizeof(s->hash_alg)) < 0)
		return cca_err(err, errsz, "software component %zu: hash algorithm is not a short text", idx);
	return 0;
}

static int parse_platform(const cbor_item_t *m, struct cca_token_view *v, char *err, size_t errsz)
{
	cbor_item_t *sw, *it;
	int64_t lc;
	size_t i;

	if (cose_cbor_map_unique(m, 32) < 0)
		return cca_err(err, errsz, "platform claims are not a map of at most 32 unique keys");
	if (get_tstr(m, CCA_PROFILE, "platform profile", v->platform_profile, sizeof(v->platform_profile), err, errsz) <
	    0)
		return -1;
	if (strcmp(v->platform_profile, CCA_PLATFORM_PROFILE))
		return cca_err(err, errsz, "platform profile \"%s\" is not \"%s\"", v->platform_profile,
			       CCA_PLATFORM_PROFILE);
	if (get_bstr(m, CCA_PLAT_CHALLENGE, "platform challenge", v->platform_challenge, 32, 64,
		     &v->platform_challenge_len, err, errsz) < 0 ||
	    get_bstr(m, CCA_PLAT_IMPLEMENTATION_ID, "implementation id", v->implementation_id, 32, 32, NULL, err,
		     errsz) < 0 ||
	    get_bstr(m, CCA_PLAT_INSTANCE_ID, "instance id", v->instance_id, 33, 33, NULL, err, errsz) < 0 ||
	    get_bstr(m, CCA_PLAT_CONFIG, "platform config", v->config, 0, sizeof(v->config), &v->config_len, err,
		     errsz) < 0 ||
	    get_tstr(m, CCA_PLAT_HASH_ALG, "platform hash algorithm", v->platform_hash_alg,
		     sizeof(v->platform_hash_alg), err, errsz) < 0)
		return -1;
	it = cose_cbor_map_get(m, CCA_PLAT_LIFECYCLE);
	if (cose_cbor_get_int(it, &lc) < 0 || lc < 0 || lc > 0xffff)
		return cca_err(err, errsz, "claim 2395 (lifecycle) is missing or not an integer 0..0xffff");
	v->lifecycle = (int)lc;
	sw = cose_cbor_map_get(m, CCA_PLAT_SW_COMPONENTS);
	if (!sw || !cbor_isa_array(sw) || !cbor_array_is_definite(sw) || cbor_array_size(sw) > CCA_MAX_SW)
		return cca_err(err, errsz, "claim 2399 (software components) is not an array of at most %d",
			       CCA_MAX_SW);
	v->n_sw = cbor_array_size(sw);
	for (i = 0; i < v->n_sw; i++)
		if (parse_sw(cbor_array_handle(sw)[i], &v->sw[i], i, err, errsz) < 0)
			return -1;
	return 0;
}

int cca_token_verify(const uint8_t *token, size_t len, EVP_PKEY *platform_pub, struct cca_token_view *view, char *err,
		     size_t errsz)
{
	cbor_item_t *root, *map, *rit, *pit, *claims = NULL;
	uint64_t tag;
	uint8_t *payload = NULL, hash[EVP_MAX_MD_SIZE];
	size_t plen, hash_len;
	EVP_PKEY *rkey = NULL;
	char why[256];
	int rc = -1;

	memset(view, 0, sizeof(*view));
	root = cose_cbor_load_tagged(token, len, CCA_MAX_TOKEN, "CCA token", &tag, err, errsz);
	if (!root)
		return -1;
	if (tag != CCA_TOKEN_TAG) {
		cca_err(err, errsz, "malformed CCA token: not CBOR tag 399");
		goto out;
	}
	map = root;
	rit = cose_cbor_map_get(map, CCA_KEY_REALM_TOKEN);
	pit = cose_cbor_map_get(map, CCA_KEY_PLATFORM_TOKEN);
	if (cose_cbor_map_unique(map, 8) < 0 || !rit || !pit || !cbor_isa_bytestring(rit) ||
	    !cbor_bytestring_is_definite(rit) || !cbor_isa_bytestring(pit) || !cbor_bytestring_is_definite(pit)) {
		cca_err(err, errsz, "malformed CCA token: expected {44234: platform bstr, 44241: realm bstr}");
		goto out;
	}

	/* realm token: decode, take its key, then check it was signed by it */
	if (cose_sign1_payload(cbor_bytestring_handle(rit), cbor_bytestring_length(rit), &payload, &plen,
			       &view->realm_alg, why, sizeof(why)) < 0) {
		cca_err(err, errsz, "realm token: %s", why);
		goto out;
	}
	claims = cose_cbor_load(payload, plen, CCA_MAX_TOKEN, "realm claims", why, sizeof(why));
	if (!claims || parse_realm(claims, view, why, sizeof(why)) < 0) {
		cca_err(err, errsz, "realm token: %s", why);
		goto out;
	}
	cbor_decref(&claims);
	free(payload);
	payload = NULL;
	rkey = cose_key_decode(view->realm_pub_key, view->realm_pub_key_len, why, sizeof(why));
	if (!rkey) {
		cca_err(err, errsz, "realm token: claim 44237: %s", why);
		goto out;
	}
	if (cose_sign1_verify(rkey, cbor_bytestring_handle(rit), cbor_bytestring_length(rit), NULL, NULL, why,
			      sizeof(why)) < 0) {
		cca_err(err, errsz, "realm token: %s", why);
		goto out;
	}

	/* platform token */
	if (platform_pub) {
		if (cose_sign1_verify(platform_pub, cbor_bytestring_handle(pit), cbor_bytestring_length(pit), &payload,
				      &plen, why, sizeof(why)) < 0) {
			cca_err(err, errsz, "platform token: %s", why);
			goto out;
		}
		view->platform_alg = cose_key_alg(platform_pub);
	} else if (cose_sign1_payload(cbor_bytestring_handle(pit), cbor_bytestring_length(pit), &payload, &plen,
				      &view->platform_alg, why, sizeof(why)) < 0) {
		cca_err(err, errsz, "platform token: %s", why);
		goto out;
	}
	claims = cose_cbor_load(payload, plen, CCA_MAX_TOKEN, "platform claims", why, sizeof(why));
	if (!claims || parse_platform(claims, view, why, sizeof(why)) < 0) {
		cca_err(err, errsz, "platform token: %s", why);
		goto out;
	}
	if (digest(view->pub_key_hash_alg, view->realm_pub_key, view->realm_pub_key_len, hash, &hash_len) < 0 ||
	    hash_len != view->platform_challenge_len || CRYPTO_memcmp(hash, view->platform_challenge, hash_len) != 0) {
		cca_err(err, errsz, "binding broken: the platform challenge is not the %s of the realm key",
			view->pub_key_hash_alg);
		goto out;
	}
	view->platform_verified = platform_pub != NULL;
	rc = 0;
out:
	if (claims)
		cbor_decref(&claims);
	EVP_PKEY_free(rkey);
	free(payload);
	cbor_decref(&root);
	return rc;
}
