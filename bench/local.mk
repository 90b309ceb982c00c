# bench: see docs/HACKING.md for how fragments are written.

include $(srcdir)/bench/vsock/vsock.mk
