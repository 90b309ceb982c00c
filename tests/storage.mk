# Storage tests (docs/storage.md).
# Shared host folders (virtiofs) with real guests: docs/storage.md, "Shared folders".
TESTS += tests/integration/shares.sh
EXTRA_DIST += tests/integration/shares.sh
