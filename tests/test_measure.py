"""measure: pure functions against numpy / hand-computed cases."""

import numpy as np
import pandas as pd
import pytest
from scipy import ndimage

from steinbock_like.measure.intensities import (
    IntensityAccumulator,
    compact_labels,
    measure_intensities,
)
from steinbock_like.measure.neighbors import (
    border_neighbors,
    centroid_neighbors,
    expand_mask,
    expansion_neighbors,
)
from steinbock_like.measure.regionprops import measure_regionprops


def _voronoi_mask(shape=(60, 80), cells=40, seed=0, gaps=True):
    rng = np.random.default_rng(seed)
    seeds = np.zeros(shape, dtype=np.uint16)
    ys, xs = rng.integers(0, shape[0], cells), rng.integers(0, shape[1], cells)
    seeds[ys, xs] = rng.permutation(np.arange(3, 3 + cells) * 7)[:cells].astype(np.uint16)
    _, (i, j) = ndimage.distance_transform_edt(seeds == 0, return_indices=True)
    mask = seeds[i, j]
    if gaps:
        mask[rng.random(shape) < 0.15] = 0
    return mask


NUMPY = {
    "sum": np.sum,
    "min": np.min,
    "max": np.max,
    "mean": np.mean,
    "median": np.median,
    "std": np.std,
    "var": np.var,
}


@pytest.mark.parametrize("aggr", sorted(NUMPY))
def test_aggregations_equal_numpy_per_object(aggr):
    mask = _voronoi_mask()
    rng = np.random.default_rng(1)
    image = rng.gamma(2.0, 3.0, (2, *mask.shape)).astype(np.float32)
    table = measure_intensities(image, mask, ["a", "b"], aggr)
    ids = np.unique(mask[mask > 0])
    assert table.index.tolist() == ids.tolist()
    for c, name in enumerate(["a", "b"]):
        expected = [NUMPY[aggr](image[c][mask == i].astype(np.float64)) for i in ids]
        np.testing.assert_allclose(table[name].to_numpy(), expected, rtol=1e-6)


@pytest.mark.parametrize("aggr", sorted(NUMPY))
def test_banded_accumulation_equals_whole(aggr):
    mask = _voronoi_mask(seed=3)
    values = np.random.default_rng(2).normal(5, 2, mask.shape).astype(np.float32)
    ids, index = compact_labels(mask)
    whole = IntensityAccumulator(len(ids), aggr)
    whole.add(index, values)
    banded = IntensityAccumulator(len(ids), aggr)
    for start in range(0, mask.shape[0], 7):
        banded.add(index[start : start + 7], values[start : start + 7])
    np.testing.assert_allclose(banded.result(), whole.result(), rtol=1e-9)


def test_regionprops_equal_scikit_image():
    from skimage.measure import regionprops_table

    mask = _voronoi_mask(seed=4)
    ours = measure_regionprops(mask, rows=9)
    theirs = regionprops_table(
        mask,
        properties=[
            "label",
            "area",
            "centroid",
            "axis_major_length",
            "axis_minor_length",
            "eccentricity",
        ],
    )
    assert ours.index.tolist() == theirs["label"].tolist()
    for column in ours.columns:
        np.testing.assert_allclose(ours[column], theirs[column], rtol=1e-9, atol=1e-12)
    # a property outside the fast set comes from scikit-image, in the requested order
    both = measure_regionprops(mask, ["perimeter", "area"])
    assert list(both.columns) == ["perimeter", "area"]
    np.testing.assert_allclose(
        both["perimeter"], regionprops_table(mask, properties=["perimeter"])["perimeter"]
    )


def _pairs(table):
    return sorted(zip(table["Object"].tolist(), table["Neighbor"].tolist(), strict=True))


def test_centroid_neighbors_hand_computed():
    ids = np.array([1, 2, 5, 9])
    centroids = np.array([[0.0, 0.0], [0.0, 3.0], [4.0, 0.0], [10.0, 10.0]])
    within = centroid_neighbors(ids, centroids, dmax=4.0)
    assert _pairs(within) == [(1, 2), (1, 5), (2, 1), (5, 1)]
    assert within.set_index(["Object", "Neighbor"]).loc[(1, 5), "Distance"] == 4.0
    nearest = centroid_neighbors(ids, centroids, kmax=1)
    assert _pairs(nearest) == [(1, 2), (2, 1), (5, 1), (9, 5)]
    np.testing.assert_allclose(
        nearest.loc[nearest.Object == 9, "Distance"], np.hypot(6, 10), rtol=1e-6
    )
    # kmax and dmax together; another metric (pdist fallback and KD-tree agree)
    assert _pairs(centroid_neighbors(ids, centroids, kmax=2, dmax=3.5)) == [(1, 2), (2, 1)]
    city = centroid_neighbors(ids, centroids, dmax=7.0, metric="cityblock")
    fallback = centroid_neighbors(ids, centroids, dmax=7.0, metric="minkowski")
    assert _pairs(city) == [(1, 2), (1, 5), (2, 1), (2, 5), (5, 1), (5, 2)]
    assert set(_pairs(fallback)) <= set(_pairs(city))


def test_border_neighbors_hand_computed():
    mask = np.zeros((10, 12), dtype=np.uint16)
    mask[1:4, 1:4] = 1
    mask[1:4, 5:7] = 2  # one column of background from 1: distance 2
    mask[7:9, 8:10] = 3  # from 2: rows 3->7, cols 6->8: sqrt(16 + 4)
    table = border_neighbors(mask, dmax=5)
    assert _pairs(table) == [(1, 2), (2, 1), (2, 3), (3, 2)]
    distance = table.set_index(["Object", "Neighbor"])["Distance"]
    assert distance[(1, 2)] == 2.0
    assert distance[(3, 2)] == np.float32(np.sqrt(20))
    unbounded = border_neighbors(mask)
    assert len(unbounded) == 6
    assert unbounded.set_index(["Object", "Neighbor"])["Distance"][(1, 3)] == np.float32(
        np.hypot(4, 5)
    )
    assert _pairs(border_neighbors(mask, kmax=1)) == [(1, 2), (2, 1), (3, 2)]


def test_expansion_neighbors_hand_computed_and_banded():
    mask = np.zeros((5, 12), dtype=np.uint16)
    mask[2, 1] = 1
    mask[2, 6] = 2  # 5 apart: touch after expanding by 2 (pixels 3 and 4 meet)
    mask[2, 11] = 3
    assert _pairs(expansion_neighbors(mask, 2)) == [(1, 2), (2, 1), (2, 3), (3, 2)]
    assert _pairs(expansion_neighbors(mask, 1.5)) == []
    assert expansion_neighbors(mask, 2)["Distance"].isna().all()
    big = _voronoi_mask((90, 70), cells=60, seed=5)
    whole = expansion_neighbors(big, 4)
    for rows in (1, 5, 13):
        assert expansion_neighbors(big, 4, rows=rows).equals(whole)
    expanded = expand_mask(big, 4)
    assert (expanded[big > 0] == big[big > 0]).all()


def test_compact_labels_in_place():
    mask = np.array([[0, 7, 7], [300, 0, 7]], dtype=np.uint16)
    ids, index = compact_labels(mask, out=mask)
    assert ids.tolist() == [7, 300]
    assert index is mask and mask.tolist() == [[0, 1, 1], [2, 0, 1]]
    frame = measure_intensities(
        np.ones((1, 2, 3), np.float32), np.array([[0, 5, 5], [0, 0, 9]]), ["x"], "sum"
    )
    assert isinstance(frame, pd.DataFrame) and frame["x"].tolist() == [2.0, 1.0]


def test_object_table_writer_equals_pandas(tmp_path):
    from steinbock_like.io.tables import write_object_table

    rng = np.random.default_rng(0)
    values = np.r_[rng.gamma(1, 5, 200), rng.normal(0, 1e-7, 20), [np.nan, 0.0, -0.0, 1e16]]
    table = pd.DataFrame(
        {"a b": values, "c,d": values[::-1].astype(np.float32), "n": np.arange(len(values))},
        index=pd.Index(np.arange(1, len(values) + 1, dtype=np.uint16), name="Object"),
    )
    table.loc[3, "c,d"] = np.nan
    table.to_csv(tmp_path / "pandas.csv")
    write_object_table(tmp_path / "ours.csv", table)
    assert (tmp_path / "ours.csv").read_text() == (tmp_path / "pandas.csv").read_text()
