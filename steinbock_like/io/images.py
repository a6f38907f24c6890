"""Multichannel images: TIFF/OME-TIFF in CYX order, read as float32 without rescaling."""

import contextlib
import os
import warnings
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
import tifffile

from steinbock_like.errors import InputError
from steinbock_like.io.atomic import atomic_path
from steinbock_like.io.tiff import (
    check_finite,
    read_tiff,
    tiff_shape,
    tifffile_errors,
    write_tiff,
)
from steinbock_like.layout import IMAGE_SUFFIXES

#: Environment variable: the most bytes (as float32) an image read whole may take.
MAX_IMAGE_BYTES_ENV = "STEINBOCK_LIKE_MAX_IMAGE_BYTES"
#: Pixels per channel beyond which an image is refused whatever the memory: 2**31
#: overflows the 32-bit indices of the tools downstream (OpenCV, ONNX, ilastik).
MAX_CHANNEL_PIXELS = 2**31


def image_memory_limit() -> int:
    """Bytes a whole float32 image may take: ``$STEINBOCK_LIKE_MAX_IMAGE_BYTES``, else
    a quarter of the machine's memory (commands hold a few copies of an image)."""
    configured = os.environ.get(MAX_IMAGE_BYTES_ENV)
    if configured:
        with contextlib.suppress(ValueError):
            return int(float(configured))
    try:
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        memory = 16 << 30
    return memory // 4


def check_image_size(path: str | Path, shape: tuple[int, ...]) -> None:
    """Refuse an image too large to hold whole: beyond :data:`MAX_CHANNEL_PIXELS` per
    channel, or beyond :func:`image_memory_limit` bytes as float32.

    Judged from the shape alone (e.g. :func:`image_shape`, the TIFF header), so a tiny
    compressed file that unpacks to gigabytes is refused before it is unpacked.

    Raises
    ------
    InputError
        One line giving the image's size and the limit.
    """
    *channels, height, width = shape
    num_channels = int(np.prod(channels)) if channels else 1
    pixels = int(height) * int(width)
    size = f"{num_channels} x {height} x {width}"
    if pixels > MAX_CHANNEL_PIXELS:
        raise InputError(
            path, f"image of {size} pixels: more than {MAX_CHANNEL_PIXELS} pixels per channel"
        )
    needed, limit = num_channels * pixels * 4, image_memory_limit()
    if needed > limit:
        raise InputError(
            path,
            f"image of {size} pixels needs {needed / 2**30:.1f} GiB as float32, beyond the "
            f"limit of {limit / 2**30:.1f} GiB (set {MAX_IMAGE_BYTES_ENV} to raise it, or "
            "split the image)",
        )


#: A strip: an image with a side under MIN_SEGMENT_SIDE pixels and the other over
#: MAX_STRIP_LENGTH. The tile-based segmenters (Mesmer, Cellpose) refuse it: it holds no
#: whole cell at 1 um/pixel, and the model's fixed-size tiles (256 px for Mesmer, after
#: its 2x resize) would be mostly padding: a 10 x 100,000 strip costs ~800 tiles for
#: 1 Mpx, a quarter of an hour and more on a CPU. Outside this rule, padding costs at
#: most 4x an image's own pixels (or a few tiles for a small image), so time follows
#: the pixel count.
MIN_SEGMENT_SIDE = 32
MAX_STRIP_LENGTH = 1024


def check_segmentable(path: str | Path, shape: tuple[int, ...]) -> None:
    """Refuse a strip (see :data:`MIN_SEGMENT_SIDE`) before a tile-based segmenter
    spends hours on it; ``shape`` ends with (height, width).

    Raises
    ------
    InputError
        One line giving the image's size and the rule.
    """
    height, width = (int(n) for n in shape[-2:])
    if min(height, width) < MIN_SEGMENT_SIDE and max(height, width) > MAX_STRIP_LENGTH:
        raise InputError(
            path,
            f"image of {height} x {width} pixels is too thin to segment (a side under "
            f"{MIN_SEGMENT_SIDE} pixels and the other over {MAX_STRIP_LENGTH}: no whole "
            "cell fits, and the model's tiles would be mostly padding); check the image's "
            "axis order",
        )


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

    Raises
    ------
    InputError
        For an unreadable file, a shape that is not CYX, another channel count
        than ``num_channels``, NaN/infinite pixels, or a size beyond
        :func:`check_image_size`'s limits (judged before reading the pixels).
    """
    check_image_size(path, image_shape(path))
    array = read_tiff(path)
    if array.ndim == 2:
        array = array[np.newaxis]
    if array.ndim != 3:
        raise InputError(path, f"expected a CYX image, found {array.ndim} dimensions {array.shape}")
    if num_channels is not None and array.shape[0] != num_channels:
        raise InputError(
            path, f"image has {array.shape[0]} channels but the panel lists {num_channels}"
        )
    return check_finite(array.astype(np.float32, copy=False), path)


def iter_image_channels(
    path: str | Path, indices: Iterable[int] | None = None
) -> Iterator[tuple[int, np.ndarray]]:
    """Yield ``(index, channel)`` pairs (float32 YX) of an image, one channel in memory at a time.

    Where the TIFF stores one page per channel (as steinbock and this toolkit write
    images) only the requested pages are read; other layouts are read whole once.

    Raises
    ------
    InputError
        For an unreadable or truncated file, an index beyond the channel count, or
        NaN/infinite pixels.
    """
    num_channels, height, width = image_shape(path)
    indices = list(range(num_channels)) if indices is None else list(indices)
    bad = [i for i in indices if not 0 <= i < num_channels]
    if bad:
        raise InputError(path, f"channel {bad[0]} requested but the image has {num_channels}")
    pages = None
    try:
        with tifffile_errors() as errors, tifffile.TiffFile(path) as tif:
            series = tif.series[0]
            if len(series.pages) == num_channels and all(
                page is not None and page.shape == (height, width) for page in series.pages
            ):
                pages = series.pages
                for index in indices:
                    channel = pages[index].asarray()
                    if errors:
                        break
                    yield index, check_finite(channel.astype(np.float32, copy=False), path)
    except InputError:
        raise
    except Exception as error:
        raise InputError(path, f"unreadable or truncated TIFF ({type(error).__name__})") from error
    if errors:
        raise InputError(path, f"unreadable or truncated TIFF ({errors[0]})")
    if pages is None:  # channels are not pages (e.g. interleaved samples): read it whole
        image = read_image(path)
        for index in indices:
            yield index, image[index]


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


def checked_channels(
    channels: Iterable[np.ndarray], shape: tuple[int, int, int], dtype, *, convert: bool
) -> Iterator[np.ndarray]:
    """Yield the (Y, X) ``channels`` of a ``shape`` (C, Y, X) image one at a time, for a
    page-by-page writer; ``convert``: cast each to ``dtype``, else require it. A wrong
    shape, type or channel count raises ValueError (the writer's temp file is dropped)."""
    num_channels, height, width = shape
    count = 0
    for channel in channels:
        channel = np.asarray(channel, dtype=dtype if convert else None)
        if channel.dtype != dtype or channel.shape != (height, width):
            raise ValueError(
                f"expected {np.dtype(dtype).name} {(height, width)}, got {channel.dtype} "
                f"{channel.shape}"
            )
        count += 1
        yield channel
    if count != num_channels:
        raise ValueError(f"got {count} channels, expected {num_channels}")


def write_image_channels(
    path: str | Path, channels: Iterable[np.ndarray], shape: tuple[int, int, int]
) -> None:
    """Write a float32 CYX image one channel at a time, atomically.

    Only one channel is held in memory, so images larger than memory can be
    written from a generator.
    """
    with atomic_path(path) as tmp:
        tifffile.imwrite(
            tmp,
            checked_channels(channels, shape, np.float32, convert=True),
            shape=shape,
            dtype=np.float32,
            compression="zlib",
            photometric="minisblack",
            bigtiff=int(np.prod(shape)) * 4 > 2**31,
        )


def list_images(directory: str | Path, kind: str = "image") -> list[Path]:
    """Sorted image files (``.tiff``/``.tif``) in ``directory``, temp files excluded.

    ``kind`` names the directory in the error when it is missing (image, mask, ...).
    """
    return list_files(directory, IMAGE_SUFFIXES, kind)


def list_files(directory: str | Path, suffixes: tuple[str, ...], kind: str) -> list[Path]:
    """Sorted files with one of ``suffixes`` in ``directory``; hidden and temporary
    files (names starting with a dot) excluded.

    Raises
    ------
    InputError
        If the directory does not exist ("``kind`` directory not found").
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise InputError(directory, f"{kind} directory not found")
    return sorted(
        p
        for p in directory.iterdir()
        if p.is_file() and p.suffix.lower() in suffixes and not p.name.startswith(".")
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
