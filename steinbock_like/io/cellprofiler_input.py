"""``cellprofiler_input/``: images and masks as steinbock's measurement pipeline reads them.

As steinbock 0.16.5's ``measure cellprofiler prepare`` writes them: uncompressed 16-bit
ImageJ hyperstacks, ``{image}.tiff`` with C pages (TZCYXS 1 x 1 x C x Y x X x 1) and
``{image}_mask.tiff`` with one page (1 x 1 x 1 x Y x X x 1). CellProfiler reads the first
as a C-channel color image and the second as a grayscale image, both divided by 65535.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np
import tifffile

from steinbock_like.io.atomic import atomic_path
from steinbock_like.io.images import checked_channels

#: steinbock's file name of an image's mask in ``cellprofiler_input/``
MASK_SUFFIX = "_mask.tiff"


def write_cellprofiler_image(
    path: str | Path, channels: Iterable[np.ndarray], shape: tuple[int, int, int]
) -> None:
    """Write uint16 channels (each YX) as an ImageJ hyperstack, one channel in memory.

    Parameters
    ----------
    path : path-like
        Output file, written atomically.
    channels : iterable of ndarray of uint16
        The C channels in order.
    shape : (int, int, int)
        (C, Y, X).
    """
    num_channels, height, width = shape
    with atomic_path(path) as tmp:
        tifffile.imwrite(
            tmp,
            checked_channels(channels, shape, np.uint16, convert=False),
            shape=(1, 1, num_channels, height, width, 1),
            dtype=np.uint16,
            imagej=True,
        )


def write_cellprofiler_mask(path: str | Path, mask: np.ndarray) -> None:
    """Write a uint16 YX mask as a one-page ImageJ hyperstack, atomically."""
    mask = np.asarray(mask)
    if mask.dtype != np.uint16 or mask.ndim != 2:
        raise ValueError(f"expected a uint16 YX mask, got {mask.dtype} {mask.shape}")
    with atomic_path(path) as tmp:
        tifffile.imwrite(tmp, mask[np.newaxis, np.newaxis, np.newaxis, :, :, np.newaxis],
                         imagej=True)  # fmt: skip
