"""The two Mesmer input channels from a multichannel image and its panel.

As steinbock's ``segment deepcell``: optionally min-max or z-score normalise
every channel on its own (NaN-aware; constant channels are only shifted), then
aggregate the channels of each ``deepcell`` panel group; groups are taken in
ascending order, so group 1 is the nuclear and group 2 the membrane channel.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from steinbock_like.errors import SteinbockLikeError

AGGREGATIONS = {"mean": np.mean, "sum": np.sum, "max": np.max, "median": np.median}
#: steinbock's ``segment deepcell --aggr`` takes any ``numpy.<name>``: the per-pixel
#: reductions over the channel axis among them
STEINBOCK_AGGREGATIONS = (
    "min", "amax", "amin", "std", "var", "prod", "average", "ptp",
    "nanmean", "nanmedian", "nansum", "nanmax", "nanmin", "nanstd", "nanvar", "nanprod",
)  # fmt: skip
AGGREGATIONS.update({name: getattr(np, name) for name in STEINBOCK_AGGREGATIONS})
GROUP_COLUMN = "deepcell"


def channelwise_minmax(image: np.ndarray) -> np.ndarray:
    """Scale every channel of a CYX image to [0, 1] (constant channels become 0)."""
    image = np.array(image, dtype=np.float32, copy=True)
    lows = np.nanmin(image, axis=(1, 2))
    ranges = np.nanmax(image, axis=(1, 2)) - lows
    image -= lows[:, np.newaxis, np.newaxis]
    varying = ranges > 0
    image[varying] /= ranges[varying, np.newaxis, np.newaxis]
    return image


def channelwise_zscore(image: np.ndarray) -> np.ndarray:
    """Centre every channel of a CYX image and divide by its standard deviation."""
    image = np.array(image, dtype=np.float32, copy=True)
    means = np.nanmean(image, axis=(1, 2))
    stds = np.nanstd(image, axis=(1, 2))
    image -= means[:, np.newaxis, np.newaxis]
    varying = stds > 0
    image[varying] /= stds[varying, np.newaxis, np.newaxis]
    return image


def _panel_groups(panel: pd.DataFrame, column: str = GROUP_COLUMN) -> np.ndarray:
    """Group label of every panel row as float (NaN where the row is in no group)."""
    if column not in panel.columns:
        raise SteinbockLikeError(f"the panel has no '{column}' column")
    values = pd.to_numeric(panel[column], errors="coerce")
    bad = panel[column].notna() & values.isna() & (panel[column].astype(str).str.strip() != "")
    if bad.any():
        raise SteinbockLikeError(
            f"panel column '{column}' holds non-numeric group labels: "
            + ", ".join(sorted(set(panel.loc[bad, column].astype(str))))
        )
    return values.to_numpy(dtype=float)


def mesmer_input(
    image: np.ndarray,
    panel: pd.DataFrame,
    *,
    minmax: bool = False,
    zscore: bool = False,
    aggr: str = "mean",
) -> tuple[np.ndarray, np.ndarray]:
    """Nuclear and membrane channels (float32 YX) for Mesmer.

    Parameters
    ----------
    image : ndarray, shape (C, Y, X)
        Image whose channels are the panel's rows in order (kept channels only,
        as written by the preprocessing step).
    panel : DataFrame
        Panel with a ``deepcell`` column of group labels (1 nuclear, 2 membrane).
    minmax, zscore : bool
        Per-channel normalisation before aggregation (min-max first if both).
    aggr : str
        How channels of a group are combined: a name in :data:`AGGREGATIONS`.

    Raises
    ------
    SteinbockLikeError
        If the panel does not define exactly two groups, or does not match the image.
    """
    groups = _panel_groups(panel)
    if len(groups) != image.shape[0]:
        raise SteinbockLikeError(
            f"the panel lists {len(groups)} channels but the image has {image.shape[0]}"
        )
    labels = np.unique(groups[~np.isnan(groups)])
    if len(labels) != 2:
        raise SteinbockLikeError(
            f"Mesmer needs exactly two channel groups in the panel's '{GROUP_COLUMN}' column "
            f"(1 = nuclear, 2 = membrane), found {len(labels)}"
            + (f": {', '.join(f'{g:g}' for g in labels)}" if len(labels) else "")
        )
    if aggr not in AGGREGATIONS:
        raise SteinbockLikeError(
            f"unknown aggregation {aggr!r} (choose from {', '.join(AGGREGATIONS)})"
        )
    image = np.asarray(image, dtype=np.float32)
    if minmax:
        image = channelwise_minmax(image)
    if zscore:
        image = channelwise_zscore(image)
    aggregate = AGGREGATIONS[aggr]
    nuclear, membrane = (
        aggregate(image[groups == label], axis=0).astype(np.float32) for label in labels
    )
    return nuclear, membrane
