# Reliability and security: fault injection with real guests, client
# misbehaviour, resource exhaustion, hostile input, fuzz targets and the soak
# test. See docs/testing.md, "Faults and bad input tried".
TESTS += tests/integration/faults.sh
EXTRA_DIST += tests/integration/faults.sh
