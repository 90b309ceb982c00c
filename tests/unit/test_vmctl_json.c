/* test_vmctl_json.c - the JSON writer behind `vmctl --json`: string
 * escaping (quotes, backslashes, control bytes, UTF-8, invalid UTF-8) and
 * the one-object-per-line shape, checked by parsing the output back with
 * exact expected strings.
 */
#include "config.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client/json.h"

static void check(const char *in, const char *out)
{
	char *s = json_escape(in);

	cr_assert_str_eq(s, out, "escaping %s", in);
	free(s);
}

Test(json, plain)
{
	check("", "\"\"");
	check("hello", "\"hello\"");
	check(NULL, "\"\"");
}

Test(json, specials)
{
	check("a\"b", "\"a\\\"b\"");
	check("a\\b", "\"a\\\\b\"");
	check("/path/ok", "\"/path/ok\"");
	check("l1\nl2\r\t\b\f", "\"l1\\nl2\\r\\t\\b\\f\"");
	check("\x01\x1f\x7f", "\"\\u0001\\u001f\\u007f\"");
	check("\x1b[0m", "\"\\u001b[0m\"");
}

Test(json, utf8)
{
	check("gr\xc3\xbc\xc3\x9f", "\"gr\xc3\xbc\xc3\x9f\""); /* grüß */
	check("\xe2\x82\xac", "\"\xe2\x82\xac\"");	       /* € */
	check("\xf0\x9f\x98\x80", "\"\xf0\x9f\x98\x80\"");     /* emoji */
	check("a\xff"
	      "b",
	      "\"a\\ufffdb\"");				    /* not UTF-8 */
	check("\xc3", "\"\\ufffd\"");			    /* truncated */
	check("\xc0\xaf", "\"\\ufffd\\ufffd\"");	    /* overlong '/' */
	check("\xed\xa0\x80", "\"\\ufffd\\ufffd\\ufffd\""); /* surrogate */
	check("\xe2\x82", "\"\\ufffd\\ufffd\"");	    /* cut short */
}

Test(json, object_per_line)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	struct json_obj o;
	const char *const feats[] = { "a", "b\"c" };

	cr_assert_not_null(f);
	json_begin(&o, f);
	json_str(&o, "name", "vm\n1");
	json_int(&o, "code", -3);
	json_uint(&o, "big", UINT64_MAX);
	json_bool(&o, "ok", true);
	json_bool(&o, "no", false);
	json_null(&o, "none");
	json_str_array(&o, "features", feats, 2);
	json_str_array(&o, "empty", feats, 0);
	json_end(&o);
	json_begin(&o, f);
	json_end(&o);
	fclose(f);
	cr_assert_str_eq(buf,
			 "{\"name\":\"vm\\n1\",\"code\":-3,\"big\":18446744073709551615,\"ok\":true,"
			 "\"no\":false,\"none\":null,\"features\":[\"a\",\"b\\\"c\"],\"empty\":[]}\n{}\n");
	free(buf);
}
