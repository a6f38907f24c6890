"""Measure tasks: one image's intensities, region properties or neighbours -> one CSV.

Images are read one channel at a time, in bands of rows; masks are read whole
and renumbered in place (1..N), so memory is about one mask plus one band.
Compartment masks (inputs ``compartment:NAME``) share the cell IDs of the main
mask and add columns suffixed ``_NAME``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from steinbock_like.io.blocks import BAND_PIXELS, ChannelBands, band_rows
from steinbock_like.io.images import image_shape, read_image
from steinbock_like.io.masks import read_mask
from steinbock_like.io.panel import panel_for_image
from steinbock_like.io.tables import write_neighbors, write_object_table
from steinbock_like.runner import Job

COMPARTMENT_PREFIX = "compartment:"


def _compartments(job: Job) -> list[tuple[str, object]]:
    return [
        (key[len(COMPARTMENT_PREFIX) :], path)
        for key, path in job.inputs.items()
        if key.startswith(COMPARTMENT_PREFIX)
    ]


def _read_indexed_mask(path, shape, ids=None, *, rows):
    """Read a mask and renumber it in place: (ids, compact index)."""
    from steinbock_like.measure.intensities import compact_labels, object_ids

    mask = read_mask(path, shape=shape)
    if ids is None:
        ids = object_ids(mask, rows=rows)
    return compact_labels(mask, ids, out=mask)


@dataclass
class IntensitiesTask:
    """Inputs ``img``, ``mask`` (+ ``compartment:NAME``); output ``table``."""

    panel: pd.DataFrame
    aggr: str = "mean"

    def __call__(self, job: Job) -> dict:
        from steinbock_like.measure.intensities import IntensityAccumulator, intensity_table

        img = job.inputs["img"]
        num_channels, height, width = image_shape(img)
        rows = panel_for_image(self.panel, num_channels, img)
        keep = rows["keep"].to_numpy(dtype=bool)
        channels = np.flatnonzero(keep).tolist()
        names = rows.loc[keep, "name"].tolist()
        band = band_rows(width)
        ids, index = _read_indexed_mask(job.inputs["mask"], (height, width), rows=band)
        indexes = [("", index)]
        for name, path in _compartments(job):
            indexes.append(
                (f"_{name}", _read_indexed_mask(path, (height, width), ids, rows=band)[1])
            )
        columns: list[dict[str, np.ndarray]] = [{} for _ in indexes]
        whole = None
        if height <= band:  # one band: flatten the indices and count pixels once
            whole = [(idx.astype(np.intp).ravel(), None) for _, idx in indexes]
            whole = [(idx, np.bincount(idx, minlength=len(ids) + 1)) for idx, _ in whole]
        with ChannelBands(img) as reader:
            for channel, name in zip(channels, names, strict=True):
                accumulators = [IntensityAccumulator(len(ids), self.aggr) for _ in indexes]
                for start, values in reader.bands(channel, min_rows=band):
                    stop = start + len(values)
                    for i, (accumulator, (_, idx)) in enumerate(
                        zip(accumulators, indexes, strict=True)
                    ):
                        if whole is not None:
                            accumulator.add(whole[i][0], values, counts=whole[i][1])
                        else:
                            accumulator.add(idx[start:stop], values)
                for column, accumulator in zip(columns, accumulators, strict=True):
                    column[name] = accumulator.result()
        tables = [
            intensity_table(ids, column, suffix=suffix)
            for column, (suffix, _) in zip(columns, indexes, strict=True)
        ]
        write_object_table(job.outputs["table"], pd.concat(tables, axis=1))
        return {"objects": int(len(ids)), "channels": len(names)}


@dataclass
class RegionpropsTask:
    """Inputs ``img``, ``mask`` (+ ``compartment:NAME``); output ``table``."""

    properties: tuple[str, ...] = ()

    def __call__(self, job: Job) -> dict:
        from steinbock_like.measure.intensities import compact_labels, object_ids
        from steinbock_like.measure.regionprops import (
            DEFAULT_PROPERTIES,
            FAST_PROPERTIES,
            measure_regionprops,
        )

        img = job.inputs["img"]
        _, height, width = image_shape(img)
        properties = list(self.properties or DEFAULT_PROPERTIES)
        image = None
        if any(p not in FAST_PROPERTIES for p in properties):
            image = read_image(img)
        band = max(1, (1 << 22) // max(1, width))
        masks = [("", job.inputs["mask"]), *((f"_{n}", p) for n, p in _compartments(job))]
        slow = any(p not in FAST_PROPERTIES for p in properties)
        tables = []
        ids = None
        for suffix, path in masks:
            mask = read_mask(path, shape=(height, width))
            if ids is None:
                ids = object_ids(mask, rows=band)
            if slow:  # scikit-image needs the original IDs: measure, then align to the cells
                table = measure_regionprops(mask, properties, image=image, rows=band)
                table = table.reindex(pd.Index(ids, name="Object"))
            else:
                _, index = compact_labels(mask, ids, out=mask)
                table = measure_regionprops(mask, properties, index=index, ids=ids, rows=band)
            del mask
            tables.append(table.add_suffix(suffix) if suffix else table)
        write_object_table(job.outputs["table"], pd.concat(tables, axis=1))
        return {"objects": int(len(ids))}


@dataclass
class NeighborsTask:
    """Input ``mask``; output ``table`` (``Object``, ``Neighbor``, ``Distance``)."""

    neighborhood: str = "expansion"
    metric: str = "euclidean"
    dmax: float | None = None
    kmax: int | None = None

    def __call__(self, job: Job) -> dict:
        from steinbock_like.measure import neighbors as nb

        mask = read_mask(job.inputs["mask"])
        dtype = nb._id_dtype(mask)
        if self.neighborhood == "expansion":
            rows = max(1, (BAND_PIXELS // 4) // max(1, mask.shape[1]))
            table = nb.expansion_neighbors(mask, self.dmax, rows=rows)
        elif self.neighborhood == "borders":
            table = nb.border_neighbors(mask, dmax=self.dmax, kmax=self.kmax)
        else:
            from steinbock_like.measure.intensities import compact_labels, object_ids
            from steinbock_like.measure.regionprops import moment_sums

            rows = max(1, (1 << 22) // max(1, mask.shape[1]))
            ids = object_ids(mask, rows=rows)
            _, index = compact_labels(mask, ids, out=mask)
            sums = moment_sums(index, len(ids), rows=rows)
            del mask, index
            centroids = np.stack([sums["row"][1:], sums["col"][1:]], axis=1)
            table = nb.centroid_neighbors(
                ids, centroids, metric=self.metric, dmax=self.dmax, kmax=self.kmax, dtype=dtype
            )
        write_neighbors(job.outputs["table"], table)
        return {"pairs": int(len(table))}
