/* cose.c - COSE_Sign1 and EC2 COSE_Key on libcbor + OpenSSL (lib/cose.h).
 *
 * Signing builds Sig_structure = ["Signature1", protected, h'', payload]
 * (RFC 9052 section 4.4), signs it with ECDSA over SHA-256 or SHA-384
 * according to the key's curve, and converts OpenSSL's DER signature to the
 * raw r||s that COSE puts on the wire. Verifying parses strictly: a tagged
 * or untagged 4-array of the right types, definite lengths, nothing after
 * the item, a protected header that names an algorithm matching the key.
 * Input is untrusted (it comes from a guest or a file): every length is
 * bounded and every type checked before use.
 */
#include "lib/cose.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cbor.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/param_build.h>

static int cose_err(char *err, size_t errsz, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int cose_err(char *err, size_t errsz, const char *fmt, ...)
{
	va_list ap;

	if (err && errsz) {
		va_start(ap, fmt);
		vsnprintf(err, errsz, fmt, ap);
		va_end(ap);
	}
	return -1;
}

cbor_item_t *cose_cbor_int(int64_t v)
{
	uint64_t u = v >= 0 ? (uint64_t)v : (uint64_t)(-(v + 1));
	cbor_item_t *it;

	if (u <= UINT8_MAX)
		it = v >= 0 ? cbor_build_uint8((uint8_t)u) : cbor_build_negint8((uint8_t)u);
	else if (u <= UINT16_MAX)
		it = v >= 0 ? cbor_build_uint16((uint16_t)u) : cbor_build_negint16((uint16_t)u);
	else if (u <= UINT32_MAX)
		it = v >= 0 ? cbor_build_uint32((uint32_t)u) : cbor_build_negint32((uint32_t)u);
	else
		it = v >= 0 ? cbor_build_uint64(u) : cbor_build_negint64(u);
	if (!it)
		abort();
	return it;
}

int cose_cbor_get_int(const cbor_item_t *it, int64_t *out)
{
	uint64_t u;

	if (!it || (!cbor_isa_uint(it) && !cbor_isa_negint(it)))
		return -1;
	u = cbor_get_int(it);
	if (u > INT64_MAX)
		return -1;
	*out = cbor_isa_uint(it) ? (int64_t)u : -(int64_t)u - 1;
	return 0;
}

cbor_item_t *cose_cbor_map_get(const cbor_item_t *map, int64_t key)
{
	struct cbor_pair *pairs;
	size_t i, n;
	int64_t k;

	if (!map || !cbor_isa_map(map) || !cbor_map_is_definite(map))
		return NULL;
	pairs = cbor_map_handle(map);
	n = cbor_map_size(map);
	for (i = 0; i < n; i++)
		if (cose_cbor_get_int(pairs[i].key, &k) == 0 && k == key)
			return pairs[i].value;
	return NULL;
}

int cose_cbor_map_unique(const cbor_item_t *map, size_t max)
{
	struct cbor_pair *pairs;
	int64_t a, b;
	size_t n;

	if (!map || !cbor_isa_map(map) || !cbor_map_is_definite(map) || cbor_map_size(map) > max)
		return -1;
	pairs = cbor_map_handle(map);
	n = cbor_map_size(map);
	for (size_t i = 0; i < n; i++) {
		if (cose_cbor_get_int(pairs[i].key, &a) < 0)
			continue;
		for (size_t j = i + 1; j < n; j++)
			if (cose_cbor_get_int(pairs[j].key, &b) == 0 && a == b)
				return -1;
	}
	return 0;
}

void cose_cbor_map_put(cbor_item_t *map, int64_t key, cbor_item_t *value)
{
	if (!cbor_map_add(map, (struct cbor_pair){ .key = cbor_move(cose_cbor_int(key)), .value = cbor_move(value) }))
		abort();
}

int cose_cbor_serialize(const cbor_item_t *it, uint8_t **out, size_t *out_len)
{
	unsigned char *buf = NULL;
	size_t cap = 0, n;

	n = cbor_serialize_alloc(it, &buf, &cap);
	if (n == 0) {
		free(buf);
		return -1;
	}
	*out = buf;
	*out_len = n;
	return 0;
}

/*
 * libcbor allocates an array or map for the count its header declares
 * before it reads a single element, so five bytes could ask for gigabytes.
 * This walk checks first that no declared length or count exceeds @max
 * (each element takes at least one byte), that nesting stays shallow and
 * that no length is indefinite (COSE, CCA and the Service VM's messages use
 * definite ones only). Running out of bytes is "incomplete", not an error,
 * so a reader of a stream can wait for more. The work is bounded by @len.
 * Return: 0 complete, 1 incomplete, -1 malformed.
 */
static int scan(const uint8_t *b, size_t len, size_t max, size_t *pos, int depth)
{
	uint64_t val = 0;
	uint8_t major, info;
	size_t extra;

	if (depth > COSE_MAX_DEPTH)
		return -1;
	if (*pos >= len)
		return 1;
	major = b[*pos] >> 5;
	info = b[*pos] & 31;
	(*pos)++;
	if (info < 24) {
		val = info;
	} else if (info <= 27) {
		extra = (size_t)1 << (info - 24);
		if (len - *pos < extra)
			return 1;
		for (size_t i = 0; i < extra; i++)
			val = val << 8 | b[(*pos)++];
	} else {
		return -1; /* reserved, or indefinite (31) */
	}
	switch (major) {
	case 2:
	case 3:
		if (val > max)
			return -1;
		if (val > len - *pos)
			return 1;
		*pos += (size_t)val;
		return 0;
	case 4:
	case 5:
		if (val > max)
			return -1;
		for (uint64_t i = 0; i < (major == 5 ? 2 * val : val); i++) {
			int r = scan(b, len, max, pos, depth + 1);

			if (r)
				return r;
		}
		return 0;
	case 6:
		return scan(b, len, max, pos, depth + 1);
	default: /* integers, simple values and floats: the argument was all */
		return 0;
	}
}

int cose_cbor_scan(const uint8_t *buf, size_t len, size_t max, size_t *end)
{
	*end = 0;
	return scan(buf, len, max, end, 0);
}

int cose_cbor_wellformed(const uint8_t *buf, size_t len)
{
	size_t end;

	return cose_cbor_scan(buf, len, len, &end) == 0 && end == len ? 0 : -1;
}

cbor_item_t *cose_cbor_load(const uint8_t *buf, size_t len, size_t max, const char *what, char *err, size_t errsz)
{
	struct cbor_load_result res;
	cbor_item_t *it;
	size_t pos = 0;

	if (len == 0) {
		cose_err(err, errsz, "malformed %s: empty", what);
		return NULL;
	}
	if (len > max) {
		cose_err(err, errsz, "malformed %s: %zu bytes, more than %zu", what, len, max);
		return NULL;
	}
	if (cose_cbor_scan(buf, len, len, &pos) != 0) {
		cose_err(err, errsz, "malformed %s: not CBOR, or lengths that do not fit its %zu bytes", what, len);
		return NULL;
	}
	if (pos != len) {
		cose_err(err, errsz, "malformed %s: %zu bytes after the CBOR item", what, len - pos);
		return NULL;
	}
	it = cbor_load(buf, len, &res);
	if (!it || res.error.code != CBOR_ERR_NONE) {
		if (it)
			cbor_decref(&it);
		cose_err(err, errsz, "malformed %s: not CBOR (error %d at byte %zu)", what, (int)res.error.code,
			 res.error.position);
		return NULL;
	}
	if (res.read != len) {
		cbor_decref(&it);
		cose_err(err, errsz, "malformed %s: %zu bytes after the CBOR item", what, len - res.read);
		return NULL;
	}
	return it;
}

/*
 * libcbor 0.8 (Debian 12) fails to load a tag whose content is an array or
 * a map (CBOR_ERR_MALFORMATED), so the one leading tag COSE and CCA use is
 * taken off by hand and the rest loaded as an item of its own.
 */
cbor_item_t *cose_cbor_load_tagged(const uint8_t *buf, size_t len, size_t max, const char *what, uint64_t *tag,
				   char *err, size_t errsz)
{
	size_t hdr = 1, i;
	uint8_t info;

	*tag = COSE_NO_TAG;
	if (len > max) {
		cose_err(err, errsz, "malformed %s: %zu bytes, more than %zu", what, len, max);
		return NULL;
	}
	if (len && buf[0] >> 5 == 6) {
		info = buf[0] & 31;
		if (info < 24) {
			*tag = info;
		} else if (info <= 27) {
			hdr += (size_t)1 << (info - 24);
			if (len < hdr) {
				cose_err(err, errsz, "malformed %s: truncated tag", what);
				return NULL;
			}
			*tag = 0;
			for (i = 1; i < hdr; i++)
				*tag = *tag << 8 | buf[i];
		} else {
			cose_err(err, errsz, "malformed %s: bad tag header", what);
			return NULL;
		}
		return cose_cbor_load(buf + hdr, len - hdr, max, what, err, errsz);
	}
	return cose_cbor_load(buf, len, max, what, err, errsz);
}

const char *cose_alg_name(int alg)
{
	switch (alg) {
	case COSE_ALG_ES256:
		return "ES256";
	case COSE_ALG_ES384:
		return "ES384";
	default:
		return "unknown";
	}
}

/* Coordinate width and digest for @key; 0 for an unsupported key. */
static size_t key_params(EVP_PKEY *key, int *alg, int *crv, const EVP_MD **md)
{
	char group[64];
	size_t glen = 0;

	if (!key || EVP_PKEY_get_base_id(key) != EVP_PKEY_EC)
		return 0;
	if (!EVP_PKEY_get_group_name(key, group, sizeof(group), &glen))
		return 0;
	if (!strcmp(group, "prime256v1") || !strcmp(group, "P-256")) {
		*alg = COSE_ALG_ES256;
		*crv = 1;
		*md = EVP_sha256();
		return 32;
	}
	if (!strcmp(group, "secp384r1") || !strcmp(group, "P-384")) {
		*alg = COSE_ALG_ES384;
		*crv = 2;
		*md = EVP_sha384();
		return 48;
	}
	return 0;
}

int cose_key_alg(EVP_PKEY *key)
{
	const EVP_MD *md;
	int alg, crv;

	return key_params(key, &alg, &crv, &md) ? alg : 0;
}

EVP_PKEY *cose_ec_generate(int bits)
{
	if (bits == 256)
		return EVP_EC_gen("P-256");
	if (bits == 384)
		return EVP_EC_gen("P-384");
	return NULL;
}

int cose_ecdsa_der_to_raw(const uint8_t *der, size_t der_len, size_t n, uint8_t *raw)
{
	const unsigned char *p = der;
	const BIGNUM *r, *s;
	ECDSA_SIG *sig;
	int rc = -1;

	sig = d2i_ECDSA_SIG(NULL, &p, (long)der_len);
	if (!sig)
		return -1;
	if (p != der + der_len)
		goto out;
	ECDSA_SIG_get0(sig, &r, &s);
	if (BN_num_bytes(r) > (int)n || BN_num_bytes(s) > (int)n)
		goto out;
	if (BN_bn2binpad(r, raw, (int)n) < 0 || BN_bn2binpad(s, raw + n, (int)n) < 0)
		goto out;
	rc = 0;
out:
	ECDSA_SIG_free(sig);
	return rc;
}

int cose_ecdsa_raw_to_der(const uint8_t *raw, size_t n, uint8_t **der, size_t *der_len)
{
	BIGNUM *r = BN_bin2bn(raw, (int)n, NULL), *s = BN_bin2bn(raw + n, (int)n, NULL);
	ECDSA_SIG *sig = ECDSA_SIG_new();
	unsigned char *buf = NULL;
	int len;

	if (!r || !s || !sig || !ECDSA_SIG_set0(sig, r, s)) {
		BN_free(r);
		BN_free(s);
		ECDSA_SIG_free(sig);
		return -1;
	}
	len = i2d_ECDSA_SIG(sig, &buf);
	ECDSA_SIG_free(sig);
	if (len <= 0)
		return -1;
	*der = buf;
	*der_len = (size_t)len;
	return 0;
}

/* The serialized Sig_structure for @protected_ and @payload. */
static int sig_structure(const uint8_t *prot, size_t prot_len, const uint8_t *payload, size_t len, uint8_t **out,
			 size_t *out_len)
{
	cbor_item_t *arr = cbor_new_definite_array(4);
	int rc;

	if (!arr)
		abort();
	if (!cbor_array_push(arr, cbor_move(cbor_build_string("Signature1"))) ||
	    !cbor_array_push(arr, cbor_move(cbor_build_bytestring(prot, prot_len))) ||
	    !cbor_array_push(arr, cbor_move(cbor_build_bytestring(NULL, 0))) ||
	    !cbor_array_push(arr, cbor_move(cbor_build_bytestring(payload, len))))
		abort();
	rc = cose_cbor_serialize(arr, out, out_len);
	cbor_decref(&arr);
	return rc;
}

int cose_sign1_sign(EVP_PKEY *key, const uint8_t *payload, size_t len, uint8_t **out, size_t *out_len, char *err,
		    size_t errsz)
{
	uint8_t *prot = NULL, *tbs = NULL, *der = NULL, raw[96];
	size_t prot_len, tbs_len, der_len = 0, n;
	cbor_item_t *hdr = NULL, *arr = NULL, *tag = NULL;
	EVP_MD_CTX *ctx = NULL;
	const EVP_MD *md;
	int alg, crv, rc = -1;

	n = key_params(key, &alg, &crv, &md);
	if (!n)
		return cose_err(err, errsz, "signing key is not an EC P-256 or P-384 key");
	hdr = cbor_new_definite_map(1);
	cose_cbor_map_put(hdr, 1, cose_cbor_int(alg));
	if (cose_cbor_serialize(hdr, &prot, &prot_len) < 0 ||
	    sig_structure(prot, prot_len, payload, len, &tbs, &tbs_len) < 0) {
		cose_err(err, errsz, "cannot encode the COSE_Sign1 headers");
		goto out;
	}
	ctx = EVP_MD_CTX_new();
	if (!ctx || EVP_DigestSignInit(ctx, NULL, md, NULL, key) != 1 ||
	    EVP_DigestSign(ctx, NULL, &der_len, tbs, tbs_len) != 1) {
		cose_err(err, errsz, "ECDSA signing failed to start (is the key private?)");
		goto out;
	}
	der = malloc(der_len);
	if (!der)
		abort();
	if (EVP_DigestSign(ctx, der, &der_len, tbs, tbs_len) != 1 || cose_ecdsa_der_to_raw(der, der_len, n, raw) < 0) {
		cose_err(err, errsz, "ECDSA signing failed");
		goto out;
	}
	arr = cbor_new_definite_array(4);
	if (!arr || !cbor_array_push(arr, cbor_move(cbor_build_bytestring(prot, prot_len))) ||
	    !cbor_array_push(arr, cbor_move(cbor_new_definite_map(0))) ||
	    !cbor_array_push(arr, cbor_move(cbor_build_bytestring(payload, len))) ||
	    !cbor_array_push(arr, cbor_move(cbor_build_bytestring(raw, 2 * n))))
		abort();
	tag = cbor_build_tag(COSE_TAG_SIGN1, arr);
	if (!tag || cose_cbor_serialize(tag, out, out_len) < 0) {
		cose_err(err, errsz, "cannot encode the COSE_Sign1 message");
		goto out;
	}
	rc = 0;
out:
	if (tag)
		cbor_decref(&tag);
	if (arr)
		cbor_decref(&arr);
	if (hdr)
		cbor_decref(&hdr);
	EVP_MD_CTX_free(ctx);
	free(prot);
	free(tbs);
	free(der);
	return rc;
}

/* The parts of a COSE_Sign1, pointing into the loaded item. */
struct sign1 {
	cbor_item_t *root;
	const uint8_t *prot, *payload, *sig;
	size_t prot_len, payload_len, sig_len;
	int alg;
};

static int is_def_bstr(const cbor_item_t *it)
{
	return it && cbor_isa_bytestring(it) && cbor_bytestring_is_definite(it);
}

static int sign1_parse(const uint8_t *msg, size_t len, struct sign1 *s, char *err, size_t errsz)
{
	cbor_item_t *arr, *hdr = NULL, *algit, **items;
	uint64_t tag;
	int64_t alg;

	memset(s, 0, sizeof(*s));
	s->root = cose_cbor_load_tagged(msg, len, COSE_MAX_MESSAGE, "COSE_Sign1", &tag, err, errsz);
	if (!s->root)
		return -1;
	if (tag != COSE_NO_TAG && tag != COSE_TAG_SIGN1) {
		cose_err(err, errsz, "malformed COSE_Sign1: tag %llu, not 18", (unsigned long long)tag);
		goto bad;
	}
	arr = s->root;
	if (!cbor_isa_array(arr) || !cbor_array_is_definite(arr) || cbor_array_size(arr) != 4) {
		cose_err(err, errsz, "malformed COSE_Sign1: not an array of 4 items");
		goto bad;
	}
	items = cbor_array_handle(arr);
	if (!is_def_bstr(items[0]) || !cbor_isa_map(items[1]) || !is_def_bstr(items[2]) || !is_def_bstr(items[3])) {
		cose_err(err, errsz, "malformed COSE_Sign1: expected [bstr, map, bstr payload, bstr signature]");
		goto bad;
	}
	s->prot = cbor_bytestring_handle(items[0]);
	s->prot_len = cbor_bytestring_length(items[0]);
	s->payload = cbor_bytestring_handle(items[2]);
	s->payload_len = cbor_bytestring_length(items[2]);
	s->sig = cbor_bytestring_handle(items[3]);
	s->sig_len = cbor_bytestring_length(items[3]);
	hdr = cose_cbor_load(s->prot, s->prot_len, 1024, "COSE_Sign1 protected header", err, errsz);
	if (!hdr)
		goto bad;
	algit = cose_cbor_map_get(hdr, 1);
	if (cose_cbor_map_unique(hdr, 16) < 0 || cose_cbor_get_int(algit, &alg) < 0) {
		cose_err(err, errsz, "malformed COSE_Sign1: protected header names no algorithm");
		goto bad;
	}
	if (alg != COSE_ALG_ES256 && alg != COSE_ALG_ES384) {
		cose_err(err, errsz, "unsupported COSE algorithm %lld (only ES256 and ES384)", (long long)alg);
		goto bad;
	}
	s->alg = (int)alg;
	cbor_decref(&hdr);
	return 0;
bad:
	if (hdr)
		cbor_decref(&hdr);
	cbor_decref(&s->root);
	return -1;
}

static int copy_payload(const struct sign1 *s, uint8_t **payload, size_t *payload_len)
{
	if (payload) {
		*payload = malloc(s->payload_len ? s->payload_len : 1);
		if (!*payload)
			abort();
		if (s->payload_len)
			memcpy(*payload, s->payload, s->payload_len);
	}
	if (payload_len)
		*payload_len = s->payload_len;
	return 0;
}

int cose_sign1_payload(const uint8_t *msg, size_t len, uint8_t **payload, size_t *payload_len, int *alg, char *err,
		       size_t errsz)
{
	struct sign1 s;

	if (sign1_parse(msg, len, &s, err, errsz) < 0)
		return -1;
	copy_payload(&s, payload, payload_len);
	if (alg)
		*alg = s.alg;
	cbor_decref(&s.root);
	return 0;
}

int cose_sign1_verify(EVP_PKEY *pub, const uint8_t *msg, size_t len, uint8_t **payload, size_t *payload_len, char *err,
		      size_t errsz)
{
	uint8_t *tbs = NULL, *der = NULL;
	size_t tbs_len, der_len, n;
	EVP_MD_CTX *ctx = NULL;
	const EVP_MD *md;
	struct sign1 s;
	int alg, crv, rc = -1;

	n = key_params(pub, &alg, &crv, &md);
	if (!n)
		return cose_err(err, errsz, "verification key is not an EC P-256 or P-384 key");
	if (sign1_parse(msg, len, &s, err, errsz) < 0)
		return -1;
	if (s.alg != alg) {
		cose_err(err, errsz, "COSE_Sign1 algorithm %s does not match the key (%s)", cose_alg_name(s.alg),
			 cose_alg_name(alg));
		goto out;
	}
	if (s.sig_len != 2 * n) {
		cose_err(err, errsz, "malformed COSE_Sign1: signature of %zu bytes, %s needs %zu", s.sig_len,
			 cose_alg_name(alg), 2 * n);
		goto out;
	}
	if (sig_structure(s.prot, s.prot_len, s.payload, s.payload_len, &tbs, &tbs_len) < 0 ||
	    cose_ecdsa_raw_to_der(s.sig, n, &der, &der_len) < 0) {
		cose_err(err, errsz, "cannot rebuild the COSE_Sign1 signature input");
		goto out;
	}
	ctx = EVP_MD_CTX_new();
	if (!ctx || EVP_DigestVerifyInit(ctx, NULL, md, NULL, pub) != 1 ||
	    EVP_DigestVerify(ctx, der, der_len, tbs, tbs_len) != 1) {
		cose_err(err, errsz, "signature does not verify");
		goto out;
	}
	copy_payload(&s, payload, payload_len);
	rc = 0;
out:
	EVP_MD_CTX_free(ctx);
	free(tbs);
	OPENSSL_free(der);
	cbor_decref(&s.root);
	return rc;
}

static int bn_to_fixed(BIGNUM *bn, uint8_t *out, size_t n)
{
	return BN_bn2binpad(bn, out, (int)n) < 0 ? -1 : 0;
}

int cose_key_encode(EVP_PKEY *pub, uint8_t **out, size_t *out_len, char *err, size_t errsz)
{
	BIGNUM *x = NULL, *y = NULL;
	uint8_t xb[48], yb[48];
	cbor_item_t *map;
	const EVP_MD *md;
	int alg, crv, rc = -1;
	size_t n;

	n = key_params(pub, &alg, &crv, &md);
	if (!n)
		return cose_err(err, errsz, "key is not an EC P-256 or P-384 key");
	if (!EVP_PKEY_get_bn_param(pub, OSSL_PKEY_PARAM_EC_PUB_X, &x) ||
	    !EVP_PKEY_get_bn_param(pub, OSSL_PKEY_PARAM_EC_PUB_Y, &y) || bn_to_fixed(x, xb, n) < 0 ||
	    bn_to_fixed(y, yb, n) < 0) {
		BN_free(x);
		BN_free(y);
		return cose_err(err, errsz, "cannot read the EC public point");
	}
	BN_free(x);
	BN_free(y);
	map = cbor_new_definite_map(5);
	cose_cbor_map_put(map, 1, cose_cbor_int(2));
	cose_cbor_map_put(map, 3, cose_cbor_int(alg));
	cose_cbor_map_put(map, -1, cose_cbor_int(crv));
	cose_cbor_map_put(map, -2, cbor_build_bytestring(xb, n));
	cose_cbor_map_put(map, -3, cbor_build_bytestring(yb, n));
	if (cose_cbor_serialize(map, out, out_len) < 0)
		cose_err(err, errsz, "cannot encode the COSE_Key");
	else
		rc = 0;
	cbor_decref(&map);
	return rc;
}

EVP_PKEY *cose_key_decode(const uint8_t *buf, size_t len, char *err, size_t errsz)
{
	cbor_item_t *map, *xi, *yi;
	int64_t kty, crv, alg;
	EVP_PKEY_CTX *ctx = NULL, *chk = NULL;
	OSSL_PARAM_BLD *bld = NULL;
	OSSL_PARAM *params = NULL;
	EVP_PKEY *key = NULL;
	uint8_t point[1 + 2 * 48];
	const char *group;
	size_t n;

	map = cose_cbor_load(buf, len, 1024, "COSE_Key", err, errsz);
	if (!map)
		return NULL;
	if (cose_cbor_map_unique(map, 16) < 0) {
		cose_err(err, errsz, "malformed COSE_Key: not a map of unique keys");
		goto out;
	}
	if (cose_cbor_get_int(cose_cbor_map_get(map, 1), &kty) < 0 || kty != 2) {
		cose_err(err, errsz, "malformed COSE_Key: not an EC2 key (kty 2)");
		goto out;
	}
	if (cose_cbor_get_int(cose_cbor_map_get(map, -1), &crv) < 0 || (crv != 1 && crv != 2)) {
		cose_err(err, errsz, "unsupported COSE_Key curve (only P-256 and P-384)");
		goto out;
	}
	n = crv == 1 ? 32 : 48;
	group = crv == 1 ? "P-256" : "P-384";
	if (cose_cbor_get_int(cose_cbor_map_get(map, 3), &alg) == 0 &&
	    alg != (crv == 1 ? COSE_ALG_ES256 : COSE_ALG_ES384)) {
		cose_err(err, errsz, "COSE_Key algorithm %lld does not fit its curve", (long long)alg);
		goto out;
	}
	xi = cose_cbor_map_get(map, -2);
	yi = cose_cbor_map_get(map, -3);
	if (!is_def_bstr(xi) || !is_def_bstr(yi) || cbor_bytestring_length(xi) != n ||
	    cbor_bytestring_length(yi) != n) {
		cose_err(err, errsz, "malformed COSE_Key: x and y must be %zu-byte strings", n);
		goto out;
	}
	point[0] = 0x04;
	memcpy(point + 1, cbor_bytestring_handle(xi), n);
	memcpy(point + 1 + n, cbor_bytestring_handle(yi), n);
	bld = OSSL_PARAM_BLD_new();
	if (!bld || !OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, group, 0) ||
	    !OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, point, 1 + 2 * n) ||
	    !(params = OSSL_PARAM_BLD_to_param(bld))) {
		cose_err(err, errsz, "cannot build the EC key parameters");
		goto out;
	}
	ctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);
	if (!ctx || EVP_PKEY_fromdata_init(ctx) != 1 ||
	    EVP_PKEY_fromdata(ctx, &key, EVP_PKEY_PUBLIC_KEY, params) != 1) {
		cose_err(err, errsz, "COSE_Key is not a point on %s", group);
		key = NULL;
		goto out;
	}
	chk = EVP_PKEY_CTX_new(key, NULL);
	if (!chk || EVP_PKEY_public_check(chk) != 1) {
		cose_err(err, errsz, "COSE_Key is not a valid point on %s", group);
		EVP_PKEY_free(key);
		key = NULL;
	}
out:
	EVP_PKEY_CTX_free(chk);
	EVP_PKEY_CTX_free(ctx);
	OSSL_PARAM_free(params);
	OSSL_PARAM_BLD_free(bld);
	cbor_decref(&map);
	return key;
}
