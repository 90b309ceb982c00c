# guest/servicevm: the Service VM's program (PID 1 of its initramfs) and the
# initramfs, built by guest/mkimage.sh with the default kernel. It links
# libcbor and libcrypto dynamically (Debian ships no libcbor.a), so the
# loader and the shared libraries ldd names are added to the image. No
# sanitizers: lib/cose.c and lib/ccatoken.c are compiled again for it.
noinst_PROGRAMS += guest/servicevm/servicevm
guest_servicevm_servicevm_SOURCES = guest/servicevm/main.c guest/servicevm/servicevm_proto.h guest/modload.c guest/modload.h \
	lib/cose.c lib/cose.h lib/ccatoken.c lib/ccatoken.h
guest_servicevm_servicevm_CFLAGS = -std=gnu11 $(WARN_CFLAGS) $(CBOR_CFLAGS) $(CRYPTO_CFLAGS)
guest_servicevm_servicevm_LDADD = $(CBOR_LIBS) $(CRYPTO_LIBS)

# `make guest-image` also writes $(GUEST_IMAGE_DIR)/servicevm-initramfs.img,
# which virtmgrd boots with the default kernel (docs/attestation.md).
SERVICEVM_IMAGE = $(GUEST_IMAGE_DIR)/servicevm-initramfs.img
PHONY_TARGETS += servicevm-image
guest-image: servicevm-image
servicevm-image: guest/servicevm/servicevm$(EXEEXT)
	$(AM_V_GEN)adds=; \
	for lib in $$(LC_ALL=C ldd guest/servicevm/servicevm$(EXEEXT) | sed -n 's|.*=> \(/[^ ]*\) .*|\1|p;s|^[[:space:]]*\(/[^ ]*\) .*|\1|p'); do \
		adds="$$adds --add $$lib:$$lib"; \
	done; \
	$(SHELL) $(top_srcdir)/guest/mkimage.sh --init guest/servicevm/servicevm$(EXEEXT) \
		--out guest/servicevm/image --work guest/servicevm/work \
		--cache "$${VIRTMGR_GUEST_CACHE:-$(GUEST_CACHE_DIR)}" $$adds && \
	$(MKDIR_P) $(GUEST_IMAGE_DIR) && \
	cp guest/servicevm/image/initramfs.img $(SERVICEVM_IMAGE).tmp && mv -f $(SERVICEVM_IMAGE).tmp $(SERVICEVM_IMAGE)

install-data-local: install-servicevm-image
uninstall-local: uninstall-servicevm-image
clean-local: clean-servicevm-image
PHONY_TARGETS += install-servicevm-image uninstall-servicevm-image clean-servicevm-image
install-servicevm-image:
	@if test -f $(SERVICEVM_IMAGE); then \
		$(MKDIR_P) '$(DESTDIR)$(guestdatadir)' && \
		$(INSTALL_DATA) $(SERVICEVM_IMAGE) '$(DESTDIR)$(guestdatadir)/' || exit 1; \
	fi
uninstall-servicevm-image:
	rm -f '$(DESTDIR)$(guestdatadir)/servicevm-initramfs.img'
clean-servicevm-image:
	rm -rf guest/servicevm/image guest/servicevm/work
