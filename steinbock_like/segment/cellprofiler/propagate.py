"""Propagation of labels over an image, in the order of CellProfiler's ``propagate``.

IdentifySecondaryObjects (method Propagation) and IdentifyPrimaryObjects (dividing lines by
Propagate) grow seed labels into a mask by the algorithm of Jones, Carpenter and Golland
(2005) as centrosome implements it. This module computes the same labels and distances
without centrosome:

- the step cost from pixel p to an 8-neighbour q is
  ``sqrt(d * d + manhattan(p, q) * weight * weight)``, where ``d`` sums
  ``|image[p + o] - image[q + o]|`` over the 3 x 3 offsets o (row by row; coordinates beyond
  the image are clamped to its edge);
- entries of the priority queue are compared as five signed 32-bit integers: the upper word
  of the distance's IEEE bits, its lower word shifted right by one bit (so distances that
  differ only in the last bit tie), then label, row and column;
- the queue starts as the seed pixels in row-major order *without* being heap-ordered (a
  binary heap that pops its root, moves the last entry up and sifts it down, preferring the
  left child on ties) so the first pops follow that unordered array;
- a pixel is labelled when it is popped while still unlabelled; a neighbour is pushed when it
  has no distance yet or a larger one.

The kernel is compiled with numba.
"""

from __future__ import annotations

import math

import numba
import numpy as np

# (dy, dx) of the eight neighbours in visiting order
NEIGHBOUR_DY = np.array([-1, -1, -1, 0, 0, 1, 1, 1], np.int64)
NEIGHBOUR_DX = np.array([-1, 0, 1, -1, 1, -1, 0, 1], np.int64)
FIELDS = 5  # distance high word, distance low word >> 1, label, row, column


@numba.njit(cache=True, nogil=True)
def _smaller(heap, a, b):
    for k in range(FIELDS):
        if heap[a, k] != heap[b, k]:
            return heap[a, k] < heap[b, k]
    return False


@numba.njit(cache=True, nogil=True)
def _swap(heap, a, b):
    for k in range(FIELDS):
        heap[a, k], heap[b, k] = heap[b, k], heap[a, k]


@numba.njit(cache=True, nogil=True)
def _push(heap, count, entry):
    if count == heap.shape[0]:
        grown = np.empty((2 * heap.shape[0], FIELDS), heap.dtype)
        grown[:count] = heap[:count]
        heap = grown
    child = count
    for k in range(FIELDS):
        heap[child, k] = entry[k]
    while child > 0:
        parent = (child + 1) // 2 - 1
        if _smaller(heap, child, parent):
            _swap(heap, parent, child)
            child = parent
        else:
            break
    return heap, count + 1


@numba.njit(cache=True, nogil=True)
def _pop(heap, count, entry):
    for k in range(FIELDS):
        entry[k] = heap[0, k]
    count -= 1
    if count == 0:
        return count
    _swap(heap, 0, count)
    i = 0
    while True:
        left = 2 * i + 1
        right = left + 1
        smallest = i
        if left < count:
            if _smaller(heap, left, i):
                smallest = left
            if right < count and _smaller(heap, right, smallest):
                smallest = right
        else:
            break
        if smallest == i:
            break
        _swap(heap, i, smallest)
        i = smallest
    return count


@numba.njit(cache=True, nogil=True)
def _clamped(image, y, x):
    height, width = image.shape
    y = min(max(y, 0), height - 1)
    x = min(max(x, 0), width - 1)
    return image[y, x]


@numba.njit(cache=True, nogil=True)
def _step(image, y1, x1, y2, x2, weight):
    difference = 0.0
    for oy in range(-1, 2):
        for ox in range(-1, 2):
            v1 = _clamped(image, y1 + oy, x1 + ox)
            v2 = _clamped(image, y2 + oy, x2 + ox)
            if v1 > v2:
                difference += v1 - v2
            else:
                difference += v2 - v1
    manhattan = float(abs(y1 - y2) + abs(x1 - x2))
    return math.sqrt(difference * difference + manhattan * weight * weight)


@numba.njit(cache=True, nogil=True)
def _split(bits):
    """The two signed integers a double's IEEE bits are compared as."""
    high = (bits >> np.uint64(32)) & np.uint64(0xFFFFFFFF)
    low = bits & np.uint64(0xFFFFFFFF)
    if high & np.uint64(0x80000000):
        return -np.int64(high & np.uint64(0x7FFFFFFF)), -np.int64(low >> np.uint64(1))
    return np.int64(high), np.int64(low >> np.uint64(1))


@numba.njit(cache=True, nogil=True)
def _propagate(image, heap, count, mask, labels, distances, weight, dy, dx):
    height, width = image.shape
    entry = np.empty(FIELDS, np.int64)
    new_entry = np.empty(FIELDS, np.int64)
    scratch = np.empty(1, np.float64)
    scratch_bits = scratch.view(np.uint64)
    while count > 0:
        count = _pop(heap, count, entry)
        y1 = entry[3]
        x1 = entry[4]
        if labels[y1, x1] != 0:
            continue
        label = entry[2]
        labels[y1, x1] = label
        d0 = distances[y1, x1]
        for k in range(dy.size):
            y2 = y1 + dy[k]
            x2 = x1 + dx[k]
            if y2 < 0 or y2 >= height or x2 < 0 or x2 >= width:
                continue
            if labels[y2, x2] > 0 or not mask[y2, x2]:
                continue
            d = _step(image, y1, x1, y2, x2, weight) + d0
            if distances[y2, x2] == -1 or distances[y2, x2] > d:
                distances[y2, x2] = d
                scratch[0] = d
                high, low = _split(scratch_bits[0])
                new_entry[0] = high
                new_entry[1] = low
                new_entry[2] = label
                new_entry[3] = y2
                new_entry[4] = x2
                heap, count = _push(heap, count, new_entry)
    return labels, distances


def propagate(image: np.ndarray, labels: np.ndarray, mask: np.ndarray, weight: float):
    """Grow ``labels`` into ``mask`` along the image-weighted shortest paths.

    Parameters
    ----------
    image : ndarray, shape (Y, X)
        Heights for the step cost (converted to float64).
    labels : ndarray of int, shape (Y, X)
        Seeds (> 0).
    mask : ndarray of bool, shape (Y, X)
        Pixels that may be labelled.
    weight : float
        Weight of the spatial distance against the image differences (CellProfiler's
        regularization factor).

    Returns
    -------
    labels : ndarray of int32, shape (Y, X)
        Grown labels; the seeds keep their labels even outside the mask.
    distances : ndarray of float64, shape (Y, X)
        Path cost to each labelled pixel; 0 at seeds, -1 where never reached.
    """
    if image.ndim != 2 or image.shape != labels.shape or image.shape != mask.shape:
        raise ValueError(
            f"image, labels and mask must be 2-D of one shape, got {image.shape}, "
            f"{labels.shape} and {mask.shape}"
        )
    labels = np.asarray(labels)
    mask = np.ascontiguousarray(mask, dtype=bool)
    seeds = (labels != 0) & mask
    rows, columns = np.nonzero(seeds)
    count = rows.size
    heap = np.zeros((max(count, 1000), FIELDS), np.int64)
    heap[:count, 2] = labels[seeds].astype(np.int32)
    heap[:count, 3] = rows
    heap[:count, 4] = columns
    labels_out = np.zeros(labels.shape, np.int32)
    distances = np.full(labels.shape, -1.0)
    distances[labels > 0] = 0
    _propagate(
        np.ascontiguousarray(image, dtype=np.float64),
        heap,
        count,
        mask,
        labels_out,
        distances,
        float(weight),
        NEIGHBOUR_DY,
        NEIGHBOUR_DX,
    )
    labels_out[labels > 0] = labels[labels > 0]
    return labels_out, distances
