"""Cutting a model-resolution image into network tiles and blending the outputs back.

The scheme follows deepcell's published tiling for its applications:

* images smaller than a tile along an axis are padded up to the tile size
  (``reflect`` padding, split as evenly as possible, the extra pixel after);
* larger images are covered by tiles of 256 px with a stride of 0.75 tile
  (rounded up to an even number: 192 px), after ``constant`` (zero) padding
  that spreads the slack of the last tile over both sides (the extra pixel before);
* tile outputs are weighted by a squared-spline window whose ramps span each
  tile's overlaps with its neighbours and summed in float64; the result is
  cast back to the tiles' dtype and the padding removed;
* blending is only used where the tile is at least 32 px, smaller than the
  padded image along both axes and the stride ratio is at least 0.5; otherwise
  tiles are pasted in order, later ones overwriting earlier ones.

deepcell hands an image that is smaller than a tile along one axis but larger
along the other to the network whole; the ONNX network has a fixed 256 x 256
input, so here such an image is padded to 256 along the short axis only and then
tiled along the long one.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
from scipy.signal import windows

TILE_SIZE = 256
STRIDE_RATIO = 0.75
MIN_BLEND_TILE_SIZE = 32
MIN_BLEND_STRIDE_RATIO = 0.5


@dataclass(frozen=True)
class AxisTiles:
    """How one axis is padded and cut into tiles.

    Attributes
    ----------
    size : int
        Length of the axis before any padding.
    reflect_pad : (int, int)
        Reflect padding that brings a short axis up to the tile size.
    constant_pad : (int, int)
        Zero padding so that the tiles cover the axis exactly.
    tile : int
        Tile length.
    stride : int
        Distance between tile starts.
    starts : tuple of int
        Tile starts in padded coordinates.
    """

    size: int
    reflect_pad: tuple[int, int]
    constant_pad: tuple[int, int]
    tile: int
    stride: int
    starts: tuple[int, ...]

    @property
    def padded_size(self) -> int:
        return self.size + sum(self.reflect_pad) + sum(self.constant_pad)

    def overlaps(self, index: int) -> tuple[int, int]:
        """Pixels that tile ``index`` shares with its previous and next neighbour."""
        shared = self.tile - self.stride
        before = 0 if index == 0 else shared
        after = 0 if index == len(self.starts) - 1 else shared
        return before, after


def plan_axis(size: int, tile: int = TILE_SIZE, stride_ratio: float = STRIDE_RATIO) -> AxisTiles:
    """Plan the padding and tile starts along one axis of ``size`` pixels."""
    if size < 1:
        raise ValueError(f"cannot tile an axis of length {size}")
    reflect_pad = (0, 0)
    if size < tile:
        missing = tile - size
        reflect_pad = (missing // 2, missing - missing // 2)
    reflected = size + sum(reflect_pad)
    stride = min(2 * math.ceil(stride_ratio * tile / 2), tile)
    count = max(math.ceil((reflected - tile) / stride + 1), 1)
    slack = tile + stride * (count - 1) - reflected
    constant_pad = (math.ceil(slack / 2), slack // 2)
    starts = tuple(i * stride for i in range(count))
    return AxisTiles(size, reflect_pad, constant_pad, tile, stride, starts)


@dataclass(frozen=True)
class TilePlan:
    """Tiling of a 2-D (YX) image: one :class:`AxisTiles` per axis."""

    y: AxisTiles
    x: AxisTiles
    stride_ratio: float

    @property
    def tile_shape(self) -> tuple[int, int]:
        return self.y.tile, self.x.tile

    @property
    def padded_shape(self) -> tuple[int, int]:
        return self.y.padded_size, self.x.padded_size

    @property
    def num_tiles(self) -> int:
        return len(self.y.starts) * len(self.x.starts)

    @property
    def blends(self) -> bool:
        """Whether tile outputs are blended with spline windows (else pasted)."""
        return (
            all(MIN_BLEND_TILE_SIZE <= axis.tile < axis.padded_size for axis in (self.y, self.x))
            and self.stride_ratio >= MIN_BLEND_STRIDE_RATIO
        )

    def tile_origins(self) -> Iterator[tuple[int, int, int, int]]:
        """(index_y, index_x, y0, x0) of every tile, rows first (the processing order)."""
        for iy, y0 in enumerate(self.y.starts):
            for ix, x0 in enumerate(self.x.starts):
                yield iy, ix, y0, x0


def plan_tiles(
    shape: tuple[int, int],
    tile_shape: tuple[int, int] = (TILE_SIZE, TILE_SIZE),
    stride_ratio: float = STRIDE_RATIO,
) -> TilePlan:
    """Plan the tiling of an image of ``shape`` (Y, X) for a network of ``tile_shape``."""
    return TilePlan(
        plan_axis(shape[0], tile_shape[0], stride_ratio),
        plan_axis(shape[1], tile_shape[1], stride_ratio),
        stride_ratio,
    )


def pad_for_tiles(image: np.ndarray, plan: TilePlan) -> np.ndarray:
    """Pad a YX or YXC image as ``plan`` says: reflect short axes, then zeros."""
    extra = [(0, 0)] * (image.ndim - 2)
    reflect = [plan.y.reflect_pad, plan.x.reflect_pad, *extra]
    if any(sum(p) for p in reflect):
        image = np.pad(image, reflect, mode="reflect")
    constant = [plan.y.constant_pad, plan.x.constant_pad, *extra]
    if any(sum(p) for p in constant):
        image = np.pad(image, constant, mode="constant")
    return image


def crop_padding(image: np.ndarray, plan: TilePlan) -> np.ndarray:
    """Remove the padding added by :func:`pad_for_tiles` (YX or YXC)."""
    y0 = plan.y.reflect_pad[0] + plan.y.constant_pad[0]
    x0 = plan.x.reflect_pad[0] + plan.x.constant_pad[0]
    return image[y0 : y0 + plan.y.size, x0 : x0 + plan.x.size]


def iter_tiles(padded: np.ndarray, plan: TilePlan) -> Iterator[np.ndarray]:
    """Tiles of an already padded image, in :meth:`TilePlan.tile_origins` order (views)."""
    ty, tx = plan.tile_shape
    for _, _, y0, x0 in plan.tile_origins():
        yield padded[y0 : y0 + ty, x0 : x0 + tx]


def tile_image(image: np.ndarray, plan: TilePlan) -> np.ndarray:
    """Cut a YXC image into an (N, tile_y, tile_x, C) stack of tiles."""
    padded = pad_for_tiles(image, plan)
    return np.stack(list(iter_tiles(padded, plan)))


def spline_ramp_window(length: int, power: int = 2) -> np.ndarray:
    """deepcell's squared-spline window of ``length`` samples, peak 1.

    Built from a triangle window ``t``: the outer quarters follow ``(2 t)^p / 2``
    and the middle half ``1 - (2 |t - 1|)^p / 2``; the two halves meet smoothly.
    """
    triangle = windows.triang(length)
    quarter = length // 4
    outer = np.abs(2 * triangle) ** power / 2
    inner = 1 - np.abs(2 * (triangle - 1)) ** power / 2
    if quarter > 0:
        outer[quarter : length - quarter] = 0
        inner[:quarter] = 0
        inner[length - quarter :] = 0
    else:
        # deepcell slices with a negative zero here, which empties the inner part
        inner[:] = 0
    window = outer + inner
    return window / window.max()


def blend_window_1d(length: int, overlap_before: int, overlap_after: int, power: int = 2):
    """Weights along one tile axis: spline ramps over the overlaps, 1 elsewhere."""
    weights = np.ones(length)
    if overlap_before > 0:
        weights[:overlap_before] = spline_ramp_window(2 * overlap_before, power)[:overlap_before]
    if overlap_after > 0:
        weights[length - overlap_after :] = spline_ramp_window(2 * overlap_after, power)[
            overlap_after:
        ]
    return weights


def blend_window_2d(
    shape: tuple[int, int],
    overlaps_y: tuple[int, int],
    overlaps_x: tuple[int, int],
    power: int = 2,
) -> np.ndarray:
    """Separable 2-D blending window (float64, YX)."""
    return np.outer(
        blend_window_1d(shape[0], *overlaps_y, power=power),
        blend_window_1d(shape[1], *overlaps_x, power=power),
    )


class TileBlender:
    """Accumulates tile outputs into a whole image, one tile at a time.

    Memory holds only the float64 sum at the padded image size, so the network
    outputs of all tiles never need to exist at once.

    Parameters
    ----------
    plan : TilePlan
        The tiling the outputs come from.
    num_channels : int
        Channels of each tile output (YXC).
    dtype : dtype
        The tiles' dtype, which the blended image is cast back to.
    power : int
        Exponent of the spline window.
    """

    def __init__(self, plan: TilePlan, num_channels: int, dtype=np.float32, power: int = 2):
        self.plan = plan
        self.dtype = np.dtype(dtype)
        self.power = power
        self._sum = np.zeros((*plan.padded_shape, num_channels), dtype=np.float64)
        self._origins = list(plan.tile_origins())
        self._windows: dict[tuple, np.ndarray] = {}

    def add(self, tile_index: int, tile_output: np.ndarray) -> None:
        """Add the YXC output of tile number ``tile_index`` (in plan order)."""
        iy, ix, y0, x0 = self._origins[tile_index]
        ty, tx = self.plan.tile_shape
        target = self._sum[y0 : y0 + ty, x0 : x0 + tx]
        if self.plan.blends:
            key = (self.plan.y.overlaps(iy), self.plan.x.overlaps(ix))
            if key not in self._windows:
                self._windows[key] = blend_window_2d((ty, tx), *key, power=self.power)
            target += tile_output * self._windows[key][:, :, np.newaxis]
        else:
            target[...] = tile_output

    def result(self) -> np.ndarray:
        """The blended YXC image at the unpadded size, in the tiles' dtype."""
        return crop_padding(self._sum.astype(self.dtype), self.plan)


def untile_image(tiles: np.ndarray, plan: TilePlan, power: int = 2) -> np.ndarray:
    """Blend an (N, tile_y, tile_x, C) stack back into one YXC image."""
    blender = TileBlender(plan, tiles.shape[-1], tiles.dtype, power)
    for index, tile in enumerate(tiles):
        blender.add(index, tile)
    return blender.result()
