# bench/vsock: virtmgr-vsock throughput and connect latency against
# virtio-serial (a QEMU chardev on a Unix socket) in the same guest and run.
# `make bench-vsock` runs it in full (256 MiB each way, 5 runs after a
# warm-up); `make check` runs it in --smoke mode (does it run, no numbers
# checked). vport-tool is the virtio-serial end, static like vsock-tool so
# it runs in the minimal guest; built without the sanitizers.
check_PROGRAMS += bench/vsock/vport-tool
bench_vsock_vport_tool_SOURCES = bench/vsock/vport-tool.c tests/guest-tools/pattern.h
bench_vsock_vport_tool_CFLAGS = -std=gnu11 $(WARN_CFLAGS)
bench_vsock_vport_tool_LDFLAGS = -all-static
EXTRA_DIST += bench/vsock/run.sh
TESTS += bench/vsock/smoke.sh
EXTRA_DIST += bench/vsock/smoke.sh
VSOCK_BENCH_DEPS = guest-image server/virtmgr-vsock$(EXEEXT) tests/guest-tools/vsock-tool$(EXEEXT) \
	bench/vsock/vport-tool$(EXEEXT)
bench/vsock/smoke.log: $(VSOCK_BENCH_DEPS)
PHONY_TARGETS += bench-vsock
bench-vsock: $(VSOCK_BENCH_DEPS)
	top_srcdir='$(abs_top_srcdir)' top_builddir='$(abs_top_builddir)' $(SHELL) $(top_srcdir)/bench/vsock/run.sh
BENCH_DEPS += bench/vsock/vport-tool$(EXEEXT)
