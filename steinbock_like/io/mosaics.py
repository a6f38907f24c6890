"""Mosaic tiles: TIFFs in their own dtype, YX or CYX, named by their position."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from steinbock_like.io.tiff import read_tiff, write_tiff


def read_tile(path: str | Path) -> np.ndarray:
    """Read an image, mask or tile as stored (dtype and YX/CYX shape kept)."""
    return read_tiff(path)


def write_tile(path: str | Path, array: np.ndarray) -> None:
    """Write an image, mask or tile as given (dtype kept), atomically."""
    write_tiff(path, np.asarray(array))


def collect_tiff_files(paths) -> list[Path]:
    """The TIFF files among ``paths``; directories contribute theirs (recursively, sorted)."""
    files = []
    for path in map(Path, paths):
        if path.is_dir():
            files += sorted(
                p for p in path.rglob("*.tif*") if not p.name.startswith(".") and p.is_file()
            )
        else:
            files.append(path)
    return files


def write_match_table(path: str | Path, table, columns: tuple[str, str]) -> None:
    """Write a ``utils match`` table with the two masks' names as column names."""
    from steinbock_like.io.atomic import atomic_path

    with atomic_path(path) as tmp:
        table.set_axis(list(columns), axis=1).to_csv(tmp, index=False)
