# Storage: the disk image store (docs/storage.md). See docs/HACKING.md.
TESTS += tests/integration/disk_store.sh
EXTRA_DIST += tests/integration/disk_store.sh
check_PROGRAMS += tests/integration/disk_initpart
tests_integration_disk_initpart_SOURCES = tests/integration/disk_initpart.c
tests_integration_disk_initpart_LDADD = client/libvirtmgr-client.la
# Shared host folders (virtiofs) with real guests: docs/storage.md, "Shared folders".
TESTS += tests/integration/shares.sh
EXTRA_DIST += tests/integration/shares.sh

# The store's bookkeeping for the VM core (names, paths, one VM per image).
check_PROGRAMS += tests/unit/test_diskstore
TESTS += tests/unit/test_diskstore
tests_unit_test_diskstore_SOURCES = tests/unit/test_diskstore.c server/diskstore.c server/diskstore.h \
	server/sandbox.c server/sandbox.h
tests_unit_test_diskstore_CFLAGS = $(TEST_CFLAGS) $(SECCOMP_CFLAGS)
tests_unit_test_diskstore_LDADD = $(TEST_LDADD) $(SECCOMP_LIBS)
# Disks in a VM and the guest agent's mounts, with real guests (docs/storage.md, "Disks and mounts").
TESTS += tests/integration/disks.sh
EXTRA_DIST += tests/integration/disks.sh
tests/integration/disks.log: guest-image
# The payload's root file system (docs/storage.md, "A root file system"), real guests.
TESTS += tests/integration/root.sh
EXTRA_DIST += tests/integration/root.sh tests/integration/rootfs-lib.sh
tests/integration/root.log: guest-image
# guest/mkroot.sh and the python3 flow of docs/getting-started.md, offline.
TESTS += tests/integration/mkroot.sh
EXTRA_DIST += tests/integration/mkroot.sh
tests/integration/mkroot.log: guest-image
# Online resize of a store image a running VM has mounted (docs/storage.md).
TESTS += tests/integration/disk_grow.sh
EXTRA_DIST += tests/integration/disk_grow.sh
tests/integration/disk_grow.log: guest-image
# Disk reservations and virtiofsd across a daemon restart; root's UID:NAME.
TESTS += tests/integration/storage_restart.sh
EXTRA_DIST += tests/integration/storage_restart.sh
tests/integration/storage_restart.log: guest-image
# VmConfig.root on the host side (server/rootfs.c).
check_PROGRAMS += tests/unit/test_rootfs
TESTS += tests/unit/test_rootfs
tests_unit_test_rootfs_SOURCES = tests/unit/test_rootfs.c server/rootfs.c server/rootfs.h
tests_unit_test_rootfs_CFLAGS = $(TEST_CFLAGS)
tests_unit_test_rootfs_LDADD = $(TEST_LDADD)
