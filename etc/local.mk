# Configuration files, schemas and service units.
systemdunitdir = $(prefix)/lib/systemd/system
systemdunit_DATA = etc/virtmgrd.service
dist_systemdunit_DATA = etc/virtmgrd.socket
EXTRA_DIST += etc/virtmgrd.service.in
CLEANFILES += etc/virtmgrd.service

etc/virtmgrd.service: etc/virtmgrd.service.in Makefile
	@$(MKDIR_P) etc
	$(AM_V_GEN)sed -e 's|@sbindir[@]|$(sbindir)|g' $(srcdir)/etc/virtmgrd.service.in > $@

include $(srcdir)/etc/early.mk
