"""The order in which CellProfiler numbers objects, as keys that survive tiling.

IdentifyPrimaryObjects numbers its objects by their seeds (declumping maxima, or the
thresholded components when it does not declump), in the raster order of each seed's
first pixel; filtering and relabelling keep that order, and secondary objects take the
numbers of their primary objects. A tiled run (:mod:`.tiled`) keeps each object's seed
position so that the stitched objects are numbered as the whole-image run numbers them.
"""

from __future__ import annotations

import numpy as np
import scipy.ndimage


def first_pixels(seeds: np.ndarray) -> np.ndarray:
    """Per seed label (index 0 unused: -1), the raster index of its first pixel."""
    boxes = scipy.ndimage.find_objects(seeds)
    first = np.full(len(boxes) + 1, -1, np.int64)
    width = seeds.shape[1]
    for index, box in enumerate(boxes, start=1):
        if box is not None:
            row, cols = box[0].start, box[1]
            column = cols.start + int(np.argmax(seeds[row, cols] == index))
            first[index] = row * width + column
    return first


def seed_order(seeds: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Seed positions of the objects of ``labels`` once relabelled 1..N (index 0: -1).

    ``labels`` carry the numbers of their ``seeds`` (objects may have been removed).
    """
    present = np.flatnonzero(np.bincount(labels.ravel(), minlength=1)[1:]) + 1
    first = first_pixels(seeds)
    order = np.full(present.size + 1, -1, np.int64)
    order[1:] = first[present]
    return order
