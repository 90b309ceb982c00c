# Attestation (docs/attestation.md): COSE, the CCA token, measured launch.
ATTEST_TEST_CFLAGS = $(TEST_CFLAGS) $(CBOR_CFLAGS) $(CRYPTO_CFLAGS)
ATTEST_TEST_LDADD = lib/libvmattest.la $(TEST_LDADD) $(CBOR_LIBS) $(CRYPTO_LIBS)

check_PROGRAMS += tests/unit/test_cose
TESTS += tests/unit/test_cose
tests_unit_test_cose_SOURCES = tests/unit/test_cose.c
tests_unit_test_cose_CFLAGS = $(ATTEST_TEST_CFLAGS)
tests_unit_test_cose_LDADD = $(ATTEST_TEST_LDADD)
