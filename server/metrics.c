/* metrics.c - the Prometheus endpoint (`virtmgrd --metrics ADDR`).
 *
 * libmicrohttpd serves HTTP on a listening socket made here (a Unix socket
 * or a loopback TCP address), without threads of its own: MHD_USE_EPOLL
 * gives one epoll fd that turns readable whenever any of its sockets has
 * work, and a libev watcher on it (plus a timer for MHD's own timeouts)
 * calls MHD_run() from the daemon's loop. So the handler runs on the loop
 * like every API handler and reads the daemon's state directly: no locks,
 * no hand-off. A scrape is answered at once from the registry, /proc and
 * the vsock backends' counters; figures that need QEMU (block I/O, the
 * guest's view) are GetVmStats' only, as QMP would make it wait.
 */
#include "config.h"
#include "server/metrics.h"

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <microhttpd.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "lib/log.h"
#include "protos/virtmgr.pb-c.h"
#include "server/vm-stats.h"
#include "server/vm.h"

struct metrics {
	struct daemon *d;
	struct MHD_Daemon *mhd;
	ev_io io;	 /* MHD's epoll fd */
	ev_timer timer;	 /* MHD's connection timeouts */
	char *unix_path; /* unlinked at stop, or NULL */
	uint64_t scrapes;
};

/* ---------------------------------------------------------------- text */

/* A label value: backslash, double quote and newline escaped. */
static void put_label(FILE *f, const char *key, const char *val)
{
	fprintf(f, "%s=\"", key);
	for (const char *p = val ? val : ""; *p; p++) {
		if (*p == '\\' || *p == '"')
			fputc('\\', f);
		if (*p == '\n')
			fputs("\\n", f);
		else
			fputc(*p, f);
	}
	fputc('"', f);
}

static void head(FILE *f, const char *name, const char *type, const char *help)
{
	fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static const char *enum_name(const ProtobufCEnumDescriptor *desc, int value, const char *prefix)
{
	const ProtobufCEnumValue *v = protobuf_c_enum_descriptor_get_value(desc, value);

	return v ? v->name + strlen(prefix) : "?";
}

struct calls_ctx {
	FILE *f;
};

static void put_method(const char *service, const char *method, const uint64_t ended[TTRPC_STATUS_CODES], void *opaque)
{
	struct calls_ctx *c = opaque;

	for (int code = 0; code < TTRPC_STATUS_CODES; code++) {
		if (!ended[code])
			continue;
		fputs("virtmgr_calls_total{", c->f);
		put_label(c->f, "service", service);
		fputc(',', c->f);
		put_label(c->f, "method", method);
		fputc(',', c->f);
		put_label(c->f, "code", vm_status_name(code));
		fprintf(c->f, "} %" PRIu64 "\n", ended[code]);
	}
}

/* @name{id=...,name=...,owner=... of a VM (the caller closes the braces) */
static void vm_labels(FILE *f, const char *name, const Virtmgr__V1__VmInfo *info)
{
	char owner[16];

	snprintf(owner, sizeof(owner), "%u", (unsigned)info->owner_uid);
	fprintf(f, "%s{", name);
	put_label(f, "id", info->id);
	fputc(',', f);
	put_label(f, "name", info->name);
	fputc(',', f);
	put_label(f, "owner", owner);
}

struct vm_row {
	Virtmgr__V1__VmInfo info;
	struct vm_usage use;
};

static void put_vm_metric(FILE *f, const struct vm_row *rows, size_t n, const char *name, const char *type,
			  const char *help, int which)
{
	head(f, name, type, help);
	for (size_t i = 0; i < n; i++) {
		const struct vm_row *r = &rows[i];

		vm_labels(f, name, &r->info);
		fputs("} ", f);
		switch (which) {
		case 0:
			fprintf(f, "%.9f\n", (double)r->use.cpu_ns / 1e9);
			break;
		case 1:
			fprintf(f, "%" PRIu64 "\n", r->use.rss_bytes);
			break;
		case 2:
			fprintf(f, "%" PRIu64 "\n", (uint64_t)r->info.memory_mib * 1024 * 1024);
			break;
		case 3:
			fprintf(f, "%" PRIu64 "\n", r->use.balloon_target_bytes);
			break;
		case 4:
			fprintf(f, "%" PRIu64 "\n", r->use.vsock_rx_bytes);
			break;
		default:
			fprintf(f, "%" PRIu64 "\n", r->use.vsock_tx_bytes);
			break;
		}
	}
}

char *metrics_render(struct daemon *d, size_t *len)
{
	unsigned by_state[VIRTMGR__V1__VM_STATE__VM_STATE_DEAD + 1] = { 0 };
	char *buf = NULL;
	size_t size = 0, n = 0, cap = vm_count(d);
	cleanup_free struct vm_row *rows = xcalloc(cap + 1, sizeof(*rows));
	struct calls_ctx cc;
	FILE *f = open_memstream(&buf, &size);

	if (!f)
		abort(); /* out of memory, as xmalloc would */
	for (struct vm *vm = vm_next(d, NULL); vm; vm = vm_next(d, vm)) {
		Virtmgr__V1__VmState s = vm_state(vm);

		if ((unsigned)s < ARRAY_SIZE(by_state))
			by_state[s]++;
		/* a dead VM has no figures: it leaves the per-VM series */
		if (n >= cap || s == VIRTMGR__V1__VM_STATE__VM_STATE_DEAD)
			continue;
		virtmgr__v1__vm_info__init(&rows[n].info);
		vm_fill_info(vm, &rows[n].info);
		vm_stats_usage(vm, &rows[n].use);
		n++;
	}

	head(f, "virtmgr_info", "gauge", "virtmgrd's version, mode and accelerator (always 1).");
	fputs("virtmgr_info{", f);
	put_label(f, "version", PACKAGE_VERSION);
	fputc(',', f);
	put_label(f, "mode", d->cfg.early ? "early" : "regular");
	fputc(',', f);
	put_label(f, "hypervisor", d->accel);
	fputs("} 1\n", f);
	head(f, "virtmgr_vms", "gauge", "VMs the daemon knows, by state (DEAD: records not yet dropped).");
	for (unsigned s = 0; s < ARRAY_SIZE(by_state); s++) {
		fputs("virtmgr_vms{", f);
		put_label(f, "state", enum_name(&virtmgr__v1__vm_state__descriptor, (int)s, "VM_STATE_"));
		fprintf(f, "} %u\n", by_state[s]);
	}
	head(f, "virtmgr_connections", "gauge", "Open API connections.");
	fprintf(f, "virtmgr_connections %u\n", ttrpc_server_conn_count(d->api));
	head(f, "virtmgr_calls_total", "counter", "API calls answered, by service, method and status code.");
	cc.f = f;
	ttrpc_server_foreach_method(d->api, put_method, &cc);
	head(f, "virtmgr_vm_deaths_total", "counter", "VMs that died since the daemon started, by death reason.");
	for (unsigned r = 0; r < ARRAY_SIZE(d->deaths); r++) {
		const ProtobufCEnumValue *v = protobuf_c_enum_descriptor_get_value(
			&virtmgr__v1__death_reason__descriptor, (int)r);

		if (!v)
			continue;
		fputs("virtmgr_vm_deaths_total{", f);
		put_label(f, "reason", v->name + strlen("DEATH_REASON_"));
		fprintf(f, "} %" PRIu64 "\n", d->deaths[r]);
	}
	head(f, "virtmgr_vm_info", "gauge", "Each VM that is not DEAD (always 1), with its state and CID.");
	for (size_t i = 0; i < n; i++) {
		char cid[16];

		snprintf(cid, sizeof(cid), "%u", (unsigned)rows[i].info.cid);
		vm_labels(f, "virtmgr_vm_info", &rows[i].info);
		fputc(',', f);
		put_label(f, "state", enum_name(&virtmgr__v1__vm_state__descriptor, rows[i].info.state, "VM_STATE_"));
		fputc(',', f);
		put_label(f, "cid", cid);
		fputs("} 1\n", f);
	}
	put_vm_metric(f, rows, n, "virtmgr_vm_cpu_seconds_total", "counter",
		      "CPU time of the VM's host processes (QEMU, vsock backend, virtiofsd), user + system.", 0);
	put_vm_metric(f, rows, n, "virtmgr_vm_rss_bytes", "gauge", "Resident memory of the VM's host processes.", 1);
	put_vm_metric(f, rows, n, "virtmgr_vm_memory_bytes", "gauge", "Guest memory configured.", 2);
	put_vm_metric(f, rows, n, "virtmgr_vm_balloon_target_bytes", "gauge",
		      "The last SetBalloon target, 0 when none is set.", 3);
	put_vm_metric(f, rows, n, "virtmgr_vm_vsock_rx_bytes_total", "counter",
		      "Bytes the vsock backend moved from host sockets to the guest.", 4);
	put_vm_metric(f, rows, n, "virtmgr_vm_vsock_tx_bytes_total", "counter",
		      "Bytes the vsock backend moved from the guest to host sockets.", 5);
	fclose(f);
	*len = size;
	return buf;
}

/* ---------------------------------------------------------------- HTTP */

static enum MHD_Result metrics_reply(struct MHD_Connection *conn, unsigned status, const char *type, char *body,
				     size_t len)
{
	struct MHD_Response *resp = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
	enum MHD_Result r;

	if (!resp) {
		free(body);
		return MHD_NO;
	}
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, type);
	r = MHD_queue_response(conn, status, resp);
	MHD_destroy_response(resp);
	return r;
}

static enum MHD_Result metrics_handler(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
				       const char *version, const char *upload_data, size_t *upload_data_size,
				       void **req_cls)
{
	struct metrics *m = cls;
	size_t len;
	char *body;

	(void)version;
	(void)upload_data;
	(void)req_cls;
	if (*upload_data_size)
		return MHD_NO; /* no request bodies here */
	if (strcmp(method, "GET") && strcmp(method, "HEAD"))
		return metrics_reply(conn, MHD_HTTP_METHOD_NOT_ALLOWED, "text/plain",
				     xstrdup("only GET and HEAD are served\n"),
				     strlen("only GET and HEAD are served\n"));
	if (strcmp(url, "/metrics")) {
		body = xasprintf("no %s here: metrics are at /metrics\n", url);
		return metrics_reply(conn, MHD_HTTP_NOT_FOUND, "text/plain", body, strlen(body));
	}
	m->scrapes++;
	body = metrics_render(m->d, &len);
	return metrics_reply(conn, MHD_HTTP_OK, "text/plain; version=0.0.4; charset=utf-8", body, len);
}

static void metrics_arm_timer(struct metrics *m)
{
	MHD_UNSIGNED_LONG_LONG ms;

	ev_timer_stop(m->d->loop, &m->timer);
	if (MHD_get_timeout(m->mhd, &ms) == MHD_YES) {
		ev_timer_set(&m->timer, (double)ms / 1000.0, 0);
		ev_timer_start(m->d->loop, &m->timer);
	}
}

static void metrics_io_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct metrics *m = w->data;

	(void)loop;
	(void)revents;
	MHD_run(m->mhd);
	metrics_arm_timer(m);
}

static void metrics_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct metrics *m = w->data;

	(void)loop;
	(void)revents;
	MHD_run(m->mhd);
	metrics_arm_timer(m);
}

/* ---------------------------------------------------------------- sockets */

static int listen_unix_path(const char *path, struct vm_error *err)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	cleanup_close int fd = -1;
	struct stat st;

	if (strlen(path) >= sizeof(sa.sun_path))
		return vm_error_set(err, VM_INVALID_ARGUMENT, "--metrics %s: path longer than %zu bytes", path,
				    sizeof(sa.sun_path) - 1);
	memcpy(sa.sun_path, path, strlen(path));
	/* a stale socket from an earlier daemon goes; anything else stays */
	if (lstat(path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode))
			return vm_error_set(err, VM_ALREADY_EXISTS, "--metrics %s: exists and is not a socket", path);
		unlink(path);
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return vm_error_errno(err, errno, "--metrics %s: socket", path);
	/* root (the daemon's user) only until the operator says otherwise */
	if (fchmod(fd, 0600) < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || chmod(path, 0600) < 0 ||
	    listen(fd, 64) < 0)
		return vm_error_errno(err, errno, "--metrics %s", path);
	return steal_fd(&fd);
}

static bool is_loopback(const struct sockaddr *sa)
{
	if (sa->sa_family == AF_INET)
		return (ntohl(((const struct sockaddr_in *)sa)->sin_addr.s_addr) >> 24) == 127;
	if (sa->sa_family == AF_INET6)
		return IN6_IS_ADDR_LOOPBACK(&((const struct sockaddr_in6 *)sa)->sin6_addr);
	return false;
}

static int listen_tcp(const char *addr, struct vm_error *err)
{
	cleanup_free char *host = NULL;
	const char *colon = strrchr(addr, ':'), *port;
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV };
	struct addrinfo *res = NULL;
	cleanup_close int fd = -1;
	int r, one = 1;

	if (!colon || colon == addr || !colon[1])
		return vm_error_set(err, VM_INVALID_ARGUMENT,
				    "--metrics %s: expected an absolute socket path or HOST:PORT on loopback", addr);
	port = colon + 1;
	if (addr[0] == '[' && colon[-1] == ']')
		host = xstrndup(addr + 1, (size_t)(colon - addr) - 2);
	else
		host = xstrndup(addr, (size_t)(colon - addr));
	r = getaddrinfo(host, port, &hints, &res);
	if (r)
		return vm_error_set(err, VM_INVALID_ARGUMENT, "--metrics %s: %s", addr, gai_strerror(r));
	if (!is_loopback(res->ai_addr)) {
		freeaddrinfo(res);
		return vm_error_set(err, VM_INVALID_ARGUMENT,
				    "--metrics %s: %s is not a loopback address (the endpoint has no authentication)",
				    addr, host);
	}
	fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    bind(fd, res->ai_addr, res->ai_addrlen) < 0 || listen(fd, 64) < 0) {
		int e = errno;

		freeaddrinfo(res);
		return vm_error_errno(err, e, "--metrics %s", addr);
	}
	freeaddrinfo(res);
	return steal_fd(&fd);
}

int metrics_start(struct daemon *d, const char *addr, struct vm_error *err)
{
	struct metrics *m;
	const union MHD_DaemonInfo *info;
	int fd;

	fd = addr[0] == '/' ? listen_unix_path(addr, err) : listen_tcp(addr, err);
	if (fd < 0)
		return -1;
	m = xzalloc(sizeof(*m));
	m->d = d;
	if (addr[0] == '/')
		m->unix_path = xstrdup(addr);
	m->mhd = MHD_start_daemon(MHD_USE_EPOLL, 0, NULL, NULL, metrics_handler, m, MHD_OPTION_LISTEN_SOCKET, fd,
				  MHD_OPTION_CONNECTION_LIMIT, (unsigned)METRICS_MAX_CONNECTIONS,
				  MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)METRICS_CONNECTION_TIMEOUT_S,
				  MHD_OPTION_END);
	info = m->mhd ? MHD_get_daemon_info(m->mhd, MHD_DAEMON_INFO_EPOLL_FD) : NULL;
	if (!info) {
		if (m->mhd)
			MHD_stop_daemon(m->mhd);
		close(fd);
		if (m->unix_path)
			unlink(m->unix_path);
		free(m->unix_path);
		free(m);
		return vm_error_set(err, VM_INTERNAL, "--metrics %s: libmicrohttpd could not start", addr);
	}
	ev_io_init(&m->io, metrics_io_cb, info->epoll_fd, EV_READ);
	m->io.data = m;
	ev_io_start(d->loop, &m->io);
	ev_init(&m->timer, metrics_timer_cb);
	m->timer.data = m;
	metrics_arm_timer(m);
	d->metrics = m;
	log_info("metrics: serving /metrics on %s", addr);
	return 0;
}

void metrics_stop(struct daemon *d)
{
	struct metrics *m = d->metrics;
	MHD_socket fd;

	if (!m)
		return;
	ev_io_stop(d->loop, &m->io);
	ev_timer_stop(d->loop, &m->timer);
	/* MHD_quiesce_daemon hands back the listening socket, which we made */
	fd = MHD_quiesce_daemon(m->mhd);
	MHD_stop_daemon(m->mhd);
	if (fd != MHD_INVALID_SOCKET)
		close(fd);
	if (m->unix_path)
		unlink(m->unix_path);
	free(m->unix_path);
	free(m);
	d->metrics = NULL;
}
