"""process on the example dataset: equal to the commands run one by one, temporaries never
on disk, overwrite refusal, validation writing nothing."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from cli_helpers import run

from steinbock_like.io.masks import read_mask

CODEX = Path(__file__).parents[1] / "panel_examples" / "configs" / "codex_like.yaml"
NUCLEAR = ["Histone H3", "DNA1", "DNA2"]
MEMBRANE = ["Vimentin", "panCK", "CD45", "E-cadherin", "CD68", "CD3", "HLA-ABC"]


@pytest.fixture(scope="module")
def example(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("process_example")
    assert run("--data", root, "example", "imc", ".", "--images", 2, "--size", 80) == 0
    return root


def fresh(example: Path, tmp_path: Path) -> Path:
    data = tmp_path / "data"
    data.mkdir(parents=True)
    shutil.copy(example / "panel.csv", data / "panel.csv")
    shutil.copytree(example / "img", data / "img")
    return data


def files_under(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}


MESMER_CHAIN = f"""
schema_version: 1
processors:
  - type: mesmer
    input: {{nuclear: {NUCLEAR}, membrane: {MEMBRANE}}}
    output: {{cell: mesmer_cells, nucleus: mesmer_nuclei}}
    parameters: {{normalize: minmax, model: MODEL}}
    keep: false
  - type: repair
    input: {{cells: [mesmer_cells], nuclei: [mesmer_nuclei]}}
    output: {{cells: matched, nuclei: matched_nuclei, cytoplasm: cyto}}
  - type: ring
    input: [matched_nuclei]
    output: nuclear_rim
    parameters: {{outer: 0, inner: -2}}
    keep: false
quantify:
  - name: cells
    masks: {{cell: matched, nuclei: matched_nuclei, cytoplasm: cyto}}
    neighbors: {{type: expansion, dmax: 4}}
"""


def test_mesmer_chain_equals_the_commands_one_by_one(example, tmp_path, mesmer_model):
    data = fresh(example, tmp_path)
    config = data / "chain.yaml"
    config.write_text(MESMER_CHAIN.replace("MODEL", str(mesmer_model)))
    assert run("--data", data, "process", "--config", config) == 0
    cmd = fresh(example, tmp_path / "commands")
    steps = [
        ["segment", "mesmer", "--type", "both", "--minmax", "-o", "m", "--nuclei-out", "mn"],
        ["repair", "--cells", "m", "--nuclei", "mn"],
        [
            "measure",
            "intensities",
            "--masks",
            "masks_matched",
            "--compartment",
            "nuclei=masks_matched_nuclei",
            "--compartment",
            "cytoplasm=masks_cytoplasm",
        ],
        [
            "measure",
            "regionprops",
            "--masks",
            "masks_matched",
            "--compartment",
            "nuclei=masks_matched_nuclei",
            "--compartment",
            "cytoplasm=masks_cytoplasm",
        ],
        ["measure", "neighbors", "--masks", "masks_matched", "--type", "expansion", "--dmax", 4],
    ]
    steps[0] += ["--model", mesmer_model]
    for step in steps:
        assert run("--data", cmd, *step) == 0
    for name in ("example_001", "example_002"):
        for ours, theirs in (
            ("masks_matched", "masks_matched"),
            ("masks_matched_nuclei", "masks_matched_nuclei"),
            ("masks_cyto", "masks_cytoplasm"),
        ):
            a = read_mask(data / ours / f"{name}.tiff")
            b = read_mask(cmd / theirs / f"{name}.tiff")
            np.testing.assert_array_equal(a, b)
            assert a.max() > 5
        for ours, theirs in (
            ("intensities_cells", "intensities"),
            ("regionprops_cells", "regionprops"),
            ("neighbors_cells", "neighbors"),
        ):
            a = pd.read_csv(data / ours / f"{name}.csv")
            b = pd.read_csv(cmd / theirs / f"{name}.csv")
            pd.testing.assert_frame_equal(a, b)
    # temporaries never on disk: only kept outputs, tables and run records were written
    written = files_under(data) - files_under(example) - {"chain.yaml"}
    directories = {Path(p).parts[0] for p in written}
    assert directories == {
        "masks_matched",
        "masks_matched_nuclei",
        "masks_cyto",
        "intensities_cells",
        "regionprops_cells",
        "neighbors_cells",
    }
    assert not any("mesmer" in p or "rim" in p for p in written)
    # metadata: the resolved configuration and the model's checksum
    import json

    meta = json.loads((data / "masks_matched" / "run_metadata.json").read_text())
    text = json.dumps(meta)
    assert "mesmer_model_sha256" in text and '"normalize": "minmax"' in text
    # overwrite refusal: nothing runs, nothing changes
    before = (data / "masks_matched" / "example_001.tiff").stat().st_mtime_ns
    assert run("--data", data, "process", "--config", config) == 1
    assert (data / "masks_matched" / "example_001.tiff").stat().st_mtime_ns == before
    assert run("--data", data, "process", "--config", config, "--resume") == 0
    assert run("--data", data, "process", "--config", config, "--overwrite") == 0


def test_codex_example_config_runs_on_example_data(example, tmp_path, mesmer_model):
    data = fresh(example, tmp_path)
    config = data / "codex.yaml"
    config.write_text(
        CODEX.read_text().replace(
            "{normalize: none}", f"{{normalize: none, model: {mesmer_model}}}"
        )
    )
    assert run("--data", data, "process", "--config", config) == 0
    cells = read_mask(data / "masks_cells" / "example_001.tiff")
    ring = read_mask(data / "masks_nuclear_ring" / "example_001.tiff")
    nuclei = read_mask(data / "masks_nuclei" / "example_001.tiff")
    assert cells.max() > 5
    assert np.all(ring[ring != 0] == nuclei[ring != 0])  # the rim lies inside its nucleus
    table = pd.read_csv(data / "intensities_cells" / "example_001.csv")
    assert {"DNA1_nucleus", "DNA1_ring", "CD45_cytoplasm"} <= set(table.columns)
    assert not (data / "img_nuclear_signal").exists()


def test_validate_writes_nothing_and_errors_are_one_line(example, tmp_path, capsys):
    data = fresh(example, tmp_path)
    before = files_under(data)
    config = data / "bad.yaml"
    config.write_text(
        "schema_version: 1\nprocessors:\n  - {type: ring, input: [DNA1], output: r, "
        'parameters: {outer: "8px"}}\n'
    )
    capsys.readouterr()
    assert run("--data", data, "process", "--config", config, "--validate") == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].endswith(
        'bad.yaml: processors[0].parameters.outer: expected a number, got "8px"'
    )
    config.write_text(
        "schema_version: 1\nprocessors:\n  - {type: gaussian, input: [DNA1], output: s}\n"
    )
    assert run("--data", data, "process", "--config", config, "--validate") == 0
    assert files_under(data) == before | {"bad.yaml"}
    # an image that does not fit the panel: one line naming it, before anything runs
    from steinbock_like.io.images import read_image, write_image

    image = read_image(data / "img" / "example_002.tiff")
    write_image(data / "img" / "example_002.tiff", image[:5])
    capsys.readouterr()
    assert run("--data", data, "process", "--config", config) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("Error: ") and "example_002.tiff: image has 5 channels" in err[-1]
    assert not (data / "img_s").exists()
    # a channel the panel does not keep
    panel = pd.read_csv(data / "panel.csv")
    panel["keep"] = panel["name"] != "DNA1"
    panel.to_csv(data / "panel.csv", index=False)
    capsys.readouterr()
    assert run("--data", data, "process", "--config", config, "--validate") == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].endswith(
        'processors[0].input[0]: "DNA1" is neither a panel channel nor an output of an '
        "earlier processor"
    )
