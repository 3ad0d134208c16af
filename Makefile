# svomflow: `make demo` and `make test` work on a fresh machine with Python 3.11.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The home every svomflow command run in this folder finds too (nearest .svomflow; see
# docs/operations.md), so `make demo` and a later `svomflow products list` agree.
export SVOMFLOW_HOME ?= $(CURDIR)/.svomflow
export PREFECT_HOME ?= $(SVOMFLOW_HOME)/prefect
export PREFECT_SERVER_ANALYTICS_ENABLED ?= false

.PHONY: help venv install warm demo test test-all lint format typecheck bench strip-notebooks clean

help:
	@echo "make demo   - set up .venv, simulate a GRB, run the VHF quick analysis in Prefect"
	@echo "make test   - set up .venv if needed and run the test suite"
	@echo "make bench  - speed and memory benchmarks against the peers (ratios, docs/bench.md)"
	@echo "make warm   - compile the numba kernels and fill the array cache (venv/demo/bench do it)"
	@echo "make lint   - ruff check and format check;  make typecheck - mypy"

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip "setuptools>=77" wheel
	$(BIN)/python -m pip install --quiet -e '.[test,dask,notebooks,bench]' --config-settings editable_mode=strict
	touch $(STAMP)

venv: $(STAMP)
	@$(MAKE) --no-print-directory warm

# The strict editable install links files, not folders: relink so new modules are seen.
install: $(STAMP)
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e . --config-settings editable_mode=strict

# A fresh process loads the kernels from the cache instead of compiling them (about 5 s of
# CPU for the VHF flow), and the arrays derived from calibration from the array cache.
# `svomflow warm --stamp` lists in the stamp the sources the warmed caches were built from
# (kernel modules, the modules the array cache's versions digest, the two cache modules):
# warmed again when one of them changes (numba and the array cache drop stale entries).
WARM_STAMP := $(SVOMFLOW_HOME)/numba_cache/.warm-sources
WARM_SOURCES := $(wildcard $(shell cat "$(WARM_STAMP)" 2>/dev/null))

$(WARM_STAMP): $(STAMP) $(WARM_SOURCES)
	@mkdir -p "$(PREFECT_HOME)"
	$(BIN)/svomflow warm --stamp $@

warm: install
	@$(MAKE) --no-print-directory $(WARM_STAMP)

demo: install warm
	@mkdir -p "$(PREFECT_HOME)"  # Prefect makes its home without parents
	$(BIN)/svomflow demo

test: install
	@mkdir -p "$(PREFECT_HOME)"
	$(BIN)/python -m pytest

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

typecheck: install
	$(BIN)/mypy -p svomflow

bench: install warm
	@mkdir -p "$(PREFECT_HOME)"
	$(BIN)/python -m benchmarks

# committed notebooks keep no outputs (tests/notebooks fails otherwise)
strip-notebooks: install
	$(BIN)/python -c 'import nbformat, sys; nbs = {p: nbformat.read(p, as_version=4) for p in sys.argv[1:]}; [c.update(outputs=[], execution_count=None) for nb in nbs.values() for c in nb.cells if c.cell_type == "code"]; [nbformat.write(nb, p) for p, nb in nbs.items()]' notebooks/*.ipynb

clean:
	rm -rf build dist *.egg-info .pytest_cache .ruff_cache .mypy_cache
