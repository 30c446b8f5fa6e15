# facesearch: `make serve` and `make test` are the two commands (README).
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.facesearch-installed

.PHONY: install lock weights proto serve test test-fast typecheck bench loadtest soak ghz help

help:
	@echo "make install  create $(VENV), install the pinned dependencies from requirements/dev.lock (hashes checked),"
	@echo "              install facesearch itself, fetch and verify the weights (idempotent)"
	@echo "make lock     re-resolve requirements/*.lock from pyproject.toml with uv (after changing a dependency)"
	@echo "make serve    install, enrol the sample gallery into an empty ./var, serve gRPC on 127.0.0.1:50051,"
	@echo "              REST, its docs (/docs) and the web console on http://127.0.0.1:8080"
	@echo "make test     install, mypy --strict (make typecheck), then the whole test suite: tests/unit, tests/integration, tests/e2e"
	@echo "make typecheck mypy --strict on the typed components (pyproject [tool.facesearch] typed)"
	@echo "make test-fast install, then run tests/unit only: no model, no server (seconds)"
	@echo "make proto    regenerate facesearch/v1 from proto/facesearch/v1/facesearch.proto"
	@echo "make bench    install, run every benchmark python -m bench.<name> (figures go to bench/results/), then build bench/REPORT.md"
	@echo "make loadtest install (ghz too), serve the sample gallery on a temporary data dir, run each bench/ghz/*.json with ghz;"
	@echo "              ghz's reports in bench/results/ghz/, a summary in bench/results/loadtest.json"
	@echo "make ghz      build ghz $(GHZ_VERSION) into $(VENV)/bin with Go, unless it is there (make test and make loadtest do this)"
	@echo "make soak     install, load a real server with a mixed load for 30 minutes (SOAK_ARGS=\"--minutes 5\"),"
	@echo "              then check every acknowledged write; bench/results/soak.json, plotted by make bench"

$(PY):
	$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "facesearch needs Python >= 3.11"'
	$(PYTHON) -m venv $(VENV)

# Reinstalls only when pyproject.toml or the lock changes. Every dependency comes from the lock, with
# its sha256 checked (--require-hashes); the project itself is installed without resolving anything.
$(STAMP): pyproject.toml requirements/dev.lock | $(PY)
	$(PY) -m pip install --disable-pip-version-check -q --upgrade pip
	$(PY) -m pip install --disable-pip-version-check -q --require-hashes -r requirements/dev.lock
	$(PY) -m pip install --disable-pip-version-check -q --no-deps -e .
	touch $@

# The locks, for Linux x86-64 and Python 3.11, resolved by uv from pyproject.toml (README "Dependencies").
# dev.lock (everything, with the test and milvus extras) is resolved first; runtime.lock (the Docker image)
# and gpu.lock (docker/Dockerfile.gpu) are resolved within its pins, so all three agree.
LOCK_FLAGS := --quiet --generate-hashes --python-version 3.11 --python-platform x86_64-manylinux_2_28
lock: | $(PY)
	@[ -x $(VENV)/bin/uv ] || $(PY) -m pip install --disable-pip-version-check -q uv
	$(VENV)/bin/uv pip compile pyproject.toml --extra test --extra milvus $(LOCK_FLAGS) -o requirements/dev.lock
	$(VENV)/bin/uv pip compile pyproject.toml --extra milvus -c requirements/dev.lock $(LOCK_FLAGS) -o requirements/runtime.lock
	$(PY) docker/requirements.py --gpu --milvus > requirements/gpu.in
	$(VENV)/bin/uv pip compile requirements/gpu.in -c requirements/dev.lock $(LOCK_FLAGS) -o requirements/gpu.lock

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

# ghz (https://ghz.sh), the gRPC load generator of `make loadtest` and tests/e2e/test_ghz.py, built with
# Go into $(VENV)/bin; quick when that version is already there. Without Go this only prints a note:
# the ghz test then skips, and `make loadtest` uses a ghz on PATH or says how to get one.
GHZ_VERSION := v0.121.0
GHZ := $(VENV)/bin/ghz

ghz: | $(PY)
	@if [ "$$($(GHZ) --version 2>&1)" = "$(GHZ_VERSION)" ]; then :; \
	elif command -v go >/dev/null 2>&1; then \
		echo "go install github.com/bojand/ghz/cmd/ghz@$(GHZ_VERSION) into $(VENV)/bin"; \
		GOBIN="$(abspath $(VENV))/bin" go install -ldflags "-X main.version=$(GHZ_VERSION)" \
			github.com/bojand/ghz/cmd/ghz@$(GHZ_VERSION); \
	elif [ ! -x $(GHZ) ] && ! command -v ghz >/dev/null 2>&1; then \
		echo "note: ghz is not installed and Go is not there to build it (README: Load tests)" >&2; \
	fi

# Two workers, a test file each at a time: most tests wait on a model or a server subprocess, so the
# suite takes about 10 minutes here instead of 16 (each worker starts its own model and servers).
test: install ghz
	$(PY) -m facesearch.typecheck
	$(PY) -m pytest -n 2 --dist loadfile

# mypy --strict on embedder/, gallery/ and service/ (facesearch/typecheck.py says how).
typecheck: install
	$(PY) -m facesearch.typecheck

# The unit level alone: no model is loaded and no server started.
test-fast: install
	$(PY) -m pytest tests/unit

# Modules that bench scripts import, and the report generator: not benchmarks themselves; bench.peer
# needs a second interpreter (PEER_PYTHON).
BENCH_HELPERS := bench/__init__.py bench/common.py bench/report.py bench/charts.py bench/soak.py bench/milvus_server.py bench/peer.py
BENCHMARKS := $(subst /,.,$(basename $(filter-out $(BENCH_HELPERS),$(sort $(wildcard bench/*.py)))))

bench: install ghz
	@set -e; for m in $(BENCHMARKS); do echo "== python -m $$m"; $(PY) -m $$m; done
	@if [ -n "$(PEER_PYTHON)" ]; then echo "== python -m bench.peer"; $(PY) -m bench.peer --peer-python "$(PEER_PYTHON)"; \
	else echo "== bench.peer skipped: PEER_PYTHON=path of a python with face_recognition (python -m bench.peer --help)"; fi
	$(PY) -m bench.report

# Extra flags: make loadtest LOADTEST_ARGS="--config bench/ghz/identify_cropped.json -- -n 100 -c 8"
loadtest: install ghz
	$(PY) -m bench.loadtest $(LOADTEST_ARGS)

# The 30-minute soak (bench/soak.py), not part of make bench; make soak SOAK_ARGS="--minutes 5" for a shorter one.
soak: install
	$(PY) -m bench.soak $(SOAK_ARGS)
