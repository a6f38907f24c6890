"""Reading image channels in bands of rows, so huge images are never held whole.

An image's channel (one TIFF page per channel, as steinbock writes images) is
decoded strip by strip or tile row by tile row; the bands handed out hold at
least ``min_rows`` rows (the last one may hold fewer). Images whose channels are
not pages (e.g. interleaved samples) are read whole once, as a fallback.
"""

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import tifffile

from steinbock_like.errors import InputError
from steinbock_like.io.images import image_shape, read_image
from steinbock_like.io.tiff import tifffile_errors

# A band of about this many pixels is decoded at a time (16 Mi pixels = 64 MiB float32).
BAND_PIXELS = 1 << 24


def band_rows(width: int, pixels: int = BAND_PIXELS) -> int:
    """Rows per band for an image ``width`` pixels wide."""
    return max(1, pixels // max(1, width))


def iter_channel_bands(
    path: str | Path, index: int, *, min_rows: int | None = None
) -> Iterator[tuple[int, np.ndarray]]:
    """Yield ``(first_row, band)`` pairs covering channel ``index`` of an image, top to bottom.

    Parameters
    ----------
    path : path-like
        CYX TIFF image.
    index : int
        Channel (page) to read.
    min_rows : int, optional
        Rows per band (at least; bands end on strip/tile boundaries). By default
        about :data:`BAND_PIXELS` pixels per band.

    Yields
    ------
    int, ndarray of float32 (rows, X)

    Raises
    ------
    InputError
        For an unreadable or truncated file, or an index beyond the channel count.
    """
    num_channels, height, width = image_shape(path)
    if not 0 <= index < num_channels:
        raise InputError(path, f"channel {index} requested but the image has {num_channels}")
    min_rows = band_rows(width) if min_rows is None else max(1, int(min_rows))
    fallback = False
    try:
        with tifffile_errors() as errors, tifffile.TiffFile(path) as tif:
            pages = tif.series[0].pages
            if len(pages) != num_channels or any(
                page is None or page.shape != (height, width) for page in pages
            ):
                fallback = True
            else:
                page = pages[index]
                if height <= min_rows:
                    channel = page.asarray()
                    if not errors:
                        yield 0, channel.astype(np.float32, copy=False)
                else:
                    yield from _page_bands(page, height, width, min_rows, errors)
    except InputError:
        raise
    except Exception as error:
        raise InputError(path, f"unreadable or truncated TIFF ({type(error).__name__})") from error
    if errors:
        raise InputError(path, f"unreadable or truncated TIFF ({errors[0]})")
    if fallback:
        image = read_image(path)
        for start in range(0, height, min_rows):
            yield start, image[index, start : start + min_rows]


def _page_bands(page, height: int, width: int, min_rows: int, errors: list):
    band: list[np.ndarray] = []
    band_start = band_count = 0
    row_block = None
    row_start = -1
    for data, position, shape in page.segments(maxworkers=1):
        if errors:
            return
        y0, x0 = int(position[-3]), int(position[-2])
        if y0 != row_start:  # a new strip / row of tiles begins
            if row_block is not None:
                band.append(row_block)
                band_count += len(row_block)
                if band_count >= min_rows:
                    yield band_start, np.concatenate(band) if len(band) > 1 else band[0]
                    band, band_start, band_count = [], y0, 0
            row_start = y0
            rows = min(int(shape[-3]), height - y0)
            row_block = np.zeros((rows, width), dtype=np.float32)
        rows = len(row_block)
        cols = min(int(shape[-2]), width - x0)
        if data is not None:
            row_block[:, x0 : x0 + cols] = data.reshape(shape)[0, :rows, :cols, 0]
    if row_block is not None:
        band.append(row_block)
    if band:
        yield band_start, np.concatenate(band) if len(band) > 1 else band[0]
