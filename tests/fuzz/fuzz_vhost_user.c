/* fuzz_vhost_user.c - libFuzzer target: the vhost-user backend protocol
 * (server/vsock/vhost_user.c) as a hostile frontend would speak it.
 *
 * The input is a sequence of messages, each a 12-byte header (request,
 * flags, size) followed by up to `size` bytes of payload, sent one per
 * sendmsg() over a socketpair to a backend served on a libev loop; the
 * header's size is not corrected, so short, long and misaligned payloads
 * occur. The file descriptors a real frontend would attach are attached:
 * memfds (1 MiB, filled with the input bytes, so rings and descriptors are
 * input-controlled) for SET_MEM_TABLE, as many as its first payload word
 * asks (up to 8); an eventfd for SET_VRING_KICK/CALL/ERR unless the NOFD bit
 * is set. A header with request 0xffffffff is not sent: it kicks every queue
 * instead. The device's kick pops every available chain, touches its
 * buffers and returns them; GET_CONFIG serves an 8-byte config space. After
 * the last message the frontend half-closes; the loop runs until the backend
 * sees the end or fails, then everything is released (LeakSanitizer and the
 * fd count check that nothing leaks).
 */
#include "config.h"

#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "lib/log.h"
#include "server/vsock/vhost_user.h"

#define REQ_SET_MEM_TABLE 5
#define REQ_SET_VRING_KICK 12
#define REQ_SET_VRING_ERR 14
#define REQ_KICK_ALL 0xffffffffu
#define NOFD_BIT (1u << 8)
#define MEMFD_SIZE (1u << 20)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct vu fuzz_vu;

static void dev_kick(void *opaque, unsigned idx)
{
	struct virtq *vq = vu_queue(&fuzz_vu, idx);
	struct vq_chain chain;
	struct vm_error err;
	uint8_t buf[64];

	for (int n = 0; n < 512; n++) {
		if (virtq_pop(vq, &chain, &err) <= 0)
			break;
		vq_chain_read(&chain, 0, buf, sizeof(buf));
		vq_chain_write(&chain, 0, buf, sizeof(buf));
		virtq_push(vq, chain.head, 0);
	}
	virtq_notify(vq);
}

static int dev_get_config(void *opaque, uint32_t off, uint8_t *buf, uint32_t len)
{
	static const uint8_t cfg[8] = { 0x00, 0x08 }; /* guest_cid 2048 */

	if (off > sizeof(cfg) || len > sizeof(cfg) - off)
		return -1;
	memcpy(buf, cfg + off, len);
	return 0;
}

static void dev_reset(void *opaque)
{
}

static const struct vu_dev_ops fuzz_ops = { dev_kick, dev_get_config, dev_reset };

static struct ev_loop *fuzz_loop(void)
{
	static struct ev_loop *loop;

	if (!loop) {
		loop = ev_loop_new(EVFLAG_AUTO);
		log_init("fuzz_vhost_user", LOG_LVL_ERROR);
		log_set_level((enum log_level)0); /* every refusal logs an error: keep quiet */
	}
	return loop;
}

static int send_with_fds(int sock, const void *buf, size_t len, const int *fds, unsigned nfds)
{
	union {
		char buf[CMSG_SPACE(8 * sizeof(int))];
		struct cmsghdr align;
	} cbuf;
	struct iovec iov = { (void *)buf, len };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };

	if (nfds) {
		struct cmsghdr *c;

		memset(&cbuf, 0, sizeof(cbuf));
		mh.msg_control = cbuf.buf;
		mh.msg_controllen = CMSG_SPACE(nfds * sizeof(int));
		c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(nfds * sizeof(int));
		memcpy(CMSG_DATA(c), fds, nfds * sizeof(int));
	}
	return sendmsg(sock, &mh, MSG_NOSIGNAL | MSG_DONTWAIT) < 0 ? -1 : 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ev_loop *loop = fuzz_loop();
	int sv[2], kicks[64];
	unsigned nkicks = 0;
	size_t pos = 0;

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		return 0;
	vu_init(&fuzz_vu, loop, sv[1], &fuzz_ops, NULL);
	while (pos + 12 <= size) {
		uint32_t hdr[3], word = 0;
		size_t plen;
		int fds[8];
		unsigned nfds = 0;

		memcpy(hdr, data + pos, sizeof(hdr));
		plen = MIN((size_t)hdr[2], size - pos - 12);
		if (plen >= 4)
			memcpy(&word, data + pos + 12, 4);
		if (hdr[0] == REQ_KICK_ALL) {
			for (unsigned i = 0; i < nkicks; i++)
				if (eventfd_write(kicks[i], 1) < 0)
					break;
			pos += 12;
			continue;
		}
		if (hdr[0] == REQ_SET_MEM_TABLE) {
			for (nfds = 0; nfds < MIN(word, 8u); nfds++) {
				fds[nfds] = memfd_create("fuzz-guest-ram", MFD_CLOEXEC);
				if (fds[nfds] < 0 || ftruncate(fds[nfds], MEMFD_SIZE) < 0 ||
				    pwrite(fds[nfds], data, size, 0) < 0) {
					if (fds[nfds] >= 0)
						close(fds[nfds]);
					break;
				}
			}
		} else if (hdr[0] >= REQ_SET_VRING_KICK && hdr[0] <= REQ_SET_VRING_ERR && !(word & NOFD_BIT)) {
			fds[0] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
			if (fds[0] >= 0) {
				nfds = 1;
				if (hdr[0] == REQ_SET_VRING_KICK && nkicks < ARRAY_SIZE(kicks))
					kicks[nkicks++] = dup(fds[0]);
			}
		}
		if (send_with_fds(sv[0], data + pos, 12 + plen, fds, nfds) < 0) {
			for (unsigned i = 0; i < nfds; i++)
				close(fds[i]);
			break;
		}
		for (unsigned i = 0; i < nfds; i++)
			close(fds[i]);
		pos += 12 + plen;
	}
	/* a trailing partial header goes out as it is */
	if (pos < size && send(sv[0], data + pos, size - pos, MSG_NOSIGNAL | MSG_DONTWAIT) < 0)
		pos = size;
	shutdown(sv[0], SHUT_WR);
	while (fuzz_vu.status < 0)
		ev_run(loop, 0);
	vu_cleanup(&fuzz_vu);
	for (unsigned i = 0; i < nkicks; i++)
		if (kicks[i] >= 0)
			close(kicks[i]);
	close(sv[0]);
	return 0;
}
