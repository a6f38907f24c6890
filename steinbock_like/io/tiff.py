"""Low-level TIFF access shared by the image, mask and probability readers."""

import contextlib
import logging
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import tifffile

from steinbock_like.errors import InputError, describe_error
from steinbock_like.io.atomic import atomic_path


@contextlib.contextmanager
def open_tiff(path: str | Path) -> Iterator[tifffile.TiffFile]:
    """Open a TIFF for reading; any problem inside the block is one :class:`InputError`.

    Raises
    ------
    InputError
        If the file is missing, not a TIFF, truncated (also where tifffile only logs
        it) or uses a compression that cannot be decoded.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "file not found")
    try:
        with tifffile_errors() as errors, tifffile.TiffFile(path) as tif:
            yield tif
    except InputError:
        raise
    except Exception as error:  # tifffile raises many types for broken files
        raise InputError(path, f"unreadable or truncated TIFF ({describe_error(error)})") from error
    if errors:
        raise InputError(path, f"unreadable or truncated TIFF ({errors[0]})")


def read_tiff(path: str | Path) -> np.ndarray:
    """Read a TIFF (or OME-TIFF) into memory, with one-line errors (see :func:`open_tiff`)."""
    with open_tiff(path) as tif:
        series = tif.series[0]
        array, axes = series.asarray(), series.axes
    return _drop_singleton_axes(array, axes)


def tiff_shape(path: str | Path) -> tuple[int, ...]:
    """Return the array shape of a TIFF without reading its pixels."""
    with open_tiff(path) as tif:
        series = tif.series[0]
        return kept_shape(series.shape, series.axes)


def kept_shape(shape: tuple[int, ...], axes: str) -> tuple[int, ...]:
    """``shape`` without the singleton axes that :func:`read_tiff` drops."""
    return tuple(n for n, axis in zip(shape, axes, strict=True) if n > 1 or axis in "YXS")


def tiff_dtype(path: str | Path) -> np.dtype:
    """Return the pixel dtype of a TIFF without reading its pixels."""
    with open_tiff(path) as tif:
        return np.dtype(tif.series[0].dtype)


def check_finite(array: np.ndarray, path: str | Path, what: str = "pixel") -> np.ndarray:
    """Raise :class:`InputError` naming ``path`` if a float ``array`` holds NaN or Inf.

    Integer arrays pass unchecked. Costs one min and one max pass (no temporary
    array): NaN propagates through both, and an infinity is an extreme.

    Returns
    -------
    ndarray
        ``array`` itself, so that readers can return ``check_finite(array, path)``.
    """
    if array.size and np.issubdtype(array.dtype, np.floating):
        low, high = array.min(), array.max()
        if not (np.isfinite(low) and np.isfinite(high)):
            nan = int(np.count_nonzero(np.isnan(array)))
            inf = int(np.count_nonzero(np.isinf(array)))
            raise InputError(
                path,
                f"non-finite {what} values ({nan} NaN, {inf} infinite): replace them "
                "(e.g. with 0) before processing",
            )
    return array


def write_tiff(
    path: str | Path,
    array: np.ndarray,
    *,
    compression: str | None = "zlib",
    samples_last: bool = False,
) -> None:
    """Write ``array`` as a (compressed) TIFF, atomically.

    With ``samples_last`` the last axis is stored as samples per pixel (YXC,
    as ilastik exports probabilities: RGB for three classes).
    """
    if samples_last:
        photometric = "rgb" if array.shape[-1] == 3 else "minisblack"
        options = {"photometric": photometric, "planarconfig": "contig"}
    else:
        options = {"photometric": "minisblack"}
    with atomic_path(path) as tmp:
        tifffile.imwrite(tmp, array, compression=compression, **options)


@contextlib.contextmanager
def tifffile_errors() -> Iterator[list[str]]:
    """Collect the errors tifffile logs instead of raising.

    For a cut-off multi-page file tifffile logs "invalid page offset" and
    returns the pages it could read: without this, a truncated 40-channel
    image would silently load as a 1-channel one.
    """
    messages: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            messages.append(record.getMessage().split("> ", 1)[-1])

    tifffile_logger = logging.getLogger("tifffile")
    handler = Collect(level=logging.ERROR)
    tifffile_logger.addHandler(handler)
    propagate = tifffile_logger.propagate
    tifffile_logger.propagate = False  # reported as one InputError, not as log noise
    try:
        yield messages
    finally:
        tifffile_logger.removeHandler(handler)
        tifffile_logger.propagate = propagate


def _drop_singleton_axes(array: np.ndarray, axes: str) -> np.ndarray:
    # OME-TIFF series come as TCZYX or similar; steinbock data is CYX/YX(S), so
    # drop singleton T/Z/C axes but keep Y, X and samples even if they are 1 long.
    return array.reshape(kept_shape(array.shape, axes))
