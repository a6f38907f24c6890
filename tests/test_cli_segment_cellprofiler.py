"""``segment cellprofiler prepare | run`` as a user runs them."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from cli_helpers import run

from steinbock_like.io.masks import read_mask

REPO = Path(__file__).resolve().parents[1]


def cellprofiler_python():
    """CellProfiler's interpreter, found as the CLI finds it."""
    from steinbock_like.errors import MissingToolError
    from steinbock_like.segment.cellprofiler.binary import find_cellprofiler_python

    try:
        return find_cellprofiler_python()
    except MissingToolError:
        pytest.skip("CellProfiler is not installed (scripts/install_cellprofiler.sh)")


@pytest.fixture
def dataset(refdata, tmp_path):
    shutil.copytree(refdata / "ilastik_probabilities", tmp_path / "ilastik_probabilities")
    assert run("--data", tmp_path, "segment", "cellprofiler", "prepare") == 0
    return tmp_path


def assert_masks_equal_reference(refdata, masks_dir):
    names = sorted(p.name for p in (refdata / "masks_ilastik").glob("*.tiff"))
    assert sorted(p.name for p in masks_dir.glob("*.tiff")) == names
    for name in names:
        reference = read_mask(refdata / "masks_ilastik" / name)
        assert np.array_equal(read_mask(masks_dir / name), reference), name


def test_native_backend_reproduces_steinbock_masks(dataset, refdata, capsys):
    assert (
        run(
            "--data",
            dataset,
            "segment",
            "cellprofiler",
            "run",
            "--backend",
            "native",
            "--workers",
            "2",
        )
        == 0
    )
    assert_masks_equal_reference(refdata, dataset / "masks")
    metadata = json.loads((dataset / "masks" / "run_metadata.json").read_text())
    assert metadata["parameters"]["backend"] == "native"
    assert metadata["summary"]["ok"] == 6


@pytest.mark.slow
def test_cellprofiler_backend_reproduces_steinbock_masks(dataset, refdata, capsys):
    python = cellprofiler_python()
    code = run(
        "--data",
        dataset,
        "segment",
        "cellprofiler",
        "run",
        "--backend",
        "cellprofiler",
        "--python",
        python,
    )
    assert code == 0, capsys.readouterr().err
    assert_masks_equal_reference(refdata, dataset / "masks")
    metadata = json.loads((dataset / "masks" / "run_metadata.json").read_text())
    assert metadata["cellprofiler_python"] == str(python)


def test_missing_cellprofiler_and_unknown_module_are_one_line_errors(dataset, capsys):
    code = run(
        "--data",
        dataset,
        "segment",
        "cellprofiler",
        "run",
        "--backend",
        "cellprofiler",
        "--python",
        dataset / "nowhere" / "python",
    )
    err = capsys.readouterr().err
    assert code == 1 and "nowhere/python" in err and "--backend native" in err
    assert len(err.strip().splitlines()) == 1
    pipeline = dataset / "cell_segmentation.cppipe"
    text = pipeline.read_text()
    extra = (
        "MeasureTexture:[module_num:99|svn_version:\\'Unknown\\'|variable_revision_number:7|"
        "show_window:False|notes:\\x5B\\x5D|batch_state:array(\\x5B\\x5D, dtype=uint8)|"
        "enabled:True|wants_pause:False]\n    Select images to measure:\\x5B\\x5D\n\n"
    )
    pipeline.write_text(text.rstrip("\n") + "\n\n" + extra)
    code = run("--data", dataset, "segment", "cellprofiler", "run", "--backend", "native")
    err = capsys.readouterr().err
    assert code == 1 and "MeasureTexture" in err and "Traceback" not in err
    assert not (dataset / "masks").exists()


def test_prepare_refuses_to_overwrite_and_writes_options(tmp_path, capsys):
    assert (
        run(
            "--data",
            tmp_path,
            "segment",
            "cellprofiler",
            "prepare",
            "--min-diameter",
            "5",
            "--max-diameter",
            "30",
        )
        == 0
    )
    assert run("--data", tmp_path, "segment", "cellprofiler", "prepare") == 1
    assert "exists already" in capsys.readouterr().err
    from steinbock_like.segment.cellprofiler.translate import native_steps

    steps = native_steps((tmp_path / "cell_segmentation.cppipe").read_text())
    primary = [s for s in steps if type(s).__name__ == "IdentifyPrimary"][0]
    assert (primary.min_diameter, primary.max_diameter) == (5, 30)
