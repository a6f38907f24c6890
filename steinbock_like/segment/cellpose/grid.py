"""Cellpose 3's network tiles of a whole image, evaluated for one block at a time.

Cellpose runs its network on overlapping 224 px tiles whose positions depend on
the size of the image it is given (``cellpose.transforms.make_tiles``: the image
is zero-padded to a multiple of 16 plus 8 px on each side, and the tile origins
are evenly spread between its edges), and averages the tiles' outputs with a
tapered weight. A block of a large image, segmented on its own, therefore sees
other tiles than the whole image and gives slightly other flows everywhere,
enough to change about one object in twenty with a weak model.

Here a block's flows are computed from exactly the whole image's tiles that
overlap the block, averaged in the same order, so that they equal the whole
image's flows within the block; masks are then computed from them with
Cellpose's own dynamics. Memory stays that of a block (plus one tile of context).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class NetworkGrid:
    """Cellpose's network tiles of a whole image, in padded coordinates.

    Attributes
    ----------
    pad_y, pad_x : int
        Zero padding before the image's first row / column.
    starts_y, starts_x : ndarray of int
        Tile origins along each axis.
    tile_y, tile_x : int
        Tile height and width.
    """

    pad_y: int
    pad_x: int
    starts_y: np.ndarray
    starts_x: np.ndarray
    tile_y: int
    tile_x: int


def _pad(size: int, div: int = 16, extra: int = 1) -> tuple[int, int]:
    missing = int(div * math.ceil(size / div) - size)
    return extra * div // 2 + missing // 2, extra * div // 2 + missing - missing // 2


def network_grid(
    shape: tuple[int, int], *, bsize: int = 224, tile_overlap: float = 0.1
) -> NetworkGrid:
    """The tiles Cellpose 3 (``run_net`` without augmentation) uses for an image.

    Parameters
    ----------
    shape : (int, int)
        Image height and width (after any rescaling).
    bsize : int
        Network tile side.
    tile_overlap : float
        Cellpose's ``tile_overlap`` (clipped to [0.05, 0.5] as Cellpose does).

    Returns
    -------
    NetworkGrid
    """
    overlap = min(0.5, max(0.05, tile_overlap))
    pads = [_pad(size) for size in shape]
    starts, sides = [], []
    for size, (before, after) in zip(shape, pads, strict=True):
        padded = size + before + after
        side = min(bsize, padded)
        count = 1 if padded <= bsize else int(math.ceil((1.0 + 2 * overlap) * padded / bsize))
        starts.append(np.linspace(0, padded - side, count).astype(int))
        sides.append(side)
    return NetworkGrid(pads[0][0], pads[1][0], starts[0], starts[1], sides[0], sides[1])


def network_output(
    image: np.ndarray,
    box: tuple[slice, slice],
    forward,
    *,
    grid: NetworkGrid,
    batch_size: int = 8,
    channels: int | None = None,
) -> np.ndarray:
    """Flows and cell probability of the whole ``image``, computed for ``box`` only.

    Parameters
    ----------
    image : ndarray, shape (C, Y, X)
        The whole (normalised) network input.
    box : (slice, slice)
        The block (rows, columns) whose output is wanted.
    forward : callable
        ``forward(tiles)`` maps (N, C, tile_y, tile_x) float32 inputs to
        (N, 3, tile_y, tile_x) outputs (Cellpose's network).
    grid : NetworkGrid
        The whole image's tiles (:func:`network_grid` of ``image``'s shape).
    batch_size : int
        Tiles per network call.
    channels : int, optional
        Network input channels; missing ones of ``image`` are zeros (default:
        ``image``'s own).

    Returns
    -------
    ndarray of float32, shape (3, rows, columns)
        Y flow, X flow and cell probability, as Cellpose's ``run_net`` gives them
        for the whole image.
    """
    from cellpose import transforms

    present, height, width = image.shape
    channels = channels or present
    y0, y1 = box[0].indices(height)[:2]
    x0, x1 = box[1].indices(width)[:2]
    # the block in padded coordinates, and the tiles that overlap it
    by0, by1, bx0, bx1 = y0 + grid.pad_y, y1 + grid.pad_y, x0 + grid.pad_x, x1 + grid.pad_x
    rows = grid.starts_y[(grid.starts_y < by1) & (grid.starts_y + grid.tile_y > by0)]
    cols = grid.starts_x[(grid.starts_x < bx1) & (grid.starts_x + grid.tile_x > bx0)]
    # the region they cover, read from the image with Cellpose's zero padding
    ry0, ry1 = int(rows[0]), int(rows[-1]) + grid.tile_y
    rx0, rx1 = int(cols[0]), int(cols[-1]) + grid.tile_x
    region = np.zeros((channels, ry1 - ry0, rx1 - rx0), dtype=np.float32)
    sy0, sy1 = max(ry0 - grid.pad_y, 0), min(ry1 - grid.pad_y, height)
    sx0, sx1 = max(rx0 - grid.pad_x, 0), min(rx1 - grid.pad_x, width)
    oy, ox = grid.pad_y - ry0, grid.pad_x - rx0
    region[:present, sy0 + oy : sy1 + oy, sx0 + ox : sx1 + ox] = image[:, sy0:sy1, sx0:sx1]
    # Cellpose's average_tiles, accumulated batch by batch (the same sums in the same
    # order, so the same bits) so that the tiles' outputs are never all held at once
    taper = transforms._taper_mask(ly=grid.tile_y, lx=grid.tile_x)
    averaged = np.zeros((3, ry1 - ry0, rx1 - rx0), np.float32)
    weights = np.zeros((ry1 - ry0, rx1 - rx0))
    origins = [(int(ty) - ry0, int(tx) - rx0) for ty in rows for tx in cols]
    for start in range(0, len(origins), batch_size):
        batch = origins[start : start + batch_size]
        tiles = np.empty((len(batch), channels, grid.tile_y, grid.tile_x), np.float32)
        for index, (ly, lx) in enumerate(batch):
            tiles[index] = region[:, ly : ly + grid.tile_y, lx : lx + grid.tile_x]
        outputs = forward(tiles)
        del tiles
        for output, (ly, lx) in zip(outputs, batch, strict=True):
            averaged[:, ly : ly + grid.tile_y, lx : lx + grid.tile_x] += output * taper
            weights[ly : ly + grid.tile_y, lx : lx + grid.tile_x] += taper
        del outputs
    del region
    averaged /= weights
    return averaged[:, by0 - ry0 : by1 - ry0, bx0 - rx0 : bx1 - rx0]
