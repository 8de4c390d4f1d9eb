# lessdata: `make demo` and `make test` work on a fresh clone with Python 3.11 and pip.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

export RAY_USAGE_STATS_ENABLED := 0
export MLFLOW_DISABLE_TELEMETRY := true
export PYTHONUNBUFFERED := 1

.PHONY: install demo test lint bench browser clean docs

install: $(STAMP)

# pip (not uv): it reads this machine's local mirrors and the torch cap.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip 2>/dev/null || true
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/lessdata demo

test: $(STAMP)
	$(BIN)/python -m pytest -q tests

lint: $(STAMP)
	$(BIN)/ruff check trainers orchestrator tests bench
	$(BIN)/mypy trainers orchestrator

bench: $(STAMP)
	$(BIN)/python bench/run_all.py

# Headless Chromium and its driver from Debian for tests/ui (nothing is downloaded by the
# tests themselves). Fast when both are there; without apt or root it says so and returns 0,
# and the browser test skips with that reason.
BROWSER_PKGS := chromium chromium-driver fonts-liberation
browser:
	@if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then \
	    chromium --version; \
	elif ! command -v apt-get >/dev/null; then \
	    echo "make browser: no apt-get here; the browser test will skip"; \
	elif [ "$$(id -u)" != 0 ]; then \
	    echo "make browser: apt-get needs root; the browser test will skip"; \
	else \
	    export DEBIAN_FRONTEND=noninteractive; \
	    { apt-get update -qq && apt-get install -y -qq --no-install-recommends $(BROWSER_PKGS) \
	          >/dev/null && chromium --version; } \
	    || echo "make browser: apt-get failed; the browser test will skip"; \
	fi

# docs/reliability.md's bad-input table, from the real output (tests/test_docs.py checks it).
docs: $(STAMP)
	$(BIN)/python -m tests.docs_tables

# Everything the demo and the README's commands make: runs/ (storage, MLflow store,
# reports), mlruns/ (MLflow's artifacts), report/.
clean:
	rm -rf runs mlruns mlruns.db report .pytest_cache
