"""ilastik pixel-classification projects: new ones for our crops, and ``fix`` for old ones.

The project file itself is read and written by :mod:`steinbock_like.io.ilastik_project`;
this module decides what goes into it: the feature preset, one lane per training crop
(paths relative to the project, so a project directory can be moved as a whole), and, for
a project trained elsewhere, crops converted to steinbock's CYX layout with lanes and label
blocks to match.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from steinbock_like.classify.ilastik.axes import reorder_label_block, to_cyx
from steinbock_like.classify.ilastik.features import FEATURE_IDS
from steinbock_like.errors import InputError, SteinbockLikeError
from steinbock_like.io import ilastik_project as ilp
from steinbock_like.io.ilastik import (
    CROP_DATASET,
    list_ilastik_files,
    read_ilastik_dataset,
    write_ilastik_crop,
)
from steinbock_like.io.ilastik_project import LabelBlock, Lane

logger = logging.getLogger(__name__)

DEFAULT_LABELS = ("Nucleus", "Cytoplasm", "Background")
DEFAULT_COLORS = ((255, 0, 0), (0, 255, 0), (0, 0, 255))  # red, green, blue

#: ilastik's scale columns of the feature selection.
ILASTIK_SCALES = (0.3, 0.7, 1.0, 1.6, 3.5, 5.0, 10.0)
#: Recommended for IMC: every feature type at the five larger scales.
DEFAULT_FEATURE_SCALES = (1.0, 1.6, 3.5, 5.0, 10.0)
FEATURE_PRESETS = ("default", "all", "none")


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


# --- a new project ---------------------------------------------------------------------------


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
    ilp.write_new_project(
        project_path,
        lanes,
        labels=labels,
        colors=colors,
        feature_ids=FEATURE_IDS,
        scales=ILASTIK_SCALES,
        selection=feature_selection(features),
        probabilities_dir=probabilities_dir,
    )


def write_training_labels(project_path: str | Path, labels_by_lane: dict[int, np.ndarray]) -> int:
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
    project = ilp.read_project(project_path)
    blocks: dict[int, list[LabelBlock]] = {}
    written = 0
    for index, labels in sorted(labels_by_lane.items()):
        lane = project.lanes[index] if index < len(project.lanes) else None
        if lane is None or lane.axes != ["c", "y", "x"]:
            raise InputError(project_path, f"lane {index} is not a CYX crop; cannot label it")
        if tuple(labels.shape) != tuple(lane.shape[1:]):
            raise InputError(
                project_path,
                f"labels of shape {labels.shape} do not fit lane {index} of shape {lane.shape}",
            )
        blocks[index] = []
        rows, columns = np.nonzero(labels)
        if rows.size == 0:
            continue
        y0, y1, x0, x1 = rows.min(), rows.max() + 1, columns.min(), columns.max() + 1
        data = labels[np.newaxis, y0:y1, x0:x1].astype(np.uint8)
        blocks[index].append(LabelBlock(index, "block0000", data, f"[0:1,{y0}:{y1},{x0}:{x1}]"))
        written += int(np.count_nonzero(data))
    ilp.write_label_blocks(project_path, blocks)
    return written


# --- fixing a project trained elsewhere ---------------------------------------------------------


@dataclass
class FixedCrop:
    """A crop planned by ``fix``: its file, original axes and shape, and its CYX pixels."""

    path: Path
    original_axes: list[str] | None
    original_shape: tuple[int, ...]
    shape: tuple[int, int, int]
    converted: bool
    cyx: np.ndarray | None = None  # the pixels to write (None: the file is fine as it is)


def plan_crop_fix(path: str | Path, axes: str | Sequence[str] | None = None) -> FixedCrop:
    """Read one crop and bring it to steinbock's layout in memory (nothing is written).

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
    return FixedCrop(path, [str(a).lower() for a in order], array.shape, cyx.shape, True, cyx)


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

    Everything is read and checked before anything is written, and each file is replaced
    atomically: a fix that fails leaves the project and its crops as they were.

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
    project = ilp.read_project(project_path)
    crop_files = list_ilastik_files(crop_dir)
    if not crop_files:
        raise InputError(crop_dir, "no .h5 crops")
    crops = [plan_crop_fix(path, axes) for path in crop_files]
    lanes, lane_axes = _fixed_lanes(project, crops, axes)
    try:
        blocks = _fixed_label_blocks(project, lane_axes)
    except SteinbockLikeError as error:
        raise InputError(project_path, str(error)) from error

    report = FixReport(lanes={name: lane.file_path for name, lane in lanes.items()})
    report.label_blocks = len(blocks)
    if make_backup:
        report.backups = backup(project_path, crop_dir)
    for crop in crops:
        if crop.converted:
            write_ilastik_crop(crop.path, crop.cyx)
            report.crops_converted.append(crop.path)
        else:
            report.crops_unchanged.append(crop.path)
    ilp.write_fixed_project(project_path, lanes, blocks, probabilities_dir=probabilities_dir)
    logger.info(
        "%s: %d lanes, %d label blocks fixed; %d crops converted, %d already fixed",
        project_path,
        len(report.lanes),
        report.label_blocks,
        len(report.crops_converted),
        len(report.crops_unchanged),
    )
    return report


def _fixed_lanes(project: ilp.IlastikProject, crops, axes):
    """Every lane pointed at its fixed crop, and lane index -> the lane's former axis order."""
    lane_files, stored = {}, {}
    for lane_name, lane in zip(project.lane_names, project.lanes, strict=True):
        if lane is None:
            continue
        shape = lane.shape or None
        lane_files[lane_name] = (ilp.external_file_name(lane.file_path), shape)
        stored[lane_name] = lane
    matched = match_lanes_to_crops(lane_files, crops)
    lanes, lane_axes = {}, {}
    for lane_name, former_lane in stored.items():
        crop = matched[lane_name]
        if former_lane.axistags:
            former = former_lane.axes
        else:
            former = list(axes) if axes is not None else crop.original_axes
        lane_axes[int(lane_name.removeprefix("lane"))] = former
        lane = lane_for_crop(crop.path, project.path, crop.shape)
        lane.allow_labels = former_lane.allow_labels
        lane.dataset_id = former_lane.dataset_id
        lanes[lane_name] = lane
    return lanes, lane_axes


def _fixed_label_blocks(project: ilp.IlastikProject, lane_axes) -> list[LabelBlock]:
    """The label blocks that change when brought to CYX (the others stay as stored)."""
    changed = []
    for block in project.label_blocks:
        axes = lane_axes.get(block.lane)
        if axes is None:
            raise SteinbockLikeError(
                f"label set labels{block.lane:03d} has no lane to take its axes from"
            )
        data, block_slice = reorder_label_block(block.data, block.block_slice, axes)
        if data.shape != block.data.shape or block_slice != block.block_slice:
            changed.append(LabelBlock(block.lane, block.name, data, block_slice))
    return changed
