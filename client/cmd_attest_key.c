/* cmd_attest_key.c - `vmctl attest`, and its `platform-key` subcommand:
 * the Service VM's platform public key (GetPlatformKey) as PEM
 * SubjectPublicKeyInfo, the key a relying party checks platform tokens
 * with (docs/attestation.md). The daemon starts the Service VM if needed,
 * so the first call can take as long as a boot.
 */
#include "config.h"
#include "client/vmctl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client/cmd_attest.h"
#include "client/json.h"

const char cmd_attest_help[] =
	"Usage: vmctl attest platform-key [--der]\n"
	"       vmctl attest verify TOKEN --challenge HEX [--expect-rim HEX] [--key FILE]\n"
	"\n"
	"platform-key  print the Service VM's platform public key, PEM\n"
	"              SubjectPublicKeyInfo (--der: raw DER on stdout); starts the\n"
	"              Service VM if it is not running\n"
	"verify        check an attestation token (see docs/attestation.md)\n"
	"\n"
	"Options:\n"
	"  -h, --help   this help\n"
	"With the global --json, platform-key prints {\"pem\": \"...\"}.\n";

static void pem_write(FILE *f, const uint8_t *der, size_t len, char **out)
{
	static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	size_t cap = 64 + len * 2, n = 0, col = 0;
	char *s = malloc(cap);

	n += (size_t)snprintf(s + n, cap - n, "-----BEGIN PUBLIC KEY-----\n");
	for (size_t i = 0; i < len; i += 3) {
		uint32_t v = (uint32_t)der[i] << 16 | (i + 1 < len ? (uint32_t)der[i + 1] << 8 : 0) |
			     (i + 2 < len ? der[i + 2] : 0);
		char q[4] = { b64[v >> 18 & 63], b64[v >> 12 & 63], i + 1 < len ? b64[v >> 6 & 63] : '=',
			      i + 2 < len ? b64[v & 63] : '=' };

		memcpy(s + n, q, 4);
		n += 4;
		col += 4;
		if (col == 64) {
			s[n++] = '\n';
			col = 0;
		}
	}
	if (col)
		s[n++] = '\n';
	n += (size_t)snprintf(s + n, cap - n, "-----END PUBLIC KEY-----\n");
	if (f)
		fputs(s, f);
	if (out)
		*out = s;
	else
		free(s);
}

int cmd_attest_platform_key(struct vmctl_ctx *ctx, int argc, char **argv)
{
	struct vmc_error err = { 0 };
	struct vmc_client *cl;
	uint8_t *der = NULL;
	size_t len = 0;
	bool raw = false;
	int ret = VMCTL_EXIT_OK;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--der")) {
			raw = true;
		} else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
			fputs(cmd_attest_help, stdout);
			return VMCTL_EXIT_OK;
		} else {
			struct vm_error perr = { 0 };

			vm_error_set(&perr, VM_INVALID_ARGUMENT, "platform-key: unexpected argument '%s'", argv[i]);
			return vmctl_usage_error("attest", &perr);
		}
	}
	cl = vmctl_connect(ctx);
	if (!cl)
		return VMCTL_EXIT_USAGE;
	if (vmc_get_platform_key(cl, &der, &len, &err) < 0) {
		ret = vmctl_rpc_error(&err);
	} else if (raw) {
		fwrite(der, 1, len, stdout);
	} else if (ctx->json) {
		struct json_obj o;
		char *pem = NULL;

		pem_write(NULL, der, len, &pem);
		json_begin(&o, stdout);
		json_str(&o, "pem", pem);
		json_end(&o);
		free(pem);
	} else {
		pem_write(stdout, der, len, NULL);
	}
	free(der);
	vmc_close(cl);
	return ret;
}

int cmd_attest(struct vmctl_ctx *ctx, int argc, char **argv)
{
	struct vm_error perr = { 0 };

	if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
		fputs(cmd_attest_help, argc < 2 ? stderr : stdout);
		return argc < 2 ? VMCTL_EXIT_USAGE : VMCTL_EXIT_OK;
	}
	if (!strcmp(argv[1], "platform-key"))
		return cmd_attest_platform_key(ctx, argc - 1, argv + 1);
	if (!strcmp(argv[1], "verify"))
		return cmd_attest_verify(ctx, argc - 1, argv + 1);
	vm_error_set(&perr, VM_INVALID_ARGUMENT, "unknown attest subcommand '%s'", argv[1]);
	return vmctl_usage_error("attest", &perr);
}
