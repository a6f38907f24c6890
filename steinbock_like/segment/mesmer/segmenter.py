"""Mesmer end to end: two channels in, uint16 masks out (whole image or in chunks)."""

from __future__ import annotations

import logging
import math
from pathlib import Path

import numpy as np

from steinbock_like import tiles as slide_tiles
from steinbock_like.errors import SteinbockLikeError
from steinbock_like.segment.mesmer.model import COMPARTMENT_MAPS, MesmerNetwork, network_in_process
from steinbock_like.segment.mesmer.postprocess import (
    NUCLEAR_PARAMS,
    WHOLE_CELL_PARAMS,
    WatershedParams,
    deep_watershed,
    resize_labels,
)
from steinbock_like.segment.mesmer.preprocess import (
    CLAHE_KERNEL_SIZE,
    CLIP_PERCENTILE,
    MODEL_PIXEL_SIZE_UM,
    ChannelStats,
    mesmer_preprocess,
    model_resolution_shape,
    resize_channels,
    streamed_channel_stats,
)
from steinbock_like.segment.mesmer.tiling import TileBlender, iter_tiles, pad_for_tiles, plan_tiles

logger = logging.getLogger(__name__)

COMPARTMENTS = ("whole-cell", "nuclear", "both")
DEFAULT_CHUNK_SIZE = 2048
#: chunk overlap in pixels at the model's resolution: CLAHE reaches 1.5 kernels (192 px)
#: and the network sees whole 256 px tiles
DEFAULT_CHUNK_MARGIN_MODEL_PX = 256
DEFAULT_BATCH_SIZE = 4


def compartments_of(compartment: str) -> tuple[str, ...]:
    """The compartments to compute for a ``compartment`` option value."""
    if compartment not in COMPARTMENTS:
        raise SteinbockLikeError(
            f"unknown compartment {compartment!r} (choose from {', '.join(COMPARTMENTS)})"
        )
    return ("whole-cell", "nuclear") if compartment == "both" else (compartment,)


def predict_maps(
    network: MesmerNetwork,
    image: np.ndarray,
    compartments: tuple[str, ...],
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> dict[str, np.ndarray]:
    """Network maps of a preprocessed YXC image at model resolution.

    Returns, per compartment, a float32 YX2 array: inner distance, interior.
    Tiles are run in batches and blended as they come, so only the blended maps
    are held in memory.
    """
    plan = plan_tiles(image.shape[:2], network.tile_shape)
    padded = pad_for_tiles(image, plan)
    blenders = {name: TileBlender(plan, 2, np.float32) for name in compartments}
    tiles = iter_tiles(padded, plan)
    for first in range(0, plan.num_tiles, batch_size):
        batch = [next(tiles) for _ in range(min(batch_size, plan.num_tiles - first))]
        outputs = network.predict(np.stack(batch))
        for name in compartments:
            (d_out, d_ch), (i_out, i_ch) = COMPARTMENT_MAPS[name]
            maps = np.stack([outputs[d_out][..., d_ch], outputs[i_out][..., i_ch]], axis=-1)
            for offset, tile_maps in enumerate(maps):
                blenders[name].add(first + offset, tile_maps)
    return {name: blender.result() for name, blender in blenders.items()}


class MesmerSegmenter:
    """Mesmer whole-cell and nuclear segmentation on ONNX Runtime.

    Parameters
    ----------
    model_path : path-like
        The Mesmer ONNX file (see :func:`steinbock_like.models.locate_mesmer_model`).
    threads : int, optional
        ONNX Runtime intra-op threads.
    batch_size : int
        Tiles per network call.
    chunk_size : int
        Images larger than this (pixels along either axis, at the image's own
        pixel size) are segmented in chunks of this size; ``0`` never chunks.
    chunk_margin : int, optional
        Overlap of the chunks in pixels of the image; should exceed the largest
        cell. Default: 256 px at the model's resolution (128 px at 1 um/px).
    whole_cell_params, nuclear_params : WatershedParams
        Post-processing parameters (Mesmer's defaults).
    percentile, kernel_size : float, int
        Pre-processing: clipping percentile and CLAHE kernel size (Mesmer's defaults).
    """

    def __init__(
        self,
        model_path: str | Path,
        *,
        threads: int | None = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        chunk_margin: int | None = None,
        whole_cell_params: WatershedParams = WHOLE_CELL_PARAMS,
        nuclear_params: WatershedParams = NUCLEAR_PARAMS,
        percentile: float = CLIP_PERCENTILE,
        kernel_size: int = CLAHE_KERNEL_SIZE,
    ):
        self.network = network_in_process(model_path, threads)
        self.batch_size = batch_size
        self.chunk_size = chunk_size
        self.chunk_margin = chunk_margin
        self.tiling: slide_tiles.TilingInfo | None = None  # of the last image
        self.params = {"whole-cell": whole_cell_params, "nuclear": nuclear_params}
        self.percentile = percentile
        self.kernel_size = kernel_size

    def segment(
        self,
        nuclear: np.ndarray,
        membrane: np.ndarray,
        *,
        pixel_size_um: float = 1.0,
        compartment: str = "whole-cell",
        chunk_size: int | None = None,
        min_signal: float = 0.0,
        distribute: bool = False,
        label: str = "",
    ) -> dict[str, np.ndarray]:
        """Segment one image (in tiles where it is larger than the chunk size).

        Parameters
        ----------
        nuclear, membrane : ndarray of float, shape (Y, X)
            The two input channels (see :func:`mesmer_input`).
        pixel_size_um : float
            Pixel size of the image in micrometres (the model works at 0.5).
        compartment : {"whole-cell", "nuclear", "both"}
            What to segment.
        chunk_size : int, optional
            Override the segmenter's chunk size for this image.
        min_signal : float
            Tiles whose mean input signal is below this hold no tissue: skipped
            (counted in ``self.tiling``, a :class:`~steinbock_like.tiles.TilingInfo`).
        distribute : bool
            Spread the tiles over the dask cluster when this runs in a dask task
            (:func:`steinbock_like.tiles.distributed_map`).
        label : str
            The image's name, for the tile progress lines.

        Returns
        -------
        dict of str to ndarray
            ``{"whole-cell": mask}``, ``{"nuclear": mask}`` or both; YX masks of
            the input's shape, uint16 (uint32 only beyond 65535 objects).
        """
        names = compartments_of(compartment)
        self.tiling = None
        image = _stack_channels(nuclear, membrane)
        chunk_size = self.chunk_size if chunk_size is None else chunk_size
        height, width = image.shape[:2]
        if chunk_size <= 0 or (height <= chunk_size and width <= chunk_size):
            masks = self.segment_region(image, pixel_size_um, names)
            return {name: _as_mask_dtype(mask) for name, mask in masks.items()}
        return self.segment_tiled(
            slide_tiles.ArrayRegions(image),
            pixel_size_um=pixel_size_um,
            compartment=compartment,
            chunk_size=chunk_size,
            min_signal=min_signal,
            distribute=distribute,
            label=label,
        )

    def segment_tiled(
        self,
        source,
        *,
        pixel_size_um: float = 1.0,
        compartment: str = "whole-cell",
        chunk_size: int | None = None,
        min_signal: float = 0.0,
        distribute: bool = False,
        label: str = "",
    ) -> dict[str, np.ndarray]:
        """Segment an image in overlapping tiles read from ``source`` one at a time.

        ``source`` holds the two input channels (nuclear, membrane) and hands out
        ``read(rows, cols)`` -> (rows, cols, 2) float32 regions and
        ``channel_bands(channel)``: a :class:`~steinbock_like.tiles.ArrayRegions`
        or, for slides not to be held in memory, a
        :class:`~steinbock_like.io.scratch.ScratchImage`. The image-wide
        normalisation statistics are computed from the bands (the same values as
        from the whole image), at the image's own pixel size rather than the
        model's (which would need the whole resized image; the percentile and
        range of a bilinearly resampled channel differ only marginally). Other
        parameters and the result as :meth:`segment`.
        """
        names = compartments_of(compartment)
        chunk_size = self.chunk_size if chunk_size is None else chunk_size
        stats = [
            streamed_channel_stats(lambda c=c: source.channel_bands(c), self.percentile)
            for c in range(2)
        ]
        scale = pixel_size_um / MODEL_PIXEL_SIZE_UM
        margin = self.chunk_margin
        if margin is None:
            margin = math.ceil(DEFAULT_CHUNK_MARGIN_MODEL_PX / scale)
        region = _RegionSegmenter(self, pixel_size_um, names, stats)
        info = slide_tiles.TilingInfo()
        masks, self.tiling = slide_tiles.segment_in_tiles(
            lambda tile: region(source.read(*tile.outer_slices)),
            source.shape,
            tile_size=max(1, chunk_size),
            margin=margin,
            align=max(1, round(self.kernel_size / scale)),
            signal=lambda tile: float(np.mean(source.read(*tile.core_slices), dtype=np.float64)),
            min_signal=min_signal,
            mapper=_crop_mapper(region, source, info.workers) if distribute else None,
            info=info,
            label=label,
        )
        return {name: _as_mask_dtype(mask) for name, mask in masks.items()}

    def segment_region(
        self,
        image: np.ndarray,
        pixel_size_um: float,
        compartments: tuple[str, ...],
        stats: list[ChannelStats] | None = None,
    ) -> dict[str, np.ndarray]:
        """Segment a YX2 image (or chunk) in one piece; labels at its own size.

        ``stats`` are the image-wide normalisation statistics when ``image`` is a
        chunk; without them they are computed from ``image`` at model resolution
        (exactly as deepcell does).
        """
        shape = image.shape[:2]
        resized = resize_channels(image, model_resolution_shape(shape, pixel_size_um))
        normalized = mesmer_preprocess(
            resized, stats, percentile=self.percentile, kernel_size=self.kernel_size
        )
        del resized
        maps = predict_maps(self.network, normalized, compartments, batch_size=self.batch_size)
        del normalized
        masks = {}
        for name in compartments:
            distance, interior = maps.pop(name).transpose(2, 0, 1)
            labels = deep_watershed(distance, interior, self.params[name])
            masks[name] = resize_labels(labels, shape)
        return masks


class _RegionSegmenter:
    """Picklable ``crop -> masks`` of one image's tiles (the network travels as its path)."""

    def __init__(self, segmenter, pixel_size_um, compartments, stats):
        self.segmenter = segmenter
        self.args = (pixel_size_um, compartments, stats)

    def __call__(self, crop: np.ndarray) -> dict[str, np.ndarray]:
        return self.segmenter.segment_region(crop, *self.args)


def _crop_mapper(region: _RegionSegmenter, source, workers_seen: set[str]):
    """A mapper sending each tile's crop (not the whole image) over the dask workers."""

    def mapper(_function, tiles):
        crops = (source.read(*tile.outer_slices) for tile in tiles)
        return slide_tiles.distributed_map(region, crops, workers_seen=workers_seen)

    return mapper


def _stack_channels(nuclear: np.ndarray, membrane: np.ndarray) -> np.ndarray:
    nuclear = np.asarray(nuclear)
    membrane = np.asarray(membrane)
    if nuclear.ndim != 2 or nuclear.shape != membrane.shape:
        raise ValueError(
            f"nuclear and membrane must be YX images of one shape, got {nuclear.shape} "
            f"and {membrane.shape}"
        )
    return np.stack([nuclear, membrane], axis=-1).astype(np.float32, copy=False)


def _as_mask_dtype(labels: np.ndarray) -> np.ndarray:
    dtype = np.uint16 if int(labels.max(initial=0)) <= np.iinfo(np.uint16).max else np.uint32
    return labels.astype(dtype, copy=False)
