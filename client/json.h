/* json.h - the little JSON vmctl writes: one object per line, built key by
 * key onto a FILE, with strings escaped per RFC 8259.
 */
#ifndef VIRTMGR_CLIENT_JSON_H
#define VIRTMGR_CLIENT_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

struct json_obj {
	FILE *f;
	bool first;
};

/**
 * json_write_string() - write @s as a quoted JSON string: '"' and '\\'
 * escaped, control characters as \n, \t, ... or \u00XX, bytes >= 0x80 copied
 * (UTF-8 passes through; invalid UTF-8 bytes become U+FFFD).
 */
void json_write_string(FILE *f, const char *s);
/** json_escape() - Return: @s as a quoted JSON string (caller frees). */
char *json_escape(const char *s);

void json_begin(struct json_obj *o, FILE *f);
void json_str(struct json_obj *o, const char *key, const char *val);
void json_int(struct json_obj *o, const char *key, int64_t val);
void json_uint(struct json_obj *o, const char *key, uint64_t val);
void json_bool(struct json_obj *o, const char *key, bool val);
void json_null(struct json_obj *o, const char *key);
void json_str_array(struct json_obj *o, const char *key, const char *const *vals, size_t n);
/**
 * json_obj_begin() - a nested object as the value of @key; fill @inner with
 * the json_* calls and close it with json_obj_end()
 * Return: nothing.
 */
void json_obj_begin(struct json_obj *o, const char *key, struct json_obj *inner);
/** json_obj_end() - close a nested object. Return: nothing. */
void json_obj_end(struct json_obj *inner);
/** json_end() - close the object and end the line. */
void json_end(struct json_obj *o);

#endif
