# Storage: the disk image store (docs/storage.md). See docs/HACKING.md.
TESTS += tests/integration/disk_store.sh
EXTRA_DIST += tests/integration/disk_store.sh
check_PROGRAMS += tests/integration/disk_initpart
tests_integration_disk_initpart_SOURCES = tests/integration/disk_initpart.c
tests_integration_disk_initpart_LDADD = client/libvirtmgr-client.la
# Shared host folders (virtiofs) with real guests: docs/storage.md, "Shared folders".
TESTS += tests/integration/shares.sh
EXTRA_DIST += tests/integration/shares.sh
