"""Cellpose on a large image block by block (the tiles of :mod:`steinbock_like.tiles`)."""

from __future__ import annotations

import logging
from collections.abc import Callable

import numpy as np

from steinbock_like.tiles import TilingInfo, segment_in_tiles, tile_signal

logger = logging.getLogger(__name__)


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


def segment_in_blocks(
    channels: np.ndarray,
    segment: Callable[[np.ndarray], np.ndarray],
    *,
    block_size: int = 2048,
    overlap: int = 64,
    min_signal: float = 0.0,
    tiling: TilingInfo | None = None,
    normalize: bool = True,
    box_segmenter: Callable[[np.ndarray], Callable | None] | None = None,
) -> np.ndarray:
    """Segment a large image block by block, so that memory depends on the block size.

    Blocks are the tiles of :mod:`steinbock_like.tiles` (cores of ``block_size``
    from the top-left corner, ``overlap`` px of context on each side, objects
    stitched across block borders). Channels are normalised once for the whole
    image (:func:`normalize_percentiles`) and ``segment`` must not normalise again.

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
    min_signal : float
        Blocks whose mean (raw) signal is below this are skipped as empty.
    tiling : TilingInfo, optional
        Filled with the number of blocks and of skipped ones.
    normalize : bool
        False: the channels are passed on as they are (steinbock's ``--no-normalize``).
    box_segmenter : callable, optional
        ``box_segmenter(whole_channels)`` returns ``function(box) -> labels`` that
        segments a box (rows, columns) of the whole (normalised) image as the
        whole-image segmentation would (e.g. on the same network tiles,
        :meth:`CellposeSegmenter.block_function`), or None; then it is used for
        every block instead of ``segment`` on the block's pixels alone.

    Returns
    -------
    ndarray of uint32, shape (Y, X)
        Objects numbered 1..n.
    """
    channels = np.asarray(channels)
    height, width = channels.shape[1:]
    normalized = normalize_percentiles(channels) if normalize else channels.astype(np.float32)
    if block_size <= 0 or (height <= block_size and width <= block_size):
        return np.asarray(segment(normalized)).astype(np.uint32, copy=False)
    segment_box = box_segmenter(normalized) if box_segmenter is not None else None
    if segment_box is None:

        def segment_box(box):
            return segment(normalized[(slice(None), *box)])

    masks, info = segment_in_tiles(
        lambda tile: {"labels": np.asarray(segment_box(tile.outer_slices))},
        (height, width),
        tile_size=block_size,
        margin=overlap,
        even=False,
        signal=lambda tile: tile_signal(channels, tile),
        min_signal=min_signal,
    )
    if tiling is not None:
        tiling.tiles, tiling.skipped = info.tiles, info.skipped
        tiling.skipped_tiles = info.skipped_tiles
    if "labels" not in masks:
        return np.zeros((height, width), dtype=np.uint32)
    return masks["labels"]
