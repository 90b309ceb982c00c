/* fdtconfig.c - build the per-VM configuration device tree with libfdt's
 * sequential-write API (fdt_create / fdt_begin_node / fdt_property ...),
 * growing the buffer until it fits, up to FDTCONFIG_MAX_SIZE.
 */
#include "config.h"
#include "server/fdtconfig.h"
#include "server/marker.h"

#include <libfdt.h>
#include <string.h>

_Static_assert(FDTCONFIG_MARKER_KEY_LEN == MARKER_KEY_LEN, "marker-key is one marker_key");

/* "a\0b\0c\0" from a string array. */
static char *stringlist(char *const *v, size_t n, size_t *len)
{
	size_t total = 0, off = 0;
	char *out;

	for (size_t i = 0; i < n; i++)
		total += strlen(v[i]) + 1;
	out = xmalloc(total ? total : 1);
	for (size_t i = 0; i < n; i++) {
		size_t l = strlen(v[i]) + 1;

		memcpy(out + off, v[i], l);
		off += l;
	}
	*len = total;
	return out;
}

static int build(const struct fdtconfig *c, void *buf, int size)
{
	cleanup_free char *args = NULL, *env = NULL, *shares = NULL, *mounts = NULL, *network = NULL;
	size_t args_len, env_len, shares_len, mounts_len, network_len;
	int r = 0;

#define TRY(x)                     \
	do {                       \
		if ((r = (x)) < 0) \
			return r;  \
	} while (0)
	TRY(fdt_create(buf, size));
	TRY(fdt_finish_reservemap(buf));
	TRY(fdt_begin_node(buf, ""));
	TRY(fdt_property_string(buf, "compatible", FDTCONFIG_COMPATIBLE));
	TRY(fdt_begin_node(buf, "virtmgr"));
	TRY(fdt_property_string(buf, "vm-id", c->vm_id));
	TRY(fdt_property_string(buf, "name", c->name));
	TRY(fdt_property_u32(buf, "cid", c->cid));
	if (c->instance_id)
		TRY(fdt_property(buf, "instance-id", c->instance_id, 64));
	if (c->n_payload_args) {
		args = stringlist(c->payload_args, c->n_payload_args, &args_len);
		TRY(fdt_property(buf, "payload-args", args, (int)args_len));
	}
	if (c->n_payload_env) {
		env = stringlist(c->payload_env, c->n_payload_env, &env_len);
		TRY(fdt_property(buf, "payload-env", env, (int)env_len));
	}
	if (c->payload_cwd && *c->payload_cwd)
		TRY(fdt_property_string(buf, "payload-cwd", c->payload_cwd));
	if (c->n_mounts) {
		mounts = stringlist(c->mounts, 5 * c->n_mounts, &mounts_len);
		TRY(fdt_property(buf, "mounts", mounts, (int)mounts_len));
	}
	if (c->has_payload_user) {
		fdt32_t user[2] = { cpu_to_fdt32(c->payload_uid), cpu_to_fdt32(c->payload_gid) };

		TRY(fdt_property(buf, "payload-user", user, sizeof(user)));
	}
	if (c->marker_key)
		TRY(fdt_property(buf, "marker-key", c->marker_key, FDTCONFIG_MARKER_KEY_LEN));
	TRY(fdt_property_u32(buf, "agent-port", c->agent_port));
	TRY(fdt_property_u32(buf, "host-port", c->host_port));
	TRY(fdt_property_u32(buf, "debug", c->debug));
	if (c->crash_core_limit)
		TRY(fdt_property_u64(buf, "crash-core-limit", c->crash_core_limit));
	if (c->n_shares) {
		shares = stringlist(c->shares, c->n_shares, &shares_len);
		TRY(fdt_property(buf, "shares", shares, (int)shares_len));
	}
	if (c->root) {
		cleanup_free char *root = NULL;
		size_t root_len;

		root = stringlist(c->root, 3, &root_len);
		TRY(fdt_property(buf, "root", root, (int)root_len));
	}
	if (c->n_network) {
		network = stringlist(c->network, c->n_network, &network_len);
		TRY(fdt_property(buf, "network", network, (int)network_len));
	}
	TRY(fdt_end_node(buf));
	TRY(fdt_end_node(buf));
	TRY(fdt_finish(buf));
#undef TRY
	return 0;
}

int fdtconfig_build(const struct fdtconfig *cfg, void **blob, size_t *len, struct vm_error *err)
{
	for (int size = 4096; size <= (int)FDTCONFIG_MAX_SIZE; size *= 2) {
		cleanup_free void *buf = xzalloc((size_t)size);
		int r = build(cfg, buf, size);

		if (r == -FDT_ERR_NOSPACE)
			continue;
		if (r < 0)
			return vm_error_set(err, VM_INTERNAL, "building the config device tree: %s", fdt_strerror(r));
		r = fdt_pack(buf);
		if (r < 0)
			return vm_error_set(err, VM_INTERNAL, "packing the config device tree: %s", fdt_strerror(r));
		*len = fdt_totalsize(buf);
		*blob = steal_pointer(&buf);
		return 0;
	}
	return vm_error_set(err, VM_INVALID_ARGUMENT,
			    "payload_args/payload_env: the VM configuration is larger than %u KiB",
			    FDTCONFIG_MAX_SIZE >> 10);
}
