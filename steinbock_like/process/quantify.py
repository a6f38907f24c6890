"""``quantify``: single-cell tables from in-memory masks with the measure step's functions.

The first mask of an entry is the main mask; the others are compartments sharing its
IDs (columns suffixed ``_NAME``), as ``measure intensities/regionprops --compartment``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

TABLES = ("intensities", "regionprops", "neighbors")


def as_mask(labels: np.ndarray) -> np.ndarray:
    """Labels in the dtype they would have once written and read back (uint16/uint32)."""
    from steinbock_like.io.masks import mask_dtype

    labels = np.asarray(labels)
    return labels.astype(mask_dtype(labels), copy=False)


def intensities_table(
    image: np.ndarray, names: list[str], masks: list[tuple[str, np.ndarray]], aggr: str = "mean"
) -> pd.DataFrame:
    """Mean (or ``aggr``) of every channel per object; compartments add suffixed columns."""
    from steinbock_like.measure.intensities import (
        IntensityAccumulator,
        compact_labels,
        intensity_table,
        object_ids,
    )

    main = as_mask(masks[0][1])
    ids = object_ids(main)
    tables = []
    for suffix, mask in masks:
        _, index = compact_labels(as_mask(mask), ids)
        flat = index.astype(np.intp).ravel()
        counts = np.bincount(flat, minlength=len(ids) + 1)
        columns = {}
        for channel, name in zip(image, names, strict=True):
            accumulator = IntensityAccumulator(len(ids), aggr)
            accumulator.add(flat, channel, counts=counts)
            columns[name] = accumulator.result()
        tables.append(intensity_table(ids, columns, suffix=suffix))
    return pd.concat(tables, axis=1)


def regionprops_table(
    masks: list[tuple[str, np.ndarray]], properties=None, image: np.ndarray | None = None
) -> pd.DataFrame:
    """Region properties of every object (and of its compartments, suffixed)."""
    from steinbock_like.measure.intensities import compact_labels, object_ids
    from steinbock_like.measure.regionprops import (
        DEFAULT_PROPERTIES,
        FAST_PROPERTIES,
        measure_regionprops,
    )

    properties = list(properties or DEFAULT_PROPERTIES)
    slow = any(p not in FAST_PROPERTIES for p in properties)
    ids = object_ids(as_mask(masks[0][1]))
    tables = []
    for suffix, mask in masks:
        mask = as_mask(mask)
        if slow:
            table = measure_regionprops(mask, properties, image=image)
            table = table.reindex(pd.Index(ids, name="Object"))
        else:
            _, index = compact_labels(mask, ids)
            table = measure_regionprops(mask, properties, index=index, ids=ids)
        tables.append(table.add_suffix(suffix) if suffix else table)
    return pd.concat(tables, axis=1)


def neighbors_table(mask: np.ndarray, options: dict) -> pd.DataFrame:
    """Object neighbours as ``measure neighbors`` (expansion, borders or centroids)."""
    from steinbock_like.measure import neighbors as nb

    mask = as_mask(mask)
    kind, dmax, kmax = options["type"], options["dmax"], options["kmax"]
    if kind == "expansion":
        return nb.expansion_neighbors(mask, dmax)
    if kind == "borders":
        return nb.border_neighbors(mask, dmax=dmax, kmax=kmax)
    from steinbock_like.measure.intensities import compact_labels, object_ids
    from steinbock_like.measure.regionprops import moment_sums

    ids = object_ids(mask)
    _, index = compact_labels(mask, ids)
    sums = moment_sums(index, len(ids))
    centroids = np.stack([sums["row"][1:], sums["col"][1:]], axis=1)
    return nb.centroid_neighbors(
        ids,
        centroids,
        metric=options["metric"],
        dmax=dmax,
        kmax=kmax,
        dtype=nb._id_dtype(mask),
    )
