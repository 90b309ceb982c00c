# virtmgrd and its helpers.
include $(srcdir)/server/vsock/vsock.mk
