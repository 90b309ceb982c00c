# Guest agent (vmagent) and the guest <-> host protocol: the config parser's
# unit tests and fuzz target, the Agent service run on the host (Unix
# sockets), and integration tests with real guests booting the default image.
check_PROGRAMS += tests/unit/test_agent_config
TESTS += tests/unit/test_agent_config
tests_unit_test_agent_config_SOURCES = tests/unit/test_agent_config.c guest/vmagent/config.c \
	guest/vmagent/agent_config.h server/fdtconfig.c server/fdtconfig.h
tests_unit_test_agent_config_CFLAGS = $(TEST_CFLAGS) $(FDT_CFLAGS)
tests_unit_test_agent_config_LDADD = $(TEST_LDADD) $(FDT_LIBS)

FUZZ_TARGETS += fdtconfig
FUZZ_SRCS_fdtconfig = tests/fuzz/fuzz_fdtconfig.c guest/vmagent/config.c lib/util.c lib/log.c
FUZZ_LIBS_fdtconfig = $(FDT_LIBS)
check_PROGRAMS += tests/fuzz/replay_fdtconfig
tests_fuzz_replay_fdtconfig_SOURCES = tests/fuzz/replay.c tests/fuzz/fuzz_fdtconfig.c guest/vmagent/config.c
tests_fuzz_replay_fdtconfig_CFLAGS = $(AM_CFLAGS) $(FDT_CFLAGS)
tests_fuzz_replay_fdtconfig_LDADD = lib/libvirtmgr.la $(FDT_LIBS) $(PROTOBUF_C_LIBS) $(EV_LIBS)
EXTRA_DIST += tests/fuzz/corpus/fdtconfig

# vmagent as a service on the host (--no-pid1, Unix sockets): Exec round
# trips, exit codes, backpressure with a slow reader, a pty under tmux.
TESTS += tests/integration/agent_host.sh
EXTRA_DIST += tests/integration/agent_host.sh
tests/integration/agent_host.log: guest/vmagent/vmagent$(EXEEXT) client/vmctl$(EXEEXT)

# Real guests running vmagent as PID 1 (need `make guest-image`).
TESTS += tests/integration/agent_guest.sh
EXTRA_DIST += tests/integration/agent_guest.sh
tests/integration/agent_guest.log: guest-image

# The agent process killed inside a real guest (PID 1 survives, reports it
# and powers off), a bystander VM untouched (need `make guest-image`).
TESTS += tests/integration/agent_faults.sh
EXTRA_DIST += tests/integration/agent_faults.sh
tests/integration/agent_faults.log: guest-image

# A hung guest (its agent SIGSTOPped) is noticed by the daemon's health
# check: ERROR event, on_hang kill/none; a busy payload is not a hang.
TESTS += tests/integration/health.sh
EXTRA_DIST += tests/integration/health.sh
tests/integration/health.log: guest-image

# A payload's output never decides what the daemon reports: forged and
# wrong-MAC console markers, --user, its own VirtualMachineService connection.
TESTS += tests/integration/forged_markers.sh
EXTRA_DIST += tests/integration/forged_markers.sh
tests/integration/forged_markers.log: guest-image tests/guest-tools/vsock-tool$(EXEEXT)

# vmctl exec's argument parsing.
check_PROGRAMS += tests/unit/test_agent_exec_args
TESTS += tests/unit/test_agent_exec_args
tests_unit_test_agent_exec_args_SOURCES = tests/unit/test_agent_exec_args.c
tests_unit_test_agent_exec_args_CFLAGS = $(TEST_CFLAGS)
tests_unit_test_agent_exec_args_LDADD = client/libvmctl.la $(TEST_LDADD)

# The real vmagent (--no-pid1) against a VirtualMachineService served by the
# test, and GetGuestInfo over --agent-socket.
check_PROGRAMS += tests/unit/test_agent_service
TESTS += tests/unit/test_agent_service
tests_unit_test_agent_service_SOURCES = tests/unit/test_agent_service.c tests/unit/test_util.h server/fdtconfig.c \
	server/fdtconfig.h server/marker.c server/marker.h
tests_unit_test_agent_service_CFLAGS = $(TEST_CFLAGS) $(FDT_CFLAGS)
tests_unit_test_agent_service_LDADD = $(TEST_LDADD) $(FDT_LIBS)

# Console markers: HMAC vectors, round trips, and everything a payload can
# print instead (the old unsigned lines, wrong key, truncated, overlong,
# replayed) read as plain text.
check_PROGRAMS += tests/unit/test_marker
TESTS += tests/unit/test_marker
tests_unit_test_marker_SOURCES = tests/unit/test_marker.c server/marker.c server/marker.h
tests_unit_test_marker_CFLAGS = $(TEST_CFLAGS)
tests_unit_test_marker_LDADD = $(TEST_LDADD)
