"""Run (or retrain) an ilastik pixel classifier without ilastik.

:func:`load_pixel_classifier` reads the feature selection and the trained vigra forests of an
ilastik project (``.ilp``); :func:`train_pixel_classifier` trains a scikit-learn random forest
on the project's labels instead. Both return a :class:`PixelClassifier`, whose
:meth:`~PixelClassifier.predict` computes ilastik's features and class probabilities tile by
tile, so that memory use does not grow with the image size.
"""

from __future__ import annotations

import logging
import re
import shutil
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from steinbock_like.classify.ilastik.features import (
    FEATURE_IDS,
    FeatureSelection,
    compute_feature_planes,
    feature_names,
)
from steinbock_like.classify.ilastik.forest import (
    ForestEnsemble,
    ForestFormatError,
    RandomForest,
    decode_vigra_forest,
    encode_vigra_tree,
    forest_from_sklearn,
)
from steinbock_like.errors import InputError, MissingToolError
from steinbock_like.io.atomic import atomic_path

logger = logging.getLogger(__name__)

#: Output tile edge in pixels: features of one tile take ``tile**2 * columns * 4`` bytes
#: (160 columns: 168 MB at 512).
DEFAULT_TILE_SIZE = 512
#: scikit-learn forest used to retrain (ilastik's default is 100 trees, too).
DEFAULT_NUM_TREES = 100
DEFAULT_SEED = 123
#: ilastik's export of probabilities to uint16: ``uint16(float32(p) * 65535)``, truncating.
UINT16_SCALE = np.float32(65535)

_FORESTS = "PixelClassification/ClassifierForests"
_LABEL_SETS = "PixelClassification/LabelSets"
_LABEL_NAMES = "PixelClassification/LabelNames"
_LANES = "Input Data/infos"
_HDF5_PATH = re.compile(r"^(.*?\.(?:h5|hdf5|hdf|ilp))(?:/(.*))?$", re.IGNORECASE)


@dataclass(frozen=True)
class PixelClassifier:
    """ilastik features plus a random forest: multichannel image in, class probabilities out.

    Attributes
    ----------
    selection : FeatureSelection
        Features computed for every input channel.
    model : ForestEnsemble
        Forests over the feature columns; ``model.labels`` are ilastik label values (1-based).
    label_names : tuple of str
        Class names; output channel ``k`` is label ``k + 1``.
    num_channels : int
        Input channels the forests were trained on.
    source : Path or None
        Project file the classifier came from (named in errors).
    """

    selection: FeatureSelection
    model: ForestEnsemble
    label_names: tuple[str, ...]
    num_channels: int
    source: Path | None = None

    def __post_init__(self):
        expected = self.selection.num_columns(self.num_channels)
        if self.model.num_features != expected:
            raise InputError(
                self.source,
                f"the classifier uses {self.model.num_features} feature columns but the feature "
                f"selection gives {expected} for {self.num_channels} channels",
            )
        labels = np.asarray(self.model.labels)
        if labels.min() < 1 or labels.max() > len(self.label_names):
            raise InputError(
                self.source,
                f"classifier labels {labels.tolist()} do not match the "
                f"{len(self.label_names)} label names {list(self.label_names)}",
            )

    @property
    def num_classes(self) -> int:
        return len(self.label_names)

    @property
    def halo(self) -> int:
        """Context in pixels that a tile needs around it (the largest filter's reach)."""
        return self.selection.halo()

    def predict(
        self,
        image_cyx,
        *,
        tile_size: int = DEFAULT_TILE_SIZE,
        workers: int = 1,
        processes: bool = False,
        dtype=np.float32,
    ) -> np.ndarray:
        """Class probabilities of every pixel, shape (Y, X, classes).

        Parameters
        ----------
        image_cyx : array-like, shape (C, Y, X)
            Image in the classifier's channel layout (an ilastik ``img`` array). Anything that
            supports numpy slicing works, e.g. an ``h5py`` dataset, which is then read one tile
            (plus context) at a time.
        tile_size : int
            Edge of the output tiles. Each tile is computed with ``halo`` pixels of context, so
            the result does not depend on it; memory does (about ``tile_size**2 * F * 4`` bytes
            of features per tile for F feature columns).
        workers : int
            Tiles computed in parallel (1: one after the other in this thread).
        processes : bool
            Use worker processes instead of threads (threads share memory; processes avoid
            any contention on Python's GIL).
        dtype : float32 or uint16
            float32 gives probabilities in 0..1; uint16 gives ilastik's export
            (``uint16(p * 65535)``).

        Returns
        -------
        ndarray, shape (Y, X, classes)
            Channel ``k`` is the class ``label_names[k]``; classes without training labels are 0.
        """
        shape = tuple(image_cyx.shape)
        if len(shape) != 3:
            raise ValueError(f"expected a CYX image, got shape {shape}")
        if shape[0] != self.num_channels:
            raise InputError(
                self.source,
                f"the classifier was trained on {self.num_channels}-channel images but the image "
                f"has {shape[0]} channels",
            )
        dtype = np.dtype(dtype)
        if dtype not in (np.dtype(np.float32), np.dtype(np.uint16)):
            raise ValueError(f"dtype must be float32 or uint16, got {dtype}")
        if tile_size < 1:
            raise ValueError(f"tile_size must be positive, got {tile_size}")
        height, width = shape[1:]
        result = np.zeros((height, width, self.num_classes), dtype=dtype)
        channels = np.asarray(self.model.labels, dtype=np.intp) - 1
        regions = list(_tiles(height, width, tile_size))
        if workers > 1 and len(regions) > 1:
            tiles = self._predict_tiles_in_parallel(image_cyx, regions, workers, processes)
        else:
            tiles = ((r, self.predict_region(image_cyx, r)) for r in regions)
        for (rows, cols), probabilities in tiles:
            if dtype == np.uint16:
                probabilities = (probabilities * UINT16_SCALE).astype(np.uint16)
            result[rows, cols][..., channels] = probabilities
        return result

    def predict_region(self, image_cyx, region: tuple[slice, slice]) -> np.ndarray:
        """Probabilities (in the order of ``model.labels``) of one region, shape (Y, X, K).

        The rest of ``image_cyx`` serves as context; at least ``halo`` pixels of it around the
        region give the same values as predicting the whole image.
        """
        planes = compute_feature_planes(image_cyx, self.selection, region)
        num_columns, rows, cols = planes.shape
        # (F, N) planes viewed as (N, F) rows: no copy; the forests accept any layout.
        probabilities = self.model.predict_proba(planes.reshape(num_columns, -1).T)
        return probabilities.reshape(rows, cols, -1)

    def _predict_tiles_in_parallel(self, image_cyx, regions, workers: int, processes: bool):
        """Yield (region, probabilities) computed by worker threads or processes, in order.

        The main thread reads each tile's context (so lazy inputs such as h5py datasets are
        only read from one thread) and keeps at most two tiles per worker in flight.
        """
        height, width = image_cyx.shape[1:]
        halo = self.halo
        if processes:
            pool = ProcessPoolExecutor(
                workers, initializer=_set_worker_classifier, initargs=(self,)
            )
            predict = _predict_in_worker
        else:
            # scipy's filters, numpy's array loops and scikit-learn's tree traversal release
            # the GIL, so threads share the work without copying the classifier.
            pool = ThreadPoolExecutor(workers)
            predict = self.predict_region
        with pool:
            pending: deque = deque()
            for region in regions:
                (rows, cols), inner = zip(
                    _windows_for(region[0], height, halo),
                    _windows_for(region[1], width, halo),
                    strict=True,
                )
                context = np.asarray(image_cyx[:, rows, cols], dtype=np.float32)
                pending.append((region, pool.submit(predict, context, inner)))
                while len(pending) >= 2 * workers:
                    done_region, job = pending.popleft()
                    yield done_region, job.result()
            while pending:
                done_region, job = pending.popleft()
                yield done_region, job.result()

    def features(self, image_cyx) -> np.ndarray:
        """ilastik's feature columns of a whole image, shape (Y, X, F)."""
        return compute_feature_planes(image_cyx, self.selection).transpose(1, 2, 0)

    def feature_names(self) -> list[str]:
        """ilastik's names of the feature columns."""
        return feature_names(self.selection, self.num_channels)


_worker_classifier: PixelClassifier | None = None


def _set_worker_classifier(classifier: PixelClassifier) -> None:
    global _worker_classifier
    _worker_classifier = classifier


def _predict_in_worker(context: np.ndarray, region: tuple[slice, slice]) -> np.ndarray:
    return _worker_classifier.predict_region(context, region)


def _windows_for(span: slice, length: int, halo: int) -> tuple[slice, slice]:
    """The span widened by ``halo`` (clipped to ``length``) and the span relative to it."""
    lo = max(span.start - halo, 0)
    hi = min(span.stop + halo, length)
    return slice(lo, hi), slice(span.start - lo, span.stop - lo)


def predict_image_file(
    classifier: PixelClassifier,
    path: str | Path,
    *,
    tile_size: int = DEFAULT_TILE_SIZE,
    workers: int = 1,
) -> np.ndarray:
    """Probabilities of an ilastik image file as ilastik exports them: uint16, YXC.

    Parameters
    ----------
    classifier : PixelClassifier
        From :func:`load_pixel_classifier` or :func:`train_pixel_classifier`.
    path : path-like
        HDF5 image in steinbock's layout (``ilastik_img/*.h5``: dataset ``img``, float32 CYX);
        read one tile at a time.
    tile_size, workers
        See :meth:`PixelClassifier.predict`.

    Raises
    ------
    InputError
        If the file is unreadable, not CYX, or has another channel count than the classifier.
    """
    from steinbock_like.io.ilastik import axes_from_axistags, find_dataset_name

    path = Path(path)
    try:
        file = h5py.File(path, "r")
    except OSError as error:
        raise InputError(path, f"not a readable HDF5 file ({error})") from error
    with file:
        dataset = file[find_dataset_name(file, path)]
        if "axistags" in dataset.attrs:
            axes = axes_from_axistags(dataset.attrs["axistags"], path)
            if axes != ["c", "y", "x"]:
                raise InputError(path, f"expected CYX data, the axistags say {''.join(axes)}")
        if dataset.ndim != 3:
            raise InputError(path, f"expected CYX data, found shape {dataset.shape}")
        if dataset.shape[0] != classifier.num_channels:
            raise InputError(
                path,
                f"image has {dataset.shape[0]} channels but the classifier "
                f"({classifier.source}) was trained on {classifier.num_channels}",
            )
        return classifier.predict(dataset, tile_size=tile_size, workers=workers, dtype=np.uint16)


def _tiles(height: int, width: int, tile_size: int) -> Iterator[tuple[slice, slice]]:
    for y0 in range(0, height, tile_size):
        for x0 in range(0, width, tile_size):
            yield slice(y0, min(y0 + tile_size, height)), slice(x0, min(x0 + tile_size, width))


# --------------------------------------------------------------------------------------------
# Reading a project


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
    with _open_project(ilp_path) as project:
        selection = _read_feature_selection(project, ilp_path)
        label_names = _read_label_names(project)
        forests = _read_forests(project, ilp_path, accelerate)
        stored_names = _read_stored_feature_names(project)
    if forests is None:
        with _open_project(ilp_path) as project:
            has_labels = _has_labels(project)
        if has_labels:
            raise InputError(
                ilp_path,
                "the project has labels but no trained classifier; retrain it "
                "(--retrain) or train and save it in ilastik",
            )
        raise InputError(
            ilp_path, "the project has neither a trained classifier nor labels to train one"
        )
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
    if not label_names:
        label_names = tuple(f"Label {i}" for i in range(1, int(model.labels.max()) + 1))
    classifier = PixelClassifier(selection, model, label_names, num_channels, ilp_path)
    if stored_names is not None:
        _check_feature_names(stored_names, classifier.feature_names(), ilp_path)
    return classifier


def _open_project(ilp_path: Path) -> h5py.File:
    if not ilp_path.is_file():
        raise InputError(ilp_path, "project file not found")
    try:
        return h5py.File(ilp_path, "r")
    except OSError as error:
        raise InputError(ilp_path, f"not a readable ilastik project ({error})") from error


def _read_feature_selection(project: h5py.File, ilp_path: Path) -> FeatureSelection:
    group = project.get("FeatureSelections")
    if group is None or "FeatureIds" not in group or "SelectionMatrix" not in group:
        raise InputError(ilp_path, "the project has no feature selection (FeatureSelections)")
    feature_ids = [_text(f) for f in group["FeatureIds"][()]]
    scales = np.asarray(group["Scales"][()], dtype=np.float64).ravel()
    matrix = np.asarray(group["SelectionMatrix"][()], dtype=bool)
    if matrix.shape != (len(feature_ids), len(scales)):
        raise InputError(
            ilp_path,
            f"feature selection matrix of shape {matrix.shape} does not match "
            f"{len(feature_ids)} features x {len(scales)} scales",
        )
    # Unknown features matter only where they are selected.
    known = np.array([f in FEATURE_IDS for f in feature_ids], dtype=bool)
    selected_unknown = [
        f for f, row in zip(feature_ids, matrix, strict=True) if f not in FEATURE_IDS and row.any()
    ]
    if selected_unknown:
        raise InputError(
            ilp_path,
            f"unknown feature '{selected_unknown[0]}' in the feature selection; the native "
            f"backend knows {', '.join(FEATURE_IDS)}",
        )
    feature_ids = [f for f, k in zip(feature_ids, known, strict=True) if k]
    matrix = matrix[known]
    compute_in_2d = bool(np.all(group["ComputeIn2d"][()])) if "ComputeIn2d" in group else True
    try:
        return FeatureSelection(tuple(feature_ids), tuple(scales), matrix, compute_in_2d)
    except ValueError as error:
        raise InputError(ilp_path, f"invalid feature selection: {error}") from error


def _read_label_names(project: h5py.File) -> tuple[str, ...]:
    if _LABEL_NAMES not in project:
        return ()
    return tuple(_text(name) for name in np.asarray(project[_LABEL_NAMES][()]).ravel())


def _read_stored_feature_names(project: h5py.File) -> list[str] | None:
    key = f"{_FORESTS}/feature_names"
    if key not in project:
        return None
    return [_text(name) for name in project[key][()]]


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


def _read_forests(
    project: h5py.File, ilp_path: Path, accelerate: bool
) -> list[RandomForest] | None:
    group = project.get(_FORESTS)
    if group is None:
        return None
    names = sorted(k for k in group if k.startswith("Forest") and isinstance(group[k], h5py.Group))
    if not names:
        return None
    pickled_type = _text(group["pickled_type"][()]) if "pickled_type" in group else ""
    if pickled_type and "Vigra" not in pickled_type:
        # A pickled class reference: "c<module>\n<class name>\n...".
        lines = pickled_type.splitlines()
        kind = lines[1] if len(lines) > 1 else pickled_type[:80]
        raise InputError(
            ilp_path,
            f"the native backend runs vigra random forests only, not a {kind}; "
            "retrain (--retrain) or use ilastik",
        )
    forests = []
    for name in names:
        forest_group = group[name]
        trees = [
            (forest_group[t]["topology"][()], forest_group[t]["parameters"][()])
            for t in sorted(forest_group)
            if t.startswith("Tree_")
        ]
        try:
            labels = forest_group["_ext_param/labels"][()]
            weighted = "_options/predict_weighted_" in forest_group and bool(
                np.ravel(forest_group["_options/predict_weighted_"][()])[0]
            )
            forests.append(
                decode_vigra_forest(trees, labels, predict_weighted=weighted, accelerate=accelerate)
            )
        except (KeyError, ForestFormatError) as error:
            raise InputError(ilp_path, f"cannot decode {_FORESTS}/{name}: {error}") from error
    return forests


def _has_labels(project: h5py.File) -> bool:
    group = project.get(_LABEL_SETS)
    if group is None:
        return False
    for lane in group.values():
        if isinstance(lane, h5py.Group):
            for block in lane.values():
                if isinstance(block, h5py.Dataset) and block.size and np.any(block[()]):
                    return True
    return False


def _text(value) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8")
    if isinstance(value, np.ndarray) and value.shape == ():
        return _text(value[()])
    return str(value)


# --------------------------------------------------------------------------------------------
# Retraining from the project's labels


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
    samples = []
    with _open_project(ilp_path) as project:
        label_sets = project.get(_LABEL_SETS)
        lanes = project.get(_LANES)
        if label_sets is None or lanes is None:
            return []
        lane_names = sorted(lanes)
        for index, lane_name in enumerate(lane_names):
            label_set = label_sets.get(f"labels{index:03d}")
            blocks = [] if label_set is None else [label_set[b] for b in sorted(label_set)]
            blocks = [b for b in blocks if isinstance(b, h5py.Dataset) and np.any(b[()])]
            if not blocks:
                continue
            info = lanes[lane_name].get("Raw Data")
            if info is None or "filePath" not in info:
                raise InputError(ilp_path, f"lane {lane_name} has labels but no raw data path")
            image, axes = _read_lane_image(ilp_path, info, lane_name)
            labels = np.zeros(image.shape[1:], dtype=np.uint8)
            for block in blocks:
                _paste_label_block(labels, block, axes, ilp_path)
            samples.append(LabelledImage(image, labels, lane_name))
    return samples


def _read_lane_image(ilp_path: Path, info: h5py.Group, lane_name: str):
    from steinbock_like.io.ilastik import axes_from_axistags, read_ilastik_dataset

    file_path = _text(info["filePath"][()])
    match = _HDF5_PATH.match(file_path)
    if match is None:
        raise InputError(ilp_path, f"lane {lane_name}: only HDF5 crops are supported ({file_path})")
    path = Path(match.group(1))
    if not path.is_absolute():
        path = ilp_path.parent / path
    if not path.is_file():
        raise InputError(
            ilp_path,
            f"lane {lane_name}: crop {path} not found (run `classify ilastik fix` on a "
            "project moved from another machine)",
        )
    array, file_axes, _ = read_ilastik_dataset(path, match.group(2))
    axes = axes_from_axistags(info["axistags"][()], ilp_path) if "axistags" in info else file_axes
    if axes is None:
        if array.ndim != 3:
            raise InputError(path, f"no axistags and not CYX (shape {array.shape})")
        axes = ["c", "y", "x"]
    if len(axes) != array.ndim:
        raise InputError(path, f"lane axes {axes} do not match the crop's shape {array.shape}")
    return _to_cyx(array, axes, path).astype(np.float32, copy=False), axes


def _to_cyx(array: np.ndarray, axes: Sequence[str], path) -> np.ndarray:
    """Reorder to CYX, dropping singleton axes other than c, y and x."""
    axes = list(axes)
    for key in [k for k in axes if k not in "cyx"]:
        position = axes.index(key)
        if array.shape[position] != 1:
            raise InputError(path, f"axis '{key}' has size {array.shape[position]}; need 2-D")
        array = np.take(array, 0, axis=position)
        axes.pop(position)
    if "c" not in axes:
        array = array[np.newaxis]
        axes = ["c"] + axes
    if sorted(axes) != ["c", "x", "y"]:
        raise InputError(path, f"cannot read axes {axes} as CYX")
    return np.transpose(array, [axes.index(k) for k in "cyx"])


def _paste_label_block(labels: np.ndarray, block: h5py.Dataset, axes, ilp_path: Path) -> None:
    slicing = _text(block.attrs.get("blockSlice", ""))
    bounds = re.findall(r"(\d+)\s*:\s*(\d+)", slicing)
    data = block[()]
    if len(bounds) != data.ndim or len(axes) != data.ndim:
        raise InputError(
            ilp_path,
            f"label block {block.name}: blockSlice {slicing!r} does not match its shape "
            f"{data.shape} and the lane axes {list(axes)}",
        )
    yx = _to_cyx(data, axes, ilp_path)
    if yx.shape[0] != 1:
        raise InputError(ilp_path, f"label block {block.name} has {yx.shape[0]} channels")
    (y0, y1), (x0, x1) = (tuple(map(int, bounds[list(axes).index(k)])) for k in "yx")
    if y1 > labels.shape[0] or x1 > labels.shape[1] or (y1 - y0, x1 - x0) != yx.shape[1:]:
        raise InputError(
            ilp_path, f"label block {block.name} at {slicing} lies outside its crop {labels.shape}"
        )
    target = labels[y0:y1, x0:x1]
    np.copyto(target, yx[0], where=yx[0] > 0)


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
    with _open_project(ilp_path) as project:
        selection = _read_feature_selection(project, ilp_path)
        label_names = _read_label_names(project)
    if not selection.selected():
        raise InputError(ilp_path, "the feature selection is empty")
    samples = read_training_data(ilp_path)
    if not samples:
        raise InputError(ilp_path, "the project has no labels to train a classifier on")
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


def load_or_train_pixel_classifier(
    ilp_path: str | Path, *, retrain: bool = False, seed: int = DEFAULT_SEED, n_jobs: int = 1
) -> PixelClassifier:
    """The project's stored classifier, or one trained on its labels when it has none.

    Parameters
    ----------
    ilp_path : path-like
        ilastik project.
    retrain : bool
        Train on the labels even when a trained forest is stored.
    seed, n_jobs
        Training settings (see :func:`train_pixel_classifier`).
    """
    ilp_path = Path(ilp_path)
    if not retrain:
        with _open_project(ilp_path) as project:
            has_forest = _FORESTS in project and any(
                k.startswith("Forest") for k in project[_FORESTS]
            )
        if has_forest:
            return load_pixel_classifier(ilp_path)
        logger.info("%s: no trained classifier stored; training one on its labels", ilp_path)
    return train_pixel_classifier(ilp_path, seed=seed, n_jobs=n_jobs)


# --------------------------------------------------------------------------------------------
# Storing a classifier in a project

#: What lazyflow pickles to name its parallel vigra forest classifier (protocol 0).
_PICKLED_TYPE = (
    b"clazyflow.classifiers.parallelVigraRfLazyflowClassifier\n"
    b"ParallelVigraRfLazyflowClassifier\np0\n."
)
#: Trees per stored forest: ilastik trains one forest per thread (8 by default).
_STORED_FORESTS = 8


def store_pixel_classifier(ilp_path: str | Path, classifier: PixelClassifier) -> None:
    """Write the classifier's forests into the project in vigra's format, replacing any stored.

    The trees are split into up to 8 forests as ilastik does; since every leaf holds a class
    distribution, the tree-count-weighted average of the forests predicts as the whole forest.
    :func:`load_pixel_classifier` reads the result back. Whether ilastik's GUI accepts it
    without retraining has not been checked against a real ilastik.
    """
    ilp_path = Path(ilp_path)
    trees = [tree for forest in classifier.model.forests for tree in forest.trees]
    labels = np.asarray(classifier.model.labels, dtype=np.uint32)
    num_features = classifier.model.num_features
    # Edit a copy and rename it into place: an interrupted write never damages the project.
    with atomic_path(ilp_path) as tmp:
        shutil.copyfile(ilp_path, tmp)
        _write_forests(tmp, trees, labels, num_features, classifier.feature_names())


def _write_forests(path: Path, trees, labels, num_features: int, feature_names) -> None:
    try:
        project = h5py.File(path, "r+")
    except OSError as error:
        raise InputError(path, f"cannot open the project for writing ({error})") from error
    with project:
        if _FORESTS in project:
            del project[_FORESTS]
        group = project.create_group(_FORESTS)
        parts = np.array_split(np.arange(len(trees)), min(_STORED_FORESTS, len(trees)))
        for index, part in enumerate(parts):
            forest = group.create_group(f"Forest{index:04d}")
            forest.attrs["vigra_random_forest_version"] = np.array([0.1])
            digits = max(2, len(str(len(part) - 1)))
            for position, tree_index in enumerate(part):
                topology, parameters = encode_vigra_tree(trees[tree_index], num_features)
                forest[f"Tree_{position:0{digits}d}/topology"] = topology
                forest[f"Tree_{position:0{digits}d}/parameters"] = parameters
            _write_forest_params(forest, labels, num_features, len(part))
        group["feature_names"] = np.array([n.encode() for n in feature_names])
        group["known_labels"] = labels
        group["pickled_type"] = np.array(_PICKLED_TYPE, dtype=object)


def _write_forest_params(forest: h5py.Group, labels, num_features: int, num_trees: int) -> None:
    """vigra's ``_ext_param`` and ``_options`` records (values as ilastik 1.3.3 writes them)."""
    ext = {
        "class_count_": len(labels),
        "column_count_": num_features,
        "class_weights_": np.ones(len(labels)),
        "is_weighted_": 0,
        "precision_": 0,
        "problem_type_": 1,
        "response_size_": 1,
        "used_": 1,
        "actual_mtry_": max(1, int(np.sqrt(num_features))),
        "actual_msample_": 0,
        "row_count_": 0,
    }
    for key, value in ext.items():
        forest[f"_ext_param/{key}"] = np.atleast_1d(np.asarray(value, dtype=np.float64))
    forest["_ext_param/labels"] = labels
    options = {
        "min_split_node_size_": 1,
        "mtry_": 0,
        "mtry_func_": 0,
        "mtry_switch_": 6,
        "predict_weighted_": 0,
        "prepare_online_learning_": 0,
        "sample_with_replacement_": 1,
        "stratification_method_": 3,
        "training_set_calc_switch_": 1,
        "training_set_func_": 0,
        "training_set_proportion_": 1,
        "training_set_size_": 0,
        "tree_count_": num_trees,
    }
    for key, value in options.items():
        forest[f"_options/{key}"] = np.array([value], dtype=np.float64)
