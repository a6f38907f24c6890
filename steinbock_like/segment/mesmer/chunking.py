"""Segmenting large images chunk by chunk and stitching the labels.

The image is cut into a grid of *cores* that cover it exactly; each chunk is
its core plus a margin on every side (clipped at the image border), segmented
on its own. An object found in a chunk is *owned* by that chunk if the centre
of its bounding box lies in the core; owned objects are copied whole (margin
parts included) into the output, so objects that cross core borders are
neither cut nor duplicated as long as they are smaller than the margin.

Where two chunks disagree slightly about an object near a seam, both versions
can be owned; the later one is dropped if more than ``max_shared_fraction`` of
its pixels are already taken, else it gets only the free pixels.

Memory is bounded by the chunk size (plus the output label images).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Chunk:
    """One chunk: its core and its outer (core + margin) box, both (y0, y1, x0, x1)."""

    core: tuple[int, int, int, int]
    outer: tuple[int, int, int, int]

    @property
    def outer_slices(self) -> tuple[slice, slice]:
        y0, y1, x0, x1 = self.outer
        return slice(y0, y1), slice(x0, x1)


def _axis_cores(size: int, chunk_size: int) -> list[tuple[int, int]]:
    count = max(1, math.ceil(size / chunk_size))
    edges = np.linspace(0, size, count + 1).round().astype(int)
    return [(int(a), int(b)) for a, b in zip(edges[:-1], edges[1:], strict=True)]


def plan_chunks(
    shape: tuple[int, int], chunk_size: int, margin: int, align: int = 1
) -> list[Chunk]:
    """Cores of at most ``chunk_size`` px covering ``shape``, each with a ``margin``.

    Outer boxes start at multiples of ``align`` (the margin grows to reach one),
    so that grid-based steps inside a chunk (CLAHE's 128 px contextual regions)
    line up with the same grid in the whole image.
    """
    if chunk_size < 1 or margin < 0 or align < 1:
        raise ValueError(f"invalid chunk size {chunk_size}, margin {margin} or align {align}")
    height, width = shape
    chunks = []
    for y0, y1 in _axis_cores(height, chunk_size):
        for x0, x1 in _axis_cores(width, chunk_size):
            outer = (max(0, y0 - margin) // align * align, min(height, y1 + margin))
            outer += (max(0, x0 - margin) // align * align, min(width, x1 + margin))
            chunks.append(Chunk((y0, y1, x0, x1), outer))
    return chunks


def owned_objects(labels: np.ndarray, chunk: Chunk) -> list[tuple[int, tuple[slice, slice]]]:
    """(label, bounding box in chunk coordinates) of objects whose box centre is in the core."""
    oy0, _, ox0, _ = chunk.outer
    cy0, cy1, cx0, cx1 = chunk.core
    owned = []
    for index, box in enumerate(ndimage.find_objects(labels)):
        if box is None:
            continue
        centre_y = oy0 + (box[0].start + box[0].stop - 1) / 2
        centre_x = ox0 + (box[1].start + box[1].stop - 1) / 2
        if cy0 <= centre_y < cy1 and cx0 <= centre_x < cx1:
            owned.append((index + 1, box))
    return owned


def stitch_chunk(
    output: np.ndarray,
    labels: np.ndarray,
    chunk: Chunk,
    next_label: int,
    *,
    max_shared_fraction: float = 0.5,
) -> int:
    """Copy the objects that ``chunk`` owns into ``output`` (in place).

    Returns the next free label.
    """
    oy0, _, ox0, _ = chunk.outer
    for object_id, (rows, cols) in owned_objects(labels, chunk):
        pixels = labels[rows, cols] == object_id
        target = output[oy0 + rows.start : oy0 + rows.stop, ox0 + cols.start : ox0 + cols.stop]
        taken = pixels & (target != 0)
        num_taken = int(np.count_nonzero(taken))
        if num_taken > max_shared_fraction * np.count_nonzero(pixels):
            continue
        target[pixels & ~taken] = next_label
        next_label += 1
    return next_label


def segment_in_chunks(
    segment_region: Callable[[tuple[slice, slice]], dict[str, np.ndarray]],
    shape: tuple[int, int],
    *,
    chunk_size: int,
    margin: int,
    align: int = 1,
    label: str = "",
) -> dict[str, np.ndarray]:
    """Run ``segment_region`` on overlapping chunks and stitch its label images.

    Parameters
    ----------
    segment_region : callable
        Takes (row slice, column slice) of the image and returns a dict of label
        images (one per compartment) of that region's shape.
    shape : (int, int)
        Image shape (Y, X).
    chunk_size : int
        Largest core side in pixels.
    margin : int
        Overlap on each side in pixels; should exceed the largest object.
    align : int
        Outer boxes start at multiples of this (see :func:`plan_chunks`).
    label : str
        What the progress lines name (the image).

    Returns
    -------
    dict of str to ndarray of uint32
        Stitched labels, numbered 1..n.
    """
    outputs: dict[str, np.ndarray] = {}
    next_labels: dict[str, int] = {}
    chunks = plan_chunks(shape, chunk_size, margin, align)
    for number, chunk in enumerate(chunks, start=1):
        logger.info(
            "%schunk %d/%d: %s", f"{label}: " if label else "", number, len(chunks), chunk.outer
        )
        results = segment_region(chunk.outer_slices)
        for name, labels in results.items():
            if name not in outputs:
                outputs[name] = np.zeros(shape, dtype=np.uint32)
                next_labels[name] = 1
            next_labels[name] = stitch_chunk(outputs[name], labels, chunk, next_labels[name])
    for name, output in outputs.items():
        outputs[name] = _renumber_in_place(output)
    return outputs


def _renumber_in_place(labels: np.ndarray) -> np.ndarray:
    """Close gaps left by objects that lost all their pixels (keeps order)."""
    present = np.unique(labels)
    present = present[present > 0]
    if present.size == 0 or present[-1] == present.size:
        return labels
    lookup = np.zeros(int(present[-1]) + 1, dtype=labels.dtype)
    lookup[present] = np.arange(1, present.size + 1, dtype=labels.dtype)
    return lookup[labels]
