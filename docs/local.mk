# Documentation shipped in the tarball and installed to $(docdir). Areas
# that own a page may also list it in their own fragment; automake merges
# duplicates in EXTRA_DIST.
dist_doc_DATA = docs/operations.md docs/protocol.md docs/vmctl.md docs/guest.md \
	docs/vsock.md docs/qemu.md docs/testing.md docs/sandbox.md docs/storage.md \
	docs/early-vms.md docs/performance.md docs/crash-reports.md docs/network.md
EXTRA_DIST += docs/HACKING.md
