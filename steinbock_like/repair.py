"""Match whole-cell masks to nuclear masks, trim nuclei to their cell, derive cytoplasm.

The rules (issue 4), per image:

- the membrane of a cell is its inner boundary, exactly as
  ``skimage.segmentation.find_boundaries(cells, connectivity=1, mode=...)`` marks it; the
  interior is the cell minus its membrane;
- cells are visited in increasing label order; a cell's candidates are the not yet matched
  nucleus labels overlapping it; a candidate's mismatch fraction is
  ``|nucleus \\ interior| / |nucleus|``; candidates with mismatch >= 1 are rejected, otherwise
  the lowest mismatch wins (ties: the lower nucleus label);
- the matched nucleus is trimmed to nucleus ∩ interior (unless ``trim=False``) and never reused;
- matched pairs get new consecutive IDs 1..N, in increasing order of the original cell label,
  shared by cell, nucleus and cytoplasm (cell minus its nucleus); everything else is dropped.

Implementation: everything per pixel is vectorised numpy. The only quantity the greedy pass
needs per (cell, nucleus) pair is the number of nucleus pixels inside the cell's interior,
so pairs are counted once from run-length-compressed pixel lists (a sparse overlap table).
The greedy pass itself only loops (in Python, O(1) per row) over the table rows where a cell
has several candidates or a nucleus is a candidate of several cells; all other pairs cannot
interact with anything and are matched in bulk.

Note: on foreground pixels the "inner" and "thick" boundary modes of ``find_boundaries`` agree
(they differ only on background pixels), so the matching does not depend on the mode; only
:func:`label_boundaries` does.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field

import numpy as np

from steinbock_like.errors import SteinbockLikeError

logger = logging.getLogger(__name__)

BOUNDARY_MODES = ("inner", "thick")

METRIC_NAMES = (
    "cells",
    "nuclei",
    "matched",
    "unmatched_cells",
    "unmatched_nuclei",
    "matched_fraction",
    "mean_mismatch",
    "max_mismatch",
    "pixels_trimmed",
)

# Labels above this are first renumbered (order-preserving) so that per-label tables stay small.
_MAX_DIRECT_LABEL = 1 << 22
# Pixels per block when mapping labels through a lookup table (bounds the index temporaries).
_LUT_BLOCK_PIXELS = 1 << 20


@dataclass
class RepairResult:
    """Matched masks of one image.

    Attributes
    ----------
    cells, nuclei, cytoplasm : ndarray of uint16 (uint32 beyond 65535 matches), shape (Y, X)
        Matched cells, matched (trimmed) nuclei and cytoplasm; object ``k`` in one is object
        ``k`` in the others; IDs are 1..N in increasing order of the original cell label.
    metrics : dict
        ``cells``, ``nuclei`` (distinct input labels), ``matched``, ``unmatched_cells``,
        ``unmatched_nuclei`` (int), ``matched_fraction`` = matched / (matched +
        unmatched_cells + unmatched_nuclei), ``mean_mismatch``, ``max_mismatch`` (over accepted
        matches; NaN when there are none, as is ``matched_fraction`` with no objects at all),
        ``pixels_trimmed`` (int; 0 when ``trim=False``).
    pairs : ndarray of int64, shape (N, 2)
        Original (cell label, nucleus label) of new ID ``k`` in row ``k - 1``.
    boundary_mode : str
        The boundary mode the result was computed with (used by :meth:`boundaries`).
    """

    cells: np.ndarray
    nuclei: np.ndarray
    cytoplasm: np.ndarray
    metrics: dict = field(default_factory=dict)
    pairs: np.ndarray = field(default_factory=lambda: np.zeros((0, 2), np.int64))
    boundary_mode: str = "inner"

    def boundaries(self) -> np.ndarray:
        """Labelled membrane of the matched cells (see :func:`label_boundaries`)."""
        return label_boundaries(self.cells, mode=self.boundary_mode)


def repair_masks(
    cells: np.ndarray,
    nuclei: np.ndarray,
    *,
    boundary: str = "inner",
    trim: bool = True,
) -> RepairResult:
    """Match each cell with at most one nucleus lying inside it.

    Parameters
    ----------
    cells : ndarray of non-negative int, shape (Y, X)
        Whole-cell mask, 0 = background; labels need not be consecutive.
    nuclei : ndarray of non-negative int, shape (Y, X)
        Nuclear mask of the same image.
    boundary : {"inner", "thick"}
        ``find_boundaries`` mode defining the membrane (both give the same interior).
    trim : bool
        Trim each matched nucleus to the interior of its cell.

    Returns
    -------
    RepairResult

    Raises
    ------
    SteinbockLikeError
        Masks that are not 2-D integer label images of one shape, or an unknown mode.
    """
    if boundary not in BOUNDARY_MODES:
        raise SteinbockLikeError(
            f"unknown boundary mode {boundary!r}: use one of {', '.join(BOUNDARY_MODES)}"
        )
    cells = _as_label_image(cells, "cell mask")
    nuclei = _as_label_image(nuclei, "nuclear mask")
    if cells.shape != nuclei.shape:
        raise SteinbockLikeError(
            f"cell mask shape {cells.shape} differs from nuclear mask shape {nuclei.shape}"
        )
    compact_cells, cell_values = _compact_labels(cells)
    compact_nuclei, nucleus_values = _compact_labels(nuclei)
    cells_flat = compact_cells.ravel()
    nuclei_flat = compact_nuclei.ravel()
    del compact_cells, compact_nuclei
    n_cell_labels = int(cells_flat.max(initial=0)) + 1
    n_nucleus_labels = int(nuclei_flat.max(initial=0)) + 1

    interior = (cells != 0) & ~boundary_mask(cells, mode="inner")
    interior_flat = interior.ravel()

    cell_sizes = _label_sizes(cells_flat, n_cell_labels)
    nucleus_sizes = _label_sizes(nuclei_flat, n_nucleus_labels)
    pair_cells, pair_nuclei, pair_inside = _interior_overlaps(
        cells_flat, nuclei_flat, interior_flat, n_nucleus_labels
    )
    pair_sizes = nucleus_sizes[pair_nuclei]
    # Same float expression as |nucleus \ interior| / |nucleus| so ties compare exactly.
    pair_mismatch = (pair_sizes - pair_inside) / pair_sizes

    chosen = _greedy_match(pair_cells, pair_nuclei, pair_mismatch)
    matched_cells = pair_cells[chosen]
    matched_nuclei = pair_nuclei[chosen]
    matched_mismatch = pair_mismatch[chosen]
    n_matched = len(matched_cells)

    out_dtype = np.uint16 if n_matched <= np.iinfo(np.uint16).max else np.uint32
    new_ids = np.arange(1, n_matched + 1, dtype=out_dtype)
    cell_lut = np.zeros(n_cell_labels, dtype=out_dtype)
    cell_lut[matched_cells] = new_ids
    nucleus_lut = np.zeros(n_nucleus_labels, dtype=out_dtype)
    nucleus_lut[matched_nuclei] = new_ids

    cells_out = _apply_lut(cell_lut, cells_flat).reshape(cells.shape)
    nuclei_out = _apply_lut(nucleus_lut, nuclei_flat).reshape(cells.shape)
    if trim:
        nuclei_out[~(interior & (nuclei_out == cells_out))] = 0
    cytoplasm_out = cells_out.copy()
    cytoplasm_out[nuclei_out == cells_out] = 0

    n_cells = int(np.count_nonzero(cell_sizes[1:]))
    n_nuclei = int(np.count_nonzero(nucleus_sizes[1:]))
    trimmed = int((pair_sizes[chosen] - pair_inside[chosen]).sum()) if trim else 0
    metrics = _metrics(n_cells, n_nuclei, matched_mismatch, trimmed)
    pairs = np.stack(
        [
            _original_labels(matched_cells, cell_values),
            _original_labels(matched_nuclei, nucleus_values),
        ],
        axis=1,
    ).astype(np.int64)
    return RepairResult(
        cells=cells_out,
        nuclei=nuclei_out,
        cytoplasm=cytoplasm_out,
        metrics=metrics,
        pairs=pairs.reshape(-1, 2),
        boundary_mode=boundary,
    )


def boundary_mask(labels: np.ndarray, *, mode: str = "inner") -> np.ndarray:
    """Boundary pixels, identical to ``find_boundaries(labels, connectivity=1, mode=mode)``.

    A pixel is on the thick boundary when one of its 4-neighbours inside the image has another
    label (``find_boundaries`` pads by reflection, so the image edge is no boundary); the inner
    boundary is the thick one restricted to foreground (non-zero) pixels.

    Parameters
    ----------
    labels : ndarray of int, shape (Y, X)
    mode : {"inner", "thick"}

    Returns
    -------
    ndarray of bool, shape (Y, X)
    """
    if mode not in BOUNDARY_MODES:
        raise SteinbockLikeError(
            f"unknown boundary mode {mode!r}: use one of {', '.join(BOUNDARY_MODES)}"
        )
    labels = np.asarray(labels)
    if labels.ndim != 2:
        raise SteinbockLikeError(f"a mask must be 2-D (YX), got shape {labels.shape}")
    edges = np.zeros(labels.shape, dtype=bool)
    differs_x = labels[:, 1:] != labels[:, :-1]
    edges[:, 1:] |= differs_x
    edges[:, :-1] |= differs_x
    del differs_x
    differs_y = labels[1:, :] != labels[:-1, :]
    edges[1:, :] |= differs_y
    edges[:-1, :] |= differs_y
    del differs_y
    if mode == "inner":
        edges &= labels != 0
    return edges


def label_boundaries(labels: np.ndarray, *, mode: str = "inner") -> np.ndarray:
    """Boundary pixels of :func:`boundary_mask` carrying an object ID.

    Inner-boundary pixels carry their own object's ID. In ``"thick"`` mode the extra
    (background) boundary pixels carry the largest ID among their 4-neighbours, which is the
    value a grey dilation of ``labels`` gives there.

    Parameters
    ----------
    labels : ndarray of non-negative int, shape (Y, X)
    mode : {"inner", "thick"}

    Returns
    -------
    ndarray, same dtype and shape as ``labels``
    """
    labels = np.asarray(labels)
    edges = boundary_mask(labels, mode=mode)
    out = np.where(edges, labels, 0).astype(labels.dtype, copy=False)
    if mode == "thick":
        outer = edges & (labels == 0)
        neighbour_max = np.zeros_like(labels)
        np.maximum(neighbour_max[:, 1:], labels[:, :-1], out=neighbour_max[:, 1:])
        np.maximum(neighbour_max[:, :-1], labels[:, 1:], out=neighbour_max[:, :-1])
        np.maximum(neighbour_max[1:, :], labels[:-1, :], out=neighbour_max[1:, :])
        np.maximum(neighbour_max[:-1, :], labels[1:, :], out=neighbour_max[:-1, :])
        out[outer] = neighbour_max[outer]
    return out


def _as_label_image(labels: np.ndarray, what: str) -> np.ndarray:
    """Validate a 2-D non-negative integer label image (bool becomes 0/1)."""
    labels = np.asarray(labels)
    if labels.ndim != 2:
        raise SteinbockLikeError(f"the {what} must be 2-D (YX), got shape {labels.shape}")
    if labels.dtype == bool:
        return labels.view(np.uint8)
    if labels.dtype.kind not in "ui":
        raise SteinbockLikeError(f"the {what} must hold integer labels, got dtype {labels.dtype}")
    if labels.dtype.kind == "i" and labels.size and labels.min() < 0:
        raise SteinbockLikeError(f"the {what} must not hold negative labels")
    return labels


def _compact_labels(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """Labels small enough to index per-label tables, and the original label of each new one.

    Labels below ``_MAX_DIRECT_LABEL`` are kept as they are (and None is returned for the
    original labels); larger ones are renumbered in increasing order, which keeps "increasing
    label order" and "the lower label wins" intact. Background stays 0.
    """
    if int(labels.max(initial=0)) < _MAX_DIRECT_LABEL:
        # uint64 does not mix with int64 index arithmetic (numpy promotes to float)
        return (labels.astype(np.uint32) if labels.dtype == np.uint64 else labels), None
    values, inverse = np.unique(labels, return_inverse=True)
    if values[0] != 0:  # no background pixel: shift so that no label becomes 0
        values = np.concatenate([[0], values])
        inverse += 1
    return inverse.reshape(labels.shape).astype(np.uint32), values


def _original_labels(compact: np.ndarray, values: np.ndarray | None) -> np.ndarray:
    """Map compacted labels back to the caller's labels."""
    return compact.astype(np.int64) if values is None else values[compact].astype(np.int64)


def _runs(*columns: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Start indices and lengths of runs of equal consecutive rows of 1-D columns."""
    size = len(columns[0])
    if size == 0:
        return np.zeros(0, np.intp), np.zeros(0, np.int64)
    changes = np.zeros(size, dtype=bool)
    changes[0] = True
    for column in columns:
        changes[1:] |= column[1:] != column[:-1]
    starts = np.flatnonzero(changes)
    lengths = np.diff(np.append(starts, size))
    return starts, lengths


def _label_sizes(labels_flat: np.ndarray, n_labels: int) -> np.ndarray:
    """Pixel count per label 0..n_labels-1 (int64), without an intp copy of the image."""
    starts, lengths = _runs(labels_flat)
    counts = np.bincount(labels_flat[starts], weights=lengths, minlength=n_labels)
    return counts.astype(np.int64)


def _interior_overlaps(
    cells_flat: np.ndarray,
    nuclei_flat: np.ndarray,
    interior_flat: np.ndarray,
    n_nucleus_labels: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sparse table of (cell, nucleus, nucleus pixels in the cell's interior), count > 0.

    Rows are sorted by cell, then nucleus. Pairs with no pixel in the interior would have a
    mismatch of 1 and are rejected by the rules anyway, so they are not listed.
    """
    selected = interior_flat & (nuclei_flat != 0)
    sel_cells = cells_flat[selected]
    sel_nuclei = nuclei_flat[selected]
    del selected
    # Raster order makes long runs of one (cell, nucleus) pair: compress before sorting.
    starts, lengths = _runs(sel_cells, sel_nuclei)
    keys = sel_cells[starts].astype(np.int64) * n_nucleus_labels + sel_nuclei[starts]
    del sel_cells, sel_nuclei, starts
    order = np.argsort(keys, kind="stable")
    keys = keys[order]
    lengths = lengths[order]
    group_starts, _ = _runs(keys)
    inside = np.add.reduceat(lengths, group_starts) if len(keys) else lengths
    keys = keys[group_starts]
    return keys // n_nucleus_labels, keys % n_nucleus_labels, inside.astype(np.int64)


def _greedy_match(
    pair_cells: np.ndarray, pair_nuclei: np.ndarray, pair_mismatch: np.ndarray
) -> np.ndarray:
    """Indices of the chosen table rows, in increasing cell order.

    Visiting cells in increasing order, each cell takes its not yet taken candidate with the
    lowest mismatch (ties: lower nucleus label). A row whose cell has no other candidate and
    whose nucleus is no other cell's candidate is chosen regardless of order, so only the
    remaining (conflicting) rows go through the sequential loop.
    """
    n_rows = len(pair_cells)
    if n_rows == 0:
        return np.zeros(0, np.intp)
    rows_per_cell = np.bincount(pair_cells)
    rows_per_nucleus = np.bincount(pair_nuclei)
    isolated = (rows_per_cell[pair_cells] == 1) & (rows_per_nucleus[pair_nuclei] == 1)
    chosen = [np.flatnonzero(isolated)]

    # The non-isolated rows are closed under "same cell" and "same nucleus", so resolving
    # them on their own gives the same result as the full sequential pass.
    contested = np.flatnonzero(~isolated)
    order = np.lexsort((pair_nuclei[contested], pair_mismatch[contested], pair_cells[contested]))
    contested = contested[order]
    taken_nuclei: set[int] = set()
    last_matched_cell = -1
    picked = []
    for row, cell, nucleus in zip(
        contested.tolist(),
        pair_cells[contested].tolist(),
        pair_nuclei[contested].tolist(),
        strict=True,
    ):
        if cell == last_matched_cell or nucleus in taken_nuclei:
            continue
        taken_nuclei.add(nucleus)
        last_matched_cell = cell
        picked.append(row)
    chosen.append(np.asarray(picked, dtype=np.intp))
    chosen = np.concatenate(chosen)
    return chosen[np.argsort(pair_cells[chosen], kind="stable")]


def _apply_lut(lut: np.ndarray, labels_flat: np.ndarray) -> np.ndarray:
    """``lut[labels_flat]`` in blocks, so the index temporaries stay small."""
    out = np.empty(labels_flat.shape, dtype=lut.dtype)
    for start in range(0, len(labels_flat), _LUT_BLOCK_PIXELS):
        block = slice(start, start + _LUT_BLOCK_PIXELS)
        np.take(lut, labels_flat[block], out=out[block])
    return out


def _metrics(n_cells: int, n_nuclei: int, mismatch: np.ndarray, pixels_trimmed: int) -> dict:
    """The per-image metrics of the issue, as plain Python numbers."""
    matched = len(mismatch)
    unmatched_cells = n_cells - matched
    unmatched_nuclei = n_nuclei - matched
    objects = matched + unmatched_cells + unmatched_nuclei
    return {
        "cells": n_cells,
        "nuclei": n_nuclei,
        "matched": matched,
        "unmatched_cells": unmatched_cells,
        "unmatched_nuclei": unmatched_nuclei,
        "matched_fraction": matched / objects if objects else math.nan,
        "mean_mismatch": float(mismatch.mean()) if matched else math.nan,
        "max_mismatch": float(mismatch.max()) if matched else math.nan,
        "pixels_trimmed": pixels_trimmed,
    }


def summarize_metrics(rows: list[dict]) -> dict:
    """Totals of per-image repair metrics: images, matched pairs, unmatched cells and
    nuclei, and the matched fraction (matched / all three; NaN when there are none)."""
    totals = {key: int(sum(row.get(key, 0) or 0 for row in rows)) for key in
              ("matched", "unmatched_cells", "unmatched_nuclei")}  # fmt: skip
    denominator = sum(totals.values())
    totals["matched_fraction"] = totals["matched"] / denominator if denominator else float("nan")
    totals["images"] = len(rows)
    return totals
