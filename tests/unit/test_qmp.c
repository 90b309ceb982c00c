/* test_qmp.c - the QMP client (server/qmp.c) against a socketpair playing
 * QEMU, for fault injection only: the session itself (negotiation, replies
 * matched by id, events) and a misbehaving peer.
 *
 * QEMU runs a guest, so the daemon does not trust what arrives on its
 * monitor socket to be well formed: every malformed input here (truncated,
 * too long, too deeply nested, wrong types, invalid UTF-8, trailing bytes)
 * must end the session with a reason naming the problem, fail the pending
 * commands, and leave the process running. Real QEMU talks QMP in
 * test_qemu.c.
 */
#include "config.h"

#include <criterion/criterion.h>
#include <json.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "lib/util.h"
#include "server/qmp.h"

struct fakeqmp {
	struct ev_loop *loop;
	struct qmp *qmp;
	int peer;
	bool ready, closed;
	char why[128];
	char replies[512];
	char events[256];
};

static void fq_ready(void *opaque)
{
	((struct fakeqmp *)opaque)->ready = true;
	ev_break(((struct fakeqmp *)opaque)->loop, EVBREAK_ONE);
}

static void fq_event(void *opaque, const char *name, struct json_object *data)
{
	struct fakeqmp *f = opaque;
	size_t n = strlen(f->events);

	snprintf(f->events + n, sizeof(f->events) - n, "%s:%s ", name,
		 data ? json_object_to_json_string_ext(data, JSON_C_TO_STRING_PLAIN) : "");
}

static void fq_close(void *opaque, const char *why)
{
	struct fakeqmp *f = opaque;

	f->closed = true;
	snprintf(f->why, sizeof(f->why), "%s", why);
	ev_break(f->loop, EVBREAK_ONE);
}

static void fq_reply(void *opaque, struct json_object *ret, const char *error)
{
	struct fakeqmp *f = opaque;
	size_t n = strlen(f->replies);

	if (error)
		snprintf(f->replies + n, sizeof(f->replies) - n, "err=%s ", error);
	else
		snprintf(f->replies + n, sizeof(f->replies) - n, "ok=%s ",
			 json_object_to_json_string_ext(ret, JSON_C_TO_STRING_PLAIN));
}

static const struct qmp_callbacks fq_cb = { .on_ready = fq_ready, .on_event = fq_event, .on_close = fq_close };

/* Run the loop until the client has written something to the peer. */
static void fq_pump(struct fakeqmp *f)
{
	struct pollfd pfd = { .fd = f->peer, .events = POLLIN };

	while (poll(&pfd, 1, 0) == 0)
		ev_run(f->loop, EVRUN_ONCE);
}

static void fq_setup(struct fakeqmp *f)
{
	int sv[2];
	char buf[256];
	ssize_t n;

	memset(f, 0, sizeof(*f));
	f->loop = ev_loop_new(EVFLAG_AUTO);
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	f->peer = sv[1];
	f->qmp = qmp_new(f->loop, sv[0], &fq_cb, f);
	cr_assert_eq(qmp_command(f->qmp, "query-status", NULL, fq_reply, f), 0, "queued before negotiation");
	dprintf(f->peer, "{\"QMP\": {\"version\": {}, \"capabilities\": []}}\r\n");
	fq_pump(f);
	n = read(f->peer, buf, sizeof(buf) - 1);
	cr_assert_gt(n, 0);
	buf[n] = '\0';
	cr_assert_str_eq(buf, "{\"execute\":\"qmp_capabilities\",\"id\":0}\n");
	dprintf(f->peer, "{\"return\": {}, \"id\": 0}\r\n");
	ev_run(f->loop, 0);
	cr_assert(f->ready);
}

static void fq_run_until_closed(struct fakeqmp *f)
{
	while (!f->closed)
		ev_run(f->loop, EVRUN_ONCE);
}

static void fq_teardown(struct fakeqmp *f)
{
	close(f->peer);
	qmp_free(f->qmp);
	ev_loop_destroy(f->loop);
}

/* Write @msg (a whole line, or several) to an established session with a
 * command pending: the session must close for @why and fail the command. */
static void fq_expect_close(const char *msg, size_t len, const char *why)
{
	struct fakeqmp f;
	size_t off = 0;

	fq_setup(&f);
	cr_assert_eq(qmp_command(f.qmp, "stop", NULL, fq_reply, &f), 0);
	fd_set_nonblock(f.peer, true);
	while (!f.closed && off < len) {
		ssize_t n = write(f.peer, msg + off, len - off);

		if (n > 0)
			off += (size_t)n;
		ev_run(f.loop, EVRUN_NOWAIT);
	}
	fq_run_until_closed(&f);
	cr_assert_str_eq(f.why, why, "input %.80s", msg);
	cr_assert(strstr(f.replies, "err=connection closed"), "pending command failed: %s", f.replies);
	fq_teardown(&f);
}

Test(qmp, replies_by_id_and_events)
{
	struct fakeqmp f;
	struct json_object *args = json_object_new_object();
	char buf[512];
	ssize_t n;

	fq_setup(&f);
	json_object_object_add(args, "x", json_object_new_int(1));
	json_object_object_add(args, "path", json_object_new_string("/a\"b\n\x01"));
	cr_assert_eq(qmp_command(f.qmp, "stop", args, fq_reply, &f), 0);
	json_object_put(args);
	buf[0] = '\0';
	while (!strstr(buf, "\"stop\"")) {
		size_t have = strlen(buf);

		fq_pump(&f);
		n = read(f.peer, buf + have, sizeof(buf) - 1 - have);
		cr_assert_gt(n, 0);
		buf[have + (size_t)n] = '\0';
	}
	cr_assert(strstr(buf, "{\"execute\":\"query-status\",\"id\":1}\n"), "%s", buf);
	cr_assert(
		strstr(buf, "{\"execute\":\"stop\",\"arguments\":{\"x\":1,\"path\":\"/a\\\"b\\n\\u0001\"},\"id\":2}\n"),
		"%s", buf);
	/* answers out of order, ids that are not ours, events, then EOF */
	dprintf(f.peer,
		"{\"error\": {\"class\": \"GenericError\", \"desc\": \"no \\\"way\\\"\"}, \"id\": 2}\n"
		"{\"return\": {}, \"id\": 99}\n"
		"{\"return\": {}, \"id\": \"1\"}\n"
		"{\"return\": {}, \"id\": -1}\n"
		"{\"return\": {}, \"id\": 1.0}\n"
		"{\"return\": {}, \"id\": 123456789012345678901234567890}\n"
		"{\"return\": {}}\n"
		"{\"greeting\": \"neither event nor reply\"}\n"
		"{\"event\": \"STOP\", \"timestamp\": {\"seconds\": 1}}\n"
		"{\"event\": \"SHUTDOWN\", \"data\": {\"reason\": \"guest-reset\"}}\n"
		"{\"return\": {\"status\": \"paused\"}, \"id\": 1}\n");
	close(f.peer);
	fq_run_until_closed(&f);
	cr_assert_str_eq(f.replies, "err=no \"way\" ok={\"status\":\"paused\"} ");
	cr_assert_str_eq(f.events, "STOP: SHUTDOWN:{\"reason\":\"guest-reset\"} ");
	cr_assert_str_eq(f.why, "connection closed by QEMU");
	cr_assert_eq(qmp_command(f.qmp, "cont", NULL, NULL, NULL), -1);
	qmp_free(f.qmp);
	ev_loop_destroy(f.loop);
}

Test(qmp, error_without_desc)
{
	struct fakeqmp f;

	fq_setup(&f);
	dprintf(f.peer,
		"{\"error\": {\"class\": \"GenericError\"}, \"id\": 1}\n"
		"{\"return\": 1, \"id\": 99}\n");
	shutdown(f.peer, SHUT_WR);
	fq_run_until_closed(&f);
	cr_assert_str_eq(f.replies, "err={\"class\":\"GenericError\"} ");
	fq_teardown(&f);
}

Test(qmp, get_string)
{
	struct json_object *o = json_tokener_parse("{\"a\": \"x\", \"n\": 1, \"o\": {\"a\": \"y\"}}");

	cr_assert_str_eq(qmp_get_string(o, "a"), "x");
	cr_assert_null(qmp_get_string(o, "n"), "wrong type reads as absent");
	cr_assert_null(qmp_get_string(o, "o"));
	cr_assert_null(qmp_get_string(o, "missing"));
	cr_assert_null(qmp_get_string(NULL, "a"));
	cr_assert_null(qmp_get_string(json_object_object_get(o, "n"), "a"), "not an object");
	json_object_put(o);
}

#define S(lit) lit, sizeof(lit) - 1

Test(qmp, truncated_message_closes)
{
	fq_expect_close(S("{\"return\": {}, \"id\": \n"), "malformed QMP message: truncated");
	fq_expect_close(S("{\"return\": {\"status\": \"runn\n"), "malformed QMP message: truncated");
}

Test(qmp, malformed_messages_close)
{
	static const char *bad[] = {
		"{\"a\"}",
		"{\"a\":}",
		"{\"a\":1,}",
		"{\"a\":tru}",
		"{\"a\":\"\\q\"}",
		"{\"a\":\"\\u12\"}",
		"{a:1}",
		"{\"a\":-}",
		"{\"a\":[1,2}",
		"{\"a\":1} /* c */",
		"{\"a\":\"\xff\xfe\"}",
		"}",
		"{\"a\":1} {\"b\":2}",
		"{\"a\":1}]",
		"\x01",
	};

	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		char *line = xasprintf("%s\n", bad[i]);
		struct fakeqmp f;

		fq_setup(&f);
		dprintf(f.peer, "%s", line);
		fq_run_until_closed(&f);
		cr_assert(strncmp(f.why, "malformed QMP message: ", 23) == 0, "input %s: %s", bad[i], f.why);
		fq_teardown(&f);
		free(line);
	}
}

Test(qmp, wrong_types_close)
{
	fq_expect_close(S("[1, 2]\n"), "malformed QMP message: not a JSON object");
	fq_expect_close(S("\"SHUTDOWN\"\n"), "malformed QMP message: not a JSON object");
	fq_expect_close(S("42\n"), "malformed QMP message: not a JSON object");
	fq_expect_close(S("true\n"), "malformed QMP message: not a JSON object");
	fq_expect_close(S("{\"event\": 5}\n"), "malformed QMP event: name is not a string");
	fq_expect_close(S("{\"event\": {\"name\": \"STOP\"}}\n"), "malformed QMP event: name is not a string");
}

Test(qmp, deep_nesting_closes)
{
	size_t depth = 10000, len = 2 * depth + 20;
	char *msg = xmalloc(len);
	size_t n = 0;

	/* within the limit: parsed (and ignored: it is nobody's reply) */
	n = (size_t)sprintf(msg, "{\"return\": {}, \"x\": ");
	memset(msg + n, '[', QMP_MAX_DEPTH - 2);
	n += QMP_MAX_DEPTH - 2;
	memset(msg + n, ']', QMP_MAX_DEPTH - 2);
	n += QMP_MAX_DEPTH - 2;
	memcpy(msg + n, "}\n", 2);
	n += 2;
	{
		struct fakeqmp f;

		fq_setup(&f);
		cr_assert_eq(write(f.peer, msg, n), (ssize_t)n);
		shutdown(f.peer, SHUT_WR);
		fq_run_until_closed(&f);
		cr_assert_str_eq(f.why, "connection closed by QEMU", "nesting at the limit is accepted");
		fq_teardown(&f);
	}

	/* far beyond it: refused without recursing into it */
	n = (size_t)sprintf(msg, "{\"return\": ");
	memset(msg + n, '[', depth);
	n += depth;
	memset(msg + n, ']', depth);
	n += depth;
	memcpy(msg + n, "}\n", 2);
	n += 2;
	fq_expect_close(msg, n, "malformed QMP message: nesting too deep");
	free(msg);
}

Test(qmp, overlong_message_closes)
{
	char *big = xmalloc(QMP_MAX_LINE + 2);

	memset(big, ' ', QMP_MAX_LINE + 1);
	fq_expect_close(big, QMP_MAX_LINE + 1, "QMP message too long");
	/* a long string, a huge number: well formed and under the limit */
	{
		struct fakeqmp f;
		size_t n = (size_t)sprintf(big, "{\"event\": \"");

		fq_setup(&f);
		memset(big + n, 'E', QMP_MAX_LINE / 2);
		n += QMP_MAX_LINE / 2;
		n += (size_t)sprintf(big + n, "\", \"data\": {\"n\": 1%0400d}}\n", 0);
		fd_set_nonblock(f.peer, true);
		for (size_t off = 0; off < n;) {
			ssize_t w = write(f.peer, big + off, n - off);

			if (w > 0)
				off += (size_t)w;
			ev_run(f.loop, EVRUN_NOWAIT);
		}
		shutdown(f.peer, SHUT_WR);
		fq_run_until_closed(&f);
		cr_assert_str_eq(f.why, "connection closed by QEMU");
		cr_assert(strncmp(f.events, "EEEE", 4) == 0, "%.40s", f.events);
		fq_teardown(&f);
	}
	free(big);
}

/* A session fed @text from the start (greeting included) closes for @why. */
static void fq_expect_close_early(const char *text, const char *why)
{
	struct fakeqmp f = { 0 };
	int sv[2];

	f.loop = ev_loop_new(EVFLAG_AUTO);
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	f.peer = sv[1];
	f.qmp = qmp_new(f.loop, sv[0], &fq_cb, &f);
	dprintf(f.peer, "%s", text);
	fq_run_until_closed(&f);
	cr_assert_str_eq(f.why, why);
	fq_teardown(&f);
}

Test(qmp, bad_greeting_closes)
{
	fq_expect_close_early("{\"hello\": 1}\n", "QMP greeting missing");
	fq_expect_close_early("{\"QMP\": {}}\n{\"error\": {\"desc\": \"no capabilities today\"}, \"id\": 0}\n",
			      "qmp_capabilities failed: no capabilities today");
}
