/* config.c - parse and validate the configuration device tree with libfdt.
 *
 * Design. The blob is copied into an aligned buffer (fw_cfg files are read
 * into arbitrary memory, and libfdt wants 8-byte alignment), then checked
 * from the outside in: size bounds, fdt_check_header(), totalsize equal to
 * the bytes read, fdt_check_full() for the structure block, the root's
 * compatible, the /virtmgr node, and each property of that node by name:
 * strings must be exactly one NUL-terminated string, string lists must end
 * in NUL, u32 values must be exactly 4 bytes, instance-id exactly 64,
 * mounts groups of five bounded strings (source, absolute target, fstype,
 * "ro" or "rw", options). Every
 * failure is INVALID_ARGUMENT with "<property>: <what>", the text the agent
 * sends to the host in NotifyError. Unknown properties are ignored, so an
 * older agent runs with a newer daemon.
 */
#include "config.h"
#include "guest/vmagent/agent_config.h"

#include <errno.h>
#include <fcntl.h>
#include <libfdt.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

enum {
	SEEN_VM_ID = 1u << 0,
	SEEN_NAME = 1u << 1,
	SEEN_CID = 1u << 2,
	SEEN_INSTANCE_ID = 1u << 3,
	SEEN_ARGS = 1u << 4,
	SEEN_ENV = 1u << 5,
	SEEN_CWD = 1u << 6,
	SEEN_AGENT_PORT = 1u << 7,
	SEEN_HOST_PORT = 1u << 8,
	SEEN_DEBUG = 1u << 9,
	SEEN_USER = 1u << 10,
	SEEN_MARKER_KEY = 1u << 11,
	SEEN_MOUNTS = 1u << 12,
	SEEN_CRASH_CORE_LIMIT = 1u << 25,
	SEEN_SHARES = 1u << 20,
	SEEN_ROOT = 1u << 27,
	SEEN_NETWORK = 1u << 21,
};

static int bad(struct vm_error *err, const char *prop, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static int bad(struct vm_error *err, const char *prop, const char *fmt, ...)
{
	char what[VM_ERROR_MSG_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	return vm_error_set(err, VM_INVALID_ARGUMENT, "%s: %s", prop, what);
}

/* Exactly one NUL-terminated string of 1..max-1 characters. */
static int get_string(const char *name, const char *val, int len, char **out, struct vm_error *err)
{
	size_t n;

	if (len <= 0)
		return bad(err, name, "empty property, expected a string");
	if ((unsigned)len > AGENT_CONFIG_MAX_STRING)
		return bad(err, name, "string of %d bytes exceeds %u", len, AGENT_CONFIG_MAX_STRING);
	n = strnlen(val, (size_t)len);
	if (n == (size_t)len)
		return bad(err, name, "string is not NUL-terminated");
	if (n + 1 != (size_t)len)
		return bad(err, name, "NUL inside the string (expected one string, not a list)");
	if (n == 0)
		return bad(err, name, "empty string");
	*out = xstrndup(val, n);
	return 0;
}

static int get_u32(const char *name, const void *val, int len, uint32_t *out, struct vm_error *err)
{
	fdt32_t v;

	if (len != 4)
		return bad(err, name, "expected a u32 of 4 bytes, got %d bytes", len);
	memcpy(&v, val, sizeof(v));
	*out = fdt32_to_cpu(v);
	return 0;
}

/* "a\0b\0" into a NULL-terminated vector (empty entries allowed). */
static int get_list(const char *name, const char *val, int len, char ***out, size_t *count, struct vm_error *err)
{
	size_t n = 0, i = 0;
	char **v;

	if (len <= 0)
		return bad(err, name, "empty property, expected a string list");
	if ((size_t)len > AGENT_CONFIG_MAX_SIZE)
		return bad(err, name, "string list of %d bytes is too large", len);
	if (val[len - 1] != '\0')
		return bad(err, name, "string list is not NUL-terminated");
	for (int p = 0; p < len; p++)
		if (val[p] == '\0')
			n++;
	if (n > AGENT_CONFIG_MAX_LIST)
		return bad(err, name, "%zu entries exceed the limit of %u", n, AGENT_CONFIG_MAX_LIST);
	v = xcalloc(n + 1, sizeof(*v));
	for (int p = 0; p < len; i++) {
		size_t l = strlen(val + p);

		v[i] = xstrndup(val + p, l);
		p += (int)l + 1;
	}
	*out = v;
	*count = n;
	return 0;
}

static void free_list(char **v)
{
	if (!v)
		return;
	for (char **p = v; *p; p++)
		free(*p);
	free(v);
}

void agent_config_clear(struct agent_config *cfg)
{
	free(cfg->vm_id);
	free(cfg->name);
	free_list(cfg->payload_args);
	free_list(cfg->payload_env);
	free(cfg->payload_cwd);
	free_list(cfg->mounts);
	free_list(cfg->shares);
	free_list(cfg->root);
	free_list(cfg->network);
	explicit_bzero(cfg, sizeof(*cfg));
}

static int check_seen(unsigned *seen, unsigned bit, const char *name, struct vm_error *err)
{
	if (*seen & bit)
		return bad(err, name, "property appears twice");
	*seen |= bit;
	return 0;
}

static int parse_prop(const char *name, const void *val, int len, struct agent_config *cfg, unsigned *seen,
		      struct vm_error *err)
{
	if (!strcmp(name, "vm-id")) {
		if (check_seen(seen, SEEN_VM_ID, name, err) < 0 || get_string(name, val, len, &cfg->vm_id, err) < 0)
			return -1;
	} else if (!strcmp(name, "name")) {
		if (check_seen(seen, SEEN_NAME, name, err) < 0 || get_string(name, val, len, &cfg->name, err) < 0)
			return -1;
	} else if (!strcmp(name, "cid")) {
		if (check_seen(seen, SEEN_CID, name, err) < 0 || get_u32(name, val, len, &cfg->cid, err) < 0)
			return -1;
		if (cfg->cid < 3 || cfg->cid == UINT32_MAX)
			return bad(err, name, "%u is not a guest CID (3..4294967294)", cfg->cid);
	} else if (!strcmp(name, "instance-id")) {
		if (check_seen(seen, SEEN_INSTANCE_ID, name, err) < 0)
			return -1;
		if (len != 64)
			return bad(err, name, "expected 64 bytes, got %d", len);
		memcpy(cfg->instance_id, val, 64);
		cfg->has_instance_id = true;
	} else if (!strcmp(name, "payload-args")) {
		if (check_seen(seen, SEEN_ARGS, name, err) < 0 ||
		    get_list(name, val, len, &cfg->payload_args, &cfg->n_payload_args, err) < 0)
			return -1;
		if (!*cfg->payload_args[0])
			return bad(err, name, "the program (first entry) is empty");
	} else if (!strcmp(name, "payload-env")) {
		if (check_seen(seen, SEEN_ENV, name, err) < 0 ||
		    get_list(name, val, len, &cfg->payload_env, &cfg->n_payload_env, err) < 0)
			return -1;
		for (size_t i = 0; i < cfg->n_payload_env; i++) {
			const char *eq = strchr(cfg->payload_env[i], '=');

			if (!eq || eq == cfg->payload_env[i])
				return bad(err, name, "entry %zu \"%.64s\" is not KEY=VALUE", i, cfg->payload_env[i]);
		}
	} else if (!strcmp(name, "payload-cwd")) {
		if (check_seen(seen, SEEN_CWD, name, err) < 0 || get_string(name, val, len, &cfg->payload_cwd, err) < 0)
			return -1;
		if (cfg->payload_cwd[0] != '/')
			return bad(err, name, "\"%.64s\" is not an absolute path", cfg->payload_cwd);
	} else if (!strcmp(name, "agent-port")) {
		if (check_seen(seen, SEEN_AGENT_PORT, name, err) < 0 ||
		    get_u32(name, val, len, &cfg->agent_port, err) < 0)
			return -1;
		if (cfg->agent_port == 0 || cfg->agent_port == UINT32_MAX)
			return bad(err, name, "%u is not a usable vsock port", cfg->agent_port);
	} else if (!strcmp(name, "host-port")) {
		if (check_seen(seen, SEEN_HOST_PORT, name, err) < 0 ||
		    get_u32(name, val, len, &cfg->host_port, err) < 0)
			return -1;
		if (cfg->host_port == UINT32_MAX)
			return bad(err, name, "%u is not a usable vsock port", cfg->host_port);
	} else if (!strcmp(name, "payload-user")) {
		fdt32_t v[2];

		if (check_seen(seen, SEEN_USER, name, err) < 0)
			return -1;
		if (len != 8)
			return bad(err, name, "expected <uid gid> (8 bytes), got %d bytes", len);
		memcpy(v, val, sizeof(v));
		cfg->payload_uid = fdt32_to_cpu(v[0]);
		cfg->payload_gid = fdt32_to_cpu(v[1]);
		/* (uid_t)-1 means "unchanged" to setuid(): never a user */
		if (cfg->payload_uid == UINT32_MAX || cfg->payload_gid == UINT32_MAX)
			return bad(err, name, "%u:%u is not a user", cfg->payload_uid, cfg->payload_gid);
		cfg->has_payload_user = true;
	} else if (!strcmp(name, "marker-key")) {
		if (check_seen(seen, SEEN_MARKER_KEY, name, err) < 0)
			return -1;
		if (len != (int)sizeof(cfg->marker_key))
			return bad(err, name, "expected %zu bytes, got %d", sizeof(cfg->marker_key), len);
		memcpy(cfg->marker_key, val, sizeof(cfg->marker_key));
		cfg->has_marker_key = true;
	} else if (!strcmp(name, "mounts")) {
		size_t n;

		if (check_seen(seen, SEEN_MOUNTS, name, err) < 0 || get_list(name, val, len, &cfg->mounts, &n, err) < 0)
			return -1;
		if (n % 5 || n / 5 > AGENT_CONFIG_MAX_MOUNTS)
			return bad(err, name, "%zu strings are not 5 a mount for at most %u mounts", n,
				   AGENT_CONFIG_MAX_MOUNTS);
		cfg->n_mounts = n / 5;
		for (size_t i = 0; i < n; i++)
			if (strlen(cfg->mounts[i]) > AGENT_CONFIG_MAX_MOUNT_STRING)
				return bad(err, name, "mount %zu: a string exceeds %u bytes", i / 5,
					   AGENT_CONFIG_MAX_MOUNT_STRING);
		for (size_t i = 0; i < cfg->n_mounts; i++) {
			char **m = cfg->mounts + 5 * i;

			if (!*m[0] || !*m[2])
				return bad(err, name, "mount %zu: empty source or file system type", i);
			if (m[1][0] != '/')
				return bad(err, name, "mount %zu: target \"%.64s\" is not an absolute path", i, m[1]);
			if (strcmp(m[3], "ro") && strcmp(m[3], "rw"))
				return bad(err, name, "mount %zu: \"%.8s\" is not ro or rw", i, m[3]);
		}
	} else if (!strcmp(name, "crash-core-limit")) {
		fdt64_t v;

		if (check_seen(seen, SEEN_CRASH_CORE_LIMIT, name, err) < 0)
			return -1;
		if (len != 8)
			return bad(err, name, "expected a u64 of 8 bytes, got %d bytes", len);
		memcpy(&v, val, sizeof(v));
		cfg->crash_core_limit = fdt64_to_cpu(v);
		if (cfg->crash_core_limit < 4096)
			return bad(err, name, "%llu bytes is less than 4096", (unsigned long long)cfg->crash_core_limit);
	} else if (!strcmp(name, "debug")) {
		if (check_seen(seen, SEEN_DEBUG, name, err) < 0 || get_u32(name, val, len, &cfg->debug, err) < 0)
			return -1;
	} else if (!strcmp(name, "shares")) {
		size_t n;

		if (check_seen(seen, SEEN_SHARES, name, err) < 0 || get_list(name, val, len, &cfg->shares, &n, err) < 0)
			return -1;
		if (n % 3 || n / 3 > AGENT_CONFIG_MAX_SHARES)
			return bad(err, name, "%zu strings: expected tag, path, ro|rw for at most %u shares", n,
				   AGENT_CONFIG_MAX_SHARES);
		for (size_t i = 0; i < n; i += 3) {
			const char *tag = cfg->shares[i], *path = cfg->shares[i + 1], *ro = cfg->shares[i + 2];

			if (!*tag || strlen(tag) > AGENT_CONFIG_MAX_TAG ||
			    strspn(tag,
				   "abcdefghijklmnopqrstuvwxyz"
				   "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
				   "0123456789._-") != strlen(tag))
				return bad(err, name, "tag \"%.64s\" is not [A-Za-z0-9._-]{1,%u}", tag,
					   AGENT_CONFIG_MAX_TAG);
			if (path[0] != '/' || strlen(path) > AGENT_CONFIG_MAX_STRING)
				return bad(err, name, "share %s: \"%.64s\" is not an absolute path", tag, path);
			if (strcmp(ro, "ro") && strcmp(ro, "rw"))
				return bad(err, name, "share %s: \"%.8s\" is not ro or rw", tag, ro);
		}
		cfg->n_shares = n / 3;
	} else if (!strcmp(name, "root")) {
		size_t n;

		if (check_seen(seen, SEEN_ROOT, name, err) < 0 || get_list(name, val, len, &cfg->root, &n, err) < 0)
			return -1;
		if (n != 3)
			return bad(err, name, "%zu strings: expected source, fstype, ro|rw", n);
		for (size_t i = 0; i < 2; i++)
			if (!*cfg->root[i] || strlen(cfg->root[i]) > AGENT_CONFIG_MAX_TAG ||
			    strspn(cfg->root[i],
				   "abcdefghijklmnopqrstuvwxyz"
				   "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
				   "0123456789._-") != strlen(cfg->root[i]) ||
			    cfg->root[i][0] == '.')
				return bad(err, name, "\"%.64s\" is not [A-Za-z0-9._-]{1,%u}", cfg->root[i],
					   AGENT_CONFIG_MAX_TAG);
		if (strcmp(cfg->root[2], "ro") && strcmp(cfg->root[2], "rw"))
			return bad(err, name, "\"%.8s\" is not ro or rw", cfg->root[2]);
	} else if (!strcmp(name, "network")) {
		if (check_seen(seen, SEEN_NETWORK, name, err) < 0 ||
		    get_list(name, val, len, &cfg->network, &cfg->n_network, err) < 0)
			return -1;
		if (cfg->n_network > AGENT_CONFIG_MAX_NET)
			return bad(err, name, "%zu strings, at most %u", cfg->n_network, AGENT_CONFIG_MAX_NET);
		for (size_t i = 0; i < cfg->n_network; i++)
			if (strlen(cfg->network[i]) >= 64 || !strchr(cfg->network[i], '='))
				return bad(err, name, "\"%.64s\" is not key=value (under 64 bytes)", cfg->network[i]);
	}
	return 0;
}

static int parse(const void *fdt, size_t len, struct agent_config *cfg, struct vm_error *err)
{
	const char *compat;
	unsigned seen = 0;
	int r, node, plen, off;

	r = fdt_check_header(fdt);
	if (r != 0)
		return bad(err, "header", "not a valid flattened device tree: %s", fdt_strerror(r));
	if (fdt_totalsize(fdt) != len)
		return bad(err, "header", "totalsize %u does not match the %zu bytes of the blob", fdt_totalsize(fdt),
			   len);
	/* the daemon writes version 17; older layouts make Debian's libfdt 1.6
	 * fdt_check_full() read through a NULL strings pointer (found by fuzzing) */
	if (fdt_version(fdt) != FDT_LAST_SUPPORTED_VERSION)
		return bad(err, "header", "version %u is not %d", fdt_version(fdt), FDT_LAST_SUPPORTED_VERSION);
	r = fdt_check_full(fdt, len);
	if (r != 0)
		return bad(err, "structure", "malformed device tree: %s", fdt_strerror(r));
	compat = fdt_getprop(fdt, 0, "compatible", &plen);
	if (!compat)
		return bad(err, "compatible", "missing on the root node");
	if (plen <= 0 || compat[plen - 1] != '\0')
		return bad(err, "compatible", "not a NUL-terminated string list");
	if (fdt_stringlist_search(fdt, 0, "compatible", AGENT_CONFIG_COMPATIBLE) < 0)
		return bad(err, "compatible", "\"%.64s\" is not \"%s\"", compat, AGENT_CONFIG_COMPATIBLE);
	node = fdt_subnode_offset(fdt, 0, "virtmgr");
	if (node < 0)
		return bad(err, "virtmgr", "node missing: %s", fdt_strerror(node));
	fdt_for_each_property_offset(off, fdt, node)
	{
		const char *name;
		const void *val = fdt_getprop_by_offset(fdt, off, &name, &plen);

		if (!val || !name)
			return bad(err, "virtmgr", "unreadable property: %s", fdt_strerror(plen));
		if (parse_prop(name, val, plen, cfg, &seen, err) < 0)
			return -1;
	}
	if (off != -FDT_ERR_NOTFOUND)
		return bad(err, "virtmgr", "walking the properties: %s", fdt_strerror(off));
	if (!(seen & SEEN_VM_ID))
		return bad(err, "vm-id", "missing");
	if (!(seen & SEEN_NAME))
		return bad(err, "name", "missing");
	if (!(seen & SEEN_CID))
		return bad(err, "cid", "missing");
	if (!(seen & SEEN_AGENT_PORT))
		cfg->agent_port = AGENT_DEFAULT_PORT;
	if (!(seen & SEEN_HOST_PORT) || cfg->host_port == 0)
		cfg->host_port = cfg->cid;
	return 0;
}

int agent_config_parse(const void *blob, size_t len, struct agent_config *cfg, struct vm_error *err)
{
	cleanup_free void *buf = NULL;
	int r;

	memset(cfg, 0, sizeof(*cfg));
	if (len < sizeof(struct fdt_header))
		return bad(err, "header", "blob of %zu bytes is shorter than a device tree header", len);
	if (len > AGENT_CONFIG_MAX_SIZE)
		return bad(err, "header", "blob of %zu bytes exceeds %u", len, AGENT_CONFIG_MAX_SIZE);
	/* malloc() memory is aligned for any type, which libfdt needs */
	buf = xmalloc(len);
	memcpy(buf, blob, len);
	r = parse(buf, len, cfg, err);
	explicit_bzero(buf, len); /* it may hold the marker key */
	if (r < 0)
		agent_config_clear(cfg);
	return r;
}

int agent_config_read(const char *path, void **blob, size_t *len, struct vm_error *err)
{
	cleanup_close int fd = open(path, O_RDONLY | O_CLOEXEC);
	size_t cap = 4096, have = 0;
	cleanup_free uint8_t *buf = NULL;

	if (fd < 0) {
		if (errno == ENOENT)
			return 0;
		return vm_error_set_errno(err, VM_INTERNAL, errno, "open %s", path);
	}
	buf = xmalloc(cap);
	for (;;) {
		ssize_t n;

		if (have == cap) {
			if (cap > AGENT_CONFIG_MAX_SIZE)
				return bad(err, "header", "blob exceeds %u bytes", AGENT_CONFIG_MAX_SIZE);
			cap *= 2;
			buf = xrealloc(buf, cap);
		}
		n = read(fd, buf + have, cap - have);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return vm_error_set_errno(err, VM_INTERNAL, errno, "read %s", path);
		if (n == 0)
			break;
		have += (size_t)n;
	}
	*blob = steal_pointer(&buf);
	*len = have;
	return 1;
}
