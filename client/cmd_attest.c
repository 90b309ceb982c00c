/* cmd_attest.c - `vmctl attest verify`: check a CCA attestation token
 * (lib/ccatoken.c) the way a relying party would, and print its claims.
 *
 * Checked: the realm token's signature against its own key (claim 44237),
 * the binding (platform challenge = hash of that key), the platform
 * token's signature against the platform key (--key FILE, a PEM public key;
 * without it, the key virtmgrd's Service VM reports through GetPlatformKey),
 * the challenge (zero-padded to 64 bytes as the token carries it) and, with
 * --expect-rim, the RIM. Any failure exits 1 naming the reason; usage
 * errors exit 2.
 */
#include "config.h"
#include "client/cmd_attest.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include <openssl/pem.h>
#include <openssl/x509.h>

#include "client/json.h"
#include "lib/ccatoken.h"
#include "lib/cose.h"
#include "server/measure.h"

#define VERIFY_EXIT_INVALID 1

const char cmd_attest_verify_help[] =
	"Usage: vmctl attest verify TOKEN --challenge HEX [--expect-rim HEX] [--key FILE]\n"
	"\n"
	"Verify the CCA attestation token in file TOKEN (- for stdin): both signatures,\n"
	"the binding of the realm token to the platform token, the challenge and,\n"
	"with --expect-rim, the launch measurement; then print the claims (--json: one\n"
	"object). Exit 0 when all holds, 1 with the reason when not, 2 on usage errors.\n"
	"\n"
	"Options:\n"
	"  --challenge HEX    the challenge the token must carry (32..64 bytes)\n"
	"  --expect-rim HEX   the RIM it must carry (e.g. from `vmctl measure`)\n"
	"  --key FILE         the platform public key (PEM, SubjectPublicKeyInfo);\n"
	"                     default: ask virtmgrd (vmctl attest platform-key)\n"
	"  -h, --help         this help\n";

long vmctl_parse_hex(const char *s, const char *what, uint8_t *out, size_t max, struct vm_error *err)
{
	size_t n = strlen(s);

	if (n == 0 || n % 2 || n / 2 > max)
		return vm_error_set(err, VM_INVALID_ARGUMENT, "invalid %s: expected 2 to %zu hex digits, got %zu", what,
				    2 * max, n);
	for (size_t i = 0; i < n / 2; i++) {
		unsigned v = 0;

		for (int j = 0; j < 2; j++) {
			char c = s[2 * i + (size_t)j];

			v <<= 4;
			if (c >= '0' && c <= '9')
				v |= (unsigned)(c - '0');
			else if (c >= 'a' && c <= 'f')
				v |= (unsigned)(c - 'a' + 10);
			else if (c >= 'A' && c <= 'F')
				v |= (unsigned)(c - 'A' + 10);
			else
				return vm_error_set(err, VM_INVALID_ARGUMENT, "invalid %s: '%c' is not a hex digit",
						    what, c);
		}
		out[i] = (uint8_t)v;
	}
	return (long)(n / 2);
}

static const char *lifecycle_name(int lc)
{
	switch (lc & 0xff00) {
	case 0x0000:
		return "unknown";
	case 0x1000:
		return "assembly and test";
	case 0x2000:
		return "CCA platform ROT provisioning";
	case 0x3000:
		return "secured";
	case 0x4000:
		return "non-CCA platform debug";
	case 0x5000:
		return "recoverable CCA platform debug";
	case 0x6000:
		return "decommissioned";
	default:
		return "invalid";
	}
}

static uint8_t *read_all(FILE *f, size_t max, size_t *len)
{
	uint8_t *b = xmalloc(max + 1);

	*len = fread(b, 1, max + 1, f);
	if (ferror(f) || *len > max) {
		free(b);
		return NULL;
	}
	return b;
}

static EVP_PKEY *platform_key_from_daemon(struct vmctl_ctx *ctx)
{
	struct vmc_error err = { 0 };
	struct vmc_client *cl = vmctl_connect(ctx);
	const unsigned char *p;
	EVP_PKEY *k = NULL;
	uint8_t *der = NULL;
	size_t len = 0;

	if (!cl)
		return NULL;
	if (vmc_get_platform_key(cl, &der, &len, &err) < 0) {
		vmctl_rpc_error(&err);
	} else {
		p = der;
		k = d2i_PUBKEY(NULL, &p, (long)len);
		if (!k)
			fprintf(stderr, "vmctl: attest verify: the daemon's platform key is not a DER public key\n");
	}
	free(der);
	vmc_close(cl);
	return k;
}

static void print_text(const struct cca_token_view *v, const char *keysrc)
{
	char hex[2 * 64 + 1];

	printf("token: valid\n");
	printf("realm.profile: %s\n", v->realm_profile);
	printf("realm.signature: %s (realm attestation key, claim 44237)\n", cose_alg_name(v->realm_alg));
	printf("realm.challenge: %s\n", measure_hex(v->challenge, v->challenge_len, hex));
	printf("realm.personalization: %s\n", measure_hex(v->personalization, 64, hex));
	printf("realm.hash_alg: %s\n", v->hash_alg);
	printf("realm.rim: %s\n", measure_hex(v->rim, v->rim_len, hex));
	for (int i = 0; i < 4; i++)
		printf("realm.rem%d: %s\n", i, measure_hex(v->rem[i], v->rem_len[i], hex));
	printf("realm.public_key_hash_alg: %s\n", v->pub_key_hash_alg);
	printf("platform.profile: %s\n", v->platform_profile);
	printf("platform.signature: %s (verified with %s)\n", cose_alg_name(v->platform_alg), keysrc);
	printf("platform.challenge: %s (hash of the realm key: matches)\n",
	       measure_hex(v->platform_challenge, v->platform_challenge_len, hex));
	printf("platform.implementation_id: %s\n", measure_hex(v->implementation_id, 32, hex));
	printf("platform.instance_id: %s\n", measure_hex(v->instance_id, 33, hex));
	printf("platform.lifecycle: 0x%04x (%s)\n", v->lifecycle, lifecycle_name(v->lifecycle));
	printf("platform.hash_alg: %s\n", v->platform_hash_alg);
	for (size_t i = 0; i < v->n_sw; i++)
		printf("platform.sw%zu: type=%s measurement=%s version=%s\n", i, v->sw[i].type,
		       measure_hex(v->sw[i].measurement, v->sw[i].measurement_len, hex),
		       *v->sw[i].version ? v->sw[i].version : "-");
}

static void print_json(const struct cca_token_view *v)
{
	char hex[2 * 64 + 1], *rems[4];
	struct json_obj jo;

	json_begin(&jo, stdout);
	json_bool(&jo, "valid", true);
	json_str(&jo, "realm_profile", v->realm_profile);
	json_str(&jo, "realm_alg", cose_alg_name(v->realm_alg));
	json_str(&jo, "challenge", measure_hex(v->challenge, v->challenge_len, hex));
	json_str(&jo, "personalization", measure_hex(v->personalization, 64, hex));
	json_str(&jo, "hash_alg", v->hash_alg);
	json_str(&jo, "rim", measure_hex(v->rim, v->rim_len, hex));
	for (int i = 0; i < 4; i++)
		rems[i] = xstrdup(measure_hex(v->rem[i], v->rem_len[i], hex));
	json_str_array(&jo, "rem", (const char *const *)rems, 4);
	for (int i = 0; i < 4; i++)
		free(rems[i]);
	json_str(&jo, "public_key_hash_alg", v->pub_key_hash_alg);
	json_str(&jo, "platform_profile", v->platform_profile);
	json_str(&jo, "platform_alg", cose_alg_name(v->platform_alg));
	json_str(&jo, "platform_challenge", measure_hex(v->platform_challenge, v->platform_challenge_len, hex));
	json_str(&jo, "implementation_id", measure_hex(v->implementation_id, 32, hex));
	json_str(&jo, "instance_id", measure_hex(v->instance_id, 33, hex));
	json_uint(&jo, "lifecycle", (uint64_t)v->lifecycle);
	json_str(&jo, "lifecycle_name", lifecycle_name(v->lifecycle));
	json_str(&jo, "platform_hash_alg", v->platform_hash_alg);
	for (size_t i = 0; i < v->n_sw; i++) {
		char key[48];

		snprintf(key, sizeof(key), "sw%zu_type", i);
		json_str(&jo, key, v->sw[i].type);
		snprintf(key, sizeof(key), "sw%zu_measurement", i);
		json_str(&jo, key, measure_hex(v->sw[i].measurement, v->sw[i].measurement_len, hex));
	}
	json_end(&jo);
}

static int invalid(struct vmctl_ctx *ctx, const char *token, const char *why)
{
	if (ctx->json) {
		struct json_obj jo;

		json_begin(&jo, stdout);
		json_bool(&jo, "valid", false);
		json_str(&jo, "reason", why);
		json_end(&jo);
	}
	fprintf(stderr, "vmctl: attest verify: %s: invalid: %s\n", token, why);
	return VERIFY_EXIT_INVALID;
}

int cmd_attest_verify(struct vmctl_ctx *ctx, int argc, char **argv)
{
	enum { OPT_CHALLENGE = 256, OPT_RIM, OPT_KEY };
	static const struct option opts[] = {
		{ "challenge", required_argument, NULL, OPT_CHALLENGE },
		{ "expect-rim", required_argument, NULL, OPT_RIM },
		{ "key", required_argument, NULL, OPT_KEY },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *chal_hex = NULL, *rim_hex = NULL, *key_file = NULL, *token_file;
	uint8_t chal[64] = { 0 }, rim[64], *tok = NULL;
	struct vm_error perr = { 0 };
	struct cca_token_view view;
	long chal_len = 0, rim_len = -1;
	char why[512], hex[2 * 64 + 1];
	EVP_PKEY *key = NULL;
	size_t len;
	FILE *f;
	int c, ret;

	optind = 0;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
		switch (c) {
		case OPT_CHALLENGE:
			chal_hex = optarg;
			break;
		case OPT_RIM:
			rim_hex = optarg;
			break;
		case OPT_KEY:
			key_file = optarg;
			break;
		case 'h':
			fputs(cmd_attest_verify_help, stdout);
			return VMCTL_EXIT_OK;
		default:
			vmctl_getopt_error(c, argv, &perr);
			return vmctl_usage_error("attest", &perr);
		}
	}
	if (optind != argc - 1) {
		vm_error_set(&perr, VM_INVALID_ARGUMENT, "verify: expected one TOKEN file");
		return vmctl_usage_error("attest", &perr);
	}
	token_file = argv[optind];
	if (!chal_hex) {
		vm_error_set(&perr, VM_INVALID_ARGUMENT, "verify: --challenge HEX is required");
		return vmctl_usage_error("attest", &perr);
	}
	chal_len = vmctl_parse_hex(chal_hex, "--challenge", chal, 64, &perr);
	if (chal_len >= 0 && chal_len < 32)
		chal_len = vm_error_set(&perr, VM_INVALID_ARGUMENT, "invalid --challenge: %ld bytes, expected 32..64",
					chal_len);
	if (chal_len < 0 || (rim_hex && (rim_len = vmctl_parse_hex(rim_hex, "--expect-rim", rim, 64, &perr)) < 0))
		return vmctl_usage_error("attest", &perr);

	if (key_file) {
		f = fopen(key_file, "re");
		if (!f) {
			fprintf(stderr, "vmctl: attest verify: --key %s: %s\n", key_file, strerror(errno));
			return VMCTL_EXIT_USAGE;
		}
		key = PEM_read_PUBKEY(f, NULL, NULL, NULL);
		fclose(f);
		if (!key) {
			fprintf(stderr, "vmctl: attest verify: --key %s: not a PEM public key\n", key_file);
			return VMCTL_EXIT_USAGE;
		}
	} else if (!(key = platform_key_from_daemon(ctx))) {
		return VMCTL_EXIT_USAGE;
	}

	f = strcmp(token_file, "-") ? fopen(token_file, "re") : stdin;
	if (!f) {
		fprintf(stderr, "vmctl: attest verify: %s: %s\n", token_file, strerror(errno));
		EVP_PKEY_free(key);
		return VMCTL_EXIT_USAGE;
	}
	tok = read_all(f, CCA_MAX_TOKEN, &len);
	if (f != stdin)
		fclose(f);
	if (!tok) {
		ret = invalid(ctx, token_file, "cannot read it, or it is larger than a token can be");
		goto out;
	}
	if (cca_token_verify(tok, len, key, &view, why, sizeof(why)) < 0) {
		ret = invalid(ctx, token_file, why);
		goto out;
	}
	if (memcmp(view.challenge, chal, 64) != 0) {
		snprintf(why, sizeof(why), "challenge %s is not the one expected",
			 measure_hex(view.challenge, view.challenge_len, hex));
		ret = invalid(ctx, token_file, why);
		goto out;
	}
	if (rim_hex && ((size_t)rim_len != view.rim_len || memcmp(view.rim, rim, view.rim_len) != 0)) {
		snprintf(why, sizeof(why), "RIM %s is not the expected one", measure_hex(view.rim, view.rim_len, hex));
		ret = invalid(ctx, token_file, why);
		goto out;
	}
	if (ctx->json)
		print_json(&view);
	else
		print_text(&view, key_file ? key_file : "virtmgrd's platform key");
	ret = VMCTL_EXIT_OK;
out:
	free(tok);
	EVP_PKEY_free(key);
	return ret;
}
