# protobuf-c code generation (the FRRouting rule): one pattern rule, generated
# files never committed, listed in nodist_ sources and CLEANFILES.
PROTO_FILES = protos/ttrpc.proto protos/virtmgr.proto
EXTRA_DIST += $(PROTO_FILES)
PROTO_C = protos/ttrpc.pb-c.c protos/virtmgr.pb-c.c
PROTO_H = protos/ttrpc.pb-c.h protos/virtmgr.pb-c.h
BUILT_SOURCES += $(PROTO_C) $(PROTO_H)
CLEANFILES += $(PROTO_C) $(PROTO_H)

%.pb-c.c %.pb-c.h: %.proto
	@$(MKDIR_P) $(top_builddir)/protos
	$(AM_V_GEN)$(PROTOC_C) -I$(top_srcdir) --c_out=$(top_builddir) $<

# Installed so that clients in other languages can generate their code.
protosdir = $(pkgdatadir)/protos
dist_protos_DATA = $(PROTO_FILES)

noinst_LTLIBRARIES += protos/libvmproto.la
nodist_protos_libvmproto_la_SOURCES = $(PROTO_C) $(PROTO_H)
protos_libvmproto_la_CFLAGS = $(AM_CFLAGS) $(PROTOBUF_C_CFLAGS) -Wno-error
protos_libvmproto_la_LIBADD = $(PROTOBUF_C_LIBS)
