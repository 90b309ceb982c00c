# Resources: statistics, the balloon and free page reporting, vmctl top
# (docs/operations.md, "Resources and metrics"). Real guests.
TESTS += tests/integration/resources.sh
EXTRA_DIST += tests/integration/resources.sh
tests/integration/resources.log: guest-image
