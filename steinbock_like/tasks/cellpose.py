"""Cellpose task: segment one image (multiplexed or brightfield) and write its mask.

Inputs ``image`` and optional ``tissue`` (a region-of-interest mask); outputs
``mask`` and optional ``figure`` (PNG). The network is loaded once per worker
in :meth:`CellposeTask.setup`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from steinbock_like.errors import InputError
from steinbock_like.io.masks import write_mask
from steinbock_like.runner import Job
from steinbock_like.segment import cellpose as cp
from steinbock_like.segment import stain as st
from steinbock_like.tiles import TilingInfo


@dataclass(eq=False)
class CellposeTask:
    """Segment images with one Cellpose model.

    Parameters
    ----------
    model_path : Path
        Resolved weights file (see :func:`steinbock_like.segment.cellpose.resolve_model`).
    settings : CellposeSettings
    panel : DataFrame or None
        Panel with a ``cellpose`` column, for multiplexed images (None with ``stain``).
    normalize : {None, "minmax", "zscore"}
    aggr : str
    stain : {None, "hed"}
        Brightfield stain: the image is RGB and its haematoxylin channel is segmented.
    threads : int, optional
        torch CPU threads per worker.
    tissue_margin : int
        Context (px) kept around a tissue mask's bounding box.
    block_size, block_overlap : int
        Large images are segmented in blocks of this size with this much
        context (see :func:`steinbock_like.segment.cellpose.segment_in_blocks`).
    tile_min_signal : float
        Blocks whose mean signal is below this are skipped as empty (counted).
    """

    model_path: Path
    settings: cp.CellposeSettings = field(default_factory=cp.CellposeSettings)
    panel: pd.DataFrame | None = None
    normalize: str | None = None
    aggr: str = "mean"
    stain: str | None = None
    threads: int | None = None
    tissue_margin: int = 8
    block_size: int = 2048
    block_overlap: int = 64
    tile_min_signal: float = 0.0
    _segmenter: cp.CellposeSegmenter | None = field(
        default=None, init=False, repr=False, compare=False
    )

    def __getstate__(self) -> dict[str, Any]:
        # The loaded network stays in its process; each worker loads its own in setup().
        state = dict(self.__dict__)
        state["_segmenter"] = None
        return state

    def setup(self) -> None:
        if self._segmenter is None:
            self._segmenter = cp.CellposeSegmenter(
                self.model_path, self.settings, threads=self.threads
            )

    def versions(self) -> dict[str, str]:
        return cp.versions()

    def __call__(self, job: Job) -> dict[str, Any]:
        from steinbock_like.io.images import check_segmentable
        from steinbock_like.io.tiff import tiff_shape

        shape = tiff_shape(job.inputs["image"])
        check_segmentable(job.inputs["image"], shape[:2] if self.stain else shape)
        self.setup()
        image = self._read(job.inputs["image"])
        tissue = (
            _read_tissue(job.inputs["tissue"], image.shape[:2] if self.stain else image.shape[1:])
            if "tissue" in job.inputs
            else None
        )

        preprocessed: dict[str, np.ndarray] = {}
        tiling = TilingInfo()

        def segment_region(box, tissue_crop):
            crop = image[box] if self.stain else image[(slice(None), *box)]
            channels = self._prepare(crop, tissue_crop, job.inputs["image"])
            if "figure" in job.outputs:
                preprocessed["box"] = box
                preprocessed["channels"] = channels
            return cp.segment_in_blocks(
                channels,
                lambda block: self._segmenter.segment(block, normalize=False),
                block_size=self.block_size,
                overlap=self.block_overlap,
                min_signal=self.tile_min_signal,
                tiling=tiling,
                normalize=self.settings.normalize,
                box_segmenter=lambda whole: self._segmenter.block_function(whole, normalize=False),
            )

        info: dict[str, Any] = {}
        if tissue is None:
            full = (slice(0, None), slice(0, None))
            labels = np.asarray(segment_region(full, None))
        else:
            labels, box = st.segment_within_tissue(
                tissue, segment_region, margin=self.tissue_margin
            )
            info["tissue_fraction"] = round(float(np.count_nonzero(tissue)) / tissue.size, 4)
            info["crop"] = None if box is None else [int(s) for b in box for s in (b.start, b.stop)]
        write_mask(job.outputs["mask"], labels)
        if tiling.tiles:
            info.update(tiling.as_dict())
        info["objects"] = int(np.count_nonzero(np.bincount(labels.ravel())[1:]))
        if "figure" in job.outputs:
            _write_figure(
                job.outputs["figure"], image, self.stain, preprocessed, labels, tissue=tissue
            )
        return info

    def _read(self, path: Path) -> np.ndarray:
        if self.stain:
            from steinbock_like.io.tiff import read_tiff

            array = read_tiff(path)
            try:
                return st.as_rgb(array)
            except ValueError as error:
                raise InputError(
                    path, f"--stain {self.stain} needs an RGB image: {error}"
                ) from None
        from steinbock_like.io.images import read_image

        return read_image(path)

    def _prepare(self, crop: np.ndarray, tissue_crop: np.ndarray | None, path: Path) -> np.ndarray:
        if self.stain:
            return st.prepare_stain(crop, self.stain, mask=tissue_crop)[np.newaxis]
        from steinbock_like.io.panel import panel_for_image

        panel = panel_for_image(self.panel, crop.shape[0], path)
        return cp.prepare_channels(crop, panel, normalize=self.normalize, aggr=self.aggr)


def _read_tissue(path: Path, shape: tuple[int, int]) -> np.ndarray:
    from steinbock_like.io.tiff import read_tiff

    tissue = read_tiff(path)
    if tissue.ndim != 2:
        raise InputError(path, f"a tissue mask must be 2-D (YX), found shape {tissue.shape}")
    if tuple(tissue.shape) != tuple(shape):
        raise InputError(
            path,
            f"tissue mask shape {tuple(tissue.shape)} does not match the image's {tuple(shape)}",
        )
    return tissue != 0


def _write_figure(path: Path, image, stain, preprocessed, labels, *, tissue=None) -> None:
    """Input, preprocessed channel(s), the tissue mask (if any) and mask outlines side by
    side, as a PNG."""
    import imageio.v3 as iio

    from steinbock_like.io.atomic import atomic_path

    channels = preprocessed.get("channels")
    box = preprocessed.get("box")
    full_shape = labels.shape
    shown = []
    if channels is not None:
        for channel in channels:
            if not np.any(channel) and len(shown):
                continue  # an empty nuclear channel tells nothing
            canvas = np.zeros(full_shape, dtype=np.float32)
            canvas[box] = channel
            shown.append(canvas)
    if stain:
        input_rgb = (image * 255).round().astype(np.uint8)
    else:
        composite = np.zeros((2, *full_shape), dtype=np.float32)
        if channels is not None:
            composite[(slice(None), *box)] = channels
        input_rgb = cp.composite_rgb(composite)
    figure = cp.overview_figure(input_rgb, shown, labels, tissue=tissue)
    with atomic_path(path) as tmp:
        iio.imwrite(tmp, figure, extension=".png")
