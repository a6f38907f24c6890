"""Multichannel images: TIFF/OME-TIFF in CYX order, read as float32 without rescaling."""

import warnings
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import tifffile

from steinbock_like.errors import InputError
from steinbock_like.io.atomic import atomic_path
from steinbock_like.io.tiff import read_tiff, tiff_shape, write_tiff
from steinbock_like.layout import IMAGE_SUFFIXES


def read_image(path: str | Path, *, num_channels: int | None = None) -> np.ndarray:
    """Read a multichannel image as float32 CYX (a 2-D image becomes 1 x Y x X).

    Parameters
    ----------
    path : path-like
        TIFF or OME-TIFF file, channels first.
    num_channels : int, optional
        Expected number of channels (from the panel); a mismatch is an error.

    Returns
    -------
    ndarray of float32, shape (C, Y, X)
        Pixel values as stored (no rescaling).
    """
    array = read_tiff(path)
    if array.ndim == 2:
        array = array[np.newaxis]
    if array.ndim != 3:
        raise InputError(path, f"expected a CYX image, found {array.ndim} dimensions {array.shape}")
    if num_channels is not None and array.shape[0] != num_channels:
        raise InputError(
            path, f"image has {array.shape[0]} channels but the panel lists {num_channels}"
        )
    return array.astype(np.float32, copy=False)


def image_shape(path: str | Path) -> tuple[int, int, int]:
    """Return (C, Y, X) of an image file without reading its pixels."""
    shape = tiff_shape(path)
    if len(shape) == 2:
        return (1, *shape)
    if len(shape) != 3:
        raise InputError(path, f"expected a CYX image, found shape {shape}")
    return shape


def write_image(path: str | Path, image: np.ndarray) -> None:
    """Write a float32 CYX image atomically (zlib-compressed TIFF)."""
    image = np.asarray(image)
    if image.ndim == 2:
        image = image[np.newaxis]
    if image.ndim != 3:
        raise ValueError(f"expected a CYX image, got shape {image.shape}")
    write_tiff(path, image.astype(np.float32, copy=False))


def write_image_channels(
    path: str | Path, channels: Iterable[np.ndarray], shape: tuple[int, int, int]
) -> None:
    """Write a float32 CYX image one channel at a time, atomically.

    Only one channel is held in memory, so images larger than memory can be
    written from a generator.
    """
    num_channels, height, width = shape

    def pages():
        count = 0
        for channel in channels:
            channel = np.asarray(channel, dtype=np.float32)
            if channel.shape != (height, width):
                raise ValueError(f"channel shape {channel.shape} != {(height, width)}")
            count += 1
            yield channel
        if count != num_channels:
            raise ValueError(f"got {count} channels, expected {num_channels}")

    with atomic_path(path) as tmp:
        tifffile.imwrite(
            tmp,
            pages(),
            shape=shape,
            dtype=np.float32,
            compression="zlib",
            photometric="minisblack",
            bigtiff=num_channels * height * width * 4 > 2**31,
        )


def list_images(directory: str | Path) -> list[Path]:
    """Sorted image files (``.tiff``/``.tif``) in ``directory``, temp files excluded."""
    directory = Path(directory)
    if not directory.is_dir():
        raise InputError(directory, "image directory not found")
    return sorted(
        p
        for p in directory.iterdir()
        if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".")
    )


def image_name(path: str | Path) -> str:
    """The image's name: its file name without ``.tiff``/``.tif``/``.ome.tiff``."""
    name = Path(path).name
    for suffix in (".ome.tiff", ".ome.tif", ".tiff", ".tif", ".h5"):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return Path(name).stem


def warn_once(message: str) -> None:
    warnings.warn(message, stacklevel=2)
