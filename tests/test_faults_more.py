"""More faults and bad input, beyond issue 15's list: each provoked through the CLI (or,
for a worker killed like the OOM killer does, a real process) and its outcome asserted."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import tifffile
from cli_helpers import run

from steinbock_like.io.images import write_image
from steinbock_like.io.masks import read_mask, write_mask
from steinbock_like.io.probabilities import write_probabilities

PANEL = "channel,name,ilastik,deepcell\nA,a,1,1\nB,b,2,2\nC,c,2,\n"


def dataset(root: Path, *files: str, size: int = 40) -> Path:
    (root / "panel.csv").write_text(PANEL)
    (root / "img").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for name in files:
        write_image(root / "img" / name, rng.random((3, size, size), dtype=np.float32))
    return root


def prepare(root: Path, *args) -> int:
    return run("--data", root, "classify", "ilastik", "prepare", "--cropsize", "20", *args)


def listing(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir()) if directory.exists() else []


def error_lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("Error")]


# -- outputs that would collide, or replace inputs --------------------------------------------


def test_two_images_with_one_name_are_refused_and_check_reports_them(tmp_path, capsys):
    root = dataset(tmp_path, "a.tif", "a.tiff")
    assert prepare(root) == 1
    assert error_lines(capsys.readouterr().err) == [
        f"Error: two images are named 'a' ({root / 'img' / 'a.tif'} and "
        f"{root / 'img' / 'a.tiff'}): their outputs would replace each other; rename or "
        "remove one"
    ]
    assert listing(root / "ilastik_img") == []
    assert run("--data", root, "check") == 1
    assert "another image has the name 'a'" in capsys.readouterr().err


def test_an_output_directory_that_is_the_input_directory_is_refused(tmp_path, capsys):
    rng = np.random.default_rng(0)
    probabilities = (rng.random((60, 60, 3)) * 65535).astype(np.uint16)
    write_probabilities(tmp_path / "ilastik_probabilities" / "a.tiff", probabilities)
    before = (tmp_path / "ilastik_probabilities" / "a.tiff").read_bytes()
    assert run("--data", tmp_path, "segment", "cellprofiler", "prepare") == 0
    args = ["--data", tmp_path, "segment", "cellprofiler", "run", "-o", "ilastik_probabilities"]
    assert run(*args, "--overwrite") == 1
    assert "this output would replace the input file" in capsys.readouterr().err
    assert (tmp_path / "ilastik_probabilities" / "a.tiff").read_bytes() == before


def test_an_output_path_that_is_a_directory_is_refused_before_work(tmp_path, capsys):
    root = dataset(tmp_path, "a.tiff")
    (root / "ilastik_img" / "a.h5").mkdir(parents=True)
    assert prepare(root, "--overwrite") == 1
    err = capsys.readouterr().err
    assert error_lines(err) == [
        f"Error: {root / 'ilastik_img' / 'a.h5'}: an output file's path is a directory"
    ]
    assert "[1/1]" not in err and listing(root / "ilastik_crops") == []


def test_an_output_directory_that_is_a_broken_link_is_named_as_such(tmp_path, capsys):
    root = dataset(tmp_path, "a.tiff")
    (root / "ilastik_img").symlink_to(tmp_path / "gone" / "away")
    assert prepare(root) == 1
    assert error_lines(capsys.readouterr().err) == [
        f"Error: {root / 'ilastik_img'}: cannot be an output directory, a broken link has that name"
    ]


def test_a_file_name_that_is_not_utf8_is_refused_before_work(tmp_path, capsys):
    root = dataset(tmp_path, "a.tiff")
    os.rename(os.fsencode(root / "img" / "a.tiff"), os.fsencode(root / "img") + b"/x\xff.tiff")
    assert run("--data", root, "check") == 1
    assert "x\\xff.tiff: the name is not valid UTF-8 text" in capsys.readouterr().err
    assert prepare(root) == 1  # was: all the work, then an unexpected UnicodeEncodeError
    err = capsys.readouterr().err
    assert "x\\xff.h5: the name is not valid UTF-8 text" in err and "Traceback" not in err
    assert listing(root / "ilastik_img") == []


def test_a_name_with_a_newline_is_quoted_in_the_per_run_table(tmp_path):
    cells = np.zeros((40, 40), np.uint16)
    cells[5:15, 5:15] = 1
    nuclei = np.zeros((40, 40), np.uint16)
    nuclei[8:12, 8:12] = 1
    write_mask(tmp_path / "masks" / "a\nb.tiff", cells)
    write_mask(tmp_path / "masks_nuclei" / "a\nb.tiff", nuclei)
    assert run("--data", tmp_path, "repair") == 0
    import pandas as pd

    table = pd.read_csv(tmp_path / "repair_metrics.csv")
    assert list(table["image"]) == ["a\nb"] and table.loc[0, "matched"] == 1


# -- resume and run records --------------------------------------------------------------------


def test_resume_of_prepare_keeps_the_crops_already_made(tmp_path, capsys):
    # crop positions are random without --seed: a resumed run redid every image and left
    # two crops per image (the project still naming the first ones)
    root = dataset(tmp_path, "a.tiff", "b.tiff", "c.tiff")
    assert prepare(root) == 0
    crops = listing(root / "ilastik_crops")
    (root / "ilastik_img" / "c.h5").unlink()
    for path in (root / "ilastik_crops").glob("c_*.h5"):
        path.unlink()
    assert prepare(root, "--resume") == 0
    assert "2 of 3 images already done" in capsys.readouterr().err
    now = listing(root / "ilastik_crops")
    assert len(now) == len(crops) and [n for n in now if not n.startswith("c_")] == [
        n for n in crops if not n.startswith("c_")
    ]


def test_resume_over_an_unreadable_run_record_warns_that_settings_are_unchecked(tmp_path, capsys):
    root = dataset(tmp_path, "a.tiff", "b.tiff")
    assert prepare(root) == 0
    (root / "ilastik_img" / "run_metadata.json").write_text("{garbage")
    (root / "ilastik_crops" / "run_metadata.json").unlink()
    (root / "ilastik_img" / "b.h5").unlink()
    assert prepare(root, "--resume") == 0
    err = capsys.readouterr().err
    assert "no readable run_metadata.json" in err and "cannot be checked" in err
    record = json.loads((root / "ilastik_img" / "run_metadata.json").read_text())
    assert record["summary"] == {"ok": 1, "skipped": 1, "failed": 0}  # a new, readable record


def test_the_settings_are_on_record_before_the_first_output(tmp_path):
    # a run killed before its first image finished still says how its outputs are made
    from steinbock_like.runner import Job, run_batch

    root = dataset(tmp_path, "a.tiff")
    seen = []

    def task(job):
        seen.append(json.loads((root / "out" / "run_metadata.json").read_text()))

    jobs = [Job("a", {"image": root / "img" / "a.tiff"}, {"x": root / "out" / "a.tiff"})]
    run_batch(task, jobs, command="t", parameters={"scale": 3}, progress=False)
    assert seen[0]["parameters"] == {"scale": 3} and seen[0]["in_progress"] is True


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--resume", "--overwrite"], "--overwrite and --resume exclude each other"),
        (["--workers", "0"], "--workers"),
    ],
)
def test_contradictory_runner_options(tmp_path, capsys, args, message):
    root = dataset(tmp_path, "a.tiff")
    assert prepare(root, *args) != 0
    assert message in capsys.readouterr().err
    assert listing(root / "ilastik_img") == []


# -- odd inputs --------------------------------------------------------------------------------


def test_odd_files_in_the_image_directory(tmp_path, capsys):
    root = dataset(tmp_path, "good.tiff")
    (root / "img" / "empty.tiff").write_bytes(b"")
    (root / "img" / "folder.tiff").mkdir()  # not a file: not an image
    tifffile.imwrite(root / "img" / "zstack.tiff", np.zeros((2, 3, 40, 40), np.float32))
    huge_value = np.ones((3, 40, 40))
    huge_value[0, 0, 0] = 1e300  # float64 beyond float32: would become inf
    tifffile.imwrite(root / "img" / "float64.tiff", huge_value)
    assert run("--data", root, "check") == 1
    lines = capsys.readouterr().err.splitlines()
    assert lines[:-1] == [
        f"{root / 'img' / 'empty.tiff'}: unreadable or truncated TIFF (TiffFileError: not a "
        "TIFF file: header=b'')",
        f"{root / 'img' / 'float64.tiff'}: non-finite pixel values (0 NaN, 1 infinite): "
        "replace them (e.g. with 0) before processing",
        f"{root / 'img' / 'zstack.tiff'}: expected a CYX image, found shape (2, 3, 40, 40)",
    ]
    assert lines[-1] == "Error: 3 problem(s) found"


def test_a_panel_with_a_byte_order_mark_is_read(tmp_path):
    root = dataset(tmp_path, "a.tiff")
    (root / "panel.csv").write_bytes(b"\xef\xbb\xbf" + PANEL.encode())
    assert run("--data", root, "check") == 0
    assert prepare(root) == 0


def test_a_garbage_memory_limit_falls_back_to_the_default(tmp_path, monkeypatch):
    from steinbock_like.io.images import image_memory_limit

    monkeypatch.setenv("STEINBOCK_LIKE_MAX_IMAGE_BYTES", "lots")
    assert image_memory_limit() > 2**20
    assert run("--data", dataset(tmp_path, "a.tiff"), "check") == 0


def test_nan_in_a_training_crop_stops_fix_before_any_change(tmp_path, capsys):
    import h5py

    root = dataset(tmp_path, "a.tiff", "b.tiff")
    assert prepare(root) == 0
    crop = sorted((root / "ilastik_crops").glob("*.h5"))[1]
    with h5py.File(crop, "r+") as file:
        data = file["crop"][()]
        data[0, 0, 0] = np.nan
        del file["crop"]
        file["crop"] = data  # no longer marked as steinbock layout: fix would convert it
    before = {p: p.read_bytes() for p in root.rglob("*") if p.is_file()}
    assert run("--data", root, "classify", "ilastik", "fix") == 1
    assert f"{crop}: non-finite pixel values (1 NaN" in capsys.readouterr().err
    assert {p: p.read_bytes() for p in root.rglob("*") if p.is_file()} == before


# -- pipelines ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        # channel 0 was read as index -1: the last channel, silently
        (
            "Channel number:1\n",
            "Channel number:0\n",
            "'Channel number' is 0; it must be at least 1",
        ),
        ("Typical artifact diameter:4", "Typical artifact diameter:0", "must be above 0"),
        ("Typical artifact diameter:4", "Typical artifact diameter:inf", "not a finite number"),
    ],
)
def test_more_nonsense_pipeline_settings(tmp_path, capsys, old, new, message):
    rng = np.random.default_rng(0)
    probabilities = (rng.random((64, 64, 3)) * 65535).astype(np.uint16)
    write_probabilities(tmp_path / "ilastik_probabilities" / "a.tiff", probabilities)
    assert run("--data", tmp_path, "segment", "cellprofiler", "prepare") == 0
    pipeline = tmp_path / "cell_segmentation.cppipe"
    assert old in pipeline.read_text()
    pipeline.write_text(pipeline.read_text().replace(old, new, 1))
    assert run("--data", tmp_path, "segment", "cellprofiler", "run", "--backend", "native") == 1
    assert message in capsys.readouterr().err
    assert listing(tmp_path / "masks") == []


def test_an_external_tools_mask_of_the_wrong_shape_fails_its_image(tmp_path):
    # What the CellProfiler backend does after its run, with a stand-in for CellProfiler.
    from steinbock_like.runner import ExternalToolExecutor, Job, run_batch
    from steinbock_like.segment.cellprofiler.pipeline import pipeline_text
    from steinbock_like.tasks.cellprofiler import _check_cellprofiler_mask

    rng = np.random.default_rng(0)
    jobs = []
    for name in ("good", "bad"):
        path = tmp_path / "probabilities" / f"{name}.tiff"
        write_probabilities(path, (rng.random((64, 64, 3)) * 65535).astype(np.uint16))
        jobs.append(Job(name, {"probabilities": path}, {"mask": tmp_path / "masks" / path.name}))

    def fake_cellprofiler(jobs):
        write_mask(tmp_path / "masks" / "good.tiff", np.ones((32, 32), np.uint16))
        write_mask(tmp_path / "masks" / "bad.tiff", np.ones((64, 0), np.uint16))

    executor = ExternalToolExecutor(fake_cellprofiler, "cellprofiler")
    executor.check_job = lambda job: _check_cellprofiler_mask(pipeline_text(), job)
    summary = run_batch(
        lambda job: None, jobs, command="t", parameters={}, executor=executor, progress=False
    )
    assert [r.status for r in summary.results] == ["ok", "failed"]
    assert "the pipeline made a mask of shape (64, 0), expected (32, 32)" in summary.failed[0].error
    assert listing(tmp_path / "masks") == ["good.tiff", "run_metadata.json"]
    assert read_mask(tmp_path / "masks" / "good.tiff").shape == (32, 32)


# -- processes ---------------------------------------------------------------------------------


def _probability_dataset(root: Path, count: int = 8, size: int = 500) -> None:
    rng = np.random.default_rng(0)
    for i in range(count):
        probabilities = (rng.random((size, size, 3)) * 65535).astype(np.uint16)
        write_probabilities(root / "ilastik_probabilities" / f"im{i}.tiff", probabilities)
    assert run("--data", root, "segment", "cellprofiler", "prepare") == 0


def _start(root: Path, *args: str) -> subprocess.Popen:
    command = [sys.executable, "-m", "steinbock_like", "--data", str(root)]
    command += ["segment", "cellprofiler", "run", "--backend", "native", *args]
    return subprocess.Popen(command, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)


def _children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid and fields[0] != "Z":
            found.append(int(stat.parent.name))
    return found


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux /proc")
def test_a_worker_killed_like_the_oom_killer_does_is_one_line_and_resume_finishes(tmp_path):
    _probability_dataset(tmp_path)
    process = _start(tmp_path, "--workers", "2")
    deadline = time.monotonic() + 120
    while len(_children(process.pid)) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    while not list((tmp_path / "masks").glob("im*.tiff")) and time.monotonic() < deadline:
        time.sleep(0.05)
    os.kill(_children(process.pid)[0], signal.SIGKILL)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 1 and "Traceback" not in err
    assert error_lines(err) == [
        "Error: a worker process died (out of memory, or it could not start): rerun with "
        "fewer --workers, or with --workers 1 to see the error"
    ]
    assert (
        run("--data", tmp_path, "segment", "cellprofiler", "run", "--backend", "native", "--resume")
        == 0
    )
    assert len(list((tmp_path / "masks").glob("im*.tiff"))) == 8


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux /proc")
def test_sigterm_with_one_worker_exits_143_and_keeps_the_record(tmp_path):
    _probability_dataset(tmp_path, count=6)
    process = _start(tmp_path)
    deadline = time.monotonic() + 120
    # two masks: the first one's result has surely reached the runner by then
    while len(list((tmp_path / "masks").glob("im*.tiff"))) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 143 and "Traceback" not in err
    record = json.loads((tmp_path / "masks" / "run_metadata.json").read_text())
    done = _finished_on_record(tmp_path / "masks")
    assert record["in_progress"] and done  # finished images are on record
    masks = {p.stem for p in (tmp_path / "masks").glob("im*.tiff")}
    # every recorded image has its mask; a mask renamed into place just as SIGTERM came
    # may lack its record (a rerun checks it and skips it): at most that one
    assert done <= masks and len(masks - done) <= 1


def _finished_on_record(directory) -> set[str]:
    try:
        record = json.loads((directory / "run_metadata.json").read_text())
    except (OSError, ValueError):
        return set()
    return {n for n, entry in record.get("images", {}).items() if entry["status"] == "ok"}
