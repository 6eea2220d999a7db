# One entry point for people and CI. `make help` lists the targets.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PY := $(BIN)/python

.PHONY: help install run test check bench clean

help:
	@echo "make install  create $(VENV) (torch==2.13.0 first, then feedlab and dev tools)"
	@echo "make run      demo: SQLite + generated data + the experiment's models, then serve it on :8000"
	@echo "make test     the test suite (needs PostgreSQL on 127.0.0.1:5432)"
	@echo "make check    ruff, ruff format --check, mypy"
	@echo "make bench    benchmarks -> BENCHMARKS.md and bench/out/*.json"

install: $(VENV)/.installed

# torch is pinned exactly and installed first: a looser range pulls a multi-GB CUDA build.
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

run: install
	$(BIN)/feedlab up

test: install
	$(PY) -m pytest

check: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy .

bench: install
	$(PY) -m bench

clean:
	rm -rf $(VENV) build *.egg-info .mypy_cache .ruff_cache .pytest_cache
