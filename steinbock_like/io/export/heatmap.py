"""A marker heatmap of the cell table as PNG (``steinbock-like export heatmap``).

Rows are images (mean over their cells) or cells, columns are markers; each
marker is scaled to 0..1 over the rows (min to max) and drawn with the viridis
colour map, one flat block of pixels per value. The pixel layout is fixed by
:func:`heatmap_layout` (a margin for labels left and below, a colour bar right),
so a value's block can be found in the PNG.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from steinbock_like.io.atomic import atomic_path

DPI = 100
LEFT, RIGHT, TOP, BOTTOM = 260, 110, 50, 150  # margins in pixels
CMAP = "viridis"


@dataclass(frozen=True)
class HeatmapLayout:
    """Pixel geometry of the heatmap PNG: figure size and the matrix's box."""

    width: int
    height: int
    left: int
    top: int
    cell_width: int
    cell_height: float

    def centre(self, row: int, column: int) -> tuple[int, int]:
        """(y, x) pixel at the centre of a matrix value's block."""
        y = self.top + (row + 0.5) * self.cell_height
        x = self.left + (column + 0.5) * self.cell_width
        return int(y), int(x)


def heatmap_layout(rows: int, columns: int) -> HeatmapLayout:
    """The PNG's geometry for a matrix of ``rows`` x ``columns`` values."""
    cell_width = int(np.clip(600 // max(columns, 1), 12, 48))
    cell_height = float(np.clip(800 / max(rows, 1), 0.25, 32))
    plot_height = max(int(round(rows * cell_height)), 1)
    cell_height = plot_height / max(rows, 1)
    return HeatmapLayout(
        width=LEFT + columns * cell_width + RIGHT,
        height=TOP + plot_height + BOTTOM,
        left=LEFT,
        top=TOP,
        cell_width=cell_width,
        cell_height=cell_height,
    )


def marker_matrix(
    cells: pd.DataFrame,
    markers: list[str],
    *,
    by: str = "image",
    max_cells: int = 2000,
    seed: int = 0,
) -> pd.DataFrame:
    """The values to draw: per-image means, or (a random subset of) cells.

    Parameters
    ----------
    cells : DataFrame
        The cell table (``Image``, ``Object``, marker columns).
    markers : list of str
        Marker columns, in drawing order.
    by : {"image", "cell"}
    max_cells : int
        With ``by="cell"``, at most this many cells (drawn at random, kept in table order).

    Returns
    -------
    DataFrame
        Rows labelled by image (``by="image"``) or ``"<image> <object>"``.
    """
    if by == "image":
        return cells.groupby("Image", sort=False)[markers].mean()
    if len(cells) > max_cells:
        keep = np.sort(np.random.default_rng(seed).choice(len(cells), max_cells, replace=False))
        cells = cells.iloc[keep]
    labels = cells["Image"].astype(str) + " " + cells["Object"].astype(str)
    return cells[markers].set_axis(labels.to_numpy(), axis=0)


def scale_columns(matrix: pd.DataFrame) -> pd.DataFrame:
    """Each column scaled to 0..1 (min to max); constant columns become 0."""
    low, high = matrix.min(), matrix.max()
    span = (high - low).where(high > low, 1.0)
    return (matrix - low) / span


def order_by_dominant_marker(scaled: pd.DataFrame) -> pd.DataFrame:
    """Rows grouped by their brightest (scaled) marker, in marker order, brightest first.

    Cells of one type then form a block, which a random order hides.
    """
    if scaled.empty:
        return scaled
    values = scaled.to_numpy(dtype=float)
    dominant = np.nan_to_num(values, nan=-np.inf).argmax(axis=1)
    strength = values[np.arange(len(values)), dominant]
    order = np.lexsort((np.arange(len(values)), -np.nan_to_num(strength), dominant))
    return scaled.iloc[order]


def write_heatmap(path: str | Path, matrix: pd.DataFrame, *, title: str = "") -> HeatmapLayout:
    """Draw ``matrix`` (values in 0..1) as a heatmap PNG, atomically; return its layout."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    rows, columns = matrix.shape
    layout = heatmap_layout(rows, columns)
    fig = Figure(figsize=(layout.width / DPI, layout.height / DPI), dpi=DPI)
    plot_w, plot_h = columns * layout.cell_width, rows * layout.cell_height
    ax = fig.add_axes(
        (
            LEFT / layout.width,
            BOTTOM / layout.height,
            plot_w / layout.width,
            plot_h / layout.height,
        )
    )
    image = ax.imshow(
        matrix.to_numpy(dtype=float),
        cmap=CMAP,
        vmin=0.0,
        vmax=1.0,
        aspect="auto",
        interpolation="nearest",
    )
    ax.set_xticks(range(columns), [str(c) for c in matrix.columns], rotation=90, fontsize=8)
    if rows <= 60:
        ax.set_yticks(range(rows), [str(r) for r in matrix.index], fontsize=8)
    else:
        ax.set_yticks([])
        ax.set_ylabel(f"{rows} cells")
    cax = fig.add_axes(
        (
            (LEFT + plot_w + 20) / layout.width,
            BOTTOM / layout.height,
            15 / layout.width,
            plot_h / layout.height,
        )
    )
    fig.colorbar(image, cax=cax, label="scaled (min-max per marker)")
    if title:
        fig.suptitle(title, y=1 - 15 / layout.height, va="top", fontsize=10)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=DPI, format="png")
    return layout
