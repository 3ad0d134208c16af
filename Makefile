# svomflow: `make demo` and `make test` work on a fresh machine with Python 3.11.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export SVOMFLOW_HOME ?= $(CURDIR)/.svomflow
export PREFECT_HOME ?= $(SVOMFLOW_HOME)/prefect
export PREFECT_SERVER_ANALYTICS_ENABLED ?= false

.PHONY: help venv install demo test test-all lint format typecheck bench clean

help:
	@echo "make demo   - set up .venv, simulate a GRB, run the VHF quick analysis in Prefect"
	@echo "make test   - set up .venv if needed and run the test suite"
	@echo "make bench  - speed and memory benchmarks against the peers (ratios)"
	@echo "make lint   - ruff check and format check;  make typecheck - mypy"

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip "setuptools>=77" wheel
	$(BIN)/python -m pip install --quiet -e '.[test,dask,notebooks,bench]' --config-settings editable_mode=strict
	touch $(STAMP)

venv: $(STAMP)

# The strict editable install links files, not folders: relink so new modules are seen.
install: $(STAMP)
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e . --config-settings editable_mode=strict

demo: install
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

bench: install
	@mkdir -p "$(PREFECT_HOME)"
	$(BIN)/python -m benchmarks

clean:
	rm -rf build dist *.egg-info .pytest_cache .ruff_cache .mypy_cache
