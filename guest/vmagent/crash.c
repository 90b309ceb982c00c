/* crash.c - guest crash collection (docs/crash-reports.md).
 *
 * Design. As ChromeOS's maitred does with crash_reporter, the agent points
 * /proc/sys/kernel/core_pattern at a collector: this same binary, run by
 * the kernel as `/init --collect-core LIMIT %P %i %u %g %s %t %e` with the
 * core on stdin. core_pipe_limit keeps the crashed process (and so
 * /proc/<pid>/exe) around until the collector is done, and bounds how
 * many collectors run at once. RLIMIT_CORE is raised in the agent, so the
 * payload and exec sessions inherit it.
 *
 * The collector connects to host vsock port 7779 (the host knows the VM
 * by the connection, never by what the report says), sends the metadata,
 * then the core gzip-compressed in chunks of at most 64 KiB, cut at LIMIT
 * uncompressed bytes (then marked truncated), then sizes and a CRC. It
 * says on /dev/kmsg what became of the report. It never blocks the crashed
 * process for long: every socket operation has a timeout.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>
#include <linux/vm_sockets.h>
#include <zlib.h>

#include "guest/crash/upload.h"
#include "guest/vmagent/agent.h"
#include "lib/util.h"

#define CRASH_PATTERN_FMT "|/init --collect-core %" PRIu64 " %%P %%i %%u %%g %%s %%t %%e"
#define CRASH_PIPE_LIMIT "4"
#define CRASH_TIMEOUT_S 20

static int write_proc(const char *path, const char *val)
{
	cleanup_close int fd = open(path, O_WRONLY | O_CLOEXEC);

	if (fd < 0 || write_all(fd, val, strlen(val)) < 0)
		return -1;
	return 0;
}

int agent_crash_setup(uint64_t core_limit)
{
	struct rlimit rl = { RLIM_INFINITY, RLIM_INFINITY };
	char pattern[128];

	if (!core_limit)
		core_limit = AGENT_CRASH_CORE_LIMIT;
	snprintf(pattern, sizeof(pattern), CRASH_PATTERN_FMT, core_limit);
	/* the payload and exec sessions are children of the agent */
	if (setrlimit(RLIMIT_CORE, &rl) < 0)
		return -1;
	if (write_proc("/proc/sys/kernel/core_pipe_limit", CRASH_PIPE_LIMIT) < 0)
		return -1;
	return write_proc("/proc/sys/kernel/core_pattern", pattern);
}

static void kmsg(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void kmsg(const char *fmt, ...)
{
	char buf[512];
	va_list ap;
	int n = snprintf(buf, sizeof(buf), "<4>vmagent-crash: ");
	cleanup_close int fd = open("/dev/kmsg", O_WRONLY | O_CLOEXEC);

	va_start(ap, fmt);
	vsnprintf(buf + n, sizeof(buf) - (size_t)n, fmt, ap);
	va_end(ap);
	if (fd >= 0)
		(void)!write(fd, buf, strlen(buf));
}

static uint32_t local_cid(void)
{
	cleanup_close int fd = open("/dev/vsock", O_RDONLY | O_CLOEXEC);
	unsigned int cid = 0;

	if (fd < 0 || ioctl(fd, IOCTL_VM_SOCKETS_GET_LOCAL_CID, &cid) < 0)
		return 0;
	return cid;
}

static int parse_num(const char *s, long long min, long long max, long long *out)
{
	char *end;
	long long v;

	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno || end == s || *end || v < min || v > max)
		return -1;
	*out = v;
	return 0;
}

/* Send what deflate produced so far. Return: 0 or -1 with errno. */
static int flush_out(int fd, uint8_t *out, size_t len, uint64_t *sent, uint32_t *crc)
{
	Virtmgr__V1__CrashUpload m = VIRTMGR__V1__CRASH_UPLOAD__INIT;

	if (!len)
		return 0;
	m.core.data = out;
	m.core.len = len;
	*crc = (uint32_t)crc32(*crc, out, (uInt)len);
	*sent += len;
	return crash_upload_send(fd, &m);
}

int agent_crash_collect(int argc, char **argv)
{
	Virtmgr__V1__CrashUploadHeader h = VIRTMGR__V1__CRASH_UPLOAD_HEADER__INIT;
	Virtmgr__V1__CrashUploadEnd end = VIRTMGR__V1__CRASH_UPLOAD_END__INIT;
	Virtmgr__V1__CrashUpload m = VIRTMGR__V1__CRASH_UPLOAD__INIT;
	static uint8_t in[CRASH_UPLOAD_CHUNK], out[CRASH_UPLOAD_CHUNK];
	char exe[PATH_MAX], link[64], comm[256] = "", id[64], why[256];
	long long limit, pid, tid, uid, gid, sig, t;
	uint64_t total = 0, sent = 0;
	uint32_t crc = (uint32_t)crc32(0, NULL, 0);
	bool truncated = false;
	z_stream z = { 0 };
	ssize_t n;
	int fd, r, zr;

	/* argv: --collect-core LIMIT %P %i %u %g %s %t %e... */
	if (argc < 9 || parse_num(argv[1], 1, LLONG_MAX, &limit) < 0 || parse_num(argv[2], 1, INT_MAX, &pid) < 0 ||
	    parse_num(argv[3], 0, INT_MAX, &tid) < 0 || parse_num(argv[4], 0, UINT32_MAX, &uid) < 0 ||
	    parse_num(argv[5], 0, UINT32_MAX, &gid) < 0 || parse_num(argv[6], 0, 255, &sig) < 0 ||
	    parse_num(argv[7], 0, LLONG_MAX / 1000000000, &t) < 0) {
		kmsg("bad arguments from the kernel\n");
		return 2;
	}
	/* %e with spaces may arrive split on older kernels: join the rest */
	for (int i = 8; i < argc; i++) {
		size_t l = strlen(comm);

		snprintf(comm + l, sizeof(comm) - l, "%s%s", i > 8 ? " " : "", argv[i]);
	}
	snprintf(link, sizeof(link), "/proc/%lld/exe", pid);
	n = readlink(link, exe, sizeof(exe) - 1);
	exe[n > 0 ? n : 0] = '\0';
	{
		/* a payload in a root file system (root.c) is chrooted: name its
		 * executable as it saw it, not by the initramfs's path to it */
		char proot[PATH_MAX];
		ssize_t rn;

		snprintf(link, sizeof(link), "/proc/%lld/root", pid);
		rn = readlink(link, proot, sizeof(proot) - 1);
		if (rn > 1 && !strncmp(exe, proot, (size_t)rn) && exe[rn] == '/')
			memmove(exe, exe + rn, strlen(exe + rn) + 1);
	}

	h.cid = local_cid();
	h.pid = (int32_t)pid;
	h.tid = (int32_t)tid;
	h.uid = (uint32_t)uid;
	h.gid = (uint32_t)gid;
	h.signal = (int32_t)sig;
	h.executable = exe;
	h.comm = comm;
	h.crash_time_ns = (uint64_t)t * 1000000000ull;
	m.header = &h;

	fd = crash_upload_connect(CRASH_TIMEOUT_S);
	if (fd < 0) {
		kmsg("pid %lld (%s) signal %lld: cannot reach the host: %s\n", pid, comm, sig, strerror(errno));
		return 1;
	}
	if (crash_upload_send(fd, &m) < 0)
		goto io_error;
	/* gzip framing, so the stored file is what gzip(1) and zlib read */
	if (deflateInit2(&z, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) {
		kmsg("deflateInit failed\n");
		close(fd);
		return 1;
	}
	for (;;) {
		size_t want = sizeof(in);
		int flush;

		if (total + want > (uint64_t)limit)
			want = (size_t)((uint64_t)limit - total);
		n = want ? read(STDIN_FILENO, in, want) : 0;
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			n = 0; /* what came is what there is */
		total += (uint64_t)n;
		if (!want) {
			/* at the cap: is there more? */
			char probe;

			truncated = read(STDIN_FILENO, &probe, 1) == 1;
		}
		flush = n == 0 ? Z_FINISH : Z_NO_FLUSH;
		z.next_in = in;
		z.avail_in = (uInt)n;
		do {
			z.next_out = out;
			z.avail_out = sizeof(out);
			zr = deflate(&z, flush);
			if (flush_out(fd, out, sizeof(out) - z.avail_out, &sent, &crc) < 0) {
				deflateEnd(&z);
				goto io_error;
			}
		} while (z.avail_out == 0 || (flush == Z_FINISH && zr != Z_STREAM_END));
		if (flush == Z_FINISH)
			break;
	}
	deflateEnd(&z);
	end.core_size = total;
	end.compressed_size = sent;
	end.truncated = truncated;
	end.crc32 = crc;
	m.header = NULL;
	m.end = &end;
	if (crash_upload_send(fd, &m) < 0)
		goto io_error;
	r = crash_upload_reply(fd, id, sizeof(id), why, sizeof(why));
	close(fd);
	if (r < 0) {
		kmsg("pid %lld (%s) signal %lld: no answer from the host: %s\n", pid, comm, sig, strerror(errno));
		return 1;
	}
	if (r > 0) {
		kmsg("pid %lld (%s) signal %lld: the host refused the report: %s\n", pid, comm, sig, why);
		return 1;
	}
	kmsg("pid %lld (%s) signal %lld: report %s (%" PRIu64 " bytes of core%s)\n", pid, comm, sig, id, total,
	     truncated ? ", truncated" : "");
	return 0;
io_error:
	kmsg("pid %lld (%s) signal %lld: sending the report failed: %s\n", pid, comm, sig, strerror(errno));
	close(fd);
	return 1;
}
