# lessdata: `make demo` and `make test` work on a fresh clone with Python 3.11 and pip.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

export RAY_USAGE_STATS_ENABLED := 0
export MLFLOW_DISABLE_TELEMETRY := true
export PYTHONUNBUFFERED := 1

.PHONY: install demo test lint bench clean

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

clean:
	rm -rf runs mlruns.db .pytest_cache
