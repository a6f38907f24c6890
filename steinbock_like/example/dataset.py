"""Writing a synthetic IMC dataset with ground truth in the standard layout."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from steinbock_like import layout
from steinbock_like.errors import SteinbockLikeError
from steinbock_like.example.markers import Marker, example_panel, select_markers
from steinbock_like.example.render import render_channel
from steinbock_like.example.tissue import simulate_tissue
from steinbock_like.io.images import write_image_channels
from steinbock_like.io.masks import write_mask
from steinbock_like.io.panel import write_panel

logger = logging.getLogger(__name__)


@dataclass
class ExampleSummary:
    """What :func:`write_example_imc` wrote.

    Attributes
    ----------
    root : Path
    panel : Path
    images : list of str
        Image names, e.g. ``example_001``.
    shape : (int, int, int)
        (C, Y, X) of every image.
    cell_counts : list of int
        Ground-truth cells per image.
    seconds : float
    """

    root: Path
    panel: Path
    images: list[str]
    shape: tuple[int, int, int]
    cell_counts: list[int]
    seconds: float

    def __str__(self) -> str:
        channels, height, width = self.shape
        return (
            f"{len(self.images)} image(s) of {channels} x {height} x {width} "
            f"({sum(self.cell_counts)} cells) in {self.root} ({self.seconds:.1f} s)"
        )


def example_image_names(images: int) -> list[str]:
    """``example_001``, ``example_002``, ..."""
    return [f"example_{i:03d}" for i in range(1, images + 1)]


def example_outputs(out_dir: str | Path, images: int) -> list[Path]:
    """Every file :func:`write_example_imc` writes (to check for existing outputs first)."""
    root = Path(out_dir)
    paths = [root / layout.PANEL]
    for name in example_image_names(images):
        paths += [
            root / layout.IMG / f"{name}.tiff",
            root / layout.MASKS_TRUTH / f"{name}{layout.MASK_SUFFIX}",
            root / layout.MASKS_TRUTH_NUCLEI / f"{name}{layout.MASK_SUFFIX}",
        ]
    return paths


def layout_rng(seed: int, index: int) -> np.random.Generator:
    """The generator for image ``index``'s layout (0-based) under ``seed``."""
    return np.random.default_rng([seed, index, 0])


def channel_rng(seed: int, index: int, marker: Marker) -> np.random.Generator:
    """The generator for one marker's channel of image ``index``.

    Keyed by the marker's mass, not its position, so any channel can be
    regenerated on its own and a marker looks the same whatever the panel size.
    """
    return np.random.default_rng([seed, index, 1, marker.mass])


def _image_shape(size: int | tuple[int, int]) -> tuple[int, int]:
    shape = (int(size), int(size)) if np.isscalar(size) else tuple(int(n) for n in size)
    if len(shape) != 2 or min(shape) < 16:
        raise SteinbockLikeError(f"example images must be at least 16 x 16 px, not {size}")
    return shape


def write_example_image(
    out_dir: str | Path,
    index: int,
    *,
    size: int | tuple[int, int] = 256,
    channels: int = 10,
    seed: int = 0,
) -> int:
    """Write one example image and its ground-truth masks (a per-image job).

    Image ``index`` (0-based) is named ``example_{index + 1:03d}`` and depends
    only on (seed, index, size, channels), so images can be written in any
    order or in parallel; :func:`write_example_imc` also writes the panel.

    Returns
    -------
    int
        The number of ground-truth cells.
    """
    shape = _image_shape(size)
    markers = select_markers(channels)
    root = Path(out_dir)
    name = example_image_names(index + 1)[index]
    rng = layout_rng(seed, index)
    # Vary the tumour/stroma balance between images, as real sections do.
    tumor_fraction = float(rng.uniform(0.3, 0.7))
    tissue = simulate_tissue(shape, rng, tumor_fraction=tumor_fraction)
    write_mask(root / layout.MASKS_TRUTH / f"{name}{layout.MASK_SUFFIX}", tissue.cells)
    write_mask(root / layout.MASKS_TRUTH_NUCLEI / f"{name}{layout.MASK_SUFFIX}", tissue.nuclei)
    # The image last: once it exists, the whole job is done (for --resume).
    rendered = (
        render_channel(tissue, marker, channel_rng(seed, index, marker)) for marker in markers
    )
    write_image_channels(root / layout.IMG / f"{name}.tiff", rendered, (len(markers), *shape))
    logger.info("%s: %d cells, %d channels", name, tissue.num_cells, len(markers))
    return tissue.num_cells


def write_example_imc(
    out_dir: str | Path,
    *,
    images: int = 3,
    size: int | tuple[int, int] = 256,
    channels: int = 10,
    seed: int = 0,
    progress: Callable[[str], None] | None = None,
) -> ExampleSummary:
    """Write a synthetic IMC dataset with ground truth in the standard layout.

    Writes ``panel.csv``, ``img/{name}.tiff`` (float32 CYX, streamed one channel
    at a time), ``masks_truth/{name}.tiff`` (cells) and
    ``masks_truth_nuclei/{name}.tiff`` (nuclei, with their cell's ID), every
    file atomically, replacing existing ones. Memory stays at a few label
    images of one image's size (a peak of about 1.1 GB at 5000 x 5000), whatever the
    channel count.

    Parameters
    ----------
    out_dir : path-like
        Dataset root (created if missing).
    images : int
        Number of images, named ``example_001``, ``example_002``, ...
    size : int or (int, int)
        Image width and height (px), or (Y, X).
    channels : int
        Panel size, 3..:data:`MAX_CHANNELS` (markers in :data:`MARKERS` order).
    seed : int
        The same seed gives the same files.
    progress : callable, optional
        Called with each image's name once its files are written.

    Returns
    -------
    ExampleSummary

    Raises
    ------
    SteinbockLikeError
        For an image count below 1, a size below 16 px or an unsupported channel count.
    """
    started = time.perf_counter()
    shape = _image_shape(size)
    if images < 1:
        raise SteinbockLikeError(f"the example needs at least one image, not {images}")
    markers = select_markers(channels)
    root = Path(out_dir)
    panel_path = root / layout.PANEL
    write_panel(panel_path, example_panel(markers))

    names = example_image_names(images)
    cell_counts = []
    for index, name in enumerate(names):
        cell_counts.append(
            write_example_image(root, index, size=shape, channels=channels, seed=seed)
        )
        if progress is not None:
            progress(name)
    return ExampleSummary(
        root=root,
        panel=panel_path,
        images=names,
        shape=(len(markers), *shape),
        cell_counts=cell_counts,
        seconds=time.perf_counter() - started,
    )
