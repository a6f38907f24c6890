"""Object data as AnnData (steinbock's ``export anndata``): ``.h5ad``, ``.zarr`` or ``.loom``.

Layout, as steinbock writes it: ``X`` the intensities (objects x channels,
float32); ``obs`` the other object tables' columns, then ``image`` and the
image's row of ``images.csv`` (columns prefixed ``image_``), indexed
``Object <id>``; ``var`` the panel's kept rows, indexed by channel name. Each
image's neighbours are a graph in ``obsp``: ``adj`` (uint8 adjacency) and
``dist`` (float32 distances, where the table has any). Concatenated files
have an ``Image`` column first in ``obs``, observation names
``Object <id> in <image>.tiff`` and, beyond steinbock (whose concatenation
drops them), the per-image graphs as one block-diagonal ``obsp``.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from steinbock_like.errors import InputError, SteinbockLikeError
from steinbock_like.io.atomic import atomic_path
from steinbock_like.io.export.tables import atomic_directory
from steinbock_like.io.panel import read_panel

FORMATS = ("h5ad", "loom", "zarr")
IMAGE_INFO_COLUMNS = ("image", "width_px", "height_px", "num_channels")


def read_image_info(path: str | Path) -> pd.DataFrame:
    """Read ``images.csv`` with steinbock's column types (sizes as nullable unsigned ints).

    Raises
    ------
    InputError
        Missing file or required column, empty required values, repeated images.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "image information file not found")
    try:
        info = pd.read_csv(
            path,
            dtype={
                "image": "string",
                "width_px": "UInt16",
                "height_px": "UInt16",
                "num_channels": "UInt8",
            },
        )
    except Exception as error:
        raise InputError(path, f"not a readable image table ({error})") from error
    for column in IMAGE_INFO_COLUMNS:
        if column not in info.columns:
            raise InputError(path, f"no '{column}' column")
        if info[column].isna().any():
            raise InputError(path, f"empty values in column '{column}'")
    if info["image"].duplicated().any():
        raise InputError(
            path, f"image '{info['image'][info['image'].duplicated()].iloc[0]}' repeats"
        )
    return info


def read_panel_var(path: str | Path) -> pd.DataFrame:
    """The panel's kept channels as AnnData ``var``, with steinbock's column types.

    The panel is validated by :func:`steinbock_like.io.panel.read_panel`; the
    columns keep pandas' own type inference (``keep`` as nullable boolean,
    numeric columns as numbers, text as ``str``), indexed by ``name``.
    """
    panel = read_panel(path)
    raw = pd.read_csv(
        path,
        dtype={"channel": "string", "name": "string", "keep": "boolean"},
        true_values=["1"],
        false_values=["0"],
        skipinitialspace=True,
    )
    raw.columns = [str(c).strip() for c in raw.columns]
    if "name" not in raw.columns:
        raw["name"] = raw["channel"]
    raw = raw.loc[panel["keep"].to_numpy()]
    for column in raw.columns:
        if raw[column].dtype == "string":
            raw[column] = raw[column].astype(str)
    return raw.set_index(raw["name"].to_numpy())


def image_anndata(
    intensities: pd.DataFrame,
    *,
    obs_tables: pd.DataFrame | None = None,
    neighbors: pd.DataFrame | None = None,
    var: pd.DataFrame | None = None,
    image_info: pd.DataFrame | None = None,
    image: str | None = None,
):
    """One image's AnnData (see the module docstring for the layout).

    Parameters
    ----------
    intensities : DataFrame
        Objects x channels, indexed by object ID.
    obs_tables : DataFrame, optional
        Other object data (merged), indexed by object ID; must cover every object.
    neighbors : DataFrame, optional
        ``Object``, ``Neighbor``, ``Distance`` rows.
    var : DataFrame, optional
        Panel rows indexed by channel name (see :func:`read_panel_var`).
    image_info : DataFrame, optional
        ``images.csv`` (see :func:`read_image_info`); the row of ``image`` goes to ``obs``.
    image : str, optional
        The image file name (``<name>.tiff``), needed with ``image_info``.

    Raises
    ------
    KeyError
        If ``obs_tables``, ``var`` or ``image_info`` lack an object, channel or the image.
    """
    import anndata
    from scipy.sparse import csr_matrix

    index = intensities.index
    obs = pd.DataFrame(index=index)
    if obs_tables is not None:
        missing = index.difference(obs_tables.index)
        if len(missing):
            raise KeyError(f"object {missing[0]} has no object data")
        obs = obs_tables.loc[index, :].copy()
    if image_info is not None:
        rows = np.flatnonzero(image_info["image"].astype(str).to_numpy() == image)
        if len(rows) == 0:
            raise KeyError(f"image {image} is not in the image information")
        image_obs = image_info.iloc[np.repeat(rows[0], len(index))].copy()
        image_obs.index = index
        image_obs.columns = [c if c == "image" else f"image_{c}" for c in image_obs.columns]
        obs = pd.concat([obs, image_obs], axis=1)
    obs.index = [f"Object {object_id}" for object_id in index]
    for column in obs.columns:
        if obs[column].dtype == "string":
            obs[column] = obs[column].astype(str)
    if var is not None:
        var = channel_var(var, [str(c) for c in intensities.columns])
    else:
        var = pd.DataFrame(index=[str(c) for c in intensities.columns])
    var.index = [str(c) for c in intensities.columns]
    adata = anndata.AnnData(X=intensities.to_numpy(dtype=np.float32), obs=obs, var=var)
    if neighbors is not None:
        position = pd.Series(np.arange(len(index)), index=index)
        unknown = ~neighbors["Object"].isin(index) | ~neighbors["Neighbor"].isin(index)
        if unknown.any():
            raise KeyError(f"neighbour pair of unknown object {neighbors[unknown].iloc[0, 0]}")
        rows = position.loc[neighbors["Object"]].to_numpy()
        cols = position.loc[neighbors["Neighbor"]].to_numpy()
        shape = (len(index), len(index))
        adata.obsp["adj"] = csr_matrix(
            (np.ones(len(rows), dtype=np.uint8), (rows, cols)), shape=shape, dtype=np.uint8
        )
        distances = neighbors["Distance"].to_numpy(dtype=np.float32)
        if not np.isnan(distances).all():
            adata.obsp["dist"] = csr_matrix(
                (distances, (rows, cols)), shape=shape, dtype=np.float32
            )
    return adata


def channel_var(var: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """Panel rows of the intensity columns, compartment columns included.

    A column ``<channel>_<compartment>`` (``measure intensities --compartment``) takes its
    channel's panel row; a ``compartment`` column then says which (empty for the whole cell).

    Raises
    ------
    KeyError
        If a column names no kept panel channel.
    """
    rows, compartments = [], []
    for column in columns:
        channel, compartment = column, ""
        if column not in var.index:
            # the longest channel name that the column extends by "_<compartment>"
            prefixes = [str(c) for c in var.index if column.startswith(f"{c}_")]
            if not prefixes:
                raise KeyError(f"channel '{column}' is not a kept panel channel")
            channel = max(prefixes, key=len)
            compartment = column[len(channel) + 1 :]
        rows.append(channel)
        compartments.append(compartment)
    selected = var.loc[rows, :].copy()
    if any(compartments):
        selected["compartment"] = compartments
    selected.index = columns
    return selected


def concat_anndata(adatas: Mapping[str, object]):
    """Concatenate per-image AnnData objects as steinbock does (``Image`` column first).

    Names become ``Object <id> in <image>``; ``var`` is taken from the first
    image; the per-image graphs in ``obsp`` are kept as one block-diagonal matrix.
    """
    import anndata

    adata = anndata.concat(
        dict(adatas), merge="first", label="Image", index_unique=" in ", pairwise=True
    )
    columns = list(adata.obs.columns)
    columns.insert(0, columns.pop(columns.index("Image")))
    adata.obs = adata.obs.loc[:, columns]
    return adata


def anndata_suffix(anndata_format: str) -> str:
    return {"h5ad": ".h5ad", "loom": ".loom", "zarr": ".zarr"}[anndata_format]


def write_anndata(path: str | Path, adata, anndata_format: str = "h5ad") -> None:
    """Write AnnData atomically in ``anndata_format`` (h5ad, zarr directory store, loom)."""
    if anndata_format == "zarr":
        with atomic_directory(path) as tmp:
            tmp.rmdir()
            adata.write_zarr(tmp)
        return
    with atomic_path(path) as tmp:
        if anndata_format == "h5ad":
            adata.write_h5ad(tmp)
        elif anndata_format == "loom":
            try:
                adata.write_loom(tmp)
            except ImportError as error:
                raise SteinbockLikeError(
                    f"--format loom needs the 'loompy' package ({error}); pip install loompy"
                ) from error
        else:
            raise ValueError(f"unknown AnnData format {anndata_format!r}")


def read_image_anndata(
    intensities_path: Path,
    data_paths=(),
    neighbors_path: Path | None = None,
    *,
    var: pd.DataFrame | None = None,
    image_info: pd.DataFrame | None = None,
):
    """Read one image's tables and build its AnnData (see :func:`image_anndata`).

    Raises
    ------
    InputError
        Naming the intensities file when a table, the panel or ``images.csv``
        lacks one of its objects, channels or the image itself.
    """
    from steinbock_like.io.export.tables import image_file_name, read_merged, read_neighbor_table
    from steinbock_like.io.tables import read_table

    intensities = read_table(intensities_path)
    obs_tables = read_merged(list(data_paths)) if data_paths else None
    neighbors = read_neighbor_table(neighbors_path) if neighbors_path is not None else None
    try:
        return image_anndata(
            intensities,
            obs_tables=obs_tables,
            neighbors=neighbors,
            var=var,
            image_info=image_info,
            image=image_file_name(intensities_path),
        )
    except KeyError as error:
        raise InputError(intensities_path, str(error.args[0])) from error
