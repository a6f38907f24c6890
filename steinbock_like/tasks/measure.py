"""Measure tasks: one image's intensities, region properties or neighbours -> one CSV.

Images are read one channel at a time, in bands of rows; masks are read whole
and renumbered in place (1..N), so memory is about one mask plus one band.
Compartment masks (inputs ``compartment:NAME``) share the cell IDs of the main
mask and add columns suffixed ``_NAME``. On a dask cluster a large image's
intensities are measured in channel groups spread over the workers
(:func:`steinbock_like.tiles.distributed_map`), each reading the masks itself.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from steinbock_like.io.blocks import BAND_PIXELS, ChannelBands, band_rows
from steinbock_like.io.images import image_shape, read_image
from steinbock_like.io.masks import read_mask
from steinbock_like.io.tables import write_neighbors, write_object_columns, write_object_table
from steinbock_like.runner import Job, threads_per_worker

COMPARTMENT_PREFIX = "compartment:"
#: Threads of one intensities job at most (memory: a band each; the GIL limits gains)
MAX_THREADS = 8
#: Images over this many pixels measured on a dask cluster are split into channel
#: groups spread over its workers
SPREAD_PIXELS = 1 << 22


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
    """Inputs ``img``, ``mask`` (+ ``compartment:NAME``); output ``table``.

    ``threads``: channels are reduced in this many threads (default: one per core;
    the CLI passes its share, :func:`steinbock_like.runner.threads_per_worker`).
    """

    panel: object  # PanelRows, or a panel DataFrame
    aggr: str = "mean"
    threads: int | None = None

    def __post_init__(self) -> None:
        from steinbock_like.io.panel_rows import PanelRows

        if not isinstance(self.panel, PanelRows):
            self.panel = PanelRows.from_table(self.panel)

    def __call__(self, job: Job) -> dict:
        img = job.inputs["img"]
        num_channels, height, width = image_shape(img)
        rows = self.panel.for_image(num_channels, img)
        channels = [i for i, k in enumerate(rows.keep) if k]
        names = [rows.name[i] for i in channels]
        info = {}
        groups = 1
        if height * width > SPREAD_PIXELS:  # (tiles imports scipy.ndimage: only then)
            from steinbock_like.tiles import cluster_workers

            groups = min(cluster_workers(), len(channels))
        if groups > 1:
            from steinbock_like.tiles import distributed_map

            # a large image on a dask cluster: channel groups over the workers, each
            # reading the masks once (per-object sums need no spatial tiles)
            workers_seen: set[str] = set()
            parts = list(
                distributed_map(
                    functools.partial(self._measure, job),
                    [channels[i::groups] for i in range(groups)],
                    workers_seen=workers_seen,
                )
            )
            ids, suffixes = parts[0][:2]
            values = {channel: v for part in parts for channel, v in part[2].items()}
            info = {"channel_groups": groups, "channel_workers": len(workers_seen)}
        else:
            ids, suffixes, values = self._measure(job, channels)
        columns = {}
        for m, suffix in enumerate(suffixes):
            for channel, name in zip(channels, names, strict=True):
                columns[f"{name}{suffix}"] = values[channel][m]
        threads = min(threads_per_worker(1, self.threads), MAX_THREADS)
        write_object_columns(job.outputs["table"], ids, columns, threads=threads)
        return {"objects": int(len(ids)), "channels": len(names), **info}

    def _measure(self, job: Job, channels: list[int]) -> tuple:
        """``(ids, suffixes, {channel: [values per mask]})`` of some channels."""
        img = job.inputs["img"]
        _, height, width = image_shape(img)
        # bands of about 4 Mi pixels: each thread holds one, and its float64 copy
        band = band_rows(width, BAND_PIXELS // 4)
        ids, index = _read_indexed_mask(job.inputs["mask"], (height, width), rows=band)
        indexes = [("", index)]
        for name, path in _compartments(job):
            indexes.append(
                (f"_{name}", _read_indexed_mask(path, (height, width), ids, rows=band)[1])
            )
        suffixes = [suffix for suffix, _ in indexes]
        indexes = [idx for _, idx in indexes]
        if self.aggr in ("sum", "mean"):
            values = self._sums(img, channels, indexes, len(ids), band)
        else:
            values = self._accumulated(img, channels, indexes, len(ids), band)
        return ids, suffixes, values

    def _sums(self, img, channels, indexes, num_objects, band) -> dict:
        """Per channel, per mask: the objects' sums or means (run sums, in threads)."""
        import concurrent.futures

        from steinbock_like.io.mapped import map_channels
        from steinbock_like.measure.intensities import RunSums

        mapped = map_channels(img)
        # a whole-slide image (not mapped, over 16 Mi pixels): memory first, as the
        # disk sets the pace: one reader, and only the run starts kept
        pixels = indexes[0].size
        large = mapped is None and pixels > 4 * BAND_PIXELS
        runs = [RunSums(num_objects, keep_labels=not large) for _ in indexes]

        def reduce(group: list[int]) -> dict:
            out = {}
            if mapped is not None:  # channels used in place (memory maps), 4 at a time
                for first in range(0, len(group), 4):
                    some = group[first : first + 4]
                    values = [mapped.channel(channel, check=False) for channel in some]
                    sums = [
                        run.sums_many(0, idx, values)
                        for run, idx in zip(runs, indexes, strict=True)
                    ]
                    for i, channel in enumerate(some):
                        out[channel] = [per_mask[i] for per_mask in sums]
                        # every pixel is in a run (background included): a NaN or an
                        # infinity anywhere shows in the sums (finite float32 values
                        # cannot overflow a float64 sum)
                        if not np.isfinite(out[channel][0]).all():
                            mapped.check(values[i])
                    del values
                return out
            with ChannelBands(img) as reader:
                for channel in group:
                    totals = [np.zeros(num_objects + 1) for _ in indexes]
                    for start, values in reader.bands(channel, min_rows=band):
                        stop = start + len(values)
                        for total, run, idx in zip(totals, runs, indexes, strict=True):
                            total += run.sums(start, idx[start:stop], values)
                    out[channel] = totals
            return out

        # at most MAX_THREADS: each holds a band and its float64 copy (~48 MiB)
        threads = max(1, min(threads_per_worker(1, self.threads), len(channels), MAX_THREADS))
        if large:
            threads = 1
        if threads == 1:
            sums = reduce(channels)
        else:
            # find the runs once, before the threads: bands as the reader makes them
            if mapped is not None:
                for run, idx in zip(runs, indexes, strict=True):
                    run.runs(0, idx)
            elif channels:
                with ChannelBands(img) as reader:
                    for start, values in reader.bands(channels[0], min_rows=band):
                        for run, idx in zip(runs, indexes, strict=True):
                            run.runs(start, idx[start : start + len(values)])
            groups = [channels[i::threads] for i in range(threads)]
            with concurrent.futures.ThreadPoolExecutor(threads) as pool:
                sums = {}
                for part in pool.map(reduce, groups):
                    sums.update(part)
        result = {}
        for channel in list(sums):
            totals = sums.pop(channel)
            result[channel] = []
            for total, run in zip(totals, runs, strict=True):
                if self.aggr == "sum":
                    result[channel].append(total[1:])
                else:
                    with np.errstate(invalid="ignore", divide="ignore"):
                        result[channel].append(total[1:] / run.counts[1:])
        return result

    def _accumulated(self, img, channels, indexes, num_objects, band) -> dict:
        """Per channel, per mask: min, max, median, std or var (per-pixel accumulators)."""
        from steinbock_like.measure.intensities import IntensityAccumulator

        height = len(indexes[0])
        whole = None
        if height <= band:  # one band: flatten the indices and count pixels once
            whole = [idx.astype(np.intp).ravel() for idx in indexes]
            whole = [(idx, np.bincount(idx, minlength=num_objects + 1)) for idx in whole]
        result = {}
        with ChannelBands(img) as reader:
            for channel in channels:
                accumulators = [IntensityAccumulator(num_objects, self.aggr) for _ in indexes]
                for start, values in reader.bands(channel, min_rows=band):
                    stop = start + len(values)
                    for i, (accumulator, idx) in enumerate(zip(accumulators, indexes, strict=True)):
                        if whole is not None:
                            accumulator.add(whole[i][0], values, counts=whole[i][1])
                        else:
                            accumulator.add(idx[start:stop], values)
                result[channel] = [accumulator.result() for accumulator in accumulators]
        return result


@dataclass
class RegionpropsTask:
    """Inputs ``img``, ``mask`` (+ ``compartment:NAME``); output ``table``."""

    properties: tuple[str, ...] = ()

    def __call__(self, job: Job) -> dict:
        import pandas as pd

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
