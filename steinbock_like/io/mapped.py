"""Image channels and regions as read-only memory maps, where the file allows it.

steinbock writes images as uncompressed TIFF pages, one per channel. When every
page of a CYX image is stored in one contiguous piece, without compression, with
values that float32 holds exactly, a channel can be used in place through a memory
map: no read into a new array, no conversion, and the pages are in the page cache
after the first use. Everything else is read by :mod:`steinbock_like.io.blocks`.

Regions (tiles) of an uncompressed image stored in one piece, such as an
uncompressed probability image, are read the same way (:func:`map_regions`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import tifffile

from steinbock_like.io.tiff import check_finite, kept_shape

#: Value types that read as float32 without rounding (steinbock reads images as float32).
EXACT_IN_FLOAT32 = ("float32", "uint8", "int8", "uint16", "int16")


class MappedChannels:
    """The channels of an image, memory-mapped one at a time.

    Use :func:`map_channels` to get one (or None where the file is not suitable).
    ``channel(i)`` returns a read-only (Y, X) array backed by the file, checked for
    NaN and infinities like every image read; drop it when done, which unmaps it.
    """

    def __init__(self, path: Path, shape, dtype: np.dtype, offsets: list[int]):
        self.path = path
        self.shape = shape
        self.dtype = dtype
        self.offsets = offsets

    def channel(self, index: int, *, check: bool = True) -> np.ndarray:
        """Channel ``index``; ``check=False`` leaves the NaN/infinity check to the
        caller (who then calls :meth:`check` where its results show one)."""
        _, height, width = self.shape
        values = np.memmap(
            self.path, dtype=self.dtype, mode="r", offset=self.offsets[index], shape=(height, width)
        )
        return self.check(values) if check else values

    def check(self, values: np.ndarray) -> np.ndarray:
        """Raise :class:`~steinbock_like.errors.InputError` naming the file if
        ``values`` hold NaN or infinities."""
        return check_finite(values, self.path)


def map_channels(path: str | Path, *, max_channel_bytes: int = 1 << 26) -> MappedChannels | None:
    """Memory maps of a CYX TIFF's channels, or None where they cannot be used.

    None unless every channel is one uncompressed, contiguous page of a type in
    :data:`EXACT_IN_FLOAT32`, of at most ``max_channel_bytes`` (larger channels are
    read in bands instead, so that memory stays bounded). Never raises for an
    unusual or damaged file: the ordinary readers report those.
    """
    path = Path(path)
    try:
        with tifffile.TiffFile(path) as tif:
            series = tif.series[0]
            if len(series.shape) == 2:
                shape = (1, *series.shape)
            elif len(series.shape) == 3:
                shape = tuple(series.shape)
            else:
                return None
            offsets = _contiguous_offsets(series, shape)
            if offsets is not None:  # one piece: the first page tells all (fast)
                dtype = np.dtype(series.dtype).newbyteorder(tif.byteorder)
                size = path.stat().st_size
                return _checked(path, shape, dtype, offsets, size, max_channel_bytes)
            pages = list(series.pages)
            if len(pages) != shape[0]:
                return None
            offsets = []
            dtype = None
            for page in pages:
                if (
                    page is None
                    or not isinstance(page, tifffile.TiffPage)
                    or page.shape != shape[1:]
                    or page.compression != 1
                    or not page.is_contiguous
                    or page.dtype is None
                    or page.dtype.name not in EXACT_IN_FLOAT32
                    or (dtype is not None and page.dtype != dtype)
                ):
                    return None
                dtype = page.dtype
                offsets.append(int(page.dataoffsets[0]))
            dtype = np.dtype(dtype).newbyteorder(tif.byteorder)
            size = path.stat().st_size
    except Exception:
        return None
    return _checked(path, shape, dtype, offsets, size, max_channel_bytes)


def _contiguous_offsets(series, shape) -> list[int] | None:
    """Channel offsets of a series stored as one uncompressed piece (tifffile knows
    this from the first page, without reading the others), else None."""
    keyframe = series.keyframe
    if (
        series.dataoffset is None
        or keyframe.compression != 1
        or keyframe.shape != shape[1:]
        or series.dtype is None
        or np.dtype(series.dtype).name not in EXACT_IN_FLOAT32
    ):
        return None
    nbytes = shape[1] * shape[2] * np.dtype(series.dtype).itemsize
    return [int(series.dataoffset) + i * nbytes for i in range(shape[0])]


def _checked(path, shape, dtype, offsets, size, max_channel_bytes) -> MappedChannels | None:
    nbytes = shape[1] * shape[2] * dtype.itemsize
    if nbytes > max_channel_bytes or any(o + nbytes > size for o in offsets):
        return None
    return MappedChannels(path, shape, dtype, offsets)


class MappedRegions:
    """Regions of a TIFF whose pixels are one uncompressed, contiguous piece.

    Use :func:`map_regions` to get one (or None where the file is not suitable).
    ``read(rows, cols)`` maps the file for that one read and copies the region, so
    that neither the image nor the pages read accumulate in the process's memory.

    Attributes
    ----------
    shape : (int, int)
        (Y, X) of the image.
    full_shape : tuple of int
        The image's shape, singleton axes dropped as the TIFF readers drop them.
    """

    def __init__(self, path: Path, offset: int, dtype: np.dtype, full_shape: tuple[int, ...]):
        self.path, self.offset, self.dtype = path, offset, dtype
        self.full_shape = full_shape
        self.shape = full_shape[:2]

    def __enter__(self) -> MappedRegions:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Nothing to release: every read maps and unmaps the file itself."""

    def read(self, rows: slice, cols: slice) -> np.ndarray:
        """A copy of the region (rows, cols, ...) in native byte order."""
        mapped = np.memmap(
            self.path, dtype=self.dtype, mode="r", offset=self.offset, shape=self.full_shape
        )
        region = np.array(mapped[rows, cols], dtype=self.dtype.newbyteorder("="))
        del mapped
        return region


def map_regions(path: str | Path) -> MappedRegions | None:
    """A TIFF's first series as :class:`MappedRegions`, or None where it cannot be.

    None unless the pixels are one uncompressed, contiguous piece that the file holds
    whole. Never raises for an unusual or damaged file: the ordinary readers report
    those.
    """
    path = Path(path)
    try:
        with tifffile.TiffFile(path) as tif:
            series = tif.series[0]
            offset = series.dataoffset
            if offset is None or series.keyframe.compression != 1 or series.dtype is None:
                return None
            dtype = np.dtype(series.dtype).newbyteorder(tif.byteorder)
            shape = kept_shape(series.shape, series.axes)
        if offset + int(np.prod(shape)) * dtype.itemsize > path.stat().st_size:
            return None  # cut short
    except Exception:
        return None
    return MappedRegions(path, int(offset), dtype, shape)
