"""OpenCV's linear resize of a whole image, computed window by window (cellpose/resize.py).

Cellpose 3 resizes its input (two channels) and the network's output (three
channels) with ``cv2.resize``; OpenCV's wheels take two different code paths for
them. Both are reproduced to the bit, for any window, from the source pixels the
window needs only.
"""

from __future__ import annotations

import numpy as np
import pytest

from steinbock_like.segment.cellpose.resize import (
    ResizedImage,
    axis_taps,
    matches_opencv,
    nearest_matches_opencv,
    nearest_taps,
    resize_window,
    source_window,
)

cv2 = pytest.importorskip("cv2")

SHAPES = [
    ((300, 400), 1.5714285),  # --diameter 7 with an 11 px model
    ((333, 517), 3.0),  # cyto3 with --diameter 10
    ((411, 389), 1.0303),
    ((600, 700), 0.6875),
    ((1000, 1000), 1 / 3.0303),
    ((500, 500), 0.5),  # an exact halving: OpenCV averages 2 x 2 pixels (two channels)
    ((641, 640), 2.0),
]


def _cv2_resize(image: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """cv2.resize of a (C, Y, X) image, as Cellpose calls it (channels last), back to (C, Y, X)."""
    out = cv2.resize(np.moveaxis(image, 0, -1), shape[::-1], interpolation=cv2.INTER_LINEAR)
    return np.moveaxis(out.reshape(*shape, image.shape[0]), -1, 0)


@pytest.mark.parametrize(("channels", "method"), [(2, "opencv"), (3, "ipp")])
@pytest.mark.parametrize(("shape", "rescale"), SHAPES)
def test_windows_equal_cv2_of_the_whole_image(channels, method, shape, rescale):
    rng = np.random.default_rng(len(shape) + channels)
    image = (rng.standard_normal((channels, *shape)) * 3).astype(np.float32)
    size = (int(shape[0] * rescale), int(shape[1] * rescale))
    expected = _cv2_resize(image, size)
    resized = ResizedImage(image, size, method)
    assert resized.shape == (channels, *size)
    assert np.array_equal(resized[:, :, :], expected)
    for _ in range(5):
        y0 = int(rng.integers(0, size[0] - 1))
        x0 = int(rng.integers(0, size[1] - 1))
        y1, x1 = int(rng.integers(y0 + 1, size[0] + 1)), int(rng.integers(x0 + 1, size[1] + 1))
        assert np.array_equal(resized[:, y0:y1, x0:x1], expected[:, y0:y1, x0:x1])
    assert matches_opencv(shape, size, channels, method) == 0.0


def test_the_two_code_paths_differ_and_the_probe_sees_it():
    """Two channels resized as three would be (or the reverse) differ from cv2 by more
    than rounding: the probe that guards a run against another OpenCV notices."""
    assert matches_opencv((300, 400), (471, 628), 2, "ipp") > 1e-6
    assert matches_opencv((300, 400), (471, 628), 3, "opencv") > 1e-6


def test_a_window_reads_only_the_source_it_needs():
    image = np.arange(2 * 400 * 500, dtype=np.float32).reshape(2, 400, 500)
    size = (1200, 1500)  # x3
    reads = []

    def read(y0, y1, x0, x1):
        reads.append((y0, y1, x0, x1))
        return image[:, y0:y1, x0:x1]

    window = resize_window(read, (400, 500), size, (600, 900), (30, 330), method="opencv")
    assert window.shape == (2, 300, 300)
    (y0, y1, x0, x1), = reads  # fmt: skip
    assert (y0, y1, x0, x1) == source_window(
        (400, 500), size, (600, 900), (30, 330), method="opencv"
    )
    assert y1 - y0 <= 102 and x1 - x0 <= 102  # 100 + 1 rows / columns (+1 at the edge)
    assert y0 >= 199 and x0 >= 9
    assert np.array_equal(window, _cv2_resize(image, size)[:, 600:900, 30:330])


def test_axis_taps_at_the_edges():
    # upscaling x3: the first destination pixel lies before the first source pixel
    columns = axis_taps(4, 12, method="opencv", clamp=True)
    assert columns.low[0] == 0 and columns.fraction[0] == 0.0  # clamped
    rows = axis_taps(4, 12, method="opencv", clamp=False)
    assert rows.low[0] == rows.high[0] == 0 and rows.fraction[0] > 0  # repeated, weight kept
    assert columns.low[-1] == columns.high[-1] == 3
    assert np.allclose(axis_taps(4, 12, method="ipp").fraction[4:7], [0.0, 1 / 3, 2 / 3])


NEAREST = [((471, 628), (300, 400)), ((420, 489), (600, 700)), ((1000, 999), (333, 333))]


@pytest.mark.parametrize("dtype", [np.uint16, np.float32])  # Cellpose's masks; uint32 as float32
@pytest.mark.parametrize(("shape", "size"), [*NEAREST, ((250, 251), (500, 502))])
def test_nearest_taps_are_cv2s(dtype, shape, size):
    rng = np.random.default_rng(4)
    mask = rng.integers(0, 60000, size=shape).astype(dtype)
    expected = cv2.resize(mask, size[::-1], interpolation=cv2.INTER_NEAREST)
    rows, cols = nearest_taps(shape[0], size[0]), nearest_taps(shape[1], size[1])
    assert np.array_equal(mask[np.ix_(rows, cols)], expected)
    assert np.array_equal(nearest_taps(shape[0], size[0], 17, 90), rows[17:90])
    assert nearest_matches_opencv(shape, size)


class _FakeNet:
    """A stand-in for Cellpose's network: three outputs that depend on each tile's pixels
    and on where they lie in the tile (as a network's do), no weights to load."""

    nout = 3
    mkldnn = False

    def __init__(self):
        import torch

        self.device = torch.device("cpu")

    def eval(self):
        return self

    def __call__(self, x):
        import torch

        ramp = torch.linspace(0.5, 1.5, x.shape[-1], dtype=x.dtype)
        y = torch.stack([x[:, 0] * ramp, x[:, 1] - x[:, 0], torch.sin(x[:, 0] * 3)], dim=1)
        return y, torch.ones((x.shape[0], 256), dtype=x.dtype)


@pytest.mark.parametrize("rescale", [np.float32(11) / 7.0, np.float32(11) / 16.0, 3.0])
def test_block_outputs_equal_cellposes_whole_image_run(rescale):
    """Cellpose's own run_net on the whole image, resized and resized back as its eval does,
    against blocks computed from the windows their tiles need: the same bits."""
    core = pytest.importorskip("cellpose.core")
    from cellpose import transforms

    from steinbock_like.segment.cellpose.grid import network_grid, network_output

    rng = np.random.default_rng(7)
    image = rng.random((2, 150, 190), dtype=np.float32)
    net = _FakeNet()
    whole, _ = core.run_net(net, np.moveaxis(image, 0, -1)[np.newaxis], rsz=rescale)
    back = transforms.resize_image(whole, 150, 190)[0]  # what eval does (resample)
    size = (int(150 * rescale), int(190 * rescale))
    assert whole.shape[1:3] == size
    resized = ResizedImage(image, size, "opencv")
    grid = network_grid(size)
    for rows, cols in [((0, 80), (0, 100)), ((60, 150), (90, 190)), ((33, 34), (0, 190))]:
        y0, y1, x0, x1 = source_window(size, (150, 190), rows, cols, method="ipp")
        small = network_output(
            resized,
            (slice(y0, y1), slice(x0, x1)),
            lambda tiles: core._forward(net, tiles)[0],
            grid=grid,
            batch_size=3,
        )
        assert np.array_equal(small, np.moveaxis(whole[0, y0:y1, x0:x1], -1, 0))
        flows = resize_window(
            lambda a, b, c, d, s=small, y=y0, x=x0: s[:, a - y : b - y, c - x : d - x],
            size,
            (150, 190),
            rows,
            cols,
            method="ipp",
        )
        expected = np.moveaxis(back[slice(*rows), slice(*cols)], -1, 0)
        assert np.array_equal(flows, expected)
