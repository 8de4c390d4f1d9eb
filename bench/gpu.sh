#!/usr/bin/env bash
# GPU figures of the trainer (bench/gpu.py). On a GPU machine: `bash bench/gpu.sh`;
# anywhere: `bash bench/gpu.sh --smoke` (tiny sizes, CPU allowed).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
[ -x "$PY" ] || PY=python3
exec "$PY" bench/gpu.py "$@"
