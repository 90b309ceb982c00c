# Crash reports (docs/crash-reports.md).

# In-guest tool: crashes on purpose (SIGSEGV, abort) and sends forged
# uploads. Static so it runs in the minimal guest, unoptimised and with
# debug symbols so the host-side backtrace names its functions; built
# without the sanitizers, which cannot link statically.
check_PROGRAMS += tests/guest-tools/crashtool
tests_guest_tools_crashtool_SOURCES = tests/guest-tools/crashtool.c guest/crash/upload.c guest/crash/upload.h \
	lib/util.c lib/util.h lib/log.c lib/log.h
nodist_tests_guest_tools_crashtool_SOURCES = $(PROTO_C) $(PROTO_H)
tests_guest_tools_crashtool_CFLAGS = -std=gnu11 $(WARN_CFLAGS) -O0 -g -fno-omit-frame-pointer $(PROTOBUF_C_CFLAGS)
tests_guest_tools_crashtool_LDFLAGS = -all-static
tests_guest_tools_crashtool_LDADD = $(PROTOBUF_C_LIBS)
$(tests_guest_tools_crashtool_OBJECTS): $(PROTO_H)

# End to end with real guests under TCG.
TESTS += tests/integration/crash.sh
EXTRA_DIST += tests/integration/crash.sh
tests/integration/crash.log: guest-image tests/guest-tools/crashtool$(EXEEXT) client/vmctl$(EXEEXT)

# The store alone on a real directory.
check_PROGRAMS += tests/unit/test_crashstore
TESTS += tests/unit/test_crashstore
tests_unit_test_crashstore_SOURCES = tests/unit/test_crashstore.c
tests_unit_test_crashstore_CFLAGS = $(TEST_CFLAGS)
tests_unit_test_crashstore_LDADD = server/libvirtmgrd.la $(TEST_LDADD)

# The host's decoder of crash uploads (server/crashrx.c), fuzzed.
FUZZ_TARGETS += crash_upload
FUZZ_SRCS_crash_upload = tests/fuzz/fuzz_crash_upload.c server/crashrx.c lib/util.c lib/log.c protos/virtmgr.pb-c.c
FUZZ_LIBS_crash_upload =
check_PROGRAMS += tests/fuzz/replay_crash_upload
tests_fuzz_replay_crash_upload_SOURCES = tests/fuzz/replay.c tests/fuzz/fuzz_crash_upload.c server/crashrx.c \
	server/crashrx.h
nodist_tests_fuzz_replay_crash_upload_SOURCES = $(PROTO_H)
tests_fuzz_replay_crash_upload_CFLAGS = $(AM_CFLAGS) $(PROTOBUF_C_CFLAGS)
tests_fuzz_replay_crash_upload_LDADD = lib/libvirtmgr.la $(PROTOBUF_C_LIBS) $(EV_LIBS)
$(tests_fuzz_replay_crash_upload_OBJECTS): $(PROTO_H)
EXTRA_DIST += tests/fuzz/corpus/crash_upload
