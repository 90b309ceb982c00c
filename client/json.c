/* json.c - JSON output for vmctl --json. vmctl only ever writes flat
 * objects of strings, numbers, booleans and string arrays, one per line, so
 * a streaming writer with a correct string escaper is all that is needed.
 * Strings from the daemon may carry any bytes (guest messages, file names):
 * valid UTF-8 is copied, anything else becomes U+FFFD so the output always
 * parses.
 */
#include "config.h"
#include "client/json.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "lib/util.h"

/* Length of the valid UTF-8 sequence at @s (1..4), or 0 if invalid. */
static size_t utf8_len(const unsigned char *s)
{
	unsigned char c = s[0];
	size_t n, i;
	uint32_t cp;

	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf) {
		n = 2;
		cp = c & 0x1f;
	} else if (c >= 0xe0 && c <= 0xef) {
		n = 3;
		cp = c & 0x0f;
	} else if (c >= 0xf0 && c <= 0xf4) {
		n = 4;
		cp = c & 0x07;
	} else {
		return 0;
	}
	for (i = 1; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[i] & 0x3f);
	}
	/* overlong forms, surrogates, beyond U+10FFFF */
	if ((n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) || (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff)
		return 0;
	return n;
}

void json_write_string(FILE *f, const char *str)
{
	const unsigned char *s = (const unsigned char *)(str ? str : "");

	fputc('"', f);
	while (*s) {
		unsigned char c = *s;
		size_t n;

		switch (c) {
		case '"':
			fputs("\\\"", f);
			break;
		case '\\':
			fputs("\\\\", f);
			break;
		case '\b':
			fputs("\\b", f);
			break;
		case '\f':
			fputs("\\f", f);
			break;
		case '\n':
			fputs("\\n", f);
			break;
		case '\r':
			fputs("\\r", f);
			break;
		case '\t':
			fputs("\\t", f);
			break;
		default:
			if (c < 0x20 || c == 0x7f) {
				fprintf(f, "\\u%04x", c);
				break;
			}
			n = utf8_len(s);
			if (n == 0) {
				fputs("\\ufffd", f);
				break;
			}
			fwrite(s, 1, n, f);
			s += n;
			continue;
		}
		s++;
	}
	fputc('"', f);
}

char *json_escape(const char *s)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	if (!f)
		abort();
	json_write_string(f, s);
	if (fclose(f) != 0)
		abort();
	return buf;
}

void json_begin(struct json_obj *o, FILE *f)
{
	o->f = f;
	o->first = true;
	fputc('{', f);
}

static void json_key(struct json_obj *o, const char *key)
{
	if (!o->first)
		fputc(',', o->f);
	o->first = false;
	json_write_string(o->f, key);
	fputc(':', o->f);
}

void json_str(struct json_obj *o, const char *key, const char *val)
{
	json_key(o, key);
	json_write_string(o->f, val);
}

void json_int(struct json_obj *o, const char *key, int64_t val)
{
	json_key(o, key);
	fprintf(o->f, "%" PRId64, val);
}

void json_uint(struct json_obj *o, const char *key, uint64_t val)
{
	json_key(o, key);
	fprintf(o->f, "%" PRIu64, val);
}

void json_bool(struct json_obj *o, const char *key, bool val)
{
	json_key(o, key);
	fputs(val ? "true" : "false", o->f);
}

void json_null(struct json_obj *o, const char *key)
{
	json_key(o, key);
	fputs("null", o->f);
}

void json_str_array(struct json_obj *o, const char *key, const char *const *vals, size_t n)
{
	json_key(o, key);
	fputc('[', o->f);
	for (size_t i = 0; i < n; i++) {
		if (i)
			fputc(',', o->f);
		json_write_string(o->f, vals[i]);
	}
	fputc(']', o->f);
}

void json_obj_begin(struct json_obj *o, const char *key, struct json_obj *inner)
{
	json_key(o, key);
	inner->f = o->f;
	inner->first = true;
	fputc('{', o->f);
}

void json_obj_end(struct json_obj *inner)
{
	fputc('}', inner->f);
}

void json_end(struct json_obj *o)
{
	fputs("}\n", o->f);
	fflush(o->f);
}
