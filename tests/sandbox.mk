# Sandboxing of the processes that run under a VM's own uid: the uid pool,
# the child-side confinement (server/sandbox.c), virtmgr-vsock's seccomp
# filter seen from outside, and (once virtmgrd uses them) two VMs that
# cannot reach each other.
check_PROGRAMS += tests/unit/test_uidpool
TESTS += tests/unit/test_uidpool
tests_unit_test_uidpool_SOURCES = tests/unit/test_uidpool.c server/uidpool.c server/uidpool.h
tests_unit_test_uidpool_CFLAGS = $(TEST_CFLAGS)
tests_unit_test_uidpool_LDADD = $(TEST_LDADD)

check_PROGRAMS += tests/unit/test_sandbox
TESTS += tests/unit/test_sandbox
tests_unit_test_sandbox_SOURCES = tests/unit/test_sandbox.c server/sandbox.c server/sandbox.h
tests_unit_test_sandbox_CFLAGS = $(TEST_CFLAGS) $(SECCOMP_CFLAGS)
tests_unit_test_sandbox_LDADD = $(TEST_LDADD) $(SECCOMP_LIBS)

EXTRA_DIST += docs/sandbox.md

# two VMs of a root daemon under two uids of the range (needs root for the
# uid checks; without it only the not-root report is tested)
TESTS += tests/integration/sandbox.sh
EXTRA_DIST += tests/integration/sandbox.sh
