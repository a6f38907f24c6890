#!/usr/bin/env bash
# The whole test suite from nothing: virtual environment, packages, lint, tests.
# Usage: scripts/test.sh [PYTEST ARGS]
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_venv.sh test,mesmer
venv="${STEINBOCK_LIKE_VENV:-.venv}"
echo "== ruff format --check and ruff check"
"$venv/bin/ruff" format --check .
"$venv/bin/ruff" check .
echo "== pytest"
"$venv/bin/python" -m pytest "$@"
