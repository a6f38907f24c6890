#!/usr/bin/env bash
# Create (or update) the project's virtual environment from nothing.
# Usage: scripts/setup_venv.sh [EXTRAS]   e.g. scripts/setup_venv.sh test,mesmer
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-test}"
python="${PYTHON:-}"
if [ -z "$python" ]; then
  for candidate in python3.11 python3.12 python3.10 python3; do
    if command -v "$candidate" >/dev/null 2>&1; then python="$candidate"; break; fi
  done
fi
[ -n "$python" ] || { echo "error: no python3 (>= 3.10) found on PATH" >&2; exit 1; }
venv="${STEINBOCK_LIKE_VENV:-.venv}"
if [ ! -x "$venv/bin/python" ]; then
  echo "== creating virtual environment $venv with $($python --version)"
  "$python" -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --upgrade pip
fi
# torch must be the CPU build on disk: install it before anything that pulls it in.
if [[ ",$extras," == *",cellpose,"* || ",$extras," == *",all,"* ]]; then
  "$venv/bin/python" -m pip install --quiet -c scripts/constraints.txt "torch==2.13.0"
fi
echo "== installing steinbock-like[$extras]"
# The same constraints whatever the extras (scripts/constraints.txt): an environment made
# for the demo is not downgraded when the tests add their extras to it.
"$venv/bin/python" -m pip install --quiet -c scripts/constraints.txt -e ".[$extras]"
