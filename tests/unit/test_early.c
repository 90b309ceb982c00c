/* test_early.c - early VM declarations, rules, caller identity, run dirs.
 *
 * Every test builds a real root in a temp dir: declaration files are written
 * to <root>/<partition>/etc/avf/early_vms*.xml and parsed by server/early.c
 * against etc/early_vms.xsd from the source tree. Caller identity uses real
 * child processes running a copy of /bin/sleep placed inside the root.
 * EARLY_TEST_SHOW=1 prints every error message checked (docs/early-vms.md
 * quotes them).
 */
#include "config.h"

#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lib/util.h"
#include "server/caller.h"
#include "server/early.h"

static char *tmp_root;

/* Parameters are indices into a static table: Criterion copies parameters
 * into the test's process, where pointers into the table's strings would
 * not be valid. */
#define INDEX_PARAMS(table)                               \
	static size_t idx_[ARRAY_SIZE(table)];            \
	for (size_t i_ = 0; i_ < ARRAY_SIZE(table); i_++) \
		idx_[i_] = i_;                            \
	return cr_make_param_array(size_t, idx_, ARRAY_SIZE(table))

static void setup_root(void)
{
	char tmpl[] = "/tmp/early-test-XXXXXX";

	cr_assert_not_null(mkdtemp(tmpl));
	tmp_root = xstrdup(tmpl);
}

static void teardown_root(void)
{
	if (tmp_root)
		remove_tree(tmp_root);
	free(tmp_root);
	tmp_root = NULL;
}

static void show(const struct vm_error *err)
{
	if (getenv("EARLY_TEST_SHOW"))
		fprintf(stderr, "%s: %s\n", vm_status_name(err->code), err->message);
}

/* Write @len bytes (-1: strlen) to <tmp_root>/@rel, creating directories. */
static char *put_file(const char *rel, const char *data, ssize_t len)
{
	char *path = xasprintf("%s/%s", tmp_root, rel);
	cleanup_free char *dir = xstrdup(path);
	int fd;

	*strrchr(dir, '/') = '\0';
	cr_assert_eq(mkdir_p(dir, 0755), 0, "mkdir_p %s", dir);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	cr_assert_geq(fd, 0, "open %s", path);
	cr_assert_eq(write_all(fd, data, len < 0 ? strlen(data) : (size_t)len), 0);
	close(fd);
	return path;
}

/* Declaration file body with one entry per (name, cid, path) triple. */
static char *vms_xml(const char *const *triples, size_t n)
{
	char *s = xstrdup("<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<early_vms>\n");

	for (size_t i = 0; i < n; i++) {
		char *t = xasprintf(
			"%s  <early_vm>\n    <name>%s</name>\n    <cid>%s</cid>\n"
			"    <path>%s</path>\n  </early_vm>\n",
			s, triples[3 * i], triples[3 * i + 1], triples[3 * i + 2]);
		free(s);
		s = t;
	}
	{
		char *t = xasprintf("%s</early_vms>\n", s);
		free(s);
		s = t;
	}
	return s;
}

static struct early_registry *new_registry(void)
{
	struct early_registry *reg = NULL;
	struct vm_error err = { 0 };

	cr_assert_eq(early_registry_new(tmp_root, EARLY_TEST_XSD, &reg, &err), 0, "%s", err.message);
	return reg;
}

/* ---------------------------------------------------------------- AVF port */

/* AVF's test_find_early_vms_from_xml, as it is: one file with a good
 * entry, a duplicated name and two invalid CIDs. Each lookup considers only
 * the entries of its name: the good one is found, each bad one fails with
 * its own message. AVF's test passes a CID range of 100..1000; here the
 * file is system's (100..199), which refuses 999999 just the same, and the
 * duplicates (456, 789) fail as duplicates before their range is looked at. */
static const char avf_xml[] =
	"<?xml version=\"1.0\" encoding=\"utf-8\"?>\n"
	"    <early_vms>\n"
	"        <early_vm>\n"
	"            <name>vm_demo_native_early</name>\n"
	"            <cid>123</cid>\n"
	"            <path>/system/bin/vm_demo_native_early</path>\n"
	"        </early_vm>\n"
	"        <early_vm>\n"
	"            <name>vm_demo_duplicated_name</name>\n"
	"            <cid>456</cid>\n"
	"            <path>/system/bin/vm_demo_duplicated_name_1</path>\n"
	"        </early_vm>\n"
	"        <early_vm>\n"
	"            <name>vm_demo_duplicated_name</name>\n"
	"            <cid>789</cid>\n"
	"            <path>/system/bin/vm_demo_duplicated_name_2</path>\n"
	"        </early_vm>\n"
	"        <early_vm>\n"
	"            <name>vm_demo_invalid_cid_1</name>\n"
	"            <cid>-1</cid>\n"
	"            <path>/system/bin/vm_demo_invalid_cid_1</path>\n"
	"        </early_vm>\n"
	"        <early_vm>\n"
	"            <name>vm_demo_invalid_cid_2</name>\n"
	"            <cid>999999</cid>\n"
	"            <path>/system/bin/vm_demo_invalid_cid_2</path>\n"
	"        </early_vm>\n"
	"    </early_vms>\n";

TestSuite(avf, .init = setup_root, .fini = teardown_root);

Test(avf, find_early_vms_from_xml)
{
	static const struct {
		const char *name;
		const char *expect; /* follows "<file>" */
	} bad[] = {
		{ "vm_demo_duplicated_name",
		  ":13: early_vm \"vm_demo_duplicated_name\": duplicate name, first declared at " },
		{ "vm_demo_invalid_cid_1",
		  ":20: early_vm \"vm_demo_invalid_cid_1\": does not match early_vms.xsd: Element 'cid': "
		  "'-1' is not a valid value" },
		{ "vm_demo_invalid_cid_2",
		  ":23: early_vm \"vm_demo_invalid_cid_2\": cid 999999 is outside system's range 100..199" },
	};
	cleanup_free char *file = put_file("system/etc/avf/early_vms.xml", avf_xml, -1);
	struct early_registry *reg = new_registry();
	struct early_vm vm = { 0 };
	struct vm_error err = { 0 };

	cr_assert_eq(early_find_vm(reg, "/system/bin/vm_demo_native_early", "vm_demo_native_early", &vm, &err), 0, "%s",
		     err.message);
	cr_expect_str_eq(vm.name, "vm_demo_native_early");
	cr_expect_eq(vm.cid, 123);
	cr_expect_str_eq(vm.path, "/system/bin/vm_demo_native_early");
	cr_expect_str_eq(vm.file, file);
	cr_expect_eq(vm.line, 3);
	cr_expect_eq(vm.partition, EARLY_SYSTEM);
	early_vm_clear(&vm);

	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		cleanup_free char *exe = xasprintf("/system/bin/%s", bad[i].name);

		memset(&err, 0, sizeof(err));
		cr_expect_lt(early_find_vm(reg, exe, bad[i].name, &vm, &err), 0, "%s should fail", bad[i].name);
		show(&err);
		cr_expect_eq(err.code, VM_FAILED_PRECONDITION, "%s", err.message);
		cr_expect(strncmp(err.message, file, strlen(file)) == 0, "%s", err.message);
		cr_expect_not_null(strstr(err.message, bad[i].expect), "got: %s\nwant: %s", err.message, bad[i].expect);
	}
	/* the second declaration of the duplicated name is just as unusable */
	cr_expect_lt(early_find_vm(reg, "/system/bin/vm_demo_duplicated_name_2", "vm_demo_duplicated_name", &vm, &err),
		     0);
	cr_expect_eq(early_registry_count(reg, EARLY_SYSTEM, &err), 1);
	early_registry_free(reg);
}

/* ----------------------------------------------------------- CID ranges */

struct range_case {
	enum early_partition part;
	unsigned cid;
	bool ok;
};

static const struct range_case ranges_boundaries_cases[] = {
	{ EARLY_SYSTEM, 99, false },	  { EARLY_SYSTEM, 100, true },
	{ EARLY_SYSTEM, 199, true },	  { EARLY_SYSTEM, 200, false },
	{ EARLY_SYSTEM_EXT, 199, false }, { EARLY_SYSTEM_EXT, 200, true },
	{ EARLY_SYSTEM_EXT, 299, true },  { EARLY_SYSTEM_EXT, 300, false },
	{ EARLY_PRODUCT, 199, false },	  { EARLY_PRODUCT, 200, true },
	{ EARLY_PRODUCT, 299, true },	  { EARLY_PRODUCT, 300, false },
	{ EARLY_VENDOR, 299, false },	  { EARLY_VENDOR, 300, true },
	{ EARLY_VENDOR, 399, true },	  { EARLY_VENDOR, 400, false },
	{ EARLY_ODM, 299, false },	  { EARLY_ODM, 300, true },
	{ EARLY_ODM, 399, true },	  { EARLY_ODM, 400, false },
	{ EARLY_SYSTEM, 0, false },	  { EARLY_VENDOR, 4294967295u, false },
};

ParameterizedTestParameters(ranges, boundaries)
{
	INDEX_PARAMS(ranges_boundaries_cases);
}

ParameterizedTest(size_t *index, ranges, boundaries, .init = setup_root, .fini = teardown_root)
{
	const struct range_case *c = &ranges_boundaries_cases[*index];
	const char *pname = early_partition_name(c->part);
	cleanup_free char *rel = xasprintf("%s/etc/avf/early_vms.xml", pname);
	cleanup_free char *cid = xasprintf("%u", c->cid);
	cleanup_free char *exe = xasprintf("/%s/bin/vm", pname);
	const char *triple[] = { "vm", cid, exe };
	cleanup_free char *xml = vms_xml(triple, 1);
	cleanup_free char *file = put_file(rel, xml, -1);
	struct early_registry *reg = new_registry();
	struct early_vm vm = { 0 };
	struct vm_error err = { 0 };
	int rc = early_find_vm(reg, exe, "vm", &vm, &err);

	if (c->ok) {
		cr_expect_eq(rc, 0, "%s %u: %s", pname, c->cid, err.message);
		cr_expect_eq(vm.cid, c->cid);
		cr_expect_eq(vm.partition, c->part);
	} else {
		uint32_t lo, hi;
		cleanup_free char *want = NULL;

		early_partition_cid_range(c->part, &lo, &hi);
		want = xasprintf("%s:3: early_vm \"vm\": cid %u is outside %s's range %u..%u", file, c->cid, pname, lo,
				 hi);
		cr_expect_lt(rc, 0, "%s %u accepted", pname, c->cid);
		cr_expect_eq(err.code, VM_FAILED_PRECONDITION);
		cr_expect_str_eq(err.message, want);
		show(&err);
	}
	early_vm_clear(&vm);
	early_registry_free(reg);
}

/* ------------------------------------------------------ refused files */

/* What a bad file or entry refuses. */
enum bad_kind {
	BAD_ENTRY,    /* the lookup of "a" fails; the file still loads */
	BAD_WHOLE,    /* every lookup of the partition fails */
	BAD_NAMELESS, /* the entry has no usable name: logged, "a" is NOT_FOUND */
	BAD_ENTRY_B,  /* the lookup of "b" fails, "a" is found */
};

struct bad_file {
	const char *part;
	const char *body;
	int len;	    /* -1: strlen(body) */
	const char *expect; /* follows "<file>" in the message */
	enum bad_kind kind;
};

static const struct bad_file bad_files_cases[] = {
	/* not well-formed */
	{ "system", "<early_vms>\n  <early_vm>\n</early_vms>\n", -1,
	  ":3: not well-formed XML: Opening and ending tag mismatch: early_vm line 2 and early_vms", BAD_WHOLE },
	{ "system", "", -1, ":1: not well-formed XML: Document is empty", BAD_WHOLE },
	{ "system", "<early_vms><early_vm>", -1, ":1: not well-formed XML: ", BAD_WHOLE },
	/* not UTF-8 */
	{ "system", "<early_vms>\n<!-- caf\xe9 -->\n</early_vms>\n", -1, ":2: not valid UTF-8 (byte 0xe9 at offset 20)",
	  BAD_WHOLE },
	{ "system", "<early_vms>\n\xc0\xaf</early_vms>\n", -1, ":2: not valid UTF-8 (byte 0xc0 at offset 12)",
	  BAD_WHOLE },
	{ "system", "<early_vms>\0</early_vms>\n", 25, ":1: not valid UTF-8 (byte 0x00 at offset 11)", BAD_WHOLE },
	{ "system", "<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?>\n<early_vms/>\n", -1,
	  ":1: encoding \"ISO-8859-1\" declared, only UTF-8 is accepted", BAD_WHOLE },
	/* wrong root */
	{ "system", "<?xml version=\"1.0\"?>\n<vms>\n</vms>\n", -1, ":2: root element is <vms>, expected <early_vms>",
	  BAD_WHOLE },
	{ "system", "<early_vms xmlns=\"urn:x\"/>\n", -1,
	  ":1: root element <early_vms> is in namespace \"urn:x\", expected no namespace", BAD_WHOLE },
	/* no DTD, no entities */
	{ "system",
	  "<?xml version=\"1.0\"?>\n<!DOCTYPE early_vms [\n<!ENTITY xxe SYSTEM \"file:///etc/passwd\">\n]>\n"
	  "<early_vms><early_vm><name>&xxe;</name><cid>100</cid><path>/system/bin/x</path>"
	  "</early_vm></early_vms>\n",
	  -1, ":2: DOCTYPE declarations are not allowed", BAD_WHOLE },
	{ "system",
	  "<!DOCTYPE early_vms [<!ENTITY a \"aaaaaaaaaa\"><!ENTITY b \"&a;&a;&a;&a;&a;&a;&a;&a;\">]>\n"
	  "<early_vms/>\n",
	  -1, ":1: DOCTYPE declarations are not allowed", BAD_WHOLE },
	/* schema violations */
	{ "system",
	  "<early_vms>\n  <early_vm>\n    <name>a</name>\n    <path>/system/bin/a</path>\n"
	  "  </early_vm>\n</early_vms>\n",
	  -1,
	  ":2: early_vm \"a\": does not match early_vms.xsd: Element 'early_vm': Missing child "
	  "element(s). Expected is ( cid )." },
	{ "system",
	  "<early_vms>\n  <early_vm>\n    <cid>100</cid>\n    <path>/system/bin/a</path>\n"
	  "  </early_vm>\n</early_vms>\n",
	  -1,
	  ":2: early_vm #1: does not match early_vms.xsd: Element 'early_vm': Missing child "
	  "element(s). Expected is ( name ).",
	  BAD_NAMELESS },
	{ "vendor",
	  "<early_vms>\n  <early_vm>\n    <name>a</name>\n    <cid>abc</cid>\n"
	  "    <path>/vendor/bin/a</path>\n  </early_vm>\n</early_vms>\n",
	  -1,
	  ":4: early_vm \"a\": does not match early_vms.xsd: Element 'cid': 'abc' is not a valid "
	  "value of the atomic type 'cidType'." },
	{ "vendor",
	  "<early_vms>\n  <early_vm>\n    <name>a</name>\n    <cid>-300</cid>\n"
	  "    <path>/vendor/bin/a</path>\n  </early_vm>\n</early_vms>\n",
	  -1,
	  ":4: early_vm \"a\": does not match early_vms.xsd: Element 'cid': '-300' is not a valid "
	  "value of the atomic type 'cidType'." },
	{ "vendor",
	  "<early_vms>\n  <early_vm>\n    <name>a</name>\n    <cid>+300</cid>\n"
	  "    <path>/vendor/bin/a</path>\n  </early_vm>\n</early_vms>\n",
	  -1, ":4: early_vm \"a\": does not match early_vms.xsd: Element 'cid': [facet 'pattern']" },
	{ "vendor",
	  "<early_vms>\n  <early_vm>\n    <name>a</name>\n    <cid>3.5</cid>\n"
	  "    <path>/vendor/bin/a</path>\n  </early_vm>\n</early_vms>\n",
	  -1, ":4: early_vm \"a\": does not match early_vms.xsd: Element 'cid': '3.5' is not a valid" },
	{ "vendor",
	  "<early_vms>\n  <early_vm>\n    <name>a</name>\n    <cid></cid>\n"
	  "    <path>/vendor/bin/a</path>\n  </early_vm>\n</early_vms>\n",
	  -1, ":4: early_vm \"a\": does not match early_vms.xsd: Element 'cid': '' is not a valid" },
	{ "vendor",
	  "<early_vms>\n  <early_vm>\n    <name></name>\n    <cid>300</cid>\n"
	  "    <path>/vendor/bin/a</path>\n  </early_vm>\n</early_vms>\n",
	  -1,
	  ":3: early_vm #1: does not match early_vms.xsd: Element 'name': [facet 'pattern'] The value '' "
	  "is not accepted",
	  BAD_NAMELESS },
	{ "vendor",
	  "<early_vms>\n  <early_vm>\n    <name>a</name>\n    <cid>300</cid>\n"
	  "    <path>vendor/bin/a</path>\n  </early_vm>\n</early_vms>\n",
	  -1,
	  ":5: early_vm \"a\": does not match early_vms.xsd: Element 'path': [facet 'pattern'] The "
	  "value 'vendor/bin/a' is not accepted by the pattern" },
	{ "vendor",
	  "<early_vms>\n  <early_vm>\n    <name>a</name>\n    <cid>300</cid>\n"
	  "    <path>/vendor/bin/a</path>\n    <debug>1</debug>\n  </early_vm>\n</early_vms>\n",
	  -1,
	  ":6: early_vm \"a\": does not match early_vms.xsd: Element 'debug': This element is not "
	  "expected." },
	{ "vendor",
	  "<early_vms>\n  <early_vm>\n    <name>a</name>\n    <name>b</name>\n"
	  "    <cid>300</cid>\n    <path>/vendor/bin/a</path>\n  </early_vm>\n</early_vms>\n",
	  -1,
	  ":4: early_vm #1: does not match early_vms.xsd: Element 'name': This element is not "
	  "expected." },
	{ "vendor",
	  "<early_vms>\n  <early_vm id=\"1\">\n    <name>a</name>\n    <cid>300</cid>\n"
	  "    <path>/vendor/bin/a</path>\n  </early_vm>\n</early_vms>\n",
	  -1,
	  ":2: early_vm \"a\": does not match early_vms.xsd: Element 'early_vm', attribute 'id': The "
	  "attribute 'id' is not allowed." },
	{ "vendor", "<early_vms>\n  <vm/>\n</early_vms>\n", -1,
	  ":2: does not match early_vms.xsd: Element 'vm': This element is not expected. (ignored)", BAD_NAMELESS },
	/* rules beyond the schema */
	{ "vendor",
	  "<early_vms>\n  <early_vm>\n    <name>a</name>\n"
	  "    <cid>99999999999999999999999</cid>\n"
	  "    <path>/vendor/bin/a</path>\n  </early_vm>\n</early_vms>\n",
	  -1, ":2: early_vm \"a\": cid 99999999999999999999999 is too large" },
	{ "vendor",
	  "<early_vms>\n  <early_vm>\n    <name>a</name>\n    <cid>150</cid>\n"
	  "    <path>/vendor/bin/a</path>\n  </early_vm>\n</early_vms>\n",
	  -1, ":2: early_vm \"a\": cid 150 is outside vendor's range 300..399" },
	{ "vendor",
	  "<early_vms>\n  <early_vm>\n    <name>a</name>\n    <cid>300</cid>\n"
	  "    <path>/vendor/../system/bin/a</path>\n  </early_vm>\n</early_vms>\n",
	  -1,
	  ":2: early_vm \"a\": path /vendor/../system/bin/a is not canonical (empty, . or .. "
	  "component)" },
	{ "vendor",
	  "<early_vms>\n  <early_vm>\n    <name>a</name>\n    <cid>300</cid>\n"
	  "    <path>/system/bin/a</path>\n  </early_vm>\n</early_vms>\n",
	  -1, ":2: early_vm \"a\": path /system/bin/a is not on partition vendor (expected /vendor/...)" },
	{ "vendor",
	  "<early_vms>\n  <early_vm>\n    <name>a</name>\n    <cid>300</cid>\n"
	  "    <path>/system/vendor/bin/a</path>\n  </early_vm>\n</early_vms>\n",
	  -1,
	  ":2: early_vm \"a\": path /system/vendor/bin/a is not on partition vendor (expected "
	  "/vendor/...)" },
	{ "odm",
	  "<early_vms>\n  <early_vm>\n    <name>a</name>\n    <cid>300</cid>\n"
	  "    <path>/odm/bin/a</path>\n  </early_vm>\n  <early_vm>\n    <name>a</name>\n"
	  "    <cid>301</cid>\n    <path>/odm/bin/b</path>\n  </early_vm>\n</early_vms>\n",
	  -1, ":7: early_vm \"a\": duplicate name, first declared at " },
	{ "odm",
	  "<early_vms>\n  <early_vm>\n    <name>a</name>\n    <cid>300</cid>\n"
	  "    <path>/odm/bin/a</path>\n  </early_vm>\n  <early_vm>\n    <name>b</name>\n"
	  "    <cid>300</cid>\n    <path>/odm/bin/b</path>\n  </early_vm>\n</early_vms>\n",
	  -1, ":7: early_vm \"b\": cid 300 is already used by early_vm \"a\" at ", BAD_ENTRY_B },
};

ParameterizedTestParameters(bad, files)
{
	INDEX_PARAMS(bad_files_cases);
}

ParameterizedTest(size_t *index, bad, files, .init = setup_root, .fini = teardown_root)
{
	const struct bad_file *c = &bad_files_cases[*index];
	enum early_partition p;
	cleanup_free char *rel = xasprintf("%s/etc/avf/early_vms.xml", c->part);
	cleanup_free char *file = put_file(rel, c->body, c->len);
	const char *name = c->kind == BAD_ENTRY_B ? "b" : "a";
	cleanup_free char *exe = xasprintf("/%s/bin/%s", c->part, name);
	struct early_registry *reg = new_registry();
	struct early_vm vm = { 0 };
	struct vm_error err = { 0 };
	int rc;

	cr_assert_eq(early_partition_lookup(c->part, &p, NULL), 0);
	rc = early_find_vm(reg, exe, name, &vm, &err);
	early_vm_clear(&vm);
	cr_assert_lt(rc, 0, "entry accepted: %s", c->body);
	show(&err);
	if (c->kind == BAD_NAMELESS) {
		/* declares no name: nothing to refuse but "a" is not declared */
		cr_expect_eq(err.code, VM_NOT_FOUND, "%s", err.message);
		cr_expect_eq(early_registry_count(reg, p, NULL), 0);
		early_registry_free(reg);
		return;
	}
	cr_expect_eq(err.code, VM_FAILED_PRECONDITION, "%s", err.message);
	cr_expect(strncmp(err.message, file, strlen(file)) == 0, "no file name in: %s", err.message);
	cr_expect_not_null(strstr(err.message + strlen(file), c->expect) == err.message + strlen(file) ? err.message
												       : NULL,
			   "got:  %s\nwant: %s%s", err.message, file, c->expect);
	if (c->kind == BAD_WHOLE) {
		/* the failure is cached until reload, and nothing of the file applies */
		cr_expect_lt(early_registry_count(reg, p, NULL), 0);
	} else {
		/* only that name is refused: the partition still loads */
		cr_expect_geq(early_registry_count(reg, p, NULL), 0);
	}
	if (c->kind == BAD_ENTRY_B) {
		cleanup_free char *exe_a = xasprintf("/%s/bin/a", c->part);

		cr_expect_eq(early_find_vm(reg, exe_a, "a", &vm, &err), 0, "%s", err.message);
		early_vm_clear(&vm);
	}
	early_registry_free(reg);
}

/* A bad entry of another name never stands in the way: every refused entry
 * above, next to a good one, leaves the good one usable. */
ParameterizedTestParameters(bad, entries_beside_a_good_one)
{
	INDEX_PARAMS(bad_files_cases);
}

ParameterizedTest(size_t *index, bad, entries_beside_a_good_one, .init = setup_root, .fini = teardown_root)
{
	const struct bad_file *c = &bad_files_cases[*index];
	cleanup_free char *rel = xasprintf("%s/etc/avf/early_vms_0good.xml", c->part);
	cleanup_free char *rel_bad = xasprintf("%s/etc/avf/early_vms_1bad.xml", c->part);
	cleanup_free char *exe = xasprintf("/%s/bin/good", c->part);
	enum early_partition p;
	uint32_t lo, hi;
	cleanup_free char *cid = NULL;
	cleanup_free char *xml = NULL;
	struct early_registry *reg;
	struct early_vm vm = { 0 };
	struct vm_error err = { 0 };
	int rc;

	cr_assert_eq(early_partition_lookup(c->part, &p, NULL), 0);
	early_partition_cid_range(p, &lo, &hi);
	cid = xasprintf("%u", hi);
	{
		const char *t[] = { "good", cid, exe };

		xml = vms_xml(t, 1);
	}
	free(put_file(rel, xml, -1));
	free(put_file(rel_bad, c->body, c->len));
	reg = new_registry();
	rc = early_find_vm(reg, exe, "good", &vm, &err);
	if (c->kind == BAD_WHOLE) {
		cr_expect_lt(rc, 0, "a file that is not XML did not fail its partition");
		cr_expect_eq(err.code, VM_FAILED_PRECONDITION);
	} else {
		cr_expect_eq(rc, 0, "%s", err.message);
		cr_expect_eq(vm.cid, hi);
	}
	early_vm_clear(&vm);
	early_registry_free(reg);
}

/* ---------------------------------------------- several files per partition */

TestSuite(files, .init = setup_root, .fini = teardown_root);

Test(files, glob_sorted_and_filtered)
{
	const char *a[] = { "a", "300", "/vendor/bin/a" };
	const char *b[] = { "b", "301", "/vendor/bin/b" };
	const char *c[] = { "c", "399", "/vendor/bin/c" };
	cleanup_free char *xa = vms_xml(a, 1);
	cleanup_free char *xb = vms_xml(b, 1);
	cleanup_free char *xc = vms_xml(c, 1);
	cleanup_free char *fa = put_file("vendor/etc/avf/early_vms.xml", xa, -1);
	cleanup_free char *fb = put_file("vendor/etc/avf/early_vms_b.xml", xb, -1);
	cleanup_free char *fc = put_file("vendor/etc/avf/early_vms_c_more.xml", xc, -1);
	/* not matching early_vms*.xml: never read */
	cleanup_free char *f1 = put_file("vendor/etc/avf/other.xml", "garbage", -1);
	cleanup_free char *f2 = put_file("vendor/etc/avf/early_vms.xml.bak", "garbage", -1);
	cleanup_free char *f3 = put_file("vendor/etc/early_vms.xml", "garbage", -1);
	struct early_registry *reg = new_registry();
	struct vm_error err = { 0 };
	struct early_vm vm = { 0 };

	cr_assert_eq(early_registry_count(reg, EARLY_VENDOR, &err), 3, "%s", err.message);
	cr_assert_eq(early_find_vm(reg, "/vendor/bin/b", "b", &vm, &err), 0, "%s", err.message);
	cr_expect_eq(vm.cid, 301);
	cr_expect_str_eq(vm.file, fb);
	early_vm_clear(&vm);
	cr_assert_eq(early_find_vm(reg, "/vendor/bin/c", "c", &vm, &err), 0, "%s", err.message);
	cr_expect_str_eq(vm.file, fc);
	early_vm_clear(&vm);
	/* other partitions are independent */
	cr_expect_eq(early_registry_count(reg, EARLY_ODM, &err), 0);
	cr_expect_eq(early_registry_count(reg, EARLY_SYSTEM, &err), 0);
	early_registry_free(reg);
}

Test(files, duplicate_across_files)
{
	const char *a[] = { "x", "300", "/vendor/bin/x" };
	const char *b[] = { "y", "301", "/vendor/bin/y", "x", "302", "/vendor/bin/x2" };
	cleanup_free char *xa = vms_xml(a, 1);
	cleanup_free char *xb = vms_xml(b, 2);
	cleanup_free char *fa = put_file("vendor/etc/avf/early_vms.xml", xa, -1);
	cleanup_free char *fb = put_file("vendor/etc/avf/early_vms_foo.xml", xb, -1);
	cleanup_free char *want = xasprintf("%s:8: early_vm \"x\": duplicate name, first declared at %s:3", fb, fa);
	struct early_registry *reg = new_registry();
	struct vm_error err = { 0 };
	struct early_vm vm = { 0 };

	/* y is not x's problem */
	cr_assert_eq(early_find_vm(reg, "/vendor/bin/y", "y", &vm, &err), 0, "%s", err.message);
	early_vm_clear(&vm);
	/* x, declared in two files, is refused, whichever path asks */
	cr_assert_lt(early_find_vm(reg, "/vendor/bin/x", "x", &vm, &err), 0);
	show(&err);
	cr_expect_eq(err.code, VM_FAILED_PRECONDITION);
	cr_expect_str_eq(err.message, want);
	cr_assert_lt(early_find_vm(reg, "/vendor/bin/x2", "x", &vm, &err), 0);
	cr_expect_str_eq(err.message, want);
	cr_expect_eq(early_registry_count(reg, EARLY_VENDOR, &err), 1);
	early_registry_free(reg);
}

Test(files, duplicate_cid_across_files)
{
	const char *a[] = { "x", "300", "/odm/bin/x" };
	const char *b[] = { "y", "300", "/odm/bin/y" };
	cleanup_free char *xa = vms_xml(a, 1);
	cleanup_free char *xb = vms_xml(b, 1);
	cleanup_free char *fa = put_file("odm/etc/avf/early_vms.xml", xa, -1);
	cleanup_free char *fb = put_file("odm/etc/avf/early_vms_2.xml", xb, -1);
	cleanup_free char *want = xasprintf("%s:3: early_vm \"y\": cid 300 is already used by early_vm \"x\" at %s:3",
					    fb, fa);
	struct early_registry *reg = new_registry();
	struct vm_error err = { 0 };
	struct early_vm vm = { 0 };

	/* the first declaration keeps the CID, the later one is refused */
	cr_assert_eq(early_registry_count(reg, EARLY_ODM, &err), 1, "%s", err.message);
	cr_assert_eq(early_find_vm(reg, "/odm/bin/x", "x", &vm, &err), 0, "%s", err.message);
	early_vm_clear(&vm);
	cr_assert_lt(early_find_vm(reg, "/odm/bin/y", "y", &vm, &err), 0);
	show(&err);
	cr_expect_eq(err.code, VM_FAILED_PRECONDITION);
	cr_expect_str_eq(err.message, want);
	early_registry_free(reg);
}

Test(files, same_name_in_two_partitions)
{
	const char *s[] = { "x", "100", "/system/bin/x" };
	const char *v[] = { "x", "300", "/vendor/bin/x" };
	cleanup_free char *xs = vms_xml(s, 1);
	cleanup_free char *xv = vms_xml(v, 1);
	cleanup_free char *fs = put_file("system/etc/avf/early_vms.xml", xs, -1);
	cleanup_free char *fv = put_file("vendor/etc/avf/early_vms.xml", xv, -1);
	struct early_registry *reg = new_registry();
	struct vm_error err = { 0 };
	struct early_vm vm = { 0 };

	cr_assert_eq(early_find_vm(reg, "/system/bin/x", "x", &vm, &err), 0, "%s", err.message);
	cr_expect_eq(vm.cid, 100);
	early_vm_clear(&vm);
	cr_assert_eq(early_find_vm(reg, "/vendor/bin/x", "x", &vm, &err), 0, "%s", err.message);
	cr_expect_eq(vm.cid, 300);
	early_vm_clear(&vm);
	early_registry_free(reg);
}

Test(files, no_declarations)
{
	struct early_registry *reg = new_registry();
	struct vm_error err = { 0 };
	struct early_vm vm = { 0 };

	cr_expect_eq(early_registry_count(reg, EARLY_PRODUCT, &err), 0);
	cr_assert_lt(early_find_vm(reg, "/product/bin/x", "x", &vm, &err), 0);
	show(&err);
	cr_expect_eq(err.code, VM_NOT_FOUND);
	cr_expect_str_eq(err.message, "no early VM \"x\" is declared for partition product");
	early_registry_free(reg);
}

Test(files, not_a_regular_file)
{
	cleanup_free char *dir = xasprintf("%s/system/etc/avf/early_vms_dir.xml", tmp_root);
	cleanup_free char *want = xasprintf("%s: not a regular file", dir);
	struct early_registry *reg;
	struct vm_error err = { 0 };

	cr_assert_eq(mkdir_p(dir, 0755), 0);
	reg = new_registry();
	cr_assert_lt(early_registry_count(reg, EARLY_SYSTEM, &err), 0);
	cr_expect_eq(err.code, VM_FAILED_PRECONDITION);
	cr_expect_str_eq(err.message, want);
	early_registry_free(reg);
}

Test(files, too_large)
{
	size_t len = EARLY_XML_MAX + 1;
	cleanup_free char *big = xmalloc(len);
	cleanup_free char *file = NULL;
	struct early_registry *reg;
	struct vm_error err = { 0 };

	memset(big, ' ', len);
	memcpy(big, "<early_vms>", 11);
	file = put_file("system/etc/avf/early_vms.xml", big, (ssize_t)len);
	reg = new_registry();
	cr_assert_lt(early_registry_count(reg, EARLY_SYSTEM, &err), 0);
	show(&err);
	cr_expect_eq(err.code, VM_FAILED_PRECONDITION);
	cr_expect_not_null(strstr(err.message, "is larger than"), "%s", err.message);
	early_registry_free(reg);
}

Test(files, line_numbers_beyond_65535)
{
	size_t lines = 70000;
	size_t len = 0;
	struct early_vm vm = { 0 };
	cleanup_free char *body = xmalloc(lines + 200);
	cleanup_free char *file = NULL;
	cleanup_free char *want = NULL;
	struct early_registry *reg;
	struct vm_error err = { 0 };

	len += (size_t)sprintf(body, "<early_vms>");
	memset(body + len, '\n', lines);
	len += lines;
	len += (size_t)sprintf(body + len,
			       "<early_vm><name>far</name><cid>5</cid>"
			       "<path>/system/bin/far</path></early_vm></early_vms>\n");
	file = put_file("system/etc/avf/early_vms.xml", body, (ssize_t)len);
	want = xasprintf("%s:70001: early_vm \"far\": cid 5 is outside system's range 100..199", file);
	reg = new_registry();
	cr_assert_lt(early_find_vm(reg, "/system/bin/far", "far", &vm, &err), 0);
	cr_expect_str_eq(err.message, want);
	early_registry_free(reg);
}

Test(files, example_file_is_valid)
{
	cleanup_free char *data = NULL;
	size_t len;
	struct early_registry *reg = new_registry();
	struct vm_error err = { 0 };
	struct early_vm vm = { 0 };

	cr_assert_eq(read_file(EARLY_TEST_EXAMPLE, EARLY_XML_MAX, &data, &len, &err), 0, "%s", err.message);
	cr_assert_eq(early_registry_load_buffer(reg, EARLY_SYSTEM, "early_vms.xml", data, len, &err), 1, "%s",
		     err.message);
	cr_assert_eq(early_find_vm(reg, "/system/bin/vm_demo_early", "vm_demo_early", &vm, &err), 0, "%s", err.message);
	cr_expect_eq(vm.cid, 123);
	early_vm_clear(&vm);
	early_registry_free(reg);
}

Test(files, fields_in_any_order_and_whitespace)
{
	cleanup_free char *file = put_file(
		"product/etc/avf/early_vms.xml",
		"<early_vms><!-- c --><early_vm><path>/product/bin/p</path><cid>\n 250 \n</cid>"
		"<name>p</name></early_vm></early_vms>",
		-1);
	struct early_registry *reg = new_registry();
	struct vm_error err = { 0 };
	struct early_vm vm = { 0 };

	cr_assert_eq(early_find_vm(reg, "/product/bin/p", "p", &vm, &err), 0, "%s", err.message);
	cr_expect_eq(vm.cid, 250);
	early_vm_clear(&vm);
	early_registry_free(reg);
}

/* ------------------------------------------------------------- lookups */

TestSuite(find, .init = setup_root, .fini = teardown_root);

Test(find, path_mismatch)
{
	const char *t[] = { "vm", "100", "/system/bin/owner" };
	cleanup_free char *x = vms_xml(t, 1);
	cleanup_free char *f = put_file("system/etc/avf/early_vms.xml", x, -1);
	struct early_registry *reg = new_registry();
	struct vm_error err = { 0 };
	struct early_vm vm = { 0 };

	cr_assert_lt(early_find_vm(reg, "/system/bin/intruder", "vm", &vm, &err), 0);
	show(&err);
	cr_expect_eq(err.code, VM_PERMISSION_DENIED);
	cr_expect_str_eq(err.message,
			 "early VM \"vm\" in partition system must be created by "
			 "/system/bin/owner, not /system/bin/intruder");
	/* the same name from another partition is a different declaration */
	cr_assert_lt(early_find_vm(reg, "/vendor/bin/owner", "vm", &vm, &err), 0);
	cr_expect_eq(err.code, VM_NOT_FOUND);
	cr_expect_str_eq(err.message, "no early VM \"vm\" is declared for partition vendor");
	early_registry_free(reg);
}

Test(find, unsupported_partition)
{
	struct early_registry *reg = new_registry();
	struct vm_error err = { 0 };
	struct early_vm vm = { 0 };

	cr_assert_lt(early_find_vm(reg, "/data/local/tmp/x", "vm", &vm, &err), 0);
	show(&err);
	cr_expect_eq(err.code, VM_PERMISSION_DENIED);
	cr_expect_str_eq(err.message, "Early VMs are not supported for data");
	early_registry_free(reg);
}

Test(find, system_as_root_prefix)
{
	const char *t[] = { "v", "333", "/vendor/bin/v" };
	cleanup_free char *x = vms_xml(t, 1);
	cleanup_free char *f = put_file("vendor/etc/avf/early_vms.xml", x, -1);
	struct early_registry *reg = new_registry();
	struct vm_error err = { 0 };
	struct early_vm vm = { 0 };

	cr_assert_eq(early_find_vm(reg, "/system/vendor/bin/v", "v", &vm, &err), 0, "%s", err.message);
	cr_expect_eq(vm.cid, 333);
	cr_expect_str_eq(vm.path, "/vendor/bin/v");
	early_vm_clear(&vm);
	early_registry_free(reg);
}

struct norm_case {
	const char *in;
	int part;	 /* -1: refused */
	const char *out; /* or the error */
};

static const struct norm_case find_normalize_cases[] = {
	{ "/system/bin/x", EARLY_SYSTEM, "/system/bin/x" },
	{ "/system/vendor/bin/x", EARLY_VENDOR, "/vendor/bin/x" },
	{ "/system/system_ext/bin/x", EARLY_SYSTEM_EXT, "/system_ext/bin/x" },
	{ "/system/product/bin/x", EARLY_PRODUCT, "/product/bin/x" },
	{ "/system/odm/bin/x", EARLY_ODM, "/odm/bin/x" },
	{ "/system/vendorx/bin/x", EARLY_SYSTEM, "/system/vendorx/bin/x" },
	{ "/system/system/vendor/x", EARLY_SYSTEM, "/system/system/vendor/x" },
	{ "/vendor/bin/x", EARLY_VENDOR, "/vendor/bin/x" },
	{ "/odm/x", EARLY_ODM, "/odm/x" },
	{ "/apex/com.android.virt/bin/x", -1, "Early VMs are not supported for apex" },
	{ "/systemx/bin/x", -1, "Early VMs are not supported for systemx" },
	{ "/vendor", -1, "executable /vendor is not on a partition" },
	{ "/system/vendor", -1, "executable /system/vendor is not on a partition" },
	{ "bin/x", -1, "executable path bin/x is not absolute" },
};

ParameterizedTestParameters(find, normalize)
{
	INDEX_PARAMS(find_normalize_cases);
}

ParameterizedTest(size_t *index, find, normalize)
{
	const struct norm_case *c = &find_normalize_cases[*index];
	enum early_partition p;
	char *out = NULL;
	struct vm_error err = { 0 };
	int rc = early_normalize_path(c->in, &p, &out, &err);

	if (c->part >= 0) {
		cr_assert_eq(rc, 0, "%s: %s", c->in, err.message);
		cr_expect_eq((int)p, c->part, "%s", c->in);
		cr_expect_str_eq(out, c->out);
	} else {
		cr_assert_lt(rc, 0, "%s accepted", c->in);
		cr_expect_eq(err.code, VM_PERMISSION_DENIED);
		cr_expect_str_eq(err.message, c->out);
	}
	free(out);
}

/* -------------------------------------------------------------- reload */

TestSuite(reload, .init = setup_root, .fini = teardown_root);

Test(reload, picks_up_changes_only_on_reload)
{
	const char *v1[] = { "vm", "100", "/system/bin/vm" };
	const char *v2[] = { "vm", "150", "/system/bin/vm", "vm2", "151", "/system/bin/vm2" };
	cleanup_free char *x1 = vms_xml(v1, 1);
	cleanup_free char *x2 = vms_xml(v2, 2);
	cleanup_free char *f = put_file("system/etc/avf/early_vms.xml", x1, -1);
	struct early_registry *reg = new_registry();
	struct vm_error err = { 0 };
	struct early_vm vm = { 0 };

	cr_assert_eq(early_find_vm(reg, "/system/bin/vm", "vm", &vm, &err), 0, "%s", err.message);
	cr_expect_eq(vm.cid, 100);
	early_vm_clear(&vm);

	free(put_file("system/etc/avf/early_vms.xml", x2, -1));
	/* cached: still the old table */
	cr_assert_eq(early_find_vm(reg, "/system/bin/vm", "vm", &vm, &err), 0, "%s", err.message);
	cr_expect_eq(vm.cid, 100);
	early_vm_clear(&vm);
	cr_expect_lt(early_find_vm(reg, "/system/bin/vm2", "vm2", &vm, &err), 0);

	cr_assert_eq(early_registry_reload(reg, &err), 0, "%s", err.message);
	cr_assert_eq(early_find_vm(reg, "/system/bin/vm", "vm", &vm, &err), 0, "%s", err.message);
	cr_expect_eq(vm.cid, 150);
	early_vm_clear(&vm);
	cr_assert_eq(early_find_vm(reg, "/system/bin/vm2", "vm2", &vm, &err), 0, "%s", err.message);
	cr_expect_eq(vm.cid, 151);
	early_vm_clear(&vm);
	early_registry_free(reg);
}

Test(reload, failed_reload_keeps_previous_table)
{
	const char *good[] = { "a", "300", "/vendor/bin/a" };
	const char *changed[] = { "a", "310", "/vendor/bin/a" };
	cleanup_free char *xg = vms_xml(good, 1);
	cleanup_free char *xc = vms_xml(changed, 1);
	static const char xb[] = "<early_vms>\n  <early_vm>\n</early_vms>\n";
	cleanup_free char *f = put_file("vendor/etc/avf/early_vms.xml", xg, -1);
	cleanup_free char *f2 = NULL;
	struct early_registry *reg = new_registry();
	struct vm_error err = { 0 };
	struct early_vm vm = { 0 };

	cr_assert_eq(early_registry_count(reg, EARLY_VENDOR, &err), 1, "%s", err.message);
	/* first file changes fine, a second file is not XML: neither applies */
	free(put_file("vendor/etc/avf/early_vms.xml", xc, -1));
	f2 = put_file("vendor/etc/avf/early_vms_z.xml", xb, -1);
	cr_expect_eq(early_registry_reload(reg, &err), -1);
	cr_expect_eq(err.code, VM_FAILED_PRECONDITION);
	cr_expect_not_null(strstr(err.message, "early_vms_z.xml:3: not well-formed XML"), "%s", err.message);
	cr_assert_eq(early_find_vm(reg, "/vendor/bin/a", "a", &vm, &err), 0, "%s", err.message);
	cr_expect_eq(vm.cid, 300);
	early_vm_clear(&vm);

	/* fixed: the next reload applies both files */
	cr_assert_eq(unlink(f2), 0);
	cr_assert_eq(early_registry_reload(reg, &err), 0, "%s", err.message);
	cr_assert_eq(early_find_vm(reg, "/vendor/bin/a", "a", &vm, &err), 0, "%s", err.message);
	cr_expect_eq(vm.cid, 310);
	early_vm_clear(&vm);
	early_registry_free(reg);
}

Test(reload, broken_at_first_load_then_fixed)
{
	const char *good[] = { "a", "100", "/system/bin/a" };
	cleanup_free char *xg = vms_xml(good, 1);
	cleanup_free char *f = put_file("system/etc/avf/early_vms.xml", "<early_vms>", -1);
	struct early_registry *reg = new_registry();
	struct vm_error err = { 0 };
	struct early_vm vm = { 0 };

	cr_assert_lt(early_find_vm(reg, "/system/bin/a", "a", &vm, &err), 0);
	cr_expect_eq(err.code, VM_FAILED_PRECONDITION);
	free(put_file("system/etc/avf/early_vms.xml", xg, -1));
	/* the failure is cached too */
	cr_assert_lt(early_find_vm(reg, "/system/bin/a", "a", &vm, &err), 0);
	cr_expect_eq(err.code, VM_FAILED_PRECONDITION);
	cr_assert_eq(early_registry_reload(reg, &err), 0, "%s", err.message);
	cr_assert_eq(early_find_vm(reg, "/system/bin/a", "a", &vm, &err), 0, "%s", err.message);
	early_vm_clear(&vm);
	early_registry_free(reg);
}

Test(reload, bad_entry_does_not_block_reload)
{
	const char *v1[] = { "a", "300", "/vendor/bin/a" };
	const char *v2[] = { "a", "310", "/vendor/bin/a", "b", "200", "/vendor/bin/b" };
	cleanup_free char *x1 = vms_xml(v1, 1);
	cleanup_free char *x2 = vms_xml(v2, 2);
	cleanup_free char *f = put_file("vendor/etc/avf/early_vms.xml", x1, -1);
	struct early_registry *reg = new_registry();
	struct vm_error err = { 0 };
	struct early_vm vm = { 0 };

	cr_assert_eq(early_registry_count(reg, EARLY_VENDOR, &err), 1, "%s", err.message);
	free(put_file("vendor/etc/avf/early_vms.xml", x2, -1));
	/* b's CID is out of range: b is refused, a's change applies */
	cr_assert_eq(early_registry_reload(reg, &err), 0, "%s", err.message);
	cr_assert_eq(early_find_vm(reg, "/vendor/bin/a", "a", &vm, &err), 0, "%s", err.message);
	cr_expect_eq(vm.cid, 310);
	early_vm_clear(&vm);
	cr_assert_lt(early_find_vm(reg, "/vendor/bin/b", "b", &vm, &err), 0);
	cr_expect_not_null(strstr(err.message, "cid 200 is outside vendor's range"), "%s", err.message);
	early_registry_free(reg);
}

Test(reload, load_buffer_all_or_nothing)
{
	struct early_registry *reg = new_registry();
	struct early_vm vm = { 0 };
	struct vm_error err = { 0 };
	static const char good[] =
		"<early_vms><early_vm><name>a</name><cid>200</cid>"
		"<path>/system_ext/bin/a</path></early_vm></early_vms>";
	static const char bad_entry[] =
		"<early_vms><early_vm><name>b</name><cid>201</cid>"
		"<path>/system_ext/bin/b</path></early_vm><early_vm><name>c</name>"
		"<cid>100</cid><path>/system_ext/bin/c</path></early_vm></early_vms>";
	static const char not_xml[] = "<early_vms><early_vm><name>d</name>";

	cr_assert_eq(early_registry_load_buffer(reg, EARLY_SYSTEM_EXT, "mem.xml", good, strlen(good), &err), 1, "%s",
		     err.message);
	/* not XML: refused as a whole, the table stays */
	cr_assert_lt(early_registry_load_buffer(reg, EARLY_SYSTEM_EXT, "mem.xml", not_xml, strlen(not_xml), &err), 0);
	cr_expect_eq(err.code, VM_FAILED_PRECONDITION);
	cr_expect_eq(early_registry_count(reg, EARLY_SYSTEM_EXT, &err), 1);
	cr_assert_eq(early_find_vm(reg, "/system_ext/bin/a", "a", &vm, &err), 0, "%s", err.message);
	early_vm_clear(&vm);
	/* one bad entry: the file applies, only c is refused */
	cr_assert_eq(early_registry_load_buffer(reg, EARLY_SYSTEM_EXT, "mem.xml", bad_entry, strlen(bad_entry), &err),
		     1, "%s", err.message);
	cr_assert_lt(early_find_vm(reg, "/system_ext/bin/c", "c", &vm, &err), 0);
	cr_expect_str_eq(err.message, "mem.xml:1: early_vm \"c\": cid 100 is outside system_ext's range 200..299");
	cr_assert_eq(early_find_vm(reg, "/system_ext/bin/b", "b", &vm, &err), 0, "%s", err.message);
	early_vm_clear(&vm);
	early_registry_free(reg);
}

Test(reload, bad_schema_path)
{
	struct early_registry *reg = NULL;
	struct vm_error err = { 0 };
	cleanup_free char *bad = put_file("bad.xsd", "<xs:schema", -1);

	cr_assert_lt(early_registry_new(tmp_root, "/nonexistent/early_vms.xsd", &reg, &err), 0);
	cr_expect_eq(err.code, VM_FAILED_PRECONDITION);
	cr_expect_str_eq(err.message, "cannot read schema /nonexistent/early_vms.xsd: No such file or directory");
	cr_assert_lt(early_registry_new(tmp_root, bad, &reg, &err), 0);
	show(&err);
	cr_expect_eq(err.code, VM_FAILED_PRECONDITION);
	cr_expect(strncmp(err.message, "schema ", 7) == 0, "%s", err.message);
	cr_expect_null(reg);
}

/* ------------------------------------------------------ caller identity */

TestSuite(caller, .init = setup_root, .fini = teardown_root);

/* Copy /bin/sleep to <tmp_root>/@rel. Return: its path. */
static char *install_sleeper(const char *rel)
{
	cleanup_free char *data = NULL;
	size_t len;
	struct vm_error err = { 0 };
	char *path;

	cr_assert_eq(read_file("/bin/sleep", 16 << 20, &data, &len, &err), 0, "%s", err.message);
	path = put_file(rel, data, (ssize_t)len);
	cr_assert_eq(chmod(path, 0755), 0);
	return path;
}

/* Start @exe ("sleep 1000"); returns once exec has happened. */
static pid_t spawn(const char *exe)
{
	int p[2];
	pid_t pid;
	int child_errno = 0;
	ssize_t n;

	cr_assert_eq(pipe2(p, O_CLOEXEC), 0);
	pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		execl(exe, "sleeper", "1000", (char *)NULL);
		child_errno = errno;
		(void)!write(p[1], &child_errno, sizeof(child_errno));
		_exit(127);
	}
	close(p[1]);
	/* EOF: the write end closed on exec */
	n = read(p[0], &child_errno, sizeof(child_errno));
	close(p[0]);
	cr_assert_eq(n, 0, "exec %s failed: %s", exe, strerror(child_errno));
	return pid;
}

static void reap(pid_t pid)
{
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
}

/* The executable of @pid as early_find_vm() wants it (caller.c, then early.c). */
static int caller_path(const char *root, const char *proc_dir, pid_t pid, char **out, struct vm_error *err)
{
	cleanup_free char *raw = NULL;
	enum early_partition p;

	if (caller_exe_path(root, proc_dir, pid, &raw, err) < 0)
		return -1;
	return early_normalize_path(raw, &p, out, err);
}

/* What the ttrpc layer sees of a process at accept: its pid and a pidfd. */
static struct ttrpc_peer peer_of(pid_t pid)
{
	struct ttrpc_peer peer = { .family = AF_UNIX, .has_cred = true, .pid = pid, .uid = getuid(), .gid = getgid() };

	peer.pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
	cr_assert_geq(peer.pidfd, 0, "pidfd_open: %s", strerror(errno));
	return peer;
}

Test(caller, real_process_in_root)
{
	const char *t[] = { "sleeper_vm", "111", "/system/bin/sleeper" };
	cleanup_free char *x = vms_xml(t, 1);
	cleanup_free char *f = put_file("system/etc/avf/early_vms.xml", x, -1);
	cleanup_free char *exe = install_sleeper("system/bin/sleeper");
	pid_t pid = spawn(exe);
	cleanup_free char *path = NULL;
	struct early_registry *reg = new_registry();
	struct vm_error err = { 0 };
	struct early_vm vm = { 0 };
	int rc;

	rc = caller_path(tmp_root, NULL, pid, &path, &err);
	reap(pid);
	cr_assert_eq(rc, 0, "%s", err.message);
	cr_expect_str_eq(path, "/system/bin/sleeper");
	cr_assert_eq(early_find_vm(reg, path, "sleeper_vm", &vm, &err), 0, "%s", err.message);
	cr_expect_eq(vm.cid, 111);
	early_vm_clear(&vm);
	early_registry_free(reg);
}

Test(caller, root_with_trailing_slash_and_system_as_root)
{
	cleanup_free char *exe = install_sleeper("system/vendor/bin/sleeper");
	cleanup_free char *root = xasprintf("%s/", tmp_root);
	pid_t pid = spawn(exe);
	cleanup_free char *path = NULL;
	struct vm_error err = { 0 };
	int rc = caller_path(root, NULL, pid, &path, &err);

	reap(pid);
	cr_assert_eq(rc, 0, "%s", err.message);
	cr_expect_str_eq(path, "/vendor/bin/sleeper");
}

Test(caller, wrong_partition)
{
	cleanup_free char *exe = install_sleeper("data/bin/sleeper");
	pid_t pid = spawn(exe);
	cleanup_free char *path = NULL;
	struct vm_error err = { 0 };
	int rc = caller_path(tmp_root, NULL, pid, &path, &err);

	reap(pid);
	cr_assert_lt(rc, 0);
	show(&err);
	cr_expect_eq(err.code, VM_PERMISSION_DENIED);
	cr_expect_str_eq(err.message, "Early VMs are not supported for data");
}

Test(caller, outside_root)
{
	/* <tmp>/r2 starts with the string <tmp>/r but is not under it */
	cleanup_free char *exe = install_sleeper("r2/system/bin/sleeper");
	cleanup_free char *root = xasprintf("%s/r", tmp_root);
	pid_t pid;
	cleanup_free char *path = NULL;
	cleanup_free char *want = NULL;
	struct vm_error err = { 0 };
	int rc;

	cr_assert_eq(mkdir(root, 0755), 0);
	pid = spawn(exe);
	rc = caller_path(root, NULL, pid, &path, &err);
	want = xasprintf("executable %s of pid %d is outside the root %s", exe, (int)pid, root);
	reap(pid);
	cr_assert_lt(rc, 0);
	show(&err);
	cr_expect_eq(err.code, VM_PERMISSION_DENIED);
	cr_expect_str_eq(err.message, want);
}

Test(caller, deleted_executable)
{
	cleanup_free char *exe = install_sleeper("system/bin/sleeper");
	pid_t pid = spawn(exe);
	cleanup_free char *path = NULL;
	cleanup_free char *want = NULL;
	struct vm_error err = { 0 };
	int rc;

	cr_assert_eq(unlink(exe), 0);
	rc = caller_path(tmp_root, NULL, pid, &path, &err);
	want = xasprintf("executable of pid %d was deleted: %s (deleted)", (int)pid, exe);
	reap(pid);
	cr_assert_lt(rc, 0);
	show(&err);
	cr_expect_eq(err.code, VM_PERMISSION_DENIED);
	cr_expect_str_eq(err.message, want);
}

Test(caller, replaced_executable_is_refused)
{
	/* a new file at the same path does not make the old process legitimate */
	cleanup_free char *exe = install_sleeper("system/bin/sleeper");
	pid_t pid = spawn(exe);
	cleanup_free char *path = NULL;
	struct vm_error err = { 0 };
	int rc;

	cr_assert_eq(unlink(exe), 0);
	free(install_sleeper("system/bin/sleeper"));
	rc = caller_path(tmp_root, NULL, pid, &path, &err);
	reap(pid);
	cr_assert_lt(rc, 0);
	cr_expect_eq(err.code, VM_PERMISSION_DENIED);
	cr_expect_not_null(strstr(err.message, "was deleted"), "%s", err.message);
}

Test(caller, proc_dir_override)
{
	cleanup_free char *proc = xasprintf("%s/proc/4242", tmp_root);
	cleanup_free char *link = xasprintf("%s/exe", proc);
	cleanup_free char *target = xasprintf("%s/odm/bin/tool", tmp_root);
	cleanup_free char *procdir = xasprintf("%s/proc", tmp_root);
	cleanup_free char *path = NULL;
	struct vm_error err = { 0 };

	cr_assert_eq(mkdir_p(proc, 0755), 0);
	cr_assert_eq(symlink(target, link), 0);
	cr_assert_eq(caller_path(tmp_root, procdir, 4242, &path, &err), 0, "%s", err.message);
	cr_expect_str_eq(path, "/odm/bin/tool");
	cr_assert_lt(caller_path(tmp_root, procdir, 4243, &path, &err), 0);
	show(&err);
	cr_expect_eq(err.code, VM_NOT_FOUND);
}

Test(caller, pidfd_identity)
{
	cleanup_free char *exe = install_sleeper("system/bin/sleeper");
	pid_t pid = spawn(exe);
	struct ttrpc_peer peer = peer_of(pid);
	cleanup_free char *path = NULL;
	cleanup_free char *want = NULL;
	struct vm_error err = { 0 };

	caller_conn_open(41, &peer, true, tmp_root);
	cr_assert_not_null(caller_of_conn(41));
	cr_expect_str_eq(caller_of_conn(41)->exe, "/system/bin/sleeper");
	cr_expect(fcntl(caller_of_conn(41)->pidfd, F_GETFD) & FD_CLOEXEC);
	cr_expect(fcntl(caller_of_conn(41)->exe_fd, F_GETFD) & FD_CLOEXEC);
	cr_assert_eq(early_caller_path_pidfd(tmp_root, NULL, pid, peer.pidfd, &path, &err), 0, "%s", err.message);
	cr_expect_str_eq(path, "/system/bin/sleeper");
	free(steal_pointer(&path));

	/* once the process is gone (and its pid free for reuse), the pidfd says so */
	reap(pid);
	cr_assert_lt(early_caller_exe(caller_of_conn(41), NULL, &path, &err), 0);
	show(&err);
	want = xasprintf("caller pid %d has exited", (int)pid);
	cr_expect_eq(err.code, VM_PERMISSION_DENIED);
	cr_expect_str_eq(err.message, want);
	caller_conn_close(41);
	cr_expect_null(caller_of_conn(41));
	/* a process no connection identified is refused */
	cr_assert_lt(early_caller_path_pidfd(tmp_root, NULL, pid, peer.pidfd, &path, &err), 0);
	cr_expect_eq(err.code, VM_PERMISSION_DENIED);
	close(peer.pidfd);
}

/* A client connects as one program, then execve()s the declared one and
 * sends its request: the identity read at connect no longer holds. */
Test(caller, exec_after_connect_is_refused)
{
	cleanup_free char *sh = install_sleeper("system/bin/sleeper");
	cleanup_free char *declared = NULL;
	cleanup_free char *shell = NULL;
	cleanup_free char *data = NULL;
	cleanup_free char *path = NULL;
	cleanup_free char *want = NULL;
	cleanup_free char *link = NULL;
	struct ttrpc_peer peer;
	struct vm_error err = { 0 };
	const struct caller *c;
	int go[2];
	pid_t pid;
	size_t len;

	/* the first program: a copy of the shell that waits, then execs */
	cr_assert_eq(read_file("/bin/sh", 16 << 20, &data, &len, &err), 0, "%s", err.message);
	shell = put_file("system/bin/launcher", data, (ssize_t)len);
	cr_assert_eq(chmod(shell, 0755), 0);
	declared = xstrdup(sh);
	cr_assert_eq(pipe2(go, O_CLOEXEC), 0);
	pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		cleanup_free char *script = xasprintf("read x; exec %s 1000", declared);

		dup2(go[0], 0);
		execl(shell, "launcher", "-c", script, (char *)NULL);
		_exit(127);
	}
	close(go[0]);
	link = xasprintf("/proc/%d/exe", (int)pid);
	for (int i = 0; i < 500; i++) {
		char target[4096];
		ssize_t n = readlink(link, target, sizeof(target) - 1);

		if (n > 0 && (target[n] = '\0', strcmp(target, shell) == 0))
			break;
		usleep(10000);
	}
	peer = peer_of(pid);
	caller_conn_open(7, &peer, true, tmp_root);
	c = caller_of_conn(7);
	cr_assert_not_null(c);
	cr_assert_str_eq(c->exe, "/system/bin/launcher", "%s", c->exe_err.message);
	cr_assert_eq(early_caller_exe(c, NULL, &path, &err), 0, "%s", err.message);
	free(steal_pointer(&path));

	/* now it execs the declared program, keeping its pid and connection */
	cr_assert_eq(write(go[1], "\n", 1), 1);
	for (int i = 0; i < 500; i++) {
		char target[4096];
		ssize_t n = readlink(link, target, sizeof(target) - 1);

		if (n > 0 && (target[n] = '\0', strcmp(target, declared) == 0))
			break;
		usleep(10000);
	}
	cr_assert_lt(early_caller_exe(c, NULL, &path, &err), 0, "the exec'd process passed as %s", path);
	show(&err);
	want = xasprintf(
		"caller pid %d no longer runs /system/bin/launcher, the executable it connected with "
		"(it called execve() since)",
		(int)pid);
	cr_expect_eq(err.code, VM_PERMISSION_DENIED);
	cr_expect_str_eq(err.message, want);
	/* the path-only entry point says the same */
	cr_assert_lt(early_caller_path_pidfd(tmp_root, NULL, pid, peer.pidfd, &path, &err), 0);
	cr_expect_str_eq(err.message, want);
	/* a connection made after the exec is fine on its own, but not while
	 * the older one is open: which one carries a request is not known here */
	{
		struct ttrpc_peer peer2 = peer_of(pid);

		caller_conn_open(8, &peer2, true, tmp_root);
		cr_expect_eq(early_caller_exe(caller_of_conn(8), NULL, &path, &err), 0, "%s", err.message);
		free(steal_pointer(&path));
		cr_expect_lt(early_caller_path_pidfd(tmp_root, NULL, pid, peer2.pidfd, &path, &err), 0);
		caller_conn_close(7);
		cr_expect_eq(early_caller_path_pidfd(tmp_root, NULL, pid, peer2.pidfd, &path, &err), 0, "%s",
			     err.message);
		caller_conn_close(8);
		close(peer2.pidfd);
	}
	close(go[1]);
	close(peer.pidfd);
	reap(pid);
}

Test(caller, deleted_since_connect)
{
	cleanup_free char *exe = install_sleeper("system/bin/sleeper");
	pid_t pid = spawn(exe);
	struct ttrpc_peer peer = peer_of(pid);
	cleanup_free char *path = NULL;
	struct vm_error err = { 0 };
	struct caller *c = NULL;

	cr_assert_eq(caller_identify(&peer, true, tmp_root, NULL, &c, &err), 0, "%s", err.message);
	cr_assert_not_null(c->exe, "%s", c->exe_err.message);
	/* replaced by a new file of the same name: the pinned inode is not it */
	cr_assert_eq(unlink(exe), 0);
	free(install_sleeper("system/bin/sleeper"));
	cr_assert_lt(early_caller_exe(c, NULL, &path, &err), 0);
	show(&err);
	cr_expect_eq(err.code, VM_PERMISSION_DENIED);
	cr_expect_not_null(strstr(err.message, "was deleted since it connected"), "%s", err.message);
	caller_free(c);
	close(peer.pidfd);
	reap(pid);
}

Test(caller, not_identified_at_connect)
{
	cleanup_free char *exe = install_sleeper("data/bin/sleeper");
	pid_t pid = spawn(exe);
	struct ttrpc_peer peer = peer_of(pid);
	cleanup_free char *path = NULL;
	struct vm_error err = { 0 };
	struct caller *c = NULL;

	/* outside the root: recorded, and the reason is what a request gets */
	cr_assert_eq(caller_identify(&peer, true, "/nonexistent-root", NULL, &c, &err), 0, "%s", err.message);
	cr_expect_null(c->exe);
	cr_assert_lt(early_caller_exe(c, NULL, &path, &err), 0);
	show(&err);
	cr_expect_eq(err.code, VM_INTERNAL);
	cr_expect_not_null(strstr(err.message, "cannot resolve root /nonexistent-root"), "%s", err.message);
	caller_free(c);
	/* identified, but on no early partition */
	cr_assert_eq(caller_identify(&peer, true, tmp_root, NULL, &c, &err), 0, "%s", err.message);
	cr_expect_str_eq(c->exe, "/data/bin/sleeper");
	cr_assert_lt(early_caller_exe(c, NULL, &path, &err), 0);
	cr_expect_str_eq(err.message, "Early VMs are not supported for data");
	caller_free(c);
	close(peer.pidfd);
	reap(pid);
}

/* The peer of a real socket, as the ttrpc layer hands it over. */
Test(caller, socket_peer)
{
	int sv[2];
	struct ucred cred;
	socklen_t len = sizeof(cred);
	struct ttrpc_peer peer;
	struct vm_error err = { 0 };
	struct caller *c = NULL;

	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	cr_assert_eq(getsockopt(sv[0], SOL_SOCKET, SO_PEERCRED, &cred, &len), 0);
	peer = peer_of(cred.pid);
	cr_assert_eq(caller_identify(&peer, false, NULL, NULL, &c, &err), 0, "%s", err.message);
	cr_expect_eq(c->pid, getpid());
	cr_expect_eq(c->uid, getuid());
	cr_expect_geq(c->pidfd, 0);
	cr_expect_neq(c->pidfd, peer.pidfd, "the record must own its own pidfd");
	cr_expect(fcntl(c->pidfd, F_GETFD) & FD_CLOEXEC);
	cr_expect_eq(syscall(SYS_pidfd_send_signal, c->pidfd, 0, NULL, 0), 0);
	cr_expect_null(c->exe, "the executable is read only when asked for");
	caller_free(c);
	close(peer.pidfd);
	close(sv[0]);
	close(sv[1]);
}

/* ------------------------------------------------- config and run dirs */

struct config_case {
	const char *vendor_modules;
	const char *device;
	const char *want; /* NULL: accepted */
};

static const struct config_case config_restrictions_cases[] = {
	{ NULL, NULL, NULL },
	{ "", NULL, NULL },
	{ "/vendor/etc/modules.img", NULL,
	  "vendor_modules is not allowed for early VMs (got \"/vendor/etc/modules.img\")" },
	{ NULL, "/sys/bus/platform/devices/16d00000.eh",
	  "assigned_devices is not allowed for early VMs (got 1, first "
	  "\"/sys/bus/platform/devices/16d00000.eh\")" },
};

ParameterizedTestParameters(config, restrictions)
{
	INDEX_PARAMS(config_restrictions_cases);
}

ParameterizedTest(size_t *index, config, restrictions)
{
	const struct config_case *c = &config_restrictions_cases[*index];
	char *devices[] = { (char *)c->device };
	struct vm_error err = { 0 };
	int rc = early_check_config(c->vendor_modules, devices, c->device ? 1 : 0, &err);

	if (!c->want) {
		cr_expect_eq(rc, 0, "%s", err.message);
		return;
	}
	cr_expect_lt(rc, 0);
	show(&err);
	cr_expect_eq(err.code, VM_INVALID_ARGUMENT);
	cr_expect_str_eq(err.message, c->want);
}

TestSuite(rundir, .init = setup_root, .fini = teardown_root);

Test(rundir, paths)
{
	cleanup_free char *a = early_run_dir("/", 123);
	cleanup_free char *b = early_run_dir("", 300);
	cleanup_free char *c = early_run_dir("/tmp/r//", 199);
	cleanup_free char *d = early_run_dir(NULL, 100);

	cr_expect_str_eq(a, "/mnt/vm/early/123");
	cr_expect_str_eq(b, "/mnt/vm/early/300");
	cr_expect_str_eq(c, "/tmp/r/mnt/vm/early/199");
	cr_expect_str_eq(d, "/mnt/vm/early/100");
}

Test(rundir, prepare_wipes_and_remove)
{
	cleanup_free char *dir = NULL;
	cleanup_free char *stale = NULL;
	cleanup_free char *want = xasprintf("%s/mnt/vm/early/150", tmp_root);
	struct vm_error err = { 0 };
	struct stat st;
	mode_t old = umask(022);

	cr_assert_eq(early_run_dir_prepare(tmp_root, 150, &dir, &err), 0, "%s", err.message);
	cr_expect_str_eq(dir, want);
	cr_assert_eq(stat(dir, &st), 0);
	cr_expect(S_ISDIR(st.st_mode));
	cr_expect_eq(st.st_mode & 07777, 0700);

	/* leftovers of a previous VM with this CID are removed */
	free(put_file("mnt/vm/early/150/sub/vsock.sock", "x", -1));
	stale = xasprintf("%s/sub", dir);
	cr_assert_eq(chmod(dir, 0755), 0);
	cr_assert_eq(early_run_dir_prepare(tmp_root, 150, NULL, &err), 0, "%s", err.message);
	cr_expect_neq(access(stale, F_OK), 0);
	cr_assert_eq(stat(dir, &st), 0);
	cr_expect_eq(st.st_mode & 07777, 0700);

	cr_assert_eq(early_run_dir_remove(tmp_root, 150, &err), 0, "%s", err.message);
	cr_expect_neq(access(dir, F_OK), 0);
	/* removing twice is fine */
	cr_expect_eq(early_run_dir_remove(tmp_root, 150, &err), 0, "%s", err.message);
	umask(old);
}

/* A run dir whose socket someone listens on belongs to a live VM of another daemon. */
Test(rundir, prepare_refuses_a_live_run_dir)
{
	cleanup_free char *dir = NULL;
	cleanup_free char *sock_path = NULL;
	cleanup_free char *want = NULL;
	cleanup_free char *marker = NULL;
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	struct vm_error err = { 0 };
	int fd;

	cr_assert_eq(early_run_dir_prepare(tmp_root, 321, &dir, &err), 0, "%s", err.message);
	sock_path = xasprintf("%s/qmp.sock", dir);
	marker = xasprintf("%s/console.log", dir);
	free(put_file("mnt/vm/early/321/console.log", "x", -1));
	cr_assert_lt(strlen(sock_path), sizeof(addr.sun_path));
	strcpy(addr.sun_path, sock_path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	cr_assert_geq(fd, 0);
	cr_assert_eq(bind(fd, (struct sockaddr *)&addr, sizeof(addr)), 0);
	cr_assert_eq(listen(fd, 1), 0);

	want = xasprintf("cid 321 is in use by a VM of another early daemon (%s is live)", sock_path);
	cr_assert_lt(early_run_dir_prepare(tmp_root, 321, NULL, &err), 0);
	show(&err);
	cr_expect_eq(err.code, VM_ALREADY_EXISTS);
	cr_expect_str_eq(err.message, want);
	cr_expect_eq(access(marker, F_OK), 0, "a live run dir was wiped");

	/* once nobody listens, the socket file is a leftover and is wiped */
	close(fd);
	cr_assert_eq(early_run_dir_prepare(tmp_root, 321, NULL, &err), 0, "%s", err.message);
	cr_expect_neq(access(sock_path, F_OK), 0);
	cr_expect_neq(access(marker, F_OK), 0);
}

Test(rundir, prepare_fails_with_a_clear_error)
{
	cleanup_free char *blocker = put_file("mnt/vm", "not a directory", -1);
	cleanup_free char *want = xasprintf("cannot create %s/mnt/vm/early: Not a directory", tmp_root);
	struct vm_error err = { 0 };

	cr_assert_lt(early_run_dir_prepare(tmp_root, 100, NULL, &err), 0);
	show(&err);
	cr_expect_eq(err.code, VM_INTERNAL);
	cr_expect_str_eq(err.message, want);
}

/* Two early daemons cannot race for one CID: the first one's lock refuses
 * the second before either has a socket the live-socket check could see. */
Test(rundir, cid_lock_between_daemons)
{
	cleanup_free char *lock = xasprintf("%s/mnt/vm/early/200.lock", tmp_root);
	cleanup_free char *want = xasprintf("cid 200 is in use by a VM of another early daemon (%s is locked)", lock);
	struct vm_error err = { 0 };
	int status, fd;
	pid_t pid;

	cr_assert_eq(early_run_dir_prepare(tmp_root, 200, NULL, &err), 0, "%s", err.message);
	/* this daemon again (its VM of that CID died): fine */
	cr_assert_eq(early_run_dir_prepare(tmp_root, 200, NULL, &err), 0, "%s", err.message);
	/* another daemon (what its early_run_dir_prepare() does first; a
	 * forked child would share this one's lock and table): refused */
	pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		struct vm_error e = { 0 };
		int rc = early_cid_lock(tmp_root, 200, &e);

		_exit(rc >= 0 ? 10 : e.code == VM_ALREADY_EXISTS && strcmp(e.message, want) == 0 ? 0 : 11);
	}
	cr_assert_eq(waitpid(pid, &status, 0), pid);
	cr_expect(WIFEXITED(status) && WEXITSTATUS(status) == 0, "second daemon: status %d", status);
	fd = early_cid_lock(tmp_root, 200, &err);
	cr_expect_lt(fd, 0);
	show(&err);
	cr_expect_eq(err.code, VM_ALREADY_EXISTS);
	cr_expect_str_eq(err.message, want);

	/* the VM is gone: the CID is free for anyone; the lock file stays */
	cr_assert_eq(early_run_dir_remove(tmp_root, 200, &err), 0, "%s", err.message);
	fd = early_cid_lock(tmp_root, 200, &err);
	cr_expect_geq(fd, 0, "%s", err.message);
	cr_expect(fcntl(fd, F_GETFD) & FD_CLOEXEC);
	early_cid_unlock(fd);
	cr_expect_eq(access(lock, F_OK), 0);

	/* a holder that dies releases it */
	pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		struct vm_error e = { 0 };

		_exit(early_run_dir_prepare(tmp_root, 200, NULL, &e) == 0 ? 0 : 1);
	}
	cr_assert_eq(waitpid(pid, &status, 0), pid);
	cr_expect(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	cr_assert_eq(early_run_dir_prepare(tmp_root, 200, NULL, &err), 0, "%s", err.message);
}
