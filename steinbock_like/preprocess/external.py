"""External images (any TIFF / OME-TIFF) to the standard CYX layout."""

from __future__ import annotations

import numpy as np

PROJECTIONS = ("max", "mean", "sum", "first")


def to_cyx(array: np.ndarray, axes: str | None = None, *, projection: str = "max") -> np.ndarray:
    """Bring an image array into channels-first (C, Y, X) order.

    Parameters
    ----------
    array : ndarray
        2-D (YX), 3-D (CYX or YXC), 4-D (ZCYX) or higher with singleton extra axes.
    axes : str, optional
        One letter per axis as tifffile names them (``"ZCYX"``, ``"YXS"``,
        ``"TZCYX"``, ``"IYX"``...). ``S`` (samples, e.g. RGB) and ``C`` are
        channels; ``Z`` (and ``T``) are projected; ``Y`` and ``X`` stay. Without
        usable axes, a 3-D array is YXC when its last axis is the strictly
        shortest (CYX otherwise) and a 4-D array is ZCYX; the pages of a plain
        multi-page TIFF (``I``/``Q``) are channels.
    projection : {"max", "mean", "sum", "first"}
        How Z (and T) planes are combined into one.

    Returns
    -------
    ndarray, shape (C, Y, X)
        The input's dtype except for ``mean`` (float).

    Raises
    ------
    ValueError
        For a layout that cannot be understood (e.g. two channel axes).
    """
    if projection not in PROJECTIONS:
        raise ValueError(f"unknown projection '{projection}' (one of {', '.join(PROJECTIONS)})")
    array = np.asarray(array)
    if axes is None or len(axes) != array.ndim or not {"Y", "X"} <= set(axes):
        axes = _guess_axes(array.shape)
    # drop singleton axes other than Y and X
    keep = [i for i, a in enumerate(axes) if a in "YX" or array.shape[i] > 1]
    array = array.reshape([array.shape[i] for i in keep])
    axes = "".join(axes[i] for i in keep)
    # every remaining axis except Y, X and one channel axis is projected
    channel_axes = [i for i, a in enumerate(axes) if a in "CS"]
    other = [i for i, a in enumerate(axes) if a not in "YXCS"]
    if len(channel_axes) > 1:
        # e.g. C and S both > 1: treat as one channel axis (C-major)
        raise ValueError(f"image has several channel axes ({axes}, shape {array.shape})")
    if not channel_axes and len(other) == 1 and axes[other[0]] in "IQ":
        channel_axes, other = other, []  # a plain multi-page stack (IYX/QYX): pages are channels
    if other:
        array = _project(array, tuple(other), projection)
        axes = "".join(a for i, a in enumerate(axes) if i not in other)
        channel_axes = [i for i, a in enumerate(axes) if a not in "YX"]
    order = [*channel_axes, axes.index("Y"), axes.index("X")]
    array = np.transpose(array, order) if order != list(range(array.ndim)) else array
    if array.ndim == 2:
        array = array[np.newaxis]
    return array


def _guess_axes(shape: tuple[int, ...]) -> str:
    if len(shape) == 2:
        return "YX"
    if len(shape) == 3:
        yxc = shape[2] < shape[0] and shape[2] < shape[1]
        return "YXC" if yxc else "CYX"
    if len(shape) == 4:
        return "ZCYX"
    if len(shape) == 5:
        return "TZCYX"
    raise ValueError(f"unsupported image shape {shape}")


def _project(array: np.ndarray, axis: tuple[int, ...], projection: str) -> np.ndarray:
    if projection == "max":
        return array.max(axis=axis)
    if projection == "mean":
        return array.mean(axis=axis, dtype=np.float64).astype(np.float32)
    if projection == "sum":
        return array.sum(axis=axis, dtype=np.float64 if array.dtype.kind == "f" else None)
    index = tuple(0 if i in axis else slice(None) for i in range(array.ndim))
    return array[index]
