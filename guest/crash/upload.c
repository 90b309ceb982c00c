/* upload.c - frames of a crash report upload to the host (upload.h). Blocking
 * I/O on purpose: the collector is a short-lived process of its own that the
 * guest kernel started for one core, with nothing else to serve.
 */
#include "config.h"
#include "guest/crash/upload.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>
#include <linux/vm_sockets.h>

#include "lib/util.h"

int crash_upload_connect(unsigned timeout_s)
{
	struct sockaddr_vm sa = { .svm_family = AF_VSOCK, .svm_cid = VMADDR_CID_HOST, .svm_port = CRASH_UPLOAD_PORT };
	struct timeval tv = { .tv_sec = timeout_s };
	int fd = socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -1;
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		int e = errno;

		close(fd);
		errno = e;
		return -1;
	}
	return fd;
}

int crash_upload_send(int fd, const Virtmgr__V1__CrashUpload *msg)
{
	size_t len = protobuf_c_message_get_packed_size(&msg->base);
	uint8_t *buf;
	int r;

	if (len > CRASH_UPLOAD_MAX_FRAME) {
		errno = EMSGSIZE;
		return -1;
	}
	buf = xmalloc(len + 4);
	buf[0] = (uint8_t)(len >> 24);
	buf[1] = (uint8_t)(len >> 16);
	buf[2] = (uint8_t)(len >> 8);
	buf[3] = (uint8_t)len;
	protobuf_c_message_pack(&msg->base, buf + 4);
	r = write_all(fd, buf, len + 4);
	free(buf);
	return r < 0 ? -1 : 0;
}

static int read_full(int fd, uint8_t *buf, size_t len)
{
	size_t got = 0;

	while (got < len) {
		ssize_t n = read(fd, buf + got, len - got);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			if (n == 0)
				errno = ECONNRESET;
			return -1;
		}
		got += (size_t)n;
	}
	return 0;
}

int crash_upload_reply(int fd, char *id, size_t id_size, char *why, size_t why_size)
{
	uint8_t hdr[4], *body;
	uint32_t len;
	Virtmgr__V1__CrashUploadReply *r;
	int ret;

	*id = *why = '\0';
	if (read_full(fd, hdr, 4) < 0)
		return -1;
	len = (uint32_t)hdr[0] << 24 | (uint32_t)hdr[1] << 16 | (uint32_t)hdr[2] << 8 | hdr[3];
	if (len > 4096) {
		errno = EMSGSIZE;
		return -1;
	}
	body = xmalloc(len ? len : 1);
	if (read_full(fd, body, len) < 0) {
		free(body);
		return -1;
	}
	r = virtmgr__v1__crash_upload_reply__unpack(NULL, len, body);
	free(body);
	if (!r) {
		errno = EBADMSG;
		return -1;
	}
	snprintf(id, id_size, "%s", r->id);
	snprintf(why, why_size, "%s", r->error);
	ret = *r->id ? 0 : 1;
	virtmgr__v1__crash_upload_reply__free_unpacked(r, NULL);
	return ret;
}
