/* servicevm.c - the singleton Service VM.
 *
 * Design (AVF's service_vm_manager). One struct servicevm per daemon owns
 * at most one VM at any time: a request finds it READY and is written at
 * once, or BOOTING and waits, or finds none and starts it. A VM that is
 * going away (idle stop, failure) is waited for until it is DEAD before a
 * new one starts, so two never run together, not even for a moment; the VM
 * is owned by the daemon itself (vm_daemon_peer()), so it is killed when
 * the daemon stops and never adopted by the next one, which starts its own.
 *
 * Stable identity. Under <state_dir>/servicevm/ (0700, root's): the 64-byte
 * instance_id, allocated once, and instance.img, the 1 MiB raw instance
 * disk the Service VM keeps its keys on (the daemon never reads it). Both
 * survive daemon restarts and upgrades of the daemon or the image.
 *
 * Protocol (docs/attestation.md): the Service VM connects to host vsock
 * port SVM_PORT of its own vsock device (only it can reach that listener);
 * each side writes one CBOR item per message. Requests go out one at a
 * time. An answer larger than SVM_MAX_MSG, one that does not decode, one of
 * the wrong variant, no answer within SERVICEVM_REQUEST_S, or the connection
 * closing is the Service VM's failure: logged, the VM killed, every waiting
 * request failed with UNAVAILABLE; the next request starts a fresh one. An
 * {"Err": code} answer fails only its own request.
 */
#include "config.h"
#include "server/servicevm.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "guest/servicevm/servicevm_proto.h"
#include "lib/cose.h"
#include "lib/log.h"
#include "server/vm.h"

#define SERVICEVM_BOOT_S 180.0	 /* from start to its connection (TCG on a loaded host) */
#define SERVICEVM_REQUEST_S 60.0 /* one request's answer */
#define SERVICEVM_POLL_S 0.25	 /* while a VM boots or goes away: is it dead? */
#define SERVICEVM_MEMORY_MIB 128
#define SERVICEVM_DISK_SIZE (1u << 20)

enum svm_state {
	SVM_OFF,      /* no VM */
	SVM_BOOTING,  /* started, waiting for its connection */
	SVM_READY,    /* connected */
	SVM_STOPPING, /* a VM going away: the next start waits for it to be DEAD */
};

struct servicevm_req {
	struct servicevm_req *next;
	struct servicevm *s;
	uint8_t *msg;
	size_t len;
	char expect[32];
	servicevm_cb cb;
	void *opaque;
};

struct servicevm {
	struct daemon *d;
	unsigned idle_s;
	enum svm_state state;
	struct vm *vm;	/* the current (or the one going away) */
	char vm_id[16]; /* its id, for info (the record may go) */
	uint32_t cid;
	bool have_id;
	uint8_t instance_id[64];
	int lfd, fd;
	ev_io accept_io, read_io, write_io;
	ev_timer poll_timer, deadline, idle_timer;
	struct servicevm_req *queue, *queue_tail; /* head = in flight when inflight */
	bool inflight;
	uint8_t *out;
	size_t out_len, out_off;
	uint8_t in[SVM_MAX_MSG];
	size_t in_len;
	uint8_t self_hash[32], image_hash[32];
	bool have_self_hash, have_image_hash;
};

static void svm_pump(struct servicevm *s);
static void svm_start(struct servicevm *s);

static char *svm_dir(struct servicevm *s)
{
	return xasprintf("%s/servicevm", s->d->cfg.state_dir);
}

static int sha256_file(const char *path, uint8_t out[32])
{
	EVP_MD_CTX *ctx;
	uint8_t buf[65536];
	ssize_t n;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return -1;
	ctx = EVP_MD_CTX_new();
	EVP_DigestInit_ex(ctx, EVP_sha256(), NULL);
	while ((n = read(fd, buf, sizeof(buf))) > 0)
		EVP_DigestUpdate(ctx, buf, (size_t)n);
	EVP_DigestFinal_ex(ctx, out, NULL);
	EVP_MD_CTX_free(ctx);
	close(fd);
	return n < 0 ? -1 : 0;
}

/* ---------------------------------------------------------------- identity */

/* The instance id and disk, made once. Return: 0, or -1 with @err. */
static int svm_identity(struct servicevm *s, char **disk_path, struct vm_error *err)
{
	cleanup_free char *dir = svm_dir(s);
	cleanup_free char *idp = xasprintf("%s/instance_id", dir);
	cleanup_close int fd = -1;
	struct stat st;

	if (mkdir_p(dir, 0700) < 0)
		return vm_error_set_errno(err, VM_INTERNAL, errno, "Service VM state directory %s", dir);
	fd = open(idp, O_RDONLY | O_CLOEXEC);
	if (fd >= 0) {
		if (read(fd, s->instance_id, 64) != 64)
			return vm_error_set(err, VM_INTERNAL, "%s: not 64 bytes", idp);
	} else {
		cleanup_free char *tmp = xasprintf("%s.tmp", idp);
		cleanup_close int w = -1;

		if (getrandom(s->instance_id, 64, 0) != 64)
			return vm_error_errno(err, errno, "getrandom");
		w = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
		if (w < 0 || write(w, s->instance_id, 64) != 64 || fsync(w) < 0 || rename(tmp, idp) < 0)
			return vm_error_set_errno(err, VM_INTERNAL, errno, "cannot write %s", idp);
		log_info("Service VM: instance id allocated in %s", idp);
	}
	s->have_id = true;
	*disk_path = xasprintf("%s/instance.img", dir);
	if (stat(*disk_path, &st) < 0) {
		cleanup_free char *tmp = xasprintf("%s.tmp", *disk_path);
		cleanup_close int w = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

		if (w < 0 || ftruncate(w, SERVICEVM_DISK_SIZE) < 0 || fsync(w) < 0 || rename(tmp, *disk_path) < 0) {
			free(steal_pointer(disk_path));
			return vm_error_set_errno(err, VM_INTERNAL, errno,
						  "cannot create the Service VM instance disk");
		}
	}
	return 0;
}

/* ---------------------------------------------------------------- requests */

static void req_free(struct servicevm_req *r)
{
	free(r->msg);
	free(r);
}

static struct servicevm_req *queue_pop(struct servicevm *s)
{
	struct servicevm_req *r = s->queue;

	if (r) {
		s->queue = r->next;
		if (!s->queue)
			s->queue_tail = NULL;
	}
	return r;
}

static void req_finish(struct servicevm_req *r, cbor_item_t *value, const struct vm_error *err)
{
	if (r->cb)
		r->cb(r->opaque, value, err);
	req_free(r);
}

static void close_conn(struct servicevm *s)
{
	struct ev_loop *loop = s->d->loop;

	ev_io_stop(loop, &s->accept_io);
	ev_io_stop(loop, &s->read_io);
	ev_io_stop(loop, &s->write_io);
	ev_timer_stop(loop, &s->deadline);
	ev_timer_stop(loop, &s->idle_timer);
	if (s->lfd >= 0)
		close(s->lfd);
	if (s->fd >= 0)
		close(s->fd);
	s->lfd = s->fd = -1;
	free(s->out);
	s->out = NULL;
	s->out_len = s->out_off = s->in_len = 0;
	s->inflight = false;
}

/* The Service VM failed: kill it, fail everything waiting. */
static void svm_fail(struct servicevm *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void svm_fail(struct servicevm *s, const char *fmt, ...)
{
	struct vm_error err = { .code = VM_UNAVAILABLE };
	struct servicevm_req *r;
	va_list ap;
	int n;

	n = snprintf(err.message, sizeof(err.message), "Service VM failed: ");
	va_start(ap, fmt);
	vsnprintf(err.message + n, sizeof(err.message) - (size_t)n, fmt, ap);
	va_end(ap);
	log_warn("%s", err.message);
	close_conn(s);
	if (s->vm && vm_state(s->vm) != VIRTMGR__V1__VM_STATE__VM_STATE_DEAD)
		vm_kill(s->vm);
	s->state = s->vm ? SVM_STOPPING : SVM_OFF;
	if (s->vm)
		ev_timer_again(s->d->loop, &s->poll_timer);
	while ((r = queue_pop(s)))
		req_finish(r, NULL, &err);
}

static void on_deadline(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct servicevm *s = w->data;

	(void)loop;
	(void)revents;
	if (s->state == SVM_BOOTING)
		svm_fail(s, "it did not connect within %.0f s of its start", SERVICEVM_BOOT_S);
	else
		svm_fail(s, "no answer within %.0f s", SERVICEVM_REQUEST_S);
}

static void on_idle(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct servicevm *s = w->data;
	static const uint8_t shutdown_msg[] = { 0x68, 'S', 'h', 'u', 't', 'd', 'o', 'w', 'n' };

	(void)loop;
	(void)revents;
	if (s->state != SVM_READY || s->queue)
		return;
	log_info("Service VM idle for %u s: stopping it", s->idle_s);
	/* AVF: Shutdown, then a bounded wait; the core forces it after the timeout */
	if (write(s->fd, shutdown_msg, sizeof(shutdown_msg)) < 0)
		log_debug("Service VM: Shutdown: %s", strerror(errno));
	close_conn(s);
	vm_stop(s->vm, 10000, false);
	s->state = SVM_STOPPING;
	ev_timer_again(s->d->loop, &s->poll_timer);
}

/* The answer of the request in flight: @item decoded. */
static void svm_answer(struct servicevm *s, cbor_item_t *item)
{
	struct servicevm_req *r = s->queue;
	struct cbor_pair *p;
	size_t klen;
	const char *key;

	if (!cbor_isa_map(item) || cbor_map_size(item) != 1 || !cbor_isa_string((p = cbor_map_handle(item))[0].key) ||
	    !cbor_string_is_definite(p[0].key)) {
		svm_fail(s, "malformed answer (not a one-entry map named by a text string)");
		return;
	}
	key = (const char *)cbor_string_handle(p[0].key);
	klen = cbor_string_length(p[0].key);
	if (klen == 3 && !memcmp(key, "Err", 3)) {
		struct vm_error err = { 0 };
		uint64_t code = cbor_isa_uint(p[0].value) ? cbor_get_int(p[0].value) : 0;

		vm_error_set(&err, code == SVM_ERR_INVALID_REQUEST ? VM_INVALID_ARGUMENT : VM_INTERNAL,
			     "the Service VM refused the request (error %llu)", (unsigned long long)code);
		s->inflight = false;
		ev_timer_stop(s->d->loop, &s->deadline);
		req_finish(queue_pop(s), NULL, &err);
		svm_pump(s);
		return;
	}
	if (klen != strlen(r->expect) || memcmp(key, r->expect, klen)) {
		svm_fail(s, "answer \"%.*s\" to a %s request", (int)MIN(klen, (size_t)32), key, r->expect);
		return;
	}
	s->inflight = false;
	ev_timer_stop(s->d->loop, &s->deadline);
	req_finish(queue_pop(s), p[0].value, NULL);
	svm_pump(s);
}

static void on_read(struct ev_loop *loop, ev_io *w, int revents)
{
	struct servicevm *s = w->data;
	struct cbor_load_result res;
	cbor_item_t *item;
	size_t end = 0;
	ssize_t n;
	int r;

	(void)loop;
	(void)revents;
	if (s->in_len == sizeof(s->in)) {
		svm_fail(s, "an answer larger than %u bytes", (unsigned)SVM_MAX_MSG);
		return;
	}
	n = read(s->fd, s->in + s->in_len, sizeof(s->in) - s->in_len);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		if (s->inflight || s->queue)
			svm_fail(s, "its connection closed%s%s", n < 0 ? ": " : "", n < 0 ? strerror(errno) : "");
		else
			svm_fail(s, "its connection closed while idle");
		return;
	}
	s->in_len += (size_t)n;
	if (!s->inflight) {
		svm_fail(s, "it sent %zd bytes nobody asked for", n);
		return;
	}
	/* one CBOR item checked before libcbor sees it (lib/cose.c): libcbor
	 * allocates whatever count a header declares */
	r = cose_cbor_scan(s->in, s->in_len, SVM_MAX_MSG, &end);
	if (r > 0)
		return; /* more to come */
	if (r < 0) {
		svm_fail(s, "malformed CBOR answer (a bad header, an indefinite length or a count over %u)",
			 (unsigned)SVM_MAX_MSG);
		return;
	}
	if (end != s->in_len) {
		svm_fail(s, "%zu bytes after its answer", s->in_len - end);
		return;
	}
	item = cbor_load(s->in, s->in_len, &res);
	if (!item) {
		svm_fail(s, "malformed CBOR answer (error %d at byte %zu)", (int)res.error.code, res.error.position);
		return;
	}
	if (res.read != s->in_len) {
		cbor_decref(&item);
		svm_fail(s, "%zu bytes after its answer", s->in_len - res.read);
		return;
	}
	s->in_len = 0;
	svm_answer(s, item);
	cbor_decref(&item);
}

static void on_write(struct ev_loop *loop, ev_io *w, int revents)
{
	struct servicevm *s = w->data;
	ssize_t n;

	(void)revents;
	while (s->out_off < s->out_len) {
		n = send(s->fd, s->out + s->out_off, s->out_len - s->out_off, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return;
		if (n < 0) {
			svm_fail(s, "writing a request: %s", strerror(errno));
			return;
		}
		s->out_off += (size_t)n;
	}
	ev_io_stop(loop, w);
	free(s->out);
	s->out = NULL;
	s->out_len = s->out_off = 0;
}

/* Send the next request when none is in flight. */
static void svm_pump(struct servicevm *s)
{
	struct servicevm_req *r = s->queue;

	if (!r) {
		if (s->state == SVM_READY && s->idle_s)
			ev_timer_again(s->d->loop, &s->idle_timer);
		return;
	}
	ev_timer_stop(s->d->loop, &s->idle_timer);
	if (s->state == SVM_OFF) {
		svm_start(s);
		return;
	}
	if (s->state != SVM_READY || s->inflight)
		return;
	s->inflight = true;
	s->out = steal_pointer(&r->msg);
	s->out_len = r->len;
	s->out_off = 0;
	s->deadline.repeat = SERVICEVM_REQUEST_S;
	ev_timer_again(s->d->loop, &s->deadline);
	ev_io_start(s->d->loop, &s->write_io);
}

/* Each boot's first request: AVF's Reverse self-test, 32 random bytes. */
struct svm_selftest {
	struct servicevm *s;
	uint8_t bytes[32];
};

static void selftest_done(void *opaque, cbor_item_t *value, const struct vm_error *err)
{
	struct svm_selftest *t = opaque;
	struct servicevm *s = t->s;
	bool good = value && cbor_isa_bytestring(value) && cbor_bytestring_is_definite(value) &&
		    cbor_bytestring_length(value) == sizeof(t->bytes);

	for (size_t i = 0; good && i < sizeof(t->bytes); i++)
		good = cbor_bytestring_handle(value)[i] == t->bytes[sizeof(t->bytes) - 1 - i];
	free(t);
	if (!value)
		return; /* already failed, and said why */
	if (!good) {
		svm_fail(s, "its Reverse self-test answer is wrong");
		return;
	}
	log_debug("Service VM: Reverse self-test passed");
}

/* Put the self-test first in the queue. */
static void selftest_queue(struct servicevm *s)
{
	struct svm_selftest *t = xzalloc(sizeof(*t));
	struct servicevm_req *r = xzalloc(sizeof(*r));
	cbor_item_t *top = cbor_new_definite_map(1), *rev = cbor_new_definite_map(1);
	unsigned char *buf = NULL;
	size_t bufsz = 0;

	t->s = s;
	if (getrandom(t->bytes, sizeof(t->bytes), 0) != sizeof(t->bytes))
		memset(t->bytes, 0x5a, sizeof(t->bytes));
	cbor_map_add(rev, (struct cbor_pair){ .key = cbor_move(cbor_build_string("Reverse")),
					      .value = cbor_move(cbor_build_bytestring(t->bytes, sizeof(t->bytes))) });
	cbor_map_add(top,
		     (struct cbor_pair){ .key = cbor_move(cbor_build_string("Process")), .value = cbor_move(rev) });
	r->len = cbor_serialize_alloc(top, &buf, &bufsz);
	cbor_decref(&top);
	r->msg = buf;
	r->s = s;
	snprintf(r->expect, sizeof(r->expect), "Reverse");
	r->cb = selftest_done;
	r->opaque = t;
	r->next = s->queue;
	s->queue = r;
	if (!s->queue_tail)
		s->queue_tail = r;
}

static void on_accept(struct ev_loop *loop, ev_io *w, int revents)
{
	struct servicevm *s = w->data;
	struct vm_error err = { 0 };
	int fd;

	(void)revents;
	fd = vm_vsock_accept(s->vm, s->lfd, &err);
	if (fd < 0) {
		if (err.code != VM_UNAVAILABLE || err.message[0])
			log_warn("Service VM: %s", err.message);
		return;
	}
	/* one connection per boot: nothing else may listen here */
	ev_io_stop(loop, &s->accept_io);
	close(s->lfd);
	s->lfd = -1;
	s->fd = fd;
	ev_io_init(&s->read_io, on_read, fd, EV_READ);
	ev_io_init(&s->write_io, on_write, fd, EV_WRITE);
	s->read_io.data = s->write_io.data = s;
	ev_io_start(loop, &s->read_io);
	ev_timer_stop(loop, &s->deadline);
	s->state = SVM_READY;
	ev_timer_stop(loop, &s->poll_timer);
	log_info("Service VM %s (cid %u) connected", s->vm_id, s->cid);
	vm_report_ready(s->vm);
	selftest_queue(s);
	svm_pump(s);
}

/* ---------------------------------------------------------------- lifecycle */

/* A Service VM of a daemon that died: adopted at start-up and being
 * stopped (its owner is gone). Return: it, or NULL. */
static struct vm *svm_leftover(struct servicevm *s)
{
	for (struct vm *vm = vm_next(s->d, NULL); vm; vm = vm_next(s->d, vm)) {
		Virtmgr__V1__VmInfo info = VIRTMGR__V1__VM_INFO__INIT;

		vm_fill_info(vm, &info);
		if (vm != s->vm && info.owner_uid == 0 && !strcmp(info.name, SERVICEVM_NAME) &&
		    info.state != VIRTMGR__V1__VM_STATE__VM_STATE_DEAD)
			return vm;
	}
	return NULL;
}

static void svm_start(struct servicevm *s)
{
	Virtmgr__V1__VmConfig cfg = VIRTMGR__V1__VM_CONFIG__INIT;
	Virtmgr__V1__Disk disk = VIRTMGR__V1__DISK__INIT, *disks[1] = { &disk };
	struct vm_error err = { 0 };
	cleanup_free char *disk_path = NULL, *kernel = NULL, *initrd = NULL;
	struct vm *vm = svm_leftover(s);
	struct servicevm_req *r;

	if (vm) {
		/* never two at once: wait until the old one is dead (start-up kills it) */
		Virtmgr__V1__VmInfo info = VIRTMGR__V1__VM_INFO__INIT;

		vm_fill_info(vm, &info);
		log_info("Service VM: waiting for %s of a previous virtmgrd to stop", info.id);
		s->vm = vm;
		s->state = SVM_STOPPING;
		ev_timer_again(s->d->loop, &s->poll_timer);
		return;
	}
	if (svm_identity(s, &disk_path, &err) < 0)
		goto fail;
	kernel = xasprintf("%s/vmlinuz", s->d->cfg.guest_dir);
	initrd = xasprintf("%s/servicevm-initramfs.img", s->d->cfg.guest_dir);
	/* the image it boots now, also after an upgrade */
	if (sha256_file(initrd, s->image_hash) < 0) {
		vm_error_set_errno(&err, VM_FAILED_PRECONDITION, errno, "the Service VM image %s", initrd);
		goto fail;
	}
	s->have_image_hash = true;
	cfg.name = (char *)SERVICEVM_NAME;
	cfg.kernel = kernel;
	cfg.initrd = initrd;
	cfg.memory_mib = SERVICEVM_MEMORY_MIB;
	cfg.cpus = 1;
	cfg.instance_id.data = s->instance_id;
	cfg.instance_id.len = sizeof(s->instance_id);
	cfg.on_hang = VIRTMGR__V1__ON_HANG__ON_HANG_NONE;
#ifdef VIRTMGR_TEST_HOOKS
	/* tests/integration/attest_servicevm.sh: e.g. servicevm.delay_ms=N */
	if (getenv("VIRTMGR_TEST_SERVICEVM_CMDLINE")) {
		cfg.cmdline = getenv("VIRTMGR_TEST_SERVICEVM_CMDLINE");
		log_warn("VIRTMGR_TEST_SERVICEVM_CMDLINE: the Service VM boots with \"%s\"", cfg.cmdline);
	}
#endif
	disk.path = disk_path;
	disk.label = (char *)"vm-instance";
	cfg.n_disks = 1;
	cfg.disks = disks;
	if (vm_create(s->d, &cfg, NULL, &vm, &err) < 0)
		goto fail;
	if (vm_start(vm, &err) < 0)
		goto fail;
	s->lfd = vm_vsock_listen(vm, SVM_PORT, &err);
	if (s->lfd < 0) {
		vm_kill(vm);
		goto fail;
	}
	s->vm = vm;
	{
		Virtmgr__V1__VmInfo info = VIRTMGR__V1__VM_INFO__INIT;

		vm_fill_info(vm, &info);
		snprintf(s->vm_id, sizeof(s->vm_id), "%s", info.id);
		s->cid = info.cid;
	}
	s->state = SVM_BOOTING;
	ev_io_init(&s->accept_io, on_accept, s->lfd, EV_READ);
	s->accept_io.data = s;
	ev_io_start(s->d->loop, &s->accept_io);
	s->deadline.repeat = SERVICEVM_BOOT_S;
	ev_timer_again(s->d->loop, &s->deadline);
	ev_timer_again(s->d->loop, &s->poll_timer);
	log_info("Service VM %s started (cid %u)", s->vm_id, s->cid);
	return;
fail:
	vm_error_prefix(&err, "cannot start the Service VM");
	log_warn("%s", err.message);
	if (vm && vm_state(vm) != VIRTMGR__V1__VM_STATE__VM_STATE_DEAD)
		vm_kill(vm);
	if (vm)
		vm_orphan(vm);
	while ((r = queue_pop(s)))
		req_finish(r, NULL, &err);
}

/* While a VM boots or goes away: notice its death. */
static void on_poll(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct servicevm *s = w->data;

	(void)revents;
	if (!s->vm || vm_state(s->vm) != VIRTMGR__V1__VM_STATE__VM_STATE_DEAD) {
		if (s->state == SVM_READY || s->state == SVM_OFF)
			ev_timer_stop(loop, w);
		return;
	}
	ev_timer_stop(loop, w);
	if (s->state == SVM_BOOTING) {
		Virtmgr__V1__VmInfo info = VIRTMGR__V1__VM_INFO__INIT;

		vm_fill_info(s->vm, &info);
		svm_fail(s, "it died while booting: %s", info.message && *info.message ? info.message : "no reason");
	}
	/* the record is the core's: dropped once dead */
	vm_orphan(s->vm);
	s->vm = NULL;
	s->cid = 0;
	s->vm_id[0] = 0;
	s->state = SVM_OFF;
	svm_pump(s);
}

struct servicevm *servicevm_new(struct daemon *d, unsigned idle_s)
{
	struct servicevm *s = xzalloc(sizeof(*s));

	s->d = d;
	s->idle_s = idle_s;
	s->lfd = s->fd = -1;
	ev_init(&s->poll_timer, on_poll);
	s->poll_timer.repeat = SERVICEVM_POLL_S;
	ev_init(&s->deadline, on_deadline);
	ev_init(&s->idle_timer, on_idle);
	s->idle_timer.repeat = idle_s;
	s->poll_timer.data = s->deadline.data = s->idle_timer.data = s;
	/* the identity, if a previous daemon made it, for DaemonInfo */
	{
		cleanup_free char *idp = xasprintf("%s/servicevm/instance_id", d->cfg.state_dir);
		cleanup_close int fd = open(idp, O_RDONLY | O_CLOEXEC);

		if (fd >= 0 && read(fd, s->instance_id, 64) == 64)
			s->have_id = true;
	}
	return s;
}

void servicevm_free(struct servicevm *s)
{
	struct vm_error err = { .code = VM_UNAVAILABLE, .message = "the daemon is stopping" };
	struct servicevm_req *r;

	if (!s)
		return;
	close_conn(s);
	ev_timer_stop(s->d->loop, &s->poll_timer);
	while ((r = queue_pop(s)))
		req_finish(r, NULL, &err);
	free(s);
}

static void on_kick(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct servicevm *s = w->data;

	(void)revents;
	ev_timer_stop(loop, w);
	free(w);
	svm_pump(s);
}

struct servicevm_req *servicevm_request(struct servicevm *s, cbor_item_t *req, const char *expect, servicevm_cb cb,
					void *opaque)
{
	struct servicevm_req *r = xzalloc(sizeof(*r));
	cbor_item_t *top = cbor_new_definite_map(1);
	unsigned char *buf = NULL;
	size_t bufsz = 0;
	ev_timer *kick = xzalloc(sizeof(*kick));

	cbor_map_add(top, (struct cbor_pair){ .key = cbor_move(cbor_build_string("Process")), .value = req });
	cbor_decref(&req);
	r->len = cbor_serialize_alloc(top, &buf, &bufsz);
	cbor_decref(&top);
	r->msg = buf;
	r->s = s;
	snprintf(r->expect, sizeof(r->expect), "%s", expect);
	r->cb = cb;
	r->opaque = opaque;
	if (s->queue_tail)
		s->queue_tail->next = r;
	else
		s->queue = r;
	s->queue_tail = r;
	/* callbacks never run from inside this call: start on the next loop turn */
	ev_timer_init(kick, on_kick, 0, 0);
	kick->data = s;
	ev_timer_start(s->d->loop, kick);
	return r;
}

void servicevm_cancel(struct servicevm_req *r)
{
	r->cb = NULL;
}

void servicevm_fill_info(struct servicevm *s, Virtmgr__V1__ServiceVmInfo *info)
{
	info->running = s->vm && (s->state == SVM_BOOTING || s->state == SVM_READY);
	info->cid = info->running ? s->cid : 0;
	info->vm = info->running ? s->vm_id : (char *)"";
	if (s->have_id) {
		info->instance_id.data = s->instance_id;
		info->instance_id.len = sizeof(s->instance_id);
	}
}

static cbor_item_t *sw_component(const char *type, const uint8_t *hash, const char *version)
{
	cbor_item_t *a = cbor_new_definite_array(3);

	cbor_array_push(a, cbor_move(cbor_build_string(type)));
	cbor_array_push(a, cbor_move(cbor_build_bytestring(hash, 32)));
	cbor_array_push(a, cbor_move(cbor_build_string(version)));
	return a;
}

cbor_item_t *servicevm_platform_sw(struct servicevm *s)
{
	cbor_item_t *a = cbor_new_definite_array(2);

	if (!s->have_self_hash && sha256_file("/proc/self/exe", s->self_hash) == 0)
		s->have_self_hash = true;
	if (!s->have_image_hash) {
		/* asked before its first start: the image it is about to boot */
		cleanup_free char *initrd = xasprintf("%s/servicevm-initramfs.img", s->d->cfg.guest_dir);

		s->have_image_hash = sha256_file(initrd, s->image_hash) == 0;
	}
	cbor_array_push(a, cbor_move(sw_component("virtmgrd", s->self_hash, PACKAGE_VERSION)));
	cbor_array_push(a, cbor_move(sw_component("servicevm-image", s->image_hash, PACKAGE_VERSION)));
	return a;
}
