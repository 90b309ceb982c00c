# virtmgrd: unit tests of its pure parts, integration tests with real guests.
check_PROGRAMS += tests/unit/test_accel
TESTS += tests/unit/test_accel
tests_unit_test_accel_SOURCES = tests/unit/test_accel.c server/accel.c server/accel.h
tests_unit_test_accel_CFLAGS = $(TEST_CFLAGS)
tests_unit_test_accel_LDADD = $(TEST_LDADD)

check_PROGRAMS += tests/unit/test_fdtconfig
TESTS += tests/unit/test_fdtconfig
tests_unit_test_fdtconfig_SOURCES = tests/unit/test_fdtconfig.c server/fdtconfig.c server/fdtconfig.h
tests_unit_test_fdtconfig_CFLAGS = $(TEST_CFLAGS) $(FDT_CFLAGS)
tests_unit_test_fdtconfig_LDADD = $(TEST_LDADD) $(FDT_LIBS)

# Integration tests with real guests (need `make guest-image`).
TESTS += tests/integration/lifecycle.sh tests/integration/permissions.sh tests/integration/restart.sh
EXTRA_DIST += tests/integration/lib.sh tests/integration/lifecycle.sh tests/integration/permissions.sh \
	tests/integration/restart.sh

check_PROGRAMS += tests/unit/test_logfile
TESTS += tests/unit/test_logfile
tests_unit_test_logfile_SOURCES = tests/unit/test_logfile.c server/logfile.c server/logfile.h
tests_unit_test_logfile_CFLAGS = $(TEST_CFLAGS)
tests_unit_test_logfile_LDADD = $(TEST_LDADD)
# a guest flooding its console and guest log under a small --log-max-size
TESTS += tests/integration/logs_bound.sh
EXTRA_DIST += tests/integration/logs_bound.sh
tests/integration/logs_bound.log: guest-image

# VirtualMachineService on its own: real sockets and ttrpc connections, no VM core.
check_PROGRAMS += tests/unit/test_vms
TESTS += tests/unit/test_vms
tests_unit_test_vms_SOURCES = tests/unit/test_vms.c tests/unit/test_util.h server/vms.c server/vms.h \
	server/fdtconfig.c server/fdtconfig.h server/rootfs.c server/rootfs.h
tests_unit_test_vms_CFLAGS = $(TEST_CFLAGS) $(FDT_CFLAGS)
tests_unit_test_vms_LDADD = $(TEST_LDADD) $(FDT_LIBS)
