# bench/vsock: virtmgr-vsock throughput and connect latency against a Unix
# socket baseline. `make bench-vsock` runs it in full (256 MiB each way);
# `make check` runs it in --smoke mode (does it run, no numbers checked).
EXTRA_DIST += bench/vsock/run.sh
TESTS += bench/vsock/smoke.sh
EXTRA_DIST += bench/vsock/smoke.sh
bench/vsock/smoke.log: guest-image server/virtmgr-vsock$(EXEEXT) tests/guest-tools/vsock-tool$(EXEEXT)
PHONY_TARGETS += bench-vsock
bench-vsock: server/virtmgr-vsock$(EXEEXT) tests/guest-tools/vsock-tool$(EXEEXT) guest-image
	top_srcdir='$(abs_top_srcdir)' top_builddir='$(abs_top_builddir)' $(SHELL) $(top_srcdir)/bench/vsock/run.sh
