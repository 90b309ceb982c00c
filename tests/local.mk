# Tests: each area keeps its own fragment.
TEST_CFLAGS = $(AM_CFLAGS) $(CRITERION_CFLAGS) $(PROTOBUF_C_CFLAGS)
TEST_LDADD = lib/libvirtmgr.la $(CRITERION_LIBS) $(PROTOBUF_C_LIBS) $(EV_LIBS)
# libFuzzer targets (built with clang by `make fuzz`), see tests/fuzz/fuzz.mk
FUZZ_TARGETS =
EXTRA_DIST += tests/demo.sh

include $(srcdir)/tests/fuzz/fuzz.mk
include $(srcdir)/tests/ttrpc.mk
include $(srcdir)/tests/client.mk
include $(srcdir)/tests/qemu.mk
include $(srcdir)/tests/guest.mk
include $(srcdir)/tests/vsock.mk
include $(srcdir)/tests/early.mk
include $(srcdir)/tests/daemon.mk
include $(srcdir)/tests/agent.mk
