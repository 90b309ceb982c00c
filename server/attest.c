/* attest.c - runtime measurement registers and attestation requests.
 *
 * Design. ExtendMeasurement is answered at once: REM[i] = H(REM[i] || data)
 * with the VM's hash algorithm (CCA RSI_MEASUREMENT_EXTEND; data at most 64
 * bytes). RequestAttestation turns the VM's state into a SignRealmToken
 * request for the Service VM (challenge, personalization value, hash
 * algorithm, RIM, REMs, and the platform's software components) and
 * replies with the token it signs. The daemon never holds a signing key:
 * a token exists only if the Service VM made it. A guest waiting for a
 * token holds only its own call; if its connection goes, the Service VM's
 * answer is dropped.
 */
#include "config.h"
#include "server/attest.h"

#include <cbor.h>
#include <openssl/evp.h>
#include <string.h>

#include "lib/log.h"
#include "lib/util.h"
#include "server/servicevm.h"
#include "server/statefile.h"

struct attest_vm {
	struct servicevm *svm;
	char hash_alg[16];
	const EVP_MD *md;
	size_t mlen;
	uint8_t rim[64];
	bool has_rim; /* set by measure_vm(), or restored by attest_vm_load() */
	uint8_t rem[ATTEST_NUM_REMS][64];
	uint8_t personalization[64];
	void (*changed)(void *opaque); /* a REM changed: record it (vm_persist) */
	void *changed_opaque;
};

struct attest_pending {
	struct ttrpc_call *call;
	struct servicevm_req *req;
	bool key; /* GetPlatformKey (else RequestAttestation) */
};

struct attest_vm *attest_vm_new(struct servicevm *svm, const uint8_t *instance_id, const char *hash_alg)
{
	struct attest_vm *a = xzalloc(sizeof(*a));

	a->svm = svm;
	if (hash_alg && !strcmp(hash_alg, "sha-384")) {
		a->md = EVP_sha384();
		snprintf(a->hash_alg, sizeof(a->hash_alg), "sha-384");
	} else {
		a->md = EVP_sha256();
		snprintf(a->hash_alg, sizeof(a->hash_alg), "sha-256");
	}
	a->mlen = (size_t)EVP_MD_get_size(a->md);
	if (instance_id)
		memcpy(a->personalization, instance_id, sizeof(a->personalization));
	return a;
}

void attest_vm_free(struct attest_vm *a)
{
	free(a);
}

void attest_vm_set_rim(struct attest_vm *a, const uint8_t *rim, size_t len)
{
	memset(a->rim, 0, sizeof(a->rim));
	memcpy(a->rim, rim, MIN(len, sizeof(a->rim)));
	a->has_rim = true;
}

const uint8_t *attest_vm_rim(const struct attest_vm *a, size_t *len, const char **alg)
{
	*len = a && a->has_rim ? a->mlen : 0;
	*alg = a && a->has_rim ? a->hash_alg : "";
	return a ? a->rim : NULL;
}

const uint8_t *attest_vm_rem(const struct attest_vm *a, unsigned i, size_t *len)
{
	*len = a->mlen;
	return a->rem[i % ATTEST_NUM_REMS];
}

void attest_extend(struct attest_vm *a, struct ttrpc_call *call, const Virtmgr__V1__ExtendMeasurementRequest *req)
{
	Virtmgr__V1__Empty empty = VIRTMGR__V1__EMPTY__INIT;
	EVP_MD_CTX *ctx;
	unsigned len = 0;

	if (req->index >= ATTEST_NUM_REMS) {
		ttrpc_call_fail(call, VM_INVALID_ARGUMENT, "index: %u is not a REM (0..%d)", req->index,
				ATTEST_NUM_REMS - 1);
		return;
	}
	if (req->data.len > ATTEST_MAX_EXTEND) {
		ttrpc_call_fail(call, VM_INVALID_ARGUMENT, "data: %zu bytes exceed the limit of %d", req->data.len,
				ATTEST_MAX_EXTEND);
		return;
	}
	ctx = EVP_MD_CTX_new();
	if (!ctx || !EVP_DigestInit_ex(ctx, a->md, NULL) || !EVP_DigestUpdate(ctx, a->rem[req->index], a->mlen) ||
	    (req->data.len && !EVP_DigestUpdate(ctx, req->data.data, req->data.len)) ||
	    !EVP_DigestFinal_ex(ctx, a->rem[req->index], &len)) {
		EVP_MD_CTX_free(ctx);
		ttrpc_call_fail(call, VM_INTERNAL, "hashing REM[%u] failed", req->index);
		return;
	}
	EVP_MD_CTX_free(ctx);
	if (a->changed)
		a->changed(a->changed_opaque);
	ttrpc_call_reply(call, &empty.base, NULL, 0);
}

static void pending_cancel(struct ttrpc_call *call, void *opaque)
{
	struct attest_pending *p = opaque;

	(void)call;
	servicevm_cancel(p->req);
	free(p);
}

static void pending_done(void *opaque, cbor_item_t *value, const struct vm_error *err)
{
	struct attest_pending *p = opaque;

	ttrpc_call_set_cancel(p->call, NULL, NULL);
	if (!value) {
		ttrpc_call_fail_error(p->call, err);
	} else if (!cbor_isa_bytestring(value) || !cbor_bytestring_is_definite(value)) {
		/* the Service VM sent a wrong shape: its failure, said to the caller as such */
		ttrpc_call_fail(p->call, VM_UNAVAILABLE, "Service VM failed: its answer is not a byte string");
	} else if (p->key) {
		Virtmgr__V1__GetPlatformKeyResponse resp = VIRTMGR__V1__GET_PLATFORM_KEY_RESPONSE__INIT;

		resp.public_key.data = cbor_bytestring_handle(value);
		resp.public_key.len = cbor_bytestring_length(value);
		ttrpc_call_reply(p->call, &resp.base, NULL, 0);
	} else {
		Virtmgr__V1__RequestAttestationResponse resp = VIRTMGR__V1__REQUEST_ATTESTATION_RESPONSE__INIT;

		resp.token.data = cbor_bytestring_handle(value);
		resp.token.len = cbor_bytestring_length(value);
		ttrpc_call_reply(p->call, &resp.base, NULL, 0);
	}
	free(p);
}

static void pending_start(struct servicevm *svm, struct ttrpc_call *call, cbor_item_t *req, const char *expect,
			  bool key)
{
	struct attest_pending *p = xzalloc(sizeof(*p));

	p->call = call;
	p->key = key;
	p->req = servicevm_request(svm, req, expect, pending_done, p);
	ttrpc_call_set_cancel(call, pending_cancel, p);
}

static void map_put(cbor_item_t *m, const char *key, cbor_item_t *value)
{
	cbor_map_add(m, (struct cbor_pair){ .key = cbor_move(cbor_build_string(key)), .value = cbor_move(value) });
}

void attest_request(struct attest_vm *a, struct ttrpc_call *call, const Virtmgr__V1__RequestAttestationRequest *req)
{
	cbor_item_t *args, *rems, *outer;

	if (!a->svm) {
		ttrpc_call_fail(call, VM_FAILED_PRECONDITION, "this daemon runs no Service VM (early mode)");
		return;
	}
	if (req->challenge.len < ATTEST_MIN_CHALLENGE || req->challenge.len > ATTEST_MAX_CHALLENGE) {
		ttrpc_call_fail(call, VM_INVALID_ARGUMENT, "challenge: %zu bytes, expected %d..%d", req->challenge.len,
				ATTEST_MIN_CHALLENGE, ATTEST_MAX_CHALLENGE);
		return;
	}
	args = cbor_new_definite_map(6);
	map_put(args, "challenge", cbor_build_bytestring(req->challenge.data, req->challenge.len));
	map_put(args, "personalization", cbor_build_bytestring(a->personalization, sizeof(a->personalization)));
	map_put(args, "hash_alg", cbor_build_string(a->hash_alg));
	map_put(args, "rim", cbor_build_bytestring(a->rim, a->mlen));
	rems = cbor_new_definite_array(ATTEST_NUM_REMS);
	for (unsigned i = 0; i < ATTEST_NUM_REMS; i++)
		cbor_array_push(rems, cbor_move(cbor_build_bytestring(a->rem[i], a->mlen)));
	map_put(args, "rems", rems);
	map_put(args, "platform_sw", servicevm_platform_sw(a->svm));
	outer = cbor_new_definite_map(1);
	map_put(outer, "SignRealmToken", args);
	pending_start(a->svm, call, outer, "SignRealmToken", false);
}

void attest_platform_key(struct servicevm *svm, struct ttrpc_call *call)
{
	if (!svm) {
		ttrpc_call_fail(call, VM_FAILED_PRECONDITION, "this daemon runs no Service VM (early mode)");
		return;
	}
	pending_start(svm, call, cbor_build_string("GetPlatformKey"), "GetPlatformKey", true);
}

/* ---- surviving a daemon restart (server/vm-persist.c) ---- */

static const char *const rems[ATTEST_NUM_REMS] = { "attest_rem0", "attest_rem1", "attest_rem2", "attest_rem3" };

void attest_vm_on_change(struct attest_vm *a, void (*fn)(void *opaque), void *opaque)
{
	a->changed = fn;
	a->changed_opaque = opaque;
}

static void hex_set(struct statefile *sf, const char *key, const uint8_t *b, size_t n)
{
	static const char digits[] = "0123456789abcdef";
	char hex[2 * 64 + 1];

	for (size_t i = 0; i < n; i++) {
		hex[2 * i] = digits[b[i] >> 4];
		hex[2 * i + 1] = digits[b[i] & 15];
	}
	hex[2 * n] = '\0';
	statefile_set(sf, key, hex);
}

static int hex_get(const struct statefile *sf, const char *key, uint8_t *out, size_t n, struct vm_error *err)
{
	const char *s = statefile_get(sf, key);

	if (!s || strlen(s) != 2 * n)
		return vm_error_set(err, VM_DATA_LOSS, "%s: missing or not %zu hex bytes", key, n);
	for (size_t i = 0; i < 2 * n; i++) {
		char c = s[i];
		int v = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;

		if (v < 0)
			return vm_error_set(err, VM_DATA_LOSS, "%s: '%c' is not a hex digit", key, c);
		out[i / 2] = (uint8_t)(i % 2 ? out[i / 2] << 4 | v : v);
	}
	return 0;
}

void attest_vm_save(const struct attest_vm *a, struct statefile *sf)
{
	if (!a || !a->has_rim)
		return;
	statefile_set(sf, "attest_alg", a->hash_alg);
	hex_set(sf, "attest_rim", a->rim, a->mlen);
	for (int i = 0; i < ATTEST_NUM_REMS; i++)
		hex_set(sf, rems[i], a->rem[i], a->mlen);
	hex_set(sf, "attest_personalization", a->personalization, sizeof(a->personalization));
}

int attest_vm_load(struct attest_vm *a, const struct statefile *sf, struct vm_error *err)
{
	const char *alg = statefile_get(sf, "attest_alg");

	if (!alg)
		return 0; /* a record of an older daemon: no measurement */
	if (strcmp(alg, "sha-256") && strcmp(alg, "sha-384"))
		return vm_error_set(err, VM_DATA_LOSS, "attest_alg: \"%.16s\" is neither sha-256 nor sha-384", alg);
	a->md = strcmp(alg, "sha-384") ? EVP_sha256() : EVP_sha384();
	snprintf(a->hash_alg, sizeof(a->hash_alg), "%s", alg);
	a->mlen = (size_t)EVP_MD_get_size(a->md);
	if (hex_get(sf, "attest_rim", a->rim, a->mlen, err) < 0 ||
	    hex_get(sf, "attest_personalization", a->personalization, sizeof(a->personalization), err) < 0)
		return -1;
	for (int i = 0; i < ATTEST_NUM_REMS; i++)
		if (hex_get(sf, rems[i], a->rem[i], a->mlen, err) < 0)
			return -1;
	a->has_rim = true;
	return 0;
}
