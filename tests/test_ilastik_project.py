"""ilastik project files: new projects, fix of a real ilastik 1.3.3post3 project."""

import shutil

import h5py
import numpy as np
import pytest

from steinbock_like.classify.ilastik.axes import reorder_label_block, to_cyx
from steinbock_like.classify.ilastik.project import (
    DEFAULT_FEATURE_SCALES,
    FEATURE_IDS,
    ILASTIK_SCALES,
    feature_selection,
    fix_project,
    lane_for_crop,
    write_new_project,
)
from steinbock_like.errors import InputError, SteinbockLikeError
from steinbock_like.io.ilastik import list_ilastik_files, read_ilastik_crop, write_ilastik_crop
from steinbock_like.io.ilastik_project import read_project


def make_crops(directory, shapes):
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for index, shape in enumerate(shapes):
        path = directory / f"img{index}_x0_y0_w{shape[2]}_h{shape[1]}.h5"
        write_ilastik_crop(path, np.full(shape, index, np.float32))
        paths.append(path)
    return paths


def structure(path):
    """{name: dtype kind or 'group'} of every item of an HDF5 file."""
    items = {}

    def visit(name, item):
        items[name] = "group" if isinstance(item, h5py.Group) else item.dtype.kind

    with h5py.File(path, "r") as file:
        file.visititems(visit)
    return items


def test_feature_presets():
    default = feature_selection("default")
    assert default.shape == (len(FEATURE_IDS), len(ILASTIK_SCALES))
    expected_columns = [s in DEFAULT_FEATURE_SCALES for s in ILASTIK_SCALES]
    assert (default == np.array(expected_columns)).all()
    assert feature_selection("none") is None and feature_selection(None) is None
    every = feature_selection("all")
    assert every[0, 0] and not every[1:, 0].any() and every[:, 1:].all()
    assert (feature_selection("1.0, 3.5")[:, [2, 4]]).all()
    assert feature_selection("1.0,3.5").sum() == 12
    with pytest.raises(SteinbockLikeError, match="among ilastik"):
        feature_selection("2.0")
    with pytest.raises(SteinbockLikeError, match="unknown feature preset"):
        feature_selection("lots")


def test_new_project_reads_back(tmp_path):
    crops = make_crops(tmp_path / "ilastik_crops", [(4, 50, 50), (4, 50, 50)])
    project = tmp_path / "pixel_classifier.ilp"
    lanes = [lane_for_crop(p, project, (4, 50, 50)) for p in crops]
    write_new_project(project, lanes)
    summary = read_project(project)
    assert summary.labels == ["Nucleus", "Cytoplasm", "Background"]
    assert summary.colors == [[255, 0, 0], [0, 255, 0], [0, 0, 255]]
    assert summary.feature_ids == list(FEATURE_IDS)
    assert summary.scales == list(ILASTIK_SCALES)
    assert (summary.selection == feature_selection("default")).all()
    assert summary.version == "1.3.3post3" and summary.workflow == "Pixel Classification"
    assert [lane.file_path for lane in summary.lanes] == [
        f"ilastik_crops/{p.name}/crop" for p in crops
    ]
    for lane, crop in zip(summary.lanes, crops, strict=True):
        assert lane.nickname == crop.stem
        assert lane.shape == (4, 50, 50) and lane.axes == ["c", "y", "x"]
        assert lane.info_class == "RelativeFilesystemDatasetInfo"
        assert (project.parent / lane.file_path).parent.is_file()
    assert summary.export["ExportDtype"] == "uint16"
    assert summary.export["OutputAxisOrder"] == "yxc"
    assert (summary.export["InputMin"], summary.export["InputMax"]) == (0.0, 1.0)
    assert (summary.export["ExportMin"], summary.export["ExportMax"]) == (0, 65535)
    with h5py.File(project, "r") as file:
        assert list(file["PixelClassification/LabelSets"]) == ["labels000", "labels001"]
        assert len(file["Input Data/infos/lane0000/Prediction Mask"]) == 0

    write_new_project(project, lanes, features="none")
    with h5py.File(project, "r") as file:
        assert len(file["FeatureSelections"]) == 0  # left to the GUI, as steinbock does


def test_crop_outside_project_gets_absolute_path(tmp_path):
    crop = make_crops(tmp_path / "elsewhere", [(2, 10, 10)])[0]
    lane = lane_for_crop(crop, tmp_path / "project" / "p.ilp", (2, 10, 10))
    assert not lane.relative and lane.file_path == f"{crop.as_posix()}/crop"


@pytest.mark.parametrize(
    ("axes", "shape", "expected"),
    [
        ("zyxc", (1, 5, 6, 3), (3, 5, 6)),
        ("tczyx", (1, 3, 1, 5, 6), (3, 5, 6)),
        ("yxc", (5, 6, 3), (3, 5, 6)),
        ("zyxc", (3, 5, 6, 1), (3, 5, 6)),  # channels stored along z
        ("yx", (5, 6), (1, 5, 6)),
    ],
)
def test_to_cyx(axes, shape, expected):
    array = np.arange(np.prod(shape), dtype=np.uint16).reshape(shape)
    cyx = to_cyx(array, axes)
    assert cyx.shape == expected and cyx.dtype == np.float32
    if axes == "zyxc" and shape[0] == 1:
        np.testing.assert_array_equal(cyx, np.moveaxis(array[0], -1, 0))


def test_to_cyx_rejects_3d():
    with pytest.raises(SteinbockLikeError, match="not a single 2-D"):
        to_cyx(np.zeros((2, 5, 6, 3)), "zyxc")


def test_label_block_reordered_with_slice():
    block = np.arange(2 * 3, dtype=np.uint8).reshape(1, 2, 3, 1)
    reordered, block_slice = reorder_label_block(block, "[0:1,8:10,11:14,0:1]", "zyxc")
    assert reordered.shape == (1, 2, 3) and block_slice == "[0:1,8:10,11:14]"
    np.testing.assert_array_equal(reordered[0], block[0, :, :, 0])
    swapped, swapped_slice = reorder_label_block(np.zeros((3, 2, 1)), "[4:7,1:3,0:1]", "xyc")
    assert swapped.shape == (1, 2, 3) and swapped_slice == "[0:1,1:3,4:7]"


def test_fix_needs_axes_without_axistags(tmp_path):
    crop_dir = tmp_path / "crops"
    crop_dir.mkdir()
    with h5py.File(crop_dir / "a.h5", "w") as file:
        file["a"] = np.zeros((1, 4, 4, 2), np.uint16)
    project = tmp_path / "p.ilp"
    write_new_project(project, [])
    with pytest.raises(InputError, match="no axistags"):
        fix_project(project, crop_dir, make_backup=False)
    report = fix_project(project, crop_dir, axes="zyxc")
    assert read_ilastik_crop(crop_dir / "a.h5").shape == (2, 4, 4)
    assert (tmp_path / "p.ilp.bak").is_file() and (tmp_path / "crops.bak" / "a.h5").is_file()
    assert report.crops_converted == [crop_dir / "a.h5"]
    with pytest.raises(SteinbockLikeError, match="exists"):
        fix_project(project, crop_dir)  # backups exist already


@pytest.mark.refdata
def test_fix_real_ilastik_project(refdata, tmp_path):
    project = tmp_path / "pixel_classifier.ilp"
    crop_dir = tmp_path / "ilastik_crops"
    shutil.copyfile(refdata / "ilastik_original.ilp", project)
    shutil.copytree(refdata / "ilastik_crops_original", crop_dir)
    for path in [project, *crop_dir.iterdir()]:
        path.chmod(0o644)
    with h5py.File(project, "r") as file:
        labels_before = {
            name: file[f"PixelClassification/LabelSets/{name}/block0000"][()]
            for name in file["PixelClassification/LabelSets"]
            if "block0000" in file[f"PixelClassification/LabelSets/{name}"]
        }
        forests_before = len(file["PixelClassification/ClassifierForests"])

    report = fix_project(project, crop_dir, make_backup=False)
    assert len(report.crops_converted) == 15 and report.label_blocks == 6

    # crops: float32 CYX in steinbock's layout, pixels of the original crops
    crops = list_ilastik_files(crop_dir)
    assert [p.name for p in crops] == sorted(p.name for p in (refdata / "ilastik_crops").iterdir())
    for path in crops:
        ours = read_ilastik_crop(path)
        with h5py.File(refdata / "ilastik_crops_original" / path.name, "r") as file:
            original = file[path.stem][()]
        with h5py.File(refdata / "ilastik_crops" / path.name, "r") as file:
            reference = file["crop"][()]
            reference_attrs = dict(file["crop"].attrs)
        with h5py.File(path, "r") as file:
            assert dict(file["crop"].attrs) == reference_attrs
        assert ours.shape == reference.shape and ours.dtype == reference.dtype
        np.testing.assert_array_equal(ours, np.moveaxis(original[0], -1, 0))
        # steinbock's fix made the reference crops from these originals: no difference
        np.testing.assert_array_equal(ours, reference)
        assert float(np.max(np.abs(ours.astype(np.float64) - reference))) == 0.0

    summary = read_project(project)
    assert len(summary.lanes) == 15
    shapes = {}
    for lane in summary.lanes:
        file_part, dataset = lane.file_path.rsplit("/", 1)
        assert dataset == "crop" and not file_part.startswith("/")
        crop_path = project.parent / file_part
        assert crop_path.is_file() and crop_path.parent == crop_dir
        assert lane.shape == read_ilastik_crop(crop_path).shape
        assert lane.axes == ["c", "y", "x"]
        assert lane.nickname == crop_path.stem
        assert lane.info_class == "RelativeFilesystemDatasetInfo"
        shapes[len(shapes)] = lane.shape
    assert len({lane.file_path for lane in summary.lanes}) == 15

    assert len(summary.label_blocks) == 6
    for block in summary.label_blocks:
        lane_index, block_shape, block_slice = block.lane, block.data.shape, block.block_slice
        bounds = [tuple(map(int, part.split(":"))) for part in block_slice[1:-1].split(",")]
        assert tuple(stop - start for start, stop in bounds) == block_shape
        assert bounds[0] == (0, 1)
        lane_shape = shapes[lane_index]
        assert all(stop <= size for (_, stop), size in zip(bounds[1:], lane_shape[1:], strict=True))
    with h5py.File(project, "r") as file:
        for name, before in labels_before.items():
            after = file[f"PixelClassification/LabelSets/{name}/block0000"][()]
            np.testing.assert_array_equal(after, before[0, :, :, 0][np.newaxis])
        assert len(file["Input Data/local_data"]) == 0
        assert len(file["PixelClassification/ClassifierForests"]) == forests_before

    export = summary.export
    assert export["ExportDtype"] == "uint16" and export["OutputFormat"] == "tiff"
    assert export["OutputAxisOrder"] == "yxc"
    assert (export["InputMin"], export["InputMax"], export["ExportMin"], export["ExportMax"]) == (
        0.0,
        1.0,
        0,
        65535,
    )
    assert export["OutputFilenameFormat"] == "ilastik_probabilities/{nickname}.tiff"

    # a second fix finds everything done and changes nothing
    again = fix_project(project, crop_dir, make_backup=False)
    assert again.crops_converted == [] and again.label_blocks == 0
    assert read_project(project).lanes == summary.lanes


@pytest.mark.refdata
def test_new_project_layout_matches_real_ilastik(refdata, tmp_path):
    """Every group/dataset a fresh project has exists in a real 1.3.3 project with the same kind."""
    crops = make_crops(tmp_path / "ilastik_crops", [(4, 50, 50)])
    project = tmp_path / "new.ilp"
    write_new_project(project, [lane_for_crop(crops[0], project, (4, 50, 50))])
    ours = structure(project)
    real = structure(refdata / "ilastik_original.ilp")
    # Only trained state (forests, bookmarks, classifier factory) and OutputAxisOrder, which
    # ilastik writes only once set in the GUI, are ours alone or theirs alone.
    only_ours = set(ours) - set(real)
    assert only_ours == {"Prediction Export/OutputAxisOrder"}
    for name in ours:
        if name in real:
            assert ours[name] == real[name], name
    with h5py.File(project, "r") as mine, h5py.File(refdata / "ilastik_original.ilp") as theirs:
        for name in ("Input Data/infos/lane0000/Raw Data", "FeatureSelections"):
            assert sorted(mine[name]) == sorted(theirs[name])
        assert mine["PixelClassification/LabelNames"].attrs["isEmpty"] == np.False_
