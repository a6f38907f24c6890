"""A CYX image (float32 by default) kept in an anonymous temporary file instead of memory.

For whole-slide images whose derived channels (e.g. Mesmer's nuclear and
membrane inputs, 1.6 GB each at 20,000 x 20,000 px) should not stay resident
while tiles are segmented: the channels are written band by band and tile
regions read back one at a time. The file lives in the temporary directory
(``TMPDIR``) and is unlinked at creation, so it disappears with the process
even when that is killed. Every access maps the file only for that access, so
pages read or written do not accumulate in the process's resident memory.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator

import numpy as np

#: rows per band handed out by :meth:`ScratchImage.channel_bands` (about 16 Mi pixels)
BAND_PIXELS = 1 << 24


class ScratchImage:
    """A (C, Y, X) image on an unlinked temporary file (a context manager).

    Parameters
    ----------
    num_channels, height, width : int
    directory : str, optional
        Where to create the file (default: the system's temporary directory).
    dtype : dtype
        Pixel type (default float32).
    """

    def __init__(
        self, num_channels: int, height: int, width: int, directory=None, dtype=np.float32
    ) -> None:
        self.dtype = np.dtype(dtype)
        self.full_shape = (num_channels, height, width)
        self.shape = (height, width)
        # closed by close() / the context manager; unlinked from the start
        self._file = tempfile.TemporaryFile(dir=directory, prefix="steinbock-like-scratch-")  # noqa: SIM115
        self._file.truncate(num_channels * height * width * self.dtype.itemsize)

    def __enter__(self) -> ScratchImage:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self._file.close()

    def _map(self, mode: str) -> np.memmap:
        return np.memmap(self._file, dtype=self.dtype, mode=mode, shape=self.full_shape)

    def write_rows(self, channel: int, start: int, band: np.ndarray) -> None:
        """Store ``band`` (rows x X) as rows ``start...`` of ``channel``."""
        mapped = self._map("r+")
        mapped[channel, start : start + band.shape[0]] = band
        mapped.flush()
        del mapped

    def read(self, rows: slice, cols: slice) -> np.ndarray:
        """A (rows, cols, C) copy of a region, channels last (as the tile segmenters take it)."""
        mapped = self._map("r")
        region = np.stack([mapped[channel, rows, cols] for channel in range(len(mapped))], -1)
        del mapped
        return region

    def channel_bands(self, channel: int) -> Iterator[np.ndarray]:
        """Copies of ``channel``'s rows, top to bottom, a band at a time."""
        height, width = self.shape
        step = max(1, BAND_PIXELS // max(1, width))
        for start in range(0, height, step):
            mapped = self._map("r")
            band = np.array(mapped[channel, start : start + step])
            del mapped
            yield band
