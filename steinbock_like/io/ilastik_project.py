"""ilastik pixel-classification project files (``.ilp``, HDF5): the one reader and writer.

A project holds one group per ilastik applet. The layout read and written here is the one
ilastik 1.3.3post3 itself saves (checked against a real project, and against the
deserialisers of ilastik 1.3.3post3 and 1.4.x):

- ``Input Data``: ``Role Names`` (Raw Data, Prediction Mask), ``StorageVersion`` 0.2,
  ``infos/laneNNNN/{Raw Data, Prediction Mask}`` (one lane per training image; an empty
  group is an unset role), ``local_data`` (images copied into the project).
- ``FeatureSelections``: ``FeatureIds``, ``Scales``, ``SelectionMatrix`` (ids x scales),
  ``ComputeIn2d`` (per scale); an empty group leaves the choice to the GUI.
- ``PixelClassification``: ``LabelNames``, ``LabelColors``, ``PmapColors`` (with an
  ``isEmpty`` attribute), ``LabelSets/labelsNNN/blockMMMM`` (uint8 label blocks in the
  lane's axis order, channel axis of size 1, with a ``blockSlice`` attribute such as
  ``[0:1,8:94,11:121,0:1]``), and, once trained, ``ClassifierForests`` (vigra forests:
  ``ForestNNNN/Tree_NN/{topology, parameters}``, ``_ext_param``, ``_options``).
- ``Prediction Export``: export settings (dtype, range, axis order, format, file names).
- top level: ``ilastikVersion``, ``workflowName``, ``time``, ``currentApplet``.

:func:`read_project` returns all of it as plain values (:class:`IlastikProject`); the
writers take plain values too, so that creating, fixing, training and classifying work on
arrays and never on HDF5 objects. Every write goes to a temporary copy that is renamed
into place: an interrupted write never damages a project (it may hold hours of labels).
"""

from __future__ import annotations

import contextlib
import re
import shutil
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np

from steinbock_like.errors import InputError
from steinbock_like.io.atomic import atomic_path
from steinbock_like.io.ilastik import AXISTAGS_CYX, DISPLAY_MODE, H5_LIBVER, axes_from_axistags
from steinbock_like.io.ilastik import as_text as _text

ILASTIK_VERSION = "1.3.3post3"  # the project format written (1.4.x reads it too)
WORKFLOW_NAME = "Pixel Classification"
DATA_SELECTION_APPLET = 1

RELATIVE_INFO_CLASS = "RelativeFilesystemDatasetInfo"
ABSOLUTE_INFO_CLASS = "FilesystemDatasetInfo"
RAW_DATA = "Raw Data"
PREDICTION_MASK = "Prediction Mask"

FORESTS = "PixelClassification/ClassifierForests"
LABEL_SETS = "PixelClassification/LabelSets"
LABEL_NAMES = "PixelClassification/LabelNames"
LANES = "Input Data/infos"
LOCAL_DATA = "Input Data/local_data"
EXPORT = "Prediction Export"

PROBABILITIES_FILENAME_FORMAT = "{directory}/{{nickname}}.tiff"
EXPORT_SETTINGS = {
    # name: (value, dtype); strings are stored as variable-length strings
    "InputMin": (0.0, np.float32),
    "InputMax": (1.0, np.float32),
    "ExportMin": (0, np.uint16),
    "ExportMax": (65535, np.uint16),
    "ExportDtype": ("uint16", "utf-8"),
    "OutputAxisOrder": ("yxc", "ascii"),
    "OutputFormat": ("tiff", "ascii"),
    "OutputInternalPath": ("exported_data", "ascii"),
    "StorageVersion": ("0.1", "utf-8"),
}

#: What lazyflow pickles to name its parallel vigra forest classifier (protocol 0).
VIGRA_PICKLED_TYPE = (
    b"clazyflow.classifiers.parallelVigraRfLazyflowClassifier\n"
    b"ParallelVigraRfLazyflowClassifier\np0\n."
)
#: A lane's ``filePath``: an HDF5 file, optionally followed by the dataset inside it.
_HDF5_PATH = re.compile(r"^(.*?\.(?:h5|hdf5|hdf|ilp))(?:/(.*))?$", re.IGNORECASE)


@dataclass
class Lane:
    """One training image of a project (its ``Raw Data`` role), as ilastik stores it."""

    file_path: str  # "dir/file.h5/dataset", relative to the project's directory if possible
    nickname: str
    shape: tuple[int, ...]
    relative: bool = True
    axistags: str = AXISTAGS_CYX
    allow_labels: bool = True
    dataset_id: str = field(default_factory=lambda: str(uuid.uuid1()))
    info_class: str | None = None  # as read; written from ``relative``

    @property
    def axes(self) -> list[str]:
        return axes_from_axistags(self.axistags)


@dataclass
class LabelBlock:
    """One stored block of training labels of a lane, in the lane's axis order."""

    lane: int
    name: str
    data: np.ndarray
    block_slice: str  # e.g. "[0:1,8:94,11:121,0:1]"


@dataclass(frozen=True)
class StoredForest:
    """One vigra forest as stored: raw tree arrays, class labels, weighting."""

    name: str
    trees: list[tuple[np.ndarray, np.ndarray]]  # (topology, parameters) per tree
    labels: np.ndarray
    predict_weighted: bool


@dataclass
class IlastikProject:
    """The parts of a project this toolkit reads, writes or fixes, as plain values.

    ``lanes`` has one entry per lane in lane order (None where a lane has no raw data);
    ``feature_ids``/``scales``/``selection`` are empty/None when no features are chosen.
    """

    path: Path
    version: str | None = None
    workflow: str | None = None
    labels: list[str] = field(default_factory=list)
    colors: list[list[int]] = field(default_factory=list)
    feature_ids: list[str] = field(default_factory=list)
    scales: list[float] = field(default_factory=list)
    selection: np.ndarray | None = None
    compute_in_2d: bool = True
    lanes: list[Lane | None] = field(default_factory=list)
    lane_names: list[str] = field(default_factory=list)
    label_blocks: list[LabelBlock] = field(default_factory=list)
    export: dict = field(default_factory=dict)
    forest_names: list[str] = field(default_factory=list)
    feature_names: list[str] | None = None  # ClassifierForests/feature_names
    forest_attributes: dict = field(default_factory=dict)  # attributes of ClassifierForests
    pickled_type: str = ""

    @property
    def has_forests(self) -> bool:
        return bool(self.forest_names)

    @property
    def has_labels(self) -> bool:
        return any(block.data.size and np.any(block.data) for block in self.label_blocks)


def _open(path: Path, mode: str = "r") -> h5py.File:
    if not path.is_file():
        raise InputError(path, "project file not found")
    try:
        return h5py.File(path, mode)
    except OSError as error:
        raise InputError(path, f"not a readable ilastik project ({error})") from error


def read_project(path: str | Path) -> IlastikProject:
    """Everything of a project but its forests' trees (see :func:`read_forests`).

    Raises
    ------
    InputError
        If the file is missing or not HDF5.
    """
    path = Path(path)
    with _open(path) as file:
        project = IlastikProject(path)
        if "ilastikVersion" in file:
            project.version = _text(file["ilastikVersion"][()])
        if "workflowName" in file:
            project.workflow = _text(file["workflowName"][()])
        classification = file.get("PixelClassification", {})
        if "LabelNames" in classification:
            names = np.asarray(classification["LabelNames"][()]).ravel()
            project.labels = [_text(name) for name in names]
        if "LabelColors" in classification:
            project.colors = classification["LabelColors"][()].tolist()
        _read_selection(file, project)
        _read_lanes(file, project)
        _read_label_blocks(file, project)
        for name, dataset in file.get(EXPORT, {}).items():
            value = dataset[()]
            project.export[name] = (
                _text(value) if isinstance(value, bytes | str) else np.asarray(value).item()
            )
        forests = file.get(FORESTS)
        if forests is not None:
            project.forest_names = sorted(
                k for k in forests if k.startswith("Forest") and isinstance(forests[k], h5py.Group)
            )
            if "feature_names" in forests:
                project.feature_names = [_text(n) for n in forests["feature_names"][()]]
            if "pickled_type" in forests:
                project.pickled_type = _text(forests["pickled_type"][()])
            project.forest_attributes = {
                key: _text(value) if isinstance(value, bytes | str) else value
                for key, value in forests.attrs.items()
            }
    return project


def _read_selection(file: h5py.File, project: IlastikProject) -> None:
    group = file.get("FeatureSelections")
    if group is None or "FeatureIds" not in group or "SelectionMatrix" not in group:
        return
    project.feature_ids = [_text(f) for f in group["FeatureIds"][()]]
    project.scales = np.asarray(group["Scales"][()], dtype=np.float64).ravel().tolist()
    project.selection = np.asarray(group["SelectionMatrix"][()], dtype=bool)
    if project.selection.shape != (len(project.feature_ids), len(project.scales)):
        raise InputError(
            project.path,
            f"feature selection matrix of shape {project.selection.shape} does not match "
            f"{len(project.feature_ids)} features x {len(project.scales)} scales",
        )
    if "ComputeIn2d" in group:
        project.compute_in_2d = bool(np.all(group["ComputeIn2d"][()]))


def _read_lanes(file: h5py.File, project: IlastikProject) -> None:
    infos = file.get(LANES, {})
    for lane_name in sorted(infos):
        project.lane_names.append(lane_name)
        raw = infos[lane_name].get(RAW_DATA)
        if raw is None or "filePath" not in raw:
            project.lanes.append(None)
            continue
        lane = Lane(
            file_path=_text(raw["filePath"][()]),
            nickname=_text(raw["nickname"][()]) if "nickname" in raw else "",
            shape=tuple(int(s) for s in raw["shape"][()]) if "shape" in raw else (),
            axistags=_text(raw["axistags"][()]) if "axistags" in raw else "",
            allow_labels=bool(raw["allowLabels"][()]) if "allowLabels" in raw else True,
            info_class=_text(raw["__class__"][()]) if "__class__" in raw else None,
        )
        if "datasetId" in raw:
            lane.dataset_id = _text(raw["datasetId"][()])
        lane.relative = lane.info_class != ABSOLUTE_INFO_CLASS
        project.lanes.append(lane)


def _read_label_blocks(file: h5py.File, project: IlastikProject) -> None:
    label_sets = file.get(LABEL_SETS, {})
    for set_name in sorted(label_sets):
        group = label_sets[set_name]
        if not isinstance(group, h5py.Group):
            continue
        lane = int(set_name.removeprefix("labels"))
        for block_name in sorted(group):
            dataset = group[block_name]
            if isinstance(dataset, h5py.Dataset):
                block_slice = _text(dataset.attrs.get("blockSlice", ""))
                project.label_blocks.append(LabelBlock(lane, block_name, dataset[()], block_slice))


def read_forests(path: str | Path) -> list[StoredForest]:
    """The stored vigra forests of a project (empty when it has none).

    Raises
    ------
    InputError
        If the stored classifier is not a vigra forest, or a forest lacks its labels.
    """
    path = Path(path)
    with _open(path) as file:
        group = file.get(FORESTS)
        if group is None:
            return []
        names = sorted(
            k for k in group if k.startswith("Forest") and isinstance(group[k], h5py.Group)
        )
        pickled_type = _text(group["pickled_type"][()]) if "pickled_type" in group else ""
        if names and pickled_type and "Vigra" not in pickled_type:
            # A pickled class reference: "c<module>\n<class name>\n...".
            lines = pickled_type.splitlines()
            kind = lines[1] if len(lines) > 1 else pickled_type[:80]
            raise InputError(
                path,
                f"the native backend runs vigra random forests only, not a {kind}; "
                "retrain (--retrain) or use ilastik",
            )
        forests = []
        for name in names:
            forest = group[name]
            trees = [
                (forest[t]["topology"][()], forest[t]["parameters"][()])
                for t in sorted(forest)
                if t.startswith("Tree_")
            ]
            if "_ext_param/labels" not in forest:
                raise InputError(path, f"{FORESTS}/{name} has no _ext_param/labels")
            weighted = "_options/predict_weighted_" in forest and bool(
                np.ravel(forest["_options/predict_weighted_"][()])[0]
            )
            forests.append(StoredForest(name, trees, forest["_ext_param/labels"][()], weighted))
    return forests


def split_lane_path(project_path: str | Path, file_path: str) -> tuple[Path, str | None]:
    """The HDF5 file (absolute, or relative to the project's directory) and dataset of a lane.

    Raises
    ------
    InputError
        If the lane does not point into an HDF5 file.
    """
    match = _HDF5_PATH.match(file_path)
    if match is None:
        raise InputError(project_path, f"only HDF5 crops are supported ({file_path})")
    path = Path(match.group(1))
    if not path.is_absolute():
        path = Path(project_path).parent / path
    return path, match.group(2)


def external_file_name(file_path: str) -> str:
    """The HDF5 file's name in a lane path such as ``/a/b/name.h5/dataset``."""
    parts = re.split(r"[\\/]", file_path)
    for part in reversed(parts):
        if part.lower().endswith((".h5", ".hdf5", ".hdf")):
            return part
    return parts[-1]


# --- writing ---------------------------------------------------------------------------------


def _put(group: h5py.Group, name: str, value, dtype=None) -> h5py.Dataset:
    """Create or replace a dataset; str values become variable-length strings (ASCII
    default, UTF-8 where the text is not ASCII)."""
    if name in group:
        del group[name]
    if isinstance(value, str):
        encoding = dtype if dtype in ("ascii", "utf-8") else "ascii"
        if not value.isascii():  # e.g. a lane named after "example_001 ü 日.tiff"
            encoding = "utf-8"
        return group.create_dataset(name, data=value, dtype=h5py.string_dtype(encoding))
    if dtype is not None:
        value = np.asarray(value, dtype=dtype)
    return group.create_dataset(name, data=value)


def _fixed_strings(values: Sequence[str]) -> np.ndarray:
    return np.array([v.encode("utf-8") for v in values])


def _write_lane(raw_data: h5py.Group, lane: Lane) -> None:
    _put(raw_data, "__class__", RELATIVE_INFO_CLASS if lane.relative else ABSOLUTE_INFO_CLASS)
    _put(raw_data, "allowLabels", np.bool_(lane.allow_labels))
    _put(raw_data, "axistags", lane.axistags)
    _put(raw_data, "datasetId", lane.dataset_id)
    _put(raw_data, "display_mode", DISPLAY_MODE)
    _put(raw_data, "filePath", lane.file_path)
    _put(raw_data, "location", "FileSystem")
    _put(raw_data, "nickname", lane.nickname)
    _put(raw_data, "normalizeDisplay", np.bool_(False))
    _put(raw_data, "shape", np.asarray(lane.shape, dtype=np.int64))


def _write_export_settings(file: h5py.File, probabilities_dir: str) -> None:
    """Prediction export as ``run`` does it: uint16 TIFF, YXC, 0..1 -> 0..65535."""
    export = file.require_group(EXPORT)
    for name, (value, dtype) in EXPORT_SETTINGS.items():
        _put(export, name, value, dtype)
    filename_format = PROBABILITIES_FILENAME_FORMAT.format(directory=probabilities_dir)
    _put(export, "OutputFilenameFormat", filename_format, "ascii")


def write_new_project(
    path: str | Path,
    lanes: Sequence[Lane],
    *,
    labels: Sequence[str],
    colors: Sequence[Sequence[int]],
    feature_ids: Sequence[str],
    scales: Sequence[float],
    selection: np.ndarray | None,
    probabilities_dir: str,
) -> None:
    """Write a new pixel-classification project atomically.

    ``selection`` is the boolean matrix (``feature_ids`` x ``scales``), or None to leave
    the choice of features to ilastik's GUI. ``probabilities_dir`` is the GUI's export
    directory, relative to the project's directory.
    """
    if len(labels) != len(colors):
        raise ValueError(f"{len(labels)} labels but {len(colors)} colours")
    with atomic_path(path) as tmp, h5py.File(tmp, "w", libver=H5_LIBVER) as file:
        _put(file, "ilastikVersion", ILASTIK_VERSION)
        _put(file, "workflowName", WORKFLOW_NAME)
        _put(file, "time", time.ctime())
        _put(file, "currentApplet", np.int64(DATA_SELECTION_APPLET))

        input_data = file.create_group("Input Data")
        _put(input_data, "Role Names", _fixed_strings([RAW_DATA, PREDICTION_MASK]))
        _put(input_data, "StorageVersion", "0.2", "utf-8")
        infos = input_data.create_group("infos")
        for index, lane in enumerate(lanes):
            lane_group = infos.create_group(f"lane{index:04d}")
            lane_group.create_group(PREDICTION_MASK)
            _write_lane(lane_group.create_group(RAW_DATA), lane)
        input_data.create_group("local_data")

        selections = file.create_group("FeatureSelections")
        if selection is not None:
            _put(selections, "ComputeIn2d", np.ones(len(scales), dtype=bool))
            _put(selections, "FeatureIds", _fixed_strings(feature_ids))
            _put(selections, "Scales", np.asarray(scales, dtype=np.float64))
            _put(selections, "SelectionMatrix", np.asarray(selection, dtype=bool))
            _put(selections, "StorageVersion", "0.1", "utf-8")

        classification = file.create_group("PixelClassification")
        for name, value in (
            ("LabelNames", _fixed_strings(labels)),
            ("LabelColors", np.asarray(colors, dtype=np.int64).reshape(-1, 3)),
            ("PmapColors", np.asarray(colors, dtype=np.int64).reshape(-1, 3)),
        ):
            _put(classification, name, value).attrs["isEmpty"] = np.bool_(len(labels) == 0)
        label_sets = classification.create_group("LabelSets")
        for index in range(len(lanes)):
            label_sets.create_group(f"labels{index:03d}")
        _put(classification, "StorageVersion", "0.1", "utf-8")

        _write_export_settings(file, probabilities_dir)


@contextlib.contextmanager
def _edit_copy(path: Path) -> Iterator[h5py.File]:
    """A copy of the project opened for writing, renamed over it when the block succeeds."""
    with atomic_path(path) as tmp:
        shutil.copyfile(path, tmp)
        try:
            file = h5py.File(tmp, "r+")
        except OSError as error:
            raise InputError(path, f"cannot open the project for writing ({error})") from error
        with file:
            yield file


def write_fixed_project(
    path: str | Path,
    lanes: dict[str, Lane],
    label_blocks: Sequence[LabelBlock],
    *,
    probabilities_dir: str,
) -> None:
    """Rewrite lanes and label blocks of an existing project atomically (``fix``).

    Lanes are given by lane name; every block of ``label_blocks`` replaces the stored block
    of the same lane and name. Cached ``local_data`` is removed and the prediction export set
    to uint16 TIFF, YXC, 0..65535.
    """
    path = Path(path)
    with _edit_copy(path) as file:
        for lane_name, lane in lanes.items():
            _write_lane(file[f"{LANES}/{lane_name}/{RAW_DATA}"], lane)
        for block in label_blocks:
            group = file.require_group(f"{LABEL_SETS}/labels{block.lane:03d}")
            if block.name in group:
                del group[block.name]
            dataset = group.create_dataset(block.name, data=block.data)
            dataset.attrs.create("blockSlice", block.block_slice, dtype=h5py.string_dtype("ascii"))
        if LOCAL_DATA in file:
            local_data = file[LOCAL_DATA]
            for name in list(local_data):
                del local_data[name]
        _write_export_settings(file, probabilities_dir)


def write_label_blocks(path: str | Path, blocks_by_lane: dict[int, list[LabelBlock]]) -> None:
    """Replace the label blocks of the given lanes (an empty list clears a lane), atomically."""
    path = Path(path)
    with _edit_copy(path) as file:
        label_sets = file.require_group(LABEL_SETS)
        for lane, blocks in sorted(blocks_by_lane.items()):
            group_name = f"labels{lane:03d}"
            if group_name in label_sets:
                del label_sets[group_name]
            group = label_sets.create_group(group_name)
            for block in blocks:
                dataset = group.create_dataset(block.name, data=block.data, compression="gzip")
                dataset.attrs["blockSlice"] = block.block_slice


@dataclass(frozen=True)
class ForestRecord:
    """One forest to store: vigra-encoded trees and the forest's settings."""

    trees: list[tuple[np.ndarray, np.ndarray]]  # (topology, parameters) per tree
    labels: np.ndarray
    num_features: int


def write_forests(
    path: str | Path, forests: Sequence[ForestRecord], feature_names, attributes=None
) -> None:
    """Store vigra forests in a project, replacing any stored classifier, atomically.

    ``attributes`` (str values) are set on the ``ClassifierForests`` group.
    """
    path = Path(path)
    with _edit_copy(path) as file:
        if FORESTS in file:
            del file[FORESTS]
        group = file.create_group(FORESTS)
        for index, record in enumerate(forests):
            forest = group.create_group(f"Forest{index:04d}")
            forest.attrs["vigra_random_forest_version"] = np.array([0.1])
            digits = max(2, len(str(len(record.trees) - 1)))
            for position, (topology, parameters) in enumerate(record.trees):
                forest[f"Tree_{position:0{digits}d}/topology"] = topology
                forest[f"Tree_{position:0{digits}d}/parameters"] = parameters
            _write_forest_params(forest, record.labels, record.num_features, len(record.trees))
        group["feature_names"] = np.array([n.encode() for n in feature_names])
        group["known_labels"] = np.asarray(forests[0].labels if forests else [], dtype=np.uint32)
        group["pickled_type"] = np.array(VIGRA_PICKLED_TYPE, dtype=object)
        for key, value in (attributes or {}).items():
            group.attrs[key] = str(value)


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
