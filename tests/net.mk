# Networking (docs/network.md): user mode through passt with real guests, in
# a network namespace the test makes.
TESTS += tests/integration/net_user.sh
EXTRA_DIST += tests/integration/net_user.sh
# VmConfig.network checks, defaults and the forwarded-port checks (server/net.c).
check_PROGRAMS += tests/unit/test_net
TESTS += tests/unit/test_net
tests_unit_test_net_SOURCES = tests/unit/test_net.c
tests_unit_test_net_CFLAGS = $(TEST_CFLAGS)
tests_unit_test_net_LDADD = server/libvirtmgrd.la $(TEST_LDADD)
# tap mode (root): addresses from the pool, host <-> guest, owners isolated.
TESTS += tests/integration/net_tap.sh
EXTRA_DIST += tests/integration/net_tap.sh
