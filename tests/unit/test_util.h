/* test_util.h - small helpers shared by the unit tests. */
#ifndef VIRTMGR_TEST_UTIL_H
#define VIRTMGR_TEST_UTIL_H

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* Append printf-style text to the string in @buf (@size bytes), truncating. */
static inline void test_appendf(char *buf, size_t size, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static inline void test_appendf(char *buf, size_t size, const char *fmt, ...)
{
	size_t n = strlen(buf);
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf + n, size - n, fmt, ap);
	va_end(ap);
}

#endif
