#!/usr/bin/env bash
# The whole test suite from nothing: virtual environment, packages, lint, tests.
# Usage: scripts/test.sh [PYTEST ARGS]
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_venv.sh test,mesmer,cellpose,export,instanseg,docs
venv="${STEINBOCK_LIKE_VENV:-.venv}"
# Real external tools for the tests that compare with them (each skips where absent):
# CellProfiler 4.2.8.1 headless in its own Python 3.9 environment, and the X/VNC stack.
if command -v python3.9 >/dev/null 2>&1; then
  bash scripts/install_cellprofiler.sh || echo "warning: CellProfiler install failed; its tests will skip"
fi
bash scripts/install_apps_test_deps.sh "$venv"
echo "== ruff format --check and ruff check"
"$venv/bin/ruff" format --check .
"$venv/bin/ruff" check .
echo "== pytest"
"$venv/bin/python" -m pytest "$@"
