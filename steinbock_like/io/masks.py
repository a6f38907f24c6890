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
    mask = read_npz_mask(path) if Path(path).suffix.lower() == NPZ_SUFFIX else read_tiff(path)
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
    if Path(path).suffix.lower() == NPZ_SUFFIX:
        write_npz_mask(path, mask.astype(dtype, copy=False))
    else:
        write_tiff(path, mask.astype(dtype, copy=False))


# --------------------------------------------------------------------------- npz masks
#: Compressed NumPy masks (``--mask-format npz``): one array named ``mask`` in a zip file,
#: for cohorts of many small images. Written with fixed zip timestamps, so that the same
#: mask always gives the same bytes (a resumed run equals an uninterrupted one).
NPZ_SUFFIX = ".npz"
NPZ_KEY = "mask"
#: Mask file suffixes by ``--mask-format``.
MASK_FORMATS = {"tiff": ".tiff", "npz": NPZ_SUFFIX}


def write_npz_mask(path: str | Path, mask: np.ndarray) -> None:
    """Write a mask as a compressed ``.npz`` (array ``mask``), atomically and reproducibly."""
    import io
    import zipfile

    from steinbock_like.io.atomic import atomic_path

    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, np.ascontiguousarray(mask), allow_pickle=False)
    info = zipfile.ZipInfo(f"{NPZ_KEY}.npy", date_time=(1980, 1, 1, 0, 0, 0))
    info.compress_type = zipfile.ZIP_DEFLATED
    info.external_attr = 0o644 << 16
    with atomic_path(path) as tmp, zipfile.ZipFile(tmp, "w") as archive:
        archive.writestr(info, buffer.getvalue())


def read_npz_mask(path: str | Path) -> np.ndarray:
    """Read the ``mask`` array of a ``.npz`` mask (one-line errors)."""
    import zipfile

    path = Path(path)
    if not path.is_file():
        raise InputError(path, "file not found")
    try:
        with np.load(path, allow_pickle=False) as archive:
            if NPZ_KEY not in archive.files:
                raise InputError(
                    path, f"no array {NPZ_KEY!r} in the npz file (found {archive.files})"
                )
            return archive[NPZ_KEY]
    except InputError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as error:
        raise InputError(path, f"unreadable or truncated npz mask ({error})") from None


def mask_path(directory: str | Path, name: str) -> Path | None:
    """The mask of image ``name`` in ``directory`` (NAME.tiff, .tif or .npz), or None."""
    for suffix in (".tiff", ".tif", NPZ_SUFFIX):
        candidate = Path(directory) / f"{name}{suffix}"
        if candidate.is_file():
            return candidate
    return None
