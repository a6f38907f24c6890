"""Whole-slide tiling: stitched objects across tile borders, empty tiles skipped."""

import json

import numpy as np
import pytest
import tifffile
from cli_helpers import run
from scipy import ndimage

from steinbock_like.io.masks import read_mask
from steinbock_like.metrics import object_f1
from steinbock_like.testing import two_channel_tissue
from steinbock_like.tiles import TilingInfo, plan_tiles, segment_in_tiles, tile_signal


def split_objects(whole: np.ndarray, tiled: np.ndarray, tiles) -> int:
    """Objects of ``whole`` crossing a core border that ``tiled`` gives as 2+ large parts."""
    borders = np.zeros(whole.shape, bool)
    for tile in tiles:
        y0, y1, x0, x1 = tile.core
        borders[y0, x0:x1] = borders[y1 - 1, x0:x1] = True
        borders[y0:y1, x0] = borders[y0:y1, x1 - 1] = True
    split = 0
    for label in np.unique(whole[borders]):
        if label == 0:
            continue
        inside = tiled[whole == label]
        parts = np.bincount(inside[inside > 0])
        split += int(np.count_nonzero(parts >= 0.2 * inside.size) > 1)
    return split


def test_objects_cut_by_tile_borders_become_one_object():
    rng = np.random.default_rng(1)
    image = np.zeros((300, 420), np.float32)
    # long bars straddling the core borders at 100 / 200 (rows) and 140 / 280 (columns)
    for y, x in rng.integers(10, 280, size=(60, 2)):
        image[y : y + 5, x : x + 30] = 1
        image[x % 280 : x % 280 + 25, y : y + 4] = 1
    whole, count = ndimage.label(image > 0)
    tiles = plan_tiles(image.shape, 100, 40)

    def segment(tile):
        return {"cells": ndimage.label(image[tile.outer_slices] > 0)[0]}

    labels, info = segment_in_tiles(segment, image.shape, tile_size=100, margin=40)
    stitched = labels["cells"]
    assert (info.tiles, info.skipped) == (len(tiles), 0) == (3 * 5, 0)
    assert stitched.max() == count and object_f1(whole, stitched) == 1.0
    assert split_objects(whole, stitched, tiles) == 0
    # without a margin the same objects are cut at the borders
    cut, _ = segment_in_tiles(segment, image.shape, tile_size=100, margin=0)
    assert split_objects(whole, cut["cells"], tiles) > 10


def test_empty_tiles_are_skipped_and_counted():
    image = np.zeros((400, 1000), np.float32)
    image[:, 600:] = 1  # tissue on 40% of the slide, 60% empty
    seen = []

    def segment(tile):
        seen.append(tile)
        return {"cells": (image[tile.outer_slices] > 0).astype(np.uint32)}

    labels, info = segment_in_tiles(
        segment,
        image.shape,
        tile_size=200,
        margin=20,
        signal=lambda tile: tile_signal(image, tile),
        min_signal=0.01,
    )
    assert (info.tiles, info.skipped, len(seen)) == (10, 6, 4)
    assert info.as_dict() == {"tiles": 10, "tiles_skipped": 6}
    assert all(tile.core[2] >= 600 for tile in seen) and not labels["cells"][:, :580].any()
    # a threshold of 0 skips nothing
    _, everything = segment_in_tiles(segment, image.shape, tile_size=200, margin=20)
    assert everything.skipped == 0 and isinstance(everything, TilingInfo)


@pytest.fixture(scope="module")
def segmenter(mesmer_model):
    pytest.importorskip("onnxruntime")
    from steinbock_like.segment.mesmer import MesmerSegmenter

    return MesmerSegmenter(mesmer_model, threads=2)


def test_tiled_mesmer_gives_the_whole_image_objects(segmenter):
    nuclear, membrane = two_channel_tissue((640, 640), spacing=24, seed=4)
    whole = segmenter.segment(nuclear, membrane, pixel_size_um=0.5, chunk_size=0)["whole-cell"]
    tiled = segmenter.segment(nuclear, membrane, pixel_size_um=0.5, chunk_size=320)["whole-cell"]
    assert segmenter.tiling.as_dict() == {"tiles": 4, "tiles_skipped": 0}
    assert 600 <= whole.max() <= 800
    assert object_f1(whole, tiled) >= 0.999
    assert split_objects(whole, tiled, plan_tiles(whole.shape, 320, 256)) == 0


def test_mesmer_cli_skips_empty_tiles_and_says_how_many(mesmer_model, tmp_path, monkeypatch):
    pytest.importorskip("onnxruntime")
    monkeypatch.setenv("STEINBOCK_LIKE_MODELS", str(mesmer_model.parent))
    nuclear, membrane = two_channel_tissue((256, 512), spacing=24, seed=5)
    image = np.zeros((2, 256, 1280), np.float32)
    image[0, :, 768:], image[1, :, 768:] = nuclear, membrane  # 60% of the slide empty
    (tmp_path / "img").mkdir()
    tifffile.imwrite(tmp_path / "img" / "slide.tiff", image)
    (tmp_path / "panel.csv").write_text("channel,name,keep,deepcell\nA,a,1,1\nB,b,1,2\n")
    args = ["--data", tmp_path, "segment", "mesmer", "--pixelsize", "0.5", "--chunk-size", "256"]
    assert run(*args, "--tile-min-signal", "0.01") == 0
    metadata = json.loads((tmp_path / "masks" / "run_metadata.json").read_text())
    info = metadata["images"]["slide"]["info"]
    assert (info["tiles"], info["tiles_skipped"]) == (5, 3)
    mask = read_mask(tmp_path / "masks" / "slide.tiff")
    assert not mask[:, :760].any() and 150 <= info["cells"] <= 260


@pytest.mark.parametrize("minmax", [False, True])
@pytest.mark.parametrize("aggr", ["mean", "median"])
def test_large_images_stream_the_same_mesmer_input(tmp_path, monkeypatch, minmax, aggr):
    import pandas as pd

    from steinbock_like.io.images import read_image, write_image
    from steinbock_like.segment.mesmer import mesmer_input
    from steinbock_like.tasks import mesmer as task_module

    rng = np.random.default_rng(3)
    image = rng.gamma(1.0, 5.0, size=(4, 300, 500)).astype(np.float32)
    image[3] = 7  # a constant channel
    write_image(tmp_path / "a.tiff", image)
    panel = pd.DataFrame(
        {"channel": list("abcd"), "name": list("abcd"), "keep": 1, "deepcell": [1, 2, 1, 2]}
    )
    task = task_module.MesmerTask(
        tmp_path / "model.onnx", panel, "whole-cell", 1.0, minmax, False, aggr, 1, 128
    )
    monkeypatch.setattr(task_module, "STREAM_BAND_ROWS", 32)  # 10 bands
    with task._streamed_input(tmp_path / "a.tiff") as scratch:
        streamed = scratch.read(slice(None), slice(None))
        region = scratch.read(slice(40, 90), slice(310, 333))
        bands = np.concatenate(list(scratch.channel_bands(1)))
    expected = mesmer_input(read_image(tmp_path / "a.tiff"), panel, minmax=minmax, aggr=aggr)
    assert np.array_equal(streamed, np.stack(expected, axis=-1))
    assert np.array_equal(region, streamed[40:90, 310:333]) and np.array_equal(bands, expected[1])
    task.chunk_size = 1000  # small enough to read whole
    assert task._streamed_input(tmp_path / "a.tiff") is None


def test_an_object_centred_on_a_core_edge_is_owned_by_one_tile_only():
    from steinbock_like.tiles import Tile, owned_objects

    upper = Tile(core=(0, 10, 0, 20), outer=(0, 14, 0, 20))
    lower = Tile(core=(10, 20, 0, 20), outer=(6, 20, 0, 20))
    image = np.zeros((20, 20), np.int32)
    image[8:13, 3:6] = 1  # box rows 8..12: centre row 10.0, the first row of the lower core
    image[7:12, 10:13] = 2  # centre row 9.0: the upper core
    owners = {
        "upper": [label for label, _ in owned_objects(image[0:14], upper)],
        "lower": [label for label, _ in owned_objects(image[6:20], lower)],
    }
    assert owners == {"upper": [2], "lower": [1]}


def test_stitching_never_paints_over_an_object_already_placed():
    from steinbock_like.tiles import Tile, stitch_tile

    output = np.zeros((10, 10), np.uint32)
    output[0:4, 0:4] = 1
    tile = Tile(core=(0, 10, 0, 10), outer=(0, 10, 0, 10))
    labels = np.zeros((10, 10), np.int32)
    labels[3:7, 3:7] = 5  # shares 1 of its 16 pixels with object 1
    labels[0:2, 0:3] = 6  # 6 of 6 pixels taken: dropped
    assert stitch_tile(output, labels, tile, next_label=2) == 3
    assert output[3, 3] == 1 and np.count_nonzero(output == 1) == 16
    assert np.count_nonzero(output == 2) == 15 and output[6, 6] == 2
    assert output.max() == 2


@pytest.mark.parametrize("percentile", [99.9, 50.0, 0.0, 100.0])
def test_streamed_channel_stats_equal_the_whole_channel_stats(percentile):
    from steinbock_like.segment.mesmer.preprocess import channel_stats, streamed_channel_stats

    rng = np.random.default_rng(7)
    for values in (
        rng.normal(0, 3, size=(97, 61)),  # negatives, no zeros
        rng.exponential(2, size=(97, 61)) * (rng.random((97, 61)) < 0.2),  # mostly zero
        rng.integers(0, 4, size=(97, 61)),  # heavy ties
        np.zeros((97, 61)),  # all zero: no clip value
    ):
        channel = values.astype(np.float32)
        expected = channel_stats(channel, percentile)
        bands = [channel[start : start + 10] for start in range(0, 97, 10)]
        assert streamed_channel_stats(lambda b=bands: iter(b), percentile) == expected


def test_renumbering_and_counting_in_bands_close_gaps_in_place(monkeypatch):
    from steinbock_like import tiles

    labels = np.array([[0, 5, 5, 0], [9, 9, 0, 2], [0, 0, 7, 7]], dtype=np.uint32)
    monkeypatch.setattr(tiles, "_row_bands", lambda array: (slice(i, i + 1) for i in range(3)))
    assert tiles.count_labels(labels) == 4
    renumbered = tiles._renumber(labels)
    assert renumbered is labels  # no second whole-image array
    assert labels.tolist() == [[0, 2, 2, 0], [4, 4, 0, 1], [0, 0, 3, 3]]
