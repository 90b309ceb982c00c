/* qmp.h - a QMP (QEMU Machine Protocol) client on libev.
 *
 * One struct qmp per QEMU monitor socket. The client reads the greeting,
 * negotiates capabilities, then sends commands whose replies are matched by
 * a numeric "id"; asynchronous events go to a callback by name. Commands
 * issued before negotiation finishes are queued and sent afterwards. QEMU
 * writes one message per line, so a line is a message; it is parsed with
 * json-c (bounded in length and nesting, as QEMU runs a guest and is not
 * trusted to be well-behaved) and handed to callbacks as json-c objects.
 * Commands are built with json-c too.
 */
#ifndef VIRTMGR_QMP_H
#define VIRTMGR_QMP_H

#include <ev.h>
#include <stdbool.h>
#include <stddef.h>

#include "lib/util.h"

struct qmp;
struct json_object; /* json-c */

/* Longest message accepted from QEMU; longer lines close the connection. */
#define QMP_MAX_LINE (256 * 1024)
/* Deepest nesting of arrays and objects accepted from QEMU (its replies
 * nest a few levels); deeper messages close the connection. */
#define QMP_MAX_DEPTH 64

struct qmp_callbacks {
	/* Capabilities negotiated: commands now go out directly. May be NULL. */
	void (*on_ready)(void *opaque);
	/* An event; @data is its "data" member (NULL when absent), borrowed
	 * for the duration of the call. May be NULL. */
	void (*on_event)(void *opaque, const char *name, struct json_object *data);
	/* The connection ended (EOF, error, or a protocol violation named by
	 * @why). No callback follows. May be NULL. */
	void (*on_close)(void *opaque, const char *why);
};

/*
 * Reply to one command: on success @error is NULL and @ret is the "return"
 * member (borrowed for the duration of the call); on failure @ret is NULL and
 * @error is the error's "desc" (or the error as JSON text when it has none),
 * "connection closed" when the connection ends before the reply arrives.
 */
typedef void (*qmp_reply_fn)(void *opaque, struct json_object *ret, const char *error);

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
int qmp_connect(struct ev_loop *loop, const char *path, const struct qmp_callbacks *cb, void *opaque, struct qmp **out,
		struct vm_error *err);

/**
 * qmp_command() - send @command with optional @args (a JSON object, or NULL;
 *                 borrowed); @reply (may be NULL) is called once with the
 *                 answer
 * Return: 0 if sent or queued, -1 if the connection is closed.
 */
int qmp_command(struct qmp *q, const char *command, struct json_object *args, qmp_reply_fn reply, void *opaque);

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

/**
 * qmp_get_string() - read the string member @key of the JSON object @obj
 *                    (for reading replies and event data)
 * Return: the string (owned by @obj), or NULL if @obj is NULL or not an
 *         object, or the member is absent or not a string.
 */
const char *qmp_get_string(struct json_object *obj, const char *key);

#endif
