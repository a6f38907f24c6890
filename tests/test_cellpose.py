"""segment cellpose: channel preparation, model lookup, HED stain, tissue crops, the CLI.

Pretrained Cellpose weights cannot be downloaded here, so session fixtures train
small models (Cellpose's default architecture) for a few epochs on the example
generators' images: one on multiplexed cells, one on the haematoxylin channel of
synthetic H&E slides; the command line runs with ``--model PATH``.
"""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from steinbock_like import layout, models
from steinbock_like.errors import MissingToolError, SteinbockLikeError
from steinbock_like.metrics import average_precision, object_f1
from steinbock_like.segment import cellpose as cp
from steinbock_like.segment import stain as st
from steinbock_like.testing import train_cellpose_hed_model

# trained_model (conftest.py): a tiny Cellpose model trained on the example's cells


def _panel(groups):
    rows = [
        {"channel": f"c{i}", "name": f"m{i}", "keep": True, "cellpose": g}
        for i, g in enumerate(groups)
    ]
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------- channels


def test_prepare_channels_groups_normalises_and_aggregates():
    rng = np.random.default_rng(0)
    image = rng.uniform(0, 10, size=(4, 6, 7)).astype(np.float32)
    image[1] *= 100  # a bright channel that min-max normalisation evens out
    panel = _panel([1.0, 1.0, 2.0, np.nan])

    raw = cp.prepare_channels(image, panel)
    np.testing.assert_allclose(raw[0], image[:2].mean(axis=0), rtol=1e-6)
    np.testing.assert_allclose(raw[1], image[2], rtol=1e-6)

    scaled = cp.prepare_channels(image, panel, normalize="minmax", aggr="max")
    unit = [(c - c.min()) / (c.max() - c.min()) for c in image[:2]]
    np.testing.assert_allclose(scaled[0], np.maximum(*unit), rtol=1e-5)
    assert scaled.shape == (2, 6, 7) and scaled.dtype == np.float32


def test_prepare_channels_nuclear_only_and_cytoplasm_only():
    image = np.arange(2 * 3 * 3, dtype=np.float32).reshape(2, 3, 3)
    nuclear_only = cp.prepare_channels(image, _panel([np.nan, 2.0]))
    np.testing.assert_array_equal(nuclear_only[0], image[1])
    assert not nuclear_only[1].any()
    cytoplasm_only = cp.prepare_channels(image, _panel([1.0, np.nan]))
    np.testing.assert_array_equal(cytoplasm_only[0], image[0])
    assert not cytoplasm_only[1].any()


def test_prepare_channels_rejects_other_labels():
    with pytest.raises(SteinbockLikeError, match="only hold 1 .* and 2 .*found 3"):
        cp.prepare_channels(np.zeros((2, 3, 3)), _panel([1.0, 3.0]))


# --------------------------------------------------------------------------- models


def test_api_major():
    assert cp.api_major("3.1.1.3") == 3
    assert cp.api_major("4.0.1") == 4
    with pytest.raises(MissingToolError, match="not installed"):
        cp.api_major(None)
    with pytest.raises(SteinbockLikeError, match="not supported"):
        cp.api_major("2.3.2")


def test_model_directory_from_environment(tmp_path):
    assert (
        models.cellpose_model_directory({"CELLPOSE_LOCAL_MODELS_PATH": str(tmp_path)}) == tmp_path
    )
    assert models.cellpose_model_directory({}) == Path.home() / ".cellpose" / "models"


def test_resolve_model_names_and_paths(tmp_path):
    (tmp_path / "cyto2torch_0").write_bytes(b"weights")
    (tmp_path / "my_model").write_bytes(b"weights")
    builtin = models.resolve_cellpose_model("cyto2", major=3, model_dir=tmp_path)
    assert builtin.path == tmp_path / "cyto2torch_0" and builtin.builtin
    user = models.resolve_cellpose_model("my_model", major=3, model_dir=tmp_path)
    assert user.path == tmp_path / "my_model" and not user.builtin
    by_path = models.resolve_cellpose_model(
        str(tmp_path / "my_model"), major=4, model_dir="/nowhere"
    )
    assert by_path.path == tmp_path / "my_model"


def test_missing_model_says_where_the_file_must_go(tmp_path):
    with pytest.raises(MissingToolError, match="CELLPOSE_LOCAL_MODELS_PATH") as caught:
        models.resolve_cellpose_model("cyto3", major=3, model_dir=tmp_path)
    message = str(caught.value)
    assert str(tmp_path / "cyto3") in message and "CELLPOSE_LOCAL_MODELS_PATH" in message
    assert "\n" not in message
    with pytest.raises(MissingToolError, match="model file not found"):
        models.resolve_cellpose_model(str(tmp_path / "absent.pt"), major=3)


def test_builtin_model_of_the_other_generation_is_refused(tmp_path):
    with pytest.raises(SteinbockLikeError, match="'cpsam' needs Cellpose 4.x but 3.x"):
        models.resolve_cellpose_model("cpsam", major=3, model_dir=tmp_path)
    with pytest.raises(SteinbockLikeError, match="'nuclei' needs Cellpose 3.x"):
        models.resolve_cellpose_model("nuclei", major=4, model_dir=tmp_path)


def test_segmenter_uses_the_4x_api_with_channel_axis(monkeypatch, tmp_path):
    """Cellpose 4 cannot be installed here; a stand-in records how it is called."""
    pytest.importorskip("torch")
    calls = {}

    class FakeModel:
        def __init__(self, **kwargs):
            calls["init"] = kwargs

        def eval(self, x, **kwargs):
            calls["x"], calls["eval"] = x, kwargs
            return (np.ones(x.shape[:2], dtype=np.uint16), None, None)

    fake = types.ModuleType("cellpose")
    fake.models = types.SimpleNamespace(CellposeModel=FakeModel)
    monkeypatch.setitem(sys.modules, "cellpose", fake)
    monkeypatch.setattr(cp.segmenter, "cellpose_version", lambda: "4.0.1")
    weights = tmp_path / "cpsam"
    weights.write_bytes(b"w")
    segmenter = cp.CellposeSegmenter(weights, cp.CellposeSettings(diameter=12.0, min_size=3))
    channels = np.stack([np.full((5, 6), 2.0), np.full((5, 6), 3.0)]).astype(np.float32)
    labels = segmenter.segment(channels)

    assert calls["init"] == {"gpu": False, "pretrained_model": str(weights)}
    assert calls["x"].shape == (5, 6, 3)
    np.testing.assert_array_equal(calls["x"][0, 0], [2.0, 3.0, 0.0])
    assert calls["eval"]["channel_axis"] == -1 and "channels" not in calls["eval"]
    assert calls["eval"]["diameter"] == 12.0 and calls["eval"]["min_size"] == 3
    assert labels.shape == (5, 6)


# --------------------------------------------------------------------------- metrics


def test_metrics_count_matches_by_iou():
    truth = np.zeros((10, 10), dtype=np.uint16)
    truth[0:4, 0:4] = 1
    truth[6:10, 6:10] = 2
    assert average_precision(truth, truth) == 1.0
    shifted = np.zeros_like(truth)
    shifted[0:4, 1:5] = 7  # IoU 12/20 = 0.6: a match
    shifted[6:10, 8:10] = 3  # IoU 8/16 = 0.5: not above 0.5
    shifted[5, 0] = 9  # a false positive
    assert average_precision(truth, shifted) == pytest.approx(1 / 4)
    assert object_f1(truth, shifted) == pytest.approx(2 / (2 + 2 + 1))
    assert average_precision(np.zeros((3, 3)), np.zeros((3, 3))) == 1.0


# --------------------------------------------------------------------------- stain


def example_slide(shape=(96, 120), seed=0, noise=0.01):
    """An H&E slide of the example generator: RGB (Y, X, 3) uint8, its nuclei and tissue.

    Haematoxylin nuclei in an eosin-stained tissue ellipse on bright glass, rendered with
    Beer-Lambert's law (:func:`steinbock_like.example.brightfield.brightfield_slide`).
    """
    from steinbock_like.example.brightfield import brightfield_slide

    rgb, nuclei, tissue = brightfield_slide(shape, np.random.default_rng([seed]), noise=noise)
    return rgb.round().astype(np.uint8), nuclei, tissue


def label_8(binary: np.ndarray) -> np.ndarray:
    """Connected components with diagonal neighbours (the example's nuclei touch no other
    nucleus, but a few are joined only diagonally)."""
    from scipy import ndimage

    return ndimage.label(binary, structure=np.ones((3, 3)))[0]


def test_as_rgb_accepts_both_axis_orders_and_scales():
    rgb = np.zeros((4, 5, 3), dtype=np.uint8)
    rgb[..., 0] = 255
    as_float = st.as_rgb(rgb)
    assert as_float.dtype == np.float32 and as_float[..., 0].min() == 1.0
    np.testing.assert_array_equal(st.as_rgb(np.moveaxis(rgb, -1, 0)), as_float)
    np.testing.assert_allclose(st.as_rgb(rgb.astype(np.float32)), as_float)
    with pytest.raises(ValueError, match="RGB"):
        st.as_rgb(np.zeros((5, 6, 7)))


def test_haematoxylin_channel_makes_nuclei_bright():
    rgb, nuclei, tissue = example_slide()
    channel = st.haematoxylin_channel(rgb)
    assert channel.dtype == np.float32 and channel.min() == 0.0 and channel.max() == 1.0
    inside, outside = channel[nuclei > 0], channel[nuclei == 0]
    # Equalised and stretched: glass and plain tissue sit low, nuclei spread up to 1
    # (measured: means 0.87 and 0.16; 5th percentile of nuclei 0.75, 95th of the rest 0.66).
    assert inside.mean() > 0.8 and outside.mean() < 0.25
    assert np.percentile(inside, 5) > np.percentile(outside, 95)
    # Equalised over the tissue only: the same order within the tissue.
    masked = st.haematoxylin_channel(rgb, mask=tissue)
    inside, outside = masked[nuclei > 0], masked[(nuclei == 0) & tissue]
    assert masked[tissue].min() == 0.0 and inside.mean() > 0.7 and outside.mean() < 0.2
    assert np.percentile(inside, 5) > np.percentile(outside, 95)


def test_keep_inside_removes_and_clips_objects():
    labels = np.zeros((6, 8), dtype=np.uint16)
    labels[0:2, 0:2] = 5  # fully outside
    labels[2:6, 2:4] = 9  # half inside
    labels[2:6, 5:8] = 11  # fully inside
    tissue = np.zeros((6, 8), dtype=bool)
    tissue[4:6, :] = True
    tissue[2:6, 5:8] = True
    kept = st.keep_inside(labels, tissue)
    assert set(np.unique(kept)) == {0, 1, 2}
    assert not kept[~tissue].any()
    assert (kept[4:6, 2:4] == 1).all() and (kept[2:6, 5:8] == 2).all()


def test_segment_within_tissue_maps_back_at_an_offset():
    """A stand-in segmenter returns the truth of whatever region it is given."""
    blocks = np.arange(1, 12 * 16 + 1, dtype=np.uint16).reshape(12, 16)
    truth = np.repeat(np.repeat(blocks, 5, axis=0), 5, axis=1)  # 5 x 5 px objects
    tissue = np.zeros(truth.shape, dtype=bool)
    tissue[23:51, 31:72] = True
    seen = {}

    def segment(box, tissue_crop):
        seen["box"], seen["crop"] = box, tissue_crop
        return truth[box]

    # A margin of 5 px holds every object that touches the tissue whole.
    labels, box = st.segment_within_tissue(tissue, segment, margin=5)
    assert box == (slice(18, 56), slice(26, 77)) and seen["crop"].shape == (38, 51)
    assert not labels[~tissue].any()
    # Objects come back where they were: same partition of the tissue as the truth.
    expected = st.keep_inside(truth, tissue)
    assert average_precision(expected, labels) == 1.0
    empty, none = st.segment_within_tissue(np.zeros((5, 5)), segment)
    assert none is None and not empty.any()


def test_segment_in_blocks_keeps_every_object_once():
    """Blocks of 40 px with 16 px context (> the nuclei, <= 7 px) give the whole-image result."""
    _, nuclei, _ = example_slide(shape=(130, 170), seed=2)
    objects = label_8(nuclei > 0)  # what the stand-in finds in the whole image
    assert objects.max() == len(np.unique(nuclei)) - 1 == 74
    channels = np.stack([(objects > 0) * 50.0, np.zeros(objects.shape)]).astype(np.float32)
    blocks = []

    def segment(block):
        blocks.append(block.shape)
        assert block.max() <= 1.0  # normalised once, for the whole image
        return label_8(block[0] > 0.5)

    labels = cp.segment_in_blocks(channels, segment, block_size=40, overlap=16)
    assert len(blocks) == 4 * 5 and max(blocks) == (2, 72, 72)
    assert labels.dtype == np.uint32 and labels.max() == objects.max()
    assert average_precision(objects, labels) == 1.0
    whole = cp.segment_in_blocks(channels, segment, block_size=0)
    assert average_precision(objects, whole) == 1.0 and len(blocks) == 21


def test_block_ranges_cover_the_axis():
    from steinbock_like.tiles import plan_tiles

    tiles = plan_tiles((100, 1), 40, 8, even=False)
    assert [(t.core[0], t.core[1], t.outer[0], t.outer[1]) for t in tiles] == [
        (0, 40, 0, 48),
        (40, 80, 32, 88),
        (80, 100, 72, 100),
    ]


def test_overview_figure_shrinks_large_images():
    labels = np.zeros((3000, 2000), dtype=np.uint16)
    labels[100:400, 100:400] = 1
    rgb = np.zeros((3000, 2000, 3), dtype=np.uint8)
    figure = cp.overview_figure(rgb, [np.ones((3000, 2000))], labels, max_side=1000)
    assert figure.shape == (1000, 3 * 667 + 2 * 4, 3)
    yellow = (figure == (255, 255, 0)).all(axis=-1)
    assert yellow[:, 2 * 671 :].any() and not yellow[:, : 2 * 671].any()


# --------------------------------------------------------------------------- real Cellpose


@pytest.fixture(scope="session")
def imc_data(tmp_path_factory) -> Path:
    """Two unseen example images (another seed than the training set)."""
    from steinbock_like.example import write_example_imc

    root = tmp_path_factory.mktemp("cellpose_imc")
    write_example_imc(root, images=2, size=160, seed=123)
    return root


def _run(data_dir: Path, *args: str):
    from steinbock_like.cli.main import cli

    result = CliRunner().invoke(
        cli, ["--data", str(data_dir), "segment", "cellpose", *args], catch_exceptions=True
    )
    return result


def _threshold_baseline(image_path: Path, panel_path: Path) -> np.ndarray:
    """Otsu threshold + connected components of the segmented channel: a naive segmentation."""
    from scipy import ndimage
    from skimage.filters import gaussian, threshold_otsu

    from steinbock_like.io.images import read_image
    from steinbock_like.io.panel import read_panel

    channel = cp.prepare_channels(read_image(image_path), read_panel(panel_path))[0]
    smooth = gaussian(channel, 1.0)
    return ndimage.label(smooth > threshold_otsu(smooth))[0]


@pytest.mark.slow
def test_cli_segments_multiplexed_images_well(trained_model, imc_data):
    from imageio.v3 import imread

    from steinbock_like.io.masks import read_mask

    result = _run(imc_data, "--model", str(trained_model), "--figures", "figures")
    assert result.exit_code == 0, result.output + repr(result.exception)
    for name in ("example_001", "example_002"):
        truth = read_mask(imc_data / layout.MASKS_TRUTH / f"{name}.tiff")
        mask = read_mask(imc_data / layout.MASKS / f"{name}.tiff")
        assert mask.shape == truth.shape and mask.dtype == np.uint16
        ap = average_precision(truth, mask)
        baseline = average_precision(
            truth,
            _threshold_baseline(imc_data / layout.IMG / f"{name}.tiff", imc_data / "panel.csv"),
        )
        # A random or shifted segmentation scores ~0 at IoU 0.5, and thresholding
        # merges the touching cells (baseline AP ~0.01-0.02). The 10-epoch model
        # reaches ~0.64 here (0.70 on a 6000 px image); AP 0.5 means at least as
        # many objects found with the right outline as misses and false objects
        # together (e.g. two in three found, with as many false as missed), far
        # from what chance or thresholding gives.
        assert ap >= 0.5, f"{name}: AP {ap:.3f}"
        assert ap >= baseline + 0.25, f"{name}: AP {ap:.3f} vs thresholding {baseline:.3f}"
        figure = imread(imc_data / "figures" / f"{name}.png")
        assert figure.shape[0] == 160 and figure.shape[2] == 3
        assert (figure == (255, 255, 0)).all(axis=-1).any()  # outlines drawn

    metadata = json.loads((imc_data / layout.MASKS / layout.RUN_METADATA).read_text())
    model = metadata["model"]
    from steinbock_like.models import sha256_of_file

    assert model["sha256"] == sha256_of_file(trained_model)
    assert model["cellpose"] == metadata["versions"]["cellpose"] == cp.cellpose_version()
    objects = metadata["images"]["example_001"]["info"]["objects"]
    mask = read_mask(imc_data / layout.MASKS / "example_001.tiff")
    assert objects > 50 and objects == len(np.unique(mask)) - 1


@pytest.mark.slow
def test_cli_tissue_mask_crops_and_maps_back(trained_model, imc_data, tmp_path):
    from steinbock_like.io.masks import read_mask, write_mask

    tissue = np.zeros((160, 160), dtype=np.uint8)
    tissue[37:121, 58:151] = 1  # off-centre: the crop starts at a non-zero offset
    tissue[90:121, 58:90] = 0  # and is not a rectangle
    write_mask(tmp_path / "tissue" / "example_001.tiff", tissue)
    write_mask(tmp_path / "tissue" / "example_002.tiff", np.zeros_like(tissue))

    result = _run(
        imc_data, "--model", str(trained_model), "--tissue-masks", str(tmp_path / "tissue"),
        "-o", str(tmp_path / "masks"),
    )  # fmt: skip
    assert result.exit_code == 0, result.output + repr(result.exception)
    mask = read_mask(tmp_path / "masks" / "example_001.tiff")
    assert mask.any() and not mask[tissue == 0].any()
    truth = read_mask(imc_data / layout.MASKS_TRUTH / "example_001.tiff")
    # Against the truth clipped to the tissue the same way, only correctly placed
    # objects match: a shift of a few pixels would bring AP near 0.
    expected = st.keep_inside(truth, tissue > 0)
    assert average_precision(expected, mask) >= 0.45
    assert not read_mask(tmp_path / "masks" / "example_002.tiff").any()
    metadata = json.loads((tmp_path / "masks" / layout.RUN_METADATA).read_text())
    assert metadata["images"]["example_001"]["info"]["crop"] == [29, 129, 50, 159]


class ThresholdSegmenter:
    """Stands in for Cellpose: connected components of the bright half of channel 0."""

    def __init__(self, model_path, settings=None, *, threads=None):
        self.calls = 0

    def segment(self, channels, **kwargs):
        return label_8(np.asarray(channels)[0] > 0.5)


def test_cli_hed_pipeline_with_tissue_mask(tmp_path, monkeypatch):
    """RGB TIFF -> haematoxylin -> tissue crop -> segmenter -> full-size mask, via the CLI.

    A threshold stand-in replaces the network (fast, and exact on a noise-free slide),
    so the assertions are about the HED preparation and the coordinates: nuclei are
    bright only if the deconvolution and inversion are right, and they match the truth
    only if the crop is mapped back correctly. The real network on H&E:
    test_cli_hed_with_a_real_model.
    """
    import tifffile

    from steinbock_like.io.masks import read_mask, write_mask

    monkeypatch.setattr(cp, "CellposeSegmenter", ThresholdSegmenter)
    monkeypatch.setattr(cp, "cellpose_version", lambda: "3.1.1")
    weights = tmp_path / "weights"
    weights.write_bytes(b"stand-in")
    # Without noise, equalisation puts glass and tissue at 0 and every nucleus at 1.
    rgb, nuclei, _ = example_slide(shape=(128, 160), seed=5, noise=0.0)
    assert nuclei.any()
    (tmp_path / "img").mkdir()
    tifffile.imwrite(tmp_path / "img" / "slide.tiff", rgb, photometric="rgb")
    tissue = np.zeros(nuclei.shape, dtype=np.uint8)
    # An off-centre region, so that the crop starts at a non-zero offset; the nuclei it
    # cuts are kept or dropped by the same rule on both sides (keep_inside).
    tissue[50:114, 66:146] = 1
    write_mask(tmp_path / "tissue" / "slide.tiff", tissue)

    result = _run(tmp_path, "--stain", "hed", "--model", str(weights))
    assert result.exit_code == 0, result.output + repr(result.exception)
    whole = read_mask(tmp_path / layout.MASKS / "slide.tiff")
    assert average_precision(nuclei, whole) == 1.0

    result = _run(
        tmp_path, "--stain", "hed", "--model", str(weights), "--tissue-masks", "tissue",
        "-o", "masks_tissue", "--figures", "figures",
    )  # fmt: skip
    assert result.exit_code == 0, result.output + repr(result.exception)
    mask = read_mask(tmp_path / "masks_tissue" / "slide.tiff")
    assert mask.shape == nuclei.shape and not mask[tissue == 0].any()
    assert average_precision(st.keep_inside(nuclei, tissue > 0), mask) == 1.0
    figure = tmp_path / "figures" / "slide.png"
    assert figure.is_file()


@pytest.fixture(scope="session")
def hed_model(tmp_path_factory) -> Path:
    """A Cellpose model trained briefly on the haematoxylin channel of synthetic H&E
    slides (:func:`steinbock_like.testing.train_cellpose_hed_model`, slide seed 7)."""
    pytest.importorskip("cellpose")
    return train_cellpose_hed_model(tmp_path_factory.mktemp("cellpose_hed"))


@pytest.mark.slow
def test_cli_hed_with_a_real_model(hed_model, tmp_path):
    """The real network on the haematoxylin channel of held-out H&E slides finds the nuclei."""
    from imageio.v3 import imread

    from steinbock_like.example.brightfield import write_example_brightfield
    from steinbock_like.io.masks import read_mask

    # Other slides than the training ones (seed 123, not 7); CYX float32 TIFFs, 0..255.
    names = write_example_brightfield(tmp_path, images=2, size=160, seed=123)
    result = _run(tmp_path, "--stain", "hed", "--model", str(hed_model), "--figures", "figures")
    assert result.exit_code == 0, result.output + repr(result.exception)
    for name in names:
        truth = read_mask(tmp_path / layout.MASKS_TRUTH_NUCLEI / f"{name}.tiff")
        mask = read_mask(tmp_path / layout.MASKS / f"{name}.tiff")
        assert mask.shape == truth.shape == (160, 160)
        # Values, not only shapes: an empty mask scores 0, and so does one shifted by a
        # few pixels (the nuclei are about 6 px across). Measured F1 at IoU 0.5: 0.995 and
        # 0.96 on these two slides, 0.93-0.96 on four other held-out ones; 0.0 with the
        # haematoxylin channel inverted or the eosin channel segmented in its place.
        f1 = object_f1(truth, mask)
        assert f1 >= 0.85, f"{name}: F1 {f1:.3f}"
        # Nothing on the glass around the tissue.
        tissue = read_mask(tmp_path / "tissue_truth" / f"{name}.tiff") > 0
        assert np.count_nonzero(mask[~tissue]) <= 0.01 * np.count_nonzero(~tissue)
        # Three panels: the RGB input, the haematoxylin channel, the outlines.
        figure = imread(tmp_path / "figures" / f"{name}.png")
        assert figure.shape == (160, 3 * 160 + 2 * 4, 3)
        assert (figure == (255, 255, 0)).all(axis=-1).any()  # outlines drawn


def test_cli_missing_model_is_one_line(tmp_path, monkeypatch, capsys):
    pytest.importorskip("cellpose")
    from steinbock_like.cli.main import main

    monkeypatch.setenv("CELLPOSE_LOCAL_MODELS_PATH", str(tmp_path / "models"))
    monkeypatch.setenv("STEINBOCK_LIKE_MODELS", str(tmp_path / "cache"))
    monkeypatch.delenv("STEINBOCK_LIKE_DATA", raising=False)
    with pytest.raises(SystemExit) as exit_:
        main(["--data", str(tmp_path), "segment", "cellpose", "--model", "cyto3"])
    assert exit_.value.code == 1
    error = capsys.readouterr().err.strip()
    assert error.count("\n") == 0
    assert error.startswith("Error: Cellpose model 'cyto3' not found")
    assert "run 'steinbock-like models get cyto3'" in error
    assert str(tmp_path / "models" / "cyto3") in error


@pytest.mark.slow
def test_models_get_over_http_then_segment(trained_model, imc_data, tmp_path, monkeypatch):
    """A model the tests trained, served by a local HTTP server as a mirror of the cache:
    'models get cyto3 --mirror URL' fetches and pins it, 'segment cellpose --model cyto3'
    finds it in the cache (Cellpose's own folder is empty)."""
    import functools
    import http.server
    import shutil
    import threading

    from cli_helpers import run

    served = tmp_path / "served"
    (served / "cellpose").mkdir(parents=True)
    shutil.copy(trained_model, served / "cellpose" / "cyto3")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{httpd.server_address[1]}"
        monkeypatch.setenv("STEINBOCK_LIKE_MODELS", str(tmp_path / "cache"))
        monkeypatch.setenv("CELLPOSE_LOCAL_MODELS_PATH", str(tmp_path / "empty"))
        assert run("models", "get", "cyto3", "--mirror", url) == 0
    finally:
        httpd.shutdown()
        httpd.server_close()
    cached = tmp_path / "cache" / "cellpose" / "cyto3"
    assert cached.read_bytes() == Path(trained_model).read_bytes()
    data = tmp_path / "data"
    shutil.copytree(imc_data, data)
    assert run("--data", data, "segment", "cellpose", "--model", "cyto3", "-o", "masks_cp") == 0
    metadata = json.loads((data / "masks_cp" / "run_metadata.json").read_text())
    assert metadata["model"]["path"] == str(cached) and metadata["model"]["builtin"]
    from steinbock_like.io.masks import read_mask

    assert read_mask(data / "masks_cp" / "example_001.tiff").max() > 5


def test_cli_rejects_minmax_with_zscore(tmp_path, trained_model_path_stub):
    result = _run(tmp_path, "--model", str(trained_model_path_stub), "--minmax", "--zscore")
    assert result.exit_code != 0
    assert "exclude each other" in str(result.exception)


@pytest.fixture
def trained_model_path_stub(tmp_path) -> Path:
    path = tmp_path / "weights"
    path.write_bytes(b"not loaded before the options are checked")
    return path
