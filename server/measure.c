/* measure.c - the launch measurement hash chain (server/measure.h).
 *
 * Shape, as in CCA's RIM: a running value, started from the hash of the
 * launch-parameter descriptor and extended once per item with a fixed-size
 * record that holds the old value and the item's own hash:
 *
 *   RIM0 = H("virtmgr-rim-v1\nhash=ALG\nmemory_mib=N\ncpus=N\n"
 *            "machine=pc\naccel_class=unprotected\n")
 *   RIM  = H(RIM || kind (1 byte) || name (32 bytes, NUL-padded) ||
 *            length (8 bytes, big-endian) || H(content))
 *
 * Items: kernel, initrd, cmdline, payload (an unambiguous length-prefixed
 * encoding of argv, env, cwd and user), then each measured disk by label.
 * Files are hashed through pread(), 1 MiB at a time: the fds are QEMU's
 * afterwards and keep their offsets.
 */
#include "config.h"
#include "server/measure.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <linux/fs.h>

#include <openssl/evp.h>

static int m_err(char *err, size_t errsz, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int m_err(char *err, size_t errsz, const char *fmt, ...)
{
	va_list ap;

	if (err && errsz) {
		va_start(ap, fmt);
		vsnprintf(err, errsz, fmt, ap);
		va_end(ap);
	}
	return -1;
}

#define MIN_U64(a, b) ((uint64_t)(a) < (uint64_t)(b) ? (uint64_t)(a) : (uint64_t)(b))

static const EVP_MD *md_of(const char *alg)
{
	if (!alg || !*alg || !strcmp(alg, "sha-256"))
		return EVP_sha256();
	if (!strcmp(alg, "sha-384"))
		return EVP_sha384();
	return NULL;
}

size_t measure_hash_size(const char *alg)
{
	const EVP_MD *md = md_of(alg);

	return md ? (size_t)EVP_MD_get_size(md) : 0;
}

char *measure_hex(const uint8_t *b, size_t len, char *out)
{
	static const char digits[] = "0123456789abcdef";

	for (size_t i = 0; i < len; i++) {
		out[2 * i] = digits[b[i] >> 4];
		out[2 * i + 1] = digits[b[i] & 15];
	}
	out[2 * len] = '\0';
	return out;
}

int measure_extend(const char *alg, uint8_t *rem, const uint8_t *data, size_t len)
{
	const EVP_MD *md = md_of(alg);
	EVP_MD_CTX *ctx;
	size_t n;
	int ok;

	if (!md)
		return -1;
	n = (size_t)EVP_MD_get_size(md);
	ctx = EVP_MD_CTX_new();
	ok = ctx && EVP_DigestInit_ex(ctx, md, NULL) == 1 && EVP_DigestUpdate(ctx, rem, n) == 1 &&
	     (len == 0 || EVP_DigestUpdate(ctx, data, len) == 1) && EVP_DigestFinal_ex(ctx, rem, NULL) == 1;
	EVP_MD_CTX_free(ctx);
	return ok ? 0 : -1;
}

/* A growable byte buffer for the payload encoding. */
struct buf {
	uint8_t *p;
	size_t len, cap;
};

static void buf_add(struct buf *b, const void *data, size_t n)
{
	if (b->len + n > b->cap) {
		size_t cap = b->cap ? b->cap : 256;

		while (cap < b->len + n)
			cap *= 2;
		b->p = realloc(b->p, cap);
		if (!b->p)
			abort();
		b->cap = cap;
	}
	if (n)
		memcpy(b->p + b->len, data, n);
	b->len += n;
}

static void buf_u32(struct buf *b, uint32_t v)
{
	uint8_t be[4] = { (uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v };

	buf_add(b, be, 4);
}

static void buf_str(struct buf *b, const char *s)
{
	size_t n = s ? strlen(s) : 0;

	buf_u32(b, (uint32_t)n);
	buf_add(b, s, n);
}

static void buf_list(struct buf *b, const char *const *v, size_t n)
{
	buf_u32(b, (uint32_t)n);
	for (size_t i = 0; i < n; i++)
		buf_str(b, v[i]);
}

/* RIM = H(RIM || kind || name[32] || be64 len || H(content)); content is
 * @data/@len, or the whole file @fd when @data is NULL and @fd >= 0. */
static int extend_item(const EVP_MD *md, uint8_t *rim, enum measure_kind kind, const char *name, const void *data,
		       size_t len, int fd, char *err, size_t errsz)
{
	uint8_t rec[1 + 32 + 8], inner[EVP_MAX_MD_SIZE];
	size_t n = (size_t)EVP_MD_get_size(md);
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	uint64_t total = 0;
	int rc = -1;

	if (!ctx || EVP_DigestInit_ex(ctx, md, NULL) != 1)
		goto fail;
	if (data || fd < 0) {
		if (len && EVP_DigestUpdate(ctx, data, len) != 1)
			goto fail;
		total = len;
	} else {
		size_t bufsz = 1 << 20;
		uint64_t size;
		struct stat st;
		uint8_t *b;

		/* only what has a size: /dev/zero or a FIFO would never end */
		if (fstat(fd, &st) < 0)
			return m_err(err, errsz, "%s: cannot measure it: fstat: %s", name, strerror(errno));
		if (S_ISREG(st.st_mode))
			size = (uint64_t)st.st_size;
		else if (!S_ISBLK(st.st_mode) || ioctl(fd, BLKGETSIZE64, &size) < 0)
			return m_err(err, errsz, "%s: cannot measure it: not a regular file or block device", name);
		if (size > MEASURE_MAX_ITEM)
			return m_err(err, errsz, "%s: %llu bytes, more than the %llu a measured item may have", name,
				     (unsigned long long)size, (unsigned long long)MEASURE_MAX_ITEM);
		b = malloc(bufsz);
		if (!b)
			abort();
		while (total < size) {
			ssize_t r = pread(fd, b, (size_t)MIN_U64(bufsz, size - total), (off_t)total);

			if (r < 0 && errno == EINTR)
				continue;
			if (r < 0) {
				free(b);
				EVP_MD_CTX_free(ctx);
				return m_err(err, errsz, "%s: cannot read it to measure it: %s", name, strerror(errno));
			}
			if (r == 0)
				break;
			if (EVP_DigestUpdate(ctx, b, (size_t)r) != 1) {
				free(b);
				goto fail;
			}
			total += (uint64_t)r;
		}
		free(b);
	}
	if (EVP_DigestFinal_ex(ctx, inner, NULL) != 1)
		goto fail;
	memset(rec, 0, sizeof(rec));
	rec[0] = (uint8_t)kind;
	memcpy(rec + 1, name, strnlen(name, 32));
	for (int i = 0; i < 8; i++)
		rec[33 + i] = (uint8_t)(total >> (56 - 8 * i));
	if (EVP_DigestInit_ex(ctx, md, NULL) != 1 || EVP_DigestUpdate(ctx, rim, n) != 1 ||
	    EVP_DigestUpdate(ctx, rec, sizeof(rec)) != 1 || EVP_DigestUpdate(ctx, inner, n) != 1 ||
	    EVP_DigestFinal_ex(ctx, rim, NULL) != 1)
		goto fail;
	rc = 0;
fail:
	EVP_MD_CTX_free(ctx);
	if (rc < 0)
		m_err(err, errsz, "%s: hashing failed", name);
	return rc;
}

int measure_launch(const struct measure_input *in, uint8_t *out, size_t *out_len, char *err, size_t errsz)
{
	const EVP_MD *md = md_of(in->hash_alg);
	const char *alg = in->hash_alg && *in->hash_alg ? in->hash_alg : "sha-256";
	char desc[256];
	struct buf pl = { 0 };
	unsigned int n = 0;
	int len;

	if (!md)
		return m_err(err, errsz, "attestation.hash_alg: \"%s\" is neither sha-256 nor sha-384", in->hash_alg);
	if (in->kernel_fd < 0)
		return m_err(err, errsz, "kernel: none to measure");
	len = snprintf(desc, sizeof(desc),
		       "virtmgr-rim-v1\nhash=%s\nmemory_mib=%u\ncpus=%u\nmachine=%s\naccel_class=%s\n", alg,
		       in->memory_mib, in->cpus, MEASURE_MACHINE, MEASURE_ACCEL_CLASS);
	if (EVP_Digest(desc, (size_t)len, out, &n, md, NULL) != 1)
		return m_err(err, errsz, "hashing failed");
	*out_len = n;
	if (extend_item(md, out, MEASURE_KERNEL, "kernel", NULL, 0, in->kernel_fd, err, errsz) < 0 ||
	    extend_item(md, out, MEASURE_INITRD, "initrd", NULL, 0, in->initrd_fd, err, errsz) < 0 ||
	    extend_item(md, out, MEASURE_CMDLINE, "cmdline", in->cmdline ? in->cmdline : "",
			in->cmdline ? strlen(in->cmdline) : 0, -1, err, errsz) < 0)
		return -1;
	buf_list(&pl, in->argv, in->argc);
	buf_list(&pl, in->env, in->envc);
	buf_str(&pl, in->cwd);
	buf_add(&pl, &(uint8_t){ in->has_user ? 1 : 0 }, 1);
	buf_u32(&pl, in->has_user ? in->uid : 0);
	buf_u32(&pl, in->has_user ? in->gid : 0);
	if (extend_item(md, out, MEASURE_PAYLOAD, "payload", pl.p ? pl.p : (uint8_t *)"", pl.len, -1, err, errsz) < 0) {
		free(pl.p);
		return -1;
	}
	free(pl.p);
	for (size_t i = 0; i < in->ndisks; i++) {
		if (!in->disks[i].label || !*in->disks[i].label || strlen(in->disks[i].label) > 32)
			return m_err(err, errsz, "measured disk %zu: no label of 1-32 characters", i);
		if (extend_item(md, out, MEASURE_DISK, in->disks[i].label, NULL, 0, in->disks[i].fd, err, errsz) < 0)
			return -1;
	}
	return 0;
}
