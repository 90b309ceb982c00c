# virtmgr-vsock: the vhost-user-vsock device backend (one process per VM).
# The device core is a convenience library so unit tests and the fuzzer can
# drive the virtqueue walker and the packet parser on synthetic rings.
noinst_LTLIBRARIES += server/vsock/libvsockdev.la
server_vsock_libvsockdev_la_SOURCES = \
	server/vsock/virtq.c server/vsock/virtq.h \
	server/vsock/vsock_pkt.c server/vsock/vsock_pkt.h \
	server/vsock/vsock_dev.c server/vsock/vsock_dev.h \
	server/vsock/vhost_user.c server/vsock/vhost_user.h
server_vsock_libvsockdev_la_CFLAGS = $(AM_CFLAGS)
server_vsock_libvsockdev_la_LIBADD = lib/libvirtmgr.la $(EV_LIBS)

pkglibexec_PROGRAMS += server/virtmgr-vsock
server_virtmgr_vsock_SOURCES = server/vsock/main.c server/vsock/seccomp.c server/vsock/seccomp.h
server_virtmgr_vsock_CFLAGS = $(AM_CFLAGS) $(SECCOMP_CFLAGS)
server_virtmgr_vsock_LDADD = server/vsock/libvsockdev.la lib/libvirtmgr.la $(EV_LIBS) $(SECCOMP_LIBS)

# The daemon's side (server/vsock_host.c): kernel vhost-vsock or this backend
# behind one interface. virtmgrd links this library.
noinst_LTLIBRARIES += server/vsock/libvsockhost.la
server_vsock_libvsockhost_la_SOURCES = server/vsock_host.c server/vsock_host.h server/sandbox.c server/sandbox.h
server_vsock_libvsockhost_la_CFLAGS = $(AM_CFLAGS) $(SECCOMP_CFLAGS)
server_vsock_libvsockhost_la_LIBADD = lib/libvirtmgr.la $(EV_LIBS) $(SECCOMP_LIBS)
EXTRA_DIST += docs/vsock.md
