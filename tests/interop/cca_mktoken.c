/* cca_mktoken.c - write a CCA token made by lib/ccatoken.c for the Python
 * verifier (tests/interop/test_cca_token.py): DIR/token.cbor, the platform
 * key DIR/platform.pem (SubjectPublicKeyInfo), a second unrelated key
 * DIR/other.pem, and DIR/claims (challenge and RIM in hex, one per line).
 * Usage: cca_mktoken DIR BITS  (BITS 256 or 384: the realm key's curve)
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/pem.h>
#include <openssl/rand.h>

#include "lib/ccatoken.h"
#include "lib/cose.h"

static void die(const char *what)
{
	fprintf(stderr, "cca_mktoken: %s\n", what);
	exit(1);
}

static void write_pem(const char *dir, const char *name, EVP_PKEY *k)
{
	char path[4096];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "w");
	if (!f || !PEM_write_PUBKEY(f, k) || fclose(f))
		die(path);
}

static void hexline(FILE *f, const uint8_t *b, size_t n)
{
	for (size_t i = 0; i < n; i++)
		fprintf(f, "%02x", b[i]);
	fputc('\n', f);
}

int main(int argc, char **argv)
{
	struct cca_realm_claims r = { 0 };
	struct cca_platform_claims p = { 0 };
	EVP_PKEY *rk, *pk, *other;
	char path[4096], err[256];
	uint8_t *tok;
	size_t len;
	FILE *f;

	if (argc != 3)
		die("usage: cca_mktoken DIR 256|384");
	rk = cose_ec_generate(atoi(argv[2]));
	pk = cose_ec_generate(256);
	other = cose_ec_generate(256);
	if (!rk || !pk || !other)
		die("key generation failed");
	r.challenge_len = 32;
	r.hash_alg = atoi(argv[2]) == 384 ? "sha-384" : "sha-256";
	r.measurement_len = atoi(argv[2]) == 384 ? 48 : 32;
	if (RAND_bytes(r.challenge, 32) != 1 || RAND_bytes(r.personalization, 64) != 1 ||
	    RAND_bytes(r.rim, (int)r.measurement_len) != 1 || RAND_bytes(r.rem[2], 64) != 1)
		die("RAND_bytes");
	memset(p.implementation_id, 0x5a, 32);
	p.instance_id[0] = 1;
	p.lifecycle = CCA_LIFECYCLE_NON_CCA_PLATFORM_DEBUG;
	p.hash_alg = "sha-256";
	p.n_sw = 1;
	p.sw[0] = (struct cca_sw_component){ .type = "virtmgrd", .measurement_len = 32, .hash_alg = "sha-256" };
	if (cca_token_make(&r, rk, &p, pk, &tok, &len, err, sizeof(err)) < 0)
		die(err);
	snprintf(path, sizeof(path), "%s/token.cbor", argv[1]);
	f = fopen(path, "w");
	if (!f || fwrite(tok, 1, len, f) != len || fclose(f))
		die(path);
	write_pem(argv[1], "platform.pem", pk);
	write_pem(argv[1], "other.pem", other);
	snprintf(path, sizeof(path), "%s/claims", argv[1]);
	f = fopen(path, "w");
	if (!f)
		die(path);
	hexline(f, r.challenge, r.challenge_len);
	hexline(f, r.rim, r.measurement_len);
	hexline(f, r.rem[2], r.measurement_len);
	if (fclose(f))
		die(path);
	free(tok);
	EVP_PKEY_free(rk);
	EVP_PKEY_free(pk);
	EVP_PKEY_free(other);
	return 0;
}
