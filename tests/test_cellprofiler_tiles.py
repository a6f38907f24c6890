"""Native CellProfiler on large images in tiles: the whole-image objects, image-wide thresholds."""

import dataclasses
import json
import logging

import numpy as np
import pytest
import tifffile
from cli_helpers import run
from scipy import ndimage
from test_tiles import split_objects

from steinbock_like.io.masks import read_mask
from steinbock_like.metrics import object_f1
from steinbock_like.segment.cellprofiler import native, tiled
from steinbock_like.segment.cellprofiler.pipeline import PipelineSettings, pipeline_text
from steinbock_like.segment.cellprofiler.threshold import (
    THRESHOLD_MANUAL,
    THRESHOLD_OTSU,
    global_threshold,
)
from steinbock_like.segment.cellprofiler.translate import native_steps
from steinbock_like.testing import synthetic_probabilities
from steinbock_like.tiles import ArrayRegions, plan_tiles

TILE = 160


@pytest.fixture(scope="module")
def probabilities():
    """480 x 480 probabilities of ~700 cells, nuclei touching in clumps (declumping)."""
    probabilities, _ = synthetic_probabilities((480, 480), cell_count=700, min_gap=-2, seed=3)
    return probabilities


@pytest.fixture(scope="module")
def steps():
    return native_steps(pipeline_text(PipelineSettings()))


def replace_steps(steps, kind, **changes):
    return [dataclasses.replace(s, **changes) if isinstance(s, kind) else s for s in steps]


def unscaled(steps):
    """The pipeline without its final ResizeObjects (masks at the probabilities' scale)."""
    steps = list(steps)
    resize = next(s for s in steps if isinstance(s, native.ResizeObjects))
    return replace_steps(steps, native.ResizeObjects, factor=(1.0, 1.0)) if resize else steps


def same_partition(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether two label images hold the same objects, pixel for pixel, numbered apart."""
    pairs = np.unique(np.stack([a.ravel(), b.ravel()]), axis=1)
    return len(np.unique(pairs[0])) == pairs.shape[1] == len(np.unique(pairs[1]))


def test_tiled_masks_hold_the_whole_image_objects(probabilities, steps):
    steps = unscaled(steps)
    whole = native.run_steps(probabilities, steps)
    mask, info = tiled.run_steps_tiled(probabilities, steps, tile_size=TILE)
    assert info.as_dict() == {"tiles": 9, "tiles_skipped": 0}
    count = len(np.unique(whole)) - 1
    assert 450 <= count <= 700
    assert abs((len(np.unique(mask)) - 1) - count) <= max(1, count // 1000)
    assert object_f1(whole, mask) >= 0.999
    margin = tiled.tile_margin(steps, probabilities.shape[:2])
    assert split_objects(whole, mask, plan_tiles(whole.shape, TILE, margin)) == 0
    # objects do cross the core borders (else the test proves nothing)
    assert np.unique(whole[TILE - 1 : TILE + 1, :]).size > 10
    assert same_partition(whole, mask)  # here even pixel for pixel
    # numbered 1..N, no gaps, in the whole-image run's order: the very same mask
    assert mask.max() == len(np.unique(mask)) - 1
    assert np.array_equal(mask, whole)


def test_resize_runs_on_the_stitched_objects(probabilities, steps):
    whole = native.run_steps(probabilities, steps)
    mask, _ = tiled.run_steps_tiled(probabilities, steps, tile_size=TILE)
    assert mask.shape == whole.shape == (240, 240) and mask.dtype == np.uint16
    assert object_f1(whole, mask) >= 0.999


def test_border_objects_are_discarded_only_at_the_image_border(probabilities, steps):
    steps = replace_steps(unscaled(steps), native.IdentifyPrimary, exclude_border=True)
    steps = replace_steps(steps, native.IdentifySecondary, discard_edge=True)
    whole = native.run_steps(probabilities, steps)
    mask, _ = tiled.run_steps_tiled(probabilities, steps, tile_size=TILE)
    border = np.concatenate([mask[0], mask[-1], mask[:, 0], mask[:, -1]])
    assert not border.any()
    # cells across the inner core borders are kept, whole
    crossing = np.setdiff1d(np.intersect1d(mask[TILE - 1], mask[TILE]), [0])
    assert crossing.size > 10
    for label in crossing:  # each is the one whole-image object at its pixels
        assert len(np.unique(whole[mask == label])) == 1
    assert same_partition(whole, mask)
    assert object_f1(whole, mask) >= 0.999
    assert len(np.unique(whole)) == len(np.unique(mask))


@pytest.mark.parametrize(
    "threshold",
    [
        {},  # Minimum Cross-Entropy (whole plane)
        {"method": THRESHOLD_OTSU},  # streamed histogram
        {"method": THRESHOLD_OTSU, "correction_factor": 0.8, "lower_bound": 0.3},
        {"method": THRESHOLD_MANUAL, "manual_threshold": 0.4},
    ],
)
def test_streamed_thresholds_equal_the_whole_image_ones(probabilities, steps, threshold):
    changes = {}
    for step in steps:
        if isinstance(step, (native.IdentifyPrimary, native.IdentifySecondary)):
            changes[step] = dataclasses.replace(
                step, threshold=dataclasses.replace(step.threshold, **threshold)
            )
    steps = [changes.get(step, step) for step in steps]
    images = native.execute_steps(probabilities, steps, skip=tiled.TAIL_STEPS).images
    expected = {}
    for index, step in enumerate(steps):
        if isinstance(step, native.IdentifyPrimary):
            expected[index] = global_threshold(images[step.input], step.threshold)
        elif isinstance(step, native.IdentifySecondary):
            expected[index] = global_threshold(images[step.image], step.threshold)
    # bands of ~20 rows: many halos
    found = tiled.pipeline_thresholds(ArrayRegions(probabilities), steps, band_pixels=480 * 20)
    assert found == expected and len(found) == 2
    assert 0.05 < min(found.values()) < 0.95


def test_gray_image_bands_are_the_whole_image_exactly(probabilities, steps):
    images = native.execute_steps(probabilities, steps, skip=tiled.TAIL_STEPS).images
    name = "SmoothedNucleusProbability"
    bands = list(tiled.image_bands(ArrayRegions(probabilities), steps, name, band_pixels=4800))
    assert len(bands) > 5
    assert np.array_equal(np.concatenate(bands), images[name])


def test_pipelines_with_whole_image_steps_are_not_tiled(steps, caplog, tmp_path):
    from steinbock_like.runner import Job
    from steinbock_like.tasks.cellprofiler import NativeCellProfilerTask

    erasing = replace_steps(steps, native.IdentifyPrimary, erase_above_count=10000)
    assert tiled.tiling_blockers(steps) == []
    assert "erased above a count" in tiled.tiling_blockers(erasing)[0]
    with pytest.raises(ValueError, match="cannot be tiled"):
        tiled.run_steps_tiled(np.zeros((50, 50, 3), np.uint16), erasing, tile_size=20)
    task = NativeCellProfilerTask(pipeline_text(PipelineSettings()), tile_size=20)
    task._steps = erasing
    probabilities, _ = synthetic_probabilities((60, 60), cell_count=10, seed=1)
    tifffile.imwrite(tmp_path / "a.tiff", probabilities)
    job = Job("a", {"probabilities": tmp_path / "a.tiff"}, {"mask": tmp_path / "mask.tiff"})
    with caplog.at_level(logging.INFO, logger="steinbock_like"):
        info = task(job)
    assert "tiles" not in info and info["objects"] > 3
    assert "a: segmented whole, not in tiles: ScaledNuclei: objects erased" in caplog.text


def test_cli_tiles_large_images_and_skips_empty_tiles(tmp_path):
    tissue, _ = synthetic_probabilities((480, 360), cell_count=500, min_gap=-2, seed=5)
    slide = np.zeros((480, 960, 3), np.uint16)
    slide[..., 2] = 65535  # 600 columns of background only
    slide[:, 600:] = tissue
    (tmp_path / "ilastik_probabilities").mkdir()
    tifffile.imwrite(tmp_path / "ilastik_probabilities" / "slide.tiff", slide)
    assert run("--data", tmp_path, "segment", "cellprofiler", "prepare") == 0
    base = ["--data", tmp_path, "segment", "cellprofiler", "run", "--backend", "native"]
    assert run(*base, "-o", tmp_path / "whole", "--tile-size", "0") == 0
    assert run(*base, "--tile-size", str(TILE)) == 0
    info = json.loads((tmp_path / "masks" / "run_metadata.json").read_text())
    info = info["images"]["slide"]["info"]
    # 3 x 6 tiles; the 3 x 3 whose margin stays within the empty columns are skipped
    assert (info["tiles"], info["tiles_skipped"]) == (18, 9)
    whole_info = json.loads((tmp_path / "whole" / "run_metadata.json").read_text())
    assert "tiles" not in whole_info["images"]["slide"]["info"]
    mask = read_mask(tmp_path / "masks" / "slide.tiff")
    whole = read_mask(tmp_path / "whole" / "slide.tiff")
    assert mask.shape == (240, 480) and not mask[:, :295].any()
    assert info["objects"] == len(np.unique(mask)) - 1 >= 300
    assert object_f1(whole, mask) >= 0.999
    assert np.array_equal(mask, whole)  # numbered alike, too


def test_nuclei_keep_the_numbers_of_their_cells(probabilities, steps):
    names = ["ScaledCells", "FilteredScaledNuclei"]
    whole = native.execute_steps(probabilities, steps, skip=tiled.TAIL_STEPS).objects
    objects, _ = tiled.segment_objects_tiled(probabilities, steps, names, tile_size=TILE)
    cells, nuclei = objects["ScaledCells"], objects["FilteredScaledNuclei"]
    assert nuclei.max() > 400 and object_f1(whole[names[1]].segmented, nuclei) >= 0.999
    assert object_f1(whole[names[0]].segmented, cells) >= 0.999
    # as in the whole-image run, each nucleus lies in the cell of its own number
    inside = nuclei > 0
    assert np.array_equal(cells[inside], nuclei[inside])
    assert np.array_equal(np.unique(nuclei), np.unique(cells))


def test_linked_labels_are_stitched_with_their_owners_numbers():
    from steinbock_like.tiles import segment_in_tiles

    rng = np.random.default_rng(2)
    cells = np.zeros((200, 300), np.int32)
    for label, (y, x) in enumerate(rng.integers(5, 185, size=(40, 2)), start=1):
        cells[y : y + 12, x % 285 : x % 285 + 12] = label
    nuclei = np.where(ndimage.binary_erosion(cells > 0, iterations=3), cells, 0)

    def segment(tile):
        crop = cells[tile.outer_slices]
        # per tile, numbers start again at 1 (in a shuffled order)
        present = np.unique(crop[crop > 0])
        lookup = np.zeros(cells.max() + 1, np.int32)
        lookup[present] = rng.permutation(present.size) + 1
        return {"cells": lookup[crop], "nuclei": lookup[nuclei[tile.outer_slices]]}

    labels, _ = segment_in_tiles(
        segment, cells.shape, tile_size=100, margin=30, linked={"nuclei": "cells"}
    )
    stitched, stitched_nuclei = labels["cells"], labels["nuclei"]
    assert same_partition(cells, stitched) and same_partition(nuclei, stitched_nuclei)
    inside = stitched_nuclei > 0
    assert inside.sum() > 1000 and np.array_equal(stitched[inside], stitched_nuclei[inside])


def _li_reference(values):
    """li_threshold as it was before it saved copies (the straightforward form)."""
    data = np.asarray(values).ravel()
    data = data[~np.isnan(data)]
    if np.all(data == data[0]):
        return float(data[0])
    data = data[np.isfinite(data)]
    tolerance = max(float(np.min(np.diff(np.unique(data)))) / 2, 0.5 / 65536)
    data_min = np.min(data)
    data = data - data_min
    t_next, t_current = np.mean(data), -2 * tolerance
    while abs(t_next - t_current) > tolerance:
        t_current = t_next
        foreground = data > t_current
        high, low = np.mean(data[foreground]), np.mean(data[~foreground])
        with np.errstate(divide="ignore"):
            t_next = (low - high) / (np.log(low) - np.log(high))
    return float(t_next + data_min)


def test_memory_saving_li_threshold_gives_the_same_value():
    from steinbock_like.segment.cellprofiler import threshold

    rng = np.random.default_rng(0)
    for trial in range(60):
        values = rng.random(tuple(rng.integers(2, 50, 2))).astype(np.float32) ** 2
        if trial % 4 == 1:
            values = (np.round(values * 40) / 40).astype(np.float32)  # many ties
        elif trial % 4 == 2:
            values[rng.random(values.shape) < 0.1] = np.nan
            values[rng.random(values.shape) < 0.05] = np.inf
        elif trial % 4 == 3:
            values = values[:, ::2]  # not contiguous
        original = values.copy()
        expected = _li_reference(values)
        assert threshold.li_threshold(values) == expected
        assert np.array_equal(values, original, equal_nan=True)  # left alone
        assert threshold.li_threshold(values.copy(), overwrite=True) == expected
    values = rng.random((300, 400)).astype(np.float32) ** 3
    steps = np.min(np.diff(np.unique(values)))
    assert threshold._smallest_step(values, chunk=1000) == float(steps)


def test_stitched_objects_are_numbered_by_their_keys():
    from steinbock_like.segment.cellprofiler.order import first_pixels
    from steinbock_like.tiles import segment_in_tiles

    rng = np.random.default_rng(4)
    foreground = np.zeros((210, 330), bool)
    for y, x, height, width in rng.integers([0, 0, 2, 2], [200, 320, 11, 11], (90, 4)):
        foreground[y : y + height, x : x + width] = True
    whole, count = ndimage.label(foreground)  # numbered by first pixel, raster order
    extents = [max(r.stop - r.start, c.stop - c.start) for r, c in ndimage.find_objects(whole)]
    assert count > 50 and max(extents) < 30

    def segment(tile):
        labels, _ = ndimage.label(foreground[tile.outer_slices])
        rows, cols = np.divmod(first_pixels(labels), labels.shape[1])
        keys = (rows + tile.outer[0]) * whole.shape[1] + cols + tile.outer[2]
        return {"objects": (labels, keys)}

    labels, _ = segment_in_tiles(segment, whole.shape, tile_size=70, margin=30)
    assert np.array_equal(labels["objects"], whole)
    # without keys: the same objects, numbered in tile order
    plain, _ = segment_in_tiles(
        lambda tile: {"objects": segment(tile)["objects"][0]}, whole.shape, tile_size=70, margin=30
    )
    assert same_partition(plain["objects"], whole) and not np.array_equal(plain["objects"], whole)
