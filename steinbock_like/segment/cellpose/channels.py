"""Cellpose's two input channels from a multiplexed image, driven by the panel."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from steinbock_like.channels import NORMALIZATIONS, aggregate_groups, channel_groups
from steinbock_like.errors import SteinbockLikeError

logger = logging.getLogger(__name__)

PANEL_COLUMN = "cellpose"
CYTOPLASM_GROUP = 1.0
NUCLEAR_GROUP = 2.0


def prepare_channels(
    image: np.ndarray,
    panel: pd.DataFrame,
    *,
    normalize: str | None = None,
    aggr: str = "mean",
) -> np.ndarray:
    """Reduce a multiplexed image to Cellpose's two input channels.

    Parameters
    ----------
    image : ndarray, shape (C, Y, X)
        The image, its channels in the order of ``panel``'s rows.
    panel : DataFrame
        Panel rows describing the image's channels (see
        :func:`steinbock_like.io.panel.panel_for_image`), with a ``cellpose``
        column: 1 = cytoplasm/membrane, 2 = nuclear, empty = unused.
    normalize : {None, "minmax", "zscore"}
        Per-channel normalisation before aggregation.
    aggr : str
        Name of the numpy reduction that merges a group's channels.

    Returns
    -------
    ndarray of float32, shape (2, Y, X)
        Channel 0 is segmented, channel 1 is the nuclear helper channel (zeros
        when the panel has no group 2). Without group 1 the nuclear signal
        moves to channel 0 and channel 1 is zeros.

    Raises
    ------
    SteinbockLikeError
        If the panel has no ``cellpose`` column or it holds labels other than 1 and 2.
    """
    if normalize is not None and normalize not in NORMALIZATIONS:
        raise SteinbockLikeError(f"unknown normalisation {normalize!r}")
    groups = cellpose_groups(panel)
    aggregated = aggregate_groups(image, groups, aggr=aggr, normalize=normalize)
    by_label = dict(zip(sorted(groups), aggregated, strict=True))
    channels = np.zeros((2, *image.shape[1:]), dtype=np.float32)
    if CYTOPLASM_GROUP in by_label:
        channels[0] = by_label[CYTOPLASM_GROUP]
        if NUCLEAR_GROUP in by_label:
            channels[1] = by_label[NUCLEAR_GROUP]
    else:
        channels[0] = by_label[NUCLEAR_GROUP]
    return channels


def cellpose_groups(panel: pd.DataFrame) -> dict[float, list[int]]:
    """The panel's ``cellpose`` groups (1 and/or 2) -> image channel indices.

    Raises
    ------
    SteinbockLikeError
        For a missing or empty column, or a label other than 1 or 2.
    """
    groups = channel_groups(panel, PANEL_COLUMN)
    unknown = sorted(set(groups) - {CYTOPLASM_GROUP, NUCLEAR_GROUP})
    if unknown:
        raise SteinbockLikeError(
            f"the panel's '{PANEL_COLUMN}' column may only hold 1 (cytoplasm/membrane) and "
            f"2 (nuclear), found {unknown[0]:g}"
        )
    return groups
