"""Rendering one channel of a synthetic tissue from its label layout (counts, blur, noise)."""

from __future__ import annotations

import logging

import numpy as np
from scipy import ndimage

from steinbock_like.example.markers import CELL_TYPES, COMPARTMENTS, Marker
from steinbock_like.example.tissue import ROW_CHUNK, Tissue

logger = logging.getLogger(__name__)


def cell_expression(
    tissue: Tissue, marker: Marker, rng: np.random.Generator, *, variability: float = 0.35
) -> np.ndarray:
    """Expected counts per pixel of ``marker`` in each cell's compartment.

    Returns
    -------
    ndarray of float32, shape (n + 1,)
        Index = cell ID (0, the background, is 0): the cell type's level for
        positive cells, times log-normal cell-to-cell variability.
    """
    levels = np.array([marker.levels.get(t, 0.0) for t in CELL_TYPES], dtype=np.float32)
    fractions = np.array([marker.fractions.get(t, 1.0) for t in CELL_TYPES], dtype=np.float32)
    types = tissue.cell_types[1:].astype(np.int64)
    positive = rng.random(len(types)) < fractions[types]
    variation = rng.lognormal(0.0, variability, len(types)).astype(np.float32)
    table = np.zeros(len(types) + 1, dtype=np.float32)
    table[1:] = levels[types] * positive * variation
    return table


def render_channel(
    tissue: Tissue,
    marker: Marker,
    rng: np.random.Generator,
    *,
    psf_sigma: float = 0.75,
    background: float = 0.3,
) -> np.ndarray:
    """Render one channel: expected counts, blurred, plus background, Poisson-sampled.

    Parameters
    ----------
    tissue : Tissue
    marker : Marker
    rng : numpy.random.Generator
        Per-cell expression and pixel noise; the same state gives the same channel.
    psf_sigma : float
        Standard deviation (px) of the Gaussian point-spread function.
    background : float
        Mean background counts per pixel.

    Returns
    -------
    ndarray of float32, shape (Y, X)
        Integer-valued counts, as IMC records them.
    """
    if marker.compartment not in COMPARTMENTS:
        raise ValueError(f"unknown compartment {marker.compartment!r}; expected {COMPARTMENTS}")
    table = cell_expression(tissue, marker, rng)
    if marker.compartment == "nuclear":
        expected = table[tissue.nuclei]
    elif marker.compartment == "membrane":
        expected = table[tissue.cells]
        expected *= tissue.membrane_profile
    elif marker.compartment == "cytoplasm":
        expected = table[tissue.cells]
        expected *= tissue.cytoplasm_profile
    else:  # extracellular: secreted by its producer cells, deposited between cells
        expected = table[tissue.cells]
    if marker.matrix > 0:
        expected[tissue.matrix_mask] += np.float32(marker.matrix)
    blurred = ndimage.gaussian_filter(expected, psf_sigma) if psf_sigma > 0 else expected
    del expected
    blurred += np.float32(background)
    np.maximum(blurred, 0, out=blurred)
    # Poisson counts in row blocks: numpy returns int64, 8 bytes per pixel.
    for start in range(0, blurred.shape[0], ROW_CHUNK):
        block = blurred[start : start + ROW_CHUNK]
        block[...] = rng.poisson(block)
    return blurred
