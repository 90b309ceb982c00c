# Networking (docs/network.md): user mode through passt with real guests, in
# a network namespace the test makes.
TESTS += tests/integration/net_user.sh
EXTRA_DIST += tests/integration/net_user.sh
