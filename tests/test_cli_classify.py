"""``classify ilastik prepare | fix | run`` and ``example ilastik-labels`` as a user runs them."""

import json
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest
from cli_helpers import run
from test_ilastik_binary import make_fake

from steinbock_like.io.ilastik import read_ilastik_crop, read_ilastik_image
from steinbock_like.io.ilastik_project import read_project
from steinbock_like.io.masks import read_mask
from steinbock_like.io.probabilities import read_probabilities
from steinbock_like.metrics import object_f1


def test_prepare_reproduces_steinbock_ilastik_images(refdata, tmp_path, capsys):
    shutil.copytree(refdata / "img", tmp_path / "img")
    shutil.copy(refdata / "panel.csv", tmp_path / "panel.csv")
    args = [
        "--data",
        tmp_path,
        "classify",
        "ilastik",
        "prepare",
        "--cropsize",
        "50",
        "--seed",
        "123",
    ]
    assert run(*args, "--workers", "2") == 0, capsys.readouterr().err
    for reference in sorted((refdata / "ilastik_img").glob("*.h5")):
        ours = read_ilastik_image(tmp_path / "ilastik_img" / reference.name)
        with h5py.File(reference, "r") as file:
            expected = file["img"][()]
        assert ours.shape == expected.shape
        assert np.max(np.abs(ours - expected) / np.maximum(np.abs(expected), 1e-6)) < 1e-4
    summary = read_project(tmp_path / "pixel_classifier.ilp")
    assert summary.labels == ["Nucleus", "Cytoplasm", "Background"]
    crops = sorted(p.name for p in (tmp_path / "ilastik_crops").glob("*.h5"))
    assert [lane.file_path.split("/")[1] for lane in summary.lanes] == crops
    assert all(lane.file_path.startswith("ilastik_crops/") for lane in summary.lanes)
    # the project may hold a user's labels: never replaced silently
    capsys.readouterr()
    assert run(*args, "--overwrite") == 0
    assert run(*args[:-4]) == 1
    assert "may hold your training labels" in capsys.readouterr().err


def test_fix_converts_a_foreign_project(refdata, tmp_path, capsys):
    shutil.copy(refdata / "ilastik_original.ilp", tmp_path / "pixel_classifier.ilp")
    shutil.copytree(refdata / "ilastik_crops_original", tmp_path / "ilastik_crops")
    assert run("--data", tmp_path, "classify", "ilastik", "fix") == 0, capsys.readouterr().err
    assert (tmp_path / "pixel_classifier.ilp.bak").is_file()
    summary = read_project(tmp_path / "pixel_classifier.ilp")
    for lane in summary.lanes:
        assert lane.axes == ["c", "y", "x"]
        crop = read_ilastik_crop(tmp_path / lane.file_path.rsplit("/", 1)[0])
        assert crop.dtype == np.float32 and crop.shape == tuple(lane.shape)
    assert "fixed" in capsys.readouterr().err


def test_run_with_real_ilastik_backend_uses_the_shared_runner(tmp_path, monkeypatch, capsys):
    from steinbock_like.io.ilastik import write_ilastik_image

    for name in ("a", "b"):
        write_ilastik_image(tmp_path / "ilastik_img" / f"{name}.h5", np.ones((2, 4, 5), np.float32))
    project = tmp_path / "pixel_classifier.ilp"
    project.write_bytes(b"fake project")
    out = tmp_path / "ilastik_probabilities"
    fake = make_fake(tmp_path, out, project)
    monkeypatch.setenv("LAZYFLOW_THREADS", "3")  # the fake insists on these two
    args = ["--data", tmp_path, "classify", "ilastik", "run", "--ilastik", fake, "--mem", "1024"]
    assert run(*args, "--threads", "3") == 0, capsys.readouterr().err
    assert read_probabilities(out / "a.tiff").shape == (4, 5, 3)
    metadata = json.loads((out / "run_metadata.json").read_text())
    assert metadata["parameters"]["backend"] == "ilastik"  # auto found the binary
    assert metadata["images"]["b"]["info"] == {"backend": "ilastik"}
    capsys.readouterr()
    assert run(*args, "--threads", "3", "--resume") == 0
    assert "2 skipped" in capsys.readouterr().err


def test_missing_ilastik_names_the_native_backend(tmp_path, capsys):
    project = tmp_path / "p.ilp"
    project.write_bytes(b"x")
    code = run(
        "--data",
        tmp_path,
        "classify",
        "ilastik",
        "run",
        "--backend",
        "ilastik",
        "--ilp",
        project,
        "--ilastik",
        tmp_path / "nowhere.sh",
    )
    err = capsys.readouterr().err
    assert code == 1 and "native" in err and len(err.strip().splitlines()) == 1


@pytest.mark.slow
def test_example_trains_and_runs_a_classifier_without_a_gui(tmp_path, capsys):
    """The demo route: example data, prepare, labels from truth, native run, segmentation."""
    data = ["--data", tmp_path]
    assert run(*data, "example", "imc", ".", "--images", "2", "--size", "128", "--seed", "3") == 0
    assert run(*data, "classify", "ilastik", "prepare", "--cropsize", "120", "--seed", "0") == 0
    assert run(*data, "example", "ilastik-labels", "--fraction", "0.2") == 0
    code = run(*data, "classify", "ilastik", "run", "--backend", "native", "--workers", "2")
    assert code == 0, capsys.readouterr().err
    probabilities = read_probabilities(tmp_path / "ilastik_probabilities" / "example_001.tiff")
    truth_nuclei = read_mask(tmp_path / "masks_truth_nuclei" / "example_001.tiff")
    truth_cells = read_mask(tmp_path / "masks_truth" / "example_001.tiff")
    assert probabilities.shape == (256, 256, 3)
    classes = np.argmax(probabilities[::2, ::2], axis=-1) + 1
    expected = np.where(truth_nuclei > 0, 1, np.where(truth_cells > 0, 2, 3))
    accuracy = float(np.mean(classes == expected))
    assert accuracy > 0.8, accuracy  # boundaries are ambiguous; interiors must be right
    assert run(*data, "segment", "cellprofiler", "prepare") == 0
    assert run(*data, "segment", "cellprofiler", "run", "--backend", "native") == 0
    f1 = object_f1(truth_cells, read_mask(tmp_path / "masks" / "example_001.tiff"))
    assert f1 > 0.8, f1


def test_native_run_of_a_fixed_foreign_project_matches_real_ilastik(refdata, tmp_path, capsys):
    shutil.copy(refdata / "ilastik_original.ilp", tmp_path / "pixel_classifier.ilp")
    shutil.copytree(refdata / "ilastik_crops_original", tmp_path / "ilastik_crops")
    shutil.copytree(refdata / "ilastik_img", tmp_path / "ilastik_img")
    data = ["--data", tmp_path]
    assert run(*data, "classify", "ilastik", "fix", "--no-backup") == 0
    assert run(*data, "classify", "ilastik", "run", "--backend", "native", "--workers", "2") == 0
    agreements = []
    for reference in sorted((refdata / "ilastik_probabilities").glob("*.tiff")):
        expected = read_probabilities(reference).astype(np.float64) / 65535
        ours = read_probabilities(tmp_path / "ilastik_probabilities" / reference.name) / 65535
        agreements.append(np.mean(np.argmax(ours, -1) == np.argmax(expected, -1)))
        assert np.mean(np.abs(ours - expected)) <= 0.01, reference.name
    assert min(agreements) >= 0.995, agreements
    metadata = json.loads((tmp_path / "ilastik_probabilities" / "run_metadata.json").read_text())
    assert metadata["parameters"]["backend"] == "native"
    assert metadata["versions"]["backend"] == "native"


# ------------------------------------------------------------------ prepare --resume


def _prepared(tmp_path, capsys, *extra):
    data = ("--data", tmp_path)
    assert run(*data, "example", "imc", ".", "--images", "4", "--size", "96", "--seed", "5") == 0
    args = (*data, "classify", "ilastik", "prepare", "--cropsize", "40", "--scale", "1")
    assert run(*args, *extra) == 0, capsys.readouterr().err
    return args


def _crops(tmp_path):
    return sorted(p.name for p in (tmp_path / "ilastik_crops").glob("*.h5"))


def test_prepare_resume_without_seed_draws_with_the_recorded_seed(tmp_path, capsys):
    args = _prepared(tmp_path, capsys)
    crops = _crops(tmp_path)
    metadata = json.loads((tmp_path / "ilastik_crops" / "run_metadata.json").read_text())
    assert isinstance(metadata["parameters"]["seed"], int)  # the drawn seed is recorded
    # an interrupted run: two images not done yet
    for name in crops[:2]:
        (tmp_path / "ilastik_crops" / name).unlink()
        (tmp_path / "ilastik_img" / f"{name.split('_x')[0]}.h5").unlink()
    (tmp_path / "pixel_classifier.ilp").unlink()
    assert run(*args, "--resume") == 0, capsys.readouterr().err
    assert _crops(tmp_path) == crops  # the same crops, no orphans
    assert len(crops) == 4
    again = json.loads((tmp_path / "ilastik_crops" / "run_metadata.json").read_text())
    assert again["parameters"]["seed"] == metadata["parameters"]["seed"]
    assert again["summary"] == {"ok": 2, "skipped": 2, "failed": 0}
    # a finished run resumed again redoes nothing and keeps the project
    assert run(*args, "--resume") == 0
    assert _crops(tmp_path) == crops
    # the project written by the resumed run lists exactly these crops
    lanes = read_project(tmp_path / "pixel_classifier.ilp").lanes
    assert sorted(Path(lane.file_path).parent.name for lane in lanes) == crops


def test_prepare_resume_with_other_cropsize_or_seed_is_refused(tmp_path, capsys):
    args = _prepared(tmp_path, capsys, "--seed", "1")
    before = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "ilastik_img").glob("*.h5")}
    crops = _crops(tmp_path)
    capsys.readouterr()
    assert run(*args[:-4], "--cropsize", "30", "--scale", "1", "--resume") == 1
    assert "--cropsize 40" in capsys.readouterr().err
    assert run(*args, "--seed", "2", "--resume") == 1
    assert "--seed 1" in capsys.readouterr().err
    after = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "ilastik_img").glob("*.h5")}
    assert after == before and _crops(tmp_path) == crops
    assert run(*args, "--resume") == 0  # the recorded seed is reused
    assert _crops(tmp_path) == crops


def test_prepare_resume_before_any_image_finished_keeps_the_settings(tmp_path, capsys):
    args = _prepared(tmp_path, capsys, "--seed", "1")
    crops = _crops(tmp_path)
    # killed before the first image finished: only the records of the run are left
    for path in [*(tmp_path / "ilastik_img").glob("*.h5"), *(tmp_path / "ilastik_crops").glob("*")]:
        if path.name != "run_metadata.json":
            path.unlink()
    (tmp_path / "pixel_classifier.ilp").unlink()
    capsys.readouterr()
    assert run(*args[:-4], "--cropsize", "30", "--scale", "1", "--resume") == 1
    assert "--cropsize 40" in capsys.readouterr().err
    assert not list((tmp_path / "ilastik_img").glob("*.h5")) and _crops(tmp_path) == []
    assert run(*args, "--seed", "2", "--resume") == 1
    assert "--seed 1" in capsys.readouterr().err
    assert run(*args, "--resume") == 0  # the recorded seed: the same crops
    assert _crops(tmp_path) == crops


def test_prepare_resume_keeps_the_crops_on_disk_of_images_the_record_lacks(tmp_path, capsys):
    args = _prepared(tmp_path, capsys, "--seed", "1")
    crops = _crops(tmp_path)
    # another image set draws other positions; the crops already made stay where they are
    data = ("--data", tmp_path / "more")
    assert run(*data, "example", "imc", ".", "--images", "1", "--size", "96", "--seed", "9") == 0
    shutil.copy(
        tmp_path / "more" / "img" / "example_001.tiff", tmp_path / "img" / "example_000.tiff"
    )
    record = tmp_path / "ilastik_crops" / "run_metadata.json"
    metadata = json.loads(record.read_text())
    metadata["images"] = {}  # killed before the record said which images were done
    record.write_text(json.dumps(metadata))
    (tmp_path / "pixel_classifier.ilp").unlink()
    assert run(*args, "--resume") == 0, capsys.readouterr().err
    now = _crops(tmp_path)
    assert len(now) == 5 and set(crops) < set(now)
    assert "4 of 5 images already done" in capsys.readouterr().err
    lanes = read_project(tmp_path / "pixel_classifier.ilp").lanes
    assert sorted(Path(lane.file_path).parent.name for lane in lanes) == now


# ------------------------------------------------------------------ native forest reuse


def test_native_run_trains_once_and_retrains_when_labels_change(tmp_path, monkeypatch, capsys):
    from steinbock_like.classify.ilastik import training
    from steinbock_like.io import ilastik_project as ilp

    fits = []
    real_fit = training.fit_pixel_classifier
    monkeypatch.setattr(
        training, "fit_pixel_classifier", lambda *a, **k: fits.append(1) or real_fit(*a, **k)
    )
    data = ("--data", tmp_path)
    assert run(*data, "example", "imc", ".", "--images", "2", "--size", "64", "--seed", "3") == 0
    prepare = ("classify", "ilastik", "prepare", "--cropsize", "40", "--scale", "1", "--seed", "0")
    assert run(*data, *prepare) == 0
    assert run(*data, "example", "ilastik-labels", "--fraction", "0.3") == 0
    native = (*data, "classify", "ilastik", "run", "--backend", "native")
    project = tmp_path / "pixel_classifier.ilp"
    assert not read_project(project).has_forests

    assert run(*native) == 0, capsys.readouterr().err
    assert len(fits) == 1
    stored = read_project(project)
    assert stored.has_forests and training.TRAINING_KEY_ATTR in stored.forest_attributes
    first = read_probabilities(tmp_path / "ilastik_probabilities" / "example_001.tiff")

    # --resume with every image done: no training, no loading
    capsys.readouterr()
    assert run(*native, "--resume") == 0
    assert len(fits) == 1 and "reusing" not in capsys.readouterr().err
    # a new run reuses the stored forest, with the same result
    assert run(*native, "--overwrite") == 0
    assert len(fits) == 1 and "reusing the forest" in capsys.readouterr().err
    again = read_probabilities(tmp_path / "ilastik_probabilities" / "example_001.tiff")
    assert np.array_equal(first, again)

    # labels edited: trained again, and the new forest is stored
    blocks = [b for b in stored.label_blocks if b.lane == 0]
    edited = [ilp.LabelBlock(**{**b.__dict__, "data": np.zeros_like(b.data)}) for b in blocks[:1]]
    ilp.write_label_blocks(project, {0: edited + blocks[1:]})
    assert run(*native, "--overwrite") == 0
    assert len(fits) == 2 and "labels changed" in capsys.readouterr().err
    assert read_project(project).forest_attributes != stored.forest_attributes


def test_prepare_resume_redoes_an_image_whose_h5_was_cut_off(tmp_path, capsys):
    args = _prepared(tmp_path, capsys, "--seed", "1")
    images = sorted((tmp_path / "ilastik_img").glob("*.h5"))
    cut = images[1]
    whole = cut.read_bytes()
    expected = read_ilastik_image(cut)
    cut.write_bytes(whole[: len(whole) // 2])  # a run killed while writing it
    (tmp_path / "pixel_classifier.ilp").unlink()
    capsys.readouterr()
    assert run(*args, "--resume") == 0, capsys.readouterr().err
    metadata = json.loads((tmp_path / "ilastik_crops" / "run_metadata.json").read_text())
    assert metadata["summary"] == {"ok": 1, "skipped": len(images) - 1, "failed": 0}
    np.testing.assert_array_equal(read_ilastik_image(cut), expected)


def test_run_resume_redoes_an_image_whose_probabilities_tiff_was_cut_off(tmp_path, capsys):
    """``classify ilastik run --resume``: a probabilities TIFF cut off by a killed run is
    not taken as done; it is computed again (the same values), the others are skipped."""
    data = ("--data", tmp_path)
    assert run(*data, "example", "imc", ".", "--images", "3", "--size", "64", "--seed", "3") == 0
    prepare = ("classify", "ilastik", "prepare", "--cropsize", "40", "--scale", "1", "--seed", "0")
    assert run(*data, *prepare) == 0
    assert run(*data, "example", "ilastik-labels", "--fraction", "0.3") == 0
    native = (*data, "classify", "ilastik", "run", "--backend", "native")
    assert run(*native) == 0, capsys.readouterr().err
    outputs = sorted((tmp_path / "ilastik_probabilities").glob("*.tiff"))
    assert len(outputs) == 3
    cut = outputs[1]
    expected = read_probabilities(cut)
    assert expected.shape == (64, 64, 3) and expected.any()
    whole = cut.read_bytes()
    cut.write_bytes(whole[: len(whole) // 2])  # a run killed while writing it
    untouched = {p.name: p.stat().st_mtime_ns for p in outputs if p != cut}
    capsys.readouterr()
    assert run(*native, "--resume") == 0, capsys.readouterr().err
    metadata = json.loads((tmp_path / "ilastik_probabilities" / "run_metadata.json").read_text())
    assert metadata["summary"] == {"ok": 1, "skipped": 2, "failed": 0}
    np.testing.assert_array_equal(read_probabilities(cut), expected)
    assert {p.name: p.stat().st_mtime_ns for p in outputs if p != cut} == untouched
