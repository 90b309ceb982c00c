# QEMU supervision and the QMP client, tested against real QEMU (TCG) and the
# default guest image ($(top_builddir)/guest/image, built by `make guest-image`).
# server/qemu.c and server/qmp.c are compiled into the test directly; virtmgrd
# lists them in its own sources.
check_PROGRAMS += tests/unit/test_qemu
TESTS += tests/unit/test_qemu
tests_unit_test_qemu_SOURCES = tests/unit/test_qemu.c \
	server/qemu.c server/qemu.h server/qmp.c server/qmp.h server/logfile.c server/logfile.h server/sandbox.c server/sandbox.h
tests_unit_test_qemu_CFLAGS = $(TEST_CFLAGS) $(JSON_C_CFLAGS) $(SECCOMP_CFLAGS) -DQEMU_TEST_BINARY='"$(QEMU_SYSTEM)"'
tests_unit_test_qemu_LDADD = $(TEST_LDADD) $(JSON_C_LIBS) $(SECCOMP_LIBS)
