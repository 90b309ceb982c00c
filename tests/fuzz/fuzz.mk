# libFuzzer infrastructure (see docs/testing.md, "Fuzzing").
#
# A target NAME is one file tests/fuzz/fuzz_NAME.c defining
# LLVMFuzzerTestOneInput(), a seed corpus in tests/fuzz/corpus/NAME/ and
# four lines in the area's fragment:
#
#   FUZZ_TARGETS += NAME
#   FUZZ_SRCS_NAME = tests/fuzz/fuzz_NAME.c lib/... (every source it needs,
#                    generated ones like protos/virtmgr.pb-c.c included)
#   FUZZ_LIBS_NAME = $(LIBXML_LIBS) ...  (beyond protobuf-c and libev)
#   check_PROGRAMS += tests/fuzz/replay_NAME
#   tests_fuzz_replay_NAME_SOURCES = tests/fuzz/replay.c tests/fuzz/fuzz_NAME.c
#   tests_fuzz_replay_NAME_LDADD = lib/libvirtmgr.la ...
#   EXTRA_DIST += tests/fuzz/corpus/NAME
#
# `make fuzz FUZZ_SECONDS=N` builds every target with clang's libFuzzer
# (+ASan+UBSan) into tests/fuzz/fuzz_NAME of the build tree and runs it for
# N seconds on a copy of its corpus (tests/fuzz/run/NAME; new inputs found
# there can be minimised and committed). `make fuzz-smoke` (also part of
# `make check` through tests/fuzz/replay.sh) replays every committed corpus
# with the replay programs, built with the normal compiler.
FUZZ_SECONDS = 60
FUZZ_CFLAGS = -g -O1 -fsanitize=fuzzer,address,undefined -fno-omit-frame-pointer \
	$(DEFS) $(AM_CPPFLAGS) $(PROTOBUF_C_CFLAGS) $(LIBXML_CFLAGS) $(FDT_CFLAGS) $(JSON_C_CFLAGS)
FUZZ_LIBS = $(PROTOBUF_C_LIBS) $(EV_LIBS)

EXTRA_DIST += tests/fuzz/replay.c tests/fuzz/replay.sh
TESTS += tests/fuzz/replay.sh
CLEANFILES += $(FUZZ_TARGETS:%=tests/fuzz/fuzz_%)
PHONY_TARGETS += fuzz fuzz-smoke

# ---- ttrpc: frame decoder and server dispatch over a socketpair ----
FUZZ_TARGETS += ttrpc
FUZZ_SRCS_ttrpc = tests/fuzz/fuzz_ttrpc.c lib/ttrpc-frame.c lib/ttrpc-io.c lib/ttrpc-server.c lib/ttrpc-client.c \
	lib/util.c lib/log.c \
	protos/ttrpc.pb-c.c protos/virtmgr.pb-c.c
FUZZ_LIBS_ttrpc =
check_PROGRAMS += tests/fuzz/replay_ttrpc
tests_fuzz_replay_ttrpc_SOURCES = tests/fuzz/replay.c tests/fuzz/fuzz_ttrpc.c
tests_fuzz_replay_ttrpc_CFLAGS = $(AM_CFLAGS) $(PROTOBUF_C_CFLAGS)
tests_fuzz_replay_ttrpc_LDADD = lib/libvirtmgr.la $(PROTOBUF_C_LIBS) $(EV_LIBS)
EXTRA_DIST += tests/fuzz/corpus/ttrpc

# Fragments included after this one still add to FUZZ_TARGETS and
# BUILT_SOURCES: use them in recipes (expanded late), not as prerequisites.

fuzz:
	@test -n "$(CLANG)" || { echo "make fuzz needs clang (Debian: clang)" >&2; exit 1; }
	$(MAKE) $(AM_MAKEFLAGS) $(BUILT_SOURCES)
	@set -e; $(MKDIR_P) tests/fuzz; \
	$(foreach t,$(FUZZ_TARGETS), \
	  srcs=; for s in $(FUZZ_SRCS_$(t)); do \
	    if test -f "$$s"; then srcs="$$srcs $$s"; else srcs="$$srcs $(srcdir)/$$s"; fi; done; \
	  echo "  FUZZ     $(t) ($(FUZZ_SECONDS) s)"; \
	  $(CLANG) $(FUZZ_CFLAGS) -o tests/fuzz/fuzz_$(t) $$srcs $(FUZZ_LIBS_$(t)) $(FUZZ_LIBS); \
	  rm -rf tests/fuzz/run/$(t); $(MKDIR_P) tests/fuzz/run/$(t); \
	  cp $(srcdir)/tests/fuzz/corpus/$(t)/* tests/fuzz/run/$(t)/; \
	  tests/fuzz/fuzz_$(t) -max_total_time=$(FUZZ_SECONDS) -rss_limit_mb=2048 \
	    -artifact_prefix=tests/fuzz/run/$(t)- tests/fuzz/run/$(t); )

fuzz-smoke:
	$(MAKE) $(AM_MAKEFLAGS) $(FUZZ_TARGETS:%=tests/fuzz/replay_%$(EXEEXT))
	top_srcdir='$(abs_top_srcdir)' top_builddir='$(abs_top_builddir)' $(SHELL) $(srcdir)/tests/fuzz/replay.sh

clean-local: clean-fuzz
clean-fuzz:
	rm -rf tests/fuzz/run
