# guest/vmattest: the guest's attestation tool, /bin/vmattest in the default
# image (docs/attestation.md). Static, without sanitizers, like vmagent: the
# lib/ sources it needs are compiled again for it.
noinst_PROGRAMS += guest/vmattest/vmattest
guest_vmattest_vmattest_SOURCES = guest/vmattest/vmattest.c \
	lib/util.c lib/util.h lib/log.c lib/log.h \
	lib/ttrpc.h lib/ttrpc-priv.h lib/ttrpc-frame.c lib/ttrpc-io.c lib/ttrpc-server.c lib/ttrpc-client.c
nodist_guest_vmattest_vmattest_SOURCES = $(PROTO_C) $(PROTO_H)
guest_vmattest_vmattest_CFLAGS = -std=gnu11 $(WARN_CFLAGS) -Wno-use-after-free $(PROTOBUF_C_CFLAGS)
guest_vmattest_vmattest_LDFLAGS = -all-static
guest_vmattest_vmattest_LDADD = $(PROTOBUF_C_LIBS) $(EV_LIBS) -lm
$(guest_vmattest_vmattest_OBJECTS): $(PROTO_H)

GUEST_IMAGE_ADD += --add guest/vmattest/vmattest$(EXEEXT):/bin/vmattest
GUEST_IMAGE_DEPS += guest/vmattest/vmattest$(EXEEXT)
