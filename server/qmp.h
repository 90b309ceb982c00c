/* qmp.h - a QMP (QEMU Machine Protocol) client on libev.
 *
 * One struct qmp per QEMU monitor socket. The client reads the greeting,
 * negotiates capabilities, then sends commands whose replies are matched by
 * a numeric "id"; asynchronous events go to a callback by name. Commands
 * issued before negotiation finishes are queued and sent afterwards. JSON is
 * handled by a small bounded scanner (qmp_json_*): QEMU writes one message
 * per line, so a line is a message, and values are only ever located and
 * decoded, never built into trees.
 */
#ifndef VIRTMGR_QMP_H
#define VIRTMGR_QMP_H

#include <ev.h>
#include <stdbool.h>
#include <stddef.h>

#include "lib/util.h"

struct qmp;

/* Longest message accepted from QEMU; longer lines close the connection. */
#define QMP_MAX_LINE (256 * 1024)

struct qmp_callbacks {
	/* Capabilities negotiated: commands now go out directly. May be NULL. */
	void (*on_ready)(void *opaque);
	/* An event; @data/@data_len is the raw JSON of its "data" member
	 * (empty when absent). May be NULL. */
	void (*on_event)(void *opaque, const char *name, const char *data, size_t data_len);
	/* The connection ended (EOF, error, or a protocol violation named by
	 * @why). No callback follows. May be NULL. */
	void (*on_close)(void *opaque, const char *why);
};

/*
 * Reply to one command: @ok and either the raw JSON of "return" (@ok) or the
 * error's "desc" decoded as a string (!@ok). When the connection closes before
 * the reply arrives, @ok is false and @json is "connection closed".
 */
typedef void (*qmp_reply_fn)(void *opaque, bool ok, const char *json, size_t len);

/**
 * qmp_new() - start a QMP session on @fd (connected, or connecting
 *             non-blockingly); takes ownership of @fd
 * Return: the session (never NULL).
 */
struct qmp *qmp_new(struct ev_loop *loop, int fd, const struct qmp_callbacks *cb, void *opaque);

/**
 * qmp_connect() - connect to the monitor socket at @path and start a session
 * Return: 0 with *@out set, or -1 with @err naming @path.
 */
int qmp_connect(struct ev_loop *loop, const char *path, const struct qmp_callbacks *cb, void *opaque,
		struct qmp **out, struct vm_error *err);

/**
 * qmp_command() - send @command with optional @args_json (a JSON object, or
 *                 NULL); @reply (may be NULL) is called once with the answer
 * Return: 0 if sent or queued, -1 if the connection is closed.
 */
int qmp_command(struct qmp *q, const char *command, const char *args_json, qmp_reply_fn reply, void *opaque);

/**
 * qmp_drain() - read and dispatch whatever is already buffered on the socket
 *               (used when QEMU is known to be gone, so no event is missed)
 * Return: nothing; may call the callbacks, including on_close.
 */
void qmp_drain(struct qmp *q);

/** qmp_is_ready() - Return: true once capabilities are negotiated and not closed. */
bool qmp_is_ready(const struct qmp *q);

/**
 * qmp_free() - close the connection without calling on_close; pending
 *              replies are dropped without being called
 * Return: nothing.
 */
void qmp_free(struct qmp *q);

/* ---- JSON scanning (exposed for tests and for reading replies) ---- */

/**
 * qmp_json_skip() - skip one JSON value (with surrounding whitespace) at @p
 * Return: pointer just after it, or NULL if malformed or nested too deep.
 */
const char *qmp_json_skip(const char *p, const char *end);

/**
 * qmp_json_get() - find member @key of the JSON object @obj/@len
 * Return: 0 with *@val and *@vlen set to the raw member value, -1 if @obj is not
 *         a well-formed object or has no such member.
 */
int qmp_json_get(const char *obj, size_t len, const char *key, const char **val, size_t *vlen);

/**
 * qmp_json_string() - decode the JSON string @val/@vlen into @out (NUL
 *                     terminated, truncated to @size - 1 bytes)
 * Return: decoded length, or -1 if @val is not a valid string (or contains
 *         a NUL character).
 */
int qmp_json_string(const char *val, size_t vlen, char *out, size_t size);

/**
 * qmp_json_quote() - @s as a JSON string literal (quotes included)
 * Return: newly allocated string.
 */
char *qmp_json_quote(const char *s);

#endif
