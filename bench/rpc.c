/* rpc.c - RPC latency, throughput and connection-scale benchmark of virtmgrd
 * against a floor measured in the same run (bench-echo, bench/echo.c).
 *
 * Design. The client side is identical for both servers: requests are
 * pre-encoded ttrpc frames written with write() and answers are read back by
 * their 10-byte header, so the only difference is the server. Requests to
 * the daemon are real ttrpc.Request frames (GetDaemonInfo, ListVms); those
 * to the echo server have exactly the same length, their first four body
 * bytes asking for an answer exactly as long as the daemon's (measured with
 * one checked call first). Every figure is measured in pairs - daemon, then
 * floor - after a warm-up pair; bench/run turns the pairs into ratios.
 *
 * Sections: unary round trips of one client (p50/p99 over --calls calls),
 * ListVms with no VMs and with --vms NOT_STARTED VMs (created with CreateVm
 * on a control connection held open), calls/s of 1, 8 and 64 client threads
 * each on its own connection, one call at a time and pipelined (--depth
 * calls outstanding on distinct stream ids), and the same latency with
 * --idle idle connections open (pairs: with, without) plus the daemon's RSS
 * per idle connection.
 *
 * Output: one JSON object per figure on stdout:
 *   {"id":..., "label":..., "unit":..., "ours":[...], "base":[...]}
 * where ours[i] and base[i] were measured as a pair ("base" is absent for a
 * figure without a floor).
 */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "lib/ttrpc.h"
#include "lib/ttrpc-priv.h"
#include "lib/util.h"
#include "protos/ttrpc.pb-c.h"
#include "protos/virtmgr.pb-c.h"

#define SERVICE "virtmgr.v1.VirtualizationService"
#define MAX_REPS 100

struct opts {
	const char *daemon;
	const char *echo;
	int reps;
	int warmup;
	int calls;
	int duration_ms;
	int idle;
	int vms;
	int depth;
	const char *only;
};

/* One request as both servers get it. */
struct req {
	const char *method;
	uint8_t *frame[2]; /* [0] daemon, [1] echo */
	size_t len;	   /* both frames */
	size_t resp_body;  /* the daemon's answer body, requested from the echo server */
};

struct rbuf {
	uint8_t *buf;
	size_t len, cap;
};

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void die(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fputs("bench-rpc: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	exit(1);
}

static int connect_unix(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -1;
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		int e = errno;

		close(fd);
		errno = e;
		return -1;
	}
	return fd;
}

static void set_stream(uint8_t *frame, uint32_t sid)
{
	frame[4] = (uint8_t)(sid >> 24);
	frame[5] = (uint8_t)(sid >> 16);
	frame[6] = (uint8_t)(sid >> 8);
	frame[7] = (uint8_t)sid;
}

static void write_full(int fd, const uint8_t *buf, size_t len)
{
	while (len) {
		ssize_t n = write(fd, buf, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			die("write: %s", n < 0 ? strerror(errno) : "short write");
		buf += n;
		len -= (size_t)n;
	}
}

/* Read until @rb holds at least @want bytes. */
static void rbuf_fill(int fd, struct rbuf *rb, size_t want)
{
	while (rb->len < want) {
		if (rb->cap - rb->len < 65536) {
			rb->cap = rb->cap ? rb->cap * 2 : 262144;
			rb->buf = xrealloc(rb->buf, rb->cap);
		}
		ssize_t n = read(fd, rb->buf + rb->len, rb->cap - rb->len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			die("read: %s", n < 0 ? strerror(errno) : "connection closed by the server");
		rb->len += (size_t)n;
	}
}

static void rbuf_consume(struct rbuf *rb, size_t n)
{
	memmove(rb->buf, rb->buf + n, rb->len - n);
	rb->len -= n;
}

/* One call: send @frame as stream @sid, read its answer. Return: the answer's body length. */
static size_t raw_call(int fd, uint8_t *frame, size_t len, uint32_t sid, struct rbuf *rb, uint8_t **body)
{
	struct ttrpc_header h;

	set_stream(frame, sid);
	write_full(fd, frame, len);
	rbuf_fill(fd, rb, TTRPC_HEADER_SIZE);
	ttrpc_header_decode(rb->buf, &h);
	rbuf_fill(fd, rb, TTRPC_HEADER_SIZE + (size_t)h.length);
	if (h.stream_id != sid || h.type != TTRPC_TYPE_RESPONSE)
		die("fd %d: answer on stream %u type %u, expected a response on stream %u", fd, h.stream_id, h.type,
		    sid);
	if (body) {
		*body = xmalloc(h.length ? h.length : 1);
		memcpy(*body, rb->buf + TTRPC_HEADER_SIZE, h.length);
	}
	rbuf_consume(rb, TTRPC_HEADER_SIZE + h.length);
	return h.length;
}

/* ------------------------------------------------------------ requests */

/*
 * Build @method's frames and measure the daemon's answer with one checked
 * call on a fresh connection (status OK, payload unpacks as @resp_desc).
 */
static void req_prepare(struct req *r, const struct opts *o, const char *method, const ProtobufCMessage *msg,
			const ProtobufCMessageDescriptor *resp_desc)
{
	struct rbuf rb = { 0 };
	cleanup_free uint8_t *body = NULL;
	cleanup_free uint8_t *payload = NULL;
	struct vm_error st = { 0 };
	size_t plen, blen;
	int fd;

	free(r->frame[0]);
	free(r->frame[1]);
	r->method = method;
	r->frame[0] = ttrpc_build_request(1, 0, SERVICE, method, msg, 0, &r->len);
	fd = connect_unix(o->daemon);
	if (fd < 0)
		die("%s: %s", o->daemon, strerror(errno));
	blen = raw_call(fd, r->frame[0], r->len, 1, &rb, &body);
	close(fd);
	free(rb.buf);
	if (ttrpc_parse_response(body, blen, &st, &payload, &plen) < 0 || st.code != 0)
		die("%s: status %d: %s", method, st.code, st.message);
	/* the answer is what protobuf-c itself writes for it (the daemon packs responses in place) */
	Ttrpc__Response *env = ttrpc__response__unpack(NULL, blen, body);
	size_t rlen;
	cleanup_free uint8_t *repacked = env ? ttrpc_pack(&env->base, &rlen) : NULL;

	if (!env || rlen != blen || memcmp(repacked, body, blen) != 0)
		die("%s: the answer's envelope is not canonical protobuf", method);
	ttrpc__response__free_unpacked(env, NULL);
	ProtobufCMessage *m = protobuf_c_message_unpack(resp_desc, NULL, plen, payload);

	if (!m)
		die("%s: answer does not unpack as %s", method, resp_desc->name);
	protobuf_c_message_free_unpacked(m, NULL);
	r->resp_body = blen;
	r->frame[1] = xcalloc(1, r->len);
	struct ttrpc_header h = { .length = (uint32_t)(r->len - TTRPC_HEADER_SIZE),
				  .stream_id = 1,
				  .type = TTRPC_TYPE_REQUEST };

	ttrpc_header_encode(&h, r->frame[1]);
	uint8_t *b = r->frame[1] + TTRPC_HEADER_SIZE;

	b[0] = (uint8_t)(blen >> 24);
	b[1] = (uint8_t)(blen >> 16);
	b[2] = (uint8_t)(blen >> 8);
	b[3] = (uint8_t)blen;
	/* and check the floor answers with the same size */
	fd = connect_unix(o->echo);
	if (fd < 0)
		die("%s: %s", o->echo, strerror(errno));
	rb = (struct rbuf){ 0 };
	if (raw_call(fd, r->frame[1], r->len, 1, &rb, NULL) != blen)
		die("echo server answered with the wrong size");
	close(fd);
	free(rb.buf);
	fprintf(stderr, "bench-rpc: %s: request %zu bytes, answer %zu bytes\n", method, r->len,
		blen + TTRPC_HEADER_SIZE);
}

/* ------------------------------------------------------------ output */

struct series {
	double ours[MAX_REPS];
	double base[MAX_REPS];
	int n;
};

static void emit(const char *id, const char *label, const char *unit, const struct series *s, bool has_base)
{
	printf("{\"id\":\"%s\",\"label\":\"%s\",\"unit\":\"%s\",\"ours\":[", id, label, unit);
	for (int i = 0; i < s->n; i++)
		printf("%s%.6g", i ? "," : "", s->ours[i]);
	printf("]");
	if (has_base) {
		printf(",\"base\":[");
		for (int i = 0; i < s->n; i++)
			printf("%s%.6g", i ? "," : "", s->base[i]);
		printf("]");
	}
	printf("}\n");
	fflush(stdout);
}

/* ------------------------------------------------------------ latency */

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* @calls round trips on one connection; p50 and p99 in microseconds. */
static void latency(const char *path, struct req *r, int which, int calls, double *p50, double *p99)
{
	cleanup_free uint64_t *t = xcalloc((size_t)calls, sizeof(*t));
	struct rbuf rb = { 0 };
	int fd = connect_unix(path);

	if (fd < 0)
		die("%s: %s", path, strerror(errno));
	for (int i = 0; i < calls; i++) {
		uint64_t t0 = now_ns();

		raw_call(fd, r->frame[which], r->len, 2 * (uint32_t)i + 1, &rb, NULL);
		t[i] = now_ns() - t0;
	}
	close(fd);
	free(rb.buf);
	qsort(t, (size_t)calls, sizeof(*t), cmp_u64);
	*p50 = (double)t[calls / 2] / 1e3;
	*p99 = (double)t[(size_t)calls * 99 / 100] / 1e3;
}

static void bench_latency(const struct opts *o, struct req *r, const char *id, const char *label, bool p99)
{
	struct series s50 = { 0 }, s99 = { 0 };
	double a50, a99, b50, b99;

	for (int i = -o->warmup; i < o->reps; i++) {
		latency(o->daemon, r, 0, o->calls, &a50, &a99);
		latency(o->echo, r, 1, o->calls, &b50, &b99);
		if (i < 0)
			continue;
		s50.ours[s50.n] = a50;
		s50.base[s50.n++] = b50;
		s99.ours[s99.n] = a99;
		s99.base[s99.n++] = b99;
	}
	char sid[64], slabel[160];

	snprintf(sid, sizeof(sid), "%s_p50", id);
	snprintf(slabel, sizeof(slabel), "%s p50 round trip", label);
	emit(sid, slabel, "us", &s50, true);
	if (p99) {
		snprintf(sid, sizeof(sid), "%s_p99", id);
		snprintf(slabel, sizeof(slabel), "%s p99 round trip", label);
		emit(sid, slabel, "us", &s99, true);
	}
}

/* ------------------------------------------------------------ throughput */

struct tp_shared {
	pthread_barrier_t start;
	uint64_t end_ns;
};

struct tp_thread {
	pthread_t th;
	struct tp_shared *sh;
	struct req *r;
	int which;
	int depth;
	int fd;
	uint64_t calls;
};

static void *tp_main(void *arg)
{
	struct tp_thread *t = arg;

	struct req *r = t->r;
	struct rbuf rb = { 0 };
	uint32_t sid = 1;
	size_t batch_cap = (size_t)t->depth * r->len;
	cleanup_free uint8_t *batch = xmalloc(batch_cap);
	/* raw_call() writes the stream id into the frame: each thread has its own copy */
	cleanup_free uint8_t *frame = xmalloc(r->len);

	memcpy(frame, r->frame[t->which], r->len);
	pthread_barrier_wait(&t->sh->start);
	uint64_t end = t->sh->end_ns;

	if (t->depth <= 1) {
		while (now_ns() < end) {
			raw_call(t->fd, frame, r->len, sid, &rb, NULL);
			sid += 2;
			t->calls++;
		}
		free(rb.buf);
		return NULL;
	}
	/* pipelined: keep depth calls outstanding; one write refills what one read completed */
	size_t n = 0;

	for (int i = 0; i < t->depth; i++, sid += 2) {
		memcpy(batch + n, frame, r->len);
		set_stream(batch + n, sid);
		n += r->len;
	}
	write_full(t->fd, batch, n);
	for (;;) {
		size_t done = 0, off = 0;

		rbuf_fill(t->fd, &rb, rb.len + 1);
		for (;;) {
			struct ttrpc_header h;

			if (rb.len - off < TTRPC_HEADER_SIZE)
				break;
			ttrpc_header_decode(rb.buf + off, &h);
			if (rb.len - off < TTRPC_HEADER_SIZE + (size_t)h.length)
				break;
			if (h.type != TTRPC_TYPE_RESPONSE)
				die("pipelined: unexpected frame type %u", h.type);
			off += TTRPC_HEADER_SIZE + h.length;
			done++;
		}
		rbuf_consume(&rb, off);
		if (now_ns() >= end)
			break;
		t->calls += done;
		n = 0;
		for (size_t i = 0; i < done; i++, sid += 2) {
			memcpy(batch + n, frame, r->len);
			set_stream(batch + n, sid);
			n += r->len;
		}
		if (n)
			write_full(t->fd, batch, n);
	}
	free(rb.buf);
	return NULL;
}

/* Return: calls per second of @clients threads for @ms milliseconds. */
static double throughput(const char *path, struct req *r, int which, int clients, int depth, int ms)
{
	struct tp_shared sh;
	struct tp_thread *t = xcalloc((size_t)clients, sizeof(*t));
	uint64_t total = 0, t0;

	pthread_barrier_init(&sh.start, NULL, (unsigned)clients + 1);
	for (int i = 0; i < clients; i++) {
		t[i] = (struct tp_thread){ .sh = &sh, .r = r, .which = which, .depth = depth };
		t[i].fd = connect_unix(path);
		if (t[i].fd < 0)
			die("%s: %s", path, strerror(errno));
		if (pthread_create(&t[i].th, NULL, tp_main, &t[i]) != 0)
			die("pthread_create failed");
	}
	t0 = now_ns();
	sh.end_ns = t0 + (uint64_t)ms * 1000000u;
	pthread_barrier_wait(&sh.start);
	for (int i = 0; i < clients; i++) {
		pthread_join(t[i].th, NULL);
		close(t[i].fd);
		total += t[i].calls;
	}
	pthread_barrier_destroy(&sh.start);
	free(t);
	return (double)total * 1000.0 / ms;
}

/* CPU time (user + system) of @pid in microseconds. */
static double cpu_us(int pid)
{
	char path[64], buf[1024];
	unsigned long ut = 0, st = 0;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/stat", pid);
	f = fopen(path, "re");
	if (!f || !fgets(buf, sizeof(buf), f))
		die("%s: %s", path, strerror(errno));
	fclose(f);
	const char *p = strrchr(buf, ')');

	/* fields after the command: state ppid ... utime (14th) stime (15th) */
	if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) != 2)
		die("%s: unexpected format", path);
	return (double)(ut + st) * 1e6 / (double)sysconf(_SC_CLK_TCK);
}

/* The pid of the server listening on @path (SO_PEERCRED of a connection). */
static int server_pid(const char *path)
{
	struct ucred cr;
	socklen_t len = sizeof(cr);
	int fd = connect_unix(path);

	if (fd < 0 || getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &len) < 0)
		die("%s: %s", path, strerror(errno));
	close(fd);
	return cr.pid;
}

static void bench_throughput(const struct opts *o, struct req *r, int clients, int depth)
{
	struct series s = { 0 }, cpu = { 0 };
	char id[64], label[160];
	int dpid = server_pid(o->daemon), epid = server_pid(o->echo);

	for (int i = -o->warmup; i < o->reps; i++) {
		double c0 = cpu_us(dpid);
		double a = throughput(o->daemon, r, 0, clients, depth, o->duration_ms);
		double c1 = cpu_us(dpid), e0 = cpu_us(epid);
		double b = throughput(o->echo, r, 1, clients, depth, o->duration_ms);
		double e1 = cpu_us(epid);

		if (i < 0)
			continue;
		s.ours[s.n] = a;
		s.base[s.n++] = b;
		/* calls = rate * window */
		cpu.ours[cpu.n] = (c1 - c0) / (a * o->duration_ms / 1000.0);
		cpu.base[cpu.n++] = (e1 - e0) / (b * o->duration_ms / 1000.0);
	}
	snprintf(id, sizeof(id), "tput_%dc_%s", clients, depth > 1 ? "pipe" : "sync");
	if (depth > 1)
		snprintf(label, sizeof(label), "GetDaemonInfo calls/s, %d client%s, pipelined %d deep", clients,
			 clients > 1 ? "s" : "", depth);
	else
		snprintf(label, sizeof(label), "GetDaemonInfo calls/s, %d client%s, one call at a time", clients,
			 clients > 1 ? "s" : "");
	emit(id, label, "calls/s", &s, true);
	if (depth > 1) {
		snprintf(id, sizeof(id), "cpu_%dc_pipe", clients);
		snprintf(label, sizeof(label), "server CPU per call, %d client%s pipelined (clock ticks)", clients,
			 clients > 1 ? "s" : "");
		emit(id, label, "us", &cpu, true);
	}
}

/* ------------------------------------------------------------ control calls */

static Virtmgr__V1__DaemonInfo *daemon_info(struct ttrpc_client *cl)
{
	Virtmgr__V1__GetDaemonInfoRequest req = VIRTMGR__V1__GET_DAEMON_INFO_REQUEST__INIT;
	ProtobufCMessage *resp = NULL;
	struct vm_error err = { 0 };

	if (ttrpc_client_call(cl, SERVICE, "GetDaemonInfo", &req.base, NULL, 0, &virtmgr__v1__daemon_info__descriptor,
			      &resp, NULL, NULL, 0, &err) < 0)
		die("GetDaemonInfo: %s", err.message);
	return (Virtmgr__V1__DaemonInfo *)resp;
}

static void create_vms(struct ttrpc_client *cl, int n)
{
	for (int i = 0; i < n; i++) {
		Virtmgr__V1__CreateVmRequest req = VIRTMGR__V1__CREATE_VM_REQUEST__INIT;
		Virtmgr__V1__VmConfig cfg = VIRTMGR__V1__VM_CONFIG__INIT;
		char *args[] = { "/bin/true" };
		char name[32];
		ProtobufCMessage *resp = NULL;
		struct vm_error err = { 0 };

		snprintf(name, sizeof(name), "bench-%d", i);
		cfg.name = name;
		cfg.memory_mib = 64;
		cfg.n_payload_args = 1;
		cfg.payload_args = args;
		req.config = &cfg;
		if (ttrpc_client_call(cl, SERVICE, "CreateVm", &req.base, NULL, 0,
				      &virtmgr__v1__create_vm_response__descriptor, &resp, NULL, NULL, 0, &err) < 0)
			die("CreateVm %s: %s", name, err.message);
		protobuf_c_message_free_unpacked(resp, NULL);
	}
}

static long rss_kib(int pid)
{
	char path[64], line[256];
	long kib = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", pid);
	f = fopen(path, "re");
	if (!f)
		die("%s: %s", path, strerror(errno));
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "VmRSS: %ld", &kib) == 1)
			break;
	fclose(f);
	return kib;
}

/* ------------------------------------------------------------ connection scale */

static int *open_idle(const struct opts *o, struct ttrpc_client *ctl)
{
	int *fds = xcalloc((size_t)o->idle, sizeof(int));

	for (int i = 0; i < o->idle; i++) {
		fds[i] = connect_unix(o->daemon);
		if (fds[i] < 0)
			die("idle connection %d: %s (is the daemon's ulimit -n high enough?)", i, strerror(errno));
	}
	/* wait until the daemon has accepted them all */
	for (int tries = 0;; tries++) {
		Virtmgr__V1__DaemonInfo *di = daemon_info(ctl);
		bool done = di->connection_count >= (uint32_t)o->idle + 1;

		protobuf_c_message_free_unpacked(&di->base, NULL);
		if (done)
			break;
		if (tries > 2000)
			die("the daemon did not accept %d connections", o->idle);
		usleep(5000);
	}
	return fds;
}

static void close_idle(const struct opts *o, int *fds, struct ttrpc_client *ctl)
{
	for (int i = 0; i < o->idle; i++)
		close(fds[i]);
	free(fds);
	for (int tries = 0;; tries++) {
		Virtmgr__V1__DaemonInfo *di = daemon_info(ctl);
		bool done = di->connection_count <= 1;

		protobuf_c_message_free_unpacked(&di->base, NULL);
		if (done)
			break;
		if (tries > 2000)
			die("the daemon did not close the idle connections");
		usleep(5000);
	}
}

static void bench_conn_scale(const struct opts *o, struct req *r, struct ttrpc_client *ctl, int pid)
{
	struct series lat = { 0 }, rss = { 0 };
	double p50, p99, q50;
	char label[160];

	for (int i = -o->warmup; i < o->reps; i++) {
		long before = rss_kib(pid);
		int *fds = open_idle(o, ctl);
		long after = rss_kib(pid);

		latency(o->daemon, r, 0, o->calls, &p50, &p99);
		close_idle(o, fds, ctl);
		latency(o->daemon, r, 0, o->calls, &q50, &p99);
		if (i < 0 && o->warmup) {
			/* the first opening is the one that grows the heap */
			rss.ours[rss.n++] = (double)(after - before) * 1024.0 / o->idle;
			continue;
		}
		if (i < 0)
			continue;
		if (o->warmup == 0 && rss.n == 0)
			rss.ours[rss.n++] = (double)(after - before) * 1024.0 / o->idle;
		lat.ours[lat.n] = p50;
		lat.base[lat.n++] = q50;
	}
	snprintf(label, sizeof(label), "GetDaemonInfo p50 with %d idle connections (base: none)", o->idle);
	emit("idle_p50", label, "us", &lat, true);
	snprintf(label, sizeof(label), "virtmgrd RSS per idle connection (%d opened)", o->idle);
	emit("idle_rss", label, "B/conn", &rss, false);
}

/* ------------------------------------------------------------ main */

static bool want(const struct opts *o, const char *section)
{
	if (!o->only)
		return true;
	cleanup_free char *list = xstrdup(o->only);

	for (char *save = NULL, *tok = strtok_r(list, ",", &save); tok; tok = strtok_r(NULL, ",", &save))
		if (strcmp(tok, section) == 0)
			return true;
	return false;
}

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: bench-rpc --daemon SOCK --echo SOCK [OPTIONS]\n"
		"  --reps N          measured pairs per figure (default 5)\n"
		"  --warmup N        unmeasured pairs first (default 1)\n"
		"  --calls N         round trips per latency sample (default 2000)\n"
		"  --duration-ms MS  throughput window per sample (default 500)\n"
		"  --idle N          idle connections for the scale test (default 1000)\n"
		"  --vms N           NOT_STARTED VMs for ListVms (default 50)\n"
		"  --depth N         calls outstanding per pipelined client (default 16)\n"
		"  --only LIST       sections: latency,list,throughput,scale (default all)\n"
		"  --smoke           one tiny pass of everything (does it run)\n");
}

int main(int argc, char **argv)
{
	static const struct option lopts[] = {
		{ "daemon", required_argument, NULL, 'D' },
		{ "echo", required_argument, NULL, 'E' },
		{ "reps", required_argument, NULL, 'r' },
		{ "warmup", required_argument, NULL, 'w' },
		{ "calls", required_argument, NULL, 'c' },
		{ "duration-ms", required_argument, NULL, 't' },
		{ "idle", required_argument, NULL, 'i' },
		{ "vms", required_argument, NULL, 'v' },
		{ "depth", required_argument, NULL, 'd' },
		{ "only", required_argument, NULL, 'o' },
		{ "smoke", no_argument, NULL, 's' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct opts o = {
		.reps = 5, .warmup = 1, .calls = 2000, .duration_ms = 500, .idle = 1000, .vms = 50, .depth = 16
	};
	struct req info = { 0 }, list = { 0 };
	struct vm_error err = { 0 };
	struct rlimit rl;
	int opt;

	while ((opt = getopt_long(argc, argv, "h", lopts, NULL)) != -1) {
		switch (opt) {
		case 'D':
			o.daemon = optarg;
			break;
		case 'E':
			o.echo = optarg;
			break;
		case 'r':
			o.reps = atoi(optarg);
			break;
		case 'w':
			o.warmup = atoi(optarg);
			break;
		case 'c':
			o.calls = atoi(optarg);
			break;
		case 't':
			o.duration_ms = atoi(optarg);
			break;
		case 'i':
			o.idle = atoi(optarg);
			break;
		case 'v':
			o.vms = atoi(optarg);
			break;
		case 'd':
			o.depth = atoi(optarg);
			break;
		case 'o':
			o.only = optarg;
			break;
		case 's':
			o.reps = 1;
			o.warmup = 0;
			o.calls = 50;
			o.duration_ms = 50;
			o.idle = 20;
			o.vms = 3;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (!o.daemon || !o.echo) {
		usage(stderr);
		return 2;
	}
	if (o.reps < 1 || o.reps > MAX_REPS || o.warmup < 0 || o.calls < 1 || o.duration_ms < 1 || o.idle < 1 ||
	    o.vms < 0 || o.depth < 1)
		die("an option is out of range (reps 1..%d, the others positive)", MAX_REPS);
	signal(SIGPIPE, SIG_IGN);
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < (rlim_t)o.idle + 256) {
		rl.rlim_cur = (rlim_t)o.idle + 256;
		if (rl.rlim_max < rl.rlim_cur)
			rl.rlim_max = rl.rlim_cur;
		if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
			die("raising RLIMIT_NOFILE to %d: %s", o.idle + 256, strerror(errno));
	}

	struct ttrpc_client *ctl = ttrpc_client_connect_unix(o.daemon, &err);

	if (!ctl)
		die("%s: %s", o.daemon, err.message);
	Virtmgr__V1__DaemonInfo *di = daemon_info(ctl);
	int pid = di->pid;

	if (di->vm_count != 0)
		die("the daemon already has %u VMs; start a fresh one", di->vm_count);
	protobuf_c_message_free_unpacked(&di->base, NULL);

	Virtmgr__V1__GetDaemonInfoRequest ireq = VIRTMGR__V1__GET_DAEMON_INFO_REQUEST__INIT;
	Virtmgr__V1__ListVmsRequest lreq = VIRTMGR__V1__LIST_VMS_REQUEST__INIT;

	req_prepare(&info, &o, "GetDaemonInfo", &ireq.base, &virtmgr__v1__daemon_info__descriptor);
	printf("{\"id\":\"idle_rss_start\",\"label\":\"virtmgrd RSS before the RPC runs\",\"unit\":\"KiB\",\"ours\":[%ld]}\n",
	       rss_kib(pid));
	fflush(stdout);
	if (want(&o, "latency"))
		bench_latency(&o, &info, "info", "GetDaemonInfo", true);
	if (want(&o, "list")) {
		req_prepare(&list, &o, "ListVms", &lreq.base, &virtmgr__v1__list_vms_response__descriptor);
		bench_latency(&o, &list, "list0", "ListVms, 0 VMs,", false);
		/* the VMs belong to this control connection: they go when it closes */
		struct ttrpc_client *owner = ttrpc_client_connect_unix(o.daemon, &err);

		if (!owner)
			die("%s: %s", o.daemon, err.message);
		create_vms(owner, o.vms);
		req_prepare(&list, &o, "ListVms", &lreq.base, &virtmgr__v1__list_vms_response__descriptor);
		char id[32], label[64];

		snprintf(id, sizeof(id), "list%d", o.vms);
		snprintf(label, sizeof(label), "ListVms, %d VMs,", o.vms);
		bench_latency(&o, &list, id, label, false);
		ttrpc_client_free(owner);
		for (int tries = 0;; tries++) {
			di = daemon_info(ctl);
			bool gone = di->vm_count == 0;

			protobuf_c_message_free_unpacked(&di->base, NULL);
			if (gone)
				break;
			if (tries > 1000)
				die("the daemon kept the VMs of a closed connection");
			usleep(5000);
		}
	}
	if (want(&o, "throughput")) {
		static const int clients[] = { 1, 8, 64 };

		for (size_t i = 0; i < ARRAY_SIZE(clients); i++) {
			bench_throughput(&o, &info, clients[i], 1);
			bench_throughput(&o, &info, clients[i], o.depth);
		}
	}
	if (want(&o, "scale"))
		bench_conn_scale(&o, &info, ctl, pid);
	ttrpc_client_free(ctl);
	free(info.frame[0]);
	free(info.frame[1]);
	free(list.frame[0]);
	free(list.frame[1]);
	return 0;
}
