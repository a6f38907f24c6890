"""Object masks: YX, 0 = background, one unique positive ID per object.

Written as uint16; uint32 (with a warning) only when an ID exceeds 65535.
"""

import logging
from pathlib import Path

import numpy as np

from steinbock_like.errors import InputError
from steinbock_like.io.tiff import read_tiff, write_tiff

logger = logging.getLogger(__name__)

UINT16_MAX = np.iinfo(np.uint16).max


def read_mask(path: str | Path, *, shape: tuple[int, int] | None = None) -> np.ndarray:
    """Read an object mask.

    Parameters
    ----------
    path : path-like
        Mask TIFF.
    shape : (int, int), optional
        Expected (Y, X), usually the matching image's; a mismatch is an error.

    Returns
    -------
    ndarray of uint16 or uint32, shape (Y, X)
    """
    mask = read_tiff(path)
    if mask.ndim != 2:
        raise InputError(path, f"a mask must be 2-D (YX), found shape {mask.shape}")
    if mask.dtype.kind not in "ui":
        raise InputError(path, f"a mask must hold integer object IDs, found dtype {mask.dtype}")
    if mask.dtype.kind == "i" or mask.dtype.itemsize > 4:
        if mask.min(initial=0) < 0:
            raise InputError(path, "a mask must not hold negative object IDs")
        mask = mask.astype(mask_dtype(mask))
    if shape is not None and tuple(mask.shape) != tuple(shape):
        raise InputError(
            path, f"mask shape {tuple(mask.shape)} does not match image shape {tuple(shape)}"
        )
    return mask


def mask_dtype(mask: np.ndarray) -> np.dtype:
    """uint16 unless an object ID needs more bits."""
    return np.dtype(np.uint32 if int(mask.max(initial=0)) > UINT16_MAX else np.uint16)


def write_mask(path: str | Path, mask: np.ndarray) -> None:
    """Write an object mask atomically as uint16 (uint32 beyond 65535 IDs, with a warning)."""
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ValueError(f"a mask must be 2-D, got shape {mask.shape}")
    if mask.size and mask.min() < 0:
        raise ValueError("a mask must not hold negative IDs")
    dtype = mask_dtype(mask)
    if dtype == np.uint32:
        logger.warning("%s: more than 65535 objects, written as uint32", Path(path))
    write_tiff(path, mask.astype(dtype, copy=False))
