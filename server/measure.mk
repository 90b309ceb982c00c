# Measured launch and token verification (docs/attestation.md), in virtmgrd
# and in vmctl. Included last from Makefile.am: it appends to targets the
# server/ and client/ fragments define.
server_libvirtmgrd_la_SOURCES += server/measure.c server/measure.h server/measure-vm.c server/measure-vm.h
client_libvmctl_la_SOURCES += client/cmd_measure.c client/cmd_attest.c client/cmd_attest.h \
	server/measure.c server/measure.h
client_libvmctl_la_CFLAGS += $(CBOR_CFLAGS) $(CRYPTO_CFLAGS)
client_libvmctl_la_LIBADD += lib/libvmattest.la $(CBOR_LIBS) $(CRYPTO_LIBS)
