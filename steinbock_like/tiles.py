"""Whole-slide images as overlapping tiles: plan, skip empty tiles, segment, stitch.

One module for every segmenter (Mesmer, Cellpose, ...) that processes large
images piece by piece. The image is cut into a grid of *cores* that cover it
exactly; each tile is its core plus a margin on every side (clipped at the
image border) and is segmented on its own. An object found in a tile is
*owned* by that tile if the centre of its bounding box lies in the core; owned
objects are copied whole (margin parts included) into the output, so an object
cut by a core border is one object, neither cut nor duplicated, as long as it
is smaller than the margin.

Where two tiles disagree slightly about an object near a seam, both versions
can be owned; the later one is dropped if more than ``max_shared_fraction`` of
its pixels are already taken, else it gets only the free pixels.

Tiles whose core holds no tissue (mean signal below ``min_signal``) are not
segmented at all and counted (:class:`TilingInfo`). How tiles are computed is
up to ``mapper`` (``map`` by default; :func:`distributed_map` spreads them over
the workers of the dask cluster running the job).

Memory is bounded by the tile size (plus the output label images); the tile
data may be read lazily (see :mod:`steinbock_like.io.blocks`).
"""

from __future__ import annotations

import logging
import math
import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Tile:
    """One tile: its core and its outer (core + margin) box, both (y0, y1, x0, x1)."""

    core: tuple[int, int, int, int]
    outer: tuple[int, int, int, int]

    @property
    def outer_slices(self) -> tuple[slice, slice]:
        y0, y1, x0, x1 = self.outer
        return slice(y0, y1), slice(x0, x1)

    @property
    def core_slices(self) -> tuple[slice, slice]:
        y0, y1, x0, x1 = self.core
        return slice(y0, y1), slice(x0, x1)


@dataclass
class TilingInfo:
    """What tiling did to one image: tiles planned, and those skipped as empty."""

    tiles: int = 0
    skipped: int = 0
    skipped_tiles: list[tuple[int, int, int, int]] = field(default_factory=list)
    workers: set[str] = field(default_factory=set)  # dask workers that computed tiles

    def as_dict(self) -> dict[str, int]:
        figures = {"tiles": self.tiles, "tiles_skipped": self.skipped}
        if self.workers:
            figures["tile_workers"] = len(self.workers)
        return figures


def _axis_cores(size: int, tile_size: int, even: bool) -> list[tuple[int, int]]:
    if not even:
        return [(start, min(size, start + tile_size)) for start in range(0, size, tile_size)]
    count = max(1, math.ceil(size / tile_size))
    edges = np.linspace(0, size, count + 1).round().astype(int)
    return [(int(a), int(b)) for a, b in zip(edges[:-1], edges[1:], strict=True)]


def plan_tiles(
    shape: tuple[int, int], tile_size: int, margin: int, align: int = 1, *, even: bool = True
) -> list[Tile]:
    """Cores of at most ``tile_size`` px covering ``shape``, each with a ``margin``.

    Parameters
    ----------
    shape : (int, int)
    tile_size : int
        Largest core side in pixels.
    margin : int
        Context on each side in pixels; should exceed the largest object.
    align : int
        Outer boxes start at multiples of this (the margin grows to reach one), so
        that grid-based steps inside a tile (CLAHE's 128 px contextual regions) line
        up with the same grid in the whole image.
    even : bool
        Cores of (nearly) equal size; else cores of exactly ``tile_size`` from the
        top-left corner, the last ones smaller.

    Returns
    -------
    list of Tile
        Row by row, top-left first.
    """
    if tile_size < 1 or margin < 0 or align < 1:
        raise ValueError(f"invalid tile size {tile_size}, margin {margin} or align {align}")
    height, width = shape
    tiles = []
    for y0, y1 in _axis_cores(height, tile_size, even):
        for x0, x1 in _axis_cores(width, tile_size, even):
            outer = (max(0, y0 - margin) // align * align, min(height, y1 + margin))
            outer += (max(0, x0 - margin) // align * align, min(width, x1 + margin))
            tiles.append(Tile((y0, y1, x0, x1), outer))
    return tiles


def owned_objects(labels: np.ndarray, tile: Tile) -> list[tuple[int, tuple[slice, slice]]]:
    """(label, bounding box in tile coordinates) of objects whose box centre is in the core."""
    oy0, _, ox0, _ = tile.outer
    cy0, cy1, cx0, cx1 = tile.core
    owned = []
    for index, box in enumerate(ndimage.find_objects(labels)):
        if box is None:
            continue
        centre_y = oy0 + (box[0].start + box[0].stop - 1) / 2
        centre_x = ox0 + (box[1].start + box[1].stop - 1) / 2
        if cy0 <= centre_y < cy1 and cx0 <= centre_x < cx1:
            owned.append((index + 1, box))
    return owned


def stitch_tile(
    output: np.ndarray,
    labels: np.ndarray,
    tile: Tile,
    next_label: int,
    *,
    max_shared_fraction: float = 0.5,
    linked: Iterable[tuple[np.ndarray, np.ndarray]] = (),
    keys: np.ndarray | None = None,
    assigned: list | None = None,
) -> int:
    """Copy the objects ``tile`` owns into ``output`` (in place); returns the next free label.

    ``linked`` holds (output, labels) pairs of other object sets of the tile numbered
    like ``labels`` (the nuclei of cells, say): the namesakes of each object copied are
    copied too (into their free pixels), with the same new number, so that the IDs keep
    matching after stitching. With ``keys`` (per label of ``labels``), the key of each
    object copied is appended to ``assigned`` (one per new label, in order).
    """
    oy0, _, ox0, _ = tile.outer
    others = [(out, other, ndimage.find_objects(other)) for out, other in linked]
    for object_id, (rows, cols) in owned_objects(labels, tile):
        pixels = labels[rows, cols] == object_id
        target = output[oy0 + rows.start : oy0 + rows.stop, ox0 + cols.start : ox0 + cols.stop]
        taken = pixels & (target != 0)
        num_taken = int(np.count_nonzero(taken))
        if num_taken > max_shared_fraction * np.count_nonzero(pixels):
            continue
        target[pixels & ~taken] = next_label
        for out, other, boxes in others:
            box = boxes[object_id - 1] if object_id <= len(boxes) else None
            if box is not None:
                box_rows, box_cols = box
                part = other[box] == object_id
                dest = out[
                    oy0 + box_rows.start : oy0 + box_rows.stop,
                    ox0 + box_cols.start : ox0 + box_cols.stop,
                ]
                dest[part & (dest == 0)] = next_label
        if keys is not None and assigned is not None:
            assigned.append(keys[object_id])
        next_label += 1
    return next_label


def tile_signal(channels: np.ndarray, tile: Tile) -> float:
    """Mean signal of a (C, Y, X) or (Y, X) image in the core of ``tile``."""
    rows, cols = tile.core_slices
    return float(np.mean(channels[..., rows, cols], dtype=np.float64))


def segment_in_tiles(
    segment_region: Callable[[Tile], dict[str, np.ndarray]],
    shape: tuple[int, int],
    *,
    tile_size: int,
    margin: int,
    align: int = 1,
    even: bool = True,
    signal: Callable[[Tile], float] | None = None,
    min_signal: float = 0.0,
    mapper: Callable[[Callable, Iterable], Iterator] | None = None,
    dtype=np.uint32,
    info: TilingInfo | None = None,
    label: str = "",
    linked: dict[str, str] | None = None,
) -> tuple[dict[str, np.ndarray], TilingInfo]:
    """Segment overlapping tiles and stitch their label images.

    Parameters
    ----------
    segment_region : callable
        ``segment_region(tile)`` returns a dict of label images (one per
        compartment) of the shape of ``tile.outer``; a value may instead be a pair
        ``(labels, keys)``, ``keys[k]`` a global sort key of object ``k`` (e.g. the
        raster index of its seed in the image): those objects are then numbered by
        ascending key, as a whole-image run that numbers them so would.
    shape : (int, int)
        Image shape (Y, X).
    tile_size, margin, align, even
        See :func:`plan_tiles`.
    signal : callable, optional
        ``signal(tile)``: the tile core's mean signal (e.g. :func:`tile_signal`).
    min_signal : float
        Tiles whose ``signal`` is below this are skipped (no objects there).
    mapper : callable, optional
        ``mapper(segment_region, tiles)`` yields the results in tile order;
        default ``map`` (one tile at a time).
    info : TilingInfo, optional
        Filled in and returned (e.g. one whose ``workers`` a mapper fills).
    label : str
        The image's name, for the progress lines.
    linked : dict of str to str, optional
        Label images numbered like another one (e.g. ``{"nuclei": "cells"}``): taken
        from the tile that owns the object of that number in the other, and numbered
        as it is there (see :func:`stitch_tile`).

    Returns
    -------
    dict of str to ndarray of uint32
        Stitched labels, numbered 1..n in tile order (or key order).
    TilingInfo
    """
    tiles = plan_tiles(shape, tile_size, margin, align, even=even)
    info = info or TilingInfo()
    linked = linked or {}
    info.tiles = len(tiles)
    todo = []
    for tile in tiles:
        if signal is not None and min_signal > 0 and signal(tile) < min_signal:
            info.skipped += 1
            info.skipped_tiles.append(tile.core)
        else:
            todo.append(tile)
    if info.skipped:
        logger.info(
            "%s%d of %d tiles hold no tissue: skipped", _prefix(label), info.skipped, info.tiles
        )
    outputs: dict[str, np.ndarray] = {}
    next_labels: dict[str, int] = {}
    assigned: dict[str, list] = {}
    results = (mapper or map)(segment_region, todo)
    for number, (tile, result) in enumerate(zip(todo, results, strict=True), start=1):
        logger.info("%stile %d/%d: %s", _prefix(label), number, len(todo), tile.outer)
        result = {
            name: value if isinstance(value, tuple) else (value, None)
            for name, value in result.items()
        }
        for name in result:
            if name not in outputs:
                outputs[name] = np.zeros(shape, dtype=dtype)
                next_labels[name] = 1
                assigned[name] = []
        for name, (labels, keys) in result.items():
            if name in linked:
                continue
            pairs = [
                (outputs[other], result[other][0]) for other in result if linked.get(other) == name
            ]
            next_labels[name] = stitch_tile(
                outputs[name],
                labels,
                tile,
                next_labels[name],
                linked=pairs,
                keys=keys,
                assigned=assigned[name],
            )
    for name, output in outputs.items():
        if name in linked:
            continue
        present = _present_labels(output)
        keys = np.asarray(assigned[name]) if assigned[name] else None
        lookup = _new_numbers(present, keys, output.dtype)
        for other, owner in linked.items():
            if owner == name and other in outputs:
                outputs[other] = _relabel(outputs[other], lookup)
        if keys is not None or present.size != (present[-1] if present.size else 0):
            outputs[name] = _relabel(output, lookup)
    return outputs, info


def _renumber(labels: np.ndarray) -> np.ndarray:
    """Close gaps left by objects that lost all their pixels (keeps order; in place)."""
    present = _present_labels(labels)
    if present.size == 0 or present[-1] == present.size:
        return labels
    return _relabel(labels, _new_numbers(present, None, labels.dtype))


def _new_numbers(present: np.ndarray, keys: np.ndarray | None, dtype) -> np.ndarray:
    """Lookup table: the ``present`` labels numbered 1..n in label order or by ``keys``.

    ``keys[label - 1]`` is the key of label ``label``.
    """
    lookup = np.zeros(int(present[-1]) + 1 if present.size else 1, dtype=dtype)
    if keys is not None and present.size:
        present = present[np.argsort(keys[present - 1], kind="stable")]
    lookup[present] = np.arange(1, present.size + 1, dtype=dtype)
    return lookup


def _relabel(labels: np.ndarray, lookup: np.ndarray) -> np.ndarray:
    """Apply ``lookup`` band by band (in place); labels beyond it become 0."""
    top = int(labels.max(initial=0))
    if top >= lookup.size:
        lookup = np.concatenate([lookup, np.zeros(top + 1 - lookup.size, lookup.dtype)])
    for rows in _row_bands(labels):
        labels[rows] = lookup[labels[rows]]
    return labels


def count_labels(labels: np.ndarray) -> int:
    """Number of distinct non-zero labels, without sorting a copy of the image."""
    return int(_present_labels(labels).size)


def _present_labels(labels: np.ndarray) -> np.ndarray:
    """Sorted non-zero labels present, counted band by band (no whole-image copy)."""
    if labels.size == 0:
        return np.zeros(0, dtype=np.int64)
    seen = np.zeros(int(labels.max()) + 1, dtype=bool)
    for rows in _row_bands(labels):
        seen[labels[rows].ravel()] = True
    seen[0] = False
    return np.flatnonzero(seen)


def _row_bands(array: np.ndarray, pixels: int = 1 << 24) -> Iterator[slice]:
    step = max(1, pixels // max(1, int(np.prod(array.shape[1:]))))
    for start in range(0, array.shape[0], step):
        yield slice(start, start + step)


class ArrayRegions:
    """Tile regions of an image held in memory, (Y, X, C) or (Y, X).

    The in-memory counterpart of :class:`steinbock_like.io.scratch.ScratchImage`:
    both hand out ``read(rows, cols)`` regions and ``channel_bands(channel)``.
    """

    def __init__(self, image: np.ndarray) -> None:
        self.image = image
        self.shape = image.shape[:2]

    def read(self, rows: slice, cols: slice) -> np.ndarray:
        return self.image[rows, cols]

    def channel_bands(self, channel: int) -> Iterator[np.ndarray]:
        for rows in _row_bands(self.image):
            yield self.image[rows, :, channel] if self.image.ndim == 3 else self.image[rows]


def cluster_workers() -> int:
    """The number of workers of the dask cluster running the current task; 0 where
    the caller is not a dask task."""
    if not _in_dask_task():
        return 0
    from distributed import get_client

    # nthreads() lists every worker (scheduler_info() only the first five)
    return len(get_client().nthreads())


def _in_dask_task() -> bool:
    # a dask worker has imported distributed; elsewhere importing it (~0.4 s) to ask
    # would cost every local run
    if "distributed" not in sys.modules:
        return False
    from distributed import get_worker

    try:
        get_worker()
    except ValueError:
        return False
    return True


def distributed_map(
    function: Callable, items: Iterable, *, workers_seen: set[str] | None = None
) -> Iterator:
    """``map`` over the dask cluster when called inside a dask task, else plain ``map``.

    Inside a job that a :class:`~steinbock_like.runner.dask.DaskExecutor` runs,
    the items (tiles of one large image) are submitted to the cluster from the
    worker (which leaves its thread meanwhile), so they spread over every
    worker; at most two items per worker are in flight, and results are
    yielded in order. ``function`` must be picklable there. The addresses of
    the workers that computed items are added to ``workers_seen``.
    """
    if not _in_dask_task():
        yield from map(function, items)
        return
    from collections import deque

    from distributed import worker_client

    with worker_client() as client:
        addresses = sorted(client.nthreads()) or [None]
        workers = len(addresses)
        pending: deque = deque()
        for number, item in enumerate(items):
            # Round robin: scattered data pulls its task to the worker holding it, so
            # without a target every tile would run where the image was read.
            target = [addresses[number % workers]] if addresses[0] else None
            # scattered, not embedded in the task: crops are megabytes (a list: one future)
            [data] = client.scatter([item], workers=target)
            pending.append(
                client.submit(
                    _on_worker, function, data, pure=False, workers=target, allow_other_workers=True
                )
            )
            if len(pending) >= 2 * workers:
                yield _pop_result(pending, workers_seen)
        while pending:
            yield _pop_result(pending, workers_seen)


def _on_worker(function: Callable, item):
    from distributed import get_worker

    return function(item), get_worker().address


def _pop_result(pending, workers_seen: set[str] | None):
    future = pending.popleft()
    result, address = future.result()
    future.release()
    if workers_seen is not None:
        workers_seen.add(address)
    return result


def _prefix(label: str) -> str:
    return f"{label}: " if label else ""


def tile_edges(tile: Tile, shape: tuple[int, int]) -> tuple[bool, bool, bool, bool]:
    """Whether the top, bottom, left and right sides of ``tile.outer`` are the image border."""
    y0, y1, x0, x1 = tile.outer
    return (y0 == 0, y1 == shape[0], x0 == 0, x1 == shape[1])
