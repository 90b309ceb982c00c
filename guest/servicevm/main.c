/* servicevm - the Service VM's program, PID 1 of its initramfs.
 *
 * Design (AVF's service_vm/rialto, without the protected-VM parts). The
 * program boots as /init: it mounts the pseudo file systems, loads the
 * modules in /lib/modules/load-order, opens the instance disk (the one
 * virtio disk, 1 MiB, /dev/vda) and takes its two keys from it, or makes
 * them at the first start: the platform key, which signs the platform
 * token, and the realm attestation key, whose COSE_Key is the realm token's
 * claim 44237 and which signs the realm token. Both are ECDSA P-384 (ES384).
 * They never leave this VM: the daemon gets only the platform public key.
 *
 * Then it connects to the host (vsock CID 2, port SVM_PORT) and answers
 * requests, one CBOR item each way, in serde's external tagging (see
 * server/servicevm_proto.h and docs/attestation.md, "The Service VM"):
 *   {"Process": {"Reverse": bstr}}        -> {"Reverse": bstr}
 *   {"Process": "GetPlatformKey"}         -> {"GetPlatformKey": bstr (SPKI DER)}
 *   {"Process": {"SignRealmToken": {...}}} -> {"SignRealmToken": bstr (token)}
 *   "Shutdown"                            -> (no answer) power off
 * and {"Err": uint} for a request it cannot process. Whatever the host
 * sends is bounded (SVM_MAX_MSG) and checked; a malformed request gets an
 * error answer, a connection lost powers the VM off.
 *
 * Instance disk layout (raw, little-endian): "VMGRSVM1", u32 length of the
 * platform key, u32 length of the realm key, then both private keys as DER
 * (i2d_PrivateKey), written once and fsync()ed.
 */
#define _GNU_SOURCE
#include <cbor.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/vm_sockets.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "guest/modload.h"
#include "guest/servicevm/servicevm_proto.h"
#include "lib/ccatoken.h"
#include "lib/cose.h"

#define SVM_DISK "/dev/vda"
#define SVM_MAGIC "VMGRSVM1"
#define SVM_KEY_MAX 1024

static EVP_PKEY *platform_key, *realm_key;
/* servicevm.delay_ms=N on the kernel command line: wait so long before
 * each answer (the daemon's test hook, so a test can kill the VM while a
 * request is in flight) */
static unsigned delay_ms;
/* servicevm.fault=garbage|oversize|variant: answer wrongly (the daemon's
 * test hook: the host must treat it as this VM's failure) */
static char fault[16];
static uint8_t *platform_spki;
static size_t platform_spki_len;

static void say(const char *fmt, ...)
{
	va_list ap;

	fputs("servicevm: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

static void power_off(void)
{
	sync();
	reboot(RB_POWER_OFF);
	_exit(1);
}

static void read_cmdline(void)
{
	char buf[4096];
	const char *p;
	FILE *f = fopen("/proc/cmdline", "re");
	size_t n;

	if (!f)
		return;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = 0;
	p = strstr(buf, "servicevm.delay_ms=");
	if (p)
		delay_ms = (unsigned)strtoul(p + strlen("servicevm.delay_ms="), NULL, 10) % 600000;
	p = strstr(buf, "servicevm.fault=");
	if (p)
		sscanf(p + strlen("servicevm.fault="), "%15[a-z]", fault);
}

static int write_all(int fd, const uint8_t *p, size_t n);

/* What a faulty Service VM sends instead of @resp. Return: 0, or -1 to stop. */
static int send_fault(int fd)
{
	static uint8_t big[SVM_MAX_MSG + 4096];
	size_t n;

	if (!strcmp(fault, "garbage")) {
		/* an array header declaring 2^36 items (a parser that believes
		 * it allocates terabytes), then "break" codes */
		static const uint8_t huge[] = { 0x9b, 0, 0, 0, 0x10, 0, 0, 0, 0 };

		memset(big, 0xff, 64);
		memcpy(big, huge, sizeof(huge));
		n = 64;
	} else if (!strcmp(fault, "oversize")) {
		/* a byte string header announcing more than the host takes, then the bytes */
		big[0] = 0x5a;
		big[1] = 0;
		big[2] = 0x01;
		big[3] = 0x10;
		big[4] = 0;
		n = sizeof(big);
	} else {
		/* an answer to a request nobody made */
		static const uint8_t variant[] = { 0xa1, 0x6e, 'S', 'i', 'g', 'n', 'R', 'e', 'a',
						   'l',	 'm',  'T', 'o', 'k', 'e', 'n', 0x40 };

		memcpy(big, variant, sizeof(variant));
		n = sizeof(variant);
	}
	return write_all(fd, big, n);
}

static void module_failed(void *opaque, const char *module, int err)
{
	(void)opaque;
	say("module %s: %s", module, strerror(err));
}

static void init_system(void)
{
	int fd;

	mount("devtmpfs", "/dev", "devtmpfs", MS_NOSUID, "mode=0755");
	mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
	mount("sysfs", "/sys", "sysfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
	fd = open("/dev/console", O_RDWR | O_CLOEXEC);
	if (fd >= 0) {
		dup2(fd, 1);
		dup2(fd, 2);
		if (fd > 2)
			close(fd);
	}
	modload_list("/lib/modules/load-order", module_failed, NULL);
}

/* ---------------------------------------------------------------- keys */

static EVP_PKEY *key_from_der(const uint8_t *p, size_t len)
{
	const unsigned char *q = p;

	return d2i_AutoPrivateKey(NULL, &q, (long)len);
}

static int keys_load_or_make(void)
{
	uint8_t hdr[16], *buf = NULL;
	uint32_t lp, lr;
	int fd = -1, r = -1;

	for (int i = 0; i < 100 && fd < 0; i++) {
		fd = open(SVM_DISK, O_RDWR | O_CLOEXEC);
		if (fd < 0)
			usleep(100000);
	}
	if (fd < 0) {
		say("cannot open the instance disk %s: %s", SVM_DISK, strerror(errno));
		return -1;
	}
	if (pread(fd, hdr, sizeof(hdr), 0) == (ssize_t)sizeof(hdr) && !memcmp(hdr, SVM_MAGIC, 8)) {
		memcpy(&lp, hdr + 8, 4);
		memcpy(&lr, hdr + 12, 4);
		if (lp == 0 || lr == 0 || lp > SVM_KEY_MAX || lr > SVM_KEY_MAX) {
			say("instance disk: bad key lengths %u, %u", lp, lr);
			goto out;
		}
		buf = malloc((size_t)lp + lr);
		if (!buf || pread(fd, buf, (size_t)lp + lr, sizeof(hdr)) != (ssize_t)(lp + lr)) {
			say("instance disk: short read");
			goto out;
		}
		platform_key = key_from_der(buf, lp);
		realm_key = key_from_der(buf + lp, lr);
		if (!platform_key || !realm_key) {
			say("instance disk: keys do not decode");
			goto out;
		}
		say("keys loaded from the instance disk");
	} else {
		unsigned char *dp = NULL, *dr = NULL;
		int np, nr;

		platform_key = cose_ec_generate(384);
		realm_key = cose_ec_generate(384);
		if (!platform_key || !realm_key) {
			say("key generation failed");
			goto out;
		}
		np = i2d_PrivateKey(platform_key, &dp);
		nr = i2d_PrivateKey(realm_key, &dr);
		if (np <= 0 || nr <= 0 || np > SVM_KEY_MAX || nr > SVM_KEY_MAX) {
			say("key encoding failed");
			goto out;
		}
		lp = (uint32_t)np;
		lr = (uint32_t)nr;
		memcpy(hdr, SVM_MAGIC, 8);
		memcpy(hdr + 8, &lp, 4);
		memcpy(hdr + 12, &lr, 4);
		buf = malloc(sizeof(hdr) + lp + lr);
		memcpy(buf, hdr, sizeof(hdr));
		memcpy(buf + sizeof(hdr), dp, lp);
		memcpy(buf + sizeof(hdr) + lp, dr, lr);
		OPENSSL_free(dp);
		OPENSSL_free(dr);
		if (pwrite(fd, buf, sizeof(hdr) + lp + lr, 0) != (ssize_t)(sizeof(hdr) + lp + lr) || fsync(fd) < 0) {
			say("instance disk: write failed: %s", strerror(errno));
			goto out;
		}
		say("new keys made and stored on the instance disk");
	}
	{
		unsigned char *p = NULL;
		int n = i2d_PUBKEY(platform_key, &p);

		if (n <= 0)
			goto out;
		platform_spki = p;
		platform_spki_len = (size_t)n;
	}
	r = 0;
out:
	free(buf);
	close(fd);
	return r;
}

/* ---------------------------------------------------------------- requests */

static cbor_item_t *answer(const char *variant, cbor_item_t *value)
{
	cbor_item_t *m = cbor_new_definite_map(1);

	cbor_map_add(m, (struct cbor_pair){ .key = cbor_move(cbor_build_string(variant)), .value = cbor_move(value) });
	return m;
}

static cbor_item_t *error_answer(enum svm_error code)
{
	return answer("Err", cbor_build_uint32((uint32_t)code));
}

static cbor_item_t *map_get(cbor_item_t *map, const char *key)
{
	size_t n;
	struct cbor_pair *p;

	if (!cbor_isa_map(map))
		return NULL;
	n = cbor_map_size(map);
	p = cbor_map_handle(map);
	for (size_t i = 0; i < n; i++)
		if (cbor_isa_string(p[i].key) && cbor_string_is_definite(p[i].key) &&
		    cbor_string_length(p[i].key) == strlen(key) &&
		    !memcmp(cbor_string_handle(p[i].key), key, strlen(key)))
			return p[i].value;
	return NULL;
}

/* A definite byte string of at most @max bytes into @out. Return: its length, or -1. */
static ssize_t get_bytes(cbor_item_t *it, uint8_t *out, size_t max)
{
	if (!it || !cbor_isa_bytestring(it) || !cbor_bytestring_is_definite(it) || cbor_bytestring_length(it) > max)
		return -1;
	memcpy(out, cbor_bytestring_handle(it), cbor_bytestring_length(it));
	return (ssize_t)cbor_bytestring_length(it);
}

static int get_text(cbor_item_t *it, char *out, size_t max)
{
	if (!it || !cbor_isa_string(it) || !cbor_string_is_definite(it) || cbor_string_length(it) >= max)
		return -1;
	memcpy(out, cbor_string_handle(it), cbor_string_length(it));
	out[cbor_string_length(it)] = 0;
	return 0;
}

static cbor_item_t *do_reverse(cbor_item_t *arg)
{
	size_t n;
	uint8_t *out;
	cbor_item_t *r;

	if (!cbor_isa_bytestring(arg) || !cbor_bytestring_is_definite(arg))
		return error_answer(SVM_ERR_INVALID_REQUEST);
	n = cbor_bytestring_length(arg);
	out = malloc(n ? n : 1);
	for (size_t i = 0; i < n; i++)
		out[i] = cbor_bytestring_handle(arg)[n - 1 - i];
	r = cbor_build_bytestring(out, n);
	free(out);
	return answer("Reverse", r);
}

static cbor_item_t *do_sign(cbor_item_t *arg)
{
	struct cca_realm_claims realm = { 0 };
	struct cca_platform_claims plat = { 0 };
	char hash_alg[16], types[CCA_MAX_SW][64], versions[CCA_MAX_SW][64], err[256];
	cbor_item_t *rems, *sw, *r;
	uint8_t *token = NULL, digest[EVP_MAX_MD_SIZE];
	size_t token_len;
	ssize_t n;
	unsigned dlen;

	if (!cbor_isa_map(arg))
		return error_answer(SVM_ERR_INVALID_REQUEST);
	n = get_bytes(map_get(arg, "challenge"), realm.challenge, 64);
	if (n < 32)
		return error_answer(SVM_ERR_INVALID_REQUEST);
	realm.challenge_len = (size_t)n;
	if (get_bytes(map_get(arg, "personalization"), realm.personalization, 64) != 64)
		return error_answer(SVM_ERR_INVALID_REQUEST);
	if (get_text(map_get(arg, "hash_alg"), hash_alg, sizeof(hash_alg)) < 0 || !cca_hash_alg_md(hash_alg))
		return error_answer(SVM_ERR_INVALID_REQUEST);
	realm.hash_alg = hash_alg;
	realm.measurement_len = (size_t)EVP_MD_get_size(cca_hash_alg_md(hash_alg));
	if (get_bytes(map_get(arg, "rim"), realm.rim, 64) != (ssize_t)realm.measurement_len)
		return error_answer(SVM_ERR_INVALID_REQUEST);
	rems = map_get(arg, "rems");
	if (!rems || !cbor_isa_array(rems) || cbor_array_size(rems) != 4)
		return error_answer(SVM_ERR_INVALID_REQUEST);
	for (size_t i = 0; i < 4; i++)
		if (get_bytes(cbor_array_handle(rems)[i], realm.rem[i], 64) != (ssize_t)realm.measurement_len)
			return error_answer(SVM_ERR_INVALID_REQUEST);
	/* platform: the host names the software it runs (its own binary, this
	 * VM's image); each [type, measurement, version] */
	sw = map_get(arg, "platform_sw");
	if (!sw || !cbor_isa_array(sw) || cbor_array_size(sw) > CCA_MAX_SW)
		return error_answer(SVM_ERR_INVALID_REQUEST);
	for (size_t i = 0; i < cbor_array_size(sw); i++) {
		cbor_item_t *c = cbor_array_handle(sw)[i];

		if (!cbor_isa_array(c) || cbor_array_size(c) != 3 ||
		    get_text(cbor_array_handle(c)[0], types[i], sizeof(types[i])) < 0 ||
		    (n = get_bytes(cbor_array_handle(c)[1], plat.sw[i].measurement, 64)) <= 0 ||
		    get_text(cbor_array_handle(c)[2], versions[i], sizeof(versions[i])) < 0)
			return error_answer(SVM_ERR_INVALID_REQUEST);
		plat.sw[i].type = types[i];
		plat.sw[i].version = versions[i];
		plat.sw[i].measurement_len = (size_t)n;
		plat.sw[i].hash_alg = n == 48 ? "sha-384" : n == 64 ? "sha-512" : "sha-256";
		/* signer: the platform key's own hash, as nothing else signs them */
		EVP_Digest(platform_spki, platform_spki_len, digest, &dlen, EVP_sha256(), NULL);
		memcpy(plat.sw[i].signer_id, digest, dlen);
		plat.sw[i].signer_id_len = dlen;
	}
	plat.n_sw = cbor_array_size(sw);
	EVP_Digest(SVM_IMPLEMENTATION, strlen(SVM_IMPLEMENTATION), digest, &dlen, EVP_sha256(), NULL);
	memcpy(plat.implementation_id, digest, 32);
	plat.instance_id[0] = 0x01; /* UEID type RAND, then the hash of the platform key */
	EVP_Digest(platform_spki, platform_spki_len, digest, &dlen, EVP_sha256(), NULL);
	memcpy(plat.instance_id + 1, digest, 32);
	plat.lifecycle = CCA_LIFECYCLE_NON_CCA_PLATFORM_DEBUG;
	plat.hash_alg = "sha-256";
	if (cca_token_make(&realm, realm_key, &plat, platform_key, &token, &token_len, err, sizeof(err)) < 0) {
		say("token: %s", err);
		return error_answer(SVM_ERR_INTERNAL);
	}
	r = cbor_build_bytestring(token, token_len);
	free(token);
	return answer("SignRealmToken", r);
}

static cbor_item_t *process(cbor_item_t *req, bool *shutdown)
{
	cbor_item_t *p;
	char name[32];

	if (cbor_isa_string(req)) {
		if (get_text(req, name, sizeof(name)) == 0 && !strcmp(name, "Shutdown")) {
			*shutdown = true;
			return NULL;
		}
		return error_answer(SVM_ERR_INVALID_REQUEST);
	}
	p = map_get(req, "Process");
	if (!p)
		return error_answer(SVM_ERR_INVALID_REQUEST);
	if (cbor_isa_string(p)) {
		if (get_text(p, name, sizeof(name)) == 0 && !strcmp(name, "GetPlatformKey"))
			return answer("GetPlatformKey", cbor_build_bytestring(platform_spki, platform_spki_len));
		return error_answer(SVM_ERR_INVALID_REQUEST);
	}
	if (!cbor_isa_map(p) || cbor_map_size(p) != 1)
		return error_answer(SVM_ERR_INVALID_REQUEST);
	if (map_get(p, "Reverse"))
		return do_reverse(map_get(p, "Reverse"));
	if (map_get(p, "SignRealmToken"))
		return do_sign(map_get(p, "SignRealmToken"));
	return error_answer(SVM_ERR_INVALID_REQUEST);
}

static int write_all(int fd, const uint8_t *p, size_t n)
{
	while (n) {
		ssize_t w = write(fd, p, n);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

static int host_connect(void)
{
	struct sockaddr_vm sa = { .svm_family = AF_VSOCK, .svm_cid = VMADDR_CID_HOST, .svm_port = SVM_PORT };

	for (int i = 0; i < 600; i++) {
		int fd = socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC, 0);

		if (fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0)
			return fd;
		if (fd >= 0)
			close(fd);
		usleep(100000);
	}
	say("cannot connect to the host on vsock port %u: %s", SVM_PORT, strerror(errno));
	return -1;
}

static void serve(int fd)
{
	static uint8_t buf[SVM_MAX_MSG];
	size_t have = 0;

	for (;;) {
		struct cbor_load_result res;
		cbor_item_t *req, *resp;
		bool shutdown = false;
		ssize_t n;

		if (have) {
			req = cbor_load(buf, have, &res);
			if (req) {
				memmove(buf, buf + res.read, have - res.read);
				have -= res.read;
				resp = process(req, &shutdown);
				cbor_decref(&req);
				if (delay_ms && !shutdown)
					usleep(delay_ms * 1000u);
				if (shutdown) {
					say("shutdown requested");
					return;
				}
				if (fault[0]) {
					cbor_decref(&resp);
					if (send_fault(fd) < 0)
						return;
					continue;
				}
				{
					unsigned char *out = NULL;
					size_t outsz = 0, len = cbor_serialize_alloc(resp, &out, &outsz);

					cbor_decref(&resp);
					if (!len || write_all(fd, out, len) < 0) {
						free(out);
						return;
					}
					free(out);
				}
				continue;
			}
			if (res.error.code != CBOR_ERR_NOTENOUGHDATA) {
				say("malformed request (CBOR error %d at %zu)", (int)res.error.code,
				    res.error.position);
				return;
			}
		}
		if (have == sizeof(buf)) {
			say("request larger than %u bytes", (unsigned)SVM_MAX_MSG);
			return;
		}
		n = read(fd, buf + have, sizeof(buf) - have);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			say("host connection closed");
			return;
		}
		have += (size_t)n;
	}
}

int main(void)
{
	int fd;

	init_system();
	read_cmdline();
	if (keys_load_or_make() < 0)
		power_off();
	fd = host_connect();
	if (fd < 0)
		power_off();
	say("serving the host on vsock port %u", SVM_PORT);
	serve(fd);
	close(fd);
	power_off();
	return 0;
}
