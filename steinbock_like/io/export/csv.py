"""The cell table as CSV (steinbock's ``export csv``): ``Image``, ``Object``, data columns."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import pandas as pd

from steinbock_like.io.atomic import atomic_path
from steinbock_like.io.export.tables import cell_rows


def write_cells_csv(path: str | Path, images: Iterable[tuple[str, pd.DataFrame]]) -> int:
    """Write the cell table of many images to one CSV, atomically, one image at a time.

    Parameters
    ----------
    path : path-like
        The CSV file.
    images : iterable of (image file name, merged object table)
        Consumed lazily: only one image's table is in memory.

    Returns
    -------
    int
        The number of rows (objects) written.
    """
    rows = 0
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as stream:
        for i, (image, table) in enumerate(images):
            cell_rows(image, table).to_csv(stream, header=i == 0, index=False)
            rows += len(table)
    return rows


def write_object_csv(path: str | Path, table: pd.DataFrame) -> None:
    """One image's merged object table (``Object`` first), atomically."""
    with atomic_path(path) as tmp:
        table.reset_index().to_csv(tmp, index=False)
