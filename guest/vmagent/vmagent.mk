# guest/vmagent: the guest agent, PID 1 of the default guest image (pid1.c)
# and the agent process it forks (main.c and the rest).
#
# Linked statically (libfdt.a, libprotobuf-c.a, libev.a from Debian's -dev
# packages) and built without the sanitizers, which cannot link statically:
# the lib/ sources are compiled again for it rather than taken from
# libvirtmgr.la, which may carry SAN_CFLAGS.
noinst_PROGRAMS += guest/vmagent/vmagent
guest_vmagent_vmagent_SOURCES = \
	guest/vmagent/main.c guest/vmagent/pid1.c guest/vmagent/agent.h \
	guest/vmagent/config.c guest/vmagent/agent_config.h \
	guest/vmagent/host.c guest/vmagent/exec.c guest/vmagent/logfwd.c guest/vmagent/mounts.c \
	guest/vmagent/shares.c guest/vmagent/shares.h guest/vmagent/root.c guest/vmagent/root.h guest/vmagent/grow.c guest/vmagent/grow.h \
	guest/vmagent/crash.c guest/crash/upload.c guest/crash/upload.h \
	guest/vmagent/attest.c guest/vmagent/memory.c guest/vmagent/net.c guest/vmagent/net.h \
	guest/modload.c guest/modload.h \
	server/marker.c server/marker.h \
	lib/util.c lib/util.h lib/log.c lib/log.h \
	lib/ttrpc.h lib/ttrpc-priv.h lib/ttrpc-frame.c lib/ttrpc-io.c lib/ttrpc-server.c lib/ttrpc-client.c
nodist_guest_vmagent_vmagent_SOURCES = $(PROTO_C) $(PROTO_H)
# -Wno-use-after-free: without -fPIC, GCC 12 inlines lib/ttrpc-io.c's deferred
# connection teardown (conn->depth) and misreads it as a use after free.
guest_vmagent_vmagent_CFLAGS = -std=gnu11 $(WARN_CFLAGS) -Wno-use-after-free $(PROTOBUF_C_CFLAGS) $(FDT_CFLAGS) $(ZLIB_CFLAGS)
guest_vmagent_vmagent_LDFLAGS = -all-static
guest_vmagent_vmagent_LDADD = $(FDT_LIBS) $(PROTOBUF_C_LIBS) $(EV_LIBS) $(ZLIB_LIBS) -lm
$(guest_vmagent_vmagent_OBJECTS): $(PROTO_H)
