"""Native CellProfiler options no other test runs: discarding objects by size or at the
border (primary and secondary), and the threshold method told apart on a skewed histogram."""

import numpy as np
import pytest
import skimage.filters
from test_cellprofiler import _set

from steinbock_like.segment.cellprofiler import native, pipeline, threshold, translate


def _blob_image():
    """A 64x64 image of cone-shaped blobs (one maximum each): (centre, radius) per blob."""
    blobs = {
        "normal": ((32, 32), 6),  # area ~113: inside the 5..15 px diameter range
        "border": ((30, 3), 6),  # cut by the left edge
        "small": ((8, 52), 1.5),  # area ~7 < pi * 5**2 / 4
        "large": ((50, 50), 10),  # area ~314 > pi * 15**2 / 4
    }
    yy, xx = np.mgrid[:64, :64]
    image = np.zeros((64, 64), np.float32)
    for (cy, cx), radius in blobs.values():
        distance = np.hypot(yy - cy, xx - cx)
        image = np.maximum(image, np.where(distance <= radius, 0.9 - 0.02 * distance, 0))
    return image, blobs


def _primary(**options) -> native.IdentifyPrimary:
    manual = threshold.ThresholdParams(method=threshold.THRESHOLD_MANUAL, manual_threshold=0.5)
    return native.IdentifyPrimary(
        input="in", output="out", min_diameter=5, max_diameter=15, threshold=manual, **options
    )


def _kept(labels: np.ndarray, blobs: dict) -> set[str]:
    return {name for name, ((y, x), _) in blobs.items() if labels[y, x] > 0}


def test_primary_objects_kept_without_filters():
    image, blobs = _blob_image()
    objects = native.identify_primary_objects(image, _primary())
    assert _kept(objects.segmented, blobs) == set(blobs)
    assert objects.segmented.max() == 4


def test_primary_discards_objects_outside_the_diameter_range():
    image, blobs = _blob_image()
    objects = native.identify_primary_objects(image, _primary(exclude_size=True))
    assert _kept(objects.segmented, blobs) == {"normal", "border"}
    assert objects.segmented.max() == 2  # renumbered 1..N
    assert objects.unedited.max() == 4  # the seeds before filtering keep every object


def test_primary_discards_objects_touching_the_border():
    image, blobs = _blob_image()
    objects = native.identify_primary_objects(image, _primary(exclude_border=True))
    assert _kept(objects.segmented, blobs) == {"normal", "small", "large"}
    both = native.identify_primary_objects(image, _primary(exclude_border=True, exclude_size=True))
    assert _kept(both.segmented, blobs) == {"normal"}


def test_remove_by_diameter_keeps_the_range_bounds():
    labels = np.zeros((20, 20), np.int32)
    labels[0:2, 0:10] = 1  # area 20 = just above pi * 5**2 / 4 = 19.6
    labels[5:8, 0:6] = 2  # area 18 < 19.6
    labels[10:20, 0:17] = 3  # area 170 < pi * 15**2 / 4 = 176.7
    labels[10:20, 18:20] = 4  # area 20
    out = native.remove_by_diameter(labels, 5, 15)
    assert sorted(np.unique(out[out > 0]).tolist()) == [1, 3, 4]
    assert labels.max() == 4  # the input is not changed


def test_secondary_discards_cells_touching_the_border():
    image, blobs = _blob_image()
    primary = native.identify_primary_objects(image, _primary())
    halo = np.clip(skimage.filters.gaussian(image, 2), 0, 1).astype(np.float32)
    manual = threshold.ThresholdParams(method=threshold.THRESHOLD_MANUAL, manual_threshold=0.05)
    step = native.IdentifySecondary("out", "cells", "in", manual)
    cells = native.identify_secondary_objects(halo, primary, step)
    kept = native.identify_secondary_objects(halo, primary, step.__class__(
        "out", "cells", "in", manual, discard_edge=True
    ))  # fmt: skip
    assert _kept(cells, blobs) == set(blobs)
    assert _kept(kept, blobs) == {"normal", "small", "large"}
    assert not np.any(kept[:, 0]) and np.any(cells[:, 0])
    # cells keep their primary object's number
    assert kept[32, 32] == primary.segmented[32, 32]


@pytest.mark.parametrize(
    ("label", "field"),
    [
        ("Discard objects outside the diameter range?", "exclude_size"),
        ("Discard objects touching the border of the image?", "exclude_border"),
    ],
)
def test_pipeline_discard_settings_reach_the_primary_step(label, field):
    text = pipeline.pipeline_text()
    steps = {
        type(s).__name__: s
        for s in translate.native_steps(_set(text, "IdentifyPrimaryObjects", label, "Yes"))
    }
    assert getattr(steps["IdentifyPrimary"], field) is True
    steps = {
        type(s).__name__: s
        for s in translate.native_steps(_set(text, "IdentifyPrimaryObjects", label, "No"))
    }
    assert getattr(steps["IdentifyPrimary"], field) is False


def test_pipeline_discard_edge_reaches_the_secondary_step():
    label = "Discard secondary objects touching the border of the image?"
    text = _set(pipeline.pipeline_text(), "IdentifySecondaryObjects", label, "Yes")
    (secondary,) = [
        s for s in translate.native_steps(text) if isinstance(s, native.IdentifySecondary)
    ]
    assert secondary.discard_edge is True


def test_li_and_otsu_differ_on_a_skewed_histogram():
    """Much background, little bright foreground: Li sits well below Otsu."""
    rng = np.random.default_rng(1)
    values = np.concatenate([rng.normal(0.1, 0.03, 9000), rng.normal(0.6, 0.1, 1000)])
    values = values.clip(0, 1).astype(np.float32)
    li = threshold.global_threshold(values, threshold.ThresholdParams())
    otsu = threshold.global_threshold(values, threshold.ThresholdParams(method="Otsu"))
    # independent references: scikit-image's Li (same criterion) and Otsu
    assert li == pytest.approx(float(skimage.filters.threshold_li(values)), abs=2e-3)
    assert otsu == pytest.approx(float(skimage.filters.threshold_otsu(values)), abs=2e-3)
    assert otsu - li > 0.05
    assert li == pytest.approx(0.2776, abs=2e-3) and otsu == pytest.approx(0.3486, abs=2e-3)


def test_a_pixel_equal_to_the_threshold_is_foreground():
    image = np.array([[0.2, 0.5, 0.7]], np.float32)
    assert threshold.apply_threshold(image, 0.5, 0).tolist() == [[False, True, True]]
    assert threshold.apply_threshold(image, np.float32(0.7), 0).tolist() == [[False, False, True]]
