# Early VMs: the schema the daemon validates <partition>/etc/avf/early_vms*.xml
# against at run time (virtmgrd --early-xsd overrides the installed copy), an
# example declaration file, an example systemd unit and the file format's
# manual page.
dist_pkgdata_DATA += etc/early_vms.xsd
earlyexamplesdir = $(docdir)/examples
dist_earlyexamples_DATA = etc/early_vms.xml etc/virtmgrd-early.service
earlydocdir = $(docdir)
dist_earlydoc_DATA = docs/early-vms.md
dist_man_MANS += docs/early_vms.xml.5
