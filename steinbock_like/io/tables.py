"""CSV tables: object data (indexed by ``Object``), neighbors, per-image metrics.

pandas is imported only where a DataFrame is read (start-up time: the intensities
command writes its tables from arrays, without pandas).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from steinbock_like.errors import InputError
from steinbock_like.io.atomic import atomic_path

NEIGHBOR_COLUMNS = ("Object", "Neighbor", "Distance")


def read_table(path: str | Path, *, index: str | None = "Object"):
    """Read a CSV table (a DataFrame), indexed by ``index`` (``Object`` for object data)."""
    import pandas as pd

    path = Path(path)
    if not path.is_file():
        raise InputError(path, "file not found")
    try:
        table = pd.read_csv(path)
    except Exception as error:
        raise InputError(path, f"not a readable CSV file ({type(error).__name__})") from error
    if index is not None:
        if index not in table.columns:
            raise InputError(path, f"no '{index}' column")
        table = table.set_index(index)
    return table


def write_table(path: str | Path, table) -> None:
    """Write a table (with its index) atomically."""
    with atomic_path(path) as tmp:
        table.to_csv(tmp)


def read_neighbors(path: str | Path):
    """Read a neighbors CSV (``Object``, ``Neighbor``, ``Distance``)."""
    table = read_table(path, index=None)
    missing = [c for c in NEIGHBOR_COLUMNS if c not in table.columns]
    if missing:
        raise InputError(path, f"neighbors table lacks column(s) {', '.join(missing)}")
    return table


def write_neighbors(path: str | Path, neighbors) -> None:
    """Write a neighbors table (no index column) atomically."""
    with atomic_path(path) as tmp:
        neighbors.loc[:, list(NEIGHBOR_COLUMNS)].to_csv(tmp, index=False)


def write_object_table(path: str | Path, table) -> None:
    """Write an object table (a DataFrame, index ``Object``) as steinbock and pandas
    write it, faster.

    The text equals ``table.to_csv(path)``: float64 in shortest round-trip form
    (``repr``, formatted for whole columns at once by
    :mod:`steinbock_like.io.float_text`), float32 in its own shortest form, NaN as
    an empty field.
    """
    columns = {str(name): table[name].to_numpy() for name in table.columns}
    write_object_columns(path, table.index.to_numpy(), columns, index_name=table.index.name)


def write_object_columns(
    path: str | Path,
    index,
    columns: Mapping[str, object],
    *,
    index_name: str | None = "Object",
    threads: int = 1,
) -> None:
    """Write an object table given as arrays: ``index`` (the object IDs) and one
    array per column, with the same text as pandas' ``to_csv`` of that table.

    ``threads``: blocks of rows are formatted in this many threads (numpy releases
    the GIL in most of the work).
    """
    import csv
    import io

    import numpy as np

    from steinbock_like.io.float_text import csv_lines

    header = io.StringIO()
    csv.writer(header, lineterminator="\n").writerow([index_name or "", *columns])
    index = np.asarray(index)
    arrays = [np.asarray(a) for a in columns.values()]
    rows = max(1, 16384 // (len(arrays) + 1))  # small blocks: cache-resident temporaries

    def text(start: int) -> bytes:
        part = slice(start, start + rows)
        return csv_lines([_column(index[part])] + [_column(a[part]) for a in arrays])

    starts = range(0, len(index), rows)
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        handle.write(header.getvalue().encode())
        if threads > 1 and len(starts) > 1:
            import concurrent.futures

            step = 8 * threads  # a bounded number of formatted blocks waits to be written
            with concurrent.futures.ThreadPoolExecutor(threads) as pool:
                for first in range(0, len(starts), step):
                    handle.writelines(pool.map(text, starts[first : first + step]))
        else:
            handle.writelines(map(text, starts))


def _column(values):
    """A column for :func:`csv_lines`: float64 and integer arrays as they are, other
    values as pandas writes them (strings)."""
    import numpy as np

    if values.dtype == np.float64 or values.dtype.kind in "iu":
        return values
    if values.dtype.kind == "b":
        return ["True" if v else "False" for v in values.tolist()]
    if values.dtype.kind == "f":
        text = values.astype(str)
        text[np.isnan(values)] = ""
        return text.tolist()
    import pandas as pd

    return pd.Series(values).to_frame().to_csv(header=False, index=False).splitlines()
