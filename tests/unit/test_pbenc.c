/* test_pbenc.c - lib/ttrpc.c packs protobuf messages itself (a one-pass
 * encoder for ttrpc_pack(), and per-type plans for a server's answers);
 * both must write exactly the bytes protobuf_c_message_pack() writes.
 *
 * Random messages of every type the project sends (everything reachable
 * from the three services of virtmgr.proto, and ttrpc's envelope), and of
 * tests/unit/pbenc.proto and pbenc2.proto (every field type and label
 * protobuf-c generates: proto3 scalars, packed and unpacked repeated,
 * oneof, maps, enums, nested messages, proto2 required/optional with
 * defaults), are filled from their descriptors with values chosen to cross
 * the encoding's edges (zero, varint length steps, negative numbers, -0.0,
 * empty and 127/128-byte strings). Each is packed by ttrpc_pack() and, as
 * the answer of a real ttrpc server on a socketpair, by the server's plan;
 * both are compared with protobuf-c's bytes.
 */
#include "config.h"

#include <criterion/criterion.h>
#include <ev.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "lib/ttrpc.h"
#include "lib/util.h"
#include "protos/ttrpc.pb-c.h"
#include "protos/virtmgr.pb-c.h"
#include "tests/unit/pbenc.pb-c.h"
#include "tests/unit/pbenc2.pb-c.h"

#define ROUNDS 1000

static uint64_t rng = 0x9e3779b97f4a7c15ull;

static uint64_t rnd(void)
{
	/* xorshift64*: reproducible, no libc state */
	rng ^= rng >> 12;
	rng ^= rng << 25;
	rng ^= rng >> 27;
	return rng * 0x2545f4914f6cdd1dull;
}

static unsigned rnd_below(unsigned n)
{
	return (unsigned)(rnd() % n);
}

/* A 64-bit value of a random magnitude: 0, 1 byte, ..., all 64 bits, or negative. */
static uint64_t rnd_value(void)
{
	switch (rnd_below(6)) {
	case 0:
		return 0;
	case 1:
		return rnd() & 0x7f;
	case 2:
		return rnd() & 0x3fff;
	case 3:
		return rnd() >> rnd_below(64);
	case 4:
		return (uint64_t)-(int64_t)(rnd() & 0xffff);
	default:
		return rnd();
	}
}

static char *rnd_string(void)
{
	static const unsigned lengths[] = { 0, 1, 5, 127, 128, 300 };
	unsigned n = lengths[rnd_below(ARRAY_SIZE(lengths))];
	char *s = xmalloc(n + 1);

	for (unsigned i = 0; i < n; i++)
		s[i] = (char)('a' + rnd_below(26));
	s[n] = '\0';
	return s;
}

static void fill_message(ProtobufCMessage *m, int depth);

static ProtobufCMessage *new_message(const ProtobufCMessageDescriptor *d, int depth)
{
	ProtobufCMessage *m = xmalloc(d->sizeof_message);

	d->message_init(m);
	fill_message(m, depth);
	return m;
}

/* One value of field @f's type at @p. */
static void fill_value(const ProtobufCFieldDescriptor *f, void *p, int depth)
{
	uint64_t v = rnd_value();

	switch (f->type) {
	case PROTOBUF_C_TYPE_INT32:
	case PROTOBUF_C_TYPE_SINT32:
	case PROTOBUF_C_TYPE_SFIXED32:
	case PROTOBUF_C_TYPE_UINT32:
	case PROTOBUF_C_TYPE_FIXED32:
		*(uint32_t *)p = (uint32_t)v;
		break;
	case PROTOBUF_C_TYPE_ENUM: {
		const ProtobufCEnumDescriptor *e = f->descriptor;

		*(int32_t *)p = rnd_below(3) ? e->values[rnd_below(e->n_values)].value : (int32_t)v;
		break;
	}
	case PROTOBUF_C_TYPE_INT64:
	case PROTOBUF_C_TYPE_SINT64:
	case PROTOBUF_C_TYPE_SFIXED64:
	case PROTOBUF_C_TYPE_UINT64:
	case PROTOBUF_C_TYPE_FIXED64:
		*(uint64_t *)p = v;
		break;
	case PROTOBUF_C_TYPE_FLOAT:
		*(float *)p = rnd_below(4) ? (float)(int64_t)v / 7.0f : -0.0f;
		break;
	case PROTOBUF_C_TYPE_DOUBLE:
		*(double *)p = rnd_below(4) ? (double)(int64_t)v / 3.0 : -0.0;
		break;
	case PROTOBUF_C_TYPE_BOOL:
		*(protobuf_c_boolean *)p = (protobuf_c_boolean)(v & 1);
		break;
	case PROTOBUF_C_TYPE_STRING:
		*(char **)p = rnd_string();
		break;
	case PROTOBUF_C_TYPE_BYTES: {
		ProtobufCBinaryData *b = p;

		b->data = (uint8_t *)rnd_string();
		b->len = strlen((char *)b->data);
		break;
	}
	case PROTOBUF_C_TYPE_MESSAGE:
		*(ProtobufCMessage **)p = new_message(f->descriptor, depth + 1);
		break;
	}
}

static size_t value_size(const ProtobufCFieldDescriptor *f)
{
	switch (f->type) {
	case PROTOBUF_C_TYPE_INT64:
	case PROTOBUF_C_TYPE_SINT64:
	case PROTOBUF_C_TYPE_SFIXED64:
	case PROTOBUF_C_TYPE_UINT64:
	case PROTOBUF_C_TYPE_FIXED64:
		return 8;
	case PROTOBUF_C_TYPE_DOUBLE:
		return sizeof(double);
	case PROTOBUF_C_TYPE_BOOL:
		return sizeof(protobuf_c_boolean);
	case PROTOBUF_C_TYPE_STRING:
		return sizeof(char *);
	case PROTOBUF_C_TYPE_BYTES:
		return sizeof(ProtobufCBinaryData);
	case PROTOBUF_C_TYPE_MESSAGE:
		return sizeof(ProtobufCMessage *);
	default:
		return 4;
	}
}

/* Every field of @m, each present or not at random (nested messages stop at depth 3). */
static void fill_message(ProtobufCMessage *m, int depth)
{
	const ProtobufCMessageDescriptor *d = m->descriptor;
	char *base = (char *)m;

	for (unsigned i = 0; i < d->n_fields; i++) {
		const ProtobufCFieldDescriptor *f = &d->fields[i];
		void *member = base + f->offset;
		bool deep = f->type == PROTOBUF_C_TYPE_MESSAGE && depth >= 3;

		if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
			uint32_t *which = (uint32_t *)(base + f->quantifier_offset);

			if (*which == 0 && !deep && rnd_below(3) == 0) {
				*which = f->id;
				fill_value(f, member, depth);
			}
			continue;
		}
		switch (f->label) {
		case PROTOBUF_C_LABEL_REQUIRED:
			cr_assert(!deep, "a required message field nested too deep");
			if (f->type == PROTOBUF_C_TYPE_STRING || f->type == PROTOBUF_C_TYPE_BYTES ||
			    f->type == PROTOBUF_C_TYPE_MESSAGE || rnd_below(2))
				fill_value(f, member, depth);
			break;
		case PROTOBUF_C_LABEL_NONE:
			/* proto3: zero values and empty strings are not sent; leave some at zero */
			if (!deep && rnd_below(4))
				fill_value(f, member, depth);
			else if (f->type == PROTOBUF_C_TYPE_STRING)
				*(char **)member = xstrdup("");
			break;
		case PROTOBUF_C_LABEL_OPTIONAL:
			if (deep || rnd_below(3) == 0)
				break; /* absent: NULL, the default pointer, or has_ = 0 */
			fill_value(f, member, depth);
			if (f->quantifier_offset)
				*(protobuf_c_boolean *)(base + f->quantifier_offset) = 1;
			break;
		case PROTOBUF_C_LABEL_REPEATED: {
			size_t n = deep ? 0 : rnd_below(5), size = value_size(f);
			char *arr = n ? xcalloc(n, size) : NULL;

			for (size_t k = 0; k < n; k++)
				fill_value(f, arr + k * size, depth);
			*(size_t *)(base + f->quantifier_offset) = n;
			*(void **)member = arr;
			break;
		}
		}
	}
}

/* ---------------------------------------------------------------- the server side */

struct echo {
	struct ev_loop *loop;
	const ProtobufCMessage *reply;   /* what the handler answers */
	uint8_t *got;
	size_t got_len;
	bool done;
};

static void reply_handler(struct ttrpc_call *call, const ProtobufCMessage *req, void *opaque)
{
	struct echo *e = opaque;

	(void)req;
	ttrpc_call_reply(call, e->reply, NULL, 0);
}

static void on_reply(const struct vm_error *status, const uint8_t *payload, size_t len, void *opaque)
{
	struct echo *e = opaque;

	cr_assert_eq(status->code, 0, "call failed: %s", status->message);
	e->got = xmalloc(len + 1);
	if (len)
		memcpy(e->got, payload, len);
	e->got_len = len;
	e->done = true;
	ev_break(e->loop, EVBREAK_ONE);
}

static void check_one(struct echo *e, struct ttrpc_conn *client, const ProtobufCMessage *m)
{
	size_t want_len = protobuf_c_message_get_packed_size(m), len = 0;
	uint8_t *want = xmalloc(want_len + 1), *ours;
	Pbenc__Leaf req = PBENC__LEAF__INIT;

	cr_assert_eq(protobuf_c_message_pack(m, want), want_len);
	ours = ttrpc_pack(m, &len);
	cr_assert(len == want_len && memcmp(ours, want, len) == 0,
		  "%s: ttrpc_pack wrote %zu bytes, protobuf-c %zu (or other bytes)", m->descriptor->name, len,
		  want_len);
	free(ours);

	e->reply = m;
	e->done = false;
	cr_assert_eq(ttrpc_conn_call(client, "pbenc.Test", "Reply", &req.base, 0, on_reply, e), 0);
	while (!e->done)
		ev_run(e->loop, EVRUN_ONCE);
	cr_assert(e->got_len == want_len && memcmp(e->got, want, want_len) == 0,
		  "%s: the server's plan wrote %zu bytes, protobuf-c %zu (or other bytes)", m->descriptor->name,
		  e->got_len, want_len);
	free(e->got);
	free(want);
}

/* The message types reachable from @d (its fields' types, recursively). */
static void collect(const ProtobufCMessageDescriptor *d, const ProtobufCMessageDescriptor **set, size_t *n,
		    size_t cap)
{
	for (size_t i = 0; i < *n; i++)
		if (set[i] == d)
			return;
	cr_assert(*n < cap);
	set[(*n)++] = d;
	for (unsigned i = 0; i < d->n_fields; i++)
		if (d->fields[i].type == PROTOBUF_C_TYPE_MESSAGE)
			collect(d->fields[i].descriptor, set, n, cap);
}

Test(pbenc, both_encoders_write_protobuf_c_bytes)
{
	static const ProtobufCServiceDescriptor *const services[] = {
		&virtmgr__v1__virtualization_service__descriptor,
		&virtmgr__v1__virtual_machine_service__descriptor,
		&virtmgr__v1__agent__descriptor,
	};
	static const ProtobufCMessageDescriptor *const roots[] = {
		&ttrpc__request__descriptor, &ttrpc__response__descriptor,
		&pbenc__all__descriptor, &pbenc2__old__descriptor,
	};
	const ProtobufCMessageDescriptor *types[256];
	struct echo e = { .loop = ev_loop_new(EVFLAG_AUTO) };
	struct ttrpc_server *srv = ttrpc_server_new(e.loop);
	struct vm_error err = { 0 };
	struct ttrpc_conn *client;
	size_t ntypes = 0, nmessages = 0;
	int sv[2];

	for (size_t s = 0; s < ARRAY_SIZE(services); s++)
		for (unsigned k = 0; k < services[s]->n_methods; k++) {
			collect(services[s]->methods[k].input, types, &ntypes, ARRAY_SIZE(types));
			collect(services[s]->methods[k].output, types, &ntypes, ARRAY_SIZE(types));
		}
	for (size_t r = 0; r < ARRAY_SIZE(roots); r++)
		collect(roots[r], types, &ntypes, ARRAY_SIZE(types));

	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	ttrpc_server_add_method(srv, "pbenc.Test", "Reply", &pbenc__leaf__descriptor, reply_handler, &e);
	cr_assert_not_null(ttrpc_server_adopt(srv, sv[0], &err), "%s", err.message);
	client = ttrpc_client_conn_new(e.loop, sv[1], NULL, NULL);
	cr_assert_not_null(client);

	for (int round = 0; round < ROUNDS; round++)
		for (size_t t = 0; t < ntypes; t++) {
			ProtobufCMessage *m = new_message(types[t], 0);

			check_one(&e, client, m);
			protobuf_c_message_free_unpacked(m, NULL);
			nmessages++;
		}
	cr_log_info("%zu messages of %zu types packed alike", nmessages, ntypes);
	cr_assert_gt(ntypes, 30, "only %zu message types reached", ntypes);

	ttrpc_conn_close(client);
	ttrpc_server_free(srv);
	ev_loop_destroy(e.loop);
}
