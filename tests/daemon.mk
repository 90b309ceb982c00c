# virtmgrd: unit tests of its pure parts, integration tests with real guests.
check_PROGRAMS += tests/unit/test_accel
TESTS += tests/unit/test_accel
tests_unit_test_accel_SOURCES = tests/unit/test_accel.c server/accel.c server/accel.h
tests_unit_test_accel_CFLAGS = $(TEST_CFLAGS)
tests_unit_test_accel_LDADD = $(TEST_LDADD)
