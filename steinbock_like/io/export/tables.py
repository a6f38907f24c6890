"""Object tables for export: listing them by image, merging them, the cell table.

steinbock's object data are one CSV per image (``intensities/``,
``regionprops/``, ...), indexed by ``Object``. Exports pair the tables of
several directories by file name (the first directory decides which images
there are) and merge them column-wise on the object ID.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

import pandas as pd

from steinbock_like.errors import InputError
from steinbock_like.io.atomic import TEMP_PREFIX
from steinbock_like.io.tables import read_neighbors, read_table

OBJECT = "Object"
IMAGE = "Image"
IMAGE_SUFFIX = ".tiff"


def list_tables(directory: str | Path) -> list[Path]:
    """Sorted object-table CSV files in ``directory`` (hidden and temporary files excluded).

    Raises
    ------
    InputError
        If ``directory`` does not exist.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise InputError(directory, "table directory not found")
    return sorted(
        p
        for p in directory.iterdir()
        if p.is_file() and p.suffix.lower() == ".csv" and not p.name.startswith(".")
    )


def related_tables(base_files: Sequence[Path], directory: str | Path) -> list[Path]:
    """The table in ``directory`` of every base file's image (same file name).

    Raises
    ------
    InputError
        Naming the first missing table.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise InputError(directory, "table directory not found")
    related = [directory / f"{Path(base).stem}.csv" for base in base_files]
    missing = [p for p in related if not p.is_file()]
    if missing:
        raise InputError(
            missing[0], f"no such table, but {base_files[0].parent} has one for this image"
        )
    return related


def table_lists(directories: Sequence[str | Path]) -> list[tuple[str, list[Path]]]:
    """``(image file name, [table of each directory])`` for every image of the first directory."""
    if not directories:
        return []
    first = list_tables(directories[0])
    columns = [first] + [related_tables(first, d) for d in directories[1:]]
    return [(image_file_name(files[0]), list(files)) for files in zip(*columns, strict=True)]


def image_file_name(path: str | Path) -> str:
    """The image file name (``<name>.tiff``) that an object table belongs to."""
    return Path(path).stem + IMAGE_SUFFIX


def merge_tables(tables: Sequence[pd.DataFrame]) -> pd.DataFrame:
    """Merge object tables column-wise on their index (inner join, first table's order).

    Parameters
    ----------
    tables : sequence of DataFrame
        Indexed by object ID; column names should not repeat across tables.

    Returns
    -------
    DataFrame
        The objects present in every table, in the first table's order.
    """
    merged = tables[0]
    for table in tables[1:]:
        merged = pd.merge(merged, table, left_index=True, right_index=True)
    return merged


def read_merged(paths: Sequence[Path]) -> pd.DataFrame:
    """Read the object tables of one image and merge them (see :func:`merge_tables`)."""
    tables = [read_table(p, index=OBJECT) for p in paths]
    for path, table in zip(paths, tables, strict=True):
        if table.index.has_duplicates:
            raise InputError(path, f"object {table.index[table.index.duplicated()][0]} repeats")
    return merge_tables(tables)


def cell_rows(image: str, table: pd.DataFrame) -> pd.DataFrame:
    """One image's merged table as rows of the cell table: ``Image``, ``Object``, data columns."""
    rows = table.reset_index()
    rows = rows.rename(columns={rows.columns[0]: OBJECT})
    rows.insert(0, IMAGE, image)
    return rows


def cell_table(images: Sequence[tuple[str, pd.DataFrame]]) -> pd.DataFrame:
    """The cell table: every image's merged object table, one row per object.

    Parameters
    ----------
    images : sequence of (image file name, DataFrame indexed by object ID)

    Returns
    -------
    DataFrame
        Columns ``Image``, ``Object``, then the data columns; images in the given order.
    """
    return pd.concat([cell_rows(name, table) for name, table in images], ignore_index=True)


def iter_merged(
    directories: Sequence[str | Path],
) -> Iterator[tuple[str, list[Path], pd.DataFrame]]:
    """``(image file name, tables, merged table)`` per image, one image in memory at a time."""
    for image, paths in table_lists(directories):
        yield image, paths, read_merged(paths)


def read_neighbor_table(path: str | Path) -> pd.DataFrame:
    """A neighbors table with steinbock's types: integer IDs, float32 distances."""
    neighbors = read_neighbors(path)
    try:
        return neighbors.astype({"Object": "int64", "Neighbor": "int64", "Distance": "float32"})
    except (TypeError, ValueError) as error:
        raise InputError(path, f"non-numeric neighbors table ({error})") from error


@contextlib.contextmanager
def atomic_directory(path: str | Path) -> Iterator[Path]:
    """Yield a temporary directory next to ``path``; it replaces ``path`` on success.

    For directory stores (zarr). An existing ``path`` is removed only once the
    new one is complete; on any exception the temporary directory is deleted.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(
        tempfile.mkdtemp(prefix=f"{TEMP_PREFIX}{os.getpid()}-", suffix=path.suffix, dir=path.parent)
    )
    try:
        yield tmp
        if path.is_dir() and not path.is_symlink():
            old = Path(tempfile.mkdtemp(prefix=f"{TEMP_PREFIX}{os.getpid()}-old-", dir=path.parent))
            os.replace(path, old / path.name)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            if path.exists():
                path.unlink()
            os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
