# vsock: unit tests of the virtqueue walker and packet parser, the in-guest
# test tool, the fuzz target's corpus replay, and the end-to-end test with a
# real guest (tests/integration/vsock.sh).
VSOCK_TEST_LDADD = server/vsock/libvsockdev.la $(TEST_LDADD)

check_PROGRAMS += tests/unit/test_virtq tests/unit/test_vsock_pkt
TESTS += tests/unit/test_virtq tests/unit/test_vsock_pkt
tests_unit_test_virtq_SOURCES = tests/unit/test_virtq.c server/vsock/vq_synth.h
tests_unit_test_virtq_CFLAGS = $(TEST_CFLAGS)
tests_unit_test_virtq_LDADD = $(VSOCK_TEST_LDADD)
tests_unit_test_vsock_pkt_SOURCES = tests/unit/test_vsock_pkt.c server/vsock/vq_synth.h
tests_unit_test_vsock_pkt_CFLAGS = $(TEST_CFLAGS)
tests_unit_test_vsock_pkt_LDADD = $(VSOCK_TEST_LDADD)

# Fuzz target (tests/fuzz/fuzz.mk's pattern): `make fuzz` builds it with
# libFuzzer; tests/fuzz/replay.sh replays the committed corpus in `make check`.
FUZZ_TARGETS += vsock
FUZZ_SRCS_vsock = tests/fuzz/fuzz_vsock.c server/vsock/virtq.c server/vsock/vsock_pkt.c lib/util.c lib/log.c
FUZZ_LIBS_vsock =
check_PROGRAMS += tests/fuzz/replay_vsock
tests_fuzz_replay_vsock_SOURCES = tests/fuzz/replay.c tests/fuzz/fuzz_vsock.c server/vsock/vq_synth.h
tests_fuzz_replay_vsock_LDADD = server/vsock/libvsockdev.la lib/libvirtmgr.la $(EV_LIBS)
EXTRA_DIST += tests/fuzz/corpus/vsock

# In-guest (and host-side) test tool, static so it runs in the minimal guest;
# built without the sanitizers, which cannot link statically.
check_PROGRAMS += tests/guest-tools/vsock-tool
tests_guest_tools_vsock_tool_SOURCES = tests/guest-tools/vsock-tool.c tests/guest-tools/pattern.h
tests_guest_tools_vsock_tool_CFLAGS = -std=gnu11 $(WARN_CFLAGS)
tests_guest_tools_vsock_tool_LDFLAGS = -all-static

# End-to-end with a real guest under TCG (the project image plus an extra
# initramfs archive carrying vsock-tool and the guest script).
TESTS += tests/integration/vsock.sh
EXTRA_DIST += tests/integration/vsock.sh tests/integration/vsock-guest.sh
tests/integration/vsock.log: guest-image server/virtmgr-vsock$(EXEEXT) tests/guest-tools/vsock-tool$(EXEEXT)

# The daemon interface and the backend process, with peers played by the test.
check_PROGRAMS += tests/unit/test_vsock_host
TESTS += tests/unit/test_vsock_host
tests_unit_test_vsock_host_SOURCES = tests/unit/test_vsock_host.c
tests_unit_test_vsock_host_CPPFLAGS = $(AM_CPPFLAGS) \
	-DVSOCK_BACKEND_PATH='"$(abs_top_builddir)/server/virtmgr-vsock$(EXEEXT)"'
tests_unit_test_vsock_host_CFLAGS = $(TEST_CFLAGS) $(SECCOMP_CFLAGS)
tests_unit_test_vsock_host_LDADD = server/vsock/libvsockhost.la $(TEST_LDADD)

# The device between synthetic rings and real Unix sockets.
check_PROGRAMS += tests/unit/test_vsock_dev
TESTS += tests/unit/test_vsock_dev
tests_unit_test_vsock_dev_SOURCES = tests/unit/test_vsock_dev.c server/vsock/vq_synth.h
tests_unit_test_vsock_dev_CFLAGS = $(TEST_CFLAGS)
tests_unit_test_vsock_dev_LDADD = $(VSOCK_TEST_LDADD)

# virtmgr-vsock's seccomp allow-list, loaded in forked children.
check_PROGRAMS += tests/unit/test_vsock_seccomp
TESTS += tests/unit/test_vsock_seccomp
tests_unit_test_vsock_seccomp_SOURCES = tests/unit/test_vsock_seccomp.c server/vsock/seccomp.c server/vsock/seccomp.h
tests_unit_test_vsock_seccomp_CFLAGS = $(TEST_CFLAGS) $(SECCOMP_CFLAGS)
tests_unit_test_vsock_seccomp_LDADD = $(TEST_LDADD) $(SECCOMP_LIBS)
