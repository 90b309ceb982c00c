# Example clients; see docs/HACKING.md and docs/early-vms.md.
#
# early_client: an early-boot client that runs one declared early VM. It is
# installed so that it can be copied to the path an early_vms.xml declares
# (e.g. /system/bin/vm_demo_early); the daemon checks the caller's
# executable, so a copy must run on its own. The client library's code is
# therefore compiled in (libvirtmgr.la is a convenience library, linked in
# as well): no libtool wrapper, no dependency on an installed
# libvirtmgr-client.so.
pkglibexec_PROGRAMS += client/examples/early_client
client_examples_early_client_SOURCES = client/examples/early_client.c \
	client/client.c client/virtmgr-client.h
client_examples_early_client_CFLAGS = $(AM_CFLAGS) $(PROTOBUF_C_CFLAGS)
client_examples_early_client_LDADD = lib/libvirtmgr.la $(PROTOBUF_C_LIBS) $(EV_LIBS)

# exec_client: run a command in a guest with vmc_exec_simple(). Built (not
# installed) as a library user's program would be: the installed header's
# directory and libvirtmgr-client only.
noinst_PROGRAMS += client/examples/exec_client
client_examples_exec_client_SOURCES = client/examples/exec_client.c
client_examples_exec_client_CFLAGS = $(AM_CFLAGS) -I$(top_srcdir)/client
client_examples_exec_client_LDADD = client/libvirtmgr-client.la
