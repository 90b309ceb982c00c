# libvirtmgr: internal convenience library shared by the daemon, the client
# library, vmctl, the vsock backend and (statically) the guest agent.
noinst_LTLIBRARIES += lib/libvirtmgr.la
lib_libvirtmgr_la_SOURCES = \
	lib/util.c lib/util.h \
	lib/log.c lib/log.h \
	lib/reaper.c lib/reaper.h \
	lib/ttrpc.h lib/ttrpc-priv.h lib/ttrpc-frame.c lib/ttrpc-io.c \
	lib/ttrpc-server.c lib/ttrpc-client.c
lib_libvirtmgr_la_CFLAGS = $(AM_CFLAGS) $(PROTOBUF_C_CFLAGS)
lib_libvirtmgr_la_LIBADD = protos/libvmproto.la $(PROTOBUF_C_LIBS) $(EV_LIBS)
# The ttrpc files include the generated envelope header.
lib/lib_libvirtmgr_la-ttrpc-frame.lo lib/lib_libvirtmgr_la-ttrpc-io.lo \
lib/lib_libvirtmgr_la-ttrpc-server.lo lib/lib_libvirtmgr_la-ttrpc-client.lo: protos/ttrpc.pb-c.h

# Attestation: COSE_Sign1 and the CCA token (docs/attestation.md). Only
# libcbor and libcrypto, so the Service VM program can use it too.
noinst_LTLIBRARIES += lib/libvmattest.la
lib_libvmattest_la_SOURCES = lib/cose.c lib/cose.h lib/ccatoken.c lib/ccatoken.h
lib_libvmattest_la_CFLAGS = $(AM_CFLAGS) $(CBOR_CFLAGS) $(CRYPTO_CFLAGS)
lib_libvmattest_la_LIBADD = $(CBOR_LIBS) $(CRYPTO_LIBS)
