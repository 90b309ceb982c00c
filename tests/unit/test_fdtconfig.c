/* test_fdtconfig.c - the config device tree round-trips through libfdt's
 * read API exactly as the guest agent reads it, and an oversize payload is
 * refused with a message naming the fields.
 */
#include "config.h"

#include <criterion/criterion.h>
#include <libfdt.h>
#include <string.h>

#include "server/fdtconfig.h"

static const char *prop_str(const void *fdt, int node, const char *name, int *len)
{
	return fdt_getprop(fdt, node, name, len);
}

Test(fdtconfig, round_trip)
{
	char *args[] = { "/bin/sh", "-c", "echo hi" };
	char *env[] = { "A=1", "B=two" };
	uint8_t iid[64];
	struct fdtconfig c = {
		.vm_id = "0123456789ab",
		.name = "demo",
		.cid = 2049,
		.instance_id = iid,
		.payload_args = args,
		.n_payload_args = 3,
		.payload_env = env,
		.n_payload_env = 2,
		.payload_cwd = "/tmp",
		.agent_port = VIRTMGR_AGENT_PORT,
		.host_port = 2049,
		.debug = 1,
	};
	struct vm_error err = { 0 };
	void *blob = NULL;
	size_t len = 0;
	int node, l;
	const char *p;

	for (int i = 0; i < 64; i++)
		iid[i] = (uint8_t)i;
	cr_assert_eq(fdtconfig_build(&c, &blob, &len, &err), 0, "%s", err.message);
	cr_assert_eq(fdt_check_header(blob), 0);
	cr_assert_eq(fdt_totalsize(blob), len);
	cr_assert_eq(fdt_node_check_compatible(blob, 0, FDTCONFIG_COMPATIBLE), 0);
	node = fdt_path_offset(blob, "/virtmgr");
	cr_assert_geq(node, 0);
	cr_assert_str_eq(prop_str(blob, node, "name", &l), "demo");
	cr_assert_str_eq(prop_str(blob, node, "vm-id", &l), "0123456789ab");
	cr_assert_eq(fdt32_to_cpu(*(const fdt32_t *)fdt_getprop(blob, node, "cid", &l)), 2049);
	cr_assert_eq(l, 4);
	p = prop_str(blob, node, "payload-args", &l);
	cr_assert_eq(l, (int)sizeof("/bin/sh\0-c\0echo hi"));
	cr_assert_eq(memcmp(p, "/bin/sh\0-c\0echo hi", (size_t)l), 0);
	cr_assert_eq(fdt_stringlist_count(blob, node, "payload-env"), 2);
	cr_assert_eq(memcmp(fdt_getprop(blob, node, "instance-id", &l), iid, 64), 0);
	cr_assert_eq(l, 64);
	cr_assert_str_eq(prop_str(blob, node, "payload-cwd", &l), "/tmp");
	free(blob);
}

Test(fdtconfig, optional_fields_absent)
{
	struct fdtconfig c = { .vm_id = "x", .name = "n", .cid = 3, .agent_port = 1, .host_port = 3 };
	struct vm_error err = { 0 };
	void *blob = NULL;
	size_t len = 0;
	int node, l;

	cr_assert_eq(fdtconfig_build(&c, &blob, &len, &err), 0);
	node = fdt_path_offset(blob, "/virtmgr");
	cr_assert_null(fdt_getprop(blob, node, "payload-args", &l));
	cr_assert_null(fdt_getprop(blob, node, "instance-id", &l));
	cr_assert_null(fdt_getprop(blob, node, "payload-cwd", &l));
	cr_assert_null(fdt_getprop(blob, node, "payload-user", &l));
	cr_assert_null(fdt_getprop(blob, node, "marker-key", &l));
	free(blob);
}

Test(fdtconfig, payload_user_and_marker_key)
{
	uint8_t key[FDTCONFIG_MARKER_KEY_LEN];
	struct fdtconfig c = { .vm_id = "x",
			       .name = "n",
			       .cid = 3,
			       .agent_port = 1,
			       .host_port = 3,
			       .has_payload_user = true,
			       .payload_uid = 1000,
			       .payload_gid = 100,
			       .marker_key = key };
	struct vm_error err = { 0 };
	const fdt32_t *user;
	void *blob = NULL;
	size_t len = 0;
	int node, l;

	for (size_t i = 0; i < sizeof(key); i++)
		key[i] = (uint8_t)(0xa0 + i);
	cr_assert_eq(fdtconfig_build(&c, &blob, &len, &err), 0, "%s", err.message);
	node = fdt_path_offset(blob, "/virtmgr");
	user = fdt_getprop(blob, node, "payload-user", &l);
	cr_assert_not_null(user);
	cr_assert_eq(l, 8);
	cr_assert_eq(fdt32_to_cpu(user[0]), 1000);
	cr_assert_eq(fdt32_to_cpu(user[1]), 100);
	cr_assert_eq(memcmp(fdt_getprop(blob, node, "marker-key", &l), key, sizeof(key)), 0);
	cr_assert_eq(l, (int)sizeof(key));
	free(blob);
}

Test(fdtconfig, oversize_is_refused)
{
	static char big[100000];
	char *args[4] = { big, big, big, big };
	struct fdtconfig c = { .vm_id = "x", .name = "n", .cid = 3, .payload_args = args, .n_payload_args = 4 };
	struct vm_error err = { 0 };
	void *blob = NULL;
	size_t len = 0;

	memset(big, 'a', sizeof(big) - 1);
	cr_assert_eq(fdtconfig_build(&c, &blob, &len, &err), -1);
	cr_assert_eq(err.code, VM_INVALID_ARGUMENT);
	cr_assert(strstr(err.message, "payload_args"), "%s", err.message);
	cr_assert_null(blob);
}
