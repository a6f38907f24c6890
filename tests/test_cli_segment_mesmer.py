"""``models get|path|list`` and ``segment mesmer`` as a user runs them."""

import json
import shutil

import numpy as np
import pytest
from cli_helpers import run

from steinbock_like.io.masks import read_mask

pytest.importorskip("onnxruntime")


@pytest.fixture
def cache(mesmer_model, monkeypatch):
    monkeypatch.setenv("STEINBOCK_LIKE_MODELS", str(mesmer_model.parent))
    return mesmer_model.parent


def test_models_get_verifies_the_cached_copy_and_prints_the_licence(cache, capsys):
    assert run("models", "get", "mesmer") == 0
    captured = capsys.readouterr()
    assert captured.out.strip() == str(cache / "mesmer.onnx")
    assert "non-commercial" in captured.err
    assert run("models", "path", "mesmer") == 0
    assert capsys.readouterr().out.strip() == str(cache / "mesmer.onnx")
    assert run("models", "list") == 0
    assert "mesmer\tcached\t" in capsys.readouterr().out


def test_missing_model_is_a_one_line_error_saying_how_to_get_it(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("STEINBOCK_LIKE_MODELS", str(tmp_path / "empty"))
    (tmp_path / "panel.csv").write_text("channel,name,deepcell\nA,a,1\nB,b,2\n")
    assert run("--data", tmp_path, "segment", "mesmer") == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "steinbock-like models get mesmer" in err


def test_mesmer_reproduces_deepcell_masks(refdata, cache, tmp_path, capsys):
    shutil.copytree(refdata / "img", tmp_path / "img")
    shutil.copy(refdata / "panel.csv", tmp_path / "panel.csv")
    code = run("--data", tmp_path, "segment", "mesmer", "--minmax", "--type", "both")
    assert code == 0, capsys.readouterr().err
    for reference in sorted((refdata / "masks_deepcell").glob("*.tiff")):
        assert np.array_equal(read_mask(tmp_path / "masks" / reference.name), read_mask(reference))
        nuclei = read_mask(tmp_path / "masks_nuclei" / reference.name)
        assert nuclei.shape == read_mask(reference).shape and nuclei.max() > 0
    metadata = json.loads((tmp_path / "masks" / "run_metadata.json").read_text())
    assert metadata["versions"]["mesmer_model_sha256"].startswith("7a7a262a")
    assert (tmp_path / "masks_nuclei" / "run_metadata.json").is_file()


def test_wrong_group_count_is_named(cache, tmp_path, capsys):
    (tmp_path / "panel.csv").write_text("channel,name,deepcell\nA,a,1\nB,b,1\n")
    assert run("--data", tmp_path, "segment", "mesmer") == 1
    err = capsys.readouterr().err
    assert "panel.csv: Mesmer needs exactly two groups" in err and "found 1" in err


#: Nuclear masks of the refdata images (``--minmax``): object count and sha256 of the
#: uint16 mask bytes. Pinned from this implementation (deepcell's reference has whole-cell
#: masks only); a change of the nuclear post-processing (e.g. ``h`` 0.1 -> 0.075 turns
#: 43 -> 47 and 17 -> 18 nuclei) changes them.
NUCLEAR_MASKS = {
    "20210305_NE_mockData1_001": (43, "f8fdc21c0cf75729"),
    "20210305_NE_mockData1_002": (26, "561a85f2dd0737a5"),
    "20210305_NE_mockData1_003": (25, "71127921747960cd"),
    "20210305_NE_mockData2_001": (38, "9e8b1bb445f87024"),
    "20210305_NE_mockData2_002": (15, "5b98c383bca9811d"),
    "20210305_NE_mockData2_003": (17, "10247dd72a15da5f"),
}


@pytest.mark.parametrize("kind", ["nuclear", "both"])
def test_nuclear_masks_are_pinned_for_every_refdata_image(refdata, cache, tmp_path, capsys, kind):
    import hashlib

    shutil.copytree(refdata / "img", tmp_path / "img")
    shutil.copy(refdata / "panel.csv", tmp_path / "panel.csv")
    code = run("--data", tmp_path, "segment", "mesmer", "--minmax", "--type", kind)
    assert code == 0, capsys.readouterr().err
    found = {}
    for path in sorted((tmp_path / "masks_nuclei").glob("*.tiff")):
        mask = read_mask(path)
        assert mask.dtype == np.uint16
        digest = hashlib.sha256(np.ascontiguousarray(mask).tobytes()).hexdigest()[:16]
        found[path.stem] = (int(np.count_nonzero(np.unique(mask))), digest)
    assert found == NUCLEAR_MASKS
    assert (tmp_path / "masks").is_dir() == (kind == "both")
