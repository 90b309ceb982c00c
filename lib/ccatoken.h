/* ccatoken.h - the Arm CCA attestation token of RMM 1.0, made and checked.
 *
 * Shape (docs/attestation.md, "Token format"): CBOR tag 399 over a map
 * {44234: platform token, 44241: realm token}, each a byte string holding a
 * COSE_Sign1 (lib/cose.h). The realm token is signed with the realm
 * attestation key, whose COSE_Key is its claim 44237; the platform token's
 * challenge (claim 10) is the hash, with the algorithm named by the realm
 * claim 44240, of that claim's bytes; that hash binds the two tokens.
 *
 * Like lib/cose.c this depends on libcbor and libcrypto only, so the
 * Service VM program compiles it unchanged. Errors: 0 / -1 with a message
 * in @err (@errsz bytes, @err may be NULL).
 */
#ifndef VIRTMGR_CCATOKEN_H
#define VIRTMGR_CCATOKEN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>

#define CCA_TOKEN_TAG 399
#define CCA_KEY_PLATFORM_TOKEN 44234
#define CCA_KEY_REALM_TOKEN 44241

/* realm claims */
#define CCA_REALM_CHALLENGE 10
#define CCA_REALM_PERSONALIZATION 44235
#define CCA_REALM_HASH_ALG 44236
#define CCA_REALM_PUB_KEY 44237
#define CCA_REALM_RIM 44238
#define CCA_REALM_REM 44239
#define CCA_REALM_PUB_KEY_HASH_ALG 44240
#define CCA_PROFILE 265
#define CCA_REALM_PROFILE "tag:arm.com,2023:realm#1.0.0"

/* platform claims */
#define CCA_PLAT_CHALLENGE 10
#define CCA_PLAT_INSTANCE_ID 256
#define CCA_PLAT_LIFECYCLE 2395
#define CCA_PLAT_IMPLEMENTATION_ID 2396
#define CCA_PLAT_SW_COMPONENTS 2399
#define CCA_PLAT_CONFIG 2401
#define CCA_PLAT_HASH_ALG 2402
#define CCA_PLATFORM_PROFILE "tag:arm.com,2023:cca_platform#1.0.0"

/* software component map keys */
#define CCA_SW_TYPE 1
#define CCA_SW_MEASUREMENT 2
#define CCA_SW_VERSION 4
#define CCA_SW_SIGNER_ID 5
#define CCA_SW_HASH_ALG 6

/* Security lifecycle (PSA/CCA ranges, low byte is implementation-defined). */
#define CCA_LIFECYCLE_UNKNOWN 0x0000
#define CCA_LIFECYCLE_SECURED 0x3000
/* "non-CCA platform debug": what the platform runs is not isolated from a
 * debugger, here the host, which can read every guest's memory. What
 * virtmgr reports on KVM/TCG hosts without protected-VM hardware. */
#define CCA_LIFECYCLE_NON_CCA_PLATFORM_DEBUG 0x4000

#define CCA_MAX_SW 4
#define CCA_MAX_TOKEN (32 * 1024)

struct cca_realm_claims {
	uint8_t challenge[64];
	size_t challenge_len; /* 32..64; shorter challenges are zero-padded to 64 on the wire */
	uint8_t personalization[64];
	const char *hash_alg; /* "sha-256" | "sha-384" | "sha-512" */
	uint8_t rim[64];
	uint8_t rem[4][64];
	size_t measurement_len; /* of rim and each rem: 32, 48 or 64 */
};

struct cca_sw_component {
	const char *type;
	uint8_t measurement[64];
	size_t measurement_len;
	const char *version;
	uint8_t signer_id[64];
	size_t signer_id_len;
	const char *hash_alg;
};

struct cca_platform_claims {
	uint8_t implementation_id[32];
	uint8_t instance_id[33];
	int lifecycle;
	struct cca_sw_component sw[CCA_MAX_SW];
	size_t n_sw;
	const char *hash_alg;
	uint8_t config[64]; /* claim 2401; empty when config_len is 0 */
	size_t config_len;
};

/* Everything a token says, decoded; strings are NUL-terminated copies. */
struct cca_sw_view {
	char type[64];
	uint8_t measurement[64];
	size_t measurement_len;
	char version[64];
	uint8_t signer_id[64];
	size_t signer_id_len;
	char hash_alg[16];
};

struct cca_token_view {
	/* realm token */
	int realm_alg; /* COSE alg of its signature */
	char realm_profile[64];
	uint8_t challenge[64];
	size_t challenge_len;
	uint8_t personalization[64];
	char hash_alg[16];
	uint8_t rim[64];
	size_t rim_len;
	uint8_t rem[4][64];
	size_t rem_len[4];
	uint8_t realm_pub_key[256]; /* claim 44237 as it is (a COSE_Key) */
	size_t realm_pub_key_len;
	char pub_key_hash_alg[16];
	/* platform token */
	int platform_alg;
	bool platform_verified; /* its signature was checked against a given key */
	char platform_profile[64];
	uint8_t platform_challenge[64];
	size_t platform_challenge_len;
	uint8_t implementation_id[32];
	uint8_t instance_id[33];
	int lifecycle;
	char platform_hash_alg[16];
	uint8_t config[64];
	size_t config_len;
	struct cca_sw_view sw[CCA_MAX_SW];
	size_t n_sw;
};

/**
 * cca_token_make() - build and sign a CCA attestation token
 *
 * The realm token carries @realm's claims and the COSE_Key of @realm_key
 * (44237, with 44240 "sha-256" for a P-256 key, "sha-384" for P-384) and is
 * signed with @realm_key; the platform token carries @platform's claims and
 * as challenge the hash of that COSE_Key, and is signed with @platform_key.
 * Return: 0 with a malloc()ed token in *@token / *@len, or -1.
 */
int cca_token_make(const struct cca_realm_claims *realm, EVP_PKEY *realm_key,
		   const struct cca_platform_claims *platform, EVP_PKEY *platform_key, uint8_t **token, size_t *len,
		   char *err, size_t errsz);

/**
 * cca_token_verify() - decode @token, check its signatures and binding
 *
 * Always checks the realm token's signature against its own key (44237) and
 * that the platform challenge is the hash of that key. With @platform_pub,
 * also checks the platform token's signature (view->platform_verified);
 * with NULL, the platform token is decoded but not authenticated.
 * The view is filled as far as decoding got, also on failure.
 * Return: 0 when everything checked holds, or -1 with the reason.
 */
int cca_token_verify(const uint8_t *token, size_t len, EVP_PKEY *platform_pub, struct cca_token_view *view, char *err,
		     size_t errsz);

/**
 * cca_hash_alg_md() - the OpenSSL digest a CCA hash algorithm id names
 * Return: EVP_sha256() / EVP_sha384() / EVP_sha512(), or NULL.
 */
const EVP_MD *cca_hash_alg_md(const char *name);

#endif /* VIRTMGR_CCATOKEN_H */
