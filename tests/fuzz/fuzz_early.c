/* fuzz_early.c - libFuzzer target: bytes of an early_vms*.xml file through
 * every gate of server/early.c (UTF-8, XML without DTD, early_vms.xsd, the
 * partition rules) and, when accepted, through lookups.
 *
 * The input is checked as a file of each partition in turn, from memory
 * (early_registry_load_buffer()), so nothing is read from disk but the
 * schema, the first of: $EARLY_XSD, $top_srcdir/etc/early_vms.xsd,
 * EARLY_FUZZ_XSD (if compiled in), or etc/early_vms.xsd of the source tree
 * this file was compiled from (from __FILE__, relative to the directory
 * make runs in). Oracle:
 * a refused file must come back as FAILED_PRECONDITION with a message that
 * names the file; an accepted one must answer lookups without crashing,
 * a refused lookup being NOT_FOUND, PERMISSION_DENIED (another path) or
 * FAILED_PRECONDITION naming the file (a bad entry of that name), and an
 * accepted one giving a CID in the partition's range and the asked path.
 */
#include "config.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/log.h"
#include "lib/util.h"
#include "server/early.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char *find_schema(void)
{
	static const char self[] = "tests/fuzz/fuzz_early.c";
	const char *env = getenv("EARLY_XSD");
	const char *top = getenv("top_srcdir");
	const char *file = __FILE__;
	size_t n = strlen(file);
	char *path;

	if (env)
		return xstrdup(env);
	if (top) {
		path = xasprintf("%s/etc/early_vms.xsd", top);
		if (access(path, R_OK) == 0)
			return path;
		free(path);
	}
#ifdef EARLY_FUZZ_XSD
	if (access(EARLY_FUZZ_XSD, R_OK) == 0)
		return xstrdup(EARLY_FUZZ_XSD);
#endif
	if (n >= strlen(self) && strcmp(file + n - strlen(self), self) == 0)
		return xasprintf("%.*setc/early_vms.xsd", (int)(n - strlen(self)), file);
	return xstrdup("etc/early_vms.xsd");
}

static struct early_registry *fuzz_registry(void)
{
	static struct early_registry *reg;
	struct vm_error err = { 0 };
	cleanup_free char *xsd = NULL;

	if (reg)
		return reg;
	xsd = find_schema();
	/* every refused entry is logged; that is the daemon's business, not the fuzzer's */
	log_set_level(LOG_LVL_ERROR);
	/* the root is never read: every table comes from memory */
	if (early_registry_new("/nonexistent-early-fuzz-root", xsd, &reg, &err) < 0) {
		fprintf(stderr, "fuzz_early: %s (set EARLY_XSD)\n", err.message);
		abort();
	}
	return reg;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const names[] = { "a", "vm", "vm_demo_early", "" };
	struct early_registry *reg = fuzz_registry();

	for (unsigned p = 0; p < EARLY_PARTITION_COUNT; p++) {
		const char *pname = early_partition_name((enum early_partition)p);
		struct vm_error err = { 0 };
		int n = early_registry_load_buffer(reg, (enum early_partition)p, "fuzz.xml", data, size, &err);

		if (n < 0) {
			if (err.code != VM_FAILED_PRECONDITION || strncmp(err.message, "fuzz.xml", 8) != 0) {
				fprintf(stderr, "fuzz_early: bad refusal %d: %s\n", err.code, err.message);
				abort();
			}
			continue;
		}
		for (size_t i = 0; i < ARRAY_SIZE(names); i++) {
			cleanup_free char *exe = xasprintf("/%s/bin/%s", pname, names[i]);
			struct early_vm vm = { 0 };
			uint32_t lo, hi;

			if (early_find_vm(reg, exe, names[i], &vm, &err) < 0) {
				/* a refused entry names its file; else not declared, or another path */
				if (!(err.code == VM_NOT_FOUND || err.code == VM_PERMISSION_DENIED ||
				      (err.code == VM_FAILED_PRECONDITION &&
				       strncmp(err.message, "fuzz.xml", 8) == 0))) {
					fprintf(stderr, "fuzz_early: bad lookup refusal %d: %s\n", err.code,
						err.message);
					abort();
				}
				continue;
			}
			early_partition_cid_range((enum early_partition)p, &lo, &hi);
			if (vm.cid < lo || vm.cid > hi || strcmp(vm.path, exe) != 0) {
				fprintf(stderr, "fuzz_early: accepted %s cid %u path %s\n", vm.name, vm.cid, vm.path);
				abort();
			}
			early_vm_clear(&vm);
		}
	}
	/* the bytes as a caller path too */
	if (size > 0 && size < 4096 && data[0] == '/' && !memchr(data, 0, size)) {
		cleanup_free char *path = xstrndup((const char *)data, size);
		cleanup_free char *norm = NULL;
		enum early_partition part;
		struct vm_error err = { 0 };

		(void)early_normalize_path(path, &part, &norm, &err);
	}
	return 0;
}
