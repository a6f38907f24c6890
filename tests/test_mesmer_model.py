"""Mesmer with the real network: fidelity to deepcell's masks, compartments, chunking.

The network comes from the normal model cache (``$STEINBOCK_LIKE_MODELS`` if set, else
the user's cache, as the CLI uses; see the ``mesmer_model`` fixture in conftest.py),
fetched there once if absent; a failure to obtain it fails the tests.
"""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tifffile

from steinbock_like.errors import InputError
from steinbock_like.segment.mesmer import MesmerSegmenter, mesmer_input
from steinbock_like.segment.mesmer.model import MesmerNetwork
from steinbock_like.testing import two_channel_tissue

pytest.importorskip("onnxruntime")

REFERENCE_IMAGES = [
    "20210305_NE_mockData1_001",
    "20210305_NE_mockData1_002",
    "20210305_NE_mockData1_003",
    "20210305_NE_mockData2_001",
    "20210305_NE_mockData2_002",
    "20210305_NE_mockData2_003",
]


@pytest.fixture(scope="session")
def segmenter(mesmer_model) -> MesmerSegmenter:
    return MesmerSegmenter(mesmer_model, threads=2)


def _object_f1(reference: np.ndarray, predicted: np.ndarray, iou_threshold: float = 0.5):
    """F1 of one-to-one object matches with IoU above the threshold."""
    ref_ids, ref_sizes = np.unique(reference[reference > 0], return_counts=True)
    pred_ids, pred_sizes = np.unique(predicted[predicted > 0], return_counts=True)
    if ref_ids.size == 0 and pred_ids.size == 0:
        return 1.0
    both = (reference > 0) & (predicted > 0)
    pairs, overlaps = np.unique(
        np.stack([reference[both], predicted[both]]).astype(np.int64), axis=1, return_counts=True
    )
    ref_size = np.zeros(int(reference.max()) + 1)
    ref_size[ref_ids] = ref_sizes
    pred_size = np.zeros(int(predicted.max()) + 1)
    pred_size[pred_ids] = pred_sizes
    iou = overlaps / (ref_size[pairs[0]] + pred_size[pairs[1]] - overlaps)
    # IoU > 0.5 makes matches unique on both sides
    matches = int(np.count_nonzero(iou > iou_threshold))
    return 2 * matches / (ref_ids.size + pred_ids.size)


def test_object_f1_helper():
    a = np.zeros((10, 10), int)
    a[:5, :5] = 1
    a[6:, 6:] = 2
    b = a.copy()
    assert _object_f1(a, b) == 1.0
    b[6:, 6:] = 0
    assert _object_f1(a, b) == pytest.approx(2 / 3)


def _reference_inputs(refdata: Path, name: str):
    panel = pd.read_csv(refdata / "panel.csv")
    image = tifffile.imread(refdata / "img" / f"{name}.tiff").astype(np.float32)
    reference = tifffile.imread(refdata / "masks_deepcell" / f"{name}.tiff")
    return mesmer_input(image, panel, minmax=True), reference


@pytest.mark.refdata
def test_whole_cell_masks_match_deepcell(refdata, segmenter):
    scores, identical = [], []
    for name in REFERENCE_IMAGES:
        (nuclear, membrane), reference = _reference_inputs(refdata, name)
        mask = segmenter.segment(nuclear, membrane, pixel_size_um=1.0)["whole-cell"]
        assert mask.dtype == np.uint16 and mask.shape == reference.shape
        assert mask.max() == reference.max(), name
        scores.append(_object_f1(reference, mask))
        identical.append(np.count_nonzero(mask == reference) / mask.size)
    assert np.mean(scores) >= 0.99, dict(zip(REFERENCE_IMAGES, scores, strict=True))
    # the goal, reached with numpy 2.4 / scipy 1.17 / scikit-image 0.26 and 0.19:
    # every mask bit-identical to deepcell's
    assert min(identical) == 1.0, dict(zip(REFERENCE_IMAGES, identical, strict=True))


@pytest.mark.refdata
def test_both_compartments(refdata, segmenter):
    # the largest image, 55 cells
    (nuclear, membrane), reference = _reference_inputs(refdata, REFERENCE_IMAGES[3])
    both = segmenter.segment(nuclear, membrane, compartment="both")
    assert set(both) == {"whole-cell", "nuclear"}
    assert np.array_equal(both["whole-cell"], reference)
    nuclei = both["nuclear"]
    assert nuclei.dtype == np.uint16
    assert 0.5 * reference.max() <= nuclei.max() <= 1.5 * reference.max()
    # nuclei are smaller than cells and mostly lie inside them
    assert np.count_nonzero(nuclei) < np.count_nonzero(reference)
    assert np.count_nonzero((nuclei > 0) & (reference > 0)) > 0.8 * np.count_nonzero(nuclei)
    only_nuclei = segmenter.segment(nuclear, membrane, compartment="nuclear")
    assert np.array_equal(only_nuclei["nuclear"], nuclei)


@pytest.mark.slow
def test_chunked_agrees_with_whole_image(segmenter):
    nuclear, membrane = two_channel_tissue((1000, 1000), spacing=32)
    whole = segmenter.segment(nuclear, membrane, pixel_size_um=0.5, chunk_size=0)
    # 2 x 2 chunks with 256 px margins
    chunked = segmenter.segment(nuclear, membrane, pixel_size_um=0.5, chunk_size=500)
    mask = whole["whole-cell"]
    assert 940 <= mask.max() <= 980  # 31 x 31 cells
    assert _object_f1(mask, chunked["whole-cell"]) >= 0.99


def test_not_a_model_is_an_input_error(tmp_path):
    bogus = tmp_path / "model.onnx"
    bogus.write_text("not onnx")
    with pytest.raises(InputError, match="not a loadable ONNX model"):
        MesmerNetwork(bogus)
