"""Object region properties (steinbock's ``measure regionprops``).

steinbock's defaults (``area``, ``centroid``, ``axis_major_length``,
``axis_minor_length``, ``eccentricity``) are computed for all objects at once
from per-object pixel sums (band by band, two passes: centroid, then central
moments); any other scikit-image property is computed by
:func:`skimage.measure.regionprops_table`. Column names are
scikit-image's (``centroid-0``, ``centroid-1``, ...), the index is ``Object``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

DEFAULT_PROPERTIES = (
    "area",
    "centroid",
    "axis_major_length",
    "axis_minor_length",
    "eccentricity",
)
# Properties computed here from moments (scikit-image's definitions, 2-D).
FAST_PROPERTIES = frozenset(
    {
        "label",
        "area",
        "centroid",
        "axis_major_length",
        "axis_minor_length",
        "eccentricity",
    }
)


def moment_sums(
    index: np.ndarray, num_objects: int, *, rows: int | None = None
) -> dict[str, np.ndarray]:
    """Per-object pixel count, centroid and central second moments.

    Parameters
    ----------
    index : ndarray of int, shape (Y, X)
        Compact object numbering (0 background, 1..N), see
        :func:`steinbock_like.measure.intensities.compact_labels`.
    num_objects : int
    rows : int, optional
        Rows per band (bounds the temporary memory).

    Returns
    -------
    dict of ndarray, each of length N + 1 (entry 0 is the background)
        ``count``, ``row``, ``col`` (centroid), ``mu_rr``, ``mu_cc``, ``mu_rc``
        (central moments: sums of squared/multiplied offsets from the centroid).
    """
    height, width = index.shape
    rows = height if rows is None else max(1, rows)
    size = num_objects + 1
    count = np.zeros(size)
    sum_r = np.zeros(size)
    sum_c = np.zeros(size)
    cols = np.arange(width, dtype=np.float64)
    for start in range(0, height, rows):
        band = index[start : start + rows].astype(np.intp).ravel()
        n = len(band) // width
        count += np.bincount(band, minlength=size)
        row_counts = np.bincount(
            band, weights=np.repeat(np.arange(start, start + n, dtype=float), width), minlength=size
        )
        sum_r += row_counts
        sum_c += np.bincount(band, weights=np.tile(cols, n), minlength=size)
    with np.errstate(invalid="ignore", divide="ignore"):
        centroid_r = sum_r / count
        centroid_c = sum_c / count
    mu_rr = np.zeros(size)
    mu_cc = np.zeros(size)
    mu_rc = np.zeros(size)
    for start in range(0, height, rows):
        band = index[start : start + rows].astype(np.intp).ravel()
        n = len(band) // width
        dr = np.repeat(np.arange(start, start + n, dtype=float), width) - centroid_r[band]
        dc = np.tile(cols, n) - centroid_c[band]
        mu_rr += np.bincount(band, weights=dr * dr, minlength=size)
        mu_cc += np.bincount(band, weights=dc * dc, minlength=size)
        mu_rc += np.bincount(band, weights=dr * dc, minlength=size)
    return {
        "count": count,
        "row": centroid_r,
        "col": centroid_c,
        "mu_rr": mu_rr,
        "mu_cc": mu_cc,
        "mu_rc": mu_rc,
    }


def moment_properties(sums: dict[str, np.ndarray], properties: Sequence[str]) -> dict:
    """scikit-image's moment-based properties from :func:`moment_sums` (objects 1..N).

    Returns
    -------
    dict
        Column name -> values, in scikit-image's naming (``centroid-0``, ...).
    """
    count = sums["count"][1:]
    columns: dict[str, np.ndarray] = {}
    eigvals = None
    if {"axis_major_length", "axis_minor_length", "eccentricity"} & set(properties):
        # scikit-image: T = [[mu_cc, -mu_rc], [-mu_rc, mu_rr]] / mu_00; eigvalsh, clipped at 0
        with np.errstate(invalid="ignore", divide="ignore"):
            tensor = np.empty((len(count), 2, 2))
            tensor[:, 0, 0] = sums["mu_cc"][1:] / count
            tensor[:, 1, 1] = sums["mu_rr"][1:] / count
            tensor[:, 0, 1] = tensor[:, 1, 0] = -sums["mu_rc"][1:] / count
        eigvals = np.clip(np.linalg.eigvalsh(tensor), 0, None)[:, ::-1]
    for name in properties:
        if name == "area":
            columns["area"] = count.astype(np.int64)
        elif name == "centroid":
            columns["centroid-0"] = sums["row"][1:]
            columns["centroid-1"] = sums["col"][1:]
        elif name == "axis_major_length":
            columns[name] = 4 * np.sqrt(eigvals[:, 0])
        elif name == "axis_minor_length":
            columns[name] = 4 * np.sqrt(eigvals[:, 1])
        elif name == "eccentricity":
            l1, l2 = eigvals[:, 0], eigvals[:, 1]
            with np.errstate(invalid="ignore", divide="ignore"):
                columns[name] = np.where(l1 == 0, 0.0, np.sqrt(1 - l2 / np.where(l1 == 0, 1, l1)))
        elif name != "label":
            raise ValueError(f"{name!r} is not a moment property")
    empty = count == 0
    if empty.any():  # objects without pixels (e.g. a cell without nucleus): NaN, not 0
        for name, values in columns.items():
            columns[name] = np.where(empty, np.nan, values)
    return columns


def measure_regionprops(
    mask: np.ndarray,
    properties: Sequence[str] = DEFAULT_PROPERTIES,
    *,
    image: np.ndarray | None = None,
    index: np.ndarray | None = None,
    ids: np.ndarray | None = None,
    rows: int | None = None,
) -> pd.DataFrame:
    """Measure region properties of every object.

    Parameters
    ----------
    mask : ndarray of int, shape (Y, X)
    properties : sequence of str
        scikit-image region property names.
    image : ndarray, shape (C, Y, X), optional
        Intensity image, needed only for intensity properties (computed by
        scikit-image, like any property outside :data:`FAST_PROPERTIES`).
    index, ids : ndarray, optional
        The mask's compact numbering and IDs if already computed.
    rows : int, optional
        Rows per band for the moment sums.

    Returns
    -------
    DataFrame
        Index ``Object``; columns in the order of ``properties``, named as
        :func:`skimage.measure.regionprops_table` names them.
    """
    from steinbock_like.measure.intensities import compact_labels

    properties = [p for p in properties if p != "label"]
    if index is None or ids is None:
        ids, index = compact_labels(np.asarray(mask))
    fast = [p for p in properties if p in FAST_PROPERTIES]
    slow = [p for p in properties if p not in FAST_PROPERTIES]
    columns: dict[str, np.ndarray] = {}
    if fast:
        columns.update(moment_properties(moment_sums(index, len(ids), rows=rows), fast))
    slow_columns: dict[str, np.ndarray] = {}
    if slow:
        from skimage.measure import regionprops_table

        table = regionprops_table(
            np.asarray(mask),
            intensity_image=None if image is None else np.moveaxis(np.asarray(image), 0, -1),
            properties=["label", *slow],
        )
        labels = np.asarray(table.pop("label"))
        position = np.searchsorted(ids, labels)
        for name, values in table.items():
            values = np.asarray(values)
            full = np.full(len(ids), np.nan, dtype=np.result_type(values.dtype, np.float64))
            full[position] = values
            if len(labels) == len(ids) and values.dtype.kind in "iub":
                full = values
            slow_columns[name] = full
    ordered: dict[str, np.ndarray] = {}
    for prop in properties:
        source = columns if prop in FAST_PROPERTIES else slow_columns
        for name, values in source.items():
            if name == prop or name.startswith(f"{prop}-"):
                ordered[name] = values
    return pd.DataFrame(ordered, index=pd.Index(ids, name="Object"))
