"""Cell segmentation with Cellpose: channel preparation, model lookup and a segmenter.

Multiplexed images are reduced to the two channels Cellpose models expect,
driven by the panel's ``cellpose`` column:

* group 1: cytoplasm/membrane signal (the channel to segment),
* group 2: nuclear signal (optional helper channel).

Within a group, channels are optionally normalised one by one (min-max or
z-score) and then aggregated (mean by default). A panel with only group 2
segments the nuclear signal itself (e.g. with the ``nuclei`` model).

Two Cellpose APIs are supported, detected from the installed version:

* 3.x: ``models.CellposeModel`` with built-in models cyto3, cyto2, cyto, nuclei
  and a ``channels=[1, 2]`` argument (segment channel 1, nuclei in channel 2);
* 4.x (Cellpose-SAM): models cpsam/cpsam_v2, which take up to three channels
  in any order through ``channel_axis``.

Models are never downloaded: a name is looked up in Cellpose's own model
directory (``$CELLPOSE_LOCAL_MODELS_PATH``, else ``~/.cellpose/models``) and a
missing file is a one-line :class:`~steinbock_like.errors.MissingToolError`
saying where the file must go.

Everything here except :class:`CellposeSegmenter` (which loads the network) is a
pure function on arrays; Cellpose and torch are imported only when a segmenter
is created.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from importlib import metadata as importlib_metadata
from pathlib import Path

import numpy as np
import pandas as pd

from steinbock_like.channels import NORMALIZATIONS, aggregate_groups, channel_groups
from steinbock_like.errors import MissingToolError, SteinbockLikeError

logger = logging.getLogger(__name__)

PANEL_COLUMN = "cellpose"
CYTOPLASM_GROUP = 1.0
NUCLEAR_GROUP = 2.0
MODEL_DIR_ENV = "CELLPOSE_LOCAL_MODELS_PATH"
DEFAULT_MODEL_DIR = Path("~/.cellpose/models")

# Built-in model names -> the file Cellpose stores them under in its model
# directory; any other name is taken as the file name itself (user models).
BUILTIN_MODEL_FILES = {
    "cyto3": "cyto3",
    "cyto2": "cyto2torch_0",
    "cyto": "cytotorch_0",
    "nuclei": "nucleitorch_0",
    "cpsam": "cpsam",
    "cpsam_v2": "cpsam_v2",
}
# Built-in models and the Cellpose major version whose network can load them.
BUILTIN_MODEL_MAJOR = {
    "cyto3": 3,
    "cyto2": 3,
    "cyto": 3,
    "nuclei": 3,
    "cpsam": 4,
    "cpsam_v2": 4,
}
DEFAULT_MODEL_BY_MAJOR = {3: "cyto3", 4: "cpsam"}
SUPPORTED_MAJORS = (3, 4)
INSTALL_HINT = "pip install 'steinbock-like[cellpose]'"


# --------------------------------------------------------------------------- channels


def prepare_channels(
    image: np.ndarray,
    panel: pd.DataFrame,
    *,
    normalize: str | None = None,
    aggr: str = "mean",
) -> np.ndarray:
    """Reduce a multiplexed image to Cellpose's two input channels.

    Parameters
    ----------
    image : ndarray, shape (C, Y, X)
        The image, its channels in the order of ``panel``'s rows.
    panel : DataFrame
        Panel rows describing the image's channels (see
        :func:`steinbock_like.io.panel.panel_for_image`), with a ``cellpose``
        column: 1 = cytoplasm/membrane, 2 = nuclear, empty = unused.
    normalize : {None, "minmax", "zscore"}
        Per-channel normalisation before aggregation.
    aggr : str
        Name of the numpy reduction that merges a group's channels.

    Returns
    -------
    ndarray of float32, shape (2, Y, X)
        Channel 0 is segmented, channel 1 is the nuclear helper channel (zeros
        when the panel has no group 2). Without group 1 the nuclear signal
        moves to channel 0 and channel 1 is zeros.

    Raises
    ------
    SteinbockLikeError
        If the panel has no ``cellpose`` column or it holds labels other than 1 and 2.
    """
    if normalize is not None and normalize not in NORMALIZATIONS:
        raise SteinbockLikeError(f"unknown normalisation {normalize!r}")
    groups = cellpose_groups(panel)
    aggregated = aggregate_groups(image, groups, aggr=aggr, normalize=normalize)
    by_label = dict(zip(sorted(groups), aggregated, strict=True))
    channels = np.zeros((2, *image.shape[1:]), dtype=np.float32)
    if CYTOPLASM_GROUP in by_label:
        channels[0] = by_label[CYTOPLASM_GROUP]
        if NUCLEAR_GROUP in by_label:
            channels[1] = by_label[NUCLEAR_GROUP]
    else:
        channels[0] = by_label[NUCLEAR_GROUP]
    return channels


def cellpose_groups(panel: pd.DataFrame) -> dict[float, list[int]]:
    """The panel's ``cellpose`` groups (1 and/or 2) -> image channel indices.

    Raises
    ------
    SteinbockLikeError
        For a missing or empty column, or a label other than 1 or 2.
    """
    groups = channel_groups(panel, PANEL_COLUMN)
    unknown = sorted(set(groups) - {CYTOPLASM_GROUP, NUCLEAR_GROUP})
    if unknown:
        raise SteinbockLikeError(
            f"the panel's '{PANEL_COLUMN}' column may only hold 1 (cytoplasm/membrane) and "
            f"2 (nuclear), found {unknown[0]:g}"
        )
    return groups


# --------------------------------------------------------------------------- models


@dataclass(frozen=True)
class CellposeModelFile:
    """A resolved Cellpose model.

    Attributes
    ----------
    name : str
        What the user asked for: a model name or the path as given.
    path : Path
        The weights file.
    builtin : bool
        Whether ``name`` is one of Cellpose's built-in models.
    """

    name: str
    path: Path
    builtin: bool


def cellpose_version() -> str | None:
    """The installed Cellpose version, or None when Cellpose is not installed."""
    try:
        return importlib_metadata.version("cellpose")
    except importlib_metadata.PackageNotFoundError:
        return None


def api_major(version: str | None) -> int:
    """The Cellpose API generation (3 or 4) of an installed ``version``.

    Raises
    ------
    MissingToolError
        If Cellpose is not installed (``version`` is None).
    SteinbockLikeError
        For a version outside 3.x and 4.x.
    """
    if version is None:
        raise MissingToolError(f"Cellpose is not installed: {INSTALL_HINT}")
    try:
        major = int(version.split(".")[0])
    except ValueError:
        raise SteinbockLikeError(f"cannot read the Cellpose version '{version}'") from None
    if major not in SUPPORTED_MAJORS:
        raise SteinbockLikeError(
            f"Cellpose {version} is not supported: install 3.x or 4.x ({INSTALL_HINT})"
        )
    return major


def default_model(major: int) -> str:
    """The default built-in model of a Cellpose API generation."""
    return DEFAULT_MODEL_BY_MAJOR[major]


def model_directory(environ: Mapping[str, str] | None = None) -> Path:
    """Cellpose's model directory: ``$CELLPOSE_LOCAL_MODELS_PATH`` or ``~/.cellpose/models``."""
    environ = os.environ if environ is None else environ
    configured = environ.get(MODEL_DIR_ENV)
    return Path(configured).expanduser() if configured else DEFAULT_MODEL_DIR.expanduser()


def looks_like_path(model: str) -> bool:
    """Whether ``--model`` was given as a file path rather than a model name."""
    return os.sep in model or "/" in model or Path(model).exists()


def resolve_model(
    model: str,
    *,
    major: int,
    model_dir: str | Path | None = None,
) -> CellposeModelFile:
    """Find the weights file for ``--model``: a built-in or user model name, or a path.

    Parameters
    ----------
    model : str
        A name (cyto3, cyto2, cyto, nuclei, cpsam, cpsam_v2 or a user model's
        file name) or the path of a weights file.
    major : int
        Installed Cellpose API generation (3 or 4), to reject a built-in model
        that generation cannot load.
    model_dir : path-like, optional
        Where names are looked up; default :func:`model_directory`.

    Returns
    -------
    CellposeModelFile

    Raises
    ------
    MissingToolError
        If the file is not there; the message says where it must go.
    SteinbockLikeError
        If a built-in model needs the other Cellpose generation.
    """
    if looks_like_path(model):
        path = Path(model).expanduser()
        if not path.is_file():
            raise MissingToolError(f"{path}: Cellpose model file not found")
        return CellposeModelFile(name=model, path=path, builtin=False)
    needed = BUILTIN_MODEL_MAJOR.get(model)
    if needed is not None and needed != major:
        suggestion = default_model(major)
        raise SteinbockLikeError(
            f"the Cellpose model '{model}' needs Cellpose {needed}.x but {major}.x is installed: "
            f"use --model {suggestion} or install cellpose {needed}.x"
        )
    directory = Path(model_dir) if model_dir is not None else model_directory()
    path = directory / BUILTIN_MODEL_FILES.get(model, model)
    if not path.is_file():
        raise MissingToolError(
            f"Cellpose model '{model}' not found: put its weights file at {path} "
            f"(set {MODEL_DIR_ENV} for another folder) or pass --model PATH"
        )
    return CellposeModelFile(name=model, path=path, builtin=needed is not None)


# --------------------------------------------------------------------------- segmenter


@dataclass(frozen=True)
class CellposeSettings:
    """Cellpose evaluation settings, as the command line names them.

    Attributes
    ----------
    diameter : float or None
        Typical cell diameter (px); None uses the model's own (its training
        diameter for a custom 3.x model, 30 px for built-in ones).
    flow_threshold, cellprob_threshold : float
        Cellpose's flow-error and cell-probability thresholds.
    min_size : int
        Objects smaller than this (px) are dropped.
    batch_size : int
        Network tiles evaluated at once.
    tile_overlap : float
        Fraction of overlap between network tiles.
    gpu : bool
        Use a GPU when torch sees one.
    """

    diameter: float | None = None
    flow_threshold: float = 0.4
    cellprob_threshold: float = 0.0
    min_size: int = 15
    batch_size: int = 8
    tile_overlap: float = 0.1
    gpu: bool = False


class CellposeSegmenter:
    """A loaded Cellpose network; create once per worker, then call :meth:`segment`.

    Parameters
    ----------
    model_path : path-like
        Weights file (see :func:`resolve_model`).
    settings : CellposeSettings
    threads : int, optional
        torch CPU threads; by default torch's own choice. Set it when several
        worker processes share the machine.

    Raises
    ------
    MissingToolError
        If Cellpose (or torch) is not installed.
    SteinbockLikeError
        If the file cannot be loaded as a Cellpose model of the installed version.
    """

    def __init__(
        self,
        model_path: str | Path,
        settings: CellposeSettings | None = None,
        *,
        threads: int | None = None,
    ):
        self.model_path = Path(model_path)
        self.settings = settings or CellposeSettings()
        self.version = cellpose_version()
        self.major = api_major(self.version)
        try:
            import torch
            from cellpose import models
        except ImportError as error:
            raise MissingToolError(
                f"Cellpose cannot be imported ({error}): {INSTALL_HINT}"
            ) from error
        if threads is not None:
            torch.set_num_threads(max(1, int(threads)))
        if self.settings.gpu and not torch.cuda.is_available():
            logger.warning("--gpu: torch sees no GPU, running Cellpose on the CPU")
        try:
            if self.major >= 4:
                self.model = models.CellposeModel(
                    gpu=self.settings.gpu, pretrained_model=str(self.model_path)
                )
            else:
                # mkldnn=False: otherwise Cellpose probes MKL-DNN by running a test
                # script in a subprocess, in every worker; torch's default CPU
                # kernels are used instead (the setting the tests were run with).
                self.model = models.CellposeModel(
                    gpu=self.settings.gpu,
                    pretrained_model=str(self.model_path),
                    mkldnn=False,
                )
        except Exception as error:
            detail = str(error).strip().splitlines()
            reason = detail[0] if detail else type(error).__name__
            raise SteinbockLikeError(
                f"{self.model_path}: cannot load as a Cellpose {self.version} model ({reason})"
            ) from error

    def segment(self, channels: np.ndarray, *, normalize: bool = True) -> np.ndarray:
        """Segment one prepared image.

        Parameters
        ----------
        channels : ndarray, shape (2, Y, X) or (Y, X)
            Channel 0 to segment and the optional nuclear channel 1 (as from
            :func:`prepare_channels`), or one grayscale channel.
        normalize : bool
            Let Cellpose stretch each channel between its 1st and 99th
            percentiles; False where that was done already (see
            :func:`segment_in_blocks`).

        Returns
        -------
        ndarray of int, shape (Y, X)
            Object labels 1..n, 0 = background.
        """
        channels = np.asarray(channels, dtype=np.float32)
        if channels.ndim == 2:
            channels = channels[np.newaxis]
        if channels.ndim != 3 or channels.shape[0] > 2:
            raise ValueError(f"expected (2, Y, X) channels, got shape {channels.shape}")
        height, width = channels.shape[1:]
        if channels.shape[0] == 1:
            channels = np.concatenate([channels, np.zeros_like(channels)])
        if not np.any(channels[0]):
            # Nothing to segment; Cellpose would spend the full evaluation on it.
            return np.zeros((height, width), dtype=np.uint32)
        settings = self.settings
        common = {
            "batch_size": settings.batch_size,
            "diameter": settings.diameter,
            "flow_threshold": settings.flow_threshold,
            "cellprob_threshold": settings.cellprob_threshold,
            "min_size": settings.min_size,
            "tile_overlap": settings.tile_overlap,
            "normalize": normalize,
        }
        if self.major >= 4:
            # Cellpose-SAM reads three channels in any order; the third stays empty.
            stacked = np.zeros((height, width, 3), dtype=np.float32)
            stacked[..., :2] = np.moveaxis(channels, 0, -1)
            result = self.model.eval(stacked, channel_axis=-1, **common)
        else:
            stacked = np.ascontiguousarray(np.moveaxis(channels, 0, -1))
            # channels=[1, 2]: segment the first channel, nuclei in the second.
            result = self.model.eval(stacked, channels=[1, 2], channel_axis=-1, **common)
        labels = np.asarray(result[0])
        if labels.shape != (height, width):
            raise SteinbockLikeError(
                f"Cellpose returned a mask of shape {labels.shape} for an image of "
                f"{(height, width)}"
            )
        return labels


def train_cellpose_model(
    images: list[np.ndarray],
    labels: list[np.ndarray],
    save_dir: str | Path,
    *,
    epochs: int = 10,
    diameter: float = 11.0,
    model_name: str = "small",
    seed: int = 0,
) -> Path:
    """Train a Cellpose 3.x model of the default architecture from scratch on the CPU.

    For tests and benchmarks where no pretrained weights can be downloaded: a few
    epochs on a handful of small example images give a usable model.

    Parameters
    ----------
    images : list of ndarray, shape (2, Y, X)
        Inputs as :func:`prepare_channels` makes them (cytoplasm, nucleus).
    labels : list of ndarray of int, shape (Y, X)
        Ground-truth masks.
    save_dir : path-like
        Where Cellpose writes the weights (created if missing).
    epochs, diameter, model_name, seed
        Training length, the model's mean diameter (px), the file name, random seed.

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
        bsize=96,
        model_name=model_name,
        min_train_masks=1,
    )
    return Path(path)


def versions() -> dict[str, str]:
    """Cellpose and torch versions, for the run metadata (empty entries left out)."""
    found = {}
    for package in ("cellpose", "torch"):
        try:
            found[package] = importlib_metadata.version(package)
        except importlib_metadata.PackageNotFoundError:
            continue
    return found


# --------------------------------------------------------------------------- blocks


def normalize_percentiles(channels: np.ndarray, low: float = 1.0, high: float = 99.0) -> np.ndarray:
    """Stretch each channel so that its ``low`` and ``high`` percentiles become 0 and 1.

    This is Cellpose's own input normalisation, done once for a whole image so
    that every block of it is scaled alike. A channel whose percentiles
    (nearly) coincide becomes zeros, as in Cellpose.

    Parameters
    ----------
    channels : ndarray, shape (C, Y, X)

    Returns
    -------
    ndarray of float32, shape (C, Y, X)
    """
    out = np.empty(channels.shape, dtype=np.float32)
    for index, channel in enumerate(channels):
        lo, hi = np.percentile(channel, [low, high])
        if hi - lo > 1e-3:
            np.subtract(channel, np.float32(lo), out=out[index], casting="unsafe")
            out[index] /= np.float32(hi - lo)
        else:
            out[index] = 0.0
    return out


def block_ranges(length: int, block_size: int, overlap: int) -> list[tuple[slice, slice]]:
    """Cut an axis into blocks: (core, core widened by ``overlap`` on both sides) each."""
    ranges = []
    for start in range(0, length, block_size):
        stop = min(length, start + block_size)
        ranges.append(
            (slice(start, stop), slice(max(0, start - overlap), min(length, stop + overlap)))
        )
    return ranges


def segment_in_blocks(
    channels: np.ndarray,
    segment: Callable[[np.ndarray], np.ndarray],
    *,
    block_size: int = 2048,
    overlap: int = 64,
) -> np.ndarray:
    """Segment a large image block by block, so that memory depends on the block size.

    Every block is segmented with ``overlap`` px of context on each side; an
    object is kept by the block whose core holds its centre, so each object is
    kept once and, where it is smaller than the overlap, seen whole. Objects
    are pasted only onto background, so neighbours from two blocks never
    overwrite each other. Channels are normalised once for the whole image
    (:func:`normalize_percentiles`) and ``segment`` must not normalise again.

    Parameters
    ----------
    channels : ndarray, shape (C, Y, X)
    segment : callable
        ``segment(block_channels) -> labels`` of the block's (Y, X) shape.
    block_size : int
        Core block side (px); an image no larger than this in both axes is
        segmented in one piece (0 = always one piece).
    overlap : int
        Context (px) on each side of a block; should exceed the largest
        object's diameter.

    Returns
    -------
    ndarray of uint32, shape (Y, X)
        Objects numbered 1..n.
    """
    channels = np.asarray(channels)
    height, width = channels.shape[1:]
    normalized = normalize_percentiles(channels)
    if block_size <= 0 or (height <= block_size and width <= block_size):
        return np.asarray(segment(normalized)).astype(np.uint32, copy=False)
    labels = np.zeros((height, width), dtype=np.uint32)
    next_id = 1
    for rows, padded_rows in block_ranges(height, block_size, overlap):
        for cols, padded_cols in block_ranges(width, block_size, overlap):
            block = np.asarray(segment(normalized[:, padded_rows, padded_cols]))
            keep = _centred_in_core(block, rows, padded_rows, cols, padded_cols)
            new_ids = np.zeros(keep.size, dtype=np.uint32)
            new_ids[keep] = np.arange(next_id, next_id + int(keep.sum()), dtype=np.uint32)
            next_id += int(keep.sum())
            relabelled = new_ids[block]
            target = labels[padded_rows, padded_cols]
            free = (relabelled > 0) & (target == 0)
            target[free] = relabelled[free]
    return labels


def _centred_in_core(block, rows, padded_rows, cols, padded_cols) -> np.ndarray:
    """Per block label: whether the object's centre lies in the block's core."""
    flat = block.ravel().astype(np.int64, copy=False)
    area = np.bincount(flat)
    y, x = np.indices(block.shape, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        centre_y = np.bincount(flat, weights=y.ravel(), minlength=area.size) / area
        centre_x = np.bincount(flat, weights=x.ravel(), minlength=area.size) / area
    centre_y += padded_rows.start
    centre_x += padded_cols.start
    keep = (
        (centre_y >= rows.start)
        & (centre_y < rows.stop)
        & (centre_x >= cols.start)
        & (centre_x < cols.stop)
    )
    keep[0] = False
    return keep


# --------------------------------------------------------------------------- figures


def display_scale(channel: np.ndarray, low: float = 1.0, high: float = 99.5) -> np.ndarray:
    """A channel as uint8 for display, stretched between two percentiles."""
    channel = np.asarray(channel, dtype=np.float32)
    if channel.size == 0:
        return channel.astype(np.uint8)
    lo, hi = np.percentile(channel, [low, high])
    if hi <= lo:
        return np.zeros(channel.shape, dtype=np.uint8)
    scaled = np.clip((channel - lo) / (hi - lo), 0.0, 1.0)
    return (scaled * 255).round().astype(np.uint8)


def composite_rgb(channels: np.ndarray) -> np.ndarray:
    """Prepared channels as an RGB picture: channel 0 green, channel 1 blue."""
    channels = np.asarray(channels)
    rgb = np.zeros((*channels.shape[1:], 3), dtype=np.uint8)
    rgb[..., 1] = display_scale(channels[0])
    if channels.shape[0] > 1:
        rgb[..., 2] = display_scale(channels[1])
    return rgb


def overview_figure(
    input_rgb: np.ndarray,
    preprocessed: list[np.ndarray],
    labels: np.ndarray,
    *,
    max_side: int = 1024,
    gap: int = 4,
) -> np.ndarray:
    """One picture to check a segmentation at a glance.

    Panels, left to right: the input, each preprocessed channel (grayscale)
    and the mask outlines (yellow) over the input. Large images are shrunk so
    that each panel's longer side is at most ``max_side``; outlines are drawn
    at full resolution first so that they survive the shrinking.

    Parameters
    ----------
    input_rgb : ndarray of uint8, shape (Y, X, 3)
    preprocessed : list of ndarray, shape (Y, X)
    labels : ndarray of int, shape (Y, X)
    max_side : int
    gap : int
        White pixels between panels.

    Returns
    -------
    ndarray of uint8, shape (H, W, 3)
    """
    from skimage.segmentation import find_boundaries

    step = max(1, int(np.ceil(max(labels.shape) / max_side)))
    outlines = find_boundaries(labels, mode="inner")
    if step > 1:
        outlines = _block_any(outlines, step)
    overlay = input_rgb[::step, ::step].copy()
    overlay[outlines[: overlay.shape[0], : overlay.shape[1]]] = (255, 255, 0)
    panels = [input_rgb[::step, ::step]]
    panels += [
        np.repeat(display_scale(p[::step, ::step])[..., None], 3, axis=-1) for p in preprocessed
    ]
    panels.append(overlay)
    height = max(p.shape[0] for p in panels)
    width = sum(p.shape[1] for p in panels) + gap * (len(panels) - 1)
    figure = np.full((height, width, 3), 255, dtype=np.uint8)
    x = 0
    for panel in panels:
        figure[: panel.shape[0], x : x + panel.shape[1]] = panel
        x += panel.shape[1] + gap
    return figure


def _block_any(mask: np.ndarray, step: int) -> np.ndarray:
    """Shrink a boolean image by ``step``: a block is True where any pixel is (ceil size)."""
    height, width = mask.shape
    padded = np.zeros((-(-height // step) * step, -(-width // step) * step), dtype=bool)
    padded[:height, :width] = mask
    blocks = padded.reshape(padded.shape[0] // step, step, padded.shape[1] // step, step)
    return blocks.any(axis=(1, 3))
