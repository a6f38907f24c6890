"""Pure preprocess functions: hot pixel filter, axes, acquisition planning, .txt writing."""

import numpy as np
import pytest

from steinbock_like.io.imc import AcquisitionInfo, read_txt, read_txt_channels, write_imc_txt
from steinbock_like.preprocess.external import to_cyx
from steinbock_like.preprocess.hotpixels import filter_hot_pixels
from steinbock_like.preprocess.imc import plan_images
from steinbock_like.preprocess.panel import panel_from_channels


def brute_force_hpf(image, delta):
    """The definition, pixel by pixel: the 8 neighbours with mirrored edges."""
    out = image.copy()
    _, height, width = image.shape

    def mirror(i, n):
        return -i if i < 0 else 2 * (n - 1) - i if i >= n else i

    for c, y, x in np.ndindex(image.shape):
        neighbours = [
            image[c, mirror(y + dy, height), mirror(x + dx, width)]
            for dy in (-1, 0, 1)
            for dx in (-1, 0, 1)
            if (dy, dx) != (0, 0)
        ]
        top = max(neighbours)
        if image[c, y, x] - top > delta:
            out[c, y, x] = top
    return out


def test_hot_pixel_filter_matches_its_definition():
    rng = np.random.default_rng(0)
    image = rng.gamma(1.0, 5.0, (2, 9, 11)).astype(np.float32)
    image[0, 0, 0] = 500  # corner
    image[1, 4, 10] = 300  # edge
    image[1, 5, 5] = 80
    expected = brute_force_hpf(image, 50.0)
    assert (expected != image).sum() >= 3
    np.testing.assert_array_equal(filter_hot_pixels(image, 50.0), expected)
    inplace = image.copy()
    filter_hot_pixels(inplace, 50.0, out=inplace)
    np.testing.assert_array_equal(inplace, expected)


@pytest.mark.parametrize(
    ("shape", "axes", "expected"),
    [
        ((5, 6), "YX", (1, 5, 6)),
        ((3, 5, 6), "CYX", (3, 5, 6)),
        ((5, 6, 3), "YXS", (3, 5, 6)),
        ((5, 6, 3), None, (3, 5, 6)),  # last axis strictly shortest: YXC
        ((3, 5, 6), None, (3, 5, 6)),
        ((4, 3, 5, 6), "ZCYX", (3, 5, 6)),
        ((1, 4, 3, 5, 6), "TZCYX", (3, 5, 6)),
        ((4, 5, 6), "IYX", (4, 5, 6)),
        ((4, 5, 6), "ZYX", (1, 5, 6)),
    ],
)
def test_to_cyx_layouts(shape, axes, expected):
    array = np.arange(np.prod(shape)).reshape(shape)
    assert to_cyx(array, axes).shape == expected


def test_to_cyx_values():
    array = np.arange(2 * 3 * 4 * 5).reshape(2, 3, 4, 5)  # ZCYX
    np.testing.assert_array_equal(to_cyx(array, "ZCYX", projection="sum"), array.sum(0))
    np.testing.assert_array_equal(to_cyx(array, "ZCYX", projection="first"), array[0])
    yxc = np.arange(4 * 5 * 2).reshape(4, 5, 2)
    np.testing.assert_array_equal(to_cyx(yxc, "YXS")[1], yxc[:, :, 1])


def test_plan_images_matches_txt_files_and_names_duplicates():
    acquisitions = [
        AcquisitionInfo(1, channels=("Ag107",)),
        AcquisitionInfo(2, channels=("Ag107",)),
    ]
    mcds = [
        ("raw/a/s1.mcd", acquisitions),
        ("raw/b/s1.mcd", acquisitions[:1]),
        ("raw/s10.mcd", None),
    ]
    txts = ["raw/a/s1_ROI_001_1.txt", "raw/s10_ROI_2_2.txt", "raw/other_1.txt"]
    images, notes = plan_images(mcds, txts, channels=["Ag107"])
    names = [i.name for i in images]
    # reverse name order: s10 first (recovered from its .txt), then both s1 files
    assert names == ["s10_002", "s1_001", "s1_002", "DUPLICATE001_s1_001", "other_1"]
    assert images[0].recovery == "raw/s10_ROI_2_2.txt" and not images[0].source_readable
    assert images[1].recovery == "raw/a/s1_ROI_001_1.txt"
    assert images[3].recovery is None
    assert images[4].acquisition is None and images[4].info["source_file"] == "other_1.txt"
    assert any("duplicate" in n for n in notes)
    # a channel the acquisition lacks: left out with a note, as steinbock does
    images, notes = plan_images(mcds[:1], [], channels=["Ir191"])
    assert images == [] and len(notes) == 2


def test_write_imc_txt_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    image = rng.gamma(1.0, 3.0, (3, 7, 5)).astype(np.float32)
    path = tmp_path / "s_ROI_001_1.txt"
    write_imc_txt(path, image, ["Ag107", "Pr141", "Ir191"], ["107Ag", "CK5", "DNA1"])
    assert read_txt_channels(path) == (["Ag107", "Pr141", "Ir191"], ["107Ag", "CK5", "DNA1"])
    np.testing.assert_array_equal(read_txt(path), image)
    np.testing.assert_array_equal(read_txt(path, ["Ir191", "Ag107"]), image[[2, 0]])


def test_panel_from_channels_sorts_by_mass_and_names_duplicates():
    panel = panel_from_channels([(["Ir191", "Ag107"], ["DNA", "x"]), (["Ir193"], ["DNA"])])
    assert list(panel["channel"]) == ["Ag107", "Ir191", "Ir193"]
    assert list(panel["name"]) == ["x", "DNA 1", "DNA 2"]
    assert list(panel["ilastik"]) == [1, 2, 3]
