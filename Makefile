# SessionMood: `make run` starts everything on SQLite; `make test` runs the whole suite.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
HOST   ?= 127.0.0.1
PORT   ?= 8000
# Where other machines reach `make run` (printed links, the demo's allowed origin).
PUBLIC_URL ?=

NPM    ?= npm
# npm ci writes node_modules/.package-lock.json: newer than the lockfile once installed.
TRACKER_DEPS := tracker/node_modules/.package-lock.json
WIDGET_DEPS  := tests/e2e/widgets/node_modules/.package-lock.json

.PHONY: run test lint typecheck format unasync bench chromium tracker widgets wrk clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

# Stamp files so an unchanged pyproject.toml does not reinstall every time.
$(VENV)/.run-installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[server]'
	@touch $@

$(VENV)/.dev-installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[dev]'
	@touch $@ $(VENV)/.run-installed

run: $(VENV)/.run-installed
	$(BIN)/sessionmood serve --demo --host $(HOST) --port $(PORT) $(if $(PUBLIC_URL),--public-url $(PUBLIC_URL))

# The tracker's build tools (esbuild, terser, typescript), pinned by tracker/package-lock.json.
$(TRACKER_DEPS): tracker/package-lock.json
	$(NPM) ci --prefix tracker --no-audit --no-fund --loglevel=error

# Real widget libraries for the browser tests, pinned by their lockfile; never committed.
$(WIDGET_DEPS): tests/e2e/widgets/package-lock.json
	$(NPM) ci --prefix tests/e2e/widgets --no-audit --no-fund --loglevel=error

# Rebuild static/tracker.js from tracker/src (commit both; `make test` fails when it is stale).
tracker: $(TRACKER_DEPS)
	node tracker/build.mjs

widgets: $(WIDGET_DEPS)

wrk:
	@command -v wrk >/dev/null || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null; } || \
	  echo "no wrk (apt-get install -y wrk): bench/run.py uses its asyncio load generator"

chromium: $(VENV)/.dev-installed
	@PYTHON=$(BIN)/python bash scripts/ensure-chromium.sh

lint: $(VENV)/.dev-installed
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
	$(BIN)/lint-imports
	$(BIN)/python scripts/unasync.py --check

typecheck: $(VENV)/.dev-installed
	$(BIN)/mypy

format: $(VENV)/.dev-installed
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# Rewrite the sync client tests from the async ones (commit both).
unasync: $(VENV)/.dev-installed
	$(BIN)/python scripts/unasync.py

test: $(VENV)/.dev-installed chromium $(TRACKER_DEPS) $(WIDGET_DEPS) lint typecheck
	$(BIN)/pytest

# Every section of bench/results.md, each harness writing its own: throughput
# and latency (both configurations against the bare app), then the tracker's
# cost to the page in Chromium. wrk is installed with apt where we are root
# (without it bench/run.py falls back to its asyncio load generator and says so).
bench: $(VENV)/.dev-installed chromium $(WIDGET_DEPS) wrk
	$(BIN)/python bench/run.py
	$(BIN)/python bench/tracker_cost.py

clean:
	rm -rf $(VENV) *.egg-info .mypy_cache .ruff_cache .pytest_cache .import_linter_cache tracker/node_modules tests/e2e/widgets/node_modules
