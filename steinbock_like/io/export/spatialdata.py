"""Images, masks and the cell table as one SpatialData zarr store (``export spatialdata``).

Elements: per image ``<name>`` an image (CYX, channel coordinates ``<channel>_<name>``,
read lazily one channel at a time) and, where its mask exists, ``<name>_masks``
a labels element; ``table`` is the AnnData of ``export anndata`` annotating the
labels: ``obs["region"]`` names each cell's labels element and
``obs["Object"]`` is its mask ID (spatialdata's region and instance keys).
spatialdata accepts only names of ``[A-Za-z0-9_.-]`` that differ in more than
case, so the table's names go through its ``sanitize_table`` (e.g. the panel's
``Tube Number`` becomes ``Tube_Number``; ``image`` beside ``Image`` is renamed).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from steinbock_like.io.export.tables import atomic_directory

LABELS_SUFFIX = "_masks"
TABLE = "table"
REGION_KEY = "region"
INSTANCE_KEY = "Object"


def element_name(image: str) -> str:
    """A spatialdata element name for an image name (characters outside [A-Za-z0-9_.-] -> _)."""
    import re

    return re.sub(r"[^A-Za-z0-9_.-]", "_", image)


def annotate_table(adata, regions: Sequence[str], objects: Sequence[int]):
    """Add spatialdata's region/instance columns to a cell table and parse it.

    Parameters
    ----------
    adata : AnnData
        One row per cell (e.g. :func:`~steinbock_like.io.export.anndata.concat_anndata`).
    regions : sequence of str
        Per cell, the labels element it belongs to.
    objects : sequence of int
        Per cell, its mask ID.
    """
    import pandas as pd
    from spatialdata import sanitize_table
    from spatialdata.models import TableModel

    adata = sanitize_table(adata, inplace=False)
    adata.obs[REGION_KEY] = pd.Categorical(list(regions))
    adata.obs[INSTANCE_KEY] = np.asarray(objects, dtype=np.int64)
    return TableModel.parse(
        adata,
        region=sorted(set(regions)),
        region_key=REGION_KEY,
        instance_key=INSTANCE_KEY,
    )


def write_spatialdata(
    path: str | Path,
    images: dict,
    channel_names: dict,
    masks: dict,
    table=None,
) -> None:
    """Write images, labels and a table as a SpatialData zarr store, atomically.

    Parameters
    ----------
    path : path-like
        The store (a directory, ``*.zarr``).
    images : dict of str -> array (C, Y, X)
        Element name -> image (numpy or dask).
    channel_names : dict of str -> list of str
        Element name -> channel names.
    masks : dict of str -> array (Y, X)
        Labels element name -> mask.
    table : AnnData, optional
        Parsed with :func:`annotate_table` (else sanitized here).
    """
    import spatialdata as sd
    from spatialdata.models import Image2DModel, Labels2DModel

    elements = {
        name: Image2DModel.parse(
            image, dims=("c", "y", "x"), c_coords=[str(c) for c in channel_names[name]]
        )
        for name, image in images.items()
    }
    labels = {name: Labels2DModel.parse(mask, dims=("y", "x")) for name, mask in masks.items()}
    if table is not None and "spatialdata_attrs" not in table.uns:
        from spatialdata import sanitize_table
        from spatialdata.models import TableModel

        table = TableModel.parse(sanitize_table(table, inplace=False))
    tables = {TABLE: table} if table is not None else {}
    data = sd.SpatialData(images=elements, labels=labels, tables=tables)
    with atomic_directory(path) as tmp:
        tmp.rmdir()
        data.write(tmp)
