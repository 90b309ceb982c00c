/* test_agent_config.c - vmagent's configuration parser against blobs built
 * by the daemon's own builder (server/fdtconfig.c), and against every kind
 * of damage: truncation, a wrong totalsize, a wrong compatible, properties
 * of the wrong type or length, missing required properties. Each failure
 * must name the property, as the agent sends that text to the host.
 */
#include "config.h"

#include <criterion/criterion.h>
#include <libfdt.h>
#include <stdio.h>
#include <string.h>

#include "guest/vmagent/agent_config.h"
#include "server/fdtconfig.h"

static char *args[] = { "/bin/sh", "-c", "echo hi", "" };
static char *env[] = { "A=1", "B=two words" };
static uint8_t iid[64];

static void *valid_blob(size_t *len)
{
	struct fdtconfig c = {
		.vm_id = "0123456789ab",
		.name = "demo",
		.cid = 2049,
		.instance_id = iid,
		.payload_args = args,
		.n_payload_args = 4,
		.payload_env = env,
		.n_payload_env = 2,
		.payload_cwd = "/tmp",
		.agent_port = VIRTMGR_AGENT_PORT,
		.host_port = 2049,
		.debug = 1,
	};
	struct vm_error err = { 0 };
	void *blob = NULL;

	for (int i = 0; i < 64; i++)
		iid[i] = (uint8_t)(i * 3);
	cr_assert_eq(fdtconfig_build(&c, &blob, len, &err), 0, "%s", err.message);
	return blob;
}

/* A copy of the valid blob with room to edit; returns the /virtmgr offset. */
static void *editable(size_t *len, int *node)
{
	size_t l;
	cleanup_free void *b = valid_blob(&l);
	void *buf = xzalloc(l + 1024);

	cr_assert_eq(fdt_open_into(b, buf, (int)l + 1024), 0);
	*node = fdt_path_offset(buf, "/virtmgr");
	cr_assert_geq(*node, 0);
	*len = l + 1024;
	return buf;
}

static void finish_edit(void *buf, size_t *len)
{
	cr_assert_eq(fdt_pack(buf), 0);
	*len = fdt_totalsize(buf);
}

static void expect_error(const void *blob, size_t len, const char *prefix)
{
	struct agent_config cfg;
	struct vm_error err = { 0 };

	cr_assert_eq(agent_config_parse(blob, len, &cfg, &err), -1, "expected \"%s...\" to fail", prefix);
	cr_assert_eq(err.code, VM_INVALID_ARGUMENT);
	cr_assert(strncmp(err.message, prefix, strlen(prefix)) == 0, "message \"%s\" does not start with \"%s\"",
		  err.message, prefix);
	cr_assert_null(cfg.vm_id);
	cr_assert_null(cfg.payload_args);
}

Test(agent_config, valid_round_trip)
{
	size_t len;
	cleanup_free void *blob = valid_blob(&len);
	struct agent_config cfg;
	struct vm_error err = { 0 };

	cr_assert_eq(agent_config_parse(blob, len, &cfg, &err), 0, "%s", err.message);
	cr_assert_str_eq(cfg.vm_id, "0123456789ab");
	cr_assert_str_eq(cfg.name, "demo");
	cr_assert_eq(cfg.cid, 2049);
	cr_assert(cfg.has_instance_id);
	cr_assert_eq(memcmp(cfg.instance_id, iid, 64), 0);
	cr_assert_eq(cfg.n_payload_args, 4);
	cr_assert_str_eq(cfg.payload_args[2], "echo hi");
	cr_assert_str_eq(cfg.payload_args[3], "");
	cr_assert_null(cfg.payload_args[4]);
	cr_assert_eq(cfg.n_payload_env, 2);
	cr_assert_str_eq(cfg.payload_env[1], "B=two words");
	cr_assert_null(cfg.payload_env[2]);
	cr_assert_str_eq(cfg.payload_cwd, "/tmp");
	cr_assert_eq(cfg.agent_port, 9100);
	cr_assert_eq(cfg.host_port, 2049);
	cr_assert_eq(cfg.debug, 1);
	agent_config_clear(&cfg);
}

Test(agent_config, minimal_defaults)
{
	struct fdtconfig c = { .vm_id = "x", .name = "n", .cid = 3 };
	struct agent_config cfg;
	struct vm_error err = { 0 };
	cleanup_free void *blob = NULL;
	size_t len;

	cr_assert_eq(fdtconfig_build(&c, &blob, &len, &err), 0);
	/* agent-port 0 is not usable: the builder always writes one, so drop it */
	{
		cleanup_free void *buf = xzalloc(len + 256);
		int node;

		cr_assert_eq(fdt_open_into(blob, buf, (int)len + 256), 0);
		node = fdt_path_offset(buf, "/virtmgr");
		cr_assert_eq(fdt_delprop(buf, node, "agent-port"), 0);
		cr_assert_eq(fdt_delprop(buf, node, "host-port"), 0);
		cr_assert_eq(fdt_pack(buf), 0);
		cr_assert_eq(agent_config_parse(buf, fdt_totalsize(buf), &cfg, &err), 0, "%s", err.message);
	}
	cr_assert_eq(cfg.agent_port, 9100);
	cr_assert_eq(cfg.host_port, 3, "host port defaults to the CID");
	cr_assert_null(cfg.payload_args);
	cr_assert_null(cfg.payload_cwd);
	cr_assert_not(cfg.has_instance_id);
	cr_assert_not(cfg.has_payload_user);
	cr_assert_not(cfg.has_marker_key);
	agent_config_clear(&cfg);
}

Test(agent_config, payload_user_and_marker_key)
{
	uint8_t key[FDTCONFIG_MARKER_KEY_LEN];
	struct fdtconfig c = { .vm_id = "x",
			       .name = "n",
			       .cid = 3,
			       .agent_port = 9100,
			       .has_payload_user = true,
			       .payload_uid = 65534,
			       .payload_gid = 0,
			       .marker_key = key };
	struct agent_config cfg;
	struct vm_error err = { 0 };
	cleanup_free void *blob = NULL;
	size_t len;

	for (size_t i = 0; i < sizeof(key); i++)
		key[i] = (uint8_t)(i * 5 + 1);
	cr_assert_eq(fdtconfig_build(&c, &blob, &len, &err), 0, "%s", err.message);
	cr_assert_eq(agent_config_parse(blob, len, &cfg, &err), 0, "%s", err.message);
	cr_assert(cfg.has_payload_user);
	cr_assert_eq(cfg.payload_uid, 65534);
	cr_assert_eq(cfg.payload_gid, 0);
	cr_assert(cfg.has_marker_key);
	cr_assert_eq(memcmp(cfg.marker_key, key, sizeof(key)), 0);
	agent_config_clear(&cfg);
	cr_assert_not(cfg.has_marker_key, "cleared");
}

Test(agent_config, truncated_and_size)
{
	size_t len;
	cleanup_free void *blob = valid_blob(&len);
	cleanup_free uint8_t *big = xzalloc(len + 8);

	expect_error(blob, 0, "header: ");
	expect_error(blob, 20, "header: ");
	expect_error(blob, len - 1, "header: totalsize");
	expect_error(blob, len / 2, "header: totalsize");
	memcpy(big, blob, len);
	expect_error(big, len + 8, "header: totalsize");
	expect_error(big, AGENT_CONFIG_MAX_SIZE + 1, "header: ");
}

Test(agent_config, garbage)
{
	uint8_t junk[512];

	memset(junk, 0xa5, sizeof(junk));
	expect_error(junk, sizeof(junk), "header: not a valid flattened device tree");
}

Test(agent_config, wrong_compatible)
{
	size_t len;
	int node;
	cleanup_free void *buf = editable(&len, &node);

	cr_assert_eq(fdt_setprop_string(buf, 0, "compatible", "other,thing"), 0);
	finish_edit(buf, &len);
	expect_error(buf, len, "compatible: ");
}

Test(agent_config, missing_node)
{
	size_t len;
	int node;
	cleanup_free void *buf = editable(&len, &node);

	cr_assert_eq(fdt_del_node(buf, node), 0);
	finish_edit(buf, &len);
	expect_error(buf, len, "virtmgr: node missing");
}

Test(agent_config, missing_required)
{
	const char *props[] = { "vm-id", "name", "cid" };

	for (size_t i = 0; i < 3; i++) {
		size_t len;
		int node;
		cleanup_free void *buf = editable(&len, &node);
		char prefix[32];

		cr_assert_eq(fdt_delprop(buf, node, props[i]), 0);
		finish_edit(buf, &len);
		snprintf(prefix, sizeof(prefix), "%s: missing", props[i]);
		expect_error(buf, len, prefix);
	}
}

struct bad_prop {
	const char *name;
	const void *val;
	int len;
	const char *prefix;
};

Test(agent_config, wrong_types)
{
	static const uint8_t three[3] = { 0, 0, 9 };
	static const uint8_t eight[8] = { 0 };
	static const uint8_t cid2[4] = { 0, 0, 0, 2 };
	static const uint8_t port0[4] = { 0 };
	static const uint8_t iid63[63] = { 0 };
	static const uint8_t minus1[8] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff };
	const struct bad_prop cases[] = {
		{ "cid", three, 3, "cid: expected a u32 of 4 bytes, got 3" },
		{ "cid", eight, 8, "cid: expected a u32 of 4 bytes, got 8" },
		{ "cid", cid2, 4, "cid: 2 is not a guest CID" },
		{ "agent-port", port0, 4, "agent-port: 0 is not a usable" },
		{ "debug", "x", 2, "debug: expected a u32" },
		{ "instance-id", iid63, 63, "instance-id: expected 64 bytes, got 63" },
		{ "vm-id", "abc", 3, "vm-id: string is not NUL-terminated" },
		{ "vm-id", "a\0b", 4, "vm-id: NUL inside the string" },
		{ "vm-id", "", 1, "vm-id: empty string" },
		{ "name", "", 0, "name: empty property" },
		{ "payload-args", "sh\0-c", 5, "payload-args: string list is not NUL-terminated" },
		{ "payload-args", "\0x", 3, "payload-args: the program (first entry) is empty" },
		{ "payload-env", "NOEQUALS", 9, "payload-env: entry 0" },
		{ "payload-env", "A=1\0=x", 7, "payload-env: entry 1" },
		{ "payload-cwd", "relative", 9, "payload-cwd: \"relative\" is not an absolute path" },
		{ "payload-user", cid2, 4, "payload-user: expected <uid gid> (8 bytes), got 4" },
		{ "payload-user", minus1, 8, "payload-user: 4294967295:4294967295 is not a user" },
		{ "marker-key", iid63, 31, "marker-key: expected 32 bytes, got 31" },
		{ "marker-key", iid63, 33, "marker-key: expected 32 bytes, got 33" },
		{ "mounts", "a\0/t\0ext4\0ro", 13, "mounts: 4 strings are not 5 a mount" },
		{ "mounts", "a\0rel\0ext4\0ro\0", 15, "mounts: mount 0: target \"rel\" is not an absolute path" },
		{ "mounts", "a\0/t\0ext4\0rx\0", 14, "mounts: mount 0: \"rx\" is not ro or rw" },
		{ "mounts", "\0/t\0ext4\0ro\0", 13, "mounts: mount 0: empty source" },
	};

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		size_t len;
		int node;
		cleanup_free void *buf = editable(&len, &node);

		cr_assert_eq(fdt_setprop(buf, node, cases[i].name, cases[i].val, cases[i].len), 0);
		finish_edit(buf, &len);
		expect_error(buf, len, cases[i].prefix);
	}
}

Test(agent_config, oversize_string)
{
	size_t len;
	int node;
	cleanup_free void *buf = NULL;
	cleanup_free char *s = xzalloc(AGENT_CONFIG_MAX_STRING + 10);
	size_t sz;
	cleanup_free void *blob = valid_blob(&sz);

	memset(s, 'a', AGENT_CONFIG_MAX_STRING + 5);
	buf = xzalloc(sz + AGENT_CONFIG_MAX_STRING + 1024);
	cr_assert_eq(fdt_open_into(blob, buf, (int)(sz + AGENT_CONFIG_MAX_STRING + 1024)), 0);
	node = fdt_path_offset(buf, "/virtmgr");
	cr_assert_eq(fdt_setprop_string(buf, node, "name", s), 0);
	finish_edit(buf, &len);
	expect_error(buf, len, "name: string of");
}

Test(agent_config, unknown_properties_ignored)
{
	size_t len;
	int node;
	cleanup_free void *buf = editable(&len, &node);
	struct agent_config cfg;
	struct vm_error err = { 0 };

	cr_assert_eq(fdt_setprop_string(buf, node, "future-thing", "whatever"), 0);
	finish_edit(buf, &len);
	cr_assert_eq(agent_config_parse(buf, len, &cfg, &err), 0, "%s", err.message);
	agent_config_clear(&cfg);
}

Test(agent_config, read_missing_file)
{
	void *blob = NULL;
	size_t len = 0;
	struct vm_error err = { 0 };

	cr_assert_eq(agent_config_read("/nonexistent/virtmgr/config", &blob, &len, &err), 0);
	cr_assert_null(blob);
}

Test(agent_config, mounts_round_trip)
{
	static char *mounts[] = { "data", "/mnt/data", "ext4", "rw", "", "ro", "/x/y", "squashfs", "ro", "noatime" };
	struct fdtconfig c = {
		.vm_id = "x", .name = "n", .cid = 3, .agent_port = 9100, .mounts = mounts, .n_mounts = 2
	};
	struct agent_config cfg;
	struct vm_error err = { 0 };
	cleanup_free void *blob = NULL;
	size_t len;

	cr_assert_eq(fdtconfig_build(&c, &blob, &len, &err), 0, "%s", err.message);
	cr_assert_eq(agent_config_parse(blob, len, &cfg, &err), 0, "%s", err.message);
	cr_assert_eq(cfg.n_mounts, 2);
	for (size_t i = 0; i < 10; i++)
		cr_assert_str_eq(cfg.mounts[i], mounts[i]);
	cr_assert_null(cfg.mounts[10]);
	agent_config_clear(&cfg);
}

/* VmConfig.root (guest/vmagent/root.c): three checked strings */
Test(agent_config, root_round_trip_and_bad)
{
	static char *root[] = { "root", "ext4", "ro" };
	static char *bad_label[] = { "../x", "ext4", "ro" };
	static char *bad_mode[] = { "root", "ext4", "maybe" };
	static char *dot_type[] = { "root", ".", "rw" };
	char *const *bads[] = { bad_label, bad_mode, dot_type };
	struct fdtconfig c = { .vm_id = "x", .name = "n", .cid = 3, .agent_port = 9100, .root = root };
	struct agent_config cfg;
	struct vm_error err = { 0 };
	size_t len;

	{
		cleanup_free void *blob = NULL;

		cr_assert_eq(fdtconfig_build(&c, &blob, &len, &err), 0, "%s", err.message);
		cr_assert_eq(agent_config_parse(blob, len, &cfg, &err), 0, "%s", err.message);
		cr_assert_not_null(cfg.root);
		for (size_t i = 0; i < 3; i++)
			cr_assert_str_eq(cfg.root[i], root[i]);
		agent_config_clear(&cfg);
	}
	for (size_t k = 0; k < 3; k++) {
		cleanup_free void *blob = NULL;

		c.root = bads[k];
		cr_assert_eq(fdtconfig_build(&c, &blob, &len, &err), 0, "%s", err.message);
		cr_assert_lt(agent_config_parse(blob, len, &cfg, &err), 0, "bad root %zu accepted", k);
		cr_assert(strstr(err.message, "root"), "message: %s", err.message);
	}
}

/* VmConfig.crash_core_limit reaches the crash collector (guest/vmagent/crash.c). */
Test(agent_config, crash_core_limit)
{
	static const uint8_t small[8] = { 0, 0, 0, 0, 0, 0, 0x0f, 0xff };
	struct fdtconfig c = { .vm_id = "0123456789ab", .name = "demo", .cid = 2049, .agent_port = 5000,
			       .host_port = 2049, .crash_core_limit = 3ull << 32 };
	struct agent_config cfg;
	struct vm_error err = { 0 };
	cleanup_free void *blob = NULL;
	size_t len;
	int node;

	cr_assert_eq(fdtconfig_build(&c, &blob, &len, &err), 0, "%s", err.message);
	cr_assert_eq(agent_config_parse(blob, len, &cfg, &err), 0, "%s", err.message);
	cr_assert_eq(cfg.crash_core_limit, 3ull << 32);
	agent_config_clear(&cfg);

	/* absent: 0, the collector's default */
	c.crash_core_limit = 0;
	free(blob);
	blob = NULL;
	cr_assert_eq(fdtconfig_build(&c, &blob, &len, &err), 0, "%s", err.message);
	cr_assert_eq(agent_config_parse(blob, len, &cfg, &err), 0, "%s", err.message);
	cr_assert_eq(cfg.crash_core_limit, 0);
	agent_config_clear(&cfg);

	cleanup_free void *b1 = editable(&len, &node);
	cr_assert_eq(fdt_setprop(b1, node, "crash-core-limit", small, 4), 0);
	finish_edit(b1, &len);
	expect_error(b1, len, "crash-core-limit: expected a u64 of 8 bytes, got 4");
	cleanup_free void *b2 = editable(&len, &node);
	cr_assert_eq(fdt_setprop(b2, node, "crash-core-limit", small, 8), 0);
	finish_edit(b2, &len);
	expect_error(b2, len, "crash-core-limit: 4095 bytes is less than 4096");
}
