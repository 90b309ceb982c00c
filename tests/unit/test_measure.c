/* test_measure.c - the launch measurement chain: the documented record
 * format recomputed by hand, each input changing the value, sha-384, the
 * fds' offsets left alone, and unreadable inputs named.
 */
#include "config.h"

#include <criterion/criterion.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "server/measure.h"

static int memfile(const char *content)
{
	int fd = memfd_create("m", MFD_CLOEXEC);

	cr_assert_geq(fd, 0);
	cr_assert_eq(write(fd, content, strlen(content)), (ssize_t)strlen(content));
	return fd;
}

static const char *argv1[] = { "/bin/true", "a b" };
static const char *env1[] = { "K=V" };

static void base(struct measure_input *in, int kfd, int ifd)
{
	memset(in, 0, sizeof(*in));
	in->memory_mib = 256;
	in->cpus = 1;
	in->kernel_fd = kfd;
	in->initrd_fd = ifd;
	in->cmdline = "quiet";
	in->argv = argv1;
	in->argc = 2;
	in->env = env1;
	in->envc = 1;
	in->cwd = "/";
}

static void rim(const struct measure_input *in, uint8_t *out, size_t *len)
{
	char err[256];

	cr_assert_eq(measure_launch(in, out, len, err, sizeof(err)), 0, "%s", err);
}

static void sha256(const void *d, size_t n, uint8_t *out)
{
	unsigned int l;

	EVP_Digest(d, n, out, &l, EVP_sha256(), NULL);
}

/* RIM = H(RIM || kind || name[32] || be64 len || H(content)) */
static void ext(uint8_t *r, int kind, const char *name, const void *content, size_t n)
{
	uint8_t buf[32 + 1 + 32 + 8 + 32] = { 0 };

	memcpy(buf, r, 32);
	buf[32] = (uint8_t)kind;
	memcpy(buf + 33, name, strlen(name));
	for (int i = 0; i < 8; i++)
		buf[65 + i] = (uint8_t)((uint64_t)n >> (56 - 8 * i));
	sha256(content, n, buf + 73);
	sha256(buf, sizeof(buf), r);
}

Test(measure, documented_chain)
{
	int k = memfile("KERNEL"), i = memfile("INITRD");
	static const uint8_t payload[] = {
		0,   0,	  0,   2,   0,	 0, 0, 9, '/', 'b', 'i', 'n',
		'/', 't', 'r', 'u', 'e', 0, 0, 0, 3,   'a', ' ', 'b', /* argv */
		0,   0,	  0,   1,   0,	 0, 0, 3, 'K', '=', 'V',      /* env */
		0,   0,	  0,   1,   '/',			      /* cwd */
		0,   0,	  0,   0,   0,	 0, 0, 0, 0,		      /* no user */
	};
	const char *desc =
		"virtmgr-rim-v1\nhash=sha-256\nmemory_mib=256\ncpus=1\nmachine=pc\n"
		"accel_class=unprotected\n";
	struct measure_input in;
	uint8_t got[64], want[32];
	size_t len;

	base(&in, k, i);
	rim(&in, got, &len);
	cr_assert_eq(len, 32);
	sha256(desc, strlen(desc), want);
	ext(want, MEASURE_KERNEL, "kernel", "KERNEL", 6);
	ext(want, MEASURE_INITRD, "initrd", "INITRD", 6);
	ext(want, MEASURE_CMDLINE, "cmdline", "quiet", 5);
	ext(want, MEASURE_PAYLOAD, "payload", payload, sizeof(payload));
	cr_assert_arr_eq(got, want, 32);
	/* the offsets are QEMU's business: untouched */
	cr_assert_eq(lseek(k, 0, SEEK_CUR), 6);
	close(k);
	close(i);
}

Test(measure, every_input_counts)
{
	int k = memfile("KERNEL"), i = memfile("INITRD"), k2 = memfile("KERNEL!"), d = memfile("DISK");
	static const char *argv2[] = { "/bin/true", "a  b" };
	struct measure_disk disk = { .label = "root", .fd = d };
	struct measure_input in;
	uint8_t ref[64], v[64];
	size_t len, len2;

	base(&in, k, i);
	rim(&in, ref, &len);
#define CHANGED(stmt)                                                                 \
	do {                                                                          \
		base(&in, k, i);                                                      \
		stmt;                                                                 \
		rim(&in, v, &len2);                                                   \
		cr_assert(len2 != len || memcmp(v, ref, len), "unchanged by " #stmt); \
	} while (0)
	CHANGED(in.memory_mib = 512);
	CHANGED(in.cpus = 2);
	CHANGED(in.kernel_fd = k2);
	CHANGED(in.initrd_fd = -1);
	CHANGED(in.cmdline = "quiet ");
	CHANGED(in.argv = argv2);
	CHANGED(in.argc = 1);
	CHANGED(in.envc = 0);
	CHANGED(in.cwd = "/tmp");
	CHANGED(in.has_user = true);
	CHANGED((in.has_user = true, in.uid = 1000));
	CHANGED((in.disks = &disk, in.ndisks = 1));
	CHANGED(in.hash_alg = "sha-384");
	/* and nothing else: the same inputs give the same value */
	base(&in, k, i);
	rim(&in, v, &len2);
	cr_assert_arr_eq(v, ref, len);
	/* a disk's label is part of it */
	base(&in, k, i);
	in.disks = &disk;
	in.ndisks = 1;
	rim(&in, ref, &len);
	disk.label = "other";
	rim(&in, v, &len2);
	cr_assert(memcmp(v, ref, len));
	close(k);
	close(i);
	close(k2);
	close(d);
}

Test(measure, sha384_and_errors)
{
	int k = memfile("KERNEL"), p[2];
	struct measure_input in;
	uint8_t v[64];
	size_t len;
	char err[256];

	base(&in, k, -1);
	in.hash_alg = "sha-384";
	rim(&in, v, &len);
	cr_assert_eq(len, 48);
	cr_assert_eq(measure_hash_size("sha-384"), 48);
	cr_assert_eq(measure_hash_size(NULL), 32);
	cr_assert_eq(measure_hash_size("md5"), 0);
	in.hash_alg = "sha-1";
	cr_assert_eq(measure_launch(&in, v, &len, err, sizeof(err)), -1);
	cr_assert(strstr(err, "sha-1"), "%s", err);
	in.hash_alg = NULL;
	cr_assert_eq(pipe(p), 0);
	in.initrd_fd = p[0];
	cr_assert_eq(measure_launch(&in, v, &len, err, sizeof(err)), -1);
	cr_assert(strstr(err, "initrd: cannot measure it: not a regular file"), "%s", err);
	/* endless input is refused, not hashed forever */
	in.initrd_fd = open("/dev/zero", O_RDONLY | O_CLOEXEC);
	cr_assert_geq(in.initrd_fd, 0);
	cr_assert_eq(measure_launch(&in, v, &len, err, sizeof(err)), -1);
	cr_assert(strstr(err, "initrd: cannot measure it"), "%s", err);
	close(in.initrd_fd);
	/* a sparse file over the limit */
	{
		int big = memfd_create("big", MFD_CLOEXEC);

		cr_assert_eq(ftruncate(big, (off_t)MEASURE_MAX_ITEM + 1), 0);
		in.initrd_fd = big;
		cr_assert_eq(measure_launch(&in, v, &len, err, sizeof(err)), -1);
		cr_assert(strstr(err, "more than the 1073741824"), "%s", err);
		close(big);
	}
	in.initrd_fd = -1;
	in.kernel_fd = -1;
	cr_assert_eq(measure_launch(&in, v, &len, err, sizeof(err)), -1);
	cr_assert(strstr(err, "kernel"), "%s", err);
	close(p[0]);
	close(p[1]);
	close(k);
}

Test(measure, extend)
{
	uint8_t rem[48] = { 0 }, want[32], buf[32 + 3] = { 0 };

	memcpy(buf + 32, "abc", 3);
	sha256(buf, sizeof(buf), want);
	cr_assert_eq(measure_extend("sha-256", rem, (const uint8_t *)"abc", 3), 0);
	cr_assert_arr_eq(rem, want, 32);
	cr_assert_eq(measure_extend("sha-1", rem, NULL, 0), -1);
}
