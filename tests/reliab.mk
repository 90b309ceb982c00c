# Reliability and security: fault injection with real guests, client
# misbehaviour, resource exhaustion, hostile input, fuzz targets and the soak
# test. See docs/testing.md, "Faults and bad input tried".
TESTS += tests/integration/faults.sh
EXTRA_DIST += tests/integration/faults.sh
TESTS += tests/integration/clients.sh
EXTRA_DIST += tests/integration/clients.sh

# Misbehaving and numerous clients, for clients.sh, exhaustion.sh and soak.sh.
check_PROGRAMS += tests/integration/client_churn
tests_integration_client_churn_SOURCES = tests/integration/client_churn.c
tests_integration_client_churn_CFLAGS = $(AM_CFLAGS) $(PROTOBUF_C_CFLAGS)
tests_integration_client_churn_LDADD = lib/libvirtmgr.la $(PROTOBUF_C_LIBS) $(EV_LIBS)
TESTS += tests/integration/exhaustion.sh
EXTRA_DIST += tests/integration/exhaustion.sh
TESTS += tests/integration/security.sh
EXTRA_DIST += tests/integration/security.sh
