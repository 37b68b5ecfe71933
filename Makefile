# Two commands set everything up on a fresh machine: `make demo` and `make test`.
# Each creates .venv, installs the pinned stack (torch from the CPU wheel), then runs.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | sha256sum | cut -c1-12)
BENCH ?=
OUT ?= demo-report

.PHONY: install install-bench test lint typecheck unit demo bench clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV) || python3 -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check torch==2.13.0
	$(BIN)/python -m pip install -q --disable-pip-version-check -e '.[dev,mlflow,ray]'
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

# Optional benchmark references (d3rlpy for bench_cql); `make bench` runs without them.
install-bench: $(STAMP)
	$(BIN)/python -m pip install -q --disable-pip-version-check -e '.[bench]'

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/python -m pytest

test: lint typecheck unit

demo: $(STAMP)
	$(BIN)/rlops demo --out $(OUT)

bench: $(STAMP)
	@command -v wrk >/dev/null 2>&1 || apt-get install -y -q wrk >/dev/null 2>&1 || echo "wrk is not installed: the server benchmark will say so"
	$(BIN)/python benchmarks/run.py $(BENCH)

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache build src/*.egg-info
