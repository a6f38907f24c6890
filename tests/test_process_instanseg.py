"""instanseg: a real InstanSeg network (random weights) exported to TorchScript by
instanseg-torch's own code, run through the processor: plumbing, tiling, label output."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from cli_helpers import run

from steinbock_like.io.masks import read_mask


def export_instanseg(path: Path, *, cells_and_nuclei: bool, dim_in: int = 2) -> Path:
    """Build an InstanSeg UNet with instanseg-torch, wrap it for inference as its exporter
    does (InstanSeg_Torchscript) and script and save it; the weights stay random."""
    import torch
    from instanseg.utils.loss.instanseg_loss import InstanSeg as InstanSegMethod
    from instanseg.utils.loss.instanseg_loss import InstanSeg_Torchscript
    from instanseg.utils.model_loader import build_model_from_dict

    settings = {
        "model_str": "InstanSeg_UNet",
        "dim_in": dim_in,
        "layers": [8, 16],
        "norm": "BATCH",
        "multihead": False,
        "cells_and_nuclei": cells_and_nuclei,
        "dim_coords": 2,
        "n_sigma": 2,
        "dim_seeds": 1,
        "dropprob": 0.0,
    }
    model = build_model_from_dict(settings, random_seed=0)
    method = InstanSegMethod(
        n_sigma=2, feature_engineering_function="0", dim_coords=2, dim_seeds=1, device="cpu"
    )
    model = method.initialize_pixel_classifier(model, MLP_width=5)
    model.eval()
    wrapped = InstanSeg_Torchscript(
        model,
        cells_and_nuclei=cells_and_nuclei,
        pixel_size=0.5,
        n_sigma=2,
        feature_engineering_function="0",
        backbone_dim_in=dim_in,
        # the exporter's optimised-parameter hook: thresholds low enough that random
        # weights still give objects
        params={"seed_threshold": 0.52, "mask_threshold": 0.0, "min_size": 1, "peak_distance": 15},
    )
    torch.jit.save(torch.jit.script(wrapped), str(path))
    return path


pytestmark = pytest.mark.slow  # exporting the network takes ~20 s


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, Path]:
    pytest.importorskip("instanseg", reason="instanseg-torch is not installed")
    pytest.importorskip("seaborn", reason="instanseg-torch's exporter needs seaborn")
    root = tmp_path_factory.mktemp("instanseg")
    return {"nuclei": export_instanseg(root / "nuclei.pt", cells_and_nuclei=False)}


def test_processor_labels_equal_instanseg_own_inference(models):
    import torch
    from instanseg import InstanSeg

    from steinbock_like.process.instanseg import load_instanseg, segment_instanseg

    rng = np.random.default_rng(0)
    image = rng.random((2, 100, 130)).astype(np.float32)
    model = load_instanseg(str(models["nuclei"]))
    ours = segment_instanseg(
        model,
        image,
        pixel_size=None,
        tile_size=256,
        batch_size=1,
        normalise=True,
        targets=["nucleus"],
    )["nucleus"]
    reference = InstanSeg(torch.jit.load(str(models["nuclei"])), device="cpu", verbosity=0)
    theirs = reference.eval_small_image(
        torch.from_numpy(image), pixel_size=None, return_image_tensor=False
    )
    theirs = theirs.numpy().reshape(image.shape[1:]).astype(np.int32)
    assert ours.shape == image.shape[1:] and ours.dtype == np.int32
    np.testing.assert_array_equal(ours, theirs)
    assert ours.max() >= 1  # the random network finds something on the whole image
    # tiled: several tiles, a mask of the image's size with labels 0..N
    tiled = segment_instanseg(
        model,
        image,
        pixel_size=None,
        tile_size=64,
        batch_size=2,
        normalise=True,
        targets=["nucleus"],
    )["nucleus"]
    assert tiled.shape == image.shape[1:] and tiled.min() == 0


def test_instanseg_through_process_and_a_missing_model_file(models, tmp_path, capsys):
    data = tmp_path / "data"
    assert run("--data", data, "example", "imc", ".", "--images", 1, "--size", 96) == 0
    shutil.copy(models["nuclei"], data / "instanseg.pt")
    config = data / "i.yaml"
    config.write_text(
        "schema_version: 1\nprocessors:\n"
        "  - type: instanseg\n    input: [DNA1, CD45]\n    output: {nucleus: nuclei}\n"
        "    parameters: {tile_size: 64}\n"
    )
    assert run("--data", data, "process", "--config", config) == 0
    mask = read_mask(data / "masks_nuclei" / "example_001.tiff")
    assert mask.shape == (96, 96)
    import json

    meta = json.loads((data / "masks_nuclei" / "run_metadata.json").read_text())
    assert "instanseg_model_sha256" in json.dumps(meta)
    (data / "instanseg.pt").unlink()
    capsys.readouterr()
    assert run("--data", data, "process", "--config", config, "--overwrite") == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert err[0] == (
        f"Error: {data / 'instanseg.pt'}: InstanSeg model file not found (a TorchScript .pt "
        "exported by instanseg-torch)"
    )
