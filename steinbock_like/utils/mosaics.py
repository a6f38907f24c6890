"""Cutting images into tiles and stitching tiles back (steinbock's ``utils mosaics``).

A tile of image ``NAME`` at column ``x``, row ``y`` with width ``w`` and height
``h`` is named ``NAME_tx{x}_ty{y}_tw{w}_th{h}``; stitching needs only the names.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from typing import NamedTuple

import numpy as np

_TILE_NAME = re.compile(r"(?P<name>.+)_tx(?P<x>\d+)_ty(?P<y>\d+)_tw(?P<w>\d+)_th(?P<h>\d+)")


class TileInfo(NamedTuple):
    """Where a tile lies in its image (pixels)."""

    name: str
    x: int
    y: int
    width: int
    height: int


def tile_grid(shape: tuple[int, ...], size: int) -> Iterator[TileInfo]:
    """Tiles of ``size`` x ``size`` pixels covering an image of ``shape`` (..., Y, X).

    Columns outer, rows inner (steinbock's order); tiles at the right and bottom
    edges are smaller where the image size is not a multiple of ``size``.
    """
    if size < 1:
        raise ValueError(f"tile size must be positive, got {size}")
    height, width = shape[-2:]
    for x in range(0, width, size):
        for y in range(0, height, size):
            yield TileInfo("", x, y, min(size, width - x), min(size, height - y))


def tile_name(image_name: str, tile: TileInfo) -> str:
    """File stem of a tile of ``image_name``."""
    return f"{image_name}_tx{tile.x}_ty{tile.y}_tw{tile.width}_th{tile.height}"


def parse_tile_name(stem: str) -> TileInfo | None:
    """The image name and position in a tile's file stem, or None if it is not one."""
    match = _TILE_NAME.fullmatch(stem)
    if match is None:
        return None
    return TileInfo(
        match["name"], int(match["x"]), int(match["y"]), int(match["w"]), int(match["h"])
    )


def stitch_tiles(
    tiles: Iterable[tuple[TileInfo, np.ndarray]], *, relabel: bool = False
) -> np.ndarray:
    """Assemble tiles into one image.

    Parameters
    ----------
    tiles : iterable of (TileInfo, ndarray)
        Each tile's position and pixels, shape (Y, X) or (C, Y, X), all alike in
        dtype and channels. Pixels no tile covers are 0.
    relabel : bool
        Label the connected foreground of the first channel anew (8-connectivity),
        for masks whose tiles numbered their objects independently.

    Returns
    -------
    ndarray
        Shape (..., max(y + h), max(x + w)), the tiles' dtype.
    """
    tiles = list(tiles)
    if not tiles:
        raise ValueError("no tiles to stitch")
    first = tiles[0][1]
    height = max(info.y + info.height for info, _ in tiles)
    width = max(info.x + info.width for info, _ in tiles)
    image = np.zeros((*first.shape[:-2], height, width), dtype=first.dtype)
    for info, tile in tiles:
        if tile.shape[-2:] != (info.height, info.width) or tile.shape[:-2] != first.shape[:-2]:
            raise ValueError(
                f"tile {tile_name(info.name, info)} has shape {tile.shape}, "
                f"expected {(*first.shape[:-2], info.height, info.width)}"
            )
        image[..., info.y : info.y + info.height, info.x : info.x + info.width] = tile
    if relabel:
        from skimage.measure import label

        plane = image if image.ndim == 2 else image[0]
        plane[...] = label(plane, connectivity=2)
    return image
