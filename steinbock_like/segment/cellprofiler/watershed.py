"""Marker-based watershed with the flooding order of CellProfiler 4.2's declumping.

CellProfiler 4.2 splits clumped objects with ``skimage.segmentation.watershed`` and pins
scikit-image 0.18.3. Later scikit-image releases order the flooding of equal values
differently, which moves pixels on boundaries between touching objects. This module floods in
the 0.18.3 order on its own, so the result does not depend on the installed scikit-image:

- a binary min-heap of (value, age) entries, compared by value, then age; markers enter
  with age 0 in row-major order, every later entry with a new, increasing age;
- popping moves the last entry to the root and sifts it down, choosing the left child over
  the right one on ties; pushing sifts up while strictly smaller than the parent (the exact
  heap shape matters: markers of equal value pop in the order this heap gives them);
- a pixel takes its label when it is pushed, from the pixel that pushed it;
- the eight neighbours are visited edge-neighbours first (up, left, right, down), then the
  diagonals (up-left, up-right, down-left, down-right).

The kernel is compiled with numba.
"""

from __future__ import annotations

import numba
import numpy as np

# (dy, dx) of the eight neighbours in visiting order
NEIGHBOUR_DY = np.array([-1, 0, 0, 1, -1, -1, 1, 1], np.int64)
NEIGHBOUR_DX = np.array([0, -1, 1, 0, -1, 1, -1, 1], np.int64)


@numba.njit(cache=True, nogil=True)
def _smaller(values, ages, a, b):
    if values[a] != values[b]:
        return values[a] < values[b]
    return ages[a] < ages[b]


@numba.njit(cache=True, nogil=True)
def _swap(values, ages, positions, a, b):
    values[a], values[b] = values[b], values[a]
    ages[a], ages[b] = ages[b], ages[a]
    positions[a], positions[b] = positions[b], positions[a]


@numba.njit(cache=True, nogil=True)
def _push(values, ages, positions, count, value, age, position):
    child = count
    values[child] = value
    ages[child] = age
    positions[child] = position
    while child > 0:
        parent = (child + 1) // 2 - 1
        if _smaller(values, ages, child, parent):
            _swap(values, ages, positions, parent, child)
            child = parent
        else:
            break
    return count + 1


@numba.njit(cache=True, nogil=True)
def _pop(values, ages, positions, count):
    """Remove the root; return (its position, the new count)."""
    top = positions[0]
    count -= 1
    if count == 0:
        return top, count
    _swap(values, ages, positions, 0, count)
    i = 0
    while True:
        left = 2 * i + 1
        right = left + 1
        smallest = i
        if left < count:
            if _smaller(values, ages, left, i):
                smallest = left
            if right < count and _smaller(values, ages, right, smallest):
                smallest = right
        else:
            break
        if smallest == i:
            break
        _swap(values, ages, positions, i, smallest)
        i = smallest
    return top, count


@numba.njit(cache=True, nogil=True)
def _flood(image, output, mask, dy, dx):
    height, width = image.shape
    flat_image = image.ravel()
    flat_output = output.ravel()
    flat_mask = mask.ravel()
    capacity = 0
    for index in range(flat_output.size):
        if flat_output[index] != 0 or flat_mask[index]:
            capacity += 1
    values = np.empty(capacity, np.float64)
    ages = np.empty(capacity, np.int64)
    positions = np.empty(capacity, np.int64)
    count = 0
    for index in range(flat_output.size):
        if flat_output[index] != 0:
            count = _push(values, ages, positions, count, flat_image[index], 0, index)
    age = 1
    while count > 0:
        index, count = _pop(values, ages, positions, count)
        y = index // width
        x = index - y * width
        label = flat_output[index]
        for k in range(dy.size):
            ny = y + dy[k]
            nx = x + dx[k]
            if ny < 0 or ny >= height or nx < 0 or nx >= width:
                continue
            neighbour = ny * width + nx
            if not flat_mask[neighbour] or flat_output[neighbour] != 0:
                continue
            age += 1
            flat_output[neighbour] = label
            count = _push(values, ages, positions, count, flat_image[neighbour], age, neighbour)
    return output


def watershed(image: np.ndarray, markers: np.ndarray, mask: np.ndarray | None = None):
    """Flood ``image`` from ``markers`` inside ``mask`` (8-connected, lowest values first).

    Parameters
    ----------
    image : ndarray, shape (Y, X)
        The landscape; converted to float64 (as scikit-image does), so float32 input keeps
        its exact values.
    markers : ndarray of int, shape (Y, X)
        Nonzero seeds; their values become the labels. Markers outside ``mask`` are dropped.
    mask : ndarray of bool, shape (Y, X), optional
        Pixels that may be labelled; everywhere when None.

    Returns
    -------
    ndarray of int32, shape (Y, X)
        Labels; 0 outside the mask and where no marker reaches.
    """
    image = np.asarray(image)
    if image.ndim != 2 or markers.shape != image.shape:
        raise ValueError(
            f"image and markers must be 2-D of one shape, got {image.shape} and {markers.shape}"
        )
    if mask is None:
        mask = np.ones(image.shape, bool)
    elif mask.shape != image.shape:
        raise ValueError(f"mask shape {mask.shape} differs from image shape {image.shape}")
    mask = np.ascontiguousarray(mask, dtype=bool)
    output = np.ascontiguousarray(np.where(mask, markers, 0), dtype=np.int32)
    values = np.ascontiguousarray(image, dtype=np.float64)
    return _flood(values, output, mask, NEIGHBOUR_DY, NEIGHBOUR_DX)
