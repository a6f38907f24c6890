"""Mesmer pre/post-processing, tiling and chunking on hand-computable cases (no network)."""

import numpy as np
import pandas as pd
import pytest
from scipy import ndimage

from steinbock_like.errors import SteinbockLikeError
from steinbock_like.segment.mesmer import mesmer_input
from steinbock_like.segment.mesmer.postprocess import (
    WatershedParams,
    deep_watershed,
    fill_small_holes,
    find_markers,
    relabel_sequential,
    remove_small_labels,
    resize_labels,
)
from steinbock_like.segment.mesmer.preprocess import (
    channel_stats,
    clip_channel,
    mesmer_preprocess,
    model_resolution_shape,
    normalize_channel,
    percentile_clip_value,
    resize_channels,
)
from steinbock_like.segment.mesmer.segmenter import compartments_of
from steinbock_like.segment.mesmer.tiling import (
    blend_window_1d,
    plan_axis,
    plan_tiles,
    spline_ramp_window,
    tile_image,
    untile_image,
)
from steinbock_like.tiles import plan_tiles as plan_chunks
from steinbock_like.tiles import segment_in_tiles

# ---------------------------------------------------------------- preprocessing


def test_model_resolution_shape_truncates_like_deepcell():
    assert model_resolution_shape((60, 60), 1.0) == (120, 120)
    assert model_resolution_shape((87, 103), 0.75) == (130, 154)  # int(130.5), int(154.5)
    assert model_resolution_shape((87, 103), 0.5) == (87, 103)


def test_percentile_clip_uses_nonzero_pixels_only():
    channel = np.array([[0, 0, 1, 2], [3, 4, 0, 0]], dtype=np.float32)
    # non-zero values 1, 2, 3, 4: linear percentile 99.9 = 1 + 0.999 * 3
    value = percentile_clip_value(channel)
    assert value == pytest.approx(3.997, abs=1e-5)
    clipped = clip_channel(channel, value)
    assert clipped[1, 1] == pytest.approx(3.997, abs=1e-5)
    assert clipped[0, 2] == 1 and clipped[0, 0] == 0


def test_blank_channel_is_not_clipped_and_normalises_to_zero():
    blank = np.zeros((8, 8), dtype=np.float32)
    assert percentile_clip_value(blank) is None
    stats = channel_stats(blank)
    assert stats.is_constant
    assert np.array_equal(normalize_channel(blank, stats), blank)


def test_constant_channel_becomes_zeros():
    image = np.full((16, 16, 2), 3.0, dtype=np.float32)
    image[..., 1] = np.arange(16)[None, :]
    out = mesmer_preprocess(image)
    assert np.all(out[..., 0] == 0)
    assert out[..., 1].min() == 0 and out[..., 1].max() == pytest.approx(1.0)


def test_two_level_image_normalises_to_zero_and_one():
    channel = np.zeros((64, 64), dtype=np.float32)
    channel[:, 32:] = 5
    out = normalize_channel(channel, channel_stats(channel))
    assert out.dtype == np.float32
    assert np.array_equal(np.unique(out), [0.0, 1.0])
    assert np.all(out[:, 32:] == 1) and np.all(out[:, :32] == 0)


def test_chunk_statistics_override_local_range():
    # a chunk whose values span only half of the image-wide range
    stats = channel_stats(np.array([[0.0, 10.0]], dtype=np.float32))
    chunk = np.zeros((32, 32), dtype=np.float32)
    chunk[:, 16:] = 5
    out = normalize_channel(chunk, stats)
    local = normalize_channel(chunk, channel_stats(chunk))
    # CLAHE rescales its result, so levels agree, but the flat case differs:
    assert np.array_equal(np.unique(out), np.unique(local))
    flat = np.full((32, 32), 5.0, dtype=np.float32)
    assert np.all(normalize_channel(flat, stats) == 0)


def test_resize_is_bilinear_with_half_pixel_centres():
    ramp = np.tile(np.arange(4, dtype=np.float32) * 4, (4, 1))
    image = np.stack([ramp, ramp], axis=-1)
    out = resize_channels(image, (8, 8))
    assert out.shape == (8, 8, 2) and out.dtype == np.float32
    # output column j samples input x = (j + 0.5) / 2 - 0.5; the ramp is 4 x
    expected = 4 * ((np.arange(1, 7) + 0.5) / 2 - 0.5)
    np.testing.assert_allclose(out[3, 1:7, 0], expected, rtol=1e-6)
    assert resize_channels(image, (4, 4)) is image


# ---------------------------------------------------------------- tiling


def test_plan_axis_small_axis_is_reflect_padded_to_one_tile():
    axis = plan_axis(101)
    assert axis.reflect_pad == (77, 78)  # extra pixel after
    assert axis.constant_pad == (0, 0)
    assert axis.starts == (0,)


def test_plan_axis_large_axis():
    axis = plan_axis(500)
    # stride 0.75 * 256 = 192; ceil((500 - 256) / 192 + 1) = 3 tiles covering 640 px
    assert axis.stride == 192
    assert axis.starts == (0, 192, 384)
    assert axis.constant_pad == (70, 70)
    assert axis.overlaps(0) == (0, 64) and axis.overlaps(1) == (64, 64)
    assert axis.overlaps(2) == (64, 0)
    odd = plan_axis(501)
    assert odd.constant_pad == (70, 69)  # extra pixel before


def test_spline_window_hand_values():
    # triangle window of 8: 1/8, 3/8, 5/8, 7/8, ...; outer quarters (2t)^2/2,
    # middle 1 - (2 (1 - t))^2 / 2; divided by the peak 31/32
    expected = np.array([1, 9, 23, 31, 31, 23, 9, 1]) / 32 / (31 / 32)
    np.testing.assert_allclose(spline_ramp_window(8), expected)
    weights = blend_window_1d(10, 4, 0)
    np.testing.assert_allclose(weights[:4], expected[:4])
    assert np.all(weights[4:] == 1)


def test_untile_of_tile_is_identity_when_tiles_are_pasted():
    rng = np.random.default_rng(0)
    image = rng.random((256, 600, 3)).astype(np.float32)
    plan = plan_tiles(image.shape[:2])
    assert not plan.blends  # the padded height equals the tile
    tiles = tile_image(image, plan)
    assert tiles.shape == (3, 256, 256, 3)
    assert np.array_equal(untile_image(tiles, plan), image)


def test_untile_of_tile_with_blending_reproduces_image():
    rng = np.random.default_rng(1)
    image = rng.random((520, 600, 2)).astype(np.float32) + 1
    plan = plan_tiles(image.shape[:2])
    assert plan.blends and plan.num_tiles == 9
    restored = untile_image(tile_image(image, plan), plan)
    assert restored.shape == image.shape and restored.dtype == np.float32
    # the spline ramps of two neighbours sum to 1.000122 (deepcell's window is
    # normalised by its peak), so overlaps are amplified by at most that squared
    ratio = restored / image
    assert ratio.max() == pytest.approx(1.000122**2, rel=1e-5)
    assert ratio.min() == pytest.approx(1.0, abs=1e-6)


def test_small_image_round_trip_through_reflect_padding():
    image = np.arange(60 * 70 * 2, dtype=np.float32).reshape(60, 70, 2)
    plan = plan_tiles(image.shape[:2])
    tiles = tile_image(image, plan)
    assert tiles.shape == (1, 256, 256, 2)
    # reflect padding: the row above the image mirrors row 1
    assert np.array_equal(tiles[0, plan.y.reflect_pad[0] - 1, plan.x.reflect_pad[0]], image[1, 0])
    assert np.array_equal(untile_image(tiles, plan), image)


# ---------------------------------------------------------------- post-processing


def test_remove_small_labels():
    labels = np.zeros((10, 10), dtype=np.int32)
    labels[0, :3] = 1  # 3 px
    labels[2:6, 2:6] = 2  # 16 px
    labels[7, :] = 3  # 10 px
    out = remove_small_labels(labels, 15)
    assert set(np.unique(out)) == {0, 2}
    assert np.count_nonzero(out == 2) == 16


def test_fill_small_holes_fills_below_threshold_only():
    labels = np.zeros((20, 40), dtype=np.int32)
    labels[1:7, 1:7] = 1
    labels[3:5, 3:5] = 0  # 4-px hole
    labels[1:8, 10:17] = 2
    labels[2:7, 11:14] = 0  # 15-px hole: not below 15
    labels[1:8, 20:27] = 3
    labels[2:7, 21:23] = 0  # 10-px hole holding another object
    labels[3:5, 21] = 4
    out = fill_small_holes(labels, 15)
    assert np.all(out[3:5, 3:5] == 1)
    assert np.all(out[2:7, 11:14] == 0)
    # deepcell's rule overwrites everything in a small enclosed region, other labels too
    assert np.all(out[2:7, 21:23] == 3)
    assert np.array_equal(out[labels == 2], labels[labels == 2])


def test_fill_small_holes_leaves_objects_without_holes():
    labels = np.zeros((10, 10), dtype=np.int32)
    labels[2:8, 2:8] = 1
    labels[2:4, 2:4] = 0  # a notch in the corner of the box, not a hole
    assert np.array_equal(fill_small_holes(labels, 15), labels)


def test_relabel_sequential_keeps_order():
    labels = np.array([[0, 5, 5], [9, 0, 2]])
    assert np.array_equal(relabel_sequential(labels), [[0, 2, 2], [3, 0, 1]])


def test_resize_labels_nearest_like_opencv():
    labels = np.array([[1, 2], [3, 4]], dtype=np.int32)
    up = resize_labels(labels, (4, 4))
    assert np.array_equal(up, np.repeat(np.repeat(labels, 2, 0), 2, 1))
    assert np.array_equal(resize_labels(up, (2, 2)), labels)
    # 2x down picks even source rows/columns: floor(i * 2)
    big = np.arange(16).reshape(4, 4)
    assert np.array_equal(resize_labels(big, (2, 2)), [[0, 2], [8, 10]])
    # 5 -> 3: floor(i * 5 / 3) = 0, 1, 3
    assert np.array_equal(resize_labels(np.arange(5)[None, :], (1, 3)), [[0, 1, 3]])


def test_find_markers_h_maxima():
    distance = np.zeros((20, 20), dtype=np.float32)
    distance[5, 5] = 1.0
    distance[5, 6] = 1.0  # plateau: one marker
    distance[15, 15] = 0.5
    distance[2, 15] = 0.05  # below h
    markers = find_markers(distance, h=0.075, radius=2)
    assert markers.max() == 2
    assert markers[5, 5] == markers[5, 6] == 1  # raster order
    assert markers[15, 15] == 2
    assert markers[2, 15] == 0
    assert find_markers(np.zeros((5, 5), np.float32), 0.1, 2).max() == 0


def _two_cell_maps():
    yy, xx = np.mgrid[:60, :100]
    distance = np.zeros((60, 100), dtype=np.float32)
    interior = np.zeros((60, 100), dtype=np.float32)
    for cy, cx in ((30, 30), (30, 70)):
        r = np.hypot(yy - cy, xx - cx)
        distance = np.maximum(distance, np.clip(1 - r / 12, 0, 1).astype(np.float32))
        interior = np.maximum(interior, (r < 12).astype(np.float32))
    return distance, interior


def test_deep_watershed_two_cells():
    distance, interior = _two_cell_maps()
    labels = deep_watershed(distance, interior, WatershedParams(interior_smooth=0))
    assert labels.max() == 2
    assert labels[30, 30] == 1 and labels[30, 70] == 2
    assert np.count_nonzero(labels == 1) == np.count_nonzero(
        np.hypot(*np.mgrid[-30:30, -30:70]) < 12
    )


def test_deep_watershed_drops_small_objects():
    distance, interior = _two_cell_maps()
    interior[5:8, 90:93] = 1  # 9-px blob with its own peak
    distance[6, 91] = 1
    labels = deep_watershed(distance, interior, WatershedParams(interior_smooth=0))
    assert labels.max() == 2 and labels[6, 91] == 0


def test_compartments_of():
    assert compartments_of("both") == ("whole-cell", "nuclear")
    assert compartments_of("nuclear") == ("nuclear",)
    with pytest.raises(SteinbockLikeError, match="unknown compartment 'cytoplasm'"):
        compartments_of("cytoplasm")


# ---------------------------------------------------------------- channel groups


def _panel(groups):
    return pd.DataFrame(
        {
            "channel": [f"c{i}" for i in range(len(groups))],
            "name": [f"n{i}" for i in range(len(groups))],
            "deepcell": groups,
        }
    )


def test_mesmer_input_groups_and_aggregation():
    image = np.stack([np.full((3, 4), v, dtype=np.float32) for v in (1, 2, 4, 8, 16)])
    image[:, 0, 0] = 0  # give each channel a range for minmax
    panel = _panel([np.nan, 2.0, 1.0, 2.0, np.nan])
    nuclear, membrane = mesmer_input(image, panel)
    assert nuclear.dtype == np.float32 and nuclear.shape == (3, 4)
    assert nuclear[1, 1] == 4 and membrane[1, 1] == 5  # mean of 2 and 8
    nuclear, membrane = mesmer_input(image, panel, minmax=True)
    assert nuclear[1, 1] == 1 and membrane[1, 1] == 1 and membrane[0, 0] == 0
    _, summed = mesmer_input(image, panel, aggr="sum")
    assert summed[1, 1] == 10


def test_mesmer_input_zscore():
    image = np.stack([np.array([[0, 2]], dtype=np.float32)] * 2)
    nuclear, membrane = mesmer_input(image, _panel([1, 2]), zscore=True)
    np.testing.assert_allclose(nuclear, [[-1, 1]])


def test_mesmer_input_accepts_string_float_labels():
    image = np.ones((2, 2, 2), dtype=np.float32)
    nuclear, _ = mesmer_input(image, _panel(["1.0", "2.0"]))
    assert nuclear.shape == (2, 2)


@pytest.mark.parametrize("groups", [[1, 1, np.nan], [np.nan, np.nan, np.nan], [1, 2, 3]])
def test_mesmer_input_needs_exactly_two_groups(groups):
    image = np.ones((3, 2, 2), dtype=np.float32)
    with pytest.raises(SteinbockLikeError, match="exactly two channel groups"):
        mesmer_input(image, _panel(groups))


def test_mesmer_input_panel_errors():
    image = np.ones((3, 2, 2), dtype=np.float32)
    with pytest.raises(SteinbockLikeError, match="panel lists 2 channels"):
        mesmer_input(image, _panel([1, 2]))
    with pytest.raises(SteinbockLikeError, match="no 'deepcell' column"):
        mesmer_input(image, _panel([1, 2, 3]).drop(columns="deepcell"))
    with pytest.raises(SteinbockLikeError, match="aggregation"):
        mesmer_input(image, _panel([1, 2, np.nan]), aggr="mode")


# ---------------------------------------------------------------- chunking


def test_chunk_cores_cover_image_once():
    chunks = plan_chunks((1000, 730), tile_size=300, margin=40)
    covered = np.zeros((1000, 730), dtype=int)
    for chunk in chunks:
        y0, y1, x0, x1 = chunk.core
        covered[y0:y1, x0:x1] += 1
        oy0, oy1, ox0, ox1 = chunk.outer
        assert oy0 == max(0, y0 - 40) and oy1 == min(1000, y1 + 40)
        assert ox0 == max(0, x0 - 40) and ox1 == min(730, x1 + 40)
    assert np.all(covered == 1)
    assert len(chunks) == 4 * 3


def _disc_image(shape, count, seed):
    rng = np.random.default_rng(seed)
    image = np.zeros(shape, dtype=np.float32)
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    for cy, cx, r in zip(
        rng.integers(0, shape[0], count),
        rng.integers(0, shape[1], count),
        rng.integers(4, 12, count),
        strict=True,
    ):
        image[np.hypot(yy - cy, xx - cx) < r] = 1
    return image


def _label_region(image):
    def segment_region(tile):
        labels, _ = ndimage.label(image[tile.outer_slices] > 0)
        return {"whole-cell": labels}

    return segment_region


def test_chunked_stitching_reproduces_whole_image_objects():
    image = _disc_image((400, 500), 150, seed=3)
    whole, count = ndimage.label(image > 0)
    stitched, info = segment_in_tiles(_label_region(image), image.shape, tile_size=120, margin=40)
    stitched = stitched["whole-cell"]
    assert (info.tiles, info.skipped) == (4 * 5, 0)
    assert stitched.max() == count
    # same partition: a one-to-one mapping between labels
    pairs = np.unique(np.stack([whole.ravel(), stitched.ravel().astype(int)]), axis=1)
    assert pairs.shape[1] == count + 1
    assert np.array_equal(stitched > 0, whole > 0)
