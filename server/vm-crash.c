/* vm-crash.c - a VM's crash reports: the guest's uploads on host vsock port
 * 7779 and the kernel panics seen on its console (docs/crash-reports.md).
 *
 * Design. Like ChromeOS's crash service (port 7779), the host learns which
 * VM a report comes from by the connection, never from the report: in
 * user vsock mode the listening socket `vsock.sock_7779` in the VM's run
 * directory is reachable only through that VM's backend. The CID the
 * header claims must still be the VM's, else the report is refused (a
 * guest that lies about itself is worth a log line). Everything from the
 * guest is bounded: frames of at most CRASH_UPLOAD_MAX_FRAME bytes, at most
 * VM_CRASH_MAX_CONNS uploads at once, an idle timeout, a token bucket of
 * --crash-rate reports per minute, and the store's quotas (crashstore.h).
 * A stream that ends before its end frame, whose sizes or CRC do not
 * match, or that breaks a bound is dropped with its files; the VM is not
 * touched. The answer (a CrashUploadReply: the id or the reason) is sent
 * first, then the daemon reads and drops what the guest still sends for up
 * to 5 s (8 MiB) before closing, since closing with unread bytes would
 * reset the stream and lose the answer. A kept report gets a log line
 * naming the VM and an EVENT_TYPE_CRASH on WatchVm.
 *
 * A guest kernel panic (QEMU's GUEST_PANICKED through pvpanic, death
 * reason CRASH) becomes a kernel report holding the last lines of the
 * console log, read before the run directory goes.
 */
#include "config.h"
#include "server/vm-crash.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>
#include <linux/vm_sockets.h>

#include "guest/crash/upload.h"
#include "lib/log.h"
#include "server/crashrx.h"
#include "server/crashstore.h"
#include "server/vm-priv.h"

#define VM_CRASH_MAX_CONNS 4
#define VM_CRASH_IDLE_S 30.0
#define VM_CRASH_LINGER_S 5.0		   /* after the answer: reading what the guest still sends */
#define VM_CRASH_LINGER_BYTES (8ull << 20) /* ... at most this much */
#define VM_CRASH_CONSOLE_TAIL (16u << 10)

struct crash_conn {
	struct crash_conn *next;
	struct vm_crash *vc;
	int fd;
	ev_io io;
	ev_timer idle;
	struct crash_rx rx; /* the frames (crashrx.h) */
	struct crash_upload *up;
	uint32_t crc;
	int32_t pid, signal;
	char *executable;
	bool lingering;	  /* answered: reading and dropping the rest */
	uint64_t dropped; /* bytes read while lingering */
};

struct vm_crash {
	struct vm *vm;
	int lfd; /* user vsock mode: this VM's listener; kernel mode: -1 */
	ev_io accept_io;
	struct crash_conn *conns;
	unsigned nconns;
	double tokens;
	ev_tstamp refilled;
	ev_tstamp rate_logged; /* a guest in a crash loop gets one log line per 10 s */
	unsigned rate_refused; /* refusals since */
};

/* Kernel vhost-vsock: one AF_VSOCK listener on port 7779 for every VM,
 * which hands each connection to the VM whose CID the kernel says it
 * comes from (the guest cannot choose its source CID). It exists while
 * some VM listens (users counts them). */
struct vm_crash_host {
	int lfd;
	ev_io io;
	unsigned users;
};

static void conn_free(struct crash_conn *c)
{
	struct vm_crash *vc = c->vc;
	struct ev_loop *loop = vc->vm->d->loop;

	for (struct crash_conn **pp = &vc->conns; *pp; pp = &(*pp)->next)
		if (*pp == c) {
			*pp = c->next;
			break;
		}
	vc->nconns--;
	ev_io_stop(loop, &c->io);
	ev_timer_stop(loop, &c->idle);
	close(c->fd);
	crashstore_abort(c->up);
	crash_rx_release(&c->rx);
	free(c->executable);
	free(c);
}

/* Answer the guest (best effort: a small frame on a fresh socket) and close. */
static void conn_finish(struct crash_conn *c, const char *id, const char *why)
{
	Virtmgr__V1__CrashUploadReply r = VIRTMGR__V1__CRASH_UPLOAD_REPLY__INIT;
	uint8_t buf[4 + 600];
	size_t len;

	r.id = (char *)(id ? id : "");
	r.error = (char *)(why ? why : "");
	len = protobuf_c_message_get_packed_size(&r.base);
	if (len <= sizeof(buf) - 4) {
		buf[0] = (uint8_t)(len >> 24);
		buf[1] = (uint8_t)(len >> 16);
		buf[2] = (uint8_t)(len >> 8);
		buf[3] = (uint8_t)len;
		protobuf_c_message_pack(&r.base, buf + 4);
		(void)!send(c->fd, buf, len + 4, MSG_DONTWAIT | MSG_NOSIGNAL);
	}
	/* Close only once the guest has sent what it meant to (or a bound
	 * is reached): closing a socket with unread bytes resets the stream,
	 * and the guest would lose the answer. */
	crashstore_abort(steal_pointer(&c->up));
	shutdown(c->fd, SHUT_WR);
	c->lingering = true;
	c->idle.repeat = VM_CRASH_LINGER_S;
	ev_timer_again(c->vc->vm->d->loop, &c->idle);
}

/* Return: false when @c is gone. */
static bool linger_read(struct crash_conn *c)
{
	static uint8_t sink[CRASH_UPLOAD_CHUNK];

	for (int round = 0; round < 8; round++) {
		ssize_t n = read(c->fd, sink, sizeof(sink));

		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			return true;
		if (n <= 0 || (c->dropped += (uint64_t)n) > VM_CRASH_LINGER_BYTES) {
			conn_free(c);
			return false;
		}
	}
	return true;
}

static void conn_refuse(struct crash_conn *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void conn_refuse(struct crash_conn *c, const char *fmt, ...)
{
	struct vm *vm = c->vc->vm;
	char why[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	log_warn("vm %s (%s, cid %u): crash report refused: %s", vm->id, vm->name, vm->cid, why);
	conn_finish(c, NULL, why);
}

static bool take_token(struct vm_crash *vc)
{
	struct daemon *d = vc->vm->d;
	double rate = d->cfg.crash_limits.rate;
	ev_tstamp now = ev_now(d->loop);

	vc->tokens += (now - vc->refilled) * rate / 60.0;
	if (vc->tokens > rate)
		vc->tokens = rate;
	vc->refilled = now;
	if (vc->tokens < 1.0)
		return false;
	vc->tokens -= 1.0;
	return true;
}

/* Return: false when @c is gone (refused). */
static bool on_header(struct crash_conn *c, const Virtmgr__V1__CrashUploadHeader *h)
{
	struct vm *vm = c->vc->vm;
	struct vm_error err = { 0 };
	struct crash_meta m = {
		.vm_id = vm->id,
		.vm_name = vm->name,
		.owner_uid = vm->owner_uid,
		.cid = vm->cid,
		.pid = h->pid,
		.tid = h->tid,
		.uid = h->uid,
		.gid = h->gid,
		.signal = h->signal,
		.executable = h->executable,
		.comm = h->comm,
		.crash_time_ns = h->crash_time_ns,
	};

	if (h->cid != vm->cid) {
		conn_refuse(c, "the report claims CID %u, the VM's is %u", h->cid, vm->cid);
		return false;
	}
	if (strlen(h->executable) > 4095 || strlen(h->comm) > 255) {
		conn_refuse(c, "executable or comm too long");
		return false;
	}
	if (!take_token(c->vc)) {
		struct vm_crash *vc = c->vc;
		ev_tstamp now = ev_now(vm->d->loop);

		vc->rate_refused++;
		if (now - vc->rate_logged >= 10.0) {
			log_warn("vm %s (%s, cid %u): %u crash report%s refused: rate limit of %u a minute", vm->id,
				 vm->name, vm->cid, vc->rate_refused, vc->rate_refused == 1 ? "" : "s",
				 vm->d->cfg.crash_limits.rate);
			vc->rate_logged = now;
			vc->rate_refused = 0;
		}
		conn_finish(c, NULL, "rate limit");
		return false;
	}
	c->up = crashstore_begin(vm->d->crashes, &m, &err);
	if (!c->up) {
		conn_refuse(c, "%s", err.message);
		return false;
	}
	c->pid = h->pid;
	c->signal = h->signal;
	c->executable = xstrdup(*h->executable ? h->executable : h->comm);
	c->crc = (uint32_t)crc32(0, NULL, 0);
	return true;
}

static void on_end(struct crash_conn *c, const Virtmgr__V1__CrashUploadEnd *e)
{
	struct vm *vm = c->vc->vm;
	struct vm_error err = { 0 };
	char id[17], msg[256];
	struct crash_upload *up = steal_pointer(&c->up);

	uint64_t got = crashstore_received(up);

	if (e->compressed_size != got || e->crc32 != c->crc) {
		crashstore_abort(up);
		conn_refuse(c, "the end frame says %" PRIu64 " bytes (crc %08x), %" PRIu64 " (crc %08x) arrived",
			    e->compressed_size, e->crc32, got, c->crc);
		return;
	}
	if (crashstore_commit(vm->d->crashes, up, e->core_size, e->truncated, id, &err) < 0) {
		conn_refuse(c, "%s", err.message);
		return;
	}
	log_info("vm %s (%s, cid %u): crash report %s: pid %d (%s) killed by signal %d, core %" PRIu64 " bytes%s",
		 vm->id, vm->name, vm->cid, id, c->pid, c->executable, c->signal, e->core_size,
		 e->truncated ? " (truncated)" : "");
	snprintf(msg, sizeof(msg), "crash report %s: pid %d (%s) signal %d", id, c->pid, c->executable, c->signal);
	vm_event_crash(vm, c->pid, c->executable, c->signal, id, msg);
	conn_finish(c, id, NULL);
}

/* One complete frame. Return: false when @c is gone. */
/* One frame in order. Return: false when @c is done (answered). */
static bool on_frame(struct crash_conn *c, Virtmgr__V1__CrashUpload *m)
{
	struct vm_error err = { 0 };
	bool alive = true;

	if (m->header) {
		alive = on_header(c, m->header);
	} else if (m->core.len) {
		if (crashstore_write(c->up, m->core.data, m->core.len, &err) < 0) {
			conn_refuse(c, "%s", err.message);
			alive = false;
		} else {
			c->crc = (uint32_t)crc32(c->crc, m->core.data, (uInt)m->core.len);
		}
	}
	if (alive && m->end) {
		on_end(c, m->end);
		alive = false;
	}
	crash_rx_free(m);
	return alive;
}

static void conn_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct crash_conn *c = w->data;

	(void)revents;
	if (c->lingering) {
		linger_read(c);
		return;
	}
	ev_timer_again(loop, &c->idle);
	/* a bounded amount per wake-up, so one guest does not hold the loop */
	for (int round = 0; round < 8; round++) {
		Virtmgr__V1__CrashUpload *m;
		char why[160];
		size_t want;
		uint8_t *space = crash_rx_space(&c->rx, &want);
		ssize_t n = read(c->fd, space, want);

		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			return;
		if (n <= 0) {
			if (c->up)
				conn_refuse(c, "the stream ended before the report's end (%" PRIu64 " bytes of core)",
					    crashstore_received(c->up));
			else
				conn_free(c);
			return;
		}
		switch (crash_rx_advance(&c->rx, (size_t)n, &m, why, sizeof(why))) {
		case CRASH_RX_MORE:
			break;
		case CRASH_RX_FRAME:
			if (!on_frame(c, m))
				return;
			break;
		default:
			conn_refuse(c, "%s", why);
			return;
		}
	}
}

static void idle_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct crash_conn *c = w->data;

	(void)loop;
	(void)revents;
	if (c->lingering)
		conn_free(c);
	else
		conn_refuse(c, "no data for %.0f s", VM_CRASH_IDLE_S);
}

static void conn_new(struct ev_loop *loop, struct vm_crash *vc, int fd)
{
	struct vm *vm = vc->vm;
	struct crash_conn *c;

	if (vc->nconns >= VM_CRASH_MAX_CONNS) {
		log_warn("vm %s (%s): crash report refused: %u uploads already under way", vm->id, vm->name,
			 vc->nconns);
		close(fd);
		return;
	}
	c = xzalloc(sizeof(*c));
	c->vc = vc;
	c->fd = fd;
	crash_rx_init(&c->rx);
	ev_io_init(&c->io, conn_cb, fd, EV_READ);
	c->io.data = c;
	ev_init(&c->idle, idle_cb);
	c->idle.repeat = VM_CRASH_IDLE_S;
	c->idle.data = c;
	ev_io_start(loop, &c->io);
	ev_timer_again(loop, &c->idle);
	c->next = vc->conns;
	vc->conns = c;
	vc->nconns++;
}

static void accept_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct vm_crash *vc = w->data;
	struct vm *vm = vc->vm;

	(void)revents;
	for (;;) {
		struct vm_error err = { 0 };
		int fd = vsock_host_accept(&vm->vsock, vc->lfd, &err);

		if (fd < 0) {
			if (err.code != VM_UNAVAILABLE)
				log_warn("vm %s: crash port: %s", vm->id, err.message);
			return;
		}
		conn_new(loop, vc, fd);
	}
}

static void host_accept_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct daemon *d = w->data;

	(void)revents;
	for (;;) {
		struct sockaddr_vm sa;
		socklen_t sl = sizeof(sa);
		int fd = accept4(d->crash_host->lfd, (struct sockaddr *)&sa, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
		struct vm *owner = NULL;

		if (fd < 0) {
			if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
				log_warn("crash port %u: accept: %s", CRASH_UPLOAD_PORT, strerror(errno));
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			return;
		}
		for (struct vm *vm = d->vms; vm && sa.svm_family == AF_VSOCK; vm = vm->next)
			if (vm->crash && vm->cid == sa.svm_cid)
				owner = vm;
		if (!owner) {
			log_warn("crash port %u: connection from CID %u refused: no VM of that CID takes reports",
				 CRASH_UPLOAD_PORT, sa.svm_cid);
			close(fd);
			continue;
		}
		conn_new(loop, owner->crash, fd);
	}
}

static int host_listen(struct daemon *d, struct vm_error *err)
{
	struct sockaddr_vm sa = { .svm_family = AF_VSOCK, .svm_cid = VMADDR_CID_ANY, .svm_port = CRASH_UPLOAD_PORT };
	struct vm_crash_host *h = d->crash_host;
	int fd;

	if (h) {
		h->users++;
		return 0;
	}
	fd = socket(AF_VSOCK, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return vm_error_errno(err, errno, "vsock socket for port %u", CRASH_UPLOAD_PORT);
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 16) < 0) {
		int e = errno;

		close(fd);
		return vm_error_errno(err, e, "listen on vsock port %u", CRASH_UPLOAD_PORT);
	}
	h = xzalloc(sizeof(*h));
	h->lfd = fd;
	h->users = 1;
	ev_io_init(&h->io, host_accept_cb, fd, EV_READ);
	h->io.data = d;
	ev_io_start(d->loop, &h->io);
	d->crash_host = h;
	return 0;
}

static void host_unlisten(struct daemon *d)
{
	struct vm_crash_host *h = d->crash_host;

	if (!h || --h->users)
		return;
	ev_io_stop(d->loop, &h->io);
	close(h->lfd);
	free(h);
	d->crash_host = NULL;
}

void vm_crash_listen(struct vm *vm)
{
	struct daemon *d = vm->d;
	struct vm_error err = { 0 };
	struct vm_crash *vc;
	int lfd = -1;

	if (!d->crashes || vm->crash || !d->cfg.crash_limits.max_reports)
		return;
	if (vm->vsock.mode == VSOCK_HOST_USER)
		lfd = vsock_host_listen(&vm->vsock, CRASH_UPLOAD_PORT, &err);
	if (vm->vsock.mode == VSOCK_HOST_USER ? lfd < 0 : host_listen(d, &err) < 0) {
		log_warn("vm %s: no crash reports: %s", vm->id, err.message);
		return;
	}
	vc = xzalloc(sizeof(*vc));
	vc->vm = vm;
	vc->lfd = lfd;
	vc->tokens = d->cfg.crash_limits.rate;
	vc->refilled = ev_now(d->loop);
	if (lfd >= 0) {
		ev_io_init(&vc->accept_io, accept_cb, lfd, EV_READ);
		vc->accept_io.data = vc;
		ev_io_start(d->loop, &vc->accept_io);
	}
	vm->crash = vc;
}

void vm_crash_release(struct vm *vm)
{
	struct vm_crash *vc = steal_pointer(&vm->crash);

	if (!vc)
		return;
	while (vc->conns)
		conn_free(vc->conns); /* unfinished uploads are dropped */
	if (vc->lfd >= 0) {
		ev_io_stop(vm->d->loop, &vc->accept_io);
		close(vc->lfd);
	} else {
		host_unlisten(vm->d);
	}
	free(vc);
}

/* The console's last VM_CRASH_CONSOLE_TAIL bytes, from the first whole line. */
static char *console_tail(const char *run_dir)
{
	cleanup_free char *path = xasprintf("%s/console.log", run_dir);
	cleanup_close int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	struct stat st;
	char *buf, *start;
	ssize_t n;
	off_t off;

	if (fd < 0 || fstat(fd, &st) < 0)
		return NULL;
	off = st.st_size > VM_CRASH_CONSOLE_TAIL ? st.st_size - VM_CRASH_CONSOLE_TAIL : 0;
	buf = xmalloc(VM_CRASH_CONSOLE_TAIL + 1);
	n = pread(fd, buf, VM_CRASH_CONSOLE_TAIL, off);
	if (n < 0)
		n = 0;
	buf[n] = '\0';
	/* NULs and other bytes a JSON string cannot hold as they are */
	for (ssize_t i = 0; i < n; i++)
		if ((unsigned char)buf[i] < 0x20 && buf[i] != '\n' && buf[i] != '\t')
			buf[i] = ' ';
	start = buf;
	if (off > 0 && (start = strchr(buf, '\n')))
		start++;
	else
		start = buf;
	memmove(buf, start, strlen(start) + 1);
	return buf;
}

void vm_crash_panic(struct vm *vm)
{
	struct daemon *d = vm->d;
	struct vm_error err = { 0 };
	struct crash_meta m = {
		.kernel = true,
		.vm_id = vm->id,
		.vm_name = vm->name,
		.owner_uid = vm->owner_uid,
		.cid = vm->cid,
		.comm = "kernel",
		.crash_time_ns = now_real_ns(),
	};
	cleanup_free char *text = NULL;
	char id[17], msg[128];

	if (!d->crashes || !vm->run_dir || !(text = console_tail(vm->run_dir)))
		return;
	if (crashstore_add_kernel(d->crashes, &m, text, id, &err) < 0) {
		log_warn("vm %s (%s): kernel crash report not kept: %s", vm->id, vm->name, err.message);
		return;
	}
	log_info("vm %s (%s, cid %u): kernel crash report %s", vm->id, vm->name, vm->cid, id);
	snprintf(msg, sizeof(msg), "kernel crash report %s", id);
	vm_event_crash(vm, 0, "", 0, id, msg);
}
