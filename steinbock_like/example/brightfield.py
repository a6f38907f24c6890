"""Synthetic brightfield (H&E-like) slides with ground truth, for the IHC route.

Haematoxylin-stained nuclei in eosin-stained tissue surrounded by bright glass, rendered with
Beer-Lambert's law (stain optical densities add up; transmission is 10^-density), so that
colour deconvolution (:mod:`steinbock_like.segment.stain`) separates them as in real slides.
The nuclei come from :func:`~steinbock_like.example.tissue.simulate_tissue`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from steinbock_like import layout
from steinbock_like.example.tissue import simulate_tissue
from steinbock_like.io.images import write_image
from steinbock_like.io.masks import write_mask
from steinbock_like.io.panel import write_panel

#: Optical densities (R, G, B) of one unit of each stain (H&E).
HAEMATOXYLIN_OD = np.array([0.65, 0.70, 0.29])
EOSIN_OD = np.array([0.07, 0.99, 0.11])
#: The brightfield panel: the RGB planes as channels.
RGB_CHANNELS = ("red", "green", "blue")
TISSUE_TRUTH = "tissue_truth"


def brightfield_slide(
    shape: tuple[int, int], rng: np.random.Generator, *, noise: float = 0.01
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One H&E-like slide: RGB (float32 0..255, YXC), nuclei labels and the tissue region.

    The tissue is an ellipse covering about half the slide; nuclei outside it are removed
    (glass holds no cells).
    """
    height, width = shape
    rows, cols = np.ogrid[:height, :width]
    tissue = ((rows - height / 2) / (0.42 * height)) ** 2 + (
        (cols - width / 2) / (0.38 * width)
    ) ** 2 <= 1
    nuclei = simulate_tissue(shape, rng).nuclei.astype(np.uint32)
    nuclei[~tissue] = 0
    density = (nuclei > 0)[..., None] * HAEMATOXYLIN_OD * 1.2 + tissue[..., None] * EOSIN_OD * 0.35
    rgb = 10.0 ** (-density) + rng.normal(0.0, noise, (*shape, 3))
    return (np.clip(rgb, 0, 1) * 255).astype(np.float32), nuclei, tissue


def write_example_brightfield(
    out_dir: str | Path, *, images: int = 2, size: int = 256, seed: int = 0
) -> list[str]:
    """Write brightfield slides in the standard layout, with ground truth.

    ``panel.csv`` (channels red, green, blue), ``img/{name}.tiff`` (3-channel CYX float32,
    0..255), ``masks_truth_nuclei/{name}.tiff`` and ``tissue_truth/{name}.tiff``; returns the
    image names (``slide_001``, ...).
    """
    root = Path(out_dir)
    write_panel(
        root / layout.PANEL,
        pd.DataFrame({"channel": list(RGB_CHANNELS), "name": list(RGB_CHANNELS), "keep": True}),
    )
    names = []
    for index in range(images):
        name = f"slide_{index + 1:03d}"
        rgb, nuclei, tissue = brightfield_slide((size, size), np.random.default_rng([seed, index]))
        write_image(root / layout.IMG / f"{name}.tiff", np.moveaxis(rgb, -1, 0))
        write_mask(root / layout.MASKS_TRUTH_NUCLEI / f"{name}{layout.MASK_SUFFIX}", nuclei)
        write_mask(root / TISSUE_TRUTH / f"{name}{layout.MASK_SUFFIX}", tissue.astype(np.uint8))
        names.append(name)
    return names
