"""Growing mask objects by a Euclidean distance."""

from __future__ import annotations

import numpy as np


def expand_mask(mask: np.ndarray, distance: float) -> np.ndarray:
    """Grow every object by up to ``distance`` pixels without overlapping another.

    Each background pixel within ``distance`` (Euclidean) of an object takes the
    label of the nearest object pixel (scikit-image's ``expand_labels``, as
    steinbock's ``utils expand``).

    Parameters
    ----------
    mask : ndarray of int, shape (Y, X)
        Object mask, 0 = background.
    distance : float
        Maximum growth in pixels; 0 returns a copy.

    Returns
    -------
    ndarray, shape (Y, X)
        The expanded mask, same dtype as ``mask``.
    """
    from skimage.segmentation import expand_labels

    if distance < 0:
        raise ValueError(f"distance must not be negative, got {distance}")
    return expand_labels(np.asarray(mask), distance=distance).astype(mask.dtype, copy=False)
