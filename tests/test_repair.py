"""Tests of steinbock_like.repair against a slow reference written from the rules of issue 4."""

import math
from collections import defaultdict

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from scipy import ndimage as ndi
from skimage.segmentation import find_boundaries

from steinbock_like.errors import SteinbockLikeError
from steinbock_like.repair import (
    METRIC_NAMES,
    boundary_mask,
    label_boundaries,
    repair_masks,
)

# --------------------------------------------------------------------------------------------
# Reference implementation: one pixel and one candidate at a time, straight from the rules.
# --------------------------------------------------------------------------------------------


def reference_repair(cells, nuclei, boundary="inner", trim=True):
    """Return (cells, nuclei, cytoplasm, metrics) following issue 4 literally."""
    membrane = find_boundaries(cells, connectivity=1, mode=boundary)
    cell_pixels = defaultdict(set)
    nucleus_pixels = defaultdict(set)
    for y in range(cells.shape[0]):
        for x in range(cells.shape[1]):
            if cells[y, x] != 0:
                cell_pixels[int(cells[y, x])].add((y, x))
            if nuclei[y, x] != 0:
                nucleus_pixels[int(nuclei[y, x])].add((y, x))
    interior = {
        cell: {pixel for pixel in pixels if not membrane[pixel]}
        for cell, pixels in cell_pixels.items()
    }

    matches = []  # (cell, nucleus, mismatch fraction)
    matched_nuclei = set()
    for cell in sorted(cell_pixels):
        candidates = {int(nuclei[pixel]) for pixel in cell_pixels[cell]}
        candidates -= {0}
        candidates -= matched_nuclei
        best_nucleus, best_mismatch = None, 1.0
        for nucleus in sorted(candidates):
            outside = nucleus_pixels[nucleus] - interior[cell]
            mismatch = len(outside) / len(nucleus_pixels[nucleus])
            if mismatch < best_mismatch:  # strict: ties keep the lower label
                best_nucleus, best_mismatch = nucleus, mismatch
        if best_nucleus is not None:
            matched_nuclei.add(best_nucleus)
            matches.append((cell, best_nucleus, best_mismatch))

    cells_out = np.zeros(cells.shape, np.int64)
    nuclei_out = np.zeros(cells.shape, np.int64)
    cytoplasm_out = np.zeros(cells.shape, np.int64)
    pixels_trimmed = 0
    for new_id, (cell, nucleus, _) in enumerate(matches, start=1):
        whole_nucleus = nucleus_pixels[nucleus]
        kept_nucleus = whole_nucleus & interior[cell] if trim else whole_nucleus
        pixels_trimmed += len(whole_nucleus) - len(kept_nucleus)
        for pixel in cell_pixels[cell]:
            cells_out[pixel] = new_id
        for pixel in kept_nucleus:
            nuclei_out[pixel] = new_id
        for pixel in cell_pixels[cell] - kept_nucleus:
            cytoplasm_out[pixel] = new_id

    matched = len(matches)
    unmatched_cells = len(cell_pixels) - matched
    unmatched_nuclei = len(nucleus_pixels) - matched
    total = matched + unmatched_cells + unmatched_nuclei
    mismatches = [mismatch for _, _, mismatch in matches]
    metrics = {
        "cells": len(cell_pixels),
        "nuclei": len(nucleus_pixels),
        "matched": matched,
        "unmatched_cells": unmatched_cells,
        "unmatched_nuclei": unmatched_nuclei,
        "matched_fraction": matched / total if total else math.nan,
        "mean_mismatch": sum(mismatches) / matched if matched else math.nan,
        "max_mismatch": max(mismatches) if matched else math.nan,
        "pixels_trimmed": pixels_trimmed,
    }
    return cells_out, nuclei_out, cytoplasm_out, metrics


def assert_metrics_equal(actual, expected):
    assert set(actual) == set(METRIC_NAMES) == set(expected)
    for name in METRIC_NAMES:
        a, e = actual[name], expected[name]
        if isinstance(e, float) and math.isnan(e):
            assert math.isnan(a), name
        elif name == "mean_mismatch":  # summation order may differ in the last bit
            assert a == pytest.approx(e, rel=1e-12, abs=1e-15), name
        else:
            assert a == e, name
            assert type(a) is type(e), name


def assert_same_as_reference(cells, nuclei, boundary="inner", trim=True):
    result = repair_masks(cells, nuclei, boundary=boundary, trim=trim)
    ref_cells, ref_nuclei, ref_cytoplasm, ref_metrics = reference_repair(
        cells, nuclei, boundary=boundary, trim=trim
    )
    np.testing.assert_array_equal(result.cells, ref_cells)
    np.testing.assert_array_equal(result.nuclei, ref_nuclei)
    np.testing.assert_array_equal(result.cytoplasm, ref_cytoplasm)
    assert_metrics_equal(result.metrics, ref_metrics)
    assert result.cells.dtype == np.uint16
    assert result.nuclei.dtype == result.cytoplasm.dtype == np.uint16
    return result


# --------------------------------------------------------------------------------------------
# Strategies for random mask pairs.
# --------------------------------------------------------------------------------------------

# Non-consecutive labels, including ones that force the renumbering of huge labels.
LABEL_SETS = [
    (np.uint16, [1, 2, 3, 4, 5]),
    (np.uint16, [1, 3, 7, 8, 300, 65535]),
    (np.int32, [2, 5, 6, 11]),
    (np.uint32, [9, 70000, 2**31 + 5, 2**32 - 1]),
]


@st.composite
def noise_masks(draw, max_side=9):
    """Speckled masks: fragmented objects, one-pixel objects, often no interior at all."""
    height = draw(st.integers(1, max_side))
    width = draw(st.integers(1, max_side))
    dtype, labels = draw(st.sampled_from(LABEL_SETS))
    values = st.sampled_from([0, *labels])
    cells = draw(hnp.arrays(dtype, (height, width), elements=values))
    nuclei = draw(hnp.arrays(dtype, (height, width), elements=values))
    return cells, nuclei


@st.composite
def tissue_masks(draw):
    """Blocky touching cells (some background) with rectangular nuclei drawn on top.

    Nuclei may lie inside a cell, span two or more cells, stick out into background or lie
    entirely outside any cell; later rectangles overwrite earlier ones.
    """
    dtype, max_label = draw(
        st.sampled_from([(np.uint16, 65535), (np.int32, 2**31 - 1), (np.uint32, 2**32 - 1)])
    )
    label_lists = st.lists(st.integers(1, max_label), min_size=1, max_size=12, unique=True)
    cell_labels = draw(label_lists)
    nucleus_labels = draw(label_lists)
    rows = draw(st.integers(1, 4))
    cols = draw(st.integers(1, 4))
    scale = draw(st.integers(1, 6))
    grid = draw(hnp.arrays(dtype, (rows, cols), elements=st.sampled_from([0, *cell_labels])))
    cells = np.kron(grid, np.ones((scale, scale), dtype=dtype))
    height, width = cells.shape
    nuclei = np.zeros_like(cells)
    for _ in range(draw(st.integers(0, 10))):
        label = draw(st.sampled_from(nucleus_labels))
        y0 = draw(st.integers(0, height - 1))
        x0 = draw(st.integers(0, width - 1))
        h = draw(st.integers(1, scale + 2))
        w = draw(st.integers(1, scale + 2))
        nuclei[y0 : y0 + h, x0 : x0 + w] = label
    return cells, nuclei


modes = st.sampled_from(["inner", "thick"])


# --------------------------------------------------------------------------------------------
# Property-based comparison with the reference.
# --------------------------------------------------------------------------------------------


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(masks=tissue_masks(), boundary=modes, trim=st.booleans())
def test_tissue_like_masks_match_reference(masks, boundary, trim):
    cells, nuclei = masks
    assert_same_as_reference(cells, nuclei, boundary=boundary, trim=trim)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(masks=noise_masks(), boundary=modes, trim=st.booleans())
def test_speckled_masks_match_reference(masks, boundary, trim):
    cells, nuclei = masks
    assert_same_as_reference(cells, nuclei, boundary=boundary, trim=trim)


@settings(max_examples=60, deadline=None)
@given(masks=tissue_masks(), trim=st.booleans())
def test_outputs_are_consistent(masks, trim):
    cells, nuclei = masks
    result = repair_masks(cells, nuclei, trim=trim)
    n = result.metrics["matched"]
    ids = np.arange(1, n + 1)
    # Consecutive IDs 1..N shared by cells and nuclei; cytoplasm = cell minus nucleus.
    np.testing.assert_array_equal(np.unique(result.cells[result.cells != 0]), ids)
    np.testing.assert_array_equal(np.unique(result.nuclei[result.nuclei != 0]), ids)
    expected_cytoplasm = np.where(result.nuclei == result.cells, 0, result.cells)
    np.testing.assert_array_equal(result.cytoplasm, expected_cytoplasm)
    if trim:  # trimmed nuclei lie inside their own cell's interior
        inside = result.nuclei != 0
        assert np.all(result.cells[inside] == result.nuclei[inside])
        assert not np.any(boundary_mask(cells)[inside])
    # pairs name the original labels of each new ID
    assert result.pairs.shape == (n, 2)
    for new_id, (cell, nucleus) in enumerate(result.pairs.tolist(), start=1):
        assert np.array_equal(result.cells == new_id, cells == cell)
        assert np.all(nuclei[result.nuclei == new_id] == nucleus)


@settings(max_examples=100, deadline=None)
@given(
    labels=hnp.arrays(
        np.uint16,
        hnp.array_shapes(min_dims=2, max_dims=2, min_side=1, max_side=8),
        elements=st.sampled_from([0, 1, 2, 5, 65535]),
    ),
    mode=modes,
)
def test_boundary_mask_is_find_boundaries(labels, mode):
    expected = find_boundaries(labels, connectivity=1, mode=mode)
    np.testing.assert_array_equal(boundary_mask(labels, mode=mode), expected)


@settings(max_examples=60, deadline=None)
@given(
    labels=hnp.arrays(
        np.uint16,
        hnp.array_shapes(min_dims=2, max_dims=2, min_side=1, max_side=8),
        elements=st.sampled_from([0, 0, 0, 1, 2, 9]),
    ),
    mode=modes,
)
def test_label_boundaries(labels, mode):
    edges = find_boundaries(labels, connectivity=1, mode=mode)
    out = label_boundaries(labels, mode=mode)
    assert out.dtype == labels.dtype
    np.testing.assert_array_equal(out != 0, edges & ((labels != 0) | (mode == "thick")))
    foreground = labels != 0
    np.testing.assert_array_equal(out[foreground], np.where(edges, labels, 0)[foreground])
    if mode == "thick":
        cross = ndi.generate_binary_structure(2, 1)
        dilated = ndi.grey_dilation(labels, footprint=cross, mode="reflect")
        np.testing.assert_array_equal(out[~foreground], np.where(edges, dilated, 0)[~foreground])


# --------------------------------------------------------------------------------------------
# Hand-computed cases.
# --------------------------------------------------------------------------------------------


def two_touching_cells():
    """Cells 2 | 3 fill a 5 x 10 image; nucleus 1 spans both, 7 sits in 3, 8 on 2's membrane.

    Only column 4 (and 5) is membrane: the image edge is no boundary for find_boundaries.
    Nucleus 1 (rows 1-2, cols 3-6, 8 px) has 2 px in each interior: mismatch 6/8 for both;
    cell 2 is visited first and takes it. Nucleus 8 lies on cell 2's membrane only
    (mismatch 1, rejected). Cell 3 then takes nucleus 7 (mismatch 0).
    """
    cells = np.zeros((5, 10), np.uint16)
    cells[:, :5] = 2
    cells[:, 5:] = 3
    nuclei = np.zeros_like(cells)
    nuclei[1:3, 3:7] = 1
    nuclei[3:5, 7:10] = 7
    nuclei[0, 4] = 8
    return cells, nuclei


def test_hand_computed_two_touching_cells():
    cells, nuclei = two_touching_cells()
    result = assert_same_as_reference(cells, nuclei)
    assert result.metrics == {
        "cells": 2,
        "nuclei": 3,
        "matched": 2,
        "unmatched_cells": 0,
        "unmatched_nuclei": 1,
        "matched_fraction": 2 / 3,
        "mean_mismatch": 0.375,
        "max_mismatch": 0.75,
        "pixels_trimmed": 6,
    }
    np.testing.assert_array_equal(result.cells, np.where(cells == 2, 1, 2))
    expected_nuclei = np.zeros_like(cells)
    expected_nuclei[1:3, 3] = 1
    expected_nuclei[3:5, 7:10] = 2
    np.testing.assert_array_equal(result.nuclei, expected_nuclei)
    np.testing.assert_array_equal(result.cytoplasm, np.where(expected_nuclei != 0, 0, result.cells))
    np.testing.assert_array_equal(result.pairs, [[2, 1], [3, 7]])


def test_hand_computed_no_trim_keeps_nucleus_whole():
    cells, nuclei = two_touching_cells()
    result = assert_same_as_reference(cells, nuclei, trim=False)
    assert result.metrics["pixels_trimmed"] == 0
    assert result.metrics["mean_mismatch"] == 0.375
    expected_nuclei = np.zeros_like(cells)
    expected_nuclei[1:3, 3:7] = 1  # whole, reaching into cell 3 (new ID 2)
    expected_nuclei[3:5, 7:10] = 2
    np.testing.assert_array_equal(result.nuclei, expected_nuclei)
    # cell 2's pixels under nucleus 1 are cytoplasm of cell 2: not its own nucleus
    assert result.cytoplasm[1, 5] == 2 and result.cytoplasm[1, 3] == 0


def test_ties_go_to_the_lower_nucleus_label():
    cells = np.zeros((7, 7), np.uint16)
    cells[1:6, 1:6] = 4  # interior: rows 2-4, cols 2-4
    nuclei = np.zeros_like(cells)
    nuclei[2:4, 2] = 9  # 2 px, inside: mismatch 0
    nuclei[2:4, 4] = 6  # 2 px, inside: mismatch 0, lower label
    result = assert_same_as_reference(cells, nuclei)
    np.testing.assert_array_equal(result.pairs, [[4, 6]])
    assert result.metrics["unmatched_nuclei"] == 1
    assert result.metrics["matched_fraction"] == 0.5


def test_greedy_order_is_by_cell_label_not_optimal():
    """Cells are served in label order: cell 1 may take the only candidate of cell 2."""
    cells = np.zeros((5, 12), np.uint16)
    cells[:, :6] = 1  # interior cols 0-4
    cells[:, 6:] = 2  # interior cols 7-11
    nuclei = np.zeros_like(cells)
    nuclei[1:3, 4:8] = 5  # 8 px: 2 px in each interior -> mismatch 0.75 for both
    nuclei[1:3, 1:4] = 3  # 6 px, all inside cell 1 -> mismatch 0
    nuclei[1:4, 0] = 4  # 3 px, all inside cell 1 -> mismatch 0 too, but label 4 > 3
    result = assert_same_as_reference(cells, nuclei)
    np.testing.assert_array_equal(result.pairs, [[1, 3], [2, 5]])
    assert result.metrics["max_mismatch"] == 0.75

    # Now cell 1 prefers nucleus 5: it takes it, and cell 2 gets nothing.
    nuclei = np.zeros_like(cells)
    nuclei[1:3, 3:8] = 5  # 10 px: 4 px in cell 1's interior (mismatch 0.6), 2 px in cell 2's
    result = assert_same_as_reference(cells, nuclei)
    np.testing.assert_array_equal(result.pairs, [[1, 5]])
    assert result.metrics["mean_mismatch"] == 0.6
    assert result.metrics["unmatched_cells"] == 1
    assert result.metrics["pixels_trimmed"] == 6


def test_cell_without_interior_is_never_matched():
    cells = np.zeros((4, 4), np.uint16)
    cells[1:3, 1:3] = 1  # 2 x 2: all membrane
    nuclei = cells.copy()
    result = assert_same_as_reference(cells, nuclei)
    assert result.metrics["matched"] == 0
    assert not result.cells.any() and not result.nuclei.any()
    assert result.metrics["matched_fraction"] == 0.0
    assert math.isnan(result.metrics["mean_mismatch"])


def test_empty_masks():
    empty = np.zeros((3, 4), np.uint16)
    result = repair_masks(empty, empty)
    assert result.metrics["cells"] == result.metrics["nuclei"] == result.metrics["matched"] == 0
    assert math.isnan(result.metrics["matched_fraction"])
    assert result.cells.shape == (3, 4) and not result.cells.any()


def test_thick_and_inner_give_the_same_matching():
    cells, nuclei = two_touching_cells()
    inner = repair_masks(cells, nuclei, boundary="inner")
    thick = repair_masks(cells, nuclei, boundary="thick")
    np.testing.assert_array_equal(inner.nuclei, thick.nuclei)
    # ... but the boundaries they report differ on background pixels only
    cells[:, 9] = 0
    inner = repair_masks(cells, nuclei, boundary="inner").boundaries()
    thick = repair_masks(cells, nuclei, boundary="thick").boundaries()
    assert inner[:, 9].sum() == 0 and np.all(thick[:, 9] == 2)
    np.testing.assert_array_equal(inner[:, :9], thick[:, :9])


def test_many_matches_switch_to_uint32():
    # 70,000 isolated 3 x 3 cells with a one-pixel nucleus in the middle of each
    side = 265 * 4  # 265 x 265 = 70,225 cells on a 4-pixel pitch
    cells = np.zeros((side, side), np.uint32)
    labels = np.arange(1, 265 * 265 + 1, dtype=np.uint32).reshape(265, 265)
    for dy in range(3):
        for dx in range(3):
            cells[dy::4, dx::4] = labels
    nuclei = np.zeros_like(cells)
    nuclei[1::4, 1::4] = labels
    result = repair_masks(cells, nuclei)
    assert result.metrics["matched"] == 265 * 265
    assert result.cells.dtype == result.nuclei.dtype == np.uint32
    np.testing.assert_array_equal(result.cells, cells)
    np.testing.assert_array_equal(result.nuclei, nuclei)


@pytest.mark.parametrize(
    ("cells", "nuclei", "message"),
    [
        (np.zeros((3, 3)), np.zeros((3, 3), np.uint16), "integer"),
        (np.zeros((3, 3), np.uint16), np.zeros((3, 4), np.uint16), "shape"),
        (np.zeros((3,), np.uint16), np.zeros((3,), np.uint16), "2-D"),
        (np.full((3, 3), -1, np.int32), np.zeros((3, 3), np.int32), "negative"),
    ],
)
def test_bad_input_is_a_user_error(cells, nuclei, message):
    with pytest.raises(SteinbockLikeError, match=message):
        repair_masks(cells, nuclei)


def test_unknown_boundary_mode():
    with pytest.raises(SteinbockLikeError, match="boundary mode"):
        repair_masks(np.zeros((2, 2), np.uint16), np.zeros((2, 2), np.uint16), boundary="outer")


# --------------------------------------------------------------------------------------------
# Real masks: Mesmer whole-cell masks as cells, CellProfiler masks shrunk as nuclei.
# --------------------------------------------------------------------------------------------


@pytest.mark.refdata
def test_reference_masks_match_reference(refdata):
    tifffile = pytest.importorskip("tifffile")
    from skimage.morphology import disk, erosion

    cell_files = sorted((refdata / "masks_deepcell").glob("*.tiff"))
    assert cell_files
    total_matched = 0
    for cell_file in cell_files:
        cells = tifffile.imread(cell_file)
        other = tifffile.imread(refdata / "masks_ilastik" / cell_file.name)
        # Shrunken, shifted second segmentation: sticks out of cells, spans neighbours.
        nuclei = np.roll(erosion(other, disk(1)), shift=(1, -1), axis=(0, 1))
        for trim in (True, False):
            result = assert_same_as_reference(cells, nuclei, trim=trim)
        total_matched += result.metrics["matched"]
        assert 0 < result.metrics["matched"] <= result.metrics["cells"]
    assert total_matched > 100


def synthetic_tissue(size, n_cells, seed):
    """Cells grown from random seeds; nuclei as shifted discs, some spanning cells or outside."""
    from skimage.draw import disk as disk_coords
    from skimage.segmentation import expand_labels

    rng = np.random.default_rng(seed)
    seeds = np.zeros((size, size), np.uint16)
    centres = rng.integers(0, size, (n_cells, 2))
    seeds[centres[:, 0], centres[:, 1]] = rng.permutation(np.arange(1, n_cells + 1) * 3)
    cells = expand_labels(seeds, distance=size / np.sqrt(n_cells) * 0.6)
    nuclei = np.zeros_like(cells)
    for label, (y, x) in enumerate(centres + rng.integers(-4, 5, centres.shape), start=1):
        rr, cc = disk_coords((y, x), rng.uniform(1, 4), shape=nuclei.shape)
        nuclei[rr, cc] = label * 2 + 1
    return cells, nuclei


@pytest.mark.parametrize("seed", range(4))
def test_synthetic_tissue_matches_reference(seed):
    cells, nuclei = synthetic_tissue(64, 40, seed)
    for trim in (True, False):
        result = assert_same_as_reference(cells, nuclei, trim=trim)
    assert result.metrics["matched"] > 10
    assert result.metrics["unmatched_cells"] + result.metrics["unmatched_nuclei"] > 0


@pytest.mark.parametrize("seed", range(3))
def test_example_generator_masks(seed):
    """The example generator puts one nucleus strictly inside every cell: all match as they are;
    shifted nuclei stick out and span cells, and still match the reference."""
    from steinbock_like.example import simulate_tissue

    tissue = simulate_tissue((72, 90), np.random.default_rng(seed))
    cells, nuclei = tissue.cells, tissue.nuclei
    result = repair_masks(cells, nuclei)
    n_cells = len(np.unique(cells)) - 1
    assert result.metrics["matched"] == n_cells == result.metrics["nuclei"]
    assert result.metrics["matched_fraction"] == 1.0
    assert result.metrics["max_mismatch"] == 0.0 and result.metrics["pixels_trimmed"] == 0
    np.testing.assert_array_equal(result.cells, cells)
    np.testing.assert_array_equal(result.nuclei, nuclei)

    shifted = np.roll(nuclei, shift=(3, -2), axis=(0, 1))
    for trim in (True, False):
        result = assert_same_as_reference(cells, shifted, trim=trim)
    assert 0 < result.metrics["matched"] < n_cells


def test_views_and_other_layouts_give_the_same_result():
    cells, nuclei = synthetic_tissue(48, 25, seed=7)
    expected = repair_masks(np.ascontiguousarray(cells.T), np.ascontiguousarray(nuclei.T))
    variants = [
        (cells.T, nuclei.T),
        (np.asfortranarray(cells.T), nuclei.T.astype(np.int64)),
        (cells.T.astype(np.uint64), nuclei.T.astype(np.uint64)),
        (cells.T.astype(np.uint64) * 2**40, nuclei.T.astype(np.int8)),
    ]
    for c, n in variants:
        result = repair_masks(c, n)
        np.testing.assert_array_equal(result.cells, expected.cells)
        np.testing.assert_array_equal(result.nuclei, expected.nuclei)
        np.testing.assert_array_equal(result.cytoplasm, expected.cytoplasm)
        assert result.metrics == expected.metrics
    assert expected.metrics["matched"] > 5
