/* cose.h - COSE_Sign1 (RFC 9052) and EC2 COSE_Key on libcbor + libcrypto.
 *
 * Debian has no C COSE library; the attestation token (lib/ccatoken.h) needs
 * only the single-signer message and the EC2 key, so they are written here
 * on top of libcbor (encoding) and OpenSSL (ECDSA, SHA-2). Only ECDSA on
 * P-256 (ES256, alg -7) and P-384 (ES384, alg -35) is supported: the
 * algorithm follows the key's curve. Signatures on the wire are raw r||s
 * (RFC 9053 section 2.1), converted from and to OpenSSL's DER here.
 *
 * This file and lib/ccatoken.c depend on nothing else of the tree, so the
 * Service VM program (guest/) can compile them as they are.
 *
 * Error contract: 0 on success, -1 on failure with a NUL-terminated message
 * naming what was wrong in @err (@errsz bytes; @err may be NULL).
 */
#ifndef VIRTMGR_COSE_H
#define VIRTMGR_COSE_H

#include <stddef.h>
#include <stdint.h>

#include <cbor.h>
#include <openssl/evp.h>

#define COSE_TAG_SIGN1 18
#define COSE_ALG_ES256 (-7)
#define COSE_ALG_ES384 (-35)
/* Messages larger than this are refused before parsing (untrusted input). */
#define COSE_MAX_MESSAGE (64 * 1024)

/**
 * cose_sign1_sign() - sign @payload as a tagged COSE_Sign1 with @key
 *
 * Protected header {1: alg}, empty unprotected header, attached payload,
 * empty external AAD. @key must be a P-256 or P-384 private key.
 * Return: 0 with a malloc()ed message in *@out / *@out_len, or -1.
 */
int cose_sign1_sign(EVP_PKEY *key, const uint8_t *payload, size_t len, uint8_t **out, size_t *out_len, char *err,
		    size_t errsz);

/**
 * cose_sign1_verify() - check the COSE_Sign1 @msg against @pub
 *
 * Accepts the message with or without tag 18. The protected header's alg
 * must match @pub's curve (ES256 for P-256, ES384 for P-384).
 * Return: 0 with a malloc()ed copy of the payload in *@payload /
 * *@payload_len (both may be NULL), or -1 ("signature does not verify",
 * "malformed COSE_Sign1: ...", ...).
 */
int cose_sign1_verify(EVP_PKEY *pub, const uint8_t *msg, size_t len, uint8_t **payload, size_t *payload_len, char *err,
		      size_t errsz);

/**
 * cose_sign1_payload() - the payload of @msg WITHOUT checking its signature
 *
 * For a verifier that takes the key out of the payload first (the realm
 * token carries its own key); it still checks the message's shape.
 * *@alg (may be NULL) gets the protected header's algorithm.
 * Return: 0 with a malloc()ed payload, or -1.
 */
int cose_sign1_payload(const uint8_t *msg, size_t len, uint8_t **payload, size_t *payload_len, int *alg, char *err,
		       size_t errsz);

/**
 * cose_key_encode() - @pub (EC P-256/P-384) as an EC2 COSE_Key map
 * {1: 2 (EC2), 3: alg, -1: crv (1 P-256, 2 P-384), -2: x, -3: y}, CBOR-encoded.
 * Return: 0 with malloc()ed bytes in *@out / *@out_len, or -1.
 */
int cose_key_encode(EVP_PKEY *pub, uint8_t **out, size_t *out_len, char *err, size_t errsz);

/**
 * cose_key_decode() - the public key an EC2 COSE_Key encodes
 * Return: a new EVP_PKEY (free with EVP_PKEY_free()), or NULL.
 */
EVP_PKEY *cose_key_decode(const uint8_t *buf, size_t len, char *err, size_t errsz);

/**
 * cose_key_alg() - the COSE algorithm for @key's curve
 * Return: COSE_ALG_ES256, COSE_ALG_ES384, or 0 for an unsupported key.
 */
int cose_key_alg(EVP_PKEY *key);

/** cose_alg_name() - "ES256", "ES384" or "unknown". */
const char *cose_alg_name(int alg);

/**
 * cose_ec_generate() - a fresh EC key on P-256 (@bits 256) or P-384 (384)
 * Return: a new EVP_PKEY, or NULL.
 */
EVP_PKEY *cose_ec_generate(int bits);

/**
 * cose_ecdsa_der_to_raw() - DER ECDSA-Sig-Value to fixed-width r||s
 * @n: width of one of r and s (32 for P-256, 48 for P-384); @raw: 2*@n bytes.
 * Return: 0, or -1 when the DER is malformed or a value does not fit.
 */
int cose_ecdsa_der_to_raw(const uint8_t *der, size_t der_len, size_t n, uint8_t *raw);

/**
 * cose_ecdsa_raw_to_der() - r||s (2*@n bytes) to a malloc()ed DER signature
 * Return: 0, or -1.
 */
int cose_ecdsa_raw_to_der(const uint8_t *raw, size_t n, uint8_t **der, size_t *der_len);

/* ---- small libcbor helpers shared with lib/ccatoken.c ---- */
/* An integer item of the shortest encoding (libcbor keeps widths as built). */
cbor_item_t *cose_cbor_int(int64_t v);
/* *@out = the value of an unsigned or negative integer item; Return: 0 or -1. */
int cose_cbor_get_int(const cbor_item_t *it, int64_t *out);
/* The value under integer @key in a definite map, or NULL (borrowed). */
cbor_item_t *cose_cbor_map_get(const cbor_item_t *map, int64_t key);
/* Return: 0 if @map is a definite map of at most @max entries whose
 * integer keys are unique (a verifier and a parser that takes the last
 * duplicate must never disagree), else -1. */
int cose_cbor_map_unique(const cbor_item_t *map, size_t max);
/* Add @key: @value to @map, taking over @value's reference. */
void cose_cbor_map_put(cbor_item_t *map, int64_t key, cbor_item_t *value);
/* Serialize into a malloc()ed buffer; Return: 0 or -1. */
int cose_cbor_serialize(const cbor_item_t *it, uint8_t **out, size_t *out_len);
#define COSE_MAX_DEPTH 16
/* Return: 0 if @buf holds exactly one well-formed CBOR item whose declared
 * lengths fit in @len, with definite lengths and nesting up to
 * COSE_MAX_DEPTH; -1 otherwise. Run before libcbor sees untrusted bytes
 * (cose_cbor_load() does): libcbor allocates what a header declares. */
int cose_cbor_wellformed(const uint8_t *buf, size_t len);
/* The first CBOR item at @buf, checked the same way with no length or
 * count over @max, for a reader of a stream (the Service VM's answers).
 * Return: 0 complete (its size in *@end), 1 incomplete, -1 malformed. */
int cose_cbor_scan(const uint8_t *buf, size_t len, size_t max, size_t *end);
/* Parse exactly one item filling @buf (at most @max bytes), naming @what in
 * errors. Return: the item (cbor_decref() it), or NULL. */
cbor_item_t *cose_cbor_load(const uint8_t *buf, size_t len, size_t max, const char *what, char *err, size_t errsz);
/* Like cose_cbor_load(), for an item that may start with one tag: *@tag
 * gets its number (COSE_NO_TAG if none) and the item is the tag's content. */
#define COSE_NO_TAG UINT64_MAX
cbor_item_t *cose_cbor_load_tagged(const uint8_t *buf, size_t len, size_t max, const char *what, uint64_t *tag,
				   char *err, size_t errsz);

#endif /* VIRTMGR_COSE_H */
