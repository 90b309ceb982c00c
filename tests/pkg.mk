# Fitting the ecosystem: socket activation, man pages, bash completion and
# the example clients in other languages (see docs/getting-started.md).
TESTS += tests/integration/socket_activation.sh tests/integration/manpages.sh \
	tests/integration/completion.sh tests/integration/example_python.sh \
	tests/integration/example_go.sh tests/integration/run_progress.sh
EXTRA_DIST += tests/integration/socket_activation.sh tests/integration/sd_activate.py \
	tests/integration/manpages.sh tests/integration/completion.sh \
	tests/integration/example_python.sh tests/integration/example_go.sh tests/integration/run_progress.sh \
	examples/go/main.go examples/go/README.md

# Python code for the example clients, generated from the protos into the
# build tree (never committed): examples/python/protos/*_pb2.py.
EXAMPLE_PY_PROTOS = examples/python/protos/ttrpc_pb2.py examples/python/protos/virtmgr_pb2.py
check_SCRIPTS += $(EXAMPLE_PY_PROTOS)
CLEANFILES += $(EXAMPLE_PY_PROTOS) examples/python/protos/__init__.py
EXTRA_DIST += examples/python/virtmgr_example.py examples/python/README.md

examples/python/protos/%_pb2.py: protos/%.proto
	@$(MKDIR_P) examples/python/protos
	@touch examples/python/protos/__init__.py
	$(AM_V_GEN)$(PROTOC) -I$(top_srcdir) --python_out=examples/python $<

clean-local: clean-example-py
PHONY_TARGETS += clean-example-py
clean-example-py:
	rm -rf examples/python/protos/__pycache__ examples/python/__pycache__
	rm -rf examples/go/gopath examples/go/cache examples/go/virtmgr-go-example

# Manual pages of the daemon and the CLI (early_vms.xml.5: etc/early.mk).
dist_man_MANS += docs/virtmgrd.8 docs/vmctl.1

# The first page for new users, installed with the other documentation.
pkgdocdir = $(docdir)
dist_pkgdoc_DATA = docs/getting-started.md
