# Boot test of the default guest image. It needs `make guest-image`; `make
# check` builds the image first (the check_SCRIPTS stamp in tests/local.mk).
TESTS += tests/integration/guest_boot.sh
EXTRA_DIST += tests/integration/guest_boot.sh
