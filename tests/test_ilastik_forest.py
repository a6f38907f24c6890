"""vigra random forests: decoding, prediction rules, ensembles and the refdata project."""

import h5py
import numpy as np
import pytest

from steinbock_like.classify.ilastik.forest import (
    LEAF_FLAG,
    ForestEnsemble,
    ForestFormatError,
    decode_vigra_forest,
    decode_vigra_tree,
    encode_vigra_tree,
)


def small_tree():
    """A hand-written vigra tree on 2 features and 2 classes.

    root (index 2): column 1 < 0.5 ? node 7 : node 9
    node 7: leaf, weight 3, [1, 0]
    node 9: column 0 < -1 ? node 14 : node 16
    node 14: leaf, weight 2, [0.25, 0.75]
    node 16: leaf, weight 1, [0, 1]
    """
    topology = np.array(
        [2, 2, 0, 0, 7, 9, 1, LEAF_FLAG, 2, 0, 5, 14, 16, 0, LEAF_FLAG, 7, LEAF_FLAG, 10],
        dtype=np.int32,
    )
    parameters = np.array(
        [1.0, 0.5, 3.0, 1.0, 0.0, 1.0, -1.0, 2.0, 0.25, 0.75, 1.0, 0.0, 1.0], dtype=np.float64
    )
    return topology, parameters


def test_decode_and_apply_follow_vigra_rules():
    tree = decode_vigra_tree(*small_tree())
    assert tree.depth == 2
    assert tree.feature.tolist() == [1, -1, 0, -1, -1]
    features = np.array(
        [[0.0, 0.4], [5.0, 0.5], [-2.0, 0.9], [-1.0, 3.0], [np.nan, 0.0]], dtype=np.float32
    )
    leaves = tree.apply(features)
    values = tree.leaf_values[leaves]
    # Below the threshold goes to child 0; equal goes to child 1.
    np.testing.assert_array_equal(values, [[1, 0], [0, 1], [0.25, 0.75], [0, 1], [1, 0]])


def test_weighted_prediction_multiplies_leaf_weight():
    tree = decode_vigra_tree(*small_tree(), predict_weighted=True)
    leaves = tree.apply(np.array([[0.0, 0.0], [-5.0, 1.0]], dtype=np.float32))
    np.testing.assert_array_equal(tree.leaf_values[leaves], [[3, 0], [0.5, 1.5]])


@pytest.mark.parametrize("accelerate", [False, True])
def test_forest_normalises_the_sum_of_its_trees(accelerate):
    stump_a = (
        np.array([2, 2, 0, 0, 7, 9, 0, LEAF_FLAG, 2, LEAF_FLAG, 5], dtype=np.int32),
        np.array([1.0, 0.0, 1.0, 1.0, 0.0, 1.0, 0.0, 1.0]),
    )
    stump_b = (
        np.array([2, 2, LEAF_FLAG, 0], dtype=np.int32),
        np.array([4.0, 0.5, 0.5]),
    )
    forest = decode_vigra_forest([stump_a, stump_b], [1, 2], accelerate=accelerate)
    proba = forest.predict_proba(np.array([[-1.0, 0.0], [1.0, 0.0]], dtype=np.float32))
    np.testing.assert_allclose(proba, [[0.75, 0.25], [0.25, 0.75]])
    assert proba.dtype == np.float32

    # Forests are combined weighted by their tree counts: (2 * P_a + 1 * P_b) / 3.
    single = decode_vigra_forest([stump_b], [1, 2], accelerate=accelerate)
    ensemble = ForestEnsemble((forest, single))
    combined = ensemble.predict_proba(np.array([[-1.0, 0.0]], dtype=np.float32))
    np.testing.assert_allclose(combined, [[(2 * 0.75 + 0.5) / 3, (2 * 0.25 + 0.5) / 3]])
    assert ensemble.num_trees == 3


def test_unknown_node_types_and_bad_indices_are_rejected():
    topology, parameters = small_tree()
    hyperplane = topology.copy()
    hyperplane[2] = 1
    with pytest.raises(ForestFormatError, match="split type 1"):
        decode_vigra_tree(hyperplane, parameters)
    logistic_leaf = topology.copy()
    logistic_leaf[7] = LEAF_FLAG | 1
    with pytest.raises(ForestFormatError, match="leaf type"):
        decode_vigra_tree(logistic_leaf, parameters)
    dangling = topology.copy()
    dangling[4] = 99
    with pytest.raises(ForestFormatError, match="outside"):
        decode_vigra_tree(dangling, parameters)
    with pytest.raises(ForestFormatError, match="labels"):
        decode_vigra_forest([small_tree()], [1, 2, 3])


def test_numpy_and_compiled_traversal_agree_on_random_trees():
    rng = np.random.default_rng(7)
    trees = [_random_vigra_tree(rng, num_features=6, num_classes=3, depth=6) for _ in range(5)]
    plain = decode_vigra_forest(trees, [1, 2, 3], accelerate=False)
    compiled = decode_vigra_forest(trees, [1, 2, 3], accelerate=True)
    assert compiled._sklearn_trees is not None
    features = rng.normal(size=(5000, 6)).astype(np.float32)
    # Include values exactly at thresholds, where "<" and "<=" would differ.
    features[:100, 0] = np.float32(0.0)
    expected = plain.predict_proba(features)
    np.testing.assert_array_equal(compiled.predict_proba(features), expected)
    np.testing.assert_array_equal(compiled.predict_proba(np.asfortranarray(features)), expected)
    np.testing.assert_array_equal(plain.predict_proba(features[:, ::-1][:, ::-1]), expected)


def _random_vigra_tree(rng, num_features, num_classes, depth):
    topology = [num_features, num_classes]
    parameters = []

    def node(level):
        address = len(topology)
        if level == depth or rng.random() < 0.2:
            topology.extend([LEAF_FLAG, len(parameters)])
            parameters.extend([1.0, *rng.dirichlet(np.ones(num_classes))])
            return address
        topology.extend([0, len(parameters), -1, -1, int(rng.integers(num_features))])
        parameters.extend([1.0, 0.0 if rng.random() < 0.3 else float(rng.normal())])
        topology[address + 2] = node(level + 1)
        topology[address + 3] = node(level + 1)
        return address

    node(0)
    return np.array(topology, dtype=np.int32), np.array(parameters)


def test_refdata_forests_decode(refdata):
    with h5py.File(refdata / "ilastik_original.ilp", "r") as project:
        group = project["PixelClassification/ClassifierForests"]
        names = sorted(k for k in group if k.startswith("Forest"))
        labels = group["Forest0000/_ext_param/labels"][()]
        first_tree = group["Forest0000/Tree_00/parameters"][()]
    stored = {name: _trees_of(refdata, name) for name in names}
    forests = [decode_vigra_forest(stored[name], labels) for name in names]
    ensemble = ForestEnsemble(tuple(forests))
    assert len(names) == 8
    assert ensemble.num_trees == 100
    assert ensemble.num_features == 160
    assert ensemble.labels.tolist() == [1, 2, 3]
    tree = forests[0].trees[0]
    # The root of the first tree tests column 0 (Gaussian smoothing of channel 0 at 1.0).
    assert tree.feature[0] == 0
    assert tree.threshold[0] == first_tree[1]
    # ilastik's leaves hold class distributions; a binary tree has one more leaf than splits.
    leaves = tree.is_leaf
    assert leaves.sum() == (~leaves).sum() + 1
    np.testing.assert_allclose(tree.leaf_values[leaves].sum(axis=1), 1.0)
    assert 3 <= max(t.depth for f in forests for t in f.trees) <= 30

    rng = np.random.default_rng(8)
    features = rng.gamma(1.0, 20.0, size=(3000, 160)).astype(np.float32) - 5
    plain = ForestEnsemble(
        tuple(decode_vigra_forest(stored[name], labels, accelerate=False) for name in names)
    )
    proba = ensemble.predict_proba(features)
    np.testing.assert_array_equal(proba, plain.predict_proba(features))
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-6)


def _trees_of(refdata, name):
    with h5py.File(refdata / "ilastik_original.ilp", "r") as project:
        group = project[f"PixelClassification/ClassifierForests/{name}"]
        return [
            (group[t]["topology"][()], group[t]["parameters"][()])
            for t in sorted(group)
            if t.startswith("Tree_")
        ]


def test_encode_then_decode_round_trips():
    rng = np.random.default_rng(9)
    for _ in range(5):
        topology, parameters = _random_vigra_tree(rng, num_features=7, num_classes=3, depth=5)
        tree = decode_vigra_tree(topology, parameters)
        again = decode_vigra_tree(*encode_vigra_tree(tree, 7))
        for name in ("feature", "threshold", "children", "leaf_values"):
            np.testing.assert_array_equal(getattr(again, name), getattr(tree, name))
        assert again.depth == tree.depth
        assert encode_vigra_tree(tree, 7)[0][0] == 7
