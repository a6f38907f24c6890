"""The classifier of an ilastik project: load its forests, train one on its labels, store it.

:func:`load_pixel_classifier` reads the feature selection and the trained vigra forests of a
project (``.ilp``); :func:`train_pixel_classifier` trains a scikit-learn random forest on the
project's labels instead; :func:`store_pixel_classifier` writes a forest back in vigra's
format. The project file is read and written by :mod:`steinbock_like.io.ilastik_project`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from steinbock_like.classify.ilastik.axes import paste_label_block, to_cyx
from steinbock_like.classify.ilastik.classifier import PixelClassifier
from steinbock_like.classify.ilastik.features import (
    FEATURE_IDS,
    FeatureSelection,
    compute_feature_planes,
)
from steinbock_like.classify.ilastik.forest import (
    ForestEnsemble,
    ForestFormatError,
    decode_vigra_forest,
    encode_vigra_tree,
    forest_from_sklearn,
)
from steinbock_like.errors import InputError, MissingToolError, SteinbockLikeError
from steinbock_like.io import ilastik_project as ilp

logger = logging.getLogger(__name__)

#: scikit-learn forest used to retrain (ilastik's default is 100 trees, too).
DEFAULT_NUM_TREES = 100
DEFAULT_SEED = 123
#: Trees per stored forest: ilastik trains one forest per thread (8 by default).
STORED_FORESTS = 8
#: Attribute of ClassifierForests holding the fingerprint of the labels a forest was
#: trained on here (see :func:`training_key`).
TRAINING_KEY_ATTR = "steinbock_like_training_key"


# --------------------------------------------------------------------------------------------
# Loading a project's trained classifier


def load_pixel_classifier(ilp_path: str | Path, *, accelerate: bool = True) -> PixelClassifier:
    """The trained pixel classifier stored in an ilastik project.

    Parameters
    ----------
    ilp_path : path-like
        ilastik pixel-classification project (ilastik 1.3.3; 1.4 projects store the same
        structures).
    accelerate : bool
        Traverse trees with scikit-learn's compiled code when available (same result).

    Returns
    -------
    PixelClassifier

    Raises
    ------
    InputError
        If the file is not a readable project, has no feature selection, selects a feature
        this backend does not know, or has no trained forest (the message says whether it has
        labels to retrain from).
    """
    ilp_path = Path(ilp_path)
    project = ilp.read_project(ilp_path)
    selection = feature_selection_of(project)
    if not project.has_forests:
        if project.has_labels:
            raise InputError(
                ilp_path,
                "the project has labels but no trained classifier; retrain it "
                "(--retrain) or train and save it in ilastik",
            )
        raise InputError(
            ilp_path, "the project has neither a trained classifier nor labels to train one"
        )
    forests = []
    for stored in ilp.read_forests(ilp_path):
        try:
            forests.append(
                decode_vigra_forest(
                    stored.trees,
                    stored.labels,
                    predict_weighted=stored.predict_weighted,
                    accelerate=accelerate,
                )
            )
        except ForestFormatError as error:
            raise InputError(
                ilp_path, f"cannot decode {ilp.FORESTS}/{stored.name}: {error}"
            ) from error
    model = ForestEnsemble(tuple(forests))
    columns_per_channel = selection.num_columns(1)
    if columns_per_channel == 0:
        raise InputError(ilp_path, "the feature selection is empty")
    if model.num_features % columns_per_channel:
        raise InputError(
            ilp_path,
            f"the classifier uses {model.num_features} feature columns, not a multiple of the "
            f"{columns_per_channel} columns per channel of the feature selection",
        )
    num_channels = model.num_features // columns_per_channel
    label_names = tuple(project.labels) or tuple(
        f"Label {i}" for i in range(1, int(model.labels.max()) + 1)
    )
    classifier = PixelClassifier(selection, model, label_names, num_channels, ilp_path)
    if project.feature_names is not None:
        _check_feature_names(project.feature_names, classifier.feature_names(), ilp_path)
    return classifier


def feature_selection_of(project: ilp.IlastikProject) -> FeatureSelection:
    """A project's feature selection, with features this backend does not compute dropped
    where they are not selected.

    Raises
    ------
    InputError
        If the project has no feature selection, or selects a feature not known here.
    """
    if project.selection is None:
        raise InputError(project.path, "the project has no feature selection (FeatureSelections)")
    feature_ids, matrix = project.feature_ids, project.selection
    selected_unknown = [
        f for f, row in zip(feature_ids, matrix, strict=True) if f not in FEATURE_IDS and row.any()
    ]
    if selected_unknown:
        raise InputError(
            project.path,
            f"unknown feature '{selected_unknown[0]}' in the feature selection; the native "
            f"backend knows {', '.join(FEATURE_IDS)}",
        )
    known = np.array([f in FEATURE_IDS for f in feature_ids], dtype=bool)
    try:
        return FeatureSelection(
            tuple(f for f, k in zip(feature_ids, known, strict=True) if k),
            tuple(project.scales),
            matrix[known],
            project.compute_in_2d,
        )
    except ValueError as error:
        raise InputError(project.path, f"invalid feature selection: {error}") from error


def _check_feature_names(stored: Sequence[str], ours: Sequence[str], ilp_path: Path) -> None:
    # "in 2D"/"in 3D" only reflects ComputeIn2d; for 2-D images both compute the same.
    def normalised(names):
        return [n.replace(" in 3D ", " in 2D ") for n in names]

    if normalised(stored) != normalised(ours):
        first = next(
            (i for i, (a, b) in enumerate(zip(stored, ours, strict=False)) if a != b),
            min(len(stored), len(ours)),
        )
        logger.warning(
            "%s: the stored feature names differ from the computed ones from column %d "
            "(stored %r, computed %r); predictions may be wrong",
            ilp_path,
            first,
            stored[first] if first < len(stored) else None,
            ours[first] if first < len(ours) else None,
        )


# --------------------------------------------------------------------------------------------
# Training from the project's labels


@dataclass(frozen=True)
class LabelledImage:
    """A training crop and its sparse labels (0 = unlabelled, k = label k)."""

    image_cyx: np.ndarray
    labels_yx: np.ndarray
    name: str


def read_training_data(ilp_path: str | Path) -> list[LabelledImage]:
    """The labelled crops of a project: one per input lane that carries labels.

    Crops are read from the lanes' ``filePath`` (relative to the project file unless absolute;
    an internal dataset path after the ``.h5`` is honoured) and brought to CYX with the lane's
    axistags; label blocks (``LabelSets/labelsNNN/block*`` with their ``blockSlice``) are
    placed in a label image of the crop's size.

    Raises
    ------
    InputError
        If a labelled lane's crop is missing or its axes cannot be brought to CYX.
    """
    ilp_path = Path(ilp_path)
    project = ilp.read_project(ilp_path)
    samples = []
    for index, (lane_name, lane) in enumerate(zip(project.lane_names, project.lanes, strict=True)):
        blocks = [b for b in project.label_blocks if b.lane == index and np.any(b.data)]
        if not blocks:
            continue
        if lane is None:
            raise InputError(ilp_path, f"lane {lane_name} has labels but no raw data path")
        image, axes = _read_lane_image(ilp_path, lane, lane_name)
        labels = np.zeros(image.shape[1:], dtype=np.uint8)
        for block in blocks:
            try:
                paste_label_block(labels, block.data, block.block_slice, axes)
            except SteinbockLikeError as error:
                raise InputError(ilp_path, f"{lane_name}, {block.name}: {error}") from error
        samples.append(LabelledImage(image, labels, lane_name))
    return samples


def _read_lane_image(ilp_path: Path, lane: ilp.Lane, lane_name: str):
    from steinbock_like.io.ilastik import read_ilastik_dataset

    path, dataset = ilp.split_lane_path(ilp_path, lane.file_path)
    if not path.is_file():
        raise InputError(
            ilp_path,
            f"lane {lane_name}: crop {path} not found (run `classify ilastik fix` on a "
            "project moved from another machine)",
        )
    array, file_axes, _ = read_ilastik_dataset(path, dataset)
    axes = lane.axes if lane.axistags else file_axes
    if axes is None:
        if array.ndim != 3:
            raise InputError(path, f"no axistags and not CYX (shape {array.shape})")
        axes = ["c", "y", "x"]
    if len(axes) != array.ndim:
        raise InputError(path, f"lane axes {axes} do not match the crop's shape {array.shape}")
    try:
        return to_cyx(array, axes), axes
    except SteinbockLikeError as error:
        raise InputError(path, str(error)) from error


def fit_pixel_classifier(
    samples: Sequence[LabelledImage],
    selection: FeatureSelection,
    label_names: Sequence[str],
    *,
    num_trees: int = DEFAULT_NUM_TREES,
    seed: int = DEFAULT_SEED,
    n_jobs: int = 1,
    source: Path | None = None,
) -> PixelClassifier:
    """Train a random forest (scikit-learn) on the labelled pixels' ilastik features.

    Parameters
    ----------
    samples : sequence of LabelledImage
        Crops with sparse labels (all with the same number of channels).
    selection : FeatureSelection
        Features to compute.
    label_names : sequence of str
        Class names; label ``k`` is ``label_names[k - 1]``.
    num_trees, seed, n_jobs
        scikit-learn ``RandomForestClassifier`` settings (fixed seed: reproducible).
    source : Path, optional
        Project named in errors.

    Returns
    -------
    PixelClassifier
        Its forest is a :class:`ForestEnsemble` converted from scikit-learn, so prediction
        follows the same code path as a forest trained by ilastik.
    """
    try:
        from sklearn.ensemble import RandomForestClassifier
    except ImportError as error:
        raise MissingToolError(
            "retraining an ilastik classifier needs scikit-learn: pip install scikit-learn"
        ) from error

    if not samples:
        raise InputError(source, "the project has no labels to train a classifier on")
    num_channels = {s.image_cyx.shape[0] for s in samples}
    if len(num_channels) != 1:
        raise InputError(source, f"labelled crops differ in channel count: {sorted(num_channels)}")
    rows, targets = [], []
    for sample in samples:
        planes = compute_feature_planes(sample.image_cyx, selection)
        labelled = sample.labels_yx > 0
        rows.append(planes[:, labelled].T)
        targets.append(sample.labels_yx[labelled])
    features = np.ascontiguousarray(np.concatenate(rows), dtype=np.float32)
    target = np.concatenate(targets).astype(np.int64)
    if np.unique(target).size < 2:
        raise InputError(source, "labels of at least two classes are needed to train")
    if target.max() > len(label_names):
        raise InputError(
            source, f"label {target.max()} has no name (label names: {list(label_names)})"
        )
    estimator = RandomForestClassifier(n_estimators=num_trees, random_state=seed, n_jobs=n_jobs)
    estimator.fit(features, target)
    logger.info("trained %d trees on %d labelled pixels", num_trees, target.size)
    model = ForestEnsemble((forest_from_sklearn(estimator),))
    return PixelClassifier(selection, model, tuple(label_names), num_channels.pop(), source)


def train_pixel_classifier(
    ilp_path: str | Path,
    *,
    num_trees: int = DEFAULT_NUM_TREES,
    seed: int = DEFAULT_SEED,
    n_jobs: int = 1,
) -> PixelClassifier:
    """Train a classifier on a project's labels and feature selection (ignoring stored forests).

    Parameters
    ----------
    ilp_path : path-like
        ilastik project whose lanes point at readable crops (see :func:`read_training_data`).
    num_trees, seed, n_jobs
        scikit-learn ``RandomForestClassifier`` settings.

    Raises
    ------
    InputError
        If the project has no feature selection or no labels, or a labelled crop is unreadable.
    """
    ilp_path = Path(ilp_path)
    project = ilp.read_project(ilp_path)
    selection = feature_selection_of(project)
    if not selection.selected():
        raise InputError(ilp_path, "the feature selection is empty")
    samples = read_training_data(ilp_path)
    if not samples:
        raise InputError(ilp_path, "the project has no labels to train a classifier on")
    label_names = tuple(project.labels)
    if not label_names:
        top = max(int(s.labels_yx.max()) for s in samples)
        label_names = tuple(f"Label {i}" for i in range(1, top + 1))
    return fit_pixel_classifier(
        samples,
        selection,
        label_names,
        num_trees=num_trees,
        seed=seed,
        n_jobs=n_jobs,
        source=ilp_path,
    )


def training_key(
    project: ilp.IlastikProject, *, num_trees: int = DEFAULT_NUM_TREES, seed: int = DEFAULT_SEED
) -> str:
    """A fingerprint of what a forest trained on ``project`` depends on.

    SHA-256 over the label names, the feature selection, the lanes' crop paths, every
    label block (lane, slice and values) and the training settings: it changes when
    the labels are edited and stays the same otherwise.
    """
    import hashlib

    digest = hashlib.sha256()

    def add(*parts) -> None:
        for part in parts:
            if isinstance(part, np.ndarray):
                digest.update(str((part.dtype.str, part.shape)).encode())
                digest.update(np.ascontiguousarray(part).tobytes())
            else:
                digest.update(repr(part).encode())
            digest.update(b"\0")

    add("training-v1", num_trees, seed, list(project.labels))
    add(list(project.feature_ids), list(project.scales), bool(project.compute_in_2d))
    if project.selection is not None:
        add(np.asarray(project.selection, dtype=bool))
    add([lane.file_path if lane is not None else None for lane in project.lanes])
    for block in sorted(project.label_blocks, key=lambda b: (b.lane, b.name)):
        add(block.lane, block.name, block.block_slice, np.asarray(block.data))
    return digest.hexdigest()


def load_or_train_pixel_classifier(
    ilp_path: str | Path,
    *,
    retrain: bool = False,
    seed: int = DEFAULT_SEED,
    n_jobs: int = 1,
    store: bool = True,
) -> PixelClassifier:
    """The project's stored classifier, or one trained on its labels (and stored).

    A forest trained here is stored in the project (atomically) with a fingerprint of
    its labels (:func:`training_key`, attribute ``TRAINING_KEY_ATTR``), and reused by
    later runs until the labels or the feature selection change. A forest trained by
    ilastik (no fingerprint) is always used as it is, and never replaced.

    Parameters
    ----------
    ilp_path : path-like
        ilastik project.
    retrain : bool
        Train on the labels even when a trained forest is stored.
    seed, n_jobs
        Training settings (see :func:`train_pixel_classifier`).
    store : bool
        Store a newly trained forest in the project.
    """
    ilp_path = Path(ilp_path)
    project = ilp.read_project(ilp_path)
    stored_key = project.forest_attributes.get(TRAINING_KEY_ATTR) if project.has_forests else None
    key = training_key(project, seed=seed) if project.has_labels else None
    if not retrain and project.has_forests:
        if stored_key is None:
            return load_pixel_classifier(ilp_path)
        if stored_key == key:
            logger.info("%s: reusing the forest trained on these labels", ilp_path)
            return load_pixel_classifier(ilp_path)
        logger.info("%s: the labels changed since the forest was trained; training again", ilp_path)
    elif not retrain:
        logger.info("%s: no trained classifier stored; training one on its labels", ilp_path)
    classifier = train_pixel_classifier(ilp_path, seed=seed, n_jobs=n_jobs)
    if store and key is not None and (stored_key is not None or not project.has_forests):
        try:
            store_pixel_classifier(ilp_path, classifier, attributes={TRAINING_KEY_ATTR: key})
        except OSError as error:
            logger.warning(
                "%s: could not store the trained forest (%s); it will be trained again",
                ilp_path,
                error,
            )
        else:
            logger.info("%s: trained forest stored for later runs", ilp_path)
    elif store and project.has_forests:
        logger.info("%s: the forest trained by ilastik is left in the project", ilp_path)
    return classifier


# --------------------------------------------------------------------------------------------
# Storing a classifier in a project


def store_pixel_classifier(
    ilp_path: str | Path, classifier: PixelClassifier, attributes: dict | None = None
) -> None:
    """Write the classifier's forests into the project in vigra's format, replacing any stored.

    The trees are split into up to 8 forests as ilastik does; since every leaf holds a class
    distribution, the tree-count-weighted average of the forests predicts as the whole forest.
    :func:`load_pixel_classifier` reads the result back. Whether ilastik's GUI accepts it
    without retraining has not been checked against a real ilastik.
    """
    trees = [tree for forest in classifier.model.forests for tree in forest.trees]
    labels = np.asarray(classifier.model.labels, dtype=np.uint32)
    num_features = classifier.model.num_features
    parts = np.array_split(np.arange(len(trees)), min(STORED_FORESTS, len(trees)))
    records = [
        ilp.ForestRecord(
            [encode_vigra_tree(trees[i], num_features) for i in part], labels, num_features
        )
        for part in parts
    ]
    ilp.write_forests(ilp_path, records, classifier.feature_names(), attributes)
