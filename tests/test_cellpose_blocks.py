"""segment cellpose in blocks: the same objects as the whole image (Cellpose's network grid).

Cellpose evaluates its network on 224 px tiles laid out by the size of the image
it is given; blocks therefore evaluate the whole image's tiles (``grid.py``) and
give the whole image's objects, not merely similar ones.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from cli_helpers import run
from test_tiles import split_objects

from steinbock_like import layout
from steinbock_like.metrics import match_objects, object_f1
from steinbock_like.segment.cellpose.grid import network_grid
from steinbock_like.tiles import plan_tiles

# trained_model (conftest.py): a tiny Cellpose model trained on the example's cells


@pytest.mark.parametrize("shape", [(100, 100), (200, 330), (496, 1000), (2048 + 128, 1111)])
@pytest.mark.parametrize("tile_overlap", [0.1, 0.3])
def test_network_grid_is_cellposes_own(shape, tile_overlap):
    transforms = pytest.importorskip("cellpose.transforms")
    grid = network_grid(shape, tile_overlap=tile_overlap)
    pads = transforms.get_pad_yx(*shape)
    assert (grid.pad_y, grid.pad_x) == (pads[0], pads[2])
    padded = np.zeros((1, shape[0] + pads[0] + pads[1], shape[1] + pads[2] + pads[3]), np.float32)
    _, ysub, xsub, _, _ = transforms.make_tiles(padded, tile_overlap=tile_overlap)
    assert sorted({y0 for y0, _ in ysub}) == grid.starts_y.tolist()
    assert sorted({x0 for x0, _ in xsub}) == grid.starts_x.tolist()
    assert (ysub[0][1] - ysub[0][0], xsub[0][1] - xsub[0][0]) == (grid.tile_y, grid.tile_x)


def whole_and_blocks(tmp_path, *options) -> tuple[str, np.ndarray, np.ndarray]:
    """Segment a 320 px example whole and in 2 x 2 blocks (160 + 24 px) through the CLI;
    assert that each object of either is matched in the other, none split at a seam."""
    from steinbock_like.example import write_example_imc
    from steinbock_like.io.masks import read_mask

    example = write_example_imc(tmp_path, images=1, size=320, seed=5)
    name = example.images[0]
    assert run("--data", tmp_path, "segment", "cellpose", *options, "--block-size", 0) == 0
    assert run(
        "--data", tmp_path, "segment", "cellpose", *options, "--block-size", 160,
        "--block-overlap", 24, "-o", "masks_blocks",
    ) == 0  # fmt: skip
    metadata = json.loads((tmp_path / "masks_blocks" / layout.RUN_METADATA).read_text())
    assert metadata["images"][name]["info"]["tiles"] == 4
    whole = read_mask(tmp_path / layout.MASKS / f"{name}.tiff")
    blocks = read_mask(tmp_path / "masks_blocks" / f"{name}.tiff")
    assert whole.max() > 300  # ~11 px cells: hundreds of objects, not an empty mask
    counts = match_objects(whole, blocks)
    assert (counts.false_positives, counts.false_negatives) == (0, 0)
    assert object_f1(whole, blocks) == 1.0
    assert split_objects(whole, blocks, plan_tiles(whole.shape, 160, 24, even=False)) == 0
    assert np.array_equal(whole > 0, blocks > 0)
    return name, whole, blocks


@pytest.mark.slow
def test_blocks_give_the_whole_images_objects(trained_model, tmp_path):
    """Whole image (--block-size 0) and 2 x 2 blocks agree object for object.

    At 320 px the whole image is two network tiles per axis and each block
    (160 + 24 px) one smaller tile of its own: segmented on its own pixels,
    blocks change some objects (also far from any seam); evaluated on the whole
    image's tiles, none.
    """
    from steinbock_like.io.images import read_image
    from steinbock_like.io.panel import read_panel
    from steinbock_like.segment import cellpose as cp

    name, whole, _ = whole_and_blocks(tmp_path, "--model", trained_model, "--diameter", 11)

    # The same blocks segmented on their own pixels (Cellpose's grid of each block)
    # do differ: the check above is not met by chance.
    segmenter = cp.CellposeSegmenter(trained_model, cp.CellposeSettings(diameter=11))
    channels = cp.prepare_channels(
        read_image(tmp_path / layout.IMG / f"{name}.tiff"), read_panel(tmp_path / layout.PANEL)
    )
    own = cp.segment_in_blocks(
        channels, lambda block: segmenter.segment(block, normalize=False), block_size=160,
        overlap=24,
    )  # fmt: skip
    assert object_f1(whole, own) < 0.999


@pytest.fixture()
def small_objects_counted_right(monkeypatch):
    """Cellpose's removal of small objects, given labels numbered 1..n as it assumes.

    With steinbock's ``--no-resample``, Cellpose resizes its masks back to the image
    and then drops objects below ``min_size`` by taking the n-th pixel count for
    object n; where an object vanished in the resizing, the counts shift and it
    drops a neighbour in the numbering instead of the small object. Which one depends
    on the whole image's numbering, which a block cannot know; blocks drop the
    small objects as intended. Compared with that fixed, the objects are the same.
    """
    import fastremap
    from cellpose import utils

    original = utils.fill_holes_and_remove_small_masks

    def renumbered_first(masks, min_size=15):
        return original(fastremap.renumber(masks)[0], min_size=min_size)

    monkeypatch.setattr(utils, "fill_holes_and_remove_small_masks", renumbered_first)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("diameter", "resample"),
    [
        (7, "--no-resample"),  # x1.57, masks at the network's scale (steinbock's default)
        (16, "--resample"),  # x0.69, flows resized back to the image
    ],
)
def test_blocks_give_the_whole_images_objects_when_cellpose_resizes(
    trained_model, tmp_path, diameter, resample, small_objects_counted_right
):
    """The model's diameter is 11 px: with another ``--diameter`` Cellpose resizes the
    image before its network (by 11 / diameter) and the network's output (or the masks)
    back; blocks resize only what their tiles need, as OpenCV resizes the whole image
    (the resizing itself, bit for bit: tests/test_cellpose_resize.py; the other two
    combinations passed too, ~40 s each on two busy cores, left out for time)."""
    whole_and_blocks(tmp_path, "--model", trained_model, "--diameter", diameter, resample)
