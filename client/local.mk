# client: libvirtmgr-client (installed, with header and pkg-config file) and
# vmctl. See docs/HACKING.md for how fragments are written.
lib_LTLIBRARIES += client/libvirtmgr-client.la
include_HEADERS += client/virtmgr-client.h
client_libvirtmgr_client_la_SOURCES = client/client.c client/virtmgr-client.h \
	client/client-stats.c client/client-priv.h
client_libvirtmgr_client_la_CFLAGS = $(AM_CFLAGS) $(PROTOBUF_C_CFLAGS)
client_libvirtmgr_client_la_LIBADD = lib/libvirtmgr.la $(PROTOBUF_C_LIBS) $(EV_LIBS)
# Only the vmc_ API is exported; libvirtmgr's internals stay private.
client_libvirtmgr_client_la_LDFLAGS = $(AM_LDFLAGS) -version-info 0:0:0 -export-symbols-regex '^vmc_'
pkgconfig_DATA += client/virtmgr-client.pc
DISTCLEANFILES += client/virtmgr-client.pc
EXTRA_DIST += client/virtmgr-client.pc.in

# vmctl's code, minus main(), so that tests/unit/test_vmctl_args links it.
noinst_LTLIBRARIES += client/libvmctl.la
client_libvmctl_la_SOURCES = \
	client/vmctl.c client/vmctl.h \
	client/json.c client/json.h \
	client/cmd_info.c client/cmd_version.c client/cmd_run.c client/cmd_list.c \
	client/cmd_stop.c client/cmd_kill.c client/cmd_wait.c client/cmd_console.c \
	client/cmd_logs.c client/cmd_suspend.c client/cmd_resume.c client/cmd_connect.c \
	client/cmd_exec.c client/cmd_shell.c client/cmd_disk.c client/cmd_run_root.c \
	client/cmd_stats.c client/cmd_balloon.c client/cmd_top.c \
	client/cmd_attest_key.c
client_libvmctl_la_CFLAGS = $(AM_CFLAGS) $(PROTOBUF_C_CFLAGS)
client_libvmctl_la_LIBADD = client/libvirtmgr-client.la lib/libvirtmgr.la

bin_PROGRAMS += client/vmctl
client_vmctl_SOURCES = client/vmctl-main.c
client_vmctl_CFLAGS = $(AM_CFLAGS) $(PROTOBUF_C_CFLAGS)
client_vmctl_LDADD = client/libvmctl.la

EXTRA_DIST += docs/vmctl.md

# vmctl crashes / crash (docs/crash-reports.md): zlib for the core, libdw for backtraces
client_libvmctl_la_SOURCES += client/cmd_crash.c
client_libvmctl_la_CFLAGS += $(ZLIB_CFLAGS) $(DW_CFLAGS)
client_libvmctl_la_LIBADD += $(ZLIB_LIBS) $(DW_LIBS)

# Example clients (early-boot services and others).
include $(srcdir)/client/examples/examples.mk
