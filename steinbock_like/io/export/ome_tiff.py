"""Images as OME-TIFF (steinbock's ``export ome``), written by tifffile's OME writer.

float32, CYX, one page per channel, channel names ``<channel>_<name>`` from
the panel in the OME-XML. Channels are written one at a time, so images larger
than memory can be exported.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from steinbock_like.io.atomic import atomic_path

SUFFIX = ".ome.tiff"


def ome_channel_names(channels: Sequence[str], names: Sequence[str]) -> list[str]:
    """steinbock's OME channel names: ``<channel ID>_<name>``."""
    return [f"{channel}_{name}" for channel, name in zip(channels, names, strict=True)]


def write_ome_tiff(
    path: str | Path,
    channels: Iterable[np.ndarray],
    shape: tuple[int, int, int],
    channel_names: Sequence[str],
) -> None:
    """Write a float32 CYX OME-TIFF atomically from channels given one at a time.

    Parameters
    ----------
    path : path-like
        ``<name>.ome.tiff``.
    channels : iterable of ndarray (Y, X)
        The channels in order; consumed lazily.
    shape : (C, Y, X)
    channel_names : sequence of str
        One per channel, written to the OME-XML ``Channel/@Name``.
    """
    import tifffile

    num_channels, height, width = shape
    if len(channel_names) != num_channels:
        raise ValueError(f"{len(channel_names)} channel names for {num_channels} channels")

    def pages():
        for channel in channels:
            yield np.asarray(channel, dtype=np.float32).reshape(height, width)

    with atomic_path(path) as tmp:
        tifffile.imwrite(
            tmp,
            pages(),
            shape=shape,
            dtype=np.float32,
            ome=True,
            photometric="minisblack",
            metadata={"axes": "CYX", "Channel": {"Name": list(channel_names)}},
            bigtiff=num_channels * height * width * 4 > 2**31,
        )
