# Quick start: `make demo`, then `make test`. Everything installs into .venv from this repo's files.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip --disable-pip-version-check -q
DEMO_OUT ?= out/demo

.PHONY: demo test lint bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# Stamps: reinstall only when the project's dependency files change.
$(VENV)/.installed: $(BIN)/python pyproject.toml constraints.txt
	$(PIP) install -c constraints.txt -e .
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed
	$(PIP) install -c constraints.txt -e '.[dev]'
	touch $@

# The demo runs against the embedded local server: no key, no network. It starts fresh
# each time so that every step shows; a real OUT resumes instead.
demo: $(VENV)/.installed
	$(BIN)/batchgen validate jobs/demo.yaml
	rm -rf $(DEMO_OUT)
	$(BIN)/batchgen run jobs/demo.yaml --local -o $(DEMO_OUT) --no-progress

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check batchgen tests bench
	$(BIN)/mypy --strict batchgen

test: lint
	$(BIN)/python -m pytest -q

# Benchmarks beside the anchors (bench/runner.py); not part of `make test`.
# BENCH_ARGS=--quick for the one-to-two-minute version.
bench: $(VENV)/.installed-dev
	$(BIN)/python -m bench $(BENCH_ARGS)

clean:
	rm -rf $(VENV) out .mypy_cache .ruff_cache .pytest_cache
