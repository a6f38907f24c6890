"""Reading image channels in bands of rows, so huge images are never held whole.

An image's channel (one TIFF page per channel, as steinbock writes images) is
decoded strip by strip or tile row by tile row; the bands handed out hold at
least ``min_rows`` rows (the last one may hold fewer). Uncompressed channels stored
in one piece each are read through a memory map instead, exactly ``min_rows`` rows
at a time (a page written as one strip, as ImageJ writes them, would otherwise be
read whole). Images whose channels are not pages (e.g. interleaved samples) are
read whole once, as a fallback.
"""

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import tifffile

from steinbock_like.errors import InputError
from steinbock_like.io.images import image_shape, read_image
from steinbock_like.io.tiff import check_finite, tifffile_errors

# A band of about this many pixels is decoded at a time (16 Mi pixels = 64 MiB float32).
BAND_PIXELS = 1 << 24
# Bytes of the file read at a time (tifffile's default, 256 MiB, is most of the memory
# a banded read of a whole-slide image takes).
READ_BUFFER = 1 << 24


def band_rows(width: int, pixels: int = BAND_PIXELS) -> int:
    """Rows per band for an image ``width`` pixels wide."""
    return max(1, pixels // max(1, width))


def iter_channel_bands(
    path: str | Path, index: int, *, min_rows: int | None = None
) -> Iterator[tuple[int, np.ndarray]]:
    """Yield ``(first_row, band)`` pairs covering channel ``index`` of an image, top to bottom.

    Opens the file for this one channel; to read many channels use
    :class:`ChannelBands`, which parses the file once.

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
    with ChannelBands(path) as reader:
        yield from reader.bands(index, min_rows=min_rows)


class ChannelBands:
    """An open CYX TIFF whose channels are read in bands of rows (a context manager).

    Attributes
    ----------
    shape : (int, int, int)
        (C, Y, X) of the image.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.shape = image_shape(path)
        self._tif = None
        self._pages = None
        self._image = None
        self._mapped = None

    def __enter__(self) -> "ChannelBands":
        from steinbock_like.io.mapped import map_channels

        num_channels, height, width = self.shape
        # any channel size: only a band at a time is mapped and copied
        mapped = map_channels(self.path, max_channel_bytes=1 << 62)
        if mapped is not None and mapped.shape == self.shape:
            self._mapped = mapped
            return self  # no pages to decode
        try:
            with tifffile_errors() as errors:
                self._tif = tifffile.TiffFile(self.path)
                pages = self._tif.series[0].pages
                if len(pages) == num_channels and all(
                    page is not None and page.shape == (height, width) for page in pages
                ):
                    self._pages = list(pages)
        except Exception as error:
            self.close()
            raise InputError(
                self.path, f"unreadable or truncated TIFF ({type(error).__name__})"
            ) from error
        if errors:
            self.close()
            raise InputError(self.path, f"unreadable or truncated TIFF ({errors[0]})")
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        if self._tif is not None:
            self._tif.close()
        self._tif = self._pages = self._image = self._mapped = None

    def bands(self, index: int, *, min_rows: int | None = None):
        """Yield ``(first_row, float32 band)`` pairs of channel ``index``, top to bottom."""
        num_channels, height, width = self.shape
        if not 0 <= index < num_channels:
            raise InputError(
                self.path, f"channel {index} requested but the image has {num_channels}"
            )
        min_rows = band_rows(width) if min_rows is None else max(1, int(min_rows))
        if self._mapped is not None:
            for start in range(0, height, min_rows):
                band = self._mapped.channel(index, check=False)[start : start + min_rows]
                yield start, check_finite(band.astype(np.float32), self.path)
            return
        if self._pages is None:  # channels are not pages: read the image whole, once
            if self._image is None:
                self._image = read_image(self.path)
            for start in range(0, height, min_rows):
                yield start, self._image[index, start : start + min_rows]
            return
        for start, band in self._read_bands(index, min_rows):
            yield start, check_finite(band, self.path)

    def _read_bands(self, index: int, min_rows: int):
        num_channels, height, width = self.shape
        page = self._pages[index]
        try:
            with tifffile_errors() as errors:
                if height <= min_rows:
                    channel = page.asarray()
                    if not errors:
                        yield 0, channel.astype(np.float32, copy=False)
                else:
                    yield from page_bands(page, height, width, min_rows, errors)
        except InputError:
            raise
        except Exception as error:
            raise InputError(
                self.path, f"unreadable or truncated TIFF ({type(error).__name__})"
            ) from error
        if errors:
            raise InputError(self.path, f"unreadable or truncated TIFF ({errors[0]})")


def page_bands(
    page, height: int, width: int, min_rows: int, errors: list, *, samples: bool = False
):
    """``(first_row, band)`` pairs of one page, decoded a strip (or row of tiles) at a time.

    Bands are float32 (rows, X) of the first sample, or with ``samples`` the page's own
    dtype, (rows, X, S) with every sample (contiguous YXS pages, e.g. probabilities).
    """
    band: list[np.ndarray] = []
    band_start = band_count = 0
    row_block = None
    row_start = -1
    # tifffile reads 256 MiB at a time by default: a band at a time is enough
    for data, position, shape in page.segments(maxworkers=1, buffersize=READ_BUFFER):
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
            if samples:
                row_block = np.zeros((rows, width, int(shape[-1])), dtype=page.dtype)
            else:
                row_block = np.zeros((rows, width), dtype=np.float32)
        rows = len(row_block)
        cols = min(int(shape[-2]), width - x0)
        if data is not None:
            segment = data.reshape(shape)[0, :rows, :cols]
            row_block[:, x0 : x0 + cols] = segment if samples else segment[..., 0]
    if row_block is not None:
        band.append(row_block)
    if band:
        yield band_start, np.concatenate(band) if len(band) > 1 else band[0]
