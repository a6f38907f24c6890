#!/usr/bin/env bash
# The main job end to end on a synthetic example dataset, from nothing.
# Usage: scripts/demo.sh [DIR]   (default: demo_data/)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_venv.sh test,mesmer
venv="${STEINBOCK_LIKE_VENV:-.venv}"
data="${1:-demo_data}"
run() { echo "\$ steinbock-like $*"; "$venv/bin/steinbock-like" "$@"; }
run example imc "$data" --images 3 --size 256 --seed 0
run --data "$data" check --masks masks_truth --masks masks_truth_nuclei
echo "== demo finished: outputs in $data/"
