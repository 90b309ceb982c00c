# Early VMs: the schema the daemon validates <partition>/etc/avf/early_vms*.xml
# against at run time (virtmgrd --early-xsd overrides the installed copy), an
# example declaration file, an example systemd unit for the example client
# (client/examples/early_client) and the file format's manual page.
dist_pkgdata_DATA += etc/early_vms.xsd
earlyexamplesdir = $(docdir)/examples
dist_earlyexamples_DATA = etc/early_vms.xml
earlyexamples_DATA = etc/virtmgrd-early.service
EXTRA_DIST += etc/virtmgrd-early.service.in
CLEANFILES += etc/virtmgrd-early.service
earlydocdir = $(docdir)
dist_earlydoc_DATA = docs/early-vms.md
dist_man_MANS += docs/early_vms.xml.5

etc/virtmgrd-early.service: etc/virtmgrd-early.service.in Makefile
	@$(MKDIR_P) etc
	$(AM_V_GEN)sed -e 's|@sbindir[@]|$(sbindir)|g' -e 's|@pkglibexecdir[@]|$(pkglibexecdir)|g' \
		-e 's|@pkgdatadir[@]|$(pkgdatadir)|g' -e 's|@docdir[@]|$(docdir)|g' \
		$(srcdir)/etc/virtmgrd-early.service.in > $@
