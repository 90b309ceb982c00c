/* crashtool.c - in-guest helper of tests/integration/crash.sh, linked
 * statically with debug symbols so the host can make a backtrace from its
 * core (docs/crash-reports.md).
 *
 *   crashtool segv            dies of SIGSEGV in crashtool_segv()
 *   crashtool abort           calls abort() from crashtool_abort()
 *   crashtool forge-cid CID   an upload whose header claims CID
 *   crashtool truncate        an upload cut before its end frame
 *   crashtool oversize MIB    an upload of MIB MiB of core chunks
 *
 * The upload modes print the host's answer: "stored ID", "refused WHY" or
 * "no answer: ERR".
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <sys/ioctl.h>
#include <linux/vm_sockets.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "guest/crash/upload.h"

/* volatile and noinline: the frames must stay for the backtrace */
__attribute__((noinline)) void crashtool_segv(volatile int *p);
__attribute__((noinline)) void crashtool_segv(volatile int *p)
{
	*p = 42;
}

__attribute__((noinline)) void crashtool_abort(void);
__attribute__((noinline)) void crashtool_abort(void)
{
	abort();
}

static unsigned local_cid(void)
{
	int fd = open("/dev/vsock", O_RDONLY | O_CLOEXEC);
	unsigned int cid = 0;

	if (fd >= 0) {
		ioctl(fd, IOCTL_VM_SOCKETS_GET_LOCAL_CID, &cid);
		close(fd);
	}
	return cid;
}

static int answer(int fd)
{
	char id[64], why[256];
	int r = crash_upload_reply(fd, id, sizeof(id), why, sizeof(why));

	if (r < 0)
		printf("no answer: %s\n", strerror(errno));
	else if (r > 0)
		printf("refused %s\n", why);
	else
		printf("stored %s\n", id);
	return r == 0 ? 0 : 1;
}

static int upload(unsigned cid, size_t chunks, bool send_end)
{
	Virtmgr__V1__CrashUploadHeader h = VIRTMGR__V1__CRASH_UPLOAD_HEADER__INIT;
	Virtmgr__V1__CrashUpload m = VIRTMGR__V1__CRASH_UPLOAD__INIT;
	static uint8_t chunk[CRASH_UPLOAD_CHUNK];
	int fd = crash_upload_connect(20);

	if (fd < 0) {
		printf("connect: %s\n", strerror(errno));
		return 1;
	}
	h.cid = cid;
	h.pid = getpid();
	h.tid = getpid();
	h.signal = SIGSEGV;
	h.executable = "/bin/crashtool";
	h.comm = "crashtool";
	m.header = &h;
	if (crash_upload_send(fd, &m) < 0)
		return answer(fd);
	m.header = NULL;
	memset(chunk, 0x5a, sizeof(chunk));
	m.core.data = chunk;
	m.core.len = sizeof(chunk);
	for (size_t i = 0; i < chunks; i++)
		if (crash_upload_send(fd, &m) < 0)
			return answer(fd);
	if (!send_end) {
		close(fd); /* the host sees the stream end mid-report */
		printf("closed\n");
		return 0;
	}
	Virtmgr__V1__CrashUploadEnd e = VIRTMGR__V1__CRASH_UPLOAD_END__INIT;
	m.core.len = 0;
	m.core.data = NULL;
	m.end = &e;
	e.core_size = chunks * sizeof(chunk);
	e.compressed_size = chunks * sizeof(chunk);
	if (crash_upload_send(fd, &m) < 0)
		return answer(fd);
	return answer(fd);
}

int main(int argc, char **argv)
{
	const char *mode = argc > 1 ? argv[1] : "";

	setvbuf(stdout, NULL, _IONBF, 0);
	if (!strcmp(mode, "segv")) {
		crashtool_segv((volatile int *)(argc > 99 ? argv : NULL));
		return 0;
	}
	if (!strcmp(mode, "abort")) {
		crashtool_abort();
		return 0;
	}
	if (!strcmp(mode, "forge-cid") && argc == 3)
		return upload((unsigned)strtoul(argv[2], NULL, 10), 1, true);
	if (!strcmp(mode, "truncate"))
		return upload(local_cid(), 4, false);
	if (!strcmp(mode, "oversize") && argc == 3)
		return upload(local_cid(), (size_t)strtoul(argv[2], NULL, 10) * 16, true);
	fprintf(stderr, "usage: crashtool segv|abort|forge-cid CID|truncate|oversize MIB\n");
	return 2;
}
