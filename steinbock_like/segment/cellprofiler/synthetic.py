"""Synthetic 3-class probability images (Nucleus, Cytoplasm, Background) for tests and benchmarks.

Round nuclei scattered without overlap, each surrounded by cytoplasm up to a fixed distance
(cells meet where they touch), blurred and noised like a pixel classifier's output.
"""

from __future__ import annotations

import numpy as np
import scipy.ndimage


def synthetic_probabilities(
    shape: tuple[int, int] = (400, 400),
    *,
    cell_count: int = 250,
    nucleus_radius: tuple[float, float] = (4.0, 8.0),
    cytoplasm_width: float = 5.0,
    min_gap: float = 3.0,
    blur_sigma: float = 1.5,
    noise: float = 0.05,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Make probabilities and the cells they were drawn from.

    Parameters
    ----------
    shape : (int, int)
        Image size (at the probabilities' scale).
    cell_count : int
        Attempted number of cells; fewer where no free space is found.
    nucleus_radius : (float, float)
        Range of nucleus radii in pixels.
    cytoplasm_width : float
        How far cytoplasm reaches beyond the nucleus.
    min_gap : float
        Smallest distance between nucleus edges; negative values let nuclei overlap into
        clumps that need declumping.
    blur_sigma, noise : float
        Gaussian blur and additive noise (probability units) applied to each class.
    seed : int
        Random seed.

    Returns
    -------
    probabilities : ndarray of uint16, shape (Y, X, 3)
        Nucleus, Cytoplasm, Background; 65535 = probability 1.
    cells : ndarray of int32, shape (Y, X)
        The true cells, numbered 1..N.
    """
    rng = np.random.default_rng(seed)
    height, width = shape
    centres: list[tuple[float, float, float]] = []
    for _ in range(cell_count * 20):
        if len(centres) >= cell_count:
            break
        radius = rng.uniform(*nucleus_radius)
        y, x = rng.uniform(0, height), rng.uniform(0, width)
        if all(
            (y - cy) ** 2 + (x - cx) ** 2 > (radius + r + min_gap) ** 2 for cy, cx, r in centres
        ):
            centres.append((y, x, radius))

    yy, xx = np.mgrid[0:height, 0:width]
    nuclei = np.zeros(shape, np.int32)
    for label, (cy, cx, radius) in enumerate(centres, start=1):
        nuclei[(yy - cy) ** 2 + (xx - cx) ** 2 <= radius**2] = label
    # cells: every pixel within cytoplasm_width of a nucleus goes to the nearest one
    distance, (iy, ix) = scipy.ndimage.distance_transform_edt(nuclei == 0, return_indices=True)
    cells = np.where(distance <= cytoplasm_width, nuclei[iy, ix], 0).astype(np.int32)

    nucleus_p = scipy.ndimage.gaussian_filter((nuclei > 0).astype(float), blur_sigma)
    cytoplasm_p = scipy.ndimage.gaussian_filter(((cells > 0) & (nuclei == 0)).astype(float),
                                                blur_sigma)  # fmt: skip
    nucleus_p = np.clip(nucleus_p + rng.normal(0, noise, shape), 0, 1)
    cytoplasm_p = np.clip(cytoplasm_p + rng.normal(0, noise, shape), 0, 1)
    total = nucleus_p + cytoplasm_p
    over = total > 1
    nucleus_p[over] /= total[over]
    cytoplasm_p[over] /= total[over]
    background_p = np.clip(1 - nucleus_p - cytoplasm_p, 0, 1)
    probabilities = np.stack([nucleus_p, cytoplasm_p, background_p], axis=-1)
    return (probabilities * 65535).astype(np.uint16), cells
