# One obvious command per task. `make demo` and `make test` do all their own set-up on a fresh machine:
# virtual environment, Python dependencies, Kafka and registry jars (Maven Central), redis-server.
# The interpreter for the virtual environment (PYTHON=... to choose): the distribution's CPython 3.11 when it has
# one with venv, else python3. Debian builds it with PGO and LTO into a static executable, as the Docker image's
# python:3.11 is; pyenv's default build has neither: the worker ran 10-20 % slower on it (benchmarks/README.md).
ifeq ($(origin PYTHON), undefined)
PYTHON := $(shell for p in /usr/bin/python3.11 python3; do $$p -c 'import sys, ensurepip, venv; sys.exit(sys.version_info < (3, 11))' 2>/dev/null && { echo $$p; exit 0; }; done; echo python3)
endif
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.DEFAULT_GOAL := help
.PHONY: help setup services chromium test test-faults lint unit demo bench clean

help:  ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "}; {printf "  make %-8s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11+ is required (set PYTHON=python3.11)")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

setup: $(STAMP)  ## Virtual environment and dependencies
	@true

services: setup  ## Fetch Kafka/registry jars and install redis-server if missing (no-op when cached)
	$(BIN)/omnichannel stack fetch

chromium:  ## Debian's chromium for the browser tests, if missing (needs root; no-op when present)
	sh scripts/ensure-chromium.sh

lint: setup  ## ruff (lint + format check) and mypy --strict
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

test: services chromium lint  ## The whole test suite against a real Kafka, Schema Registry and Redis
	$(BIN)/pytest

test-faults: services lint  ## The long fault tests (pytest marker `faults`), left out of `make test`
	$(BIN)/pytest -m faults

unit: setup  ## Only the tests that need no broker
	$(BIN)/pytest -m "not integration"

demo: services  ## Bring the backbone up and run the demo
	$(BIN)/omnichannel demo

bench: services  ## Benchmarks (not part of the test run); see benchmarks/README.md
	$(BIN)/python -m benchmarks

clean:  ## Remove the virtual environment and local state (not the download cache)
	rm -rf $(VENV) .omnichannel
