"""``utils expand|match|mosaics``: pure functions on hand-computed cases, and the CLI."""

import numpy as np
import pandas as pd
import pytest
import tifffile

from steinbock_like.utils import (
    TileInfo,
    expand_mask,
    match_masks,
    parse_tile_name,
    stitch_tiles,
    tile_grid,
    tile_name,
)
from tests.cli_helpers import run


def test_expand_grows_to_the_nearest_object_within_distance():
    mask = np.array([[1, 0, 0, 0, 0, 0, 2]], dtype=np.uint16)
    # pixel 3 is 3 px from both objects: the tie goes to the lower label's side (1)
    np.testing.assert_array_equal(expand_mask(mask, 1), [[1, 1, 0, 0, 0, 2, 2]])
    np.testing.assert_array_equal(expand_mask(mask, 3), [[1, 1, 1, 1, 2, 2, 2]])
    assert expand_mask(mask, 1).dtype == np.uint16
    diagonal = np.zeros((3, 3), np.uint16)
    diagonal[0, 0] = 5
    # Euclidean: (1, 1) is sqrt(2) away, beyond 1.2, within 1.5
    assert expand_mask(diagonal, 1.2)[1, 1] == 0
    assert expand_mask(diagonal, 1.5)[1, 1] == 5


def test_match_lists_overlapping_pairs_sorted():
    mask1 = np.array([[1, 1, 0, 2], [3, 3, 0, 2]])
    mask2 = np.array([[4, 5, 5, 0], [4, 0, 6, 6]])
    table = match_masks(mask1, mask2)
    assert list(table.columns) == ["Object1", "Object2"]
    assert table.values.tolist() == [[1, 4], [1, 5], [2, 6], [3, 4]]
    assert match_masks(np.zeros((2, 2), int), mask2[:, :2]).empty
    huge = np.array([[4_000_000_000, 7]], np.uint32)
    pairs = match_masks(huge, np.array([[4_000_000_001, 2]], np.uint32))
    assert pairs.values.tolist() == [[7, 2], [4_000_000_000, 4_000_000_001]]


def test_tile_grid_names_and_steinbock_order():
    tiles = list(tile_grid((2, 5, 7), 4))
    assert [(t.x, t.y, t.width, t.height) for t in tiles] == [
        (0, 0, 4, 4), (0, 4, 4, 1), (4, 0, 3, 4), (4, 4, 3, 1),
    ]  # fmt: skip
    name = tile_name("img_1", tiles[3])
    assert name == "img_1_tx4_ty4_tw3_th1"
    assert parse_tile_name(name) == TileInfo("img_1", 4, 4, 3, 1)
    assert parse_tile_name("img_1") is None


def test_stitch_places_tiles_and_relabels():
    tiles = [
        (TileInfo("m", 0, 0, 2, 1), np.array([[1, 1]], np.uint16)),
        (TileInfo("m", 2, 0, 2, 1), np.array([[1, 0]], np.uint16)),
        (TileInfo("m", 0, 1, 1, 1), np.array([[0]], np.uint16)),
    ]
    image = stitch_tiles(tiles)
    np.testing.assert_array_equal(image, [[1, 1, 1, 0], [0, 0, 0, 0]])
    stitched = stitch_tiles(
        [(TileInfo("m", 0, 0, 3, 1), np.array([[7, 0, 7]])),
         (TileInfo("m", 0, 1, 3, 1), np.array([[0, 0, 0]]))],
        relabel=True,
    )  # fmt: skip
    np.testing.assert_array_equal(stitched, [[1, 0, 2], [0, 0, 0]])
    with pytest.raises(ValueError, match=r"has shape \(1, 1\), expected \(2, 2\)"):
        stitch_tiles([(TileInfo("m", 0, 0, 2, 2), np.zeros((1, 1)))])


def test_cli_tile_then_stitch_round_trips_exactly(tmp_path):
    rng = np.random.default_rng(0)
    images = tmp_path / "img"
    images.mkdir()
    image = rng.random((3, 23, 17)).astype(np.float32)
    tifffile.imwrite(images / "a.tiff", image, photometric="minisblack")
    mask = rng.integers(0, 70000, (23, 17)).astype(np.uint32)
    tifffile.imwrite(images / "m.tiff", mask)
    assert run("--data", tmp_path, "utils", "mosaics", "tile", "img", "--size", "10",
               "-o", "tiles", "--mmap") == 0  # fmt: skip
    names = sorted(p.name for p in (tmp_path / "tiles").glob("a_*.tiff"))
    assert len(names) == 6 and "a_tx10_ty20_tw7_th3.tiff" in names
    assert tifffile.imread(tmp_path / "tiles" / "a_tx10_ty20_tw7_th3.tiff").shape == (3, 3, 7)
    assert run("--data", tmp_path, "utils", "mosaics", "stitch", "tiles", "-o", "stitched",
               "-v", "DEBUG") == 0  # fmt: skip
    for name, original in (("a", image), ("m", mask)):
        back = tifffile.imread(tmp_path / "stitched" / f"{name}.tiff")
        assert back.dtype == original.dtype
        np.testing.assert_array_equal(back, original)


def test_cli_expand_and_match(tmp_path):
    for directory in ("a", "b"):
        (tmp_path / directory).mkdir()
    tifffile.imwrite(tmp_path / "a" / "x.tiff", np.array([[1, 0, 0, 2]], np.uint16))
    tifffile.imwrite(tmp_path / "b" / "x.tiff", np.array([[0, 3, 3, 3]], np.uint16))
    assert run("--data", tmp_path, "utils", "expand", "a", "1", "-o", "grown") == 0
    grown = tifffile.imread(tmp_path / "grown" / "x.tiff")
    np.testing.assert_array_equal(grown, [[1, 1, 2, 2]])
    assert run("--data", tmp_path, "utils", "match", "grown", "b", "-o", "pairs") == 0
    table = pd.read_csv(tmp_path / "pairs" / "x.csv")
    assert list(table.columns) == ["grown", "b"]
    assert table.values.tolist() == [[1, 3], [2, 3]]
    # without -o in place, which needs --overwrite like any existing output
    assert run("--data", tmp_path, "utils", "expand", "a", "1") == 1
    assert run("--data", tmp_path, "utils", "expand", "a", "1", "--overwrite") == 0
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "a" / "x.tiff"), grown)
