# Early VMs: declaration parsing, rules, caller identity, run directories.
# server/early.c and server/caller.c are compiled into the test directly.
check_PROGRAMS += tests/unit/test_early
TESTS += tests/unit/test_early
tests_unit_test_early_SOURCES = tests/unit/test_early.c server/early.c server/early.h \
	server/caller.c server/caller.h server/xmllib.c server/xmllib.h
tests_unit_test_early_CFLAGS = $(TEST_CFLAGS) $(LIBXML_CFLAGS) \
	-DEARLY_TEST_XSD='"$(abs_top_srcdir)/etc/early_vms.xsd"' \
	-DEARLY_TEST_EXAMPLE='"$(abs_top_srcdir)/etc/early_vms.xml"'
tests_unit_test_early_LDADD = $(TEST_LDADD)

# libFuzzer target: bytes of an early_vms*.xml through parsing, early_vms.xsd
# and the partition rules (see tests/fuzz/fuzz.mk). The replay program finds
# the schema through EARLY_FUZZ_XSD; the libFuzzer build through $top_srcdir
# or the path it was compiled from.
FUZZ_TARGETS += early
FUZZ_SRCS_early = tests/fuzz/fuzz_early.c server/early.c server/caller.c server/xmllib.c lib/util.c lib/log.c
FUZZ_LIBS_early =
check_PROGRAMS += tests/fuzz/replay_early
tests_fuzz_replay_early_SOURCES = tests/fuzz/replay.c tests/fuzz/fuzz_early.c server/early.c server/xmllib.c \
	server/early.h server/caller.c server/caller.h
tests_fuzz_replay_early_CFLAGS = $(AM_CFLAGS) $(LIBXML_CFLAGS) \
	-DEARLY_FUZZ_XSD='"$(abs_top_srcdir)/etc/early_vms.xsd"'
tests_fuzz_replay_early_LDADD = lib/libvirtmgr.la
EXTRA_DIST += tests/fuzz/fuzz_early.c tests/fuzz/corpus/early

# End to end with real guests: virtmgrd --early under a temp --root and the
# example client (client/examples/early_client) copied to declared paths.
TESTS += tests/integration/early.sh
EXTRA_DIST += tests/integration/early.sh
tests/integration/early.log: guest-image client/examples/early_client$(EXEEXT) server/virtmgrd$(EXEEXT) \
	server/virtmgr-vsock$(EXEEXT)
