"""Pixel-classification probabilities: uint16 YXC, one colour channel per class.

0..65535 stands for probability 0..1 (ilastik's export: ``uint16(p * 65535)``).
"""

from collections.abc import Iterator
from pathlib import Path

import numpy as np

from steinbock_like.errors import InputError
from steinbock_like.io.tiff import kept_shape, open_tiff, read_tiff, write_tiff

PROBABILITY_SCALE = 65535


def read_probabilities(path: str | Path) -> np.ndarray:
    """Read a probability image as uint16 YXC."""
    array = read_tiff(path)
    _check_probabilities(path, array.shape, array.dtype)
    return array


def probabilities_shape(path: str | Path) -> tuple[int, int, int]:
    """(Y, X, C) of a probability image, checked as :func:`read_probabilities` checks it,
    without reading its pixels."""
    with open_tiff(path) as tif:
        return _checked_shape(path, tif)


def _checked_shape(path, tif) -> tuple[int, int, int]:
    """(Y, X, C) of an open probability TIFF, checked as :func:`read_probabilities` checks."""
    series = tif.series[0]
    shape = kept_shape(series.shape, series.axes)
    _check_probabilities(path, shape, series.dtype)
    return shape


def _check_probabilities(path, shape: tuple[int, ...], dtype) -> None:
    if len(shape) != 3:
        raise InputError(path, f"probabilities must be YXC, found shape {tuple(shape)}")
    if dtype != np.uint16:
        raise InputError(path, f"probabilities must be uint16, found {dtype}")


def iter_probability_bands(path: str | Path, min_rows: int) -> Iterator[tuple[int, np.ndarray]]:
    """Yield ``(first_row, band)`` pairs of a probability image, top to bottom.

    Bands are uint16 (rows, X, C) of at least ``min_rows`` rows (the last may hold
    fewer), decoded a strip or row of tiles at a time from a file that stores the
    classes as samples of one page (as ilastik and :func:`write_probabilities` do);
    a file stored otherwise is read whole once, and a file of one compressed strip
    (ilastik's export of a small image) is decoded whole, as it must be.
    """
    from steinbock_like.io.blocks import page_bands

    streamed = False
    with open_tiff(path) as tif:  # a broken file: one InputError, also midway
        height, width, _ = _checked_shape(path, tif)
        pages = tif.series[0].pages
        page = pages[0] if len(pages) == 1 else None
        if page is not None and page.shape[:2] == (height, width) and page.planarconfig == 1:
            yield from page_bands(page, height, width, min_rows, [], samples=True)
            streamed = True
    if not streamed:  # classes stored as pages or planes: no bands to decode
        whole = read_probabilities(path)
        for start in range(0, height, min_rows):
            yield start, whole[start : start + min_rows]


def probability_regions(path: str | Path):
    """A probability image to be read in tiles without ever holding it whole.

    Returns an object with ``shape`` (Y, X), ``read(rows, cols)`` giving (rows, cols,
    C) uint16 regions equal to those of :func:`read_probabilities`, and ``close()``
    (also a context manager): the file itself, memory-mapped, where its pixels are
    stored uncompressed in one piece (:class:`~steinbock_like.io.mapped.MappedRegions`),
    otherwise a scratch copy (:func:`spool_probabilities`).
    """
    from steinbock_like.io.mapped import map_regions

    shape = probabilities_shape(path)  # with the checks of read_probabilities
    mapped = map_regions(path)
    if mapped is not None and mapped.full_shape == shape:
        return mapped
    return spool_probabilities(path)


def spool_probabilities(path: str | Path, directory=None):
    """A probability image copied band by band into a scratch file, to be read in tiles.

    Returns a :class:`~steinbock_like.io.scratch.ScratchImage` (uint16, one channel
    per class) whose ``read(rows, cols)`` gives (rows, cols, C) regions equal to those
    of :func:`read_probabilities`, while the process holds one band of the image at a
    time (about 16 Mi pixels, or a strip where strips are larger; see
    :func:`iter_probability_bands`). Close it (or use it as a context manager).
    """
    from steinbock_like.io.scratch import BAND_PIXELS, ScratchImage

    height, width, classes = probabilities_shape(path)
    scratch = ScratchImage(classes, height, width, directory=directory, dtype=np.uint16)
    try:
        for start, band in iter_probability_bands(path, max(1, BAND_PIXELS // width)):
            for channel in range(classes):
                scratch.write_rows(channel, start, band[..., channel])
    except BaseException:
        scratch.close()
        raise
    return scratch


def write_probabilities(path: str | Path, probabilities: np.ndarray) -> None:
    """Write uint16 YXC probabilities atomically.

    Float input in 0..1 is converted as ilastik does (truncating ``p * 65535``).
    """
    probabilities = np.asarray(probabilities)
    if probabilities.ndim != 3:
        raise ValueError(f"probabilities must be YXC, got shape {probabilities.shape}")
    if probabilities.dtype.kind == "f":
        scaled = np.clip(probabilities.astype(np.float32), 0, 1) * np.float32(PROBABILITY_SCALE)
        probabilities = scaled.astype(np.uint16)
    write_tiff(path, probabilities.astype(np.uint16, copy=False), samples_last=True)
