# facesearch: `make serve` and `make test` are the two commands (README).
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.facesearch-installed

.PHONY: install weights proto serve test bench help

help:
	@echo "make install  create $(VENV), install facesearch, fetch and verify the weights (idempotent)"
	@echo "make serve    install, enrol the sample gallery into an empty ./var, serve gRPC on 127.0.0.1:50051"
	@echo "make test     install, then run the whole test suite"
	@echo "make proto    regenerate facesearch/v1 from proto/facesearch/v1/facesearch.proto"
	@echo "make bench    install, then run every bench/*.py (figures go to bench/results/)"

$(PY):
	$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "facesearch needs Python >= 3.11"'
	$(PYTHON) -m venv $(VENV)

# Reinstalls only when pyproject.toml changes.
$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install --disable-pip-version-check -q --upgrade pip
	$(PY) -m pip install --disable-pip-version-check -q -e '.[test]'
	touch $@

# Generated gRPC code: facesearch/v1/*_pb2*.py from proto/ (tests fail if it is stale).
proto: $(STAMP)
	$(PY) -m facesearch.protogen

weights: $(STAMP)
	$(PY) -m facesearch.embedder fetch

install: $(STAMP) weights

# Enrols the 5-celebrity sample gallery into an empty data directory, then serves.
serve: install
	$(PY) -m facesearch.server.samples
	$(VENV)/bin/facesearch-server

test: install
	$(PY) -m pytest

bench: install
	@set -e; for f in bench/*.py; do echo "== $$f"; $(PY) $$f; done
