"""Synthetic inputs and small trained models for tests and benchmarks (not for analyses).

Everything here makes data whose truth is known, cheaply: pixel-classifier probabilities of
a simulated tissue or of scattered round cells, a two-channel (nuclear, membrane) tissue for
Mesmer, and a Cellpose model trained in seconds where no pretrained weights can be
downloaded.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy import ndimage

from steinbock_like.example.tissue import Tissue


def tissue_probabilities(
    tissue: Tissue, rng: np.random.Generator, *, sigma: float = 1.0, noise: float = 1.0
) -> np.ndarray:
    """Pixel-classifier-like probabilities for nucleus, cytoplasm and background.

    The true class of each pixel gets a high score, softened at class borders by
    a Gaussian blur and perturbed by noise, as a trained ilastik classifier
    would output them.

    Returns
    -------
    ndarray of uint16, shape (Y, X, 3)
        Channels nucleus, cytoplasm (incl. membrane), background; 0..65535 = 0..1.
    """
    classes = np.full(tissue.shape, 2, dtype=np.int8)
    classes[tissue.cells > 0] = 1
    classes[tissue.nuclei > 0] = 0
    scores = np.empty((3, *tissue.shape), dtype=np.float32)
    for k in range(3):
        score = (classes == k).astype(np.float32) * np.float32(5.0)
        score += rng.standard_normal(tissue.shape, dtype=np.float32) * np.float32(noise)
        scores[k] = ndimage.gaussian_filter(score, sigma) if sigma > 0 else score
    scores -= scores.max(axis=0)
    np.exp(scores, out=scores)
    scores /= scores.sum(axis=0)
    scores *= np.float32(65535)
    return np.moveaxis(scores, 0, -1).astype(np.uint16)


def two_channel_tissue(
    shape: tuple[int, int], *, spacing: float = 16, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Dense tissue as two float32 YX channels (nuclear, membrane), e.g. for Mesmer.

    Voronoi cells around grid points jittered by ``spacing / 5``: bright nuclear
    discs at the points, membrane signal on the cell borders, noise on both.
    Cheaper than :func:`simulate_tissue` and memory-frugal at 8000 x 8000.
    """
    from scipy import ndimage
    from skimage.segmentation import find_boundaries

    rng = np.random.default_rng(seed)
    height, width = shape
    grid_y, grid_x = np.meshgrid(
        np.arange(spacing / 2, height, spacing), np.arange(spacing / 2, width, spacing)
    )
    jitter = rng.uniform(-spacing / 5, spacing / 5, (2, grid_y.size))
    centres_y = np.clip(grid_y.ravel() + jitter[0], 0, height - 1).astype(int)
    centres_x = np.clip(grid_x.ravel() + jitter[1], 0, width - 1).astype(int)
    not_centre = np.ones(shape, bool)
    not_centre[centres_y, centres_x] = False
    distance, nearest = ndimage.distance_transform_edt(not_centre, return_indices=True)
    cell_ids = np.zeros(shape, np.int32)
    cell_ids[centres_y, centres_x] = np.arange(1, centres_y.size + 1)
    cell_ids = cell_ids[nearest[0], nearest[1]]
    del nearest
    brightness = np.concatenate([[0], rng.uniform(0.5, 1.0, centres_y.size)]).astype(np.float32)
    nuclear = ndimage.gaussian_filter(
        ((distance <= spacing * 0.22) * brightness[cell_ids]).astype(np.float32), 1.5
    )
    del distance
    membrane = ndimage.gaussian_filter(find_boundaries(cell_ids).astype(np.float32) + 0.2, 1.0)
    del cell_ids
    for channel in (nuclear, membrane):
        channel += rng.normal(0, 0.03, shape).astype(np.float32)
        np.clip(channel, 0, None, out=channel)
    return nuclear, membrane


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
    distance, (iy, ix) = ndimage.distance_transform_edt(nuclei == 0, return_indices=True)
    cells = np.where(distance <= cytoplasm_width, nuclei[iy, ix], 0).astype(np.int32)

    nucleus_p = ndimage.gaussian_filter((nuclei > 0).astype(float), blur_sigma)
    cytoplasm_p = ndimage.gaussian_filter(((cells > 0) & (nuclei == 0)).astype(float),
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


def train_cellpose_model(
    images: list[np.ndarray],
    labels: list[np.ndarray],
    save_dir: str | Path,
    *,
    epochs: int = 10,
    diameter: float = 11.0,
    model_name: str = "small",
    seed: int = 0,
    bsize: int = 96,
) -> Path:
    """Train a Cellpose 3.x model of the default architecture from scratch on the CPU.

    For tests and benchmarks where no pretrained weights can be downloaded: a few
    epochs on a handful of small example images give a usable model.

    Parameters
    ----------
    images : list of ndarray, shape (2, Y, X)
        Inputs as :func:`steinbock_like.segment.cellpose.prepare_channels` makes them
        (cytoplasm, nucleus).
    labels : list of ndarray of int, shape (Y, X)
        Ground-truth masks.
    save_dir : path-like
        Where Cellpose writes the weights (created if missing).
    epochs, diameter, model_name, seed
        Training length, the model's mean diameter (px), the file name, random seed.
    bsize : int
        Side (px) of the training crops, after Cellpose's rescaling to ``diameter``.

    Returns
    -------
    Path
        The weights file.
    """
    import torch
    from cellpose import models, train

    torch.manual_seed(seed)
    np.random.seed(seed)  # noqa: NPY002 (Cellpose's augmentation uses numpy's global state)
    model = models.CellposeModel(
        gpu=False, pretrained_model=False, mkldnn=False, diam_mean=diameter
    )
    Path(save_dir).mkdir(parents=True, exist_ok=True)
    path, _, _ = train.train_seg(
        model.net,
        train_data=images,
        train_labels=[np.asarray(label, dtype=np.int32) for label in labels],
        channels=[1, 2],
        channel_axis=0,
        save_path=save_dir,
        n_epochs=epochs,
        learning_rate=0.1,
        weight_decay=1e-4,
        SGD=True,
        batch_size=8,
        bsize=bsize,
        model_name=model_name,
        min_train_masks=1,
    )
    return Path(path)


def haematoxylin_training_set(
    count: int, size: int, *, seed: int = 0
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Synthetic H&E slides prepared as ``segment cellpose --stain hed`` prepares them.

    Slides from :func:`steinbock_like.example.brightfield.brightfield_slide` (random
    states ``[seed, 0]``, ``[seed, 1]``, ...; ``write_example_brightfield`` uses the same
    scheme, so another ``seed`` gives held-out slides), each turned into its equalised
    haematoxylin channel over the whole slide (no tissue mask) with an empty nuclear
    channel.

    Returns
    -------
    images : list of ndarray of float32, shape (2, size, size)
    labels : list of ndarray of int32, shape (size, size)
        The nuclei.
    """
    from steinbock_like.example.brightfield import brightfield_slide
    from steinbock_like.segment.stain import haematoxylin_channel

    images, labels = [], []
    for index in range(count):
        rgb, nuclei, _ = brightfield_slide((size, size), np.random.default_rng([seed, index]))
        channel = haematoxylin_channel(rgb)
        images.append(np.stack([channel, np.zeros_like(channel)]))
        labels.append(nuclei.astype(np.int32))
    return images, labels


def train_cellpose_example_model(
    save_dir: str | Path,
    *,
    images: int = 8,
    size: int = 128,
    epochs: int = 10,
    diameter: float = 11.0,
    seed: int = 11,
) -> Path:
    """A Cellpose model of the default architecture that finds the example IMC cells.

    Trained briefly on :func:`steinbock_like.example.write_example_imc` images (their
    Cellpose input as ``segment cellpose`` prepares it) and ground-truth masks, for tests.
    The example's cells are about 11 px across: training at that ``diameter`` keeps
    Cellpose from upsampling the images (it rescales to ``diam_mean``), so training and
    evaluation stay fast. About 40 s on two busy CPU cores.
    """
    from steinbock_like import layout
    from steinbock_like.example import write_example_imc
    from steinbock_like.io.images import read_image
    from steinbock_like.io.masks import read_mask
    from steinbock_like.io.panel import read_panel
    from steinbock_like.segment import cellpose as cp

    root = Path(save_dir)
    example = write_example_imc(root / "data", images=images, size=size, seed=seed)
    panel = read_panel(root / "data" / layout.PANEL)
    train_images, train_labels = [], []
    for name in example.images:
        image = read_image(root / "data" / layout.IMG / f"{name}.tiff")
        train_images.append(cp.prepare_channels(image, panel))
        truth = read_mask(root / "data" / layout.MASKS_TRUTH / f"{name}{layout.MASK_SUFFIX}")
        train_labels.append(truth.astype(np.int32))
    return train_cellpose_model(
        train_images,
        train_labels,
        root / "model",
        epochs=epochs,
        diameter=diameter,
        model_name="tiny",
    )


def train_cellpose_hed_model(
    save_dir: str | Path,
    *,
    images: int = 8,
    size: int = 128,
    epochs: int = 12,
    diameter: float = 8.0,
    seed: int = 7,
    bsize: int = 64,
) -> Path:
    """A Cellpose model of the default architecture that finds nuclei in H&E slides.

    Trained from scratch on the haematoxylin channel of synthetic slides (see
    :func:`haematoxylin_training_set`), for ``segment cellpose --stain hed`` in tests. The
    example's nuclei are about 6 px across; a model ``diameter`` of 8 px has Cellpose
    enlarge them a little (a model trained briefly at their own size found none). About a
    minute on two CPU cores.
    """
    train_images, train_labels = haematoxylin_training_set(images, size, seed=seed)
    return train_cellpose_model(
        train_images,
        train_labels,
        save_dir,
        epochs=epochs,
        diameter=diameter,
        model_name="hed",
        bsize=bsize,
    )


#: Runs a command line and prints its wall seconds, the peak RSS (KiB) of the largest
#: process of its tree (``RUSAGE_CHILDREN`` keeps the maximum over waited-for children)
#: and the CPU seconds of the tree.
_TIMING_WRAPPER = """
import resource, subprocess, sys, time
start = time.perf_counter()
subprocess.run(sys.argv[1:], check=True, capture_output=True)
wall = time.perf_counter() - start
usage = resource.getrusage(resource.RUSAGE_CHILDREN)
print(wall, usage.ru_maxrss, usage.ru_utime + usage.ru_stime)
"""


def side_by_side_dirs(
    root: Path, data: Path, names: tuple[str, ...] = ("steinbock", "ours"), *, link=(), copy=()
) -> list[Path]:
    """Fresh working directories ``root/NAME`` for a benchmark's tools, each with the
    inputs of ``data``: ``link`` (symlinked, e.g. ``img``) and ``copy`` (copied files)."""
    import shutil

    directories = []
    for name in names:
        directory = root / name
        shutil.rmtree(directory, ignore_errors=True)
        directory.mkdir(parents=True)
        for item in link:
            (directory / item).symlink_to(data / item)
        for item in copy:
            shutil.copy(data / item, directory)
        directories.append(directory)
    return directories


def timed_command(args, cwd: str | Path, clear=()) -> tuple[float, float, float]:
    """Run a benchmark's command line in ``cwd`` through a wrapper process.

    The paths in ``clear`` (the command's earlier outputs, relative to ``cwd``) are
    removed first and dirty pages synced, so that one run does not slow the next.
    Returns wall seconds, peak RSS in MiB of the largest process of the command's
    tree, and its CPU seconds (user + system): on a shared machine, CPU time is the
    figure the load changes least.
    """
    import os
    import shutil
    import subprocess
    import sys

    for name in clear:
        target = Path(cwd) / name
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        elif target.exists() or target.is_symlink():
            target.unlink()
    os.sync()
    output = subprocess.run(
        [sys.executable, "-c", _TIMING_WRAPPER, *map(str, args)],
        cwd=cwd,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()
    return float(output[0]), int(output[1]) / 1024, float(output[2])
