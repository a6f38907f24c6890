"""Images and masks as OME-Zarr (``steinbock-like export ome-zarr``), via ome-zarr-py.

One ``<name>.ome.zarr`` store per image: the image (CYX, float32, channel names
``<channel>_<name>`` in the ``omero`` metadata, a resolution pyramid where the
image is large enough) and, where given, its mask as the label image ``cells``.
Pixels are read one channel at a time (dask), so images larger than memory
can be written.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from steinbock_like.io.export.tables import atomic_directory

SUFFIX = ".ome.zarr"
LABELS_NAME = "cells"
CHUNK = 1024
MIN_LEVEL_SIZE = 256


def scale_factors(shape: Sequence[int]) -> tuple[int, ...]:
    """Pyramid factors (2, 4, ...) while the smallest level keeps >= 256 pixels a side."""
    smallest = min(shape[-2:])
    return tuple(2**k for k in range(1, 5) if smallest // 2**k >= MIN_LEVEL_SIZE)


def lazy_image(path: str | Path):
    """A dask array (C, Y, X) float32 reading one channel per chunk from a TIFF image."""
    import dask
    import dask.array as da

    from steinbock_like.io.images import image_shape, iter_image_channels

    num_channels, height, width = image_shape(path)

    def read(index: int) -> np.ndarray:
        return next(iter_image_channels(path, [index]))[1]

    return da.stack(
        [
            da.from_delayed(dask.delayed(read)(i), shape=(height, width), dtype=np.float32)
            for i in range(num_channels)
        ]
    )


def write_ome_zarr(
    path: str | Path,
    image,
    channel_names: Sequence[str],
    mask: np.ndarray | None = None,
) -> None:
    """Write one image (and its mask) as an OME-Zarr store, atomically.

    Parameters
    ----------
    path : path-like
        ``<name>.ome.zarr`` (a directory).
    image : ndarray or dask array (C, Y, X)
    channel_names : sequence of str
        One per channel (``omero`` channel labels).
    mask : ndarray (Y, X), optional
        Object mask, written as the label image ``cells``.
    """
    import zarr
    from ome_zarr.writer import write_image, write_labels

    factors = scale_factors(image.shape)
    chunks = (1, min(CHUNK, image.shape[1]), min(CHUNK, image.shape[2]))
    omero = {"channels": [{"label": str(n), "active": True} for n in channel_names]}
    with atomic_directory(path) as tmp:
        root = zarr.open_group(str(tmp), mode="w")
        write_image(
            image,
            root,
            axes="cyx",
            scale_factors=factors,
            storage_options={"chunks": chunks},
            metadata={"omero": omero},
        )
        if mask is not None:
            write_labels(
                mask,
                root,
                name=LABELS_NAME,
                axes="yx",
                scaler=None,
                scale_factors=factors,
                storage_options={"chunks": chunks[1:]},
            )


def lazy_mask(path: str | Path, shape: tuple[int, int] | None = None):
    """A dask array (Y, X) that reads a mask only when computed.

    Raises
    ------
    InputError
        If the file is not a 2-D mask or its shape differs from ``shape``.
    """
    import dask
    import dask.array as da
    import tifffile

    from steinbock_like.io.masks import read_mask
    from steinbock_like.io.tiff import tiff_shape

    mask_shape = tuple(tiff_shape(path))
    if len(mask_shape) != 2 or (shape is not None and mask_shape != tuple(shape)):
        read_mask(path, shape=shape)  # raises the one-line error
    with tifffile.TiffFile(path) as tif:
        wide = np.dtype(tif.series[0].dtype).itemsize > 2
    dtype = np.dtype(np.uint32 if wide else np.uint16)

    def read() -> np.ndarray:
        return read_mask(path).astype(dtype, copy=False)

    return da.from_delayed(dask.delayed(read)(), shape=mask_shape, dtype=dtype)
