"""Segmenting a large image block by block: each cell kept by the block holding its centre."""

from __future__ import annotations

import logging
from collections.abc import Callable

import numpy as np

logger = logging.getLogger(__name__)


def normalize_percentiles(channels: np.ndarray, low: float = 1.0, high: float = 99.0) -> np.ndarray:
    """Stretch each channel so that its ``low`` and ``high`` percentiles become 0 and 1.

    This is Cellpose's own input normalisation, done once for a whole image so
    that every block of it is scaled alike. A channel whose percentiles
    (nearly) coincide becomes zeros, as in Cellpose.

    Parameters
    ----------
    channels : ndarray, shape (C, Y, X)

    Returns
    -------
    ndarray of float32, shape (C, Y, X)
    """
    out = np.empty(channels.shape, dtype=np.float32)
    for index, channel in enumerate(channels):
        lo, hi = np.percentile(channel, [low, high])
        if hi - lo > 1e-3:
            np.subtract(channel, np.float32(lo), out=out[index], casting="unsafe")
            out[index] /= np.float32(hi - lo)
        else:
            out[index] = 0.0
    return out


def block_ranges(length: int, block_size: int, overlap: int) -> list[tuple[slice, slice]]:
    """Cut an axis into blocks: (core, core widened by ``overlap`` on both sides) each."""
    ranges = []
    for start in range(0, length, block_size):
        stop = min(length, start + block_size)
        ranges.append(
            (slice(start, stop), slice(max(0, start - overlap), min(length, stop + overlap)))
        )
    return ranges


def segment_in_blocks(
    channels: np.ndarray,
    segment: Callable[[np.ndarray], np.ndarray],
    *,
    block_size: int = 2048,
    overlap: int = 64,
) -> np.ndarray:
    """Segment a large image block by block, so that memory depends on the block size.

    Every block is segmented with ``overlap`` px of context on each side; an
    object is kept by the block whose core holds its centre, so each object is
    kept once and, where it is smaller than the overlap, seen whole. Objects
    are pasted only onto background, so neighbours from two blocks never
    overwrite each other. Channels are normalised once for the whole image
    (:func:`normalize_percentiles`) and ``segment`` must not normalise again.

    Parameters
    ----------
    channels : ndarray, shape (C, Y, X)
    segment : callable
        ``segment(block_channels) -> labels`` of the block's (Y, X) shape.
    block_size : int
        Core block side (px); an image no larger than this in both axes is
        segmented in one piece (0 = always one piece).
    overlap : int
        Context (px) on each side of a block; should exceed the largest
        object's diameter.

    Returns
    -------
    ndarray of uint32, shape (Y, X)
        Objects numbered 1..n.
    """
    channels = np.asarray(channels)
    height, width = channels.shape[1:]
    normalized = normalize_percentiles(channels)
    if block_size <= 0 or (height <= block_size and width <= block_size):
        return np.asarray(segment(normalized)).astype(np.uint32, copy=False)
    labels = np.zeros((height, width), dtype=np.uint32)
    next_id = 1
    for rows, padded_rows in block_ranges(height, block_size, overlap):
        for cols, padded_cols in block_ranges(width, block_size, overlap):
            block = np.asarray(segment(normalized[:, padded_rows, padded_cols]))
            keep = _centred_in_core(block, rows, padded_rows, cols, padded_cols)
            new_ids = np.zeros(keep.size, dtype=np.uint32)
            new_ids[keep] = np.arange(next_id, next_id + int(keep.sum()), dtype=np.uint32)
            next_id += int(keep.sum())
            relabelled = new_ids[block]
            target = labels[padded_rows, padded_cols]
            free = (relabelled > 0) & (target == 0)
            target[free] = relabelled[free]
    return labels


def _centred_in_core(block, rows, padded_rows, cols, padded_cols) -> np.ndarray:
    """Per block label: whether the object's centre lies in the block's core."""
    flat = block.ravel().astype(np.int64, copy=False)
    area = np.bincount(flat)
    y, x = np.indices(block.shape, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        centre_y = np.bincount(flat, weights=y.ravel(), minlength=area.size) / area
        centre_x = np.bincount(flat, weights=x.ravel(), minlength=area.size) / area
    centre_y += padded_rows.start
    centre_x += padded_cols.start
    keep = (
        (centre_y >= rows.start)
        & (centre_y < rows.stop)
        & (centre_x >= cols.start)
        & (centre_x < cols.stop)
    )
    keep[0] = False
    return keep
