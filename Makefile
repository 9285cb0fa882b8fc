# lienthong: `make demo` and `make test` set up what they need on a fresh machine (Python 3.11+, Java 17+).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: install jars demo test unit integration chaos lint clean bench bench-audit bench-dossiers

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "lienthong needs Python 3.11 or newer")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	@touch $(STAMP)

install: $(STAMP)

## The pinned Kafka jars, from Maven Central, checked against their SHA-256.
jars: install
	$(BIN)/lienthong kafka fetch

## Start a local broker, create sample agencies, exchange a document, print the audit timeline.
demo: jars
	$(BIN)/lienthong demo

## The whole suite: unit tests, then integration tests on a real broker the suite starts and stops.
test: jars
	$(BIN)/pytest

unit: install
	$(BIN)/pytest tests/unit

integration: jars
	$(BIN)/pytest tests/integration tests/interop

## The long chaos run: 50,000 documents, the router killed 10 times (docs/reliability.md).
chaos: jars
	LIENTHONG_CHAOS_DOCS=50000 LIENTHONG_CHAOS_KILLS=10 $(BIN)/pytest tests/integration/test_faults.py -k chaos -s

## Benchmarks on a broker of their own (var/bench-broker, free ports): a table, and bench/results/latest.json.
bench: jars
	$(BIN)/python -m bench $(BENCH_ARGS)

## The audit store: projector rows/s into SQLite and PostgreSQL, and `audit verify` rows/s.
bench-audit: jars
	$(BIN)/python -m bench.audit

## Dossier status events through the router: events/s for batches of 1, 100 and 500, and bench/results/dossiers.json.
bench-dossiers: jars
	$(BIN)/python -m bench.dossiers $(BENCH_ARGS)

lint: install
	$(BIN)/ruff check .
	$(BIN)/mypy

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
