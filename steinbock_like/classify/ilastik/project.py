"""ilastik pixel-classification project files (``.ilp``, HDF5): write new ones, fix old ones.

A project holds one group per ilastik applet. The layout written here is the one
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
  ``[0:1,8:94,11:121,0:1]``), and, once trained, ``ClassifierForests``.
- ``Prediction Export``: export settings (dtype, range, axis order, format, file names).
- top level: ``ilastikVersion``, ``workflowName``, ``time``, ``currentApplet``.

Lanes point to the crops with paths relative to the project's directory
(``RelativeFilesystemDatasetInfo``), so a project directory can be moved as a whole.
"""

import logging
import os
import re
import shutil
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np

from steinbock_like.errors import InputError, SteinbockLikeError
from steinbock_like.io.atomic import atomic_path
from steinbock_like.io.ilastik import (
    AXISTAGS_CYX,
    CROP_DATASET,
    DISPLAY_MODE,
    H5_LIBVER,
    axes_from_axistags,
    list_ilastik_files,
    read_ilastik_dataset,
    write_ilastik_crop,
)

logger = logging.getLogger(__name__)

ILASTIK_VERSION = "1.3.3post3"  # the project format written (1.4.x reads it too)
WORKFLOW_NAME = "Pixel Classification"
DATA_SELECTION_APPLET = 1

DEFAULT_LABELS = ("Nucleus", "Cytoplasm", "Background")
DEFAULT_COLORS = ((255, 0, 0), (0, 255, 0), (0, 0, 255))  # red, green, blue

# ilastik's feature types (row order of the selection matrix) and its scale columns.
FEATURE_IDS = (
    "GaussianSmoothing",
    "LaplacianOfGaussian",
    "GaussianGradientMagnitude",
    "DifferenceOfGaussians",
    "StructureTensorEigenvalues",
    "HessianOfGaussianEigenvalues",
)
ILASTIK_SCALES = (0.3, 0.7, 1.0, 1.6, 3.5, 5.0, 10.0)
# Recommended for IMC: every feature type at the five larger scales.
DEFAULT_FEATURE_SCALES = (1.0, 1.6, 3.5, 5.0, 10.0)
FEATURE_PRESETS = ("default", "all", "none")

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

RELATIVE_INFO_CLASS = "RelativeFilesystemDatasetInfo"
ABSOLUTE_INFO_CLASS = "FilesystemDatasetInfo"
RAW_DATA = "Raw Data"
PREDICTION_MASK = "Prediction Mask"
SPATIAL_AXES = ("y", "x")
DROPPABLE_AXES = ("z", "t")


# --- feature selection -------------------------------------------------------------------


def feature_selection(preset: str | Sequence[float] | None = "default") -> np.ndarray | None:
    """The boolean selection matrix (feature types x ilastik's 7 scales) of a preset.

    Parameters
    ----------
    preset : {"default", "all", "none"}, sequence of float, or None
        ``default``: all six types at 1.0, 1.6, 3.5, 5.0, 10.0; ``all``: every valid
        combination; ``none``/None: no selection (the user picks in the GUI); a sequence
        (or comma-separated text) of scales: all six types at those scales.

    Returns
    -------
    ndarray of bool, shape (6, 7), or None for no selection

    Notes
    -----
    ilastik offers only Gaussian smoothing at scale 0.3.
    """
    if preset is None or (isinstance(preset, str) and preset.strip().lower() == "none"):
        return None
    if isinstance(preset, str):
        text = preset.strip().lower()
        if text == "default":
            scales = DEFAULT_FEATURE_SCALES
        elif text == "all":
            scales = ILASTIK_SCALES
        else:
            try:
                scales = [float(part) for part in text.split(",") if part.strip()]
            except ValueError:
                raise SteinbockLikeError(
                    f"unknown feature preset '{preset}'; use one of {FEATURE_PRESETS} "
                    f"or comma-separated scales from {ILASTIK_SCALES}"
                ) from None
    else:
        scales = [float(s) for s in preset]
    unknown = [s for s in scales if not np.isclose(ILASTIK_SCALES, s).any()]
    if unknown or not scales:
        raise SteinbockLikeError(
            f"feature scales must be among ilastik's {ILASTIK_SCALES}, got {list(scales)}"
        )
    selected = np.isclose(np.asarray(ILASTIK_SCALES)[:, np.newaxis], scales).any(axis=1)
    matrix = np.repeat(selected[np.newaxis], len(FEATURE_IDS), axis=0)
    matrix[1:, 0] = False  # scale 0.3: Gaussian smoothing only
    return matrix


# --- HDF5 helpers ----------------------------------------------------------------------------


def _put(group: h5py.Group, name: str, value, dtype=None) -> h5py.Dataset:
    """Create or replace a dataset; str values become variable-length strings (ASCII default)."""
    if name in group:
        del group[name]
    if isinstance(value, str):
        encoding = dtype if dtype in ("ascii", "utf-8") else "ascii"
        return group.create_dataset(name, data=value, dtype=h5py.string_dtype(encoding))
    if dtype is not None:
        value = np.asarray(value, dtype=dtype)
    return group.create_dataset(name, data=value)


def _text(value) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8")
    if isinstance(value, np.ndarray) and value.shape == ():
        return _text(value[()])
    return str(value)


def _fixed_strings(values: Sequence[str]) -> np.ndarray:
    return np.array([v.encode("utf-8") for v in values])


# --- writing a new project -----------------------------------------------------------------


@dataclass
class Lane:
    """One training image of a project: its file, as ilastik stores it."""

    file_path: str  # "dir/file.h5/dataset", relative to the project's directory if possible
    nickname: str
    shape: tuple[int, ...]
    relative: bool = True
    axistags: str = AXISTAGS_CYX
    allow_labels: bool = True
    dataset_id: str = field(default_factory=lambda: str(uuid.uuid1()))


def lane_for_crop(crop_path: str | Path, project_path: str | Path, shape) -> Lane:
    """The lane of a steinbock-layout crop, its path relative to the project when possible.

    ilastik resolves relative lane paths against the project's directory and accepts
    them only for files under it; other crops get an absolute path (and a warning).
    """
    crop_path = Path(crop_path).absolute()
    project_dir = Path(project_path).absolute().parent
    try:
        file_path = crop_path.relative_to(project_dir).as_posix()
        relative = True
    except ValueError:
        logger.warning(
            "%s is not under the project's directory %s: stored with an absolute path",
            crop_path,
            project_dir,
        )
        file_path, relative = crop_path.as_posix(), False
    return Lane(
        file_path=f"{file_path}/{CROP_DATASET}",
        nickname=crop_path.stem,
        shape=tuple(int(s) for s in shape),
        relative=relative,
    )


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


def write_export_settings(export: h5py.Group, probabilities_dir: str) -> None:
    """Prediction export as ``run`` does it: uint16 TIFF, YXC, 0..1 -> 0..65535."""
    for name, (value, dtype) in EXPORT_SETTINGS.items():
        _put(export, name, value, dtype)
    filename_format = PROBABILITIES_FILENAME_FORMAT.format(directory=probabilities_dir)
    _put(export, "OutputFilenameFormat", filename_format, "ascii")


def write_new_project(
    project_path: str | Path,
    lanes: Sequence[Lane],
    *,
    labels: Sequence[str] = DEFAULT_LABELS,
    colors: Sequence[Sequence[int]] = DEFAULT_COLORS,
    features: str | Sequence[float] | None = "default",
    probabilities_dir: str = "ilastik_probabilities",
) -> None:
    """Write a new pixel-classification project atomically.

    Parameters
    ----------
    project_path : path-like
        The ``.ilp`` file.
    lanes : sequence of Lane
        One per training crop (see :func:`lane_for_crop`).
    labels, colors : sequences
        Label names and their RGB colours (also used for the probability maps).
    features : str, sequence of float or None
        Feature preset, see :func:`feature_selection`.
    probabilities_dir : str
        Export directory for GUI exports, relative to the project's directory.
    """
    if len(labels) != len(colors):
        raise ValueError(f"{len(labels)} labels but {len(colors)} colours")
    matrix = feature_selection(features)
    with atomic_path(project_path) as tmp, h5py.File(tmp, "w", libver=H5_LIBVER) as file:
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
        if matrix is not None:
            _put(selections, "ComputeIn2d", np.ones(len(ILASTIK_SCALES), dtype=bool))
            _put(selections, "FeatureIds", _fixed_strings(FEATURE_IDS))
            _put(selections, "Scales", np.asarray(ILASTIK_SCALES, dtype=np.float64))
            _put(selections, "SelectionMatrix", matrix)
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

        write_export_settings(file.create_group("Prediction Export"), probabilities_dir)


# --- fixing crops ---------------------------------------------------------------------------


def cyx_order(axes: Sequence[str], shape: Sequence[int]) -> tuple[tuple[int, ...], list[int]]:
    """How to bring data with ``axes`` into CYX.

    Singleton z/t axes are dropped. When the channel axis is missing or a singleton
    while one z or t axis holds several planes, those planes are taken as the channels
    (some tools store channels along z).

    Returns
    -------
    transpose : tuple of int
        Permutation of the input axes putting channel, y, x first, dropped axes last.
    dropped : list of int
        Input axes (all of size 1) that come after y and x and are squeezed away.

    Raises
    ------
    SteinbockLikeError
        On an axis order without y and x, repeated keys, or several non-singleton axes
        that could hold channels.
    """
    axes = [str(a).lower() for a in axes]
    if len(axes) != len(shape):
        raise SteinbockLikeError(f"axis order '{''.join(axes)}' does not fit shape {tuple(shape)}")
    if len(set(axes)) != len(axes) or not all(a in axes for a in SPATIAL_AXES):
        raise SteinbockLikeError(f"axis order '{''.join(axes)}' must name y and x once each")
    unknown = [a for a in axes if a not in ("c", *SPATIAL_AXES, *DROPPABLE_AXES)]
    if unknown:
        raise SteinbockLikeError(f"unknown axes {unknown} in '{''.join(axes)}'")
    others = [i for i, a in enumerate(axes) if a not in ("c", *SPATIAL_AXES)]
    planes = [i for i in others if shape[i] > 1]
    channel = axes.index("c") if "c" in axes else None
    if planes:
        if len(planes) > 1 or (channel is not None and shape[channel] > 1):
            raise SteinbockLikeError(
                f"shape {tuple(shape)} with axes '{''.join(axes)}' is not a single 2-D "
                "multichannel image"
            )
        if channel is not None:
            others.append(channel)
        channel = planes[0]
        others.remove(channel)
    front = ([channel] if channel is not None else []) + [axes.index("y"), axes.index("x")]
    transpose = tuple(front + sorted(others))
    return transpose, sorted(others)


def to_cyx(array: np.ndarray, axes: Sequence[str]) -> np.ndarray:
    """Reorder any 2-D multichannel array to float32 CYX (see :func:`cyx_order`)."""
    transpose, dropped = cyx_order(axes, array.shape)
    moved = np.transpose(array, transpose)
    cyx = moved.reshape(moved.shape[: len(transpose) - len(dropped)])
    if cyx.ndim == 2:
        cyx = cyx[np.newaxis]
    return np.ascontiguousarray(cyx, dtype=np.float32)


@dataclass
class FixedCrop:
    """A crop after ``fix``: its file, original axes and CYX shape."""

    path: Path
    original_axes: list[str] | None
    original_shape: tuple[int, ...]
    shape: tuple[int, int, int]
    converted: bool


def fix_crop_file(path: str | Path, axes: str | Sequence[str] | None = None) -> FixedCrop:
    """Rewrite one crop as a steinbock-layout crop in place (unless it already is one).

    Parameters
    ----------
    path : path-like
        Crop HDF5 file (dataset ``crop``, one named like the file, or the only one).
    axes : str or sequence, optional
        Axis order of the stored data (e.g. ``zyxc``); by default from its axistags.
    """
    path = Path(path)
    array, stored_axes, attrs = read_ilastik_dataset(path)
    if attrs.get("steinbock", False):
        if array.ndim != 3:
            raise InputError(path, f"marked steinbock but not CYX (shape {array.shape})")
        return FixedCrop(path, ["c", "y", "x"], array.shape, tuple(array.shape), False)
    order = list(axes) if axes is not None else stored_axes
    if order is None:
        raise InputError(path, "no axistags: give the axis order (e.g. --axes zyxc)")
    try:
        cyx = to_cyx(array, order)
    except SteinbockLikeError as error:
        raise InputError(path, str(error)) from error
    write_ilastik_crop(path, cyx)
    return FixedCrop(path, [str(a).lower() for a in order], array.shape, cyx.shape, True)


# --- fixing a project ------------------------------------------------------------------------


@dataclass
class FixReport:
    """What :func:`fix_project` changed."""

    crops_converted: list[Path] = field(default_factory=list)
    crops_unchanged: list[Path] = field(default_factory=list)
    lanes: dict[str, str] = field(default_factory=dict)  # lane -> new filePath
    label_blocks: int = 0
    backups: list[Path] = field(default_factory=list)


def backup(project_path: str | Path, crop_dir: str | Path) -> list[Path]:
    """Copy the project to ``NAME.bak`` and the crop directory to ``DIR.bak/``.

    Raises
    ------
    SteinbockLikeError
        If a backup already exists (an earlier fix: restore or remove it first).
    """
    project_path, crop_dir = Path(project_path), Path(crop_dir)
    project_backup = project_path.with_name(project_path.name + ".bak")
    crop_backup = crop_dir.with_name(crop_dir.name + ".bak")
    for existing in (project_backup, crop_backup):
        if existing.exists():
            raise SteinbockLikeError(
                f"{existing} exists (from an earlier fix?): remove it or use --no-backup"
            )
    shutil.copy2(project_path, project_backup)
    shutil.copytree(crop_dir, crop_backup)
    return [project_backup, crop_backup]


def _external_file_name(file_path: str) -> str:
    """The HDF5 file's name in a lane path such as ``/a/b/name.h5/dataset``."""
    parts = re.split(r"[\\/]", file_path)
    for part in reversed(parts):
        if part.lower().endswith((".h5", ".hdf5", ".hdf")):
            return part
    return parts[-1]


def match_lanes_to_crops(
    lane_files: dict[str, tuple[str, tuple[int, ...] | None]], crops: Sequence[FixedCrop]
) -> dict[str, FixedCrop]:
    """Pair each lane with its crop file.

    Lanes whose file name is in the crop directory take that file. A lane whose file
    was renamed takes the unmatched crop with the same stored shape whose name shares
    the longest prefix with the lane's (a warning names the pair); a tie or no
    candidate is an error.

    Parameters
    ----------
    lane_files : dict
        lane name -> (file name from its filePath, stored shape or None)
    crops : sequence of FixedCrop
    """
    by_name = {crop.path.name: crop for crop in crops}
    matched: dict[str, FixedCrop] = {}
    for lane, (file_name, _) in lane_files.items():
        if file_name in by_name:
            matched[lane] = by_name[file_name]
    free = [c for c in crops if all(c is not m for m in matched.values())]
    for lane, (file_name, shape) in sorted(lane_files.items()):
        if lane in matched:
            continue
        stem = Path(file_name).stem
        candidates = [c for c in free if shape is None or tuple(c.original_shape) == shape]
        scored = sorted(
            ((len(os.path.commonprefix([stem, c.path.stem])), c) for c in candidates),
            key=lambda item: -item[0],
        )
        if not scored or scored[0][0] == 0 or (len(scored) > 1 and scored[1][0] == scored[0][0]):
            raise SteinbockLikeError(
                f"project lane {lane} uses {file_name}, which is not in the crop directory "
                "and matches no single crop there"
            )
        crop = scored[0][1]
        logger.warning("%s: %s not found, using %s", lane, file_name, crop.path.name)
        matched[lane] = crop
        free.remove(crop)
    return matched


def _slice_bounds(block_slice: str) -> list[tuple[int, int]]:
    bounds = []
    for part in block_slice.strip().strip("[]").split(","):
        start, stop = part.split(":")
        bounds.append((int(start), int(stop)))
    return bounds


def reorder_label_block(
    block: np.ndarray, block_slice: str, axes: Sequence[str]
) -> tuple[np.ndarray, str]:
    """Bring a label block and its ``blockSlice`` from the lane's ``axes`` to CYX.

    The block's channel axis (size 1) comes first; singleton z/t axes are dropped.
    """
    bounds = _slice_bounds(block_slice)
    if len(bounds) != block.ndim or len(axes) != block.ndim:
        raise SteinbockLikeError(
            f"label block of shape {block.shape} has blockSlice {block_slice} and axes {axes}"
        )
    axes = [a.lower() for a in axes]
    if "c" not in axes:  # labels always carry a channel axis; be lenient
        block, axes = block[..., np.newaxis], [*axes, "c"]
        bounds = [*bounds, (0, 1)]
    transpose, dropped = cyx_order(axes, block.shape)
    moved = np.transpose(block, transpose)
    kept_axes = len(transpose) - len(dropped)
    reordered = np.ascontiguousarray(moved.reshape(moved.shape[:kept_axes]))
    new_bounds = [bounds[i] for i in transpose[:kept_axes]]
    return reordered, "[" + ",".join(f"{a}:{b}" for a, b in new_bounds) + "]"


def fix_project(
    project_path: str | Path,
    crop_dir: str | Path,
    *,
    axes: str | Sequence[str] | None = None,
    make_backup: bool = True,
    probabilities_dir: str = "ilastik_probabilities",
) -> FixReport:
    """Make a project trained elsewhere usable here, patching it and its crops in place.

    Every crop in ``crop_dir`` becomes a steinbock-layout crop (float32 CYX; axis order
    from its axistags or ``axes``; singleton z/t dropped; crops marked ``steinbock``
    left alone). In the project, each lane points to its crop with a path relative to
    the project and the CYX shape, cached ``local_data`` is removed, label blocks are
    reordered to CYX with their ``blockSlice`` rewritten, and the prediction export is
    set to uint16 TIFF, YXC, 0..1 -> 0..65535.

    Parameters
    ----------
    project_path : path-like
        The ``.ilp`` file.
    crop_dir : path-like
        The crops the project was trained on.
    axes : str or sequence, optional
        Axis order of the crops when their axistags are missing or wrong.
    make_backup : bool
        Copy the project to ``.bak`` and the crops to ``DIR.bak/`` first.
    probabilities_dir : str
        Export directory for GUI exports, relative to the project's directory.

    Raises
    ------
    InputError, SteinbockLikeError
        Unreadable project or crop, unknown axis order, a lane without its crop.
    """
    project_path, crop_dir = Path(project_path), Path(crop_dir)
    if not project_path.is_file():
        raise InputError(project_path, "ilastik project not found")
    crop_files = list_ilastik_files(crop_dir)
    if not crop_files:
        raise InputError(crop_dir, "no .h5 crops")
    try:
        h5py.File(project_path, "r").close()
    except OSError as error:
        raise InputError(project_path, f"not an HDF5 (ilastik) project ({error})") from error

    report = FixReport()
    if make_backup:
        report.backups = backup(project_path, crop_dir)
    crops = [fix_crop_file(path, axes) for path in crop_files]
    for crop in crops:
        (report.crops_converted if crop.converted else report.crops_unchanged).append(crop.path)

    with h5py.File(project_path, "r+") as file:
        lane_axes = _fix_lanes(file, project_path, crops, axes, report)
        report.label_blocks = _fix_label_sets(file, lane_axes)
        if "Input Data/local_data" in file:
            local_data = file["Input Data/local_data"]
            for name in list(local_data):
                del local_data[name]
        export = file.require_group("Prediction Export")
        write_export_settings(export, probabilities_dir)
    logger.info(
        "%s: %d lanes, %d label blocks fixed; %d crops converted, %d already fixed",
        project_path,
        len(report.lanes),
        report.label_blocks,
        len(report.crops_converted),
        len(report.crops_unchanged),
    )
    return report


def _fix_lanes(file, project_path, crops, axes, report) -> dict[int, list[str]]:
    """Point every lane at its fixed crop; return lane index -> its former axis order."""
    infos = file.get("Input Data/infos")
    if infos is None:
        return {}
    lane_files, raw_groups = {}, {}
    for lane_name in sorted(infos):
        raw_data = infos[lane_name].get(RAW_DATA)
        if raw_data is None or "filePath" not in raw_data:
            continue
        shape = tuple(int(s) for s in raw_data["shape"][()]) if "shape" in raw_data else None
        lane_files[lane_name] = (_external_file_name(_text(raw_data["filePath"][()])), shape)
        raw_groups[lane_name] = raw_data
    matched = match_lanes_to_crops(lane_files, crops)
    lane_axes = {}
    for lane_name, raw_data in raw_groups.items():
        crop = matched[lane_name]
        if "axistags" in raw_data:
            former = axes_from_axistags(_text(raw_data["axistags"][()]), project_path)
        else:
            former = list(axes) if axes is not None else crop.original_axes
        lane_axes[int(lane_name.removeprefix("lane"))] = former
        lane = lane_for_crop(crop.path, project_path, crop.shape)
        lane.allow_labels = bool(raw_data["allowLabels"][()]) if "allowLabels" in raw_data else True
        if "datasetId" in raw_data:
            lane.dataset_id = _text(raw_data["datasetId"][()])
        _write_lane(raw_data, lane)
        report.lanes[lane_name] = lane.file_path
    return lane_axes


def _fix_label_sets(file, lane_axes: dict[int, list[str] | None]) -> int:
    label_sets = file.get("PixelClassification/LabelSets")
    if label_sets is None:
        return 0
    count = 0
    for name in sorted(label_sets):
        lane_index = int(name.removeprefix("labels"))
        group = label_sets[name]
        for block_name in sorted(group):
            block_dataset = group[block_name]
            axes = lane_axes.get(lane_index)
            if axes is None:
                raise SteinbockLikeError(f"label set {name} has no lane to take its axes from")
            block_slice = _text(block_dataset.attrs["blockSlice"])
            block, new_slice = reorder_label_block(block_dataset[()], block_slice, axes)
            if block.shape == block_dataset.shape and new_slice == block_slice:
                continue
            del group[block_name]
            new_dataset = group.create_dataset(block_name, data=block)
            new_dataset.attrs.create("blockSlice", new_slice, dtype=h5py.string_dtype("ascii"))
            count += 1
    return count


# --- reading back ----------------------------------------------------------------------------


def read_project_summary(project_path: str | Path) -> dict:
    """The parts of a project this toolkit writes or fixes, as plain Python values.

    Returns
    -------
    dict
        ``labels``, ``colors``, ``features`` (selection matrix or None), ``scales``,
        ``feature_ids``, ``lanes`` (list of dicts: file_path, nickname, shape, axes,
        info_class), ``label_blocks`` (list of (lane index, shape, blockSlice)),
        ``export`` (setting -> value), ``version``, ``workflow``.
    """
    with h5py.File(project_path, "r") as file:
        classification = file.get("PixelClassification", {})
        selections = file.get("FeatureSelections", {})
        summary = {
            "version": _text(file["ilastikVersion"][()]) if "ilastikVersion" in file else None,
            "workflow": _text(file["workflowName"][()]) if "workflowName" in file else None,
            "labels": [_text(v) for v in classification["LabelNames"][()]]
            if "LabelNames" in classification
            else [],
            "colors": classification["LabelColors"][()].tolist()
            if "LabelColors" in classification
            else [],
            "features": selections["SelectionMatrix"][()]
            if "SelectionMatrix" in selections
            else None,
            "scales": selections["Scales"][()].tolist() if "Scales" in selections else [],
            "feature_ids": [_text(v) for v in selections["FeatureIds"][()]]
            if "FeatureIds" in selections
            else [],
            "lanes": [],
            "label_blocks": [],
            "export": {},
        }
        infos = file.get("Input Data/infos", {})
        for lane_name in sorted(infos):
            raw = infos[lane_name].get(RAW_DATA)
            if raw is None or "filePath" not in raw:
                summary["lanes"].append(None)
                continue
            summary["lanes"].append(
                {
                    "file_path": _text(raw["filePath"][()]),
                    "nickname": _text(raw["nickname"][()]),
                    "shape": tuple(int(s) for s in raw["shape"][()]),
                    "axes": axes_from_axistags(_text(raw["axistags"][()])),
                    "info_class": _text(raw["__class__"][()]) if "__class__" in raw else None,
                }
            )
        label_sets = classification.get("LabelSets", {}) if classification else {}
        for name in sorted(label_sets):
            for block_name in sorted(label_sets[name]):
                block = label_sets[name][block_name]
                summary["label_blocks"].append(
                    (
                        int(name.removeprefix("labels")),
                        block.shape,
                        _text(block.attrs["blockSlice"]),
                    )
                )
        export = file.get("Prediction Export", {})
        for name in export:
            value = export[name][()]
            summary["export"][name] = (
                _text(value) if isinstance(value, bytes | str) else np.asarray(value).item()
            )
    return summary


def write_label_blocks(project_path: str | Path, labels_by_lane: dict[int, np.ndarray]) -> int:
    """Store label images in a project, one block per lane, replacing the lane's old blocks.

    Parameters
    ----------
    project_path : path-like
        Project whose lanes are steinbock-layout (CYX) crops.
    labels_by_lane : dict
        Lane index -> uint8 YX label image of the lane's crop size (0 = unlabelled,
        k = the project's k-th label). Only the bounding box of the labelled pixels is stored.

    Returns
    -------
    int
        Labelled pixels written. The project is rewritten atomically.
    """
    project_path = Path(project_path)
    summary = read_project_summary(project_path)
    written = 0
    with atomic_path(project_path) as tmp:
        shutil.copyfile(project_path, tmp)
        with h5py.File(tmp, "r+") as file:
            label_sets = file.require_group("PixelClassification/LabelSets")
            for index, labels in sorted(labels_by_lane.items()):
                lane = summary["lanes"][index] if index < len(summary["lanes"]) else None
                if lane is None or lane["axes"] != ["c", "y", "x"]:
                    raise SteinbockLikeError(
                        f"{project_path}: lane {index} is not a CYX crop; cannot label it"
                    )
                if tuple(labels.shape) != tuple(lane["shape"][1:]):
                    raise SteinbockLikeError(
                        f"{project_path}: labels of shape {labels.shape} do not fit lane {index} "
                        f"of shape {lane['shape']}"
                    )
                group_name = f"labels{index:03d}"
                if group_name in label_sets:
                    del label_sets[group_name]
                group = label_sets.create_group(group_name)
                rows, columns = np.nonzero(labels)
                if rows.size == 0:
                    continue
                y0, y1, x0, x1 = rows.min(), rows.max() + 1, columns.min(), columns.max() + 1
                block = labels[np.newaxis, y0:y1, x0:x1].astype(np.uint8)
                dataset = group.create_dataset("block0000", data=block, compression="gzip")
                dataset.attrs["blockSlice"] = f"[0:1,{y0}:{y1},{x0}:{x1}]"
                written += int(np.count_nonzero(block))
    return written
