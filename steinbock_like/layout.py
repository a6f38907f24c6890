"""The conventional directory layout, named in one place.

Every command takes its default paths from here; relative paths are resolved
against the global ``--data`` directory (the working directory by default,
``/data`` in the container).
"""

from pathlib import Path

PANEL = "panel.csv"
IMAGES_CSV = "images.csv"
IMG = "img"
ILASTIK_IMG = "ilastik_img"
ILASTIK_CROPS = "ilastik_crops"
ILASTIK_PROJECT = "pixel_classifier.ilp"
ILASTIK_PROBABILITIES = "ilastik_probabilities"
CELLPROFILER_PIPELINE = "cell_segmentation.cppipe"
MASKS = "masks"
MASKS_NUCLEI = "masks_nuclei"
MASKS_MATCHED = "masks_matched"
MASKS_MATCHED_NUCLEI = "masks_matched_nuclei"
MASKS_CYTOPLASM = "masks_cytoplasm"
REPAIR_METRICS = "repair_metrics.csv"
MASKS_TRUTH = "masks_truth"
MASKS_TRUTH_NUCLEI = "masks_truth_nuclei"
INTENSITIES = "intensities"
REGIONPROPS = "regionprops"
NEIGHBORS = "neighbors"
RUN_METADATA = "run_metadata.json"
RAW = "raw"
RAW_PANEL = "raw/panel.csv"
EXTERNAL = "external"

CONTAINER_DATA_DIR = "/data"

IMAGE_SUFFIXES = (".tiff", ".tif")
MASK_SUFFIX = ".tiff"


def resolve(data_dir: Path, path: str | Path) -> Path:
    """Return ``path`` rooted at ``data_dir`` unless it is absolute."""
    path = Path(path)
    return path if path.is_absolute() else Path(data_dir) / path


# export (steinbock's default output names)
GRAPHS = "graphs"
OME = "ome"
HISTOCAT = "histocat"
OME_ZARR = "ome_zarr"
SPATIALDATA = "spatialdata.zarr"
CELLS_CSV = "cells.csv"
CELLS_HEATMAP = "cells_heatmap.png"
