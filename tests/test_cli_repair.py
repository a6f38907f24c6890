"""``steinbock-like repair`` end to end on files, as a user runs it."""

import json

import numpy as np
import pandas as pd
import pytest
from cli_helpers import run

from steinbock_like.io.masks import read_mask, write_mask


def make_pair(root, name, shape=(20, 20)):
    cells = np.zeros(shape, np.uint16)
    cells[2:10, 2:10] = 5  # nucleus 1 inside
    cells[2:10, 12:19] = 9  # nucleus 2 sticks out by one column
    cells[12:18, 2:8] = 11  # no nucleus
    nuclei = np.zeros(shape, np.uint16)
    nuclei[4:7, 4:7] = 1
    nuclei[4:8, 11:15] = 2
    nuclei[14:16, 12:15] = 3  # outside every cell
    write_mask(root / "masks" / f"{name}.tiff", cells)
    write_mask(root / "masks_nuclei" / f"{name}.tiff", nuclei)
    return cells, nuclei


def test_repair_writes_matched_masks_metrics_and_metadata(tmp_path, capsys):
    cells, nuclei = make_pair(tmp_path, "a")
    make_pair(tmp_path, "b")
    code = run("--data", str(tmp_path), "repair", "--workers", "2", "--boundaries-out", "membranes")
    assert code == 0, capsys.readouterr().err
    matched = read_mask(tmp_path / "masks_matched" / "a.tiff")
    matched_nuclei = read_mask(tmp_path / "masks_matched_nuclei" / "a.tiff")
    cytoplasm = read_mask(tmp_path / "masks_cytoplasm" / "a.tiff")
    assert matched.dtype == np.uint16
    assert sorted(np.unique(matched)) == [0, 1, 2]  # cell 11 had no nucleus: dropped
    assert np.array_equal(matched == 1, cells == 5) and np.array_equal(matched == 2, cells == 9)
    # the protruding nucleus is trimmed to its cell's interior (column 11 and the membrane go)
    assert (matched_nuclei == 2).sum() == 4 * 2  # rows 4-7, columns 13-14
    assert np.all(matched[matched_nuclei > 0] == matched_nuclei[matched_nuclei > 0])
    assert np.array_equal(cytoplasm > 0, (matched > 0) & (matched_nuclei == 0))
    membranes = read_mask(tmp_path / "membranes" / "a.tiff")
    assert membranes[2, 2] == 1 and membranes[5, 5] == 0

    metrics = pd.read_csv(tmp_path / "repair_metrics.csv", index_col="image")
    assert list(metrics.index) == ["a", "b"]
    row = metrics.loc["a"]
    assert (row["cells"], row["nuclei"], row["matched"]) == (3, 3, 2)
    assert (row["unmatched_cells"], row["unmatched_nuclei"]) == (1, 1)
    assert row["matched_fraction"] == pytest.approx(2 / 4)
    assert row["max_mismatch"] == pytest.approx(8 / 16)  # nucleus 2: 8 of 16 pixels outside
    metadata = json.loads((tmp_path / "masks_matched" / "run_metadata.json").read_text())
    assert metadata["summary"]["ok"] == 2 and metadata["images"]["a"]["info"]["matched"] == 2
    assert "matched fraction 0.500" in capsys.readouterr().err


def test_repair_refuses_to_overwrite_and_resumes(tmp_path, capsys):
    make_pair(tmp_path, "a")
    assert run("--data", str(tmp_path), "repair") == 0
    capsys.readouterr()
    assert run("--data", str(tmp_path), "repair") == 1
    err = capsys.readouterr().err
    assert "exist already" in err and "--resume" in err
    make_pair(tmp_path, "b")
    assert run("--data", str(tmp_path), "repair", "--resume") == 0
    metrics = pd.read_csv(tmp_path / "repair_metrics.csv", index_col="image")
    assert list(metrics.index) == ["a", "b"] and metrics.loc["a", "matched"] == 2


def test_bad_mask_fails_its_image_only_and_is_named(tmp_path, capsys):
    make_pair(tmp_path, "a")
    make_pair(tmp_path, "b")
    bad = tmp_path / "masks_nuclei" / "b.tiff"
    write_mask(bad, np.zeros((5, 5), np.uint16))
    assert run("--data", str(tmp_path), "repair") == 1
    err = capsys.readouterr().err
    assert f"{bad}: nuclear mask shape (5, 5) differs from the cell mask's (20, 20)" in err
    assert "Traceback" not in err
    assert (tmp_path / "masks_matched" / "a.tiff").exists()
    assert not (tmp_path / "masks_matched" / "b.tiff").exists()


def test_nuclei_without_cells_are_reported(tmp_path, capsys):
    make_pair(tmp_path, "a")
    write_mask(tmp_path / "masks_nuclei" / "z.tiff", np.zeros((20, 20), np.uint16))
    assert run("--data", str(tmp_path), "repair") == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith(f"Error: {tmp_path / 'masks_nuclei' / 'z.tiff'}: no matching file")


def test_resume_redoes_an_image_with_one_output_missing(tmp_path, capsys):
    make_pair(tmp_path, "a")
    make_pair(tmp_path, "b")
    assert run("--data", str(tmp_path), "repair") == 0
    done = tmp_path / "masks_matched" / "a.tiff"
    kept = {p: p.stat().st_mtime_ns for p in (tmp_path / "masks_matched").glob("b.tiff")}
    lost = next(p for p in tmp_path.glob("*/a.tiff") if p.parent.name not in ("masks",
        "masks_nuclei", "masks_matched"))  # fmt: skip
    lost.unlink()  # one of image a's outputs is gone: a is not finished
    capsys.readouterr()
    assert run("--data", str(tmp_path), "repair", "--resume") == 0, capsys.readouterr().err
    assert lost.is_file() and done.is_file()
    metadata = json.loads((tmp_path / "masks_matched" / "run_metadata.json").read_text())
    assert metadata["summary"] == {"ok": 1, "skipped": 1, "failed": 0}
    assert {p: p.stat().st_mtime_ns for p in kept} == kept
