"""Image lists: a CSV file or an SQLite database with one row per image.

Cohorts (e.g. brightfield IHC studies) start from a table of image URIs rather than a
folder of TIFFs. Each row gives the image's ID (which names its outputs), its URI (a local
path, ``file://`` or ``http(s)://``), optionally a tissue mask URI, and any metadata.

An SQLite database is opened read-only (``file:...?mode=ro``), and ``--where`` runs under
an authorizer that allows reading only: a filter can select rows, never change the
database or reach another one. A CSV file is loaded into an in-memory database so that
the same ``--where`` filter works on both.
"""

from __future__ import annotations

import csv
import hashlib
import json
import re
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from steinbock_like.errors import InputError

SQLITE_MAGIC = b"SQLite format 3\x00"
#: Bytes an image ID may take: outputs are named ID + suffix (255 bytes in all).
MAX_ID_BYTES = 200
_BAD_ID = re.compile(r"[/\\\x00-\x1f\x7f]")


@dataclass(frozen=True)
class ImageRecord:
    """One row of an image list.

    Attributes
    ----------
    id : str
        The image's ID: the name of its outputs (``ID.tiff``, ``ID.csv``).
    uri : str
        Where the image is: a local path (relative to the list's folder), ``file://``
        or ``http(s)://`` URL; empty when the row has none.
    mask_uri : str or None
        Its tissue mask, likewise (None without a mask column).
    metadata : dict of str to str
        The row's other columns.
    """

    id: str
    uri: str
    mask_uri: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ImageList:
    """The images a table lists, after ``--where``.

    Attributes
    ----------
    path : Path
        The CSV file or database.
    records : list of ImageRecord
        In the table's order.
    sha256 : str
        Checksum of the selected rows (ID, URI, mask URI), independent of their order:
        the same images give the same checksum whatever the database's row order.
    """

    path: Path
    records: list[ImageRecord]
    sha256: str

    @property
    def base_dir(self) -> Path:
        """Relative paths in the list are relative to its folder."""
        return self.path.parent


def is_sqlite(path: str | Path) -> bool:
    """Whether a file is an SQLite database (by its header)."""
    try:
        with open(path, "rb") as file:
            return file.read(len(SQLITE_MAGIC)) == SQLITE_MAGIC
    except OSError:
        return False


def read_image_list(
    path: str | Path,
    *,
    table: str | None = None,
    id_column: str = "id",
    uri_column: str = "uri",
    mask_column: str | None = None,
    where: str | None = None,
) -> ImageList:
    """Read an image list from a CSV file or an SQLite database.

    Parameters
    ----------
    path : path-like
        CSV file (header row) or SQLite database.
    table : str, optional
        The database's table or view; default: its only table. Ignored for CSV.
    id_column, uri_column : str
        Columns holding the image ID and URI.
    mask_column : str, optional
        Column holding the tissue mask URI.
    where : str, optional
        An SQL filter on the rows (``stain = 'CD3' AND tissue = 'skin'``).

    Returns
    -------
    ImageList

    Raises
    ------
    InputError
        One line naming the file: not found, unreadable, no such table or column, a
        filter that is not a valid read-only condition, an empty or duplicate ID, or an
        ID that cannot name a file.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "image list not found")
    if is_sqlite(path):
        connection = _open_database(path)
        table = _database_table(connection, path, table)
    else:
        connection = _csv_database(path)
        table = "images"
    try:
        columns = _columns(connection, table)
        wanted = [id_column, uri_column] + ([mask_column] if mask_column else [])
        missing = [column for column in wanted if column not in columns]
        if missing:
            raise InputError(
                path,
                f"no column {missing[0]!r} in {_what(path, table)} (columns: {', '.join(columns)})",
            )
        rows = _select(connection, path, table, where)
    finally:
        connection.close()
    records = []
    seen: dict[str, int] = {}
    for number, row in enumerate(rows, start=1):
        image_id = _text(row[id_column]).strip()
        _check_id(path, image_id, number)
        if image_id in seen:
            raise InputError(
                path, f"image ID {image_id!r} is listed twice (rows {seen[image_id]} and {number})"
            )
        seen[image_id] = number
        metadata = {key: value for key, value in row.items() if key not in wanted}
        mask_uri = _text(row[mask_column]).strip() if mask_column else None
        records.append(
            ImageRecord(image_id, _text(row[uri_column]).strip(), mask_uri or None, metadata)
        )
    return ImageList(path, records, list_checksum(records))


def list_checksum(records: list[ImageRecord]) -> str:
    """SHA-256 of the records' (ID, URI, mask URI), sorted by ID."""
    rows = sorted([r.id, r.uri, r.mask_uri] for r in records)
    return hashlib.sha256(json.dumps(rows).encode("utf-8")).hexdigest()


def _check_id(path: Path, image_id: str, number: int) -> None:
    if not image_id:
        raise InputError(path, f"row {number} has no image ID")
    problem = None
    if _BAD_ID.search(image_id):
        problem = "holds a slash or a control character"
    elif image_id.startswith("."):
        problem = "starts with a dot (a hidden file)"
    elif len(image_id.encode("utf-8")) > MAX_ID_BYTES:
        problem = f"is longer than {MAX_ID_BYTES} bytes"
    if problem:
        raise InputError(
            path, f"image ID {image_id!r} (row {number}) cannot name a file: it {problem}"
        )


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _what(path: Path, table: str) -> str:
    return f"table {table!r}" if is_sqlite(path) else "the CSV header"


def _open_database(path: Path) -> sqlite3.Connection:
    uri = f"{path.absolute().as_uri()}?mode=ro"
    try:
        connection = sqlite3.connect(uri, uri=True)
        connection.execute("SELECT count(*) FROM sqlite_master").fetchone()
    except sqlite3.Error as error:
        raise InputError(path, f"unreadable SQLite database ({error})") from None
    return connection


def _database_table(connection: sqlite3.Connection, path: Path, table: str | None) -> str:
    names = [
        row[0]
        for row in connection.execute(
            "SELECT name FROM sqlite_master WHERE type IN ('table', 'view') "
            "AND name NOT LIKE 'sqlite_%' ORDER BY name"
        )
    ]
    if table is None:
        if len(names) != 1:
            listed = ", ".join(names) or "none"
            raise InputError(path, f"choose the table with --table (tables: {listed})")
        return names[0]
    if table not in names:
        raise InputError(path, f"no table {table!r} (tables: {', '.join(names) or 'none'})")
    return table


def _csv_database(path: Path) -> sqlite3.Connection:
    try:
        with open(path, newline="", encoding="utf-8-sig") as file:
            reader = csv.reader(file)
            header = next(reader, None)
            rows = list(reader)
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise InputError(path, f"unreadable CSV file ({error})") from None
    if not header:
        raise InputError(path, "empty CSV file (a header row is needed)")
    header = [name.strip() for name in header]
    if len(set(header)) != len(header):
        raise InputError(path, "the CSV header names a column twice")
    connection = sqlite3.connect(":memory:")
    columns = ", ".join(_quote(name) for name in header)
    connection.execute(f"CREATE TABLE images ({columns})")
    width = len(header)
    for number, row in enumerate(rows, start=2):
        if not any(cell.strip() for cell in row):
            continue
        if len(row) != width:
            raise InputError(path, f"line {number} has {len(row)} fields, the header {width}")
    connection.executemany(
        f"INSERT INTO images VALUES ({', '.join('?' * width)})",
        [row for row in rows if any(cell.strip() for cell in row)],
    )
    connection.execute("PRAGMA query_only = ON")
    return connection


def _columns(connection: sqlite3.Connection, table: str) -> list[str]:
    return [row[1] for row in connection.execute(f"PRAGMA table_info({_quote(table)})")]


def _select(
    connection: sqlite3.Connection, path: Path, table: str, where: str | None
) -> list[dict[str, Any]]:
    query = f"SELECT * FROM {_quote(table)}"
    if where:
        if ";" in where:
            raise InputError(path, "--where must be one condition (no ';')")
        query += f" WHERE ({where})"
    connection.set_authorizer(_read_only)
    try:
        cursor = connection.execute(query)
        names = [column[0] for column in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
    except sqlite3.Error as error:
        what = f"--where {where!r}" if where else "reading the rows"
        raise InputError(path, f"{what}: {error}") from None
    finally:
        connection.set_authorizer(None)


def _read_only(action: int, *args: Any) -> int:
    """sqlite3 authorizer: reading and functions only (no writes, ATTACH, PRAGMA)."""
    allowed = (sqlite3.SQLITE_SELECT, sqlite3.SQLITE_READ, sqlite3.SQLITE_FUNCTION)
    return sqlite3.SQLITE_OK if action in allowed else sqlite3.SQLITE_DENY


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'
