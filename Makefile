# facesearch: `make serve` and `make test` are the two commands (README).
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.facesearch-installed

.PHONY: install weights proto serve test test-fast bench loadtest help

help:
	@echo "make install  create $(VENV), install facesearch, fetch and verify the weights (idempotent)"
	@echo "make serve    install, enrol the sample gallery into an empty ./var, serve gRPC on 127.0.0.1:50051"
	@echo "make test     install, then run the whole test suite: tests/unit, tests/integration, tests/e2e"
	@echo "make test-fast install, then run tests/unit only: no model, no server (seconds)"
	@echo "make proto    regenerate facesearch/v1 from proto/facesearch/v1/facesearch.proto"
	@echo "make bench    install, run every benchmark bench/*.py (figures go to bench/results/), then build bench/REPORT.md"
	@echo "make loadtest install, serve the sample gallery on a temporary data dir, load it with ghz (or bench/loadgen.py)"
	@echo "              using bench/ghz/identify_cropped.json; report in bench/results/loadtest.json"

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
	$(PY) -m facesearch.indexer.samples
	$(VENV)/bin/facesearch-server

test: install
	$(PY) -m pytest

# The unit level alone: no model is loaded and no server started.
test-fast: install
	$(PY) -m pytest tests/unit

# Modules that bench scripts import, and the report generator: not benchmarks themselves.
BENCH_HELPERS := bench/common.py bench/loadgen.py bench/report.py

bench: install
	@set -e; for f in $(filter-out $(BENCH_HELPERS),$(sort $(wildcard bench/*.py))); do echo "== $$f"; $(PY) $$f; done
	$(PY) bench/report.py

# Extra flags for the load generator: make loadtest LOADTEST_ARGS="-- -n 100 -c 8"
loadtest: install
	$(PY) bench/loadtest.py $(LOADTEST_ARGS)
