"""classify ilastik prepare: ilastik images, crops and their HDF5 files."""

import json

import h5py
import numpy as np
import pandas as pd
import pytest

from steinbock_like.classify.ilastik.prepare import (
    bilinear_taps,
    crop_file_name,
    crop_plan,
    draw_crop_positions,
    ilastik_groups,
    ilastik_image,
    resize_bilinear,
    write_prepared_image,
)
from steinbock_like.io.ilastik import (
    AXISTAGS_CYX,
    read_ilastik_crop,
    read_ilastik_dataset,
    read_ilastik_image,
    write_ilastik_image,
)
from steinbock_like.io.images import list_images, write_image
from steinbock_like.io.panel import read_panel

# steinbock 0.16.5 `classify ilastik prepare --cropsize 50 --seed 123` on imc_mock/img
STEINBOCK_CROPS_SEED_123 = [
    "20210305_NE_mockData1_001_x1_y47_w50_h50.h5",
    "20210305_NE_mockData1_002_x46_y2_w50_h50.h5",
    "20210305_NE_mockData1_003_x45_y7_w50_h50.h5",
    "20210305_NE_mockData2_001_x39_y22_w50_h50.h5",
    "20210305_NE_mockData2_002_x22_y12_w50_h50.h5",
    "20210305_NE_mockData2_003_x19_y47_w50_h50.h5",
]


def reference_resize(image: np.ndarray, scale: int) -> np.ndarray:
    """Bilinear resize with half-pixel centres, pixel by pixel in float64 (slow, obvious)."""
    channels, height, width = image.shape
    out = np.zeros((channels, height * scale, width * scale))
    for oy in range(height * scale):
        sy = min(max((oy + 0.5) / scale - 0.5, 0), height - 1)
        y0, wy = int(np.floor(sy)), sy - np.floor(sy)
        y1 = min(y0 + 1, height - 1)
        for ox in range(width * scale):
            sx = min(max((ox + 0.5) / scale - 0.5, 0), width - 1)
            x0, wx = int(np.floor(sx)), sx - np.floor(sx)
            x1 = min(x0 + 1, width - 1)
            top = image[:, y0, x0] * (1 - wx) + image[:, y0, x1] * wx
            bottom = image[:, y1, x0] * (1 - wx) + image[:, y1, x1] * wx
            out[:, oy, ox] = top * (1 - wy) + bottom * wy
    return out


@pytest.mark.parametrize("scale", [2, 3])
def test_resize_matches_half_pixel_bilinear(scale):
    rng = np.random.default_rng(1)
    image = (rng.random((2, 7, 5)) * 100).astype(np.float32)
    ours = resize_bilinear(image, scale)
    assert ours.shape == (2, 7 * scale, 5 * scale) and ours.dtype == np.float32
    np.testing.assert_allclose(ours, reference_resize(image.astype(float), scale), rtol=1e-6)


def test_resize_edges_repeat_and_weights():
    row = np.array([[[0.0, 4.0]]], dtype=np.float32)  # 1 x 1 x 2
    # x positions -0.25, 0.25, 0.75, 1.25 -> clamp, 1/4, 3/4, clamp
    np.testing.assert_array_equal(resize_bilinear(row, 2)[0, 0], [0.0, 1.0, 3.0, 4.0])
    lower, upper, weight = bilinear_taps(3, 2)
    assert lower.tolist() == [0, 0, 0, 1, 1, 2]
    assert upper.tolist() == [1, 1, 1, 2, 2, 2]
    np.testing.assert_array_equal(weight, [0, 0.25, 0.75, 0.25, 0.75, 0])


def test_resize_rounds_like_opencv_fma():
    # OpenCV computes a + (b - a) * w with one rounding; a*(1-w) + b*w rounds differently.
    # Values from cv2 5.0 (cv2.resize(..., fx=2, fy=1, INTER_LINEAR)).
    row = np.array([[[583.32007, 40.21822]]], dtype=np.float32)
    assert resize_bilinear(row, 2)[0, 0, 2] == np.float32(175.99367)


def test_ilastik_image_groups_mean_and_scale():
    image = np.stack([np.full((2, 3), v, np.float32) for v in (1, 3, 10, 20)])
    groups = {2.0: [2, 3], 1.0: [0, 1]}
    out = ilastik_image(image, groups, meanfactor=100, scale=1)
    # groups in ascending label order: mean(1,3)=2, mean(10,20)=15; mean channel 8.5*100
    np.testing.assert_array_equal(out[:, 0, 0], [850.0, 2.0, 15.0])
    no_mean = ilastik_image(image, groups, aggr="max", mean=False, scale=2)
    assert no_mean.shape == (2, 4, 6)
    np.testing.assert_array_equal(no_mean[:, 0, 0], [3.0, 20.0])
    separately = ilastik_image(image, None, channels=[1, 2], meanfactor=1, scale=1)
    np.testing.assert_array_equal(separately[:, 1, 2], [6.5, 3.0, 10.0])


def test_groups_from_panel():
    panel = pd.DataFrame(
        {
            "channel": ["a", "b", "c"],
            "name": ["A", "B", "C"],
            "keep": [True, True, False],
            "ilastik": [2.0, np.nan, 1.0],
        }
    )
    # channel c is not kept: its group is ignored
    assert ilastik_groups(panel) == {2.0: [0]}
    assert ilastik_groups(panel.drop(columns="ilastik")) is None
    assert ilastik_groups(panel.assign(ilastik=np.nan)) is None


def test_crop_positions_follow_steinbock_draws():
    shapes = [("a", (100, 120)), ("small", (40, 200)), ("b", (50, 80)), ("c", (90, 50))]
    positions = draw_crop_positions(shapes, 50, seed=7)
    rng = np.random.default_rng(7)
    x_a, y_a = rng.integers(70), rng.integers(50)  # x first, then y
    x_b = rng.integers(30)  # height == crop size: no draw for y
    y_c = rng.integers(40)  # width == crop size: no draw for x
    # the skipped image draws nothing
    assert positions == {"a": (x_a, y_a), "small": None, "b": (x_b, 0), "c": (0, y_c)}
    assert crop_file_name("img_1", 3, 4, 50) == "img_1_x3_y4_w50_h50.h5"


def test_ilastik_h5_layout(tmp_path):
    image = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    path = tmp_path / "a.h5"
    write_ilastik_image(path, image)
    with h5py.File(path, "r") as file:
        assert list(file) == ["img"]
        dataset = file["img"]
        assert dataset.dtype == np.float32 and dataset.shape == (2, 3, 4)
        assert dataset.attrs["axistags"] == AXISTAGS_CYX
        assert json.loads(dataset.attrs["axistags"])["axes"][0] == {"key": "c", "typeFlags": 1}
        assert dataset.attrs["display_mode"] == "grayscale"
        assert isinstance(dataset.attrs["steinbock"], np.bool_) and dataset.attrs["steinbock"]
        string_type = h5py.check_string_dtype(dataset.attrs.get_id("axistags").dtype)
        assert string_type.encoding == "ascii" and string_type.length is None
    np.testing.assert_array_equal(read_ilastik_image(path), image)
    array, axes, attrs = read_ilastik_dataset(path)
    assert axes == ["c", "y", "x"] and attrs["steinbock"] is True
    assert [p.name for p in tmp_path.iterdir()] == ["a.h5"]  # no temp file left


def test_write_prepared_image_with_crop(tmp_path):
    rng = np.random.default_rng(3)
    image = (rng.random((3, 30, 40)) * 50).astype(np.float32)
    image_path = tmp_path / "img" / "s1.tiff"
    image_path.parent.mkdir()
    write_image(image_path, image)
    panel_path = tmp_path / "panel.csv"
    panel_path.write_text("channel,name,keep,ilastik\nc1,A,1,1\nc2,B,1,1\nc3,C,1,\n")
    positions = crop_plan([image_path], scale=2, cropsize=25, seed=5)
    img_path, crop_path = write_prepared_image(
        image_path,
        read_panel(panel_path),
        tmp_path / "ilastik_img",
        tmp_path / "ilastik_crops",
        positions["s1"],
        cropsize=25,
    )
    prepared = read_ilastik_image(img_path)
    assert prepared.shape == (2, 60, 80)
    x, y = positions["s1"]
    assert crop_path.name == f"s1_x{x}_y{y}_w25_h25.h5"
    np.testing.assert_array_equal(read_ilastik_crop(crop_path), prepared[:, y : y + 25, x : x + 25])
    too_small = crop_plan([image_path], scale=1, cropsize=35, seed=5)
    assert too_small == {"s1": None}


@pytest.mark.refdata
def test_refdata_ilastik_images_and_crops(refdata, tmp_path):
    panel = read_panel(refdata / "panel.csv")
    images = list_images(refdata / "img")
    positions = crop_plan(images, scale=2, cropsize=50, seed=123)
    crop_names = []
    worst = 0.0
    for image_path in images:
        img_path, crop_path = write_prepared_image(
            image_path,
            panel,
            tmp_path / "ilastik_img",
            tmp_path / "ilastik_crops",
            positions[image_path.stem],
            cropsize=50,
        )
        crop_names.append(crop_path.name)
        with (
            h5py.File(img_path, "r") as ours,
            h5py.File(refdata / "ilastik_img" / img_path.name) as ref,
        ):
            assert dict(ours["img"].attrs) == dict(ref["img"].attrs)
            assert list(ours) == list(ref) == ["img"]
            mine, theirs = ours["img"][()], ref["img"][()]
        assert mine.shape == theirs.shape and mine.dtype == theirs.dtype
        difference = np.abs(mine.astype(float) - theirs)
        relative = np.divide(
            difference, np.abs(theirs), out=np.zeros_like(difference), where=theirs != 0
        )
        assert not np.any((theirs == 0) & (difference > 0))
        worst = max(worst, float(relative.max()))
    assert worst < 1e-4, worst  # measured: 1.7e-7 (bit-exact against steinbock 0.16.5 + cv2 5.0)
    assert crop_names == STEINBOCK_CROPS_SEED_123
