"""Whether a finished output can be read back (``--resume`` skips only those)."""

from __future__ import annotations

from pathlib import Path


def output_is_readable(path: Path) -> bool:
    """Whether an existing output opens and is complete, judged by its file type.

    TIFF images and npz masks are read whole; HDF5 files (``.h5``, ``.ilp``) must open and every
    dataset must reach its end; any other file must not be empty.
    """
    suffix = path.suffix.lower()
    try:
        if suffix in (".tif", ".tiff"):
            from steinbock_like.io.tiff import read_tiff

            read_tiff(path)
            return True
        if suffix == ".npz":
            from steinbock_like.io.masks import read_npz_mask

            read_npz_mask(path)
            return True
        if suffix in (".h5", ".hdf5", ".ilp"):
            from steinbock_like.io.ilastik import is_readable_hdf5

            return is_readable_hdf5(path)
        return path.stat().st_size > 0
    except Exception:
        return False
