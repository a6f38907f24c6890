"""Images and masks for histoCAT (steinbock's ``export histocat``).

Per image a directory ``histocat/<name>/`` with one ImageJ TIFF per channel,
``<channel>_<name>.tiff`` (spaces and slashes replaced by ``_``), float32 of
shape 1 x 1 x 1 x Y x X x 1, and the mask as ``<name>_mask.tiff`` (uint16).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from steinbock_like.io.atomic import atomic_path


def channel_file_name(channel: str, name: str) -> str:
    """histoCAT's file name of a channel: ``<channel>_<name>.tiff`` without spaces or slashes."""
    text = re.sub(r"\s*/\s*", "_", f"{channel}_{name}")
    return re.sub(r"\s", "_", text) + ".tiff"


def write_histocat_tiff(path: str | Path, plane: np.ndarray) -> None:
    """Write one YX plane as histoCAT reads it (ImageJ TIFF, 6-D), atomically."""
    import tifffile

    plane = np.asarray(plane)
    with atomic_path(path) as tmp:
        tifffile.imwrite(tmp, plane[np.newaxis, np.newaxis, np.newaxis, :, :, np.newaxis],
                         imagej=True)  # fmt: skip
