# Client library, vmctl and interop tests. See docs/HACKING.md.

# ---- unit tests: argument parsing, JSON, bridge (no daemon) ----
check_PROGRAMS += tests/unit/test_vmctl_args tests/unit/test_vmctl_json
TESTS += tests/unit/test_vmctl_args tests/unit/test_vmctl_json
tests_unit_test_vmctl_args_SOURCES = tests/unit/test_vmctl_args.c
tests_unit_test_vmctl_args_CFLAGS = $(TEST_CFLAGS)
tests_unit_test_vmctl_args_LDADD = client/libvmctl.la $(TEST_LDADD)
tests_unit_test_vmctl_json_SOURCES = tests/unit/test_vmctl_json.c
tests_unit_test_vmctl_json_CFLAGS = $(TEST_CFLAGS)
tests_unit_test_vmctl_json_LDADD = client/libvmctl.la $(TEST_LDADD)
