# virtmgrd and its helpers.
sbin_PROGRAMS += server/virtmgrd
server_virtmgrd_SOURCES = \
	server/main.c \
	server/daemon.h \
	server/api.c server/api.h \
	server/vm.c server/vm.h \
	server/accel.c server/accel.h \
	server/fdtconfig.c server/fdtconfig.h \
	server/vms.c server/vms.h \
	server/statefile.c server/statefile.h \
	server/early.c server/early.h \
	server/qemu.c server/qemu.h \
	server/qmp.c server/qmp.h
server_virtmgrd_CFLAGS = $(AM_CFLAGS) $(PROTOBUF_C_CFLAGS) $(LIBXML_CFLAGS) $(FDT_CFLAGS)
server_virtmgrd_LDADD = server/vsock/libvsockhost.la lib/libvirtmgr.la $(PROTOBUF_C_LIBS) $(LIBXML_LIBS) $(FDT_LIBS) $(EV_LIBS)

include $(srcdir)/server/vsock/vsock.mk
