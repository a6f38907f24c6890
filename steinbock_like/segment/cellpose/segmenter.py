"""A loaded Cellpose network (3.x or 4.x API, detected at run time) and its settings."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from importlib import metadata as importlib_metadata
from pathlib import Path

import numpy as np

from steinbock_like.errors import MissingToolError, SteinbockLikeError

logger = logging.getLogger(__name__)

SUPPORTED_MAJORS = (3, 4)
INSTALL_HINT = "pip install 'steinbock-like[cellpose]'"


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
    resample : bool
        Compute the masks from flows resized to the image's size (Cellpose's default)
        rather than at the network's scale (steinbock's ``--no-resample``).
    normalize : bool
        Stretch each channel between its 1st and 99th percentiles first.
    invert : bool
        Invert the (normalised) channels: 1 - x (dark cells on a bright background).
    rescale : float or None
        Resize factor, used where ``diameter`` is None (None: the model's own).
    max_size_fraction : float
        Masks larger than this fraction of the image are removed.
    niter : int or None
        Iterations of the flow dynamics (None: Cellpose's choice from the scale).
    augment : bool
        Test-time augmentation (flipped tiles averaged).
    """

    diameter: float | None = None
    flow_threshold: float = 0.4
    cellprob_threshold: float = 0.0
    min_size: int = 15
    batch_size: int = 8
    tile_overlap: float = 0.1
    gpu: bool = False
    resample: bool = True
    normalize: bool = True
    invert: bool = False
    rescale: float | None = None
    max_size_fraction: float = 0.4
    niter: int | None = None
    augment: bool = False

    def eval_options(self) -> dict:
        """Cellpose ``eval`` keyword arguments beyond the thresholds (steinbock's options)."""
        return {
            "resample": self.resample,
            "rescale": self.rescale,
            "max_size_fraction": self.max_size_fraction,
            "niter": self.niter,
            "augment": self.augment,
        }


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
        if settings.invert:
            channels = invert_channels(channels)
        common = {
            "batch_size": settings.batch_size,
            "diameter": settings.diameter,
            "flow_threshold": settings.flow_threshold,
            "cellprob_threshold": settings.cellprob_threshold,
            "min_size": settings.min_size,
            "tile_overlap": settings.tile_overlap,
            "normalize": normalize,
            **_accepted(self.model.eval, settings.eval_options(), self.version),
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

    def network_rescale(self) -> float | None:
        """The factor Cellpose 3 resizes images by before its network (None: other API)."""
        rescale = self._cellpose_rescale()
        return None if rescale is None else float(rescale)

    def _cellpose_rescale(self):
        """``rescale`` exactly as Cellpose 3's ``eval`` computes it (its float32 kept)."""
        if self.major >= 4:
            return None
        settings = self.settings
        if settings.diameter is not None and settings.diameter > 0:
            return self.model.diam_mean / settings.diameter
        if settings.rescale is None:
            return self.model.diam_mean / self.model.diam_labels
        return settings.rescale

    def block_function(self, image: np.ndarray, *, normalize: bool = True):
        """A function segmenting boxes of ``image`` as its whole-image segmentation would.

        ``function(box) -> labels`` evaluates the network on exactly the tiles that
        Cellpose lays over the whole (resized) ``image`` (see
        :mod:`steinbock_like.segment.cellpose.grid`), resizing only the part of the
        image those tiles cover as OpenCV resizes the whole image
        (:mod:`steinbock_like.segment.cellpose.resize`); then it computes masks with
        Cellpose's own dynamics, from the flows resized back onto the box
        (``resample``) or at the network's scale and resized back (steinbock's
        ``--no-resample``), so that the objects inside a block equal the whole
        image's. None where this is not possible (Cellpose 4, ``augment``,
        ``invert``, or ``normalize``): then blocks must be segmented on their own
        with :meth:`segment`.

        Parameters
        ----------
        image : ndarray, shape (2, Y, X), (1, Y, X) or (Y, X)
            The whole prepared, normalised image (as for :meth:`segment`).
        normalize : bool
            Whether :meth:`segment` would let Cellpose normalise (not supported here).
        """
        settings = self.settings
        rescale = self._cellpose_rescale()
        reason = None
        if self.major >= 4:
            reason = f"Cellpose {self.version}"
        elif settings.augment:
            reason = "--augment"
        elif settings.invert:
            reason = "--invert"
        if normalize or np.ndim(image) not in (2, 3):
            return None
        if np.ndim(image) == 3 and not 1 <= np.shape(image)[0] <= 2:
            return None
        if reason is not None:
            logger.info(
                "Cellpose blocks: each block on its own network tiles (%s), so objects "
                "may differ slightly from a whole-image run",
                reason,
            )
            return None
        if np.ndim(image) == 2:
            image = image[np.newaxis]  # one channel: nuclei empty, as in :meth:`segment`
        return _WholeImageBoxes(self, image, rescale)


class _WholeImageBoxes:
    """Boxes of one image segmented as Cellpose 3 segments the whole image.

    Called with a box (rows, columns), it returns the box's labels. The network
    runs on the whole image's tiles that cover the box; masks come from its flows
    at one of three scales (one method each): the image's own (no resizing), the
    image's after resizing the flows back (``resample``), or the network's,
    resizing the masks back (steinbock's ``--no-resample``).
    """

    def __init__(self, segmenter: CellposeSegmenter, image: np.ndarray, rescale):
        from steinbock_like.segment.cellpose import resize
        from steinbock_like.segment.cellpose.grid import network_grid

        settings = segmenter.settings
        self.settings, self.model = settings, segmenter.model
        self.shape = shape = image.shape[1:]
        self.resized = rescale != 1.0
        # Cellpose's own network scale: int(Ly * rescale) with its (float32) rescale
        self.size = size = (
            (int(shape[0] * rescale), int(shape[1] * rescale)) if self.resized else shape
        )
        if self.resized:
            _check_resizing(shape, size, settings.resample)
        self.network_input = resize.ResizedImage(image, size, "opencv") if self.resized else image
        self.grid = network_grid(size, tile_overlap=settings.tile_overlap)
        if settings.niter:
            self.niter = settings.niter
        else:
            self.niter = 1 / rescale * 200 if settings.resample else 200  # as Cellpose's eval
        # masks larger than this fraction of the image at the dynamics' scale are dropped
        at_network_scale = self.resized and not settings.resample
        self.dynamics_area = size[0] * size[1] if at_network_scale else shape[0] * shape[1]
        self.empty = not np.any(image[0])  # as :meth:`segment` skips an empty whole image

    def __call__(self, box: tuple[slice, slice]) -> np.ndarray:
        from cellpose import utils

        rows, cols = box[0].indices(self.shape[0])[:2], box[1].indices(self.shape[1])[:2]
        if self.empty:
            return np.zeros((rows[1] - rows[0], cols[1] - cols[0]), dtype=np.uint32)
        if not self.resized:
            labels = self._masks(self._network(*rows, *cols))
        elif self.settings.resample:
            labels = self._resampled(rows, cols)
        else:
            labels = self._at_network_scale(rows, cols)
        # Cellpose fills holes and drops small objects at the image's scale
        return np.asarray(utils.fill_holes_and_remove_small_masks(labels, self.settings.min_size))

    def _network(self, y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
        from cellpose import core

        from steinbock_like.segment.cellpose.grid import network_output

        net = self.model.net
        return network_output(
            self.network_input,
            (slice(y0, y1), slice(x0, x1)),
            lambda tiles: core._forward(net, tiles)[0],
            grid=self.grid,
            batch_size=self.settings.batch_size,
            channels=2,
        )

    def _masks(self, output: np.ndarray) -> np.ndarray:
        from cellpose import dynamics

        settings = self.settings
        return dynamics.compute_masks(
            output[:2],
            output[2],
            niter=self.niter,
            cellprob_threshold=settings.cellprob_threshold,
            flow_threshold=settings.flow_threshold,
            interp=True,
            # of the whole image's area, as in a whole-image run
            max_size_fraction=settings.max_size_fraction * self.dynamics_area / output[2].size,
            device=self.model.device,
        )

    def _resampled(self, rows: tuple[int, int], cols: tuple[int, int]) -> np.ndarray:
        """Flows resized back to the image (linear), masks at its scale."""
        from steinbock_like.segment.cellpose import resize

        size, shape = self.size, self.shape
        y0, y1, x0, x1 = resize.source_window(size, shape, rows, cols, method="ipp")
        small = self._network(y0, y1, x0, x1)
        output = resize.resize_window(
            lambda a, b, c, d: small[:, a - y0 : b - y0, c - x0 : d - x0],
            size,
            shape,
            rows,
            cols,
            method="ipp",
        )
        small = None  # freed before the dynamics, which need memory of their own
        return self._masks(output)

    def _at_network_scale(self, rows: tuple[int, int], cols: tuple[int, int]) -> np.ndarray:
        """Masks at the network's scale, resized back to the image (nearest)."""
        import fastremap

        from steinbock_like.segment.cellpose import resize

        (height, width), size = self.shape, self.size
        # over the network-scale pixels from the box's first to the next box's (to
        # the edge for the last box: pixels no original one takes part too)
        taps_y = resize.nearest_taps(size[0], height, rows[0], rows[1] + 1)
        taps_x = resize.nearest_taps(size[1], width, cols[0], cols[1] + 1)
        y0, x0 = int(taps_y[0]), int(taps_x[0])
        y1 = max(int(taps_y[-1]) if rows[1] < height else size[0], taps_y[-2] + 1)
        x1 = max(int(taps_x[-1]) if cols[1] < width else size[1], taps_x[-2] + 1)
        small = self._masks(self._network(y0, int(y1), x0, int(x1)))
        labels = small[np.ix_(taps_y[:-1] - y0, taps_x[:-1] - x0)]
        # numbered 1..n again: Cellpose's removal of small objects takes the n-th
        # count for object n (on the whole image, it drops other objects than the
        # small ones where an object vanished in resizing)
        return fastremap.renumber(labels)[0].astype(labels.dtype, copy=False)


def _check_resizing(shape: tuple[int, int], size: tuple[int, int], resample: bool) -> None:
    """Log a warning where this OpenCV resizes other than reproduced in ``resize.py``."""
    from steinbock_like.segment.cellpose import resize

    differences = {2: resize.matches_opencv(shape, size, 2, "opencv")}
    if resample:
        differences[3] = resize.matches_opencv(size, shape, 3, "ipp")
    elif not resize.nearest_matches_opencv(size, shape):
        differences[1] = 1.0
    for channels, difference in differences.items():
        if difference:
            logger.warning(
                "Cellpose blocks: this OpenCV resizes %d-channel images other than "
                "reproduced here (up to %.2g apart): objects may differ slightly from a "
                "whole-image run",
                channels,
                difference,
            )


def invert_channels(channels: np.ndarray) -> np.ndarray:
    """1 - x for every channel that holds signal (all-zero channels stay zero).

    Cellpose's ``invert``, applied to channels normalised already: Cellpose itself inverts
    only while normalising and refuses ``invert`` without it.
    """
    out = np.array(channels, dtype=np.float32, copy=True)
    for channel in out:
        if np.any(channel):
            np.subtract(np.float32(1), channel, out=channel)
    return out


def _accepted(evaluate, options: dict, version: str | None) -> dict:
    """``options`` that this Cellpose's ``eval`` takes; one it lacks is an error if set."""
    import inspect

    try:
        parameters = inspect.signature(evaluate).parameters
    except (TypeError, ValueError):
        return options
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
        return options
    defaults = CellposeSettings().eval_options()
    for name, value in options.items():
        if name not in parameters and value != defaults[name]:
            raise SteinbockLikeError(f"Cellpose {version} does not take '{name}'")
    return {name: value for name, value in options.items() if name in parameters}


def versions() -> dict[str, str]:
    """Cellpose and torch versions, for the run metadata (empty entries left out)."""
    found = {}
    for package in ("cellpose", "torch"):
        try:
            found[package] = importlib_metadata.version(package)
        except importlib_metadata.PackageNotFoundError:
            continue
    return found
