"""Finding ilastik and CellProfiler where our scripts, PATH or the environment put them;
``steinbock-like doctor``."""

import os
import stat
import sys
from pathlib import Path

import numpy as np
import pytest
import tifffile
from cli_helpers import run

from steinbock_like import tools
from steinbock_like.classify.ilastik import binary as ilastik_binary
from steinbock_like.errors import MissingToolError
from steinbock_like.segment.cellprofiler import binary as cp_binary


def _executable(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return path


# A stand-in for CellProfiler's interpreter: 'python -m cellprofiler ... -i IN -o OUT'
# writes a mask of ones per input and records that it ran.
FAKE_CELLPROFILER = f"""#!{sys.executable}
import pathlib, sys
import numpy as np, tifffile
args = sys.argv[1:]
src, out = pathlib.Path(args[args.index('-i') + 1]), pathlib.Path(args[args.index('-o') + 1])
pathlib.Path(__file__).with_name('ran').write_text(' '.join(args))
for image in sorted(src.iterdir()):
    shape = tifffile.imread(image).shape[:2]
    tifffile.imwrite(out / (image.stem + '.tiff'), np.ones(shape, np.uint16))
"""


@pytest.fixture()
def clean(tmp_path, monkeypatch):
    """No tool anywhere: an empty checkout, an empty PATH, no environment variables."""
    checkout = tmp_path / "checkout"
    checkout.mkdir()
    monkeypatch.setattr(tools, "checkout_roots", lambda: [checkout])
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    monkeypatch.delenv(cp_binary.CELLPROFILER_PYTHON_ENV, raising=False)
    monkeypatch.delenv(ilastik_binary.BINARY_ENV, raising=False)
    monkeypatch.setattr(cp_binary, "DEFAULT_CELLPROFILER_PYTHON", str(tmp_path / "opt/python"))
    monkeypatch.setattr(ilastik_binary, "DEFAULT_BINARY", str(tmp_path / "opt/run_ilastik.sh"))
    monkeypatch.setenv("STEINBOCK_LIKE_MODELS", str(tmp_path / "models"))
    return checkout


def test_cellprofiler_from_our_install_script_is_used_by_the_cli(clean, tmp_path, capsys):
    python = _executable(clean / ".venv-cellprofiler/bin/python", FAKE_CELLPROFILER)
    data = tmp_path / "data"
    (data / "ilastik_probabilities").mkdir(parents=True)
    tifffile.imwrite(data / "ilastik_probabilities/a.tiff", np.zeros((6, 7, 3), np.uint16))
    # scale 1: the stand-in writes masks of the probabilities' own shape
    assert run("--data", data, "segment", "cellprofiler", "prepare", "--scale", "1") == 0
    assert run("--data", data, "segment", "cellprofiler", "run", "--backend", "auto") == 0
    assert "-m cellprofiler" in (python.parent / "ran").read_text()
    assert tifffile.imread(data / "masks/a.tiff").shape == (6, 7)
    assert "backend: cellprofiler (auto)" in capsys.readouterr().err


def test_cellprofiler_search_order(clean, tmp_path, monkeypatch):
    # on PATH: the interpreter of the 'cellprofiler' console script
    other = _executable(tmp_path / "cp-env/bin/python", "#!/bin/sh\n")
    _executable(tmp_path / "bin/cellprofiler", f"#!{other}\n# console script\n")
    found = cp_binary.locate_cellprofiler()
    assert (found.path, found.source.split()[0]) == (other, "PATH")
    # our install script's environment comes before PATH
    local = _executable(clean / ".venv-cellprofiler/bin/python", "#!/bin/sh\n")
    assert cp_binary.find_cellprofiler_python() == local
    # an explicit environment variable and --python come first, and are not second-guessed
    monkeypatch.setenv(cp_binary.CELLPROFILER_PYTHON_ENV, str(other))
    assert cp_binary.find_cellprofiler_python() == other
    assert cp_binary.find_cellprofiler_python(local) == local
    monkeypatch.setenv(cp_binary.CELLPROFILER_PYTHON_ENV, str(tmp_path / "nowhere"))
    with pytest.raises(MissingToolError, match="nowhere.*CELLPROFILER_PYTHON"):
        cp_binary.find_cellprofiler_python()


def test_missing_cellprofiler_names_every_place_and_the_install_script(clean, tmp_path, capsys):
    (tmp_path / "data").mkdir()
    assert run("--data", tmp_path / "data", "segment", "cellprofiler", "prepare") == 0
    code = run(
        "--data", tmp_path / "data", "segment", "cellprofiler", "run", "--backend", "cellprofiler"
    )
    assert code == 1
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert str(clean / ".venv-cellprofiler/bin/python") in error
    assert "bash scripts/install_cellprofiler.sh" in error


def test_ilastik_on_path_and_in_checkout(clean, tmp_path, monkeypatch):
    with pytest.raises(MissingToolError, match="--backend native"):
        ilastik_binary.find_ilastik_binary()
    bundled = _executable(clean / "ilastik-1.4.1-Linux/run_ilastik.sh", "#!/bin/sh\n")
    assert ilastik_binary.locate_ilastik().source == "checkout"
    on_path = _executable(tmp_path / "bin/run_ilastik.sh", "#!/bin/sh\n")
    assert ilastik_binary.find_ilastik_binary() == on_path
    monkeypatch.setenv(ilastik_binary.BINARY_ENV, str(bundled))
    assert ilastik_binary.find_ilastik_binary() == bundled


def test_doctor_lists_tools_packages_and_models(clean, tmp_path, capsys):
    _executable(clean / ".venv-cellprofiler/bin/python", "#!/bin/sh\n")
    cache = tmp_path / "models"
    (cache / "cellpose").mkdir(parents=True)
    (cache / "mesmer.onnx").write_bytes(b"truncated")
    assert run("doctor") == 0
    out = capsys.readouterr().out
    lines = {
        line.split()[0]: line
        for line in out.splitlines()
        if line.startswith("  ") and line.split()[0] != "get"
    }
    assert (
        "found" in lines["CellProfiler"]
        and "scripts/install_cellprofiler.sh" in lines["CellProfiler"]
    )
    assert "missing" in lines["ilastik"]
    assert "modified" in lines["mesmer"]
    assert "steinbock-like models get mesmer --force" in out
    assert "steinbock-like models get cyto3" in out
    for package in ("onnxruntime", "cellpose", "napari"):
        assert package in lines
    assert "steinbock-like[apps]" in out or "found" in lines["napari"]
    assert os.path.basename(out.strip().splitlines()[-1]).endswith("optional components found")
