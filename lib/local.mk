# libvirtmgr: internal convenience library shared by the daemon, the client
# library, vmctl, the vsock backend and (statically) the guest agent.
noinst_LTLIBRARIES += lib/libvirtmgr.la
lib_libvirtmgr_la_SOURCES = \
	lib/util.c lib/util.h \
	lib/log.c lib/log.h
lib_libvirtmgr_la_CFLAGS = $(AM_CFLAGS) $(PROTOBUF_C_CFLAGS)
lib_libvirtmgr_la_LIBADD = protos/libvmproto.la $(PROTOBUF_C_LIBS) $(EV_LIBS)
