"""Axis orders of ilastik data: bring crops, lanes and label blocks to CYX.

ilastik stores every array with its own axis order (``axistags``: e.g. ``zyxc`` for a crop
written by ilastik, ``cyx`` for steinbock's). These functions work on arrays and axis keys
only; reading the keys from files is :mod:`steinbock_like.io.ilastik`'s job.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

from steinbock_like.errors import SteinbockLikeError

SPATIAL_AXES = ("y", "x")
DROPPABLE_AXES = ("z", "t")
_BOUNDS = re.compile(r"(\d+)\s*:\s*(\d+)")


def cyx_order(axes: Sequence[str], shape: Sequence[int]) -> tuple[tuple[int, ...], list[int]]:
    """How to bring data with ``axes`` into CYX.

    Singleton z/t axes are dropped. When the channel axis is missing or a singleton
    while one z or t axis holds several planes, those planes are taken as the channels
    (some tools store channels along z).

    Returns
    -------
    transpose : tuple of int
        Permutation of the input axes putting channel, y, x first, dropped axes last.
    dropped : list of int
        Input axes (all of size 1) that come after y and x and are squeezed away.

    Raises
    ------
    SteinbockLikeError
        On an axis order without y and x, repeated keys, or several non-singleton axes
        that could hold channels.
    """
    axes = [str(a).lower() for a in axes]
    if len(axes) != len(shape):
        raise SteinbockLikeError(f"axis order '{''.join(axes)}' does not fit shape {tuple(shape)}")
    if len(set(axes)) != len(axes) or not all(a in axes for a in SPATIAL_AXES):
        raise SteinbockLikeError(f"axis order '{''.join(axes)}' must name y and x once each")
    unknown = [a for a in axes if a not in ("c", *SPATIAL_AXES, *DROPPABLE_AXES)]
    if unknown:
        raise SteinbockLikeError(f"unknown axes {unknown} in '{''.join(axes)}'")
    others = [i for i, a in enumerate(axes) if a not in ("c", *SPATIAL_AXES)]
    planes = [i for i in others if shape[i] > 1]
    channel = axes.index("c") if "c" in axes else None
    if planes:
        if len(planes) > 1 or (channel is not None and shape[channel] > 1):
            raise SteinbockLikeError(
                f"shape {tuple(shape)} with axes '{''.join(axes)}' is not a single 2-D "
                "multichannel image"
            )
        if channel is not None:
            others.append(channel)
        channel = planes[0]
        others.remove(channel)
    front = ([channel] if channel is not None else []) + [axes.index("y"), axes.index("x")]
    transpose = tuple(front + sorted(others))
    return transpose, sorted(others)


def to_cyx(array: np.ndarray, axes: Sequence[str], dtype=np.float32) -> np.ndarray:
    """Reorder any 2-D multichannel array to CYX (see :func:`cyx_order`), as ``dtype``."""
    transpose, dropped = cyx_order(axes, array.shape)
    moved = np.transpose(array, transpose)
    cyx = moved.reshape(moved.shape[: len(transpose) - len(dropped)])
    if cyx.ndim == 2:
        cyx = cyx[np.newaxis]
    return np.ascontiguousarray(cyx, dtype=dtype)


def parse_block_slice(block_slice: str) -> list[tuple[int, int]]:
    """(start, stop) per axis of ilastik's ``blockSlice`` text, e.g. ``[0:1,8:94,11:121]``.

    Raises
    ------
    SteinbockLikeError
        If the text is not a list of ``start:stop`` pairs.
    """
    parts = block_slice.strip().strip("[]").split(",")
    matches = [_BOUNDS.fullmatch(part.strip()) for part in parts]
    if not block_slice.strip() or not all(matches):
        raise SteinbockLikeError(f"unreadable label blockSlice {block_slice!r}")
    return [(int(m.group(1)), int(m.group(2))) for m in matches]


def block_slice_text(bounds: Sequence[tuple[int, int]]) -> str:
    """ilastik's ``blockSlice`` text of a block position, e.g. ``[0:1,8:94,11:121]``."""
    return "[" + ",".join(f"{a}:{b}" for a, b in bounds) + "]"


def reorder_label_block(
    block: np.ndarray, block_slice: str, axes: Sequence[str]
) -> tuple[np.ndarray, str]:
    """Bring a label block and its ``blockSlice`` from the lane's ``axes`` to CYX.

    The block's channel axis (size 1) comes first; singleton z/t axes are dropped.

    Raises
    ------
    SteinbockLikeError
        If the block, its position and the axes disagree.
    """
    bounds = parse_block_slice(block_slice)
    if len(bounds) != block.ndim or len(axes) != block.ndim:
        raise SteinbockLikeError(
            f"label block of shape {block.shape} has blockSlice {block_slice} and axes {list(axes)}"
        )
    axes = [a.lower() for a in axes]
    if "c" not in axes:  # labels always carry a channel axis; be lenient
        block, axes = block[..., np.newaxis], [*axes, "c"]
        bounds = [*bounds, (0, 1)]
    transpose, dropped = cyx_order(axes, block.shape)
    moved = np.transpose(block, transpose)
    kept_axes = len(transpose) - len(dropped)
    reordered = np.ascontiguousarray(moved.reshape(moved.shape[:kept_axes]))
    return reordered, block_slice_text([bounds[i] for i in transpose[:kept_axes]])


def paste_label_block(labels_yx: np.ndarray, block: np.ndarray, block_slice: str, axes) -> None:
    """Copy a label block's non-zero labels into a YX label image at its position.

    Raises
    ------
    SteinbockLikeError
        If the block has several channels or lies outside ``labels_yx``.
    """
    cyx, cyx_slice = reorder_label_block(block, block_slice, axes)
    if cyx.ndim != 3 or cyx.shape[0] != 1:
        raise SteinbockLikeError(f"label block of shape {block.shape} has several channels")
    (y0, y1), (x0, x1) = parse_block_slice(cyx_slice)[-2:]
    if y1 > labels_yx.shape[0] or x1 > labels_yx.shape[1] or (y1 - y0, x1 - x0) != cyx.shape[1:]:
        raise SteinbockLikeError(
            f"label block at {block_slice} lies outside its crop {labels_yx.shape}"
        )
    target = labels_yx[y0:y1, x0:x1]
    np.copyto(target, cyx[0], where=cyx[0] > 0)
