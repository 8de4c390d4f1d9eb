#!/bin/sh
# Regenerate the hashed lock files the images install from (pip --require-hashes):
#   sh deploy/lock.sh
# Needs pip-tools (pip install pip-tools==7.6.2) and PyPI. Run it after any change of a
# pin in pyproject.toml or deploy/*.in; tests/deploy/test_supply_chain.py checks that the
# locks pin what pyproject.toml pins. Targets the images' Python, 3.11 on Linux: hashes of
# every file of each pinned version are listed, so the lock works for any platform.
set -eu
cd "$(dirname "$0")/.."
compile() {
    PIP_CONFIG_FILE=/dev/null PIP_FIND_LINKS= PIP_CONSTRAINT= pip-compile --quiet \
        --generate-hashes --allow-unsafe --strip-extras --no-emit-find-links \
        --no-emit-index-url --index-url https://pypi.org/simple "$@"
}
compile --output-file deploy/requirements.lock pyproject.toml deploy/requirements.in
compile --output-file deploy/mlflow/requirements.lock deploy/mlflow/requirements.in
