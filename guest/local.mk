# guest: see docs/HACKING.md for how fragments are written.
#
# The default guest image's PID 1 is vmagent (guest/vmagent/vmagent.mk).
# `make guest-image` runs guest/mkimage.sh, which fetches Debian's cloud
# kernel into a cache and writes guest/image/{vmlinuz,initramfs.img} in the
# build tree; see docs/guest.md.

EXTRA_DIST += guest/mkimage.sh docs/guest.md

# guest/mkroot.sh builds root file system images for VmConfig.root from the
# host's Debian packages (or mmdebstrap); installed as $(pkgdatadir)/mkroot.sh.
dist_pkgdata_SCRIPTS = guest/mkroot.sh

# Other fragments add files to the image with
#   GUEST_IMAGE_ADD += --add path/in/build/tree:/dest/in/guest
#   GUEST_IMAGE_DEPS += path/in/build/tree
GUEST_IMAGE_ADD =
GUEST_IMAGE_DEPS =
GUEST_IMAGE_DIR = guest/image
GUEST_CACHE_DIR = $(abs_top_builddir)/guest/cache

PHONY_TARGETS += guest-image install-guest-image uninstall-guest-image clean-guest-image
guest-image: guest/vmagent/vmagent$(EXEEXT) $(GUEST_IMAGE_DEPS)
	$(AM_V_GEN)$(SHELL) $(top_srcdir)/guest/mkimage.sh --init guest/vmagent/vmagent$(EXEEXT) \
		--out $(GUEST_IMAGE_DIR) --work guest/work \
		--cache "$${VIRTMGR_GUEST_CACHE:-$(GUEST_CACHE_DIR)}" $(GUEST_IMAGE_ADD)

guestdatadir = $(pkgdatadir)/guest
install-data-local: install-guest-image
install-guest-image:
	@if test -f $(GUEST_IMAGE_DIR)/vmlinuz && test -f $(GUEST_IMAGE_DIR)/initramfs.img; then \
		echo " INSTALL  $(guestdatadir)/{vmlinuz,initramfs.img}"; \
		$(MKDIR_P) '$(DESTDIR)$(guestdatadir)' && \
		$(INSTALL_DATA) $(GUEST_IMAGE_DIR)/vmlinuz $(GUEST_IMAGE_DIR)/initramfs.img \
			'$(DESTDIR)$(guestdatadir)/' || exit 1; \
		if test -f $(GUEST_IMAGE_DIR)/vmlinux; then \
			$(INSTALL_DATA) $(GUEST_IMAGE_DIR)/vmlinux '$(DESTDIR)$(guestdatadir)/' || exit 1; \
		fi; \
	fi

uninstall-local: uninstall-guest-image
uninstall-guest-image:
	rm -f '$(DESTDIR)$(guestdatadir)/vmlinuz' '$(DESTDIR)$(guestdatadir)/vmlinux' \
		'$(DESTDIR)$(guestdatadir)/initramfs.img'

clean-local: clean-guest-image
clean-guest-image:
	rm -rf $(GUEST_IMAGE_DIR) guest/work

# The download cache in the build tree survives `make clean`.
distclean-local: distclean-guest-cache
PHONY_TARGETS += distclean-guest-cache
distclean-guest-cache:
	rm -rf guest/cache

include $(srcdir)/guest/vmagent/vmagent.mk
include $(srcdir)/guest/servicevm/servicevm.mk
include $(srcdir)/guest/vmattest/vmattest.mk
