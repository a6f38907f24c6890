"""Object neighbourhoods (steinbock's ``measure neighbors``).

Three definitions, with steinbock's neighbour sets and distances:

``centroids``
    Objects whose centroids lie within ``dmax`` (scipy ``pdist`` metric) and/or
    the ``kmax`` nearest; found with a KD-tree instead of a full distance matrix.
``borders``
    The smallest Euclidean distance between pixel centres of two objects,
    within ``dmax`` and/or the ``kmax`` nearest; found by comparing the mask with
    itself shifted by every offset within ``dmax``.
``expansion``
    Objects that touch (4-connectivity) after every background pixel within
    ``dmax`` of an object took the label of its nearest object pixel (scipy's
    Euclidean feature transform, as steinbock); distance NaN. Computed in bands
    of rows with a halo, so a huge mask needs only a band's temporary memory.

Every function returns a table with columns ``Object``, ``Neighbor`` (the
mask's IDs) and ``Distance`` (float32), sorted by ``Object`` then ``Neighbor``
(steinbock's order up to the order of k-nearest neighbours).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import ndimage

NEIGHBORHOOD_TYPES = ("centroids", "borders", "expansion")
# Metrics a KD-tree answers (scipy's Minkowski p): the rest fall back to pdist.
_KDTREE_METRICS = {"euclidean": 2.0, "cityblock": 1.0, "chebyshev": np.inf}


def neighbor_table(objects, neighbors, distances, dtype=np.uint32) -> pd.DataFrame:
    """A steinbock neighbors table (``Object``, ``Neighbor``, float32 ``Distance``)."""
    return pd.DataFrame(
        {
            "Object": np.asarray(objects, dtype=dtype),
            "Neighbor": np.asarray(neighbors, dtype=dtype),
            "Distance": np.asarray(distances, dtype=np.float32),
        }
    )


def _id_dtype(mask: np.ndarray) -> np.dtype:
    return np.dtype(np.uint16 if int(np.max(mask, initial=0)) <= 0xFFFF else np.uint32)


# --- expansion -------------------------------------------------------------------------


def expand_mask(mask: np.ndarray, dmax: float) -> np.ndarray:
    """Give every background pixel within ``dmax`` the label of its nearest object pixel.

    Uses scipy's Euclidean feature transform, as steinbock does, so ties between
    equally near objects are broken the same way.
    """
    mask = np.asarray(mask)
    if not mask.any():
        return mask.copy()
    rows, cols = ndimage.distance_transform_edt(
        mask == 0, return_distances=False, return_indices=True
    )
    dr = rows - np.arange(mask.shape[0], dtype=rows.dtype)[:, np.newaxis]
    dc = cols - np.arange(mask.shape[1], dtype=cols.dtype)[np.newaxis, :]
    squared = dr.astype(np.float64)
    squared *= squared
    squared += dc.astype(np.float64) ** 2
    del dr, dc
    near = np.sqrt(squared, out=squared) <= dmax
    return np.where(near, mask[rows, cols], mask)


def touching_pairs(labels: np.ndarray, *, last_row_pairs: bool = True) -> np.ndarray:
    """Unique ordered pairs ``(a, b)`` of different objects that touch (4-connectivity).

    Parameters
    ----------
    labels : ndarray of int, shape (Y, X)
    last_row_pairs : bool
        Whether to include horizontal pairs within the last row (False when the
        last row is only a look-ahead row of a band).

    Returns
    -------
    ndarray of int64, shape (P, 2)
        Both directions of every pair, sorted.
    """
    keys = []
    scale = np.int64(int(labels.max(initial=0)) + 1)
    horizontal = labels if last_row_pairs else labels[:-1]
    for a, b in (
        (horizontal[:, :-1], horizontal[:, 1:]),
        (labels[:-1], labels[1:]),
    ):
        touching = (a != b) & (a > 0) & (b > 0)
        first = a[touching].astype(np.int64)
        second = b[touching].astype(np.int64)
        keys.append(np.unique(first * scale + second))
        keys.append(np.unique(second * scale + first))
    keys = np.unique(np.concatenate(keys))
    return np.stack([keys // scale, keys % scale], axis=1)


def expansion_neighbors(mask: np.ndarray, dmax: float, *, rows: int | None = None) -> pd.DataFrame:
    """Neighbours by pixel expansion (steinbock's ``--type expansion``).

    Parameters
    ----------
    mask : ndarray of int, shape (Y, X)
    dmax : float
        Expansion distance in pixels.
    rows : int, optional
        Rows per band (default: the whole mask at once). Each band is expanded
        with a halo of ``2 * ceil(dmax) + 2`` rows on each side.

    Returns
    -------
    DataFrame
        ``Object``, ``Neighbor``, ``Distance`` (NaN).
    """
    if dmax is None or dmax < 0:
        raise ValueError("pixel expansion needs a non-negative maximum distance (dmax)")
    mask = np.asarray(mask)
    height = mask.shape[0]
    rows = height if rows is None else max(1, int(rows))
    halo = 2 * int(math.ceil(dmax)) + 2
    found = []
    for start in range(0, height, rows):
        stop = min(height, start + rows)
        low, high = max(0, start - halo), min(height, stop + 1 + halo)
        expanded = expand_mask(mask[low:high], dmax)
        look_ahead = stop < height
        part = expanded[start - low : stop - low + (1 if look_ahead else 0)]
        found.append(touching_pairs(part, last_row_pairs=not look_ahead))
        del expanded, part
    pairs = np.unique(np.concatenate(found), axis=0) if found else np.zeros((0, 2), np.int64)
    return neighbor_table(
        pairs[:, 0], pairs[:, 1], np.full(len(pairs), np.nan), dtype=_id_dtype(mask)
    )


# --- borders ---------------------------------------------------------------------------


def _keep_k_nearest(first, second, distances, kmax):
    """Keep, per object, the ``kmax`` nearest (ties: lower neighbour ID first)."""
    order = np.lexsort((second, distances, first))
    first, second, distances = first[order], second[order], distances[order]
    starts = np.r_[0, np.flatnonzero(first[1:] != first[:-1]) + 1]
    rank = np.arange(len(first)) - np.repeat(starts, np.diff(np.r_[starts, len(first)]))
    keep = rank < kmax
    first, second, distances = first[keep], second[keep], distances[keep]
    order = np.lexsort((second, first))
    return first[order], second[order], distances[order]


def border_neighbors(
    mask: np.ndarray, dmax: float | None = None, kmax: int | None = None
) -> pd.DataFrame:
    """Neighbours by the Euclidean distance between object borders (``--type borders``).

    The distance of two objects is the smallest distance between pixel centres
    of one and the other (what steinbock takes from a distance transform).

    Parameters
    ----------
    mask : ndarray of int, shape (Y, X)
    dmax : float, optional
        Keep pairs within this distance.
    kmax : int, optional
        Keep each object's ``kmax`` nearest (after ``dmax``).
    """
    mask = np.asarray(mask)
    if dmax is None:
        first, second, distances = _all_border_distances(mask)
    else:
        first, second, distances = _border_distances_within(mask, dmax)
    if kmax is not None:
        first, second, distances = _keep_k_nearest(first, second, distances, kmax)
    return neighbor_table(first, second, distances, dtype=_id_dtype(mask))


def _border_distances_within(mask: np.ndarray, dmax: float):
    reach = int(math.floor(dmax))
    height, width = mask.shape
    scale = np.int64(int(mask.max(initial=0)) + 1)
    keys, squared = [], []
    for dr in range(0, reach + 1):
        for dc in range(-reach, reach + 1):
            if (dr == 0 and dc <= 0) or math.sqrt(dr * dr + dc * dc) > dmax:
                continue
            if dr >= height or abs(dc) >= width:
                continue
            if dc >= 0:
                a, b = mask[: height - dr, : width - dc], mask[dr:, dc:]
            else:
                a, b = mask[: height - dr, -dc:], mask[dr:, : width + dc]
            touching = (a != b) & (a > 0) & (b > 0)
            if not touching.any():
                continue
            key = np.unique(a[touching].astype(np.int64) * scale + b[touching])
            keys.append(key)
            squared.append(np.full(len(key), dr * dr + dc * dc, dtype=np.int64))
    if not keys:
        empty = np.zeros(0, np.int64)
        return empty, empty, np.zeros(0)
    key = np.concatenate(keys)
    squared = np.concatenate(squared)
    first, second = key // scale, key % scale
    # both directions, then the smallest distance per ordered pair
    first, second = np.r_[first, second], np.r_[second, first]
    squared = np.r_[squared, squared]
    order = np.lexsort((squared, second, first))
    first, second, squared = first[order], second[order], squared[order]
    new = np.r_[True, (first[1:] != first[:-1]) | (second[1:] != second[:-1])]
    return first[new], second[new], np.sqrt(squared[new].astype(np.float64))


def _all_border_distances(mask: np.ndarray):
    ids = np.unique(mask[mask != 0])
    first, second, distances = [], [], []
    for label in ids:
        dist = ndimage.distance_transform_edt(mask != label)
        others = ids[ids != label]
        if len(others) == 0:
            continue
        first.append(np.full(len(others), label, dtype=np.int64))
        second.append(others.astype(np.int64))
        distances.append(ndimage.minimum(dist, labels=mask, index=others))
    if not first:
        empty = np.zeros(0, np.int64)
        return empty, empty, np.zeros(0)
    return np.concatenate(first), np.concatenate(second), np.concatenate(distances)


# --- centroids -------------------------------------------------------------------------


def _metric_distances(a: np.ndarray, b: np.ndarray, metric: str) -> np.ndarray:
    """Row-wise distances as scipy's pdist computes them (2-D points)."""
    diff = a - b
    if metric == "euclidean":
        return np.sqrt(diff[:, 0] * diff[:, 0] + diff[:, 1] * diff[:, 1])
    if metric == "cityblock":
        return np.abs(diff[:, 0]) + np.abs(diff[:, 1])
    if metric == "chebyshev":
        return np.maximum(np.abs(diff[:, 0]), np.abs(diff[:, 1]))
    raise ValueError(metric)


def centroid_neighbors(
    ids: np.ndarray,
    centroids: np.ndarray,
    *,
    metric: str = "euclidean",
    dmax: float | None = None,
    kmax: int | None = None,
    dtype=np.uint16,
) -> pd.DataFrame:
    """Neighbours by centroid distance (steinbock's ``--type centroids``).

    Parameters
    ----------
    ids : ndarray, shape (N,)
        Object IDs.
    centroids : ndarray of float, shape (N, 2)
    metric : str
        A scipy ``pdist`` metric (euclidean, cityblock and chebyshev use a KD-tree).
    dmax : float, optional
        Keep pairs within this distance.
    kmax : int, optional
        Keep each object's ``kmax`` nearest (then ``dmax``). At least one of
        ``dmax`` and ``kmax`` is required.
    """
    if dmax is None and kmax is None:
        raise ValueError("specify dmax or kmax (or both)")
    ids = np.asarray(ids)
    centroids = np.asarray(centroids, dtype=np.float64)
    n = len(ids)
    if metric not in _KDTREE_METRICS:
        first, second, distances = _pdist_neighbors(centroids, metric, dmax, kmax)
    elif kmax is not None:
        first, second, distances = _kdtree_knn(centroids, metric, kmax, dmax)
    elif n < 2:
        first = second = np.zeros(0, np.int64)
        distances = np.zeros(0)
    else:
        from scipy.spatial import cKDTree

        tree = cKDTree(centroids)
        pairs = tree.query_pairs(
            dmax * (1 + 1e-9) + 1e-12, p=_KDTREE_METRICS[metric], output_type="ndarray"
        ).astype(np.int64)
        distances = _metric_distances(centroids[pairs[:, 0]], centroids[pairs[:, 1]], metric)
        keep = distances <= dmax
        pairs, distances = pairs[keep], distances[keep]
        first = np.r_[pairs[:, 0], pairs[:, 1]]
        second = np.r_[pairs[:, 1], pairs[:, 0]]
        distances = np.r_[distances, distances]
    order = np.lexsort((second, first))
    first, second, distances = first[order], second[order], distances[order]
    return neighbor_table(ids[first], ids[second], distances, dtype=dtype)


def _kdtree_knn(centroids, metric, kmax, dmax):
    from scipy.spatial import cKDTree

    n = len(centroids)
    k = min(kmax, n - 1)
    if k <= 0:
        empty = np.zeros(0, np.int64)
        return empty, empty, np.zeros(0)
    tree = cKDTree(centroids)
    _, found = tree.query(centroids, k=k + 1, p=_KDTREE_METRICS[metric])
    found = np.asarray(found, dtype=np.int64).reshape(n, k + 1)
    own = np.arange(n)[:, np.newaxis]
    not_self = found != own
    # drop the object itself (or, with duplicate centroids, the farthest extra one)
    drop_last = not_self.all(axis=1)
    not_self[drop_last, -1] = False
    second = found[not_self].reshape(n, k).ravel()
    first = np.repeat(np.arange(n), k)
    distances = _metric_distances(centroids[first], centroids[second], metric)
    if dmax is not None:
        keep = distances <= dmax
        first, second, distances = first[keep], second[keep], distances[keep]
    return first, second, distances


def _pdist_neighbors(centroids, metric, dmax, kmax):
    from scipy.spatial.distance import pdist, squareform

    n = len(centroids)
    matrix = squareform(pdist(centroids, metric=metric), checks=False).astype(float)
    np.fill_diagonal(matrix, np.inf)
    if kmax is not None:
        k = min(kmax, n - 1)
        first = np.repeat(np.arange(n), k)
        second = np.argsort(matrix, axis=1, kind="stable")[:, :k].ravel()
        distances = matrix[first, second]
        if dmax is not None:
            keep = distances <= dmax
            first, second, distances = first[keep], second[keep], distances[keep]
        return first, second, distances
    first, second = np.nonzero(matrix <= dmax)
    return first, second, matrix[first, second]
