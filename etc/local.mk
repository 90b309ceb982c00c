# Configuration files, schemas and service units.
# Unit, sysusers.d and tmpfiles.d directories come from configure
# (--with-systemdsystemunitdir etc., default from systemd.pc); distcheck
# installs them under its own prefix.
systemdunitdir = $(systemdsystemunitdir)
systemdunit_DATA = etc/virtmgrd.service
dist_systemdunit_DATA = etc/virtmgrd.socket
EXTRA_DIST += etc/virtmgrd.service.in
CLEANFILES += etc/virtmgrd.service

etc/virtmgrd.service: etc/virtmgrd.service.in Makefile
	@$(MKDIR_P) etc
	$(AM_V_GEN)sed -e 's|@sbindir[@]|$(sbindir)|g' $(srcdir)/etc/virtmgrd.service.in > $@

dist_sysusers_DATA = etc/sysusers.d/virtmgr.conf
dist_tmpfiles_DATA = etc/tmpfiles.d/virtmgr.conf
AM_DISTCHECK_CONFIGURE_FLAGS = \
	--with-systemdsystemunitdir='$${dc_install_base}/lib/systemd/system' \
	--with-sysusersdir='$${dc_install_base}/lib/sysusers.d' \
	--with-tmpfilesdir='$${dc_install_base}/lib/tmpfiles.d'

# bash completion for vmctl: $(datadir)/bash-completion/completions/vmctl
dist_bashcompletion_DATA = etc/bash-completion/vmctl

include $(srcdir)/etc/early.mk
