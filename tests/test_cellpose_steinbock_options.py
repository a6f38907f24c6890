"""steinbock's ``segment cellpose`` options reach Cellpose's ``eval`` (or do what Cellpose
would), first with a stand-in network that records its calls, then with a real one."""

from __future__ import annotations

import sys
import types
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from steinbock_like.segment import cellpose as cp
from tests.cli_helpers import run


@pytest.fixture
def recorded(monkeypatch):
    """A stand-in ``cellpose.models.CellposeModel`` whose eval records its input and options."""
    calls = []

    class FakeModel:
        def __init__(self, **kwargs):
            pass

        def eval(self, x, **kwargs):
            calls.append((np.array(x), kwargs))
            labels = np.zeros(x.shape[:2], dtype=np.uint16)
            labels[1:3, 1:3] = 1
            return labels, None, None

    fake = types.ModuleType("cellpose")
    fake.models = types.SimpleNamespace(CellposeModel=FakeModel)
    monkeypatch.setitem(sys.modules, "cellpose", fake)
    monkeypatch.setattr(cp.segmenter, "cellpose_version", lambda: "3.1.1")
    pytest.importorskip("torch")
    return calls


def _data(root: Path) -> Path:
    from steinbock_like.io.images import write_image

    rng = np.random.default_rng(3)
    image = rng.uniform(0, 10, (2, 20, 24)).astype(np.float32)
    write_image(root / "img" / "a.tiff", image)
    pd.DataFrame(
        {"channel": ["x", "dna"], "name": ["X", "DNA"], "keep": 1, "cellpose": [1, 2]}
    ).to_csv(root / "panel.csv", index=False)
    weights = root / "weights"
    weights.write_bytes(b"w")
    return weights


def _segment(root: Path, weights: Path, *options) -> None:
    args = ["--data", root, "segment", "cellpose", "--model", weights, "--overwrite", *options]
    assert run(*args) == 0


def test_defaults_are_steinbocks(tmp_path, recorded):
    weights = _data(tmp_path)
    _segment(tmp_path, weights)
    x, options = recorded[-1]
    assert options["resample"] is False  # steinbock's --no-resample
    assert options["niter"] is None and options["augment"] is False
    assert options["rescale"] is None and options["max_size_fraction"] == 0.4
    assert options["normalize"] is False  # done before the network, image-wide
    lo, hi = np.percentile(x[..., 0], [1, 99])
    assert lo == pytest.approx(0, abs=1e-6) and hi == pytest.approx(1, abs=1e-6)


def test_options_are_passed_through(tmp_path, recorded):
    weights = _data(tmp_path)
    _segment(tmp_path, weights, "--resample", "--niter", "7", "--augment", "--rescale", "0.5",
             "--max-size-fraction", "0.9")  # fmt: skip
    _, options = recorded[-1]
    assert options["resample"] is True and options["niter"] == 7 and options["augment"] is True
    assert options["rescale"] == 0.5 and options["max_size_fraction"] == 0.9


def test_invert_and_no_normalize_change_the_network_input(tmp_path, recorded):
    from steinbock_like.io.images import read_image

    weights = _data(tmp_path)
    _segment(tmp_path, weights)
    _segment(tmp_path, weights, "--invert")
    _segment(tmp_path, weights, "--no-normalize")
    (plain, _), (inverted, _), (raw, _) = recorded[-3:]
    np.testing.assert_allclose(inverted, 1 - plain, atol=1e-6)
    image = read_image(tmp_path / "img" / "a.tiff")
    np.testing.assert_allclose(raw[..., 0], image[0])  # as aggregated, not stretched
    np.testing.assert_allclose(raw[..., 1], image[1])


def test_invert_without_normalize_is_refused_as_cellpose_refuses_it(tmp_path, capsys, recorded):
    weights = _data(tmp_path)
    args = ["--data", tmp_path, "segment", "cellpose", "--model", weights]
    assert run(*args, "--invert", "--no-normalize") == 1
    assert "--invert needs --normalize" in capsys.readouterr().err
    assert recorded == []


def test_invert_leaves_empty_channels_empty():
    channels = np.stack([np.array([[0.0, 0.25], [1.0, 0.5]]), np.zeros((2, 2))])
    out = cp.segmenter.invert_channels(channels)
    np.testing.assert_allclose(out[0], [[1.0, 0.75], [0.0, 0.5]])
    assert not out[1].any()


# --------------------------------------------------------------------------- real Cellpose


@pytest.fixture(scope="module")
def small_data(tmp_path_factory) -> Path:
    """One unseen example image (not the training set)."""
    from steinbock_like.example import write_example_imc

    data = tmp_path_factory.mktemp("cellpose_options")
    write_example_imc(data, images=1, size=96, seed=123)
    return data


@pytest.mark.slow
def test_real_cellpose_masks_change_with_the_options(trained_model, small_data):  # noqa: F811
    """The tiny model tests/test_cellpose.py trains (its fixture, imported)."""
    from steinbock_like.io.masks import read_mask

    model, data = trained_model, small_data

    def masks(*options) -> np.ndarray:
        assert run("--data", data, "segment", "cellpose", "--model", model, "--overwrite",
                   "--diameter", "16", *options) == 0  # fmt: skip
        return read_mask(data / "masks" / "example_001.tiff")

    default = masks()
    assert len(np.unique(default)) > 5  # the model finds cells
    assert np.array_equal(masks("--no-resample"), default)  # steinbock's default
    for option in (["--resample"], ["--niter", "5"], ["--invert"], ["--augment"]):
        assert not np.array_equal(masks(*option), default), option
