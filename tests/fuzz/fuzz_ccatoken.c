/* fuzz_ccatoken.c - untrusted bytes into the token and COSE parsers: a CCA
 * token (vmctl attest verify, the daemon relaying the Service VM's answer),
 * a COSE_Sign1 and a COSE_Key. Nothing may crash, leak or allocate beyond
 * the input's size; the realm signature is checked with the key the input
 * itself carries, so mutations reach the claim parsers.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "lib/ccatoken.h"
#include "lib/cose.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct cca_token_view view;
	uint8_t *payload = NULL;
	size_t plen = 0;
	EVP_PKEY *k;
	char err[256];
	int alg;

	cca_token_verify(data, size, NULL, &view, err, sizeof(err));
	if (cose_sign1_payload(data, size, &payload, &plen, &alg, err, sizeof(err)) == 0)
		free(payload);
	k = cose_key_decode(data, size, err, sizeof(err));
	EVP_PKEY_free(k);
	return 0;
}
