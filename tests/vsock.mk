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
