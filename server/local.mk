# virtmgrd and its helpers. Everything but main() is a convenience library,
# so tests and fuzz targets link the daemon's real code.
VIRTMGRD_CORE_C = server/diskstore.c server/api.c server/vm.c server/vm-config.c server/vm-console.c server/vm-persist.c \
	server/accel.c server/fdtconfig.c server/vms.c server/vm-health.c \
	server/statefile.c server/early.c server/caller.c server/xmllib.c server/qemu.c server/qmp.c server/marker.c \
	server/logfile.c server/uidpool.c server/virtiofs.c server/rootfs.c server/vm-diskgrow.c server/vm-stats.c \
	server/net.c server/vm-storage.c server/metrics.c
VIRTMGRD_CORE_C += server/servicevm.c server/attest.c
noinst_LTLIBRARIES += server/libvirtmgrd.la
server_libvirtmgrd_la_SOURCES = $(VIRTMGRD_CORE_C) \
	server/daemon.h server/api.h server/vm.h server/vm-priv.h server/vm-config.h server/vm-console.h \
	server/vm-persist.h server/accel.h server/fdtconfig.h server/vms.h server/vm-health.h \
	server/statefile.h server/early.h server/caller.h server/xmllib.h server/qemu.h server/qmp.h \
	server/logfile.h server/uidpool.h server/virtiofs.h server/rootfs.h server/vm-diskgrow.h server/vm-stats.h \
	server/vm-storage.h server/servicevm.h server/attest.h guest/servicevm/servicevm_proto.h server/metrics.h
server_libvirtmgrd_la_CFLAGS = $(AM_CFLAGS) $(PROTOBUF_C_CFLAGS) $(LIBXML_CFLAGS) $(FDT_CFLAGS) $(JSON_C_CFLAGS) \
	$(SECCOMP_CFLAGS) $(CBOR_CFLAGS) $(CRYPTO_CFLAGS) $(MHD_CFLAGS)
server_libvirtmgrd_la_LIBADD = server/vsock/libvsockhost.la lib/libvirtmgr.la lib/libvmattest.la $(PROTOBUF_C_LIBS) \
	$(FDT_LIBS) $(EV_LIBS) $(JSON_C_LIBS) $(SECCOMP_LIBS) $(CBOR_LIBS) $(CRYPTO_LIBS) $(MHD_LIBS)

sbin_PROGRAMS += server/virtmgrd
server_virtmgrd_SOURCES = server/main.c
server_virtmgrd_CFLAGS = $(AM_CFLAGS) $(PROTOBUF_C_CFLAGS) $(LIBXML_CFLAGS) $(FDT_CFLAGS) $(SECCOMP_CFLAGS) $(CBOR_CFLAGS)
server_virtmgrd_LDADD = server/libvirtmgrd.la
# libxml2 is not linked: server/xmllib.c opens it in --early mode only.

include $(srcdir)/server/vsock/vsock.mk

# Crash reports: the store and the API (crashstore.c), a VM's uploads and
# kernel panics (vm-crash.c); docs/crash-reports.md.
server_libvirtmgrd_la_SOURCES += server/crashstore.c server/crashstore.h server/vm-crash.c server/vm-crash.h \
	server/crashrx.c server/crashrx.h \
	guest/crash/upload.h
server_libvirtmgrd_la_CFLAGS += $(ZLIB_CFLAGS)
server_libvirtmgrd_la_LIBADD += $(ZLIB_LIBS)
EXTRA_DIST += docs/crash-reports.md
