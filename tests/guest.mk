# Boot test of the default guest image (needs `make guest-image`; `make check`
# builds it first).
TESTS += tests/integration/guest_boot.sh
EXTRA_DIST += tests/integration/guest_boot.sh
tests/integration/guest_boot.log: guest-image
