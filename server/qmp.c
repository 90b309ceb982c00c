/* qmp.c - QMP client on libev.
 *
 * The socket is non-blocking and watched by one ev_io. Input accumulates in
 * a buffer that is cut at '\n' (QEMU never emits a raw newline inside a JSON
 * message, strings escape it), so every complete line is one message; a line
 * longer than QMP_MAX_LINE ends the session instead of growing memory
 * without bound. Output is a byte queue flushed when the socket is writable.
 *
 * Each line is parsed whole by one reused json-c tokener in strict mode with
 * UTF-8 validation and a nesting limit (QMP_MAX_DEPTH): QEMU runs a guest, so
 * what it writes is treated as input from a peer that may misbehave. A line
 * that is not exactly one JSON object, or an event without a string name,
 * ends the session with a reason naming the violation; members of
 * unexpected types are otherwise read as absent (a reply whose "id" is not
 * a non-negative integer is not one of ours). json-c's strict mode still
 * takes a few liberties (single-quoted strings, NaN, raw control characters
 * in strings) that are unambiguous and harmless here.
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
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <json.h>

#include "lib/log.h"

#define QMP_READ_CHUNK 16384

enum qmp_state { QMP_GREETING, QMP_NEGOTIATING, QMP_READY, QMP_CLOSED };

struct qmp_cmd {
	struct qmp_cmd *next;
	uint64_t id;
	char *text; /* unsent message, or NULL once sent */
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
	struct json_tokener *tok; /* reused for every line */

	struct qmp_cmd *cmds; /* FIFO: queued (text != NULL) and in flight */
	struct qmp_cmd **cmds_tail;
	uint64_t next_id;

	int refs;   /* held while dispatching */
	bool freed; /* qmp_free() called while dispatching */
};

/* ---------------------------------------------------------------- JSON */

/* json-c returns NULL when out of memory; treat it like xmalloc does. */
static struct json_object *qmp_json_check(struct json_object *o)
{
	if (!o) {
		log_error("out of memory building a QMP command");
		abort();
	}
	return o;
}

/* One command as a line of JSON (without the newline). */
static char *qmp_build_command(const char *command, struct json_object *args, uint64_t id)
{
	struct json_object *msg = qmp_json_check(json_object_new_object());
	char *text;

	json_object_object_add(msg, "execute", qmp_json_check(json_object_new_string(command)));
	if (args)
		json_object_object_add(msg, "arguments", json_object_get(args));
	json_object_object_add(msg, "id", qmp_json_check(json_object_new_uint64(id)));
	text = xstrdup(json_object_to_json_string_ext(msg, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
	json_object_put(msg);
	return text;
}

/* Member @key of @obj if it has type @type, else NULL. */
static struct json_object *qmp_member(struct json_object *obj, const char *key, enum json_type type)
{
	struct json_object *v;

	if (!obj || !json_object_is_type(obj, json_type_object) || !json_object_object_get_ex(obj, key, &v) ||
	    !json_object_is_type(v, type))
		return NULL;
	return v;
}

const char *qmp_get_string(struct json_object *obj, const char *key)
{
	struct json_object *v = qmp_member(obj, key, json_type_string);

	return v ? json_object_get_string(v) : NULL;
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
	json_tokener_free(q->tok);
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
			c->fn(c->opaque, NULL, "connection closed");
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

static void qmp_handle_reply(struct qmp *q, struct json_object *msg)
{
	struct json_object *ret = NULL, *error = NULL, *idv;
	char desc[512] = "";
	struct qmp_cmd **pp, *c;
	int64_t id;

	if (!json_object_object_get_ex(msg, "return", &ret) && !json_object_object_get_ex(msg, "error", &error))
		return; /* neither event nor reply: ignore */
	if (error) {
		const char *d = qmp_get_string(error, "desc");

		snprintf(desc, sizeof(desc), "%s",
			 d ? d
			   : json_object_to_json_string_ext(error,
							    JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
	}
	/* Our ids are non-negative integers; anything else is not our reply. */
	idv = qmp_member(msg, "id", json_type_int);
	if (!idv || (id = json_object_get_int64(idv)) < 0)
		return;

	if (id == 0) {
		if (q->state != QMP_NEGOTIATING)
			return;
		if (error) {
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
		if (c->id == (uint64_t)id && !c->text)
			break;
	if (!c)
		return;
	*pp = c->next;
	if (q->cmds_tail == &c->next)
		q->cmds_tail = pp;
	if (c->fn) {
		if (error)
			c->fn(c->opaque, NULL, desc);
		else
			c->fn(c->opaque, ret, NULL);
	}
	free(c);
}

/* Parse @line as exactly one JSON object. Return: the object (owned by the
 * caller), or NULL with @why set. */
static struct json_object *qmp_parse_line(struct qmp *q, const char *line, size_t len, char *why, size_t whylen)
{
	struct json_object *msg;
	enum json_tokener_error jerr;

	json_tokener_reset(q->tok);
	msg = json_tokener_parse_ex(q->tok, line, (int)len);
	jerr = json_tokener_get_error(q->tok);
	if (jerr == json_tokener_continue) {
		snprintf(why, whylen, "malformed QMP message: truncated");
	} else if (jerr != json_tokener_success) {
		snprintf(why, whylen, "malformed QMP message: %s", json_tokener_error_desc(jerr));
	} else if (json_tokener_get_parse_end(q->tok) != len) {
		snprintf(why, whylen, "malformed QMP message: data after the JSON value");
	} else if (!json_object_is_type(msg, json_type_object)) {
		snprintf(why, whylen, "malformed QMP message: not a JSON object");
	} else {
		return msg;
	}
	json_object_put(msg);
	return NULL;
}

/* @line/@len ends with its '\n', which tells the tokener that a bare
 * number or literal is complete. */
static void qmp_handle_line(struct qmp *q, const char *line, size_t len)
{
	struct json_object *msg, *ev, *data;
	char why[128];

	if (strspn(line, " \t\r\n") >= len)
		return;
	msg = qmp_parse_line(q, line, len, why, sizeof(why));
	if (!msg) {
		qmp_close(q, why);
		return;
	}

	if (q->state == QMP_GREETING) {
		if (!json_object_object_get_ex(msg, "QMP", NULL)) {
			qmp_close(q, "QMP greeting missing");
		} else {
			cleanup_free char *text = qmp_build_command("qmp_capabilities", NULL, 0);

			q->state = QMP_NEGOTIATING;
			qmp_queue_text(q, text);
		}
	} else if (json_object_object_get_ex(msg, "event", &ev)) {
		if (!json_object_is_type(ev, json_type_string))
			qmp_close(q, "malformed QMP event: name is not a string");
		else if (q->cb.on_event)
			q->cb.on_event(q->opaque, json_object_get_string(ev),
				       json_object_object_get_ex(msg, "data", &data) ? data : NULL);
	} else {
		qmp_handle_reply(q, msg);
	}
	json_object_put(msg);
}

/* Dispatch every complete line in rx; stops early if the session ends. */
static void qmp_dispatch(struct qmp *q)
{
	size_t off = 0;

	while (q->state != QMP_CLOSED && !q->freed) {
		char *nl = memchr(q->rx + off, '\n', q->rx_len - off);

		if (!nl)
			break;
		qmp_handle_line(q, q->rx + off, (size_t)(nl - (q->rx + off)) + 1);
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
	q->tok = json_tokener_new_ex(QMP_MAX_DEPTH);
	if (!q->tok) {
		log_error("out of memory for a QMP parser");
		abort();
	}
	json_tokener_set_flags(q->tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
	fd_set_nonblock(fd, true);
	ev_io_init(&q->io, qmp_io_cb, fd, EV_READ);
	q->io.data = q;
	ev_io_start(loop, &q->io);
	return q;
}

int qmp_connect(struct ev_loop *loop, const char *path, const struct qmp_callbacks *cb, void *opaque, struct qmp **out,
		struct vm_error *err)
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

int qmp_command(struct qmp *q, const char *command, struct json_object *args, qmp_reply_fn reply, void *opaque)
{
	struct qmp_cmd *c;
	char *text;

	if (q->state == QMP_CLOSED || q->freed)
		return -1;
	text = qmp_build_command(command, args, q->next_id);
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
