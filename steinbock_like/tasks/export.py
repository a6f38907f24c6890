"""Per-image export tasks: OME-TIFF, object graphs, per-image tables (``--no-concat``)."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from steinbock_like.runner import Job


@dataclass
class OmeTiffTask:
    """Input ``image``; output ``ome``. Channel names come from the panel (``panel`` table)."""

    panel: pd.DataFrame

    def __call__(self, job: Job) -> dict:
        from steinbock_like.io.export.ome_tiff import write_ome_tiff
        from steinbock_like.io.images import iter_image_channels

        path = job.inputs["image"]
        shape, names = _shape_and_channel_names(self.panel, path)
        write_ome_tiff(
            job.outputs["ome"],
            (channel for _, channel in iter_image_channels(path)),
            shape,
            names,
        )
        return {"channels": shape[0], "height": shape[1], "width": shape[2]}


@dataclass
class GraphTask:
    """Inputs ``neighbors`` and ``data0``, ``data1``, ... (object tables); output ``graph``."""

    graph_format: str = "graphml"

    def __call__(self, job: Job) -> dict:
        from steinbock_like.io.export.graphml import neighbors_graph, write_graph
        from steinbock_like.io.export.tables import read_merged, read_neighbor_table

        neighbors = read_neighbor_table(job.inputs["neighbors"])
        data_paths = data_inputs(job)
        node_data = read_merged(data_paths) if data_paths else None
        graph = neighbors_graph(neighbors, node_data)
        write_graph(job.outputs["graph"], graph, self.graph_format)
        return {"nodes": graph.number_of_nodes(), "edges": graph.number_of_edges()}


@dataclass
class TableTask:
    """Inputs ``data0``, ``data1``, ... (object tables of one image); output ``table``.

    ``table_format``: ``csv`` or ``fcs`` (the merged table), or ``anndata``
    (then ``data0`` holds the intensities, an optional input ``neighbors`` the
    graph, and ``var``/``image_info`` describe channels and images).
    """

    table_format: str
    anndata_format: str = "h5ad"
    var: pd.DataFrame | None = None
    image_info: pd.DataFrame | None = None

    def __call__(self, job: Job) -> dict:
        from steinbock_like.io.export.tables import read_merged

        data_paths = data_inputs(job)
        output = job.outputs["table"]
        if self.table_format == "csv":
            from steinbock_like.io.export.csv import write_object_csv

            table = read_merged(data_paths)
            write_object_csv(output, table)
        elif self.table_format == "fcs":
            from steinbock_like.io.export.fcs import write_fcs

            table = read_merged(data_paths)
            write_fcs(output, table)
        else:
            from steinbock_like.io.export.anndata import read_image_anndata, write_anndata

            table = read_image_anndata(
                data_paths[0],
                data_paths[1:],
                job.inputs.get("neighbors"),
                var=self.var,
                image_info=self.image_info,
            )
            write_anndata(output, table, self.anndata_format)
        return {"objects": int(table.shape[0])}


def data_inputs(job: Job) -> list:
    """The object tables of a job (inputs ``data0``, ``data1``, ...), in order."""
    keys = [k for k in job.inputs if k.startswith("data") and k[4:].isdigit()]
    return [job.inputs[k] for k in sorted(keys, key=lambda k: int(k[4:]))]


@dataclass
class OmeZarrTask:
    """Input ``image`` (and optional ``mask``); output ``zarr`` (an OME-Zarr store)."""

    panel: pd.DataFrame

    def __call__(self, job: Job) -> dict:
        from steinbock_like.io.export.ome_zarr import lazy_image, lazy_mask, write_ome_zarr

        path = job.inputs["image"]
        shape, names = _shape_and_channel_names(self.panel, path)
        mask = None
        if "mask" in job.inputs:
            mask = lazy_mask(job.inputs["mask"], shape=shape[1:])
        write_ome_zarr(job.outputs["zarr"], lazy_image(path), names, mask)
        return {"channels": shape[0], "height": shape[1], "width": shape[2]}


@dataclass
class HistocatTask:
    """Input ``image`` (and optional ``mask``); outputs ``channel0``, ``channel1``, ...
    (one TIFF per channel, in image order) and, with a mask, ``mask``."""

    def __call__(self, job: Job) -> dict:
        import numpy as np

        from steinbock_like.io.export.histocat import write_histocat_tiff
        from steinbock_like.io.images import image_shape, iter_image_channels
        from steinbock_like.io.masks import read_mask

        path = job.inputs["image"]
        shape = image_shape(path)
        for index, channel in iter_image_channels(path):
            write_histocat_tiff(job.outputs[f"channel{index}"], channel)
        if "mask" in job.inputs:
            mask = read_mask(job.inputs["mask"], shape=shape[1:])
            if mask.max(initial=0) > np.iinfo(np.uint16).max:
                raise ValueError("histoCAT masks are uint16: an object ID exceeds 65535")
            write_histocat_tiff(job.outputs["mask"], mask.astype(np.uint16))
        return {"channels": shape[0]}


def _shape_and_channel_names(panel: pd.DataFrame, path) -> tuple[tuple[int, ...], list[str]]:
    """The image's shape and its OME channel names (``<channel>_<name>``) from the panel."""
    from steinbock_like.io.export.ome_tiff import ome_channel_names
    from steinbock_like.io.images import image_shape
    from steinbock_like.io.panel import panel_for_image

    shape = image_shape(path)
    rows = panel_for_image(panel, shape[0], path)
    return shape, ome_channel_names(rows["channel"].tolist(), rows["name"].tolist())
