/* statefile.c - see statefile.h. The format is deliberately trivial:
 *   virtmgr-vm-state 1
 *   key=value
 *   ...
 * so an operator can read it, and the parser stays small enough to fuzz.
 */
#include "config.h"
#include "server/statefile.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#define STATEFILE_HEADER "virtmgr-vm-state 1"

static bool key_valid(const char *k, size_t n)
{
	if (n == 0 || n > 32)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!((k[i] >= 'a' && k[i] <= 'z') || (k[i] >= '0' && k[i] <= '9') || k[i] == '_'))
			return false;
	return true;
}

static bool value_valid(const char *v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)v[i] < 0x20 || v[i] == 0x7f)
			return false;
	return true;
}

void statefile_set(struct statefile *sf, const char *key, const char *value)
{
	value = value ? value : "";
	if (sf->n >= STATEFILE_MAX_KEYS || !key_valid(key, strlen(key)) || !value_valid(value, strlen(value)))
		abort(); /* a programming error: keys and values are ours */
	sf->keys[sf->n] = xstrdup(key);
	sf->values[sf->n] = xstrdup(value);
	sf->n++;
}

void statefile_set_u64(struct statefile *sf, const char *key, uint64_t value)
{
	char buf[24];

	snprintf(buf, sizeof(buf), "%" PRIu64, value);
	statefile_set(sf, key, buf);
}

int statefile_write(const struct statefile *sf, const char *path, struct vm_error *err)
{
	size_t cap = STATEFILE_MAX, len = 0;
	cleanup_free char *buf = xmalloc(cap);
	int n = snprintf(buf, cap, STATEFILE_HEADER "\n");

	len = (size_t)n;
	for (size_t i = 0; i < sf->n; i++) {
		n = snprintf(buf + len, cap - len, "%s=%s\n", sf->keys[i], sf->values[i]);
		if (n < 0 || (size_t)n >= cap - len)
			return vm_error_set(err, VM_INTERNAL, "%s: state larger than %d bytes", path, STATEFILE_MAX);
		len += (size_t)n;
	}
	return write_file_atomic(path, buf, len, 0600, err);
}

int statefile_parse(struct statefile *sf, const char *name, const char *data, size_t len, struct vm_error *err)
{
	size_t pos = 0;
	unsigned line = 0;

	memset(sf, 0, sizeof(*sf));
	if (len > STATEFILE_MAX)
		return vm_error_set(err, VM_DATA_LOSS, "%s: larger than %d bytes", name, STATEFILE_MAX);
	if (len == 0 || data[len - 1] != '\n')
		return vm_error_set(err, VM_DATA_LOSS, "%s: truncated (no final newline)", name);
	while (pos < len) {
		const char *l = data + pos;
		const char *nl = memchr(l, '\n', len - pos);
		size_t n = (size_t)(nl - l);
		const char *eq;

		line++;
		pos += n + 1;
		if (memchr(l, '\0', n)) {
			statefile_clear(sf);
			return vm_error_set(err, VM_DATA_LOSS, "%s:%u: NUL byte", name, line);
		}
		if (line == 1) {
			if (n != strlen(STATEFILE_HEADER) || memcmp(l, STATEFILE_HEADER, n)) {
				statefile_clear(sf);
				return vm_error_set(err, VM_DATA_LOSS, "%s:1: not a virtmgr VM state file", name);
			}
			continue;
		}
		eq = memchr(l, '=', n);
		if (!eq || !key_valid(l, (size_t)(eq - l)) || !value_valid(eq + 1, n - (size_t)(eq - l) - 1)) {
			statefile_clear(sf);
			return vm_error_set(err, VM_DATA_LOSS, "%s:%u: not a key=value line", name, line);
		}
		if (sf->n >= STATEFILE_MAX_KEYS) {
			statefile_clear(sf);
			return vm_error_set(err, VM_DATA_LOSS, "%s:%u: more than %d keys", name, line,
					    STATEFILE_MAX_KEYS);
		}
		sf->keys[sf->n] = xstrndup(l, (size_t)(eq - l));
		sf->values[sf->n] = xstrndup(eq + 1, n - (size_t)(eq - l) - 1);
		sf->n++;
	}
	return 0;
}

int statefile_read(struct statefile *sf, const char *path, struct vm_error *err)
{
	cleanup_free char *data = NULL;
	size_t len = 0;

	memset(sf, 0, sizeof(*sf));
	if (read_file(path, STATEFILE_MAX, &data, &len, err) < 0)
		return -1;
	return statefile_parse(sf, path, data, len, err);
}

const char *statefile_get(const struct statefile *sf, const char *key)
{
	for (size_t i = sf->n; i-- > 0;)
		if (!strcmp(sf->keys[i], key))
			return sf->values[i];
	return NULL;
}

int statefile_get_u64(const struct statefile *sf, const char *key, uint64_t max, uint64_t *out, struct vm_error *err)
{
	const char *v = statefile_get(sf, key);
	char *end;
	unsigned long long x;

	if (!v || !*v)
		return vm_error_set(err, VM_DATA_LOSS, "key %s is missing", key);
	if (*v < '0' || *v > '9')
		return vm_error_set(err, VM_DATA_LOSS, "key %s: \"%s\" is not a number", key, v);
	errno = 0;
	x = strtoull(v, &end, 10);
	if (errno || *end || x > max)
		return vm_error_set(err, VM_DATA_LOSS, "key %s: \"%s\" is not a number in 0..%" PRIu64, key, v, max);
	*out = x;
	return 0;
}

void statefile_clear(struct statefile *sf)
{
	for (size_t i = 0; i < sf->n; i++) {
		free(sf->keys[i]);
		free(sf->values[i]);
	}
	memset(sf, 0, sizeof(*sf));
}

int proc_start_time(pid_t pid, uint64_t *out)
{
	char path[64], buf[1024], *p;
	cleanup_free char *data = NULL;
	unsigned long long st;
	int field = 2;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	if (read_file(path, sizeof(buf), &data, NULL, NULL) < 0)
		return -1;
	/* the command name (field 2) may contain spaces and parentheses */
	p = strrchr(data, ')');
	if (!p)
		return -1;
	for (p++; *p && field < 22; p++)
		if (*p == ' ')
			field++;
	if (field != 22 || sscanf(p, "%llu", &st) != 1)
		return -1;
	*out = st;
	return 0;
}
