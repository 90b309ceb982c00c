# Reliability and security: fault injection with real guests, client
# misbehaviour, resource exhaustion, hostile input, fuzz targets and the soak
# test. See docs/testing.md, "Faults and bad input tried".
TESTS += tests/integration/faults.sh
EXTRA_DIST += tests/integration/faults.sh
TESTS += tests/integration/clients.sh
EXTRA_DIST += tests/integration/clients.sh

# Misbehaving and numerous clients, for clients.sh, exhaustion.sh and soak.sh.
check_PROGRAMS += tests/integration/client_churn
tests_integration_client_churn_SOURCES = tests/integration/client_churn.c
tests_integration_client_churn_CFLAGS = $(AM_CFLAGS) $(PROTOBUF_C_CFLAGS)
tests_integration_client_churn_LDADD = lib/libvirtmgr.la $(PROTOBUF_C_LIBS) $(EV_LIBS)
TESTS += tests/integration/exhaustion.sh
EXTRA_DIST += tests/integration/exhaustion.sh
TESTS += tests/integration/security.sh
EXTRA_DIST += tests/integration/security.sh
TESTS += tests/integration/suspend.sh
EXTRA_DIST += tests/integration/suspend.sh

# ---- fuzz targets (tests/fuzz/fuzz.mk's pattern) ----
# vmctl's argument parsers: argv vectors built from the input.
FUZZ_TARGETS += vmctl
# (vmctl's and the client library's sources, taken from client/local.mk)
FUZZ_SRCS_vmctl = tests/fuzz/fuzz_vmctl.c $(filter %.c,$(client_libvmctl_la_SOURCES)) \
	$(filter %.c,$(client_libvirtmgr_client_la_SOURCES)) lib/ttrpc-frame.c lib/ttrpc-io.c lib/ttrpc-server.c lib/ttrpc-client.c \
	lib/util.c lib/log.c lib/cose.c lib/ccatoken.c \
	protos/ttrpc.pb-c.c protos/virtmgr.pb-c.c
FUZZ_LIBS_vmctl = $(DW_LIBS) $(ZLIB_LIBS) $(CBOR_LIBS) $(CRYPTO_LIBS)
check_PROGRAMS += tests/fuzz/replay_vmctl
tests_fuzz_replay_vmctl_SOURCES = tests/fuzz/replay.c tests/fuzz/fuzz_vmctl.c
tests_fuzz_replay_vmctl_CFLAGS = $(AM_CFLAGS) $(PROTOBUF_C_CFLAGS)
tests_fuzz_replay_vmctl_LDADD = client/libvmctl.la lib/libvirtmgr.la $(PROTOBUF_C_LIBS) $(EV_LIBS)
EXTRA_DIST += tests/fuzz/corpus/vmctl

# The daemon's API dispatch: real handlers and VM state machine in process
# (server/libvirtmgrd.la: all of virtmgrd but main()).
FUZZ_TARGETS += api
FUZZ_SRCS_api = tests/fuzz/fuzz_api.c $(VIRTMGRD_CORE_C) server/vsock_host.c server/sandbox.c \
	lib/ttrpc-frame.c lib/ttrpc-io.c lib/ttrpc-server.c lib/ttrpc-client.c lib/util.c lib/log.c lib/reaper.c \
	protos/ttrpc.pb-c.c protos/virtmgr.pb-c.c \
	server/crashstore.c server/vm-crash.c server/crashrx.c server/measure.c server/measure-vm.c \
	lib/cose.c lib/ccatoken.c
FUZZ_LIBS_api = $(FDT_LIBS) $(JSON_C_LIBS) $(SECCOMP_LIBS) $(CBOR_LIBS) $(CRYPTO_LIBS) $(ZLIB_LIBS) $(MHD_LIBS)
check_PROGRAMS += tests/fuzz/replay_api
tests_fuzz_replay_api_SOURCES = tests/fuzz/replay.c tests/fuzz/fuzz_api.c
tests_fuzz_replay_api_CFLAGS = $(AM_CFLAGS) $(PROTOBUF_C_CFLAGS) $(LIBXML_CFLAGS) $(FDT_CFLAGS) $(SECCOMP_CFLAGS)
tests_fuzz_replay_api_LDADD = server/libvirtmgrd.la
EXTRA_DIST += tests/fuzz/corpus/api

# vhost-user messages from a hostile frontend (server/vsock/vhost_user.c).
FUZZ_TARGETS += vhost_user
FUZZ_SRCS_vhost_user = tests/fuzz/fuzz_vhost_user.c server/vsock/vhost_user.c server/vsock/virtq.c \
	lib/util.c lib/log.c
FUZZ_LIBS_vhost_user =
check_PROGRAMS += tests/fuzz/replay_vhost_user
tests_fuzz_replay_vhost_user_SOURCES = tests/fuzz/replay.c tests/fuzz/fuzz_vhost_user.c
tests_fuzz_replay_vhost_user_LDADD = server/vsock/libvsockdev.la lib/libvirtmgr.la $(EV_LIBS)
EXTRA_DIST += tests/fuzz/corpus/vhost_user

# `make fuzz-ci`: the CI entry. Always replays every committed corpus
# (fuzz-smoke); fuzzes every target for $VIRTMGR_FUZZ_SECONDS seconds each
# (30 or more is useful) only when that variable is set, as CI time is short.
PHONY_TARGETS += fuzz-ci soak
fuzz-ci:
	$(MAKE) $(AM_MAKEFLAGS) fuzz-smoke
	@if test -n "$$VIRTMGR_FUZZ_SECONDS"; then \
	  $(MAKE) $(AM_MAKEFLAGS) fuzz FUZZ_SECONDS="$$VIRTMGR_FUZZ_SECONDS"; \
	else \
	  echo "fuzz-ci: corpora replayed; set VIRTMGR_FUZZ_SECONDS=N to also fuzz every target for N s"; \
	fi

# Soak test with real guests (tests/soak.sh): `make soak SOAK_MINUTES=N`.
# In `make check` it runs only when VIRTMGR_SOAK_MINUTES is set (else SKIP).
SOAK_MINUTES = 10
TESTS += tests/soak.sh
EXTRA_DIST += tests/soak.sh
soak: all guest-image tests/integration/client_churn$(EXEEXT)
	top_srcdir='$(abs_top_srcdir)' top_builddir='$(abs_top_builddir)' SOAK_MINUTES='$(SOAK_MINUTES)' \
	  $(SHELL) $(srcdir)/tests/soak.sh
