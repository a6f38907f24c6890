"""Hot pixel filter: a pixel much brighter than all its neighbours takes their maximum."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

# The 8-neighbourhood without the pixel itself.
_NEIGHBOURS = np.array([[1, 1, 1], [1, 0, 1], [1, 1, 1]], dtype=bool)


def neighbour_maximum(channel: np.ndarray) -> np.ndarray:
    """The maximum of the 8 neighbours of every pixel (edges mirrored, the edge pixel
    itself not repeated: scipy's ``mirror`` mode).

    Parameters
    ----------
    channel : ndarray, shape (Y, X)

    Returns
    -------
    ndarray, same shape and dtype
    """
    return ndimage.maximum_filter(channel, footprint=_NEIGHBOURS, mode="mirror")


def filter_hot_pixels(image: np.ndarray, delta: float, *, out: np.ndarray | None = None):
    """Replace hot pixels by the maximum of their 8 neighbours, channel by channel.

    A pixel is hot where it exceeds the maximum of its neighbours by more than
    ``delta`` (steinbock's ``--hpf DELTA``). Only one channel's neighbour
    maximum is held in memory at a time.

    Parameters
    ----------
    image : ndarray, shape (C, Y, X) or (Y, X)
        Intensities (float32 for steinbock's values).
    delta : float
        Threshold on the difference to the neighbours' maximum.
    out : ndarray, optional
        Where to write the result; may be ``image`` itself (in place).

    Returns
    -------
    ndarray
        The filtered image (``out`` if given).

    Examples
    --------
    >>> import numpy as np
    >>> image = np.zeros((1, 3, 3), np.float32)
    >>> image[0, 1, 1] = 100
    >>> float(filter_hot_pixels(image, 50)[0, 1, 1])
    0.0
    """
    image = np.asarray(image)
    if out is None:
        out = image.copy()
    elif out is not image:
        out[...] = image
    channels = out[np.newaxis] if out.ndim == 2 else out
    if channels.ndim != 3:
        raise ValueError(f"expected a (C, Y, X) or (Y, X) image, got shape {image.shape}")
    for channel in channels:
        maximum = neighbour_maximum(channel)
        hot = (channel - maximum) > delta
        channel[hot] = maximum[hot]
    return out
