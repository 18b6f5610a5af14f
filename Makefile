# siyu — the two quickstart commands are `make run` and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test test-sqlite test-pg lint bench install clean

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

## Install, create the demo brand and serve console + API on http://127.0.0.1:8000
run: $(STAMP)
	$(BIN)/siyu demo --customers $${SIYU_DEMO_CUSTOMERS:-5000}
	$(BIN)/siyu serve --host 127.0.0.1 --port 8000

## Install everything (Python deps, Chromium, CJK fonts) and run lint + the whole suite on SQLite and PostgreSQL
test: $(STAMP)
	./scripts/system-deps.sh
	./scripts/ensure-postgres.sh
	$(MAKE) --no-print-directory lint
	$(MAKE) --no-print-directory test-sqlite
	$(MAKE) --no-print-directory test-pg

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/mypy
	$(BIN)/lint-imports

test-sqlite: $(STAMP)
	SIYU_TEST_DATABASE=sqlite $(BIN)/python -m pytest -n 2 -q -p no:cacheprovider

test-pg: $(STAMP)
	SIYU_TEST_DATABASE=postgresql $(BIN)/python -m pytest -n 2 -q -p no:cacheprovider -m "not browser"

bench: $(STAMP)
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .siyu .pytest_cache .mypy_cache .ruff_cache
