"""process segmenters give the same masks as their commands with the same settings:
cellpose (multiplexed, and HED brightfield within a blob tissue mask) and the native
ilastik + CellProfiler route; the example configurations run."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from cli_helpers import run

from steinbock_like.io.masks import read_mask

CONFIGS = Path(__file__).parents[1] / "panel_examples" / "configs"


@pytest.fixture(scope="module")
def example(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("process_seg")
    assert run("--data", root, "example", "imc", ".", "--images", 2, "--size", 96, "--seed", 4) == 0
    return root


@pytest.fixture(scope="module")
def cellpose_model(tmp_path_factory, example) -> Path:
    """A Cellpose 3 model of the default architecture, trained for six epochs (fast; the
    comparison needs the same network, not a good one)."""
    pytest.importorskip("cellpose")
    from steinbock_like.io.images import read_image
    from steinbock_like.io.panel import read_panel
    from steinbock_like.segment import cellpose as cp
    from steinbock_like.testing import train_cellpose_model

    panel = read_panel(example / "panel.csv")
    images, labels = [], []
    for name in ("example_001", "example_002"):
        images.append(cp.prepare_channels(read_image(example / "img" / f"{name}.tiff"), panel))
        labels.append(read_mask(example / "masks_truth" / f"{name}.tiff"))
    return train_cellpose_model(images, labels, tmp_path_factory.mktemp("cp_model"), epochs=6)


def copy_of(example: Path, target: Path) -> Path:
    target.mkdir(parents=True)
    shutil.copy(example / "panel.csv", target / "panel.csv")
    shutil.copytree(example / "img", target / "img")
    return target


@pytest.mark.slow
def test_cellpose_processor_equals_segment_cellpose(example, cellpose_model, tmp_path):
    data = copy_of(example, tmp_path / "p")
    (data / "c.yaml").write_text(
        f"""schema_version: 1
processors:
  - type: cellpose
    input:
      cytoplasm: [Vimentin, panCK, CD45, E-cadherin, CD68, CD3, HLA-ABC]
      nuclear: [Histone H3, DNA1, DNA2]
    output: cells
    parameters: {{model: {cellpose_model}, diameter: 11, normalize: minmax, block_size: 64,
                  block_overlap: 16, cellprob_threshold: -6, flow_threshold: 0}}
"""
    )
    assert run("--data", data, "process", "--config", data / "c.yaml") == 0
    cmd = copy_of(example, tmp_path / "c")
    args = [
        "--model",
        cellpose_model,
        "--diameter",
        11,
        "--minmax",
        "--cellprob-threshold",
        -6,
        "--flow-threshold",
        0,
    ]
    assert (
        run("--data", cmd, "segment", "cellpose", *args, "--block-size", 64, "--block-overlap", 16)
        == 0
    )
    for name in ("example_001", "example_002"):
        ours = read_mask(data / "masks_cells" / f"{name}.tiff")
        theirs = read_mask(cmd / "masks" / f"{name}.tiff")
        np.testing.assert_array_equal(ours, theirs)
        assert ours.max() > 0


def write_brightfield(target: Path) -> None:
    """An H&E-like RGB dataset (3-channel CYX, 0..255; ``example brightfield``'s slides
    slide_001 and slide_002): nuclei in an elliptic tissue region, glass around it."""
    from steinbock_like.example.brightfield import write_example_brightfield

    write_example_brightfield(target, images=2, size=96, seed=4)


@pytest.mark.slow
def test_ihc_config_equals_segment_cellpose_hed_with_the_tissue_mask(
    example, cellpose_model, tmp_path
):
    data = tmp_path / "p"
    write_brightfield(data)
    config = (CONFIGS / "ihc_cellpose_hed.yaml").read_text()
    config = config.replace(
        "{stain: hed, diameter: 11}",
        f"{{stain: hed, diameter: 11, model: {cellpose_model}, "
        "cellprob_threshold: -6, flow_threshold: 0}",
    )
    (data / "ihc.yaml").write_text(config)
    assert run("--data", data, "process", "--config", data / "ihc.yaml") == 0
    tissue = read_mask(data / "masks_tissue" / "slide_001.tiff")
    assert tissue[40, 40] == 1 and tissue[2, 2] == 0  # tissue found, glass excluded
    cmd = tmp_path / "c"
    write_brightfield(cmd)
    shutil.copytree(data / "masks_tissue", cmd / "tissue")
    args = [
        "--stain",
        "hed",
        "--model",
        cellpose_model,
        "--diameter",
        11,
        "--tissue-masks",
        "tissue",
        "--cellprob-threshold",
        -6,
        "--flow-threshold",
        0,
    ]
    assert run("--data", cmd, "segment", "cellpose", *args) == 0
    for name in ("slide_001", "slide_002"):
        ours = read_mask(data / "masks_nuclei" / f"{name}.tiff")
        np.testing.assert_array_equal(ours, read_mask(cmd / "masks" / f"{name}.tiff"))
        assert not np.any(ours[read_mask(data / "masks_tissue" / f"{name}.tiff") == 0])
    table = pd.read_csv(data / "regionprops_nuclei" / "slide_001.csv")
    assert len(table) == len(np.unique(read_mask(data / "masks_nuclei" / "slide_001.tiff"))) - 1


@pytest.mark.slow
def test_imc_config_equals_ilastik_and_cellprofiler_commands(example, tmp_path):
    base = copy_of(example, tmp_path / "base")
    shutil.copytree(example / "masks_truth", base / "masks_truth")
    shutil.copytree(example / "masks_truth_nuclei", base / "masks_truth_nuclei")
    assert run("--data", base, "classify", "ilastik", "prepare", "--cropsize", 80, "--seed", 0) == 0
    assert run("--data", base, "example", "ilastik-labels", "--fraction", 0.1) == 0
    cmd = tmp_path / "cmd"
    shutil.copytree(base, cmd)
    data = base
    assert (
        run("--data", data, "process", "--config", CONFIGS / "imc_ilastik_cellprofiler.yaml") == 0
    )
    assert run("--data", cmd, "classify", "ilastik", "run", "--backend", "native") == 0
    assert run("--data", cmd, "segment", "cellprofiler", "prepare") == 0
    assert run("--data", cmd, "segment", "cellprofiler", "run", "--backend", "native") == 0
    assert run("--data", cmd, "measure", "intensities") == 0
    for name in ("example_001", "example_002"):
        ours = read_mask(data / "masks_cells" / f"{name}.tiff")
        np.testing.assert_array_equal(ours, read_mask(cmd / "masks" / f"{name}.tiff"))
        assert ours.max() > 5
        pd.testing.assert_frame_equal(
            pd.read_csv(data / "intensities_cells" / f"{name}.csv"),
            pd.read_csv(cmd / "intensities" / f"{name}.csv"),
        )
    assert not (data / "ilastik_probabilities").exists()  # probabilities stay in memory


@pytest.mark.slow
def test_ihc_config_runs_on_the_brightfield_example(cellpose_model, tmp_path):
    assert run("--data", tmp_path, "example", "brightfield", "bf", "--size", "128") == 0
    data = tmp_path / "bf"
    config = (CONFIGS / "ihc_cellpose_hed.yaml").read_text()
    config = config.replace(
        "{stain: hed, diameter: 11}", f"{{stain: hed, model: {cellpose_model}}}"
    )
    (data / "ihc.yaml").write_text(config)
    assert run("--data", data, "process", "--config", data / "ihc.yaml") == 0
    for name in ("slide_001", "slide_002"):
        truth = read_mask(data / "tissue_truth" / f"{name}.tiff") > 0
        tissue = read_mask(data / "masks_tissue" / f"{name}.tiff") > 0
        assert (tissue & truth).sum() / (tissue | truth).sum() > 0.85  # the blob finds the tissue
        nuclei = read_mask(data / "masks_nuclei" / f"{name}.tiff")
        assert not np.any(nuclei[~tissue])  # and nothing is segmented on the glass
    assert (data / "regionprops_nuclei" / "slide_001.csv").is_file()
