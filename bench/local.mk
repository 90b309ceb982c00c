# bench: see docs/HACKING.md for how fragments are written.
#
# `make bench` runs bench/run, which measures virtmgrd against baselines
# measured in the same run (docs/performance.md, bench/RESULTS.md). The C
# programs are check programs: built by `make check` (for the smoke test)
# and on demand by `make bench`, never installed.
check_PROGRAMS += bench/bench-rpc bench/bench-echo
bench_bench_rpc_SOURCES = bench/rpc.c
bench_bench_rpc_CFLAGS = $(AM_CFLAGS) $(PROTOBUF_C_CFLAGS) -pthread
bench_bench_rpc_LDADD = lib/libvirtmgr.la $(PROTOBUF_C_LIBS) $(EV_LIBS) -lpthread
bench_bench_echo_SOURCES = bench/echo.c
bench_bench_echo_CFLAGS = $(AM_CFLAGS) $(PROTOBUF_C_CFLAGS)
bench_bench_echo_LDADD = lib/libvirtmgr.la $(PROTOBUF_C_LIBS) $(EV_LIBS)

EXTRA_DIST += bench/run bench/RESULTS.md bench/go/main.go bench/storage.py bench/resources.sh

BENCH_DEPS = bench/bench-rpc$(EXEEXT) bench/bench-echo$(EXEEXT) \
	server/virtmgrd$(EXEEXT) server/virtmgr-vsock$(EXEEXT) client/vmctl$(EXEEXT) \
	tests/guest-tools/vsock-tool$(EXEEXT)
BENCH_FLAGS =

PHONY_TARGETS += bench
bench: $(BENCH_DEPS)
	@test -f guest/image/vmlinuz || $(MAKE) $(AM_MAKEFLAGS) guest-image
	$(PYTHON3) $(top_srcdir)/bench/run --builddir $(abs_top_builddir) $(BENCH_FLAGS)

# `bench/run --smoke`: every benchmark once, tiny, no figures checked.
TESTS += tests/bench-smoke.sh
EXTRA_DIST += tests/bench-smoke.sh
EXTRA_DIST += docs/performance.md

# bench/vsock/run.sh (vsock throughput against a Unix socket), also run by bench/run
include $(srcdir)/bench/vsock/vsock.mk

# Attestation: time to a token cold and warm, tokens/s (bench/attest.sh).
EXTRA_DIST += bench/attest.sh
PHONY_TARGETS += bench-attest
bench-attest: server/virtmgrd$(EXEEXT) server/virtmgr-vsock$(EXEEXT) client/vmctl$(EXEEXT)
	@test -f guest/image/servicevm-initramfs.img || $(MAKE) $(AM_MAKEFLAGS) guest-image
	$(SHELL) $(top_srcdir)/bench/attest.sh $(abs_top_builddir)
# guest network throughput (iperf3), the net section of bench/run on its own (docs/network.md)
EXTRA_DIST += bench/net/run.sh bench/network.py
