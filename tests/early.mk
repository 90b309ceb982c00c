# Early VMs: declaration parsing, rules, caller identity, run directories.
# server/early.c is compiled into the test directly (it is not in a library).
check_PROGRAMS += tests/unit/test_early
TESTS += tests/unit/test_early
tests_unit_test_early_SOURCES = tests/unit/test_early.c server/early.c server/early.h
tests_unit_test_early_CFLAGS = $(TEST_CFLAGS) $(LIBXML_CFLAGS) \
	-DEARLY_TEST_XSD='"$(abs_top_srcdir)/etc/early_vms.xsd"' \
	-DEARLY_TEST_EXAMPLE='"$(abs_top_srcdir)/etc/early_vms.xml"'
tests_unit_test_early_LDADD = $(TEST_LDADD) $(LIBXML_LIBS)

# libFuzzer target and seed corpus (see tests/fuzz/fuzz.mk for the build).
EXTRA_DIST += tests/fuzz/fuzz_early.c tests/fuzz/corpus/early
