"""Mask and image utilities (steinbock's ``utils``): expansion, matching, mosaics."""

from steinbock_like.utils.expansion import expand_mask
from steinbock_like.utils.matching import match_masks
from steinbock_like.utils.mosaics import (
    TileInfo,
    parse_tile_name,
    stitch_tiles,
    tile_grid,
    tile_name,
)

__all__ = [
    "TileInfo",
    "expand_mask",
    "match_masks",
    "parse_tile_name",
    "stitch_tiles",
    "tile_grid",
    "tile_name",
]
