"""vigra random forests as ilastik stores them, decoded into arrays and evaluated vectorised.

An ilastik project keeps its trained classifier under ``PixelClassification/ClassifierForests``
as one or more vigra random forests (one per training thread). Each tree is two flat arrays
(vigra ``rf_decisionTree.hxx``, ``rf_nodeproxy.hxx``):

* ``topology`` (int32): ``[num_columns, num_classes]`` then the nodes, the root at index 2.
  A node at index ``n`` is ``topology[n]`` (type), ``topology[n + 1]`` (offset into
  ``parameters``), and for a split also ``topology[n + 2]``, ``topology[n + 3]`` (child indices)
  and ``topology[n + 4]`` (feature column). Types with bit ``0x40000000`` are leaves; type 0 is a
  threshold split.
* ``parameters`` (float64): ``[weight, threshold]`` for a split (child 0 when the feature is
  below the threshold), ``[weight, p_1 .. p_C]`` for a leaf.

A forest's prediction is the sum of its trees' leaf vectors (times the leaf weight only when
``predict_weighted_`` is set), normalised to 1 per pixel; several forests are averaged weighted
by their tree counts (lazyflow's parallel vigra classifier).

Trees are traversed with scikit-learn's compiled code when it is installed (the same decisions,
about 16 times faster), else level by level with numpy; both are vectorised over pixels.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

logger = logging.getLogger(__name__)

LEAF_FLAG = 0x40000000
THRESHOLD_SPLIT = 0
CONSTANT_PROBABILITY_LEAF = LEAF_FLAG
_SPLIT_SIZE = 5
_LEAF_SIZE = 2


class ForestFormatError(ValueError):
    """A stored forest is malformed or uses a node type this decoder does not know."""


@dataclass(frozen=True)
class DecisionTree:
    """One decision tree as flat node arrays (node 0 is the root).

    Attributes
    ----------
    feature : ndarray of int32, shape (N,)
        Feature column tested at a split; -1 at leaves.
    threshold : ndarray of float64, shape (N,)
        A sample goes to ``children[n, 0]`` when its feature is below the threshold, else
        to ``children[n, 1]``; +inf at leaves.
    children : ndarray of int32, shape (N, 2)
        Child node indices; a leaf points to itself.
    leaf_values : ndarray of float32, shape (N, C)
        What a leaf contributes to the forest's sum (zero at splits).
    depth : int
        Number of splits on the longest root-to-leaf path.
    """

    feature: np.ndarray
    threshold: np.ndarray
    children: np.ndarray
    leaf_values: np.ndarray
    depth: int

    def __post_init__(self):
        # One contiguous table per class: 1-D takes are much faster than 2-D row gathers.
        by_class = np.ascontiguousarray(self.leaf_values.T, dtype=np.float32)
        object.__setattr__(self, "_leaf_values_by_class", by_class)

    @property
    def is_leaf(self) -> np.ndarray:
        return self.feature < 0

    def add_leaf_values(self, leaves: np.ndarray, total: np.ndarray) -> None:
        """Add the leaf vectors of ``leaves`` (N,) to ``total`` (C, N)."""
        for values, column in zip(self._leaf_values_by_class, total, strict=True):
            column += values.take(leaves)

    def apply(self, features: np.ndarray) -> np.ndarray:
        """Leaf index reached by each row of ``features`` (N, F); vectorised level by level."""
        num_rows, num_columns = features.shape
        node = np.zeros(num_rows, dtype=np.int32)
        if self.depth == 0:
            return node
        # Gather through the flat buffer so that any memory layout (also column-planar) works.
        flat, row_step, column_step = _flat_view(features)
        row_offsets = np.arange(num_rows, dtype=np.int64) * row_step
        column_offsets = np.maximum(self.feature, 0).astype(np.int64) * column_step
        for _ in range(self.depth):
            values = flat[row_offsets + column_offsets[node]]
            goes_right = ~(values < self.threshold[node])
            node = self.children[node, goes_right.view(np.uint8)]
        return node


def _flat_view(features: np.ndarray) -> tuple[np.ndarray, int, int]:
    """A 1-D view of a 2-D array's buffer and its row and column steps in elements."""
    itemsize = features.itemsize
    row_step, column_step = (s // itemsize for s in features.strides)
    if features.flags.c_contiguous:
        return features.reshape(-1), row_step, column_step
    if features.flags.f_contiguous:
        return features.T.reshape(-1), row_step, column_step
    contiguous = np.ascontiguousarray(features)
    return contiguous.reshape(-1), contiguous.shape[1], 1


#: Rows per block of tree traversal: a block's features stay in the CPU cache across trees.
CHUNK_ROWS = 16384


@dataclass(frozen=True)
class RandomForest:
    """One vigra random forest: its trees and the class labels of its leaf vectors."""

    trees: tuple[DecisionTree, ...]
    labels: np.ndarray
    num_features: int
    _sklearn_trees: list | None = field(default=None, compare=False, repr=False)

    @property
    def num_classes(self) -> int:
        return len(self.labels)

    def leaf_sum(self, features: np.ndarray) -> np.ndarray:
        """Sum of the trees' leaf vectors for each row, shape (N, C), float64."""
        leaf_finders = self._sklearn_trees
        if leaf_finders is None:
            # One contiguous copy of the block serves all trees' gathers.
            features = np.ascontiguousarray(features)
            leaf_finders = [tree.apply for tree in self.trees]
        total = np.zeros((self.num_classes, features.shape[0]), dtype=np.float32)
        for tree, find_leaves in zip(self.trees, leaf_finders, strict=True):
            tree.add_leaf_values(find_leaves(features), total)
        return total.T.astype(np.float64)

    def _block_proba(self, features: np.ndarray) -> np.ndarray:
        total = self.leaf_sum(features)
        norm = total.sum(axis=1, keepdims=True)
        np.divide(total, norm, out=total, where=norm > 0)
        return total

    def predict_proba(self, features: np.ndarray, *, threads: int = 1) -> np.ndarray:
        """Class probabilities, shape (N, C), float32, in the order of ``labels``."""
        features = _as_float32_2d(features, self.num_features)
        return _by_row_blocks(self._block_proba, features, self.num_classes, threads)


def _by_row_blocks(predict, features: np.ndarray, num_classes: int, threads: int) -> np.ndarray:
    """Apply ``predict`` to blocks of rows (in ``threads`` threads) and gather the results."""
    result = np.empty((features.shape[0], num_classes), dtype=np.float32)
    starts = range(0, features.shape[0], CHUNK_ROWS)

    def run(start: int) -> None:
        stop = min(start + CHUNK_ROWS, features.shape[0])
        result[start:stop] = predict(features[start:stop])

    if threads > 1 and len(starts) > 1:
        # scikit-learn's traversal releases the GIL, so threads share the work.
        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(run, starts))
    else:
        for start in starts:
            run(start)
    return result


def _as_float32_2d(features: np.ndarray, num_features: int) -> np.ndarray:
    if features.ndim != 2 or features.shape[1] != num_features:
        raise ValueError(
            f"forest expects {num_features} feature columns, got array of shape {features.shape}"
        )
    if features.dtype != np.float32:
        features = features.astype(np.float32)
    return features


def decode_vigra_tree(
    topology: np.ndarray, parameters: np.ndarray, *, predict_weighted: bool = False
) -> DecisionTree:
    """Decode one vigra decision tree from its ``topology`` and ``parameters`` arrays.

    Parameters
    ----------
    topology : ndarray of int
        vigra's node topology (header of two values, root at index 2).
    parameters : ndarray of float
        vigra's node parameters.
    predict_weighted : bool
        Multiply leaf vectors by the leaf weight (vigra's ``predict_weighted_`` option).

    Returns
    -------
    DecisionTree

    Raises
    ------
    ForestFormatError
        For node types other than threshold splits and constant-probability leaves, or
        indices out of range.
    """
    topology = np.asarray(topology, dtype=np.int64).ravel()
    parameters = np.asarray(parameters, dtype=np.float64).ravel()
    if topology.size < 4:
        raise ForestFormatError(f"tree topology too short ({topology.size} values)")
    num_columns, num_classes = int(topology[0]), int(topology[1])
    if num_classes < 1:
        raise ForestFormatError(f"tree has {num_classes} classes")

    # Breadth-first walk from the root: node order = discovery order, root first.
    addresses = [2]
    index_of = {2: 0}
    features: list[int] = []
    thresholds: list[float] = []
    children: list[tuple[int, int]] = []
    values: list[np.ndarray] = []
    depth_of = [0]
    position = 0
    while position < len(addresses):
        address = addresses[position]
        if address < 2 or address + _LEAF_SIZE > topology.size:
            raise ForestFormatError(f"node index {address} outside the topology")
        node_type, offset = int(topology[address]), int(topology[address + 1])
        if node_type & LEAF_FLAG:
            if node_type != CONSTANT_PROBABILITY_LEAF:
                raise ForestFormatError(f"unsupported leaf type {node_type:#x}")
            leaf = _slice_parameters(parameters, offset, 1 + num_classes)
            vector = leaf[1:] * leaf[0] if predict_weighted else leaf[1:]
            features.append(-1)
            thresholds.append(np.inf)
            children.append((position, position))
            values.append(vector)
        elif node_type == THRESHOLD_SPLIT:
            if address + _SPLIT_SIZE > topology.size:
                raise ForestFormatError(f"split node at {address} truncated")
            column = int(topology[address + 4])
            if not 0 <= column < num_columns:
                raise ForestFormatError(f"split on column {column} of {num_columns}")
            threshold = _slice_parameters(parameters, offset, 2)[1]
            pair = []
            for child in (int(topology[address + 2]), int(topology[address + 3])):
                if child not in index_of:
                    index_of[child] = len(addresses)
                    addresses.append(child)
                    depth_of.append(depth_of[position] + 1)
                pair.append(index_of[child])
            features.append(column)
            thresholds.append(threshold)
            children.append((pair[0], pair[1]))
            values.append(np.zeros(num_classes))
        else:
            raise ForestFormatError(f"unsupported split type {node_type}")
        position += 1

    return DecisionTree(
        feature=np.array(features, dtype=np.int32),
        threshold=np.array(thresholds, dtype=np.float64),
        children=np.array(children, dtype=np.int32).reshape(-1, 2),
        leaf_values=np.array(values, dtype=np.float32).reshape(-1, num_classes),
        depth=max(depth_of),
    )


def _slice_parameters(parameters: np.ndarray, offset: int, size: int) -> np.ndarray:
    if offset < 0 or offset + size > parameters.size:
        raise ForestFormatError(f"parameter offset {offset} outside the parameters")
    return parameters[offset : offset + size]


def decode_vigra_forest(
    trees: Sequence[tuple[np.ndarray, np.ndarray]],
    labels: np.ndarray,
    *,
    predict_weighted: bool = False,
    accelerate: bool = True,
) -> RandomForest:
    """Decode a vigra random forest.

    Parameters
    ----------
    trees : sequence of (topology, parameters)
        The ``Tree_NN`` arrays, in order.
    labels : array-like of int
        ``_ext_param/labels``: the class label of each leaf-vector entry.
    predict_weighted : bool
        ``_options/predict_weighted_``.
    accelerate : bool
        Evaluate trees with scikit-learn's compiled traversal when it is installed (same
        decisions; much faster than the pure numpy traversal).

    Returns
    -------
    RandomForest
    """
    decoded = tuple(
        decode_vigra_tree(topology, parameters, predict_weighted=predict_weighted)
        for topology, parameters in trees
    )
    if not decoded:
        raise ForestFormatError("forest has no trees")
    labels = np.asarray(labels).ravel()
    num_columns = {int(np.asarray(t).ravel()[0]) for t, _ in trees}
    if len(num_columns) != 1:
        raise ForestFormatError(f"trees disagree on the number of features: {num_columns}")
    if any(tree.leaf_values.shape[1] != labels.size for tree in decoded):
        raise ForestFormatError(f"leaf vectors do not match the {labels.size} labels")
    num_features = num_columns.pop()
    compiled = compiled_leaf_finders(decoded, num_features) if accelerate else None
    return RandomForest(decoded, labels, num_features, compiled)


def compiled_leaf_finders(trees: Sequence[DecisionTree], num_features: int) -> list | None:
    """scikit-learn ``Tree.apply`` functions equivalent to the trees, or None.

    Uses scikit-learn's tree state format (node records and values); vigra's "below the
    threshold" becomes sklearn's "at most the next smaller double", which is the same test for
    float32 features.
    """
    try:
        from sklearn.tree._tree import NODE_DTYPE, Tree
    except ImportError:
        return None
    try:
        finders = []
        for tree in trees:
            nodes = np.zeros(tree.feature.size, dtype=NODE_DTYPE)
            leaf = tree.is_leaf
            nodes["left_child"] = np.where(leaf, -1, tree.children[:, 0])
            nodes["right_child"] = np.where(leaf, -1, tree.children[:, 1])
            nodes["feature"] = np.where(leaf, -2, tree.feature)
            nodes["threshold"] = np.where(leaf, -2.0, np.nextafter(tree.threshold, -np.inf))
            nodes["n_node_samples"] = 1
            nodes["weighted_n_node_samples"] = 1.0
            compiled = Tree(num_features, np.array([1], dtype=np.intp), 1)
            state = {
                "max_depth": tree.depth,
                "node_count": tree.feature.size,
                "nodes": nodes,
                "values": np.zeros((tree.feature.size, 1, 1)),
            }
            compiled.__setstate__(state)
            finders.append(_SklearnLeafFinder(compiled))
        probe = np.zeros((1, num_features), dtype=np.float32)
        for finder, tree in zip(finders, trees, strict=True):
            if finder(probe)[0] != tree.apply(probe)[0]:
                raise RuntimeError("compiled tree disagrees with the decoded tree")
        return finders
    except Exception as error:  # any incompatibility of sklearn's private format
        _warn_once(f"scikit-learn tree acceleration unavailable ({error}); using numpy")
        return None


_warned: set[str] = set()


def _warn_once(message: str) -> None:
    if message not in _warned:
        _warned.add(message)
        logger.warning(message)


class _SklearnLeafFinder:
    def __init__(self, tree):
        self.tree = tree

    def __call__(self, features: np.ndarray) -> np.ndarray:
        return self.tree.apply(features)


@dataclass(frozen=True)
class ForestEnsemble:
    """Several vigra forests predicting together, averaged weighted by tree count."""

    forests: tuple[RandomForest, ...]

    def __post_init__(self):
        if not self.forests:
            raise ForestFormatError("no forests")
        first = self.forests[0]
        for forest in self.forests[1:]:
            if forest.num_features != first.num_features:
                raise ForestFormatError("forests disagree on the number of features")
            if not np.array_equal(forest.labels, first.labels):
                raise ForestFormatError("forests disagree on the class labels")

    @property
    def labels(self) -> np.ndarray:
        return self.forests[0].labels

    @property
    def num_features(self) -> int:
        return self.forests[0].num_features

    @property
    def num_trees(self) -> int:
        return sum(len(f.trees) for f in self.forests)

    def predict_proba(self, features: np.ndarray, *, threads: int = 1) -> np.ndarray:
        """Class probabilities, shape (N, C), float32, in the order of ``labels``.

        Parameters
        ----------
        features : ndarray, shape (N, F)
            Feature rows (any memory layout; float32 avoids a copy).
        threads : int
            Threads for the tree traversal (helps with the scikit-learn acceleration only).
        """
        features = _as_float32_2d(features, self.num_features)
        return _by_row_blocks(self._block_proba, features, len(self.labels), threads)

    def _block_proba(self, features: np.ndarray) -> np.ndarray:
        total = None
        for forest in self.forests:
            weighted = forest._block_proba(features)
            weighted *= len(forest.trees)
            total = weighted if total is None else total + weighted
        total /= self.num_trees
        return total


def encode_vigra_tree(tree: DecisionTree, num_features: int) -> tuple[np.ndarray, np.ndarray]:
    """A tree as vigra's ``topology`` (int32) and ``parameters`` (float64) arrays.

    The inverse of :func:`decode_vigra_tree` (leaf weights are written as 1, which matters
    only for forests that predict weighted).
    """
    num_nodes, num_classes = tree.leaf_values.shape
    addresses = np.empty(num_nodes, dtype=np.int64)
    offsets = np.empty(num_nodes, dtype=np.int64)
    address, offset = 2, 0
    for node in range(num_nodes):
        addresses[node], offsets[node] = address, offset
        if tree.is_leaf[node]:
            address, offset = address + _LEAF_SIZE, offset + 1 + num_classes
        else:
            address, offset = address + _SPLIT_SIZE, offset + 2
    topology = np.zeros(address, dtype=np.int32)
    parameters = np.zeros(offset, dtype=np.float64)
    topology[0], topology[1] = num_features, num_classes
    for node in range(num_nodes):
        at, param = addresses[node], offsets[node]
        if tree.is_leaf[node]:
            topology[at : at + 2] = (CONSTANT_PROBABILITY_LEAF, param)
            parameters[param] = 1.0
            parameters[param + 1 : param + 1 + num_classes] = tree.leaf_values[node]
        else:
            left, right = tree.children[node]
            topology[at : at + 5] = (
                THRESHOLD_SPLIT,
                param,
                addresses[left],
                addresses[right],
                tree.feature[node],
            )
            parameters[param : param + 2] = (1.0, tree.threshold[node])
    return topology, parameters


def forest_from_sklearn(estimator) -> RandomForest:
    """A fitted scikit-learn ``RandomForestClassifier`` as a :class:`RandomForest`.

    scikit-learn goes left when ``feature <= threshold``; for float32 features that is
    ``feature < nextafter(threshold, +inf)``, the rule of :class:`DecisionTree`.
    """
    trees = []
    for fitted in estimator.estimators_:
        tree = fitted.tree_
        leaf = tree.children_left < 0
        node_ids = np.arange(tree.node_count, dtype=np.int32)
        values = tree.value[:, 0, :].astype(np.float64)
        sums = values.sum(axis=1, keepdims=True)
        values = np.divide(values, sums, out=np.zeros_like(values), where=sums > 0)
        trees.append(
            DecisionTree(
                feature=np.where(leaf, -1, tree.feature).astype(np.int32),
                threshold=np.where(leaf, np.inf, np.nextafter(tree.threshold, np.inf)),
                children=np.stack(
                    [
                        np.where(leaf, node_ids, tree.children_left),
                        np.where(leaf, node_ids, tree.children_right),
                    ],
                    axis=1,
                ).astype(np.int32),
                leaf_values=np.where(leaf[:, None], values, 0).astype(np.float32),
                depth=int(tree.max_depth),
            )
        )
    num_features = int(estimator.n_features_in_)
    compiled = compiled_leaf_finders(trees, num_features)
    return RandomForest(tuple(trees), np.asarray(estimator.classes_), num_features, compiled)
