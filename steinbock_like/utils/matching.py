"""Pairs of overlapping objects of two masks."""

from __future__ import annotations

import numpy as np
import pandas as pd


def match_masks(mask1: np.ndarray, mask2: np.ndarray) -> pd.DataFrame:
    """Every pair of objects, one from each mask, that share at least one pixel.

    Parameters
    ----------
    mask1, mask2 : ndarray of int, shape (Y, X)
        Object masks of the same shape, 0 = background.

    Returns
    -------
    DataFrame
        Columns ``Object1`` and ``Object2``, one row per overlapping pair, sorted
        by ``Object1`` then ``Object2`` (as steinbock's ``utils match``).
    """
    mask1 = np.asarray(mask1)
    mask2 = np.asarray(mask2)
    if mask1.shape != mask2.shape:
        raise ValueError(f"mask shapes differ: {mask1.shape} and {mask2.shape}")
    both = (mask1 != 0) & (mask2 != 0)
    first, second = mask1[both].astype(np.int64), mask2[both].astype(np.int64)
    # one sortable key per pixel: pairs in (Object1, Object2) order
    base = int(second.max(initial=0)) + 1
    if (int(first.max(initial=0)) + 1) * base >= 2**63:  # IDs too large for one int64 key
        pairs = np.unique(np.stack([first, second], axis=1), axis=0)
        return pd.DataFrame({"Object1": pairs[:, 0], "Object2": pairs[:, 1]})
    keys = np.unique(first * base + second)
    return pd.DataFrame({"Object1": keys // base, "Object2": keys % base})
