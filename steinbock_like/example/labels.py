"""Sparse pixel-classifier training labels drawn from ground-truth masks."""

from __future__ import annotations

import logging

import numpy as np
from scipy import ndimage

logger = logging.getLogger(__name__)


def training_labels(
    cells: np.ndarray,
    nuclei: np.ndarray,
    rng: np.random.Generator,
    *,
    fraction: float = 0.1,
    margin: int = 1,
) -> np.ndarray:
    """Sparse pixel-classifier labels drawn from ground-truth masks, as a person might paint.

    Classes follow steinbock's project: 1 = Nucleus, 2 = Cytoplasm, 3 = Background.
    Pixels within ``margin`` of an object boundary are never labelled (people paint
    inside objects), and only a random ``fraction`` of the others is kept.

    Parameters
    ----------
    cells, nuclei : ndarray of int, shape (Y, X)
        Ground-truth cell and nuclear masks (of the crop, at the classifier's scale).
    rng : numpy.random.Generator
    fraction : float
        Share of the eligible pixels of each class that is labelled.
    margin : int
        Distance in pixels kept from boundaries.

    Returns
    -------
    ndarray of uint8, shape (Y, X)
        0 where unlabelled.
    """

    structure = np.ones((3, 3), bool)
    inner = np.ones(cells.shape, bool)
    for labels in (cells, nuclei):
        edges = ndimage.grey_dilation(labels, footprint=structure) != ndimage.grey_erosion(
            labels, footprint=structure
        )
        inner &= ~ndimage.binary_dilation(edges, iterations=max(margin - 1, 0) or 1)
    classes = np.where(nuclei > 0, 1, np.where(cells > 0, 2, 3)).astype(np.uint8)
    keep = inner & (rng.random(cells.shape) < fraction)
    return np.where(keep, classes, 0).astype(np.uint8)


def crop_training_labels(
    cells: np.ndarray,
    nuclei: np.ndarray,
    box: tuple[int, int, int, int],
    scale: int,
    rng: np.random.Generator,
    *,
    fraction: float = 0.1,
) -> np.ndarray:
    """:func:`training_labels` of one training crop, from the masks at the image's size.

    Parameters
    ----------
    cells, nuclei : ndarray of int, shape (Y, X)
        Ground-truth masks at the original image size.
    box : (y, x, height, width)
        The crop, in pixels of the image scaled by ``scale`` (as ilastik prepare crops).
    scale : int
        The up-scaling of the crops' image (nearest neighbour for masks).
    """
    y, x, height, width = box
    crops = [
        np.repeat(np.repeat(mask, scale, axis=0), scale, axis=1)[y : y + height, x : x + width]
        for mask in (cells, nuclei)
    ]
    return training_labels(*crops, rng, fraction=fraction)
