# Resources: statistics, the balloon and free page reporting, vmctl top
# (docs/operations.md, "Resources and metrics"). Real guests.
TESTS += tests/integration/resources.sh
EXTRA_DIST += tests/integration/resources.sh
tests/integration/resources.log: guest-image
# The Prometheus endpoint (virtmgrd --metrics), checked with
# python3-prometheus-client's parser against ListVms and GetVmStats.
TESTS += tests/integration/metrics.sh
EXTRA_DIST += tests/integration/metrics.sh
tests/integration/metrics.log: guest-image
