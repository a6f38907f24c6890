"""Pixel values as steinbock hands them to CellProfiler.

steinbock 0.16.5's ``measure cellprofiler prepare`` converts the float32 images to uint16
by rounding to the nearest integer and clipping to 0..65535, and the masks to uint16.
CellProfiler then scales both by their bit depth ("Set intensity range from: Image
bit-depth"): it measures ``round(x) / 65535``. So a CellProfiler intensity times
:data:`CELLPROFILER_SCALE` is the mean of the rounded pixel values.
"""

from __future__ import annotations

import numpy as np

from steinbock_like.errors import SteinbockLikeError

#: CellProfiler divides 16-bit pixel values by this (the uint16 maximum)
CELLPROFILER_SCALE = 65535


def to_cellprofiler_channel(channel: np.ndarray) -> np.ndarray:
    """One image channel as uint16: rounded half to even, clipped to 0..65535.

    Parameters
    ----------
    channel : ndarray
        Pixel values (float or integer).

    Returns
    -------
    ndarray of uint16
    """
    channel = np.asarray(channel)
    if channel.dtype == np.uint16:
        return channel
    if not np.issubdtype(channel.dtype, np.integer):
        channel = np.around(channel)
    return np.clip(channel, 0, CELLPROFILER_SCALE).astype(np.uint16)


def to_cellprofiler_mask(mask: np.ndarray) -> np.ndarray:
    """A mask as uint16 (CellProfiler's 16-bit label image).

    Raises
    ------
    SteinbockLikeError
        If an object ID exceeds 65535 (steinbock would clip it, merging objects).
    """
    mask = np.asarray(mask)
    if mask.size and int(mask.max()) > CELLPROFILER_SCALE:
        raise SteinbockLikeError(
            f"object ID {int(mask.max())} exceeds 65535: CellProfiler's 16-bit masks cannot "
            "hold it (renumber the mask)"
        )
    return mask.astype(np.uint16, copy=False)
