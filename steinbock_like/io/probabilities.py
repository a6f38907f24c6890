"""Pixel-classification probabilities: uint16 YXC, one colour channel per class.

0..65535 stands for probability 0..1 (ilastik's export: ``uint16(p * 65535)``).
"""

from pathlib import Path

import numpy as np

from steinbock_like.errors import InputError
from steinbock_like.io.tiff import read_tiff, write_tiff

PROBABILITY_SCALE = 65535


def read_probabilities(path: str | Path) -> np.ndarray:
    """Read a probability image as uint16 YXC."""
    array = read_tiff(path)
    if array.ndim != 3:
        raise InputError(path, f"probabilities must be YXC, found shape {array.shape}")
    if array.dtype != np.uint16:
        raise InputError(path, f"probabilities must be uint16, found {array.dtype}")
    return array


def write_probabilities(path: str | Path, probabilities: np.ndarray) -> None:
    """Write uint16 YXC probabilities atomically.

    Float input in 0..1 is converted as ilastik does (truncating ``p * 65535``).
    """
    probabilities = np.asarray(probabilities)
    if probabilities.ndim != 3:
        raise ValueError(f"probabilities must be YXC, got shape {probabilities.shape}")
    if probabilities.dtype.kind == "f":
        scaled = np.clip(probabilities.astype(np.float32), 0, 1) * np.float32(PROBABILITY_SCALE)
        probabilities = scaled.astype(np.uint16)
    write_tiff(path, probabilities.astype(np.uint16, copy=False), samples_last=True)
