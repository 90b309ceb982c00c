# Tests: each area keeps its own fragment.
TEST_CFLAGS = $(AM_CFLAGS) $(CRITERION_CFLAGS) $(PROTOBUF_C_CFLAGS)
TEST_LDADD = lib/libvirtmgr.la $(CRITERION_LIBS) $(PROTOBUF_C_LIBS) $(EV_LIBS)
# libFuzzer targets (built with clang by `make fuzz`), see tests/fuzz/fuzz.mk
FUZZ_TARGETS =
EXTRA_DIST += tests/demo.sh

# The QMP client against a socketpair playing a misbehaving QEMU (no QEMU
# needed; test_qemu in tests/qemu.mk talks to the real one).
check_PROGRAMS += tests/unit/test_qmp
TESTS += tests/unit/test_qmp
tests_unit_test_qmp_SOURCES = tests/unit/test_qmp.c server/qmp.c server/qmp.h
tests_unit_test_qmp_CFLAGS = $(TEST_CFLAGS) $(JSON_C_CFLAGS)
tests_unit_test_qmp_LDADD = $(TEST_LDADD) $(JSON_C_LIBS)

# Tests with real guests need the default image: `make check` builds it first
# (check_SCRIPTS are made before any test runs). The stamp follows vmagent
# and the image builder, so an up-to-date image is not rebuilt.
check_SCRIPTS += guest/image/.stamp
CLEANFILES += guest/image/.stamp
guest/image/.stamp: guest/vmagent/vmagent$(EXEEXT) $(GUEST_IMAGE_DEPS) $(top_srcdir)/guest/mkimage.sh
	$(AM_V_at)$(MAKE) $(AM_MAKEFLAGS) guest-image
	$(AM_V_at)touch $@

include $(srcdir)/tests/fuzz/fuzz.mk
include $(srcdir)/tests/ttrpc.mk
include $(srcdir)/tests/client.mk
include $(srcdir)/tests/qemu.mk
include $(srcdir)/tests/guest.mk
include $(srcdir)/tests/vsock.mk
include $(srcdir)/tests/sandbox.mk
include $(srcdir)/tests/early.mk
include $(srcdir)/tests/daemon.mk
include $(srcdir)/tests/reliab.mk
include $(srcdir)/tests/agent.mk
include $(srcdir)/tests/pkg.mk
include $(srcdir)/tests/storage.mk
include $(srcdir)/tests/crash.mk
include $(srcdir)/tests/resources.mk
include $(srcdir)/tests/attest.mk
include $(srcdir)/tests/net.mk
