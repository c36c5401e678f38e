# Every target creates .venv on first use, so a fresh clone needs only Python 3.11+.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-dev
STAMP_RUN := $(VENV)/.installed

.PHONY: demo test lint bench bench-all docs clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(STAMP_RUN): $(BIN)/python setup.cfg pyproject.toml
	$(BIN)/python -m pip install -q -e .
	touch $@

$(STAMP): $(BIN)/python setup.cfg pyproject.toml
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $@ $(STAMP_RUN)

demo: $(STAMP_RUN)
	$(BIN)/python examples/backtest.py

lint: $(STAMP)
	$(BIN)/ruff check rangememo tests examples benchmarks
	$(BIN)/ruff format --check rangememo tests examples benchmarks
	$(BIN)/mypy rangememo
	$(BIN)/mypy --strict examples
	$(BIN)/pyright examples

# Two workers, one per core of the CI machine; a test file stays on one worker (its
# module fixtures, its SeaweedFS server). TEST_WORKERS=0 runs the suite in one process.
TEST_WORKERS ?= 2
test: lint
	$(BIN)/python -m pytest -m "not slow" -n $(TEST_WORKERS) --dist loadfile --durations=25 --cov=rangememo --cov-branch --cov-report=term tests

# The documentation site, built as CI would: any warning (a broken link, a
# docstring mkdocstrings cannot parse, a page missing from the nav) fails it.
SITE ?= site
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --site-dir $(SITE)

bench: $(STAMP)
	$(BIN)/python benchmarks/run.py

clean:
	rm -rf $(VENV) site .pytest_cache .mypy_cache .ruff_cache .coverage*
