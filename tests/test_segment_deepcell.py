"""``segment deepcell`` (steinbock's names, our Mesmer) and ``segment mesmer --type nuclear -o``."""

import shutil

import numpy as np
import pytest
import tifffile

from tests.cli_helpers import run

IMAGE = "20210305_NE_mockData1_001"


@pytest.fixture
def data(refdata, mesmer_model, tmp_path, monkeypatch):
    monkeypatch.setenv("STEINBOCK_LIKE_MODELS", str(mesmer_model.parent))
    (tmp_path / "img").mkdir()
    shutil.copy(refdata / "img" / f"{IMAGE}.tiff", tmp_path / "img")
    shutil.copy(refdata / "panel.csv", tmp_path)
    return tmp_path


def _mask(path):
    return tifffile.imread(path / f"{IMAGE}.tiff")


def test_nuclear_goes_to_o_in_both_commands(data):
    assert run("--data", data, "segment", "deepcell", "--type", "nuclear", "-o", "nuc") == 0
    assert run("--data", data, "segment", "mesmer", "--type", "nuclear", "-o", "nuc2") == 0
    assert not (data / "masks_nuclei").exists()
    nuclei = _mask(data / "nuc")
    assert nuclei.max() > 5
    np.testing.assert_array_equal(nuclei, _mask(data / "nuc2"))
    # --nuclei-out, our name, still wins
    assert run("--data", data, "segment", "mesmer", "--type", "nuclear", "-o", "x",
               "--nuclei-out", "nuc3", "--resume") == 0  # fmt: skip
    assert (data / "nuc3" / f"{IMAGE}.tiff").is_file() and not (data / "x").exists()


def test_postprocess_yaml(data):
    assert run("--data", data, "segment", "deepcell", "-o", "default") == 0
    (data / "same.yaml").write_text("maxima_threshold: 0.075\ninterior_threshold: 0.2\n")
    (data / "strict.yaml").write_text("interior_threshold: 0.4\nsmall_objects_threshold: 40\n")
    assert run("--data", data, "segment", "deepcell", "--postprocess", data / "same.yaml",
               "-o", "same") == 0  # fmt: skip
    assert run("--data", data, "segment", "deepcell", "--postprocess", data / "strict.yaml",
               "-o", "strict") == 0  # fmt: skip
    default, strict = _mask(data / "default"), _mask(data / "strict")
    np.testing.assert_array_equal(default, _mask(data / "same"))
    assert np.count_nonzero(strict) < np.count_nonzero(default)
    assert 0 < len(np.unique(strict)) < len(np.unique(default))
    (data / "pre.yaml").write_text("threshold: true\npercentile: 90\nkernel_size: 64\n")
    assert run("--data", data, "segment", "deepcell", "--preprocess", data / "pre.yaml",
               "-o", "pre") == 0  # fmt: skip
    assert not np.array_equal(_mask(data / "pre"), default)


def test_bad_parameters_and_models_are_one_line(data, capsys):
    (data / "bad.yaml").write_text("pixel_expansion: 2\n")
    assert run("--data", data, "segment", "deepcell", "--postprocess", data / "bad.yaml") == 1
    assert "pixel_expansion" in capsys.readouterr().err
    (data / "pre.yaml").write_text("normalize: false\n")
    assert run("--data", data, "segment", "deepcell", "--preprocess", data / "pre.yaml") == 1
    assert "normalize: only True" in capsys.readouterr().err
    assert run("--data", data, "segment", "deepcell", "--model", "NoSuchModel") == 1
    err = capsys.readouterr().err
    assert err.startswith("Error: --model NoSuchModel") and err.count("\n") == 1
    (data / "keras").mkdir()
    assert run("--data", data, "segment", "deepcell", "--model", "keras") == 1
    assert "Keras models are not supported" in capsys.readouterr().err
