"""Mesmer's deep-watershed post-processing: network maps to labelled objects.

For each compartment the network predicts an *inner distance* map (high at cell
centres) and a pixel-wise *interior* probability (the second of the three
classes). Following deepcell-toolbox 0.12 ``deep_watershed``:

1. smooth the maps with a Gaussian (sigma ``maxima_smooth`` for the distance,
   ``interior_smooth`` for the interior; sigma 0 leaves a map unchanged);
2. markers are the h-maxima of the distance map with ``h = maxima_threshold``
   and a disk of ``radius`` as neighbourhood, labelled with 8-connectivity
   in raster order;
3. marker-based watershed of the negated interior map, restricted to pixels
   whose interior probability exceeds ``interior_threshold`` (no watershed lines);
4. objects smaller than ``small_objects_threshold`` pixels are removed;
5. holes smaller than ``fill_holes_threshold`` pixels are filled (see
   :func:`fill_small_holes`);
6. labels are renumbered 1..n keeping their order.

Masks are finally resized back to the image's pixel size by nearest-neighbour
sampling with OpenCV's convention (source index ``floor(i * src / dst)``), which
deepcell uses for single-compartment masks.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from skimage.measure import euler_number, label
from skimage.morphology import disk, h_maxima
from skimage.segmentation import watershed


@dataclass(frozen=True)
class WatershedParams:
    """Parameters of :func:`deep_watershed` (defaults: Mesmer's whole-cell ones)."""

    maxima_threshold: float = 0.075
    interior_threshold: float = 0.2
    maxima_smooth: float = 0.0
    interior_smooth: float = 2.0
    radius: int = 2
    small_objects_threshold: int = 15
    fill_holes_threshold: int = 15


WHOLE_CELL_PARAMS = WatershedParams(maxima_threshold=0.075)
NUCLEAR_PARAMS = WatershedParams(maxima_threshold=0.1)


def smooth(image: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian smoothing (scipy defaults: reflect border, truncate at 4 sigma)."""
    if sigma <= 0:
        return image
    return ndimage.gaussian_filter(image, sigma)


def find_markers(distance: np.ndarray, h: float, radius: int) -> np.ndarray:
    """Label the h-maxima of ``distance`` (disk neighbourhood) as watershed seeds."""
    if distance.size == 0 or h > float(np.ptp(distance)):
        return np.zeros(distance.shape, dtype=np.int32)
    peaks = h_maxima(distance, h, footprint=disk(radius))
    return label(peaks, connectivity=2).astype(np.int32, copy=False)


def remove_small_labels(labels: np.ndarray, min_size: int) -> np.ndarray:
    """Set objects with fewer than ``min_size`` pixels to background (copy)."""
    labels = np.array(labels, copy=True)
    if min_size <= 0 or labels.max(initial=0) == 0:
        return labels
    sizes = np.bincount(labels.ravel())
    too_small = sizes < min_size
    too_small[0] = False
    labels[too_small[labels]] = 0
    return labels


def fill_small_holes(labels: np.ndarray, max_hole_size: int) -> np.ndarray:
    """Fill small gaps inside objects with the object's label (deepcell's rule).

    Only objects whose Euler number (8-connected object, 4-connected
    background) is below 1, i.e. that enclose a hole, are considered, in
    ascending label order. Within the object's bounding box, every 4-connected
    region of pixels *not* belonging to it with fewer than ``max_hole_size``
    pixels is given the object's label, even where it touches the box edge or
    holds other labels. Later objects see the result of earlier ones.
    """
    output = np.array(labels, copy=True)
    if max_hole_size <= 0:
        return output
    boxes = ndimage.find_objects(labels)
    four_connected = ndimage.generate_binary_structure(2, 1)
    for index, box in enumerate(boxes):
        if box is None:
            continue
        object_id = index + 1
        region = labels[box] == object_id
        if euler_number(region, connectivity=2) >= 1:
            continue
        patch = output[box]
        outside, count = ndimage.label(patch != object_id, structure=four_connected)
        if count == 0:
            continue
        sizes = np.bincount(outside.ravel())
        small = sizes < max_hole_size
        small[0] = False
        patch[small[outside]] = object_id
    return output


def relabel_sequential(labels: np.ndarray) -> np.ndarray:
    """Renumber positive labels 1..n in increasing order of their old values."""
    present = np.unique(labels)
    present = present[present > 0]
    lookup = np.zeros(int(labels.max(initial=0)) + 1, dtype=np.int64)
    lookup[present] = np.arange(1, present.size + 1)
    return lookup[labels]


def deep_watershed(
    distance: np.ndarray, interior: np.ndarray, params: WatershedParams = WHOLE_CELL_PARAMS
) -> np.ndarray:
    """Objects from Mesmer's inner-distance and interior maps (YX, model resolution).

    Parameters
    ----------
    distance : ndarray of float, shape (Y, X)
        Inner-distance prediction (marker source).
    interior : ndarray of float, shape (Y, X)
        Interior-class probability (watershed landscape and mask).
    params : WatershedParams
        Thresholds and sizes; :data:`WHOLE_CELL_PARAMS` or :data:`NUCLEAR_PARAMS`.

    Returns
    -------
    ndarray of int64, shape (Y, X)
        Labels 1..n, 0 = background.
    """
    distance = smooth(distance, params.maxima_smooth)
    interior = smooth(interior, params.interior_smooth)
    markers = find_markers(distance, params.maxima_threshold, params.radius)
    labels = watershed(-interior, markers, mask=interior > params.interior_threshold)
    labels = remove_small_labels(labels, params.small_objects_threshold)
    labels = fill_small_holes(labels, params.fill_holes_threshold)
    return relabel_sequential(labels)


def resize_labels(labels: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Nearest-neighbour resize of a YX label image to ``shape``, OpenCV-style.

    Output pixel ``i`` takes source pixel ``min(floor(i * src / dst), src - 1)``.
    """
    if tuple(labels.shape) == tuple(shape):
        return labels
    rows = _nearest_source_index(labels.shape[0], shape[0])
    cols = _nearest_source_index(labels.shape[1], shape[1])
    return labels[np.ix_(rows, cols)]


def _nearest_source_index(source_size: int, target_size: int) -> np.ndarray:
    scale = source_size / target_size
    index = np.floor(np.arange(target_size) * scale).astype(np.int64)
    return np.minimum(index, source_size - 1)
