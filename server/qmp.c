/* qmp.c - QMP client on libev.
 *
 * The socket is non-blocking and watched by one ev_io. Input accumulates in
 * a buffer that is cut at '\n' (QEMU never emits a raw newline inside a JSON
 * message, strings escape it), so every complete line is one message; a line
 * longer than QMP_MAX_LINE ends the session instead of growing memory
 * without bound. Output is a byte queue flushed when the socket is writable.
 *
 * Session: greeting ({"QMP": ...}) -> our {"execute":"qmp_capabilities",
 * "id":0} -> its {"return":{}} -> ready. Commands carry increasing numeric
 * ids starting at 1; a reply is matched to its command by id, not by order,
 * so an unknown id (e.g. a reply to a command sent by a previous daemon on an
 * adopted QEMU) is ignored. Before ready, commands wait in the same list,
 * unsent.
 *
 * Callbacks may free the session (qmp_free) from inside dispatch; the
 * dispatcher holds a reference count and finishes the free on the way out.
 */
#include "config.h"

#include "server/qmp.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "lib/log.h"

#define QMP_JSON_MAX_DEPTH 64
#define QMP_READ_CHUNK 16384

enum qmp_state { QMP_GREETING, QMP_NEGOTIATING, QMP_READY, QMP_CLOSED };

struct qmp_cmd {
	struct qmp_cmd *next;
	uint64_t id;
	char *text;        /* unsent message, or NULL once sent */
	qmp_reply_fn fn;
	void *opaque;
};

struct qmp {
	struct ev_loop *loop;
	int fd;
	ev_io io;
	enum qmp_state state;
	struct qmp_callbacks cb;
	void *opaque;

	char *rx;
	size_t rx_len, rx_cap;
	char *tx;
	size_t tx_len, tx_cap;

	struct qmp_cmd *cmds;      /* FIFO: queued (text != NULL) and in flight */
	struct qmp_cmd **cmds_tail;
	uint64_t next_id;

	int refs;                  /* held while dispatching */
	bool freed;                /* qmp_free() called while dispatching */
};

/* ---------------------------------------------------------------- JSON */

static const char *json_ws(const char *p, const char *end)
{
	while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
		p++;
	return p;
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

static bool json_hex4(const char *p, const char *end, unsigned *out)
{
	unsigned v = 0;

	if (end - p < 4)
		return false;
	for (int i = 0; i < 4; i++) {
		int h = hexval(p[i]);

		if (h < 0)
			return false;
		v = v << 4 | (unsigned)h;
	}
	*out = v;
	return true;
}

/* @p at the opening quote; Return: pointer after the closing quote or NULL. */
static const char *json_skip_string(const char *p, const char *end)
{
	unsigned u;

	p++;
	while (p < end) {
		unsigned char c = (unsigned char)*p;

		if (c == '"')
			return p + 1;
		if (c < 0x20)
			return NULL;
		if (c != '\\') {
			p++;
			continue;
		}
		if (++p >= end)
			return NULL;
		switch (*p) {
		case '"': case '\\': case '/': case 'b': case 'f': case 'n': case 'r': case 't':
			p++;
			break;
		case 'u':
			if (!json_hex4(p + 1, end, &u))
				return NULL;
			p += 5;
			break;
		default:
			return NULL;
		}
	}
	return NULL;
}

static const char *json_skip_digits(const char *p, const char *end)
{
	const char *start = p;

	while (p < end && *p >= '0' && *p <= '9')
		p++;
	return p == start ? NULL : p;
}

static const char *json_skip_number(const char *p, const char *end)
{
	if (p < end && *p == '-')
		p++;
	if (!(p = json_skip_digits(p, end)))
		return NULL;
	if (p < end && *p == '.' && !(p = json_skip_digits(p + 1, end)))
		return NULL;
	if (p < end && (*p == 'e' || *p == 'E')) {
		p++;
		if (p < end && (*p == '+' || *p == '-'))
			p++;
		if (!(p = json_skip_digits(p, end)))
			return NULL;
	}
	return p;
}

static const char *json_skip_literal(const char *p, const char *end, const char *lit)
{
	size_t n = strlen(lit);

	if ((size_t)(end - p) < n || memcmp(p, lit, n) != 0)
		return NULL;
	return p + n;
}

static const char *json_skip_value(const char *p, const char *end, int depth)
{
	if (depth > QMP_JSON_MAX_DEPTH)
		return NULL;
	p = json_ws(p, end);
	if (p >= end)
		return NULL;
	switch (*p) {
	case '{':
	case '[': {
		char close = *p == '{' ? '}' : ']';
		bool object = *p == '{';

		p = json_ws(p + 1, end);
		if (p < end && *p == close)
			return p + 1;
		for (;;) {
			if (object) {
				p = json_ws(p, end);
				if (p >= end || *p != '"' || !(p = json_skip_string(p, end)))
					return NULL;
				p = json_ws(p, end);
				if (p >= end || *p != ':')
					return NULL;
				p++;
			}
			if (!(p = json_skip_value(p, end, depth + 1)))
				return NULL;
			p = json_ws(p, end);
			if (p >= end)
				return NULL;
			if (*p == close)
				return p + 1;
			if (*p != ',')
				return NULL;
			p++;
		}
	}
	case '"':
		return json_skip_string(p, end);
	case 't':
		return json_skip_literal(p, end, "true");
	case 'f':
		return json_skip_literal(p, end, "false");
	case 'n':
		return json_skip_literal(p, end, "null");
	default:
		return json_skip_number(p, end);
	}
}

const char *qmp_json_skip(const char *p, const char *end)
{
	p = json_skip_value(p, end, 0);
	return p ? json_ws(p, end) : NULL;
}

static size_t utf8_put(char *buf, unsigned cp)
{
	if (cp < 0x80) {
		buf[0] = (char)cp;
		return 1;
	}
	if (cp < 0x800) {
		buf[0] = (char)(0xc0 | cp >> 6);
		buf[1] = (char)(0x80 | (cp & 0x3f));
		return 2;
	}
	if (cp < 0x10000) {
		buf[0] = (char)(0xe0 | cp >> 12);
		buf[1] = (char)(0x80 | (cp >> 6 & 0x3f));
		buf[2] = (char)(0x80 | (cp & 0x3f));
		return 3;
	}
	buf[0] = (char)(0xf0 | cp >> 18);
	buf[1] = (char)(0x80 | (cp >> 12 & 0x3f));
	buf[2] = (char)(0x80 | (cp >> 6 & 0x3f));
	buf[3] = (char)(0x80 | (cp & 0x3f));
	return 4;
}

int qmp_json_string(const char *val, size_t vlen, char *out, size_t size)
{
	const char *p = val, *end = val + vlen;
	size_t n = 0;

	if (size == 0)
		return -1;
	p = json_ws(p, end);
	while (end > p && (end[-1] == ' ' || end[-1] == '\t' || end[-1] == '\n' || end[-1] == '\r'))
		end--;
	if (p >= end || *p != '"' || json_skip_string(p, end) != end)
		return -1;
	p++;
	end--; /* closing quote */
	while (p < end) {
		char enc[4];
		size_t elen = 1;
		unsigned cp;

		if (*p != '\\') {
			enc[0] = *p++;
		} else {
			p++;
			switch (*p) {
			case 'b': enc[0] = '\b'; p++; break;
			case 'f': enc[0] = '\f'; p++; break;
			case 'n': enc[0] = '\n'; p++; break;
			case 'r': enc[0] = '\r'; p++; break;
			case 't': enc[0] = '\t'; p++; break;
			case 'u':
				json_hex4(p + 1, end, &cp); /* validated by json_skip_string */
				p += 5;
				if (cp >= 0xd800 && cp < 0xdc00) {
					unsigned lo;

					if (end - p >= 6 && p[0] == '\\' && p[1] == 'u' && json_hex4(p + 2, end, &lo) &&
					    lo >= 0xdc00 && lo < 0xe000) {
						cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
						p += 6;
					} else {
						cp = 0xfffd;
					}
				} else if (cp >= 0xdc00 && cp < 0xe000) {
					cp = 0xfffd;
				}
				if (cp == 0)
					return -1;
				elen = utf8_put(enc, cp);
				break;
			default: /* '"', '\\', '/' */
				enc[0] = *p++;
				break;
			}
		}
		if (n + elen < size) {
			memcpy(out + n, enc, elen);
			n += elen;
		}
	}
	out[n] = '\0';
	return (int)MIN(n, (size_t)INT32_MAX);
}

int qmp_json_get(const char *obj, size_t len, const char *key, const char **val, size_t *vlen)
{
	const char *p = obj, *end = obj + len;

	/* Validate the whole object first, so members are only read from
	 * well-formed input. */
	p = json_ws(p, end);
	if (p >= end || *p != '{' || !json_skip_value(p, end, 0))
		return -1;
	p = json_ws(p + 1, end);
	if (*p == '}')
		return -1;
	for (;;) {
		const char *kstart = p, *vstart, *vend;
		char kbuf[64];
		int klen;

		p = json_skip_string(p, end);
		klen = qmp_json_string(kstart, (size_t)(p - kstart), kbuf, sizeof(kbuf));
		p = json_ws(p, end) + 1; /* ':' */
		vstart = json_ws(p, end);
		vend = json_skip_value(vstart, end, 1);
		if (!vend)
			return -1;
		if (klen >= 0 && (size_t)klen < sizeof(kbuf) - 1 && strcmp(kbuf, key) == 0) {
			*val = vstart;
			*vlen = (size_t)(vend - vstart);
			return 0;
		}
		p = json_ws(vend, end);
		if (*p == '}')
			return -1;
		p = json_ws(p + 1, end); /* ',' */
	}
}

char *qmp_json_quote(const char *s)
{
	size_t cap = strlen(s) * 6 + 3, n = 0;
	char *out = xmalloc(cap);

	out[n++] = '"';
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		if (c == '"' || c == '\\') {
			out[n++] = '\\';
			out[n++] = (char)c;
		} else if (c < 0x20) {
			n += (size_t)snprintf(out + n, cap - n, "\\u%04x", c);
		} else {
			out[n++] = (char)c;
		}
	}
	out[n++] = '"';
	out[n] = '\0';
	return out;
}

/* ---------------------------------------------------------------- I/O */

static void qmp_update_events(struct qmp *q)
{
	int want = EV_READ | (q->tx_len ? EV_WRITE : 0);

	if (q->fd < 0 || (ev_is_active(&q->io) && q->io.events == want))
		return;
	ev_io_stop(q->loop, &q->io);
	ev_io_set(&q->io, q->fd, want);
	ev_io_start(q->loop, &q->io);
}

static void qmp_queue_text(struct qmp *q, const char *text)
{
	size_t n = strlen(text);

	if (q->tx_len + n + 2 > q->tx_cap) {
		q->tx_cap = MAX(q->tx_cap * 2, q->tx_len + n + 2);
		q->tx = xrealloc(q->tx, q->tx_cap);
	}
	memcpy(q->tx + q->tx_len, text, n);
	q->tx_len += n;
	q->tx[q->tx_len++] = '\n';
	qmp_update_events(q);
}

static void qmp_destroy(struct qmp *q)
{
	struct qmp_cmd *c = q->cmds;

	while (c) {
		struct qmp_cmd *next = c->next;

		free(c->text);
		free(c);
		c = next;
	}
	if (q->fd >= 0) {
		ev_io_stop(q->loop, &q->io);
		close(q->fd);
	}
	free(q->rx);
	free(q->tx);
	free(q);
}

/* End the session: fail every pending command, then tell the owner. */
static void qmp_close(struct qmp *q, const char *why)
{
	struct qmp_cmd *c;

	if (q->state == QMP_CLOSED)
		return;
	log_debug("qmp: closed: %s", why);
	q->state = QMP_CLOSED;
	ev_io_stop(q->loop, &q->io);
	close(q->fd);
	q->fd = -1;
	q->tx_len = 0;
	c = q->cmds;
	q->cmds = NULL;
	q->cmds_tail = &q->cmds;
	q->refs++;
	while (c) {
		struct qmp_cmd *next = c->next;

		if (c->fn && !q->freed)
			c->fn(c->opaque, false, "connection closed", strlen("connection closed"));
		free(c->text);
		free(c);
		c = next;
	}
	if (q->cb.on_close && !q->freed)
		q->cb.on_close(q->opaque, why);
	q->refs--;
}

static void qmp_flush_queued(struct qmp *q)
{
	for (struct qmp_cmd *c = q->cmds; c; c = c->next) {
		if (c->text) {
			qmp_queue_text(q, c->text);
			free(c->text);
			c->text = NULL;
		}
	}
}

static void qmp_handle_reply(struct qmp *q, const char *msg, size_t len)
{
	const char *v, *idv;
	size_t vlen, idlen;
	bool ok = qmp_json_get(msg, len, "return", &v, &vlen) == 0;
	char desc[512] = "";
	struct qmp_cmd **pp, *c;
	uint64_t id;
	char *endp;
	char idbuf[24];

	if (!ok && qmp_json_get(msg, len, "error", &v, &vlen) < 0)
		return; /* neither event nor reply: ignore */
	if (!ok) {
		const char *d;
		size_t dlen;

		if (qmp_json_get(v, vlen, "desc", &d, &dlen) < 0 || qmp_json_string(d, dlen, desc, sizeof(desc)) < 0)
			snprintf(desc, sizeof(desc), "%.*s", (int)MIN(vlen, sizeof(desc) - 1), v);
	}
	if (qmp_json_get(msg, len, "id", &idv, &idlen) < 0 || idlen == 0 || idlen >= sizeof(idbuf))
		return; /* a reply we did not ask for */
	memcpy(idbuf, idv, idlen);
	idbuf[idlen] = '\0';
	errno = 0;
	id = strtoull(idbuf, &endp, 10);
	if (errno || *endp || idbuf[0] == '-')
		return;

	if (id == 0) {
		if (q->state != QMP_NEGOTIATING)
			return;
		if (!ok) {
			char why[600];

			snprintf(why, sizeof(why), "qmp_capabilities failed: %s", desc);
			qmp_close(q, why);
			return;
		}
		q->state = QMP_READY;
		qmp_flush_queued(q);
		if (q->cb.on_ready)
			q->cb.on_ready(q->opaque);
		return;
	}

	for (pp = &q->cmds; (c = *pp); pp = &c->next)
		if (c->id == id && !c->text)
			break;
	if (!c)
		return;
	*pp = c->next;
	if (q->cmds_tail == &c->next)
		q->cmds_tail = pp;
	if (c->fn) {
		if (ok)
			c->fn(c->opaque, true, v, vlen);
		else
			c->fn(c->opaque, false, desc, strlen(desc));
	}
	free(c);
}

static void qmp_handle_line(struct qmp *q, const char *line, size_t len)
{
	const char *v, *start;
	size_t vlen;

	while (len && (line[len - 1] == '\r' || line[len - 1] == ' '))
		len--;
	if (len == 0)
		return;
	start = json_ws(line, line + len);
	if (start == line + len || *start != '{' || qmp_json_skip(start, line + len) != line + len) {
		qmp_close(q, "malformed QMP message");
		return;
	}

	if (q->state == QMP_GREETING) {
		if (qmp_json_get(line, len, "QMP", &v, &vlen) < 0) {
			qmp_close(q, "QMP greeting missing");
			return;
		}
		q->state = QMP_NEGOTIATING;
		qmp_queue_text(q, "{\"execute\":\"qmp_capabilities\",\"id\":0}");
		return;
	}

	if (qmp_json_get(line, len, "event", &v, &vlen) == 0) {
		char name[64];
		const char *data = "";
		size_t dlen = 0;

		if (qmp_json_string(v, vlen, name, sizeof(name)) < 0)
			return;
		if (qmp_json_get(line, len, "data", &data, &dlen) < 0) {
			data = "";
			dlen = 0;
		}
		if (q->cb.on_event)
			q->cb.on_event(q->opaque, name, data, dlen);
		return;
	}
	qmp_handle_reply(q, line, len);
}

/* Dispatch every complete line in rx; stops early if the session ends. */
static void qmp_dispatch(struct qmp *q)
{
	size_t off = 0;

	while (q->state != QMP_CLOSED && !q->freed) {
		char *nl = memchr(q->rx + off, '\n', q->rx_len - off);

		if (!nl)
			break;
		qmp_handle_line(q, q->rx + off, (size_t)(nl - (q->rx + off)));
		off = (size_t)(nl - q->rx) + 1;
	}
	if (q->state == QMP_CLOSED || q->freed) {
		q->rx_len = 0;
		return;
	}
	memmove(q->rx, q->rx + off, q->rx_len - off);
	q->rx_len -= off;
	if (q->rx_len > QMP_MAX_LINE)
		qmp_close(q, "QMP message too long");
}

/* Read until EAGAIN (or EOF/error, which close). */
static void qmp_read(struct qmp *q)
{
	while (q->state != QMP_CLOSED && !q->freed) {
		ssize_t n;

		if (q->rx_cap - q->rx_len < QMP_READ_CHUNK) {
			q->rx_cap = q->rx_len + QMP_READ_CHUNK * 2;
			q->rx = xrealloc(q->rx, q->rx_cap);
		}
		n = read(q->fd, q->rx + q->rx_len, q->rx_cap - q->rx_len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		if (n < 0) {
			char why[128];

			snprintf(why, sizeof(why), "read: %s", strerror(errno));
			qmp_close(q, why);
			return;
		}
		if (n == 0) {
			qmp_close(q, "connection closed by QEMU");
			return;
		}
		q->rx_len += (size_t)n;
		qmp_dispatch(q);
	}
}

static void qmp_write(struct qmp *q)
{
	while (q->tx_len && q->state != QMP_CLOSED) {
		ssize_t n = send(q->fd, q->tx, q->tx_len, MSG_NOSIGNAL);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		if (n < 0) {
			char why[128];

			snprintf(why, sizeof(why), "write: %s", strerror(errno));
			qmp_close(q, why);
			return;
		}
		memmove(q->tx, q->tx + n, q->tx_len - (size_t)n);
		q->tx_len -= (size_t)n;
	}
	qmp_update_events(q);
}

static void qmp_unref(struct qmp *q)
{
	if (--q->refs == 0 && q->freed)
		qmp_destroy(q);
}

static void qmp_io_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct qmp *q = w->data;

	q->refs++;
	if (revents & EV_READ)
		qmp_read(q);
	if ((revents & EV_WRITE) && q->state != QMP_CLOSED && !q->freed)
		qmp_write(q);
	qmp_unref(q);
}

struct qmp *qmp_new(struct ev_loop *loop, int fd, const struct qmp_callbacks *cb, void *opaque)
{
	struct qmp *q = xzalloc(sizeof(*q));

	q->loop = loop;
	q->fd = fd;
	q->state = QMP_GREETING;
	if (cb)
		q->cb = *cb;
	q->opaque = opaque;
	q->cmds_tail = &q->cmds;
	q->next_id = 1;
	fd_set_nonblock(fd, true);
	ev_io_init(&q->io, qmp_io_cb, fd, EV_READ);
	q->io.data = q;
	ev_io_start(loop, &q->io);
	return q;
}

int qmp_connect(struct ev_loop *loop, const char *path, const struct qmp_callbacks *cb, void *opaque,
		struct qmp **out, struct vm_error *err)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	cleanup_close int fd = -1;

	if (strlen(path) >= sizeof(sa.sun_path))
		return vm_error_set(err, VM_INVALID_ARGUMENT, "QMP socket path %s is too long", path);
	strcpy(sa.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return vm_error_set_errno(err, VM_INTERNAL, errno, "socket for QMP");
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 && errno != EINPROGRESS)
		return vm_error_set_errno(err, VM_UNAVAILABLE, errno, "connect to QMP socket %s", path);
	*out = qmp_new(loop, steal_fd(&fd), cb, opaque);
	return 0;
}

int qmp_command(struct qmp *q, const char *command, const char *args_json, qmp_reply_fn reply, void *opaque)
{
	struct qmp_cmd *c;
	cleanup_free char *name = NULL;
	char *text;

	if (q->state == QMP_CLOSED || q->freed)
		return -1;
	name = qmp_json_quote(command);
	if (args_json)
		text = xasprintf("{\"execute\":%s,\"arguments\":%s,\"id\":%" PRIu64 "}", name, args_json, q->next_id);
	else
		text = xasprintf("{\"execute\":%s,\"id\":%" PRIu64 "}", name, q->next_id);
	c = xzalloc(sizeof(*c));
	c->id = q->next_id++;
	c->fn = reply;
	c->opaque = opaque;
	*q->cmds_tail = c;
	q->cmds_tail = &c->next;
	if (q->state == QMP_READY) {
		qmp_queue_text(q, text);
		free(text);
	} else {
		c->text = text;
	}
	return 0;
}

void qmp_drain(struct qmp *q)
{
	if (q->state == QMP_CLOSED || q->freed)
		return;
	q->refs++;
	qmp_read(q);
	qmp_unref(q);
}

bool qmp_is_ready(const struct qmp *q)
{
	return q->state == QMP_READY && !q->freed;
}

void qmp_free(struct qmp *q)
{
	if (!q)
		return;
	if (q->refs > 0) {
		/* Inside a callback: stop I/O now, release on the way out. */
		q->freed = true;
		if (q->fd >= 0) {
			ev_io_stop(q->loop, &q->io);
			close(q->fd);
			q->fd = -1;
		}
		q->state = QMP_CLOSED;
		return;
	}
	qmp_destroy(q);
}
