"""Channel selection, normalisation and aggregation driven by a panel's group columns.

Pure functions on arrays; the panel is a validated DataFrame from
:func:`steinbock_like.io.panel.read_panel`.
"""

from collections.abc import Callable, Iterable

import numpy as np
import pandas as pd

from steinbock_like.errors import SteinbockLikeError

NORMALIZATIONS = ("minmax", "zscore")


def channel_groups(panel: pd.DataFrame, column: str) -> dict[float, list[int]]:
    """Map each group label of ``column`` to the image channel indices it holds.

    Only kept channels count; empty labels are ignored; groups come in
    ascending label order. The indices refer to the image's channels (the
    panel's rows), not to the kept subset.

    Raises
    ------
    SteinbockLikeError
        If the panel has no such column or it holds no labels.
    """
    if column not in panel.columns:
        raise SteinbockLikeError(f"the panel has no '{column}' column to group channels by")
    labels = panel[column].to_numpy(dtype=float)
    keep = panel["keep"].to_numpy(dtype=bool) if "keep" in panel.columns else True
    usable = np.isfinite(labels) & keep
    if not usable.any():
        raise SteinbockLikeError(
            f"the panel's '{column}' column assigns no kept channel to a group"
        )
    return {
        float(label): np.flatnonzero(usable & (labels == label)).tolist()
        for label in np.unique(labels[usable])
    }


def normalize_channel(channel: np.ndarray, method: str | None) -> np.ndarray:
    """Normalise one channel: ``minmax`` to 0..1, ``zscore`` to mean 0, sd 1, or ``None``.

    Constant channels become all zeros rather than NaN.
    """
    channel = np.asarray(channel, dtype=np.float32)
    if method is None:
        return channel
    if method == "minmax":
        low, high = np.nanmin(channel), np.nanmax(channel)
        span = high - low
        return (channel - low) / span if span > 0 else np.zeros_like(channel)
    if method == "zscore":
        mean, std = np.nanmean(channel), np.nanstd(channel)
        return (channel - mean) / std if std > 0 else np.zeros_like(channel)
    raise ValueError(f"unknown normalisation {method!r}; expected one of {NORMALIZATIONS}")


def aggregation_function(name: str) -> Callable[..., np.ndarray]:
    """The numpy reduction named ``name`` (mean, median, sum, max, min, ...)."""
    function = getattr(np, name, None)
    if function is None or not callable(function):
        raise SteinbockLikeError(f"'{name}' is not a numpy function to aggregate channels with")
    return function


def aggregate_groups(
    image: np.ndarray,
    groups: dict[float, list[int]],
    *,
    aggr: str = "mean",
    normalize: str | None = None,
) -> np.ndarray:
    """Aggregate the channels of each group into one channel.

    Parameters
    ----------
    image : ndarray, shape (C, Y, X)
    groups : dict
        Group label -> channel indices, as from :func:`channel_groups`.
    aggr : str
        Name of a numpy reduction applied over the group's channels.
    normalize : {None, "minmax", "zscore"}
        Per-channel normalisation before aggregation.

    Returns
    -------
    ndarray of float32, shape (len(groups), Y, X)
        One channel per group, in ascending label order.
    """
    function = aggregation_function(aggr)
    out = np.empty((len(groups), *image.shape[1:]), dtype=np.float32)
    for i, label in enumerate(sorted(groups)):
        if normalize is None:  # index the channels directly: one copy, not two
            members = np.asarray(image[groups[label]], dtype=np.float32)
        else:
            members = np.stack([normalize_channel(image[c], normalize) for c in groups[label]])
        out[i] = function(members, axis=0)
    return out


# Reductions that can be computed one channel at a time, giving the same float32 values
# as numpy's reduction over a stack (which also adds the stacked channels in order).
STREAMING_AGGREGATIONS = {"mean": np.add, "sum": np.add, "max": np.maximum, "min": np.minimum}


def aggregate_groups_streaming(
    channels: Iterable[tuple[int, np.ndarray]],
    groups: dict[float, list[int]],
    *,
    aggr: str = "mean",
) -> np.ndarray:
    """:func:`aggregate_groups` (without normalisation) over channels that arrive one by one.

    Memory is one accumulator per group instead of the whole image, so huge
    multichannel images can be aggregated channel by channel from disk.

    Parameters
    ----------
    channels : iterable of (int, ndarray)
        ``(channel index, YX array)`` in ascending index order, covering every grouped
        channel (others are ignored).
    groups : dict
        Group label -> channel indices, as from :func:`channel_groups`.
    aggr : {"mean", "sum", "max", "min"}

    Returns
    -------
    ndarray of float32, shape (len(groups), Y, X)
    """
    if aggr not in STREAMING_AGGREGATIONS:
        raise ValueError(f"{aggr!r} cannot be computed channel by channel")
    combine = STREAMING_AGGREGATIONS[aggr]
    labels = sorted(groups)
    group_of = {c: i for i, label in enumerate(labels) for c in groups[label]}
    accumulators: list[np.ndarray | None] = [None] * len(labels)
    for index, channel in channels:
        if index not in group_of:
            continue
        slot = group_of[index]
        channel = np.asarray(channel, dtype=np.float32)
        if accumulators[slot] is None:
            accumulators[slot] = channel.copy()
        else:
            combine(accumulators[slot], channel, out=accumulators[slot])
    if any(accumulator is None for accumulator in accumulators):
        raise ValueError("not every grouped channel was given")
    out = np.stack(accumulators)
    if aggr == "mean":
        for i, label in enumerate(labels):
            out[i] /= np.float32(len(groups[label]))
    return out
