# Attestation (docs/attestation.md): COSE, the CCA token, measured launch.
ATTEST_TEST_CFLAGS = $(TEST_CFLAGS) $(CBOR_CFLAGS) $(CRYPTO_CFLAGS)
ATTEST_TEST_LDADD = lib/libvmattest.la $(TEST_LDADD) $(CBOR_LIBS) $(CRYPTO_LIBS)

check_PROGRAMS += tests/unit/test_cose
TESTS += tests/unit/test_cose
tests_unit_test_cose_SOURCES = tests/unit/test_cose.c
tests_unit_test_cose_CFLAGS = $(ATTEST_TEST_CFLAGS)
tests_unit_test_cose_LDADD = $(ATTEST_TEST_LDADD)

check_PROGRAMS += tests/unit/test_ccatoken
TESTS += tests/unit/test_ccatoken
tests_unit_test_ccatoken_SOURCES = tests/unit/test_ccatoken.c
tests_unit_test_ccatoken_CFLAGS = $(ATTEST_TEST_CFLAGS)
tests_unit_test_ccatoken_LDADD = $(ATTEST_TEST_LDADD)

# The token checked by independent code: Python, python3-cbor2 + python3-cryptography.
check_PROGRAMS += tests/interop/cca_mktoken
tests_interop_cca_mktoken_SOURCES = tests/interop/cca_mktoken.c
tests_interop_cca_mktoken_CFLAGS = $(AM_CFLAGS) $(CBOR_CFLAGS) $(CRYPTO_CFLAGS)
tests_interop_cca_mktoken_LDADD = lib/libvmattest.la $(CBOR_LIBS) $(CRYPTO_LIBS)
TESTS += tests/interop/test_cca_token.py
EXTRA_DIST += tests/interop/test_cca_token.py tests/interop/verify_token.py

check_PROGRAMS += tests/unit/test_measure
TESTS += tests/unit/test_measure
tests_unit_test_measure_SOURCES = tests/unit/test_measure.c server/measure.c server/measure.h
tests_unit_test_measure_CFLAGS = $(ATTEST_TEST_CFLAGS)
tests_unit_test_measure_LDADD = $(TEST_LDADD) $(CRYPTO_LIBS)

# vmctl measure against virtmgrd's own measurement, and vmctl attest verify.
TESTS += tests/integration/attest_measure.sh
EXTRA_DIST += tests/integration/attest_measure.sh

# The Service VM and guest attestation with real guests (servicevm side).
TESTS += tests/integration/attest_servicevm.sh
EXTRA_DIST += tests/integration/attest_servicevm.sh

# ---- fuzz: CCA token, COSE_Sign1 and COSE_Key parsers (tests/fuzz/fuzz.mk) ----
FUZZ_TARGETS += ccatoken
FUZZ_SRCS_ccatoken = tests/fuzz/fuzz_ccatoken.c lib/cose.c lib/ccatoken.c
FUZZ_LIBS_ccatoken = $(CBOR_LIBS) $(CRYPTO_LIBS)
check_PROGRAMS += tests/fuzz/replay_ccatoken
tests_fuzz_replay_ccatoken_SOURCES = tests/fuzz/replay.c tests/fuzz/fuzz_ccatoken.c
tests_fuzz_replay_ccatoken_CFLAGS = $(AM_CFLAGS) $(CBOR_CFLAGS) $(CRYPTO_CFLAGS)
tests_fuzz_replay_ccatoken_LDADD = lib/libvmattest.la $(CBOR_LIBS) $(CRYPTO_LIBS)
EXTRA_DIST += tests/fuzz/corpus/ccatoken
