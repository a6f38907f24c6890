"""The shared batch runner: workers, failures, overwrite/resume, run metadata."""

import json
import os

import numpy as np
import pytest

from steinbock_like.errors import InputError, OutputExistsError, SteinbockLikeError
from steinbock_like.io.images import read_image, write_image
from steinbock_like.io.masks import write_mask
from steinbock_like.runner import Job, LocalExecutor, remove_stale_temp_files, run_batch


class ThresholdTask:
    """A tiny real task: mask = pixels above a threshold; records its worker's pid."""

    def __init__(self, threshold: float):
        self.threshold = threshold
        self.setup_pid = None

    def setup(self):
        self.setup_pid = os.getpid()

    def versions(self):
        return {"threshold-task": "1"}

    def __call__(self, job):
        image = read_image(job.inputs["image"])
        mask = (image[0] > self.threshold).astype(np.uint16)
        write_mask(job.outputs["mask"], mask)
        return {"foreground": int(mask.sum()), "pid": os.getpid(), "setup_pid": self.setup_pid}


def make_jobs(tmp_path, n=4, broken=()):
    img, out = tmp_path / "img", tmp_path / "masks"
    img.mkdir(exist_ok=True)
    jobs = []
    for i in range(n):
        path = img / f"im{i}.tiff"
        if i in broken:
            path.write_bytes(b"II*\x00 truncated")
        else:
            write_image(path, np.full((1, 4, 5), i, np.float32))
        jobs.append(Job(f"im{i}", {"image": path}, {"mask": out / f"im{i}.tiff"}))
    return jobs


def run(task, jobs, **kwargs):
    kwargs.setdefault("progress", False)
    return run_batch(task, jobs, command="test threshold", parameters={"t": 1.5}, **kwargs)


def test_jobs_run_and_metadata_is_written(tmp_path):
    jobs = make_jobs(tmp_path)
    summary = run(ThresholdTask(1.5), jobs)
    assert [r.status for r in summary.results] == ["ok"] * 4
    assert [r.info["foreground"] for r in summary.results] == [0, 0, 20, 20]
    metadata = json.loads((tmp_path / "masks" / "run_metadata.json").read_text())
    assert metadata["command"] == "steinbock-like test threshold"
    assert metadata["parameters"] == {"t": 1.5}
    assert metadata["versions"]["threshold-task"] == "1" and "numpy" in metadata["versions"]
    assert metadata["summary"] == {"ok": 4, "skipped": 0, "failed": 0}
    assert metadata["images"]["im2"]["status"] == "ok"
    assert metadata["images"]["im2"]["inputs"]["image"].endswith("img/im2.tiff")
    assert metadata["images"]["im2"]["seconds"] >= 0


def test_two_workers_use_processes_with_one_setup_each(tmp_path):
    jobs = make_jobs(tmp_path, n=6)
    summary = run(ThresholdTask(0.5), jobs, executor=LocalExecutor(2))
    pids = {r.info["pid"] for r in summary.results}
    assert os.getpid() not in pids and 1 <= len(pids) <= 2
    assert all(r.info["setup_pid"] == r.info["pid"] for r in summary.results)
    assert [r.name for r in summary.results] == [j.name for j in jobs]  # job order kept


def test_one_failing_image_does_not_stop_the_others(tmp_path):
    jobs = make_jobs(tmp_path, broken={1})
    summary = run(ThresholdTask(0.5), jobs, executor=LocalExecutor(2))
    assert [r.status for r in summary.results] == ["ok", "failed", "ok", "ok"]
    failed = summary.failed[0]
    assert failed.error.startswith(str(jobs[1].inputs["image"]) + ": unreadable or truncated TIFF")
    assert not jobs[1].outputs["mask"].exists()  # no output for the broken image
    assert sorted(p.name for p in (tmp_path / "masks").iterdir()) == [
        "im0.tiff",
        "im2.tiff",
        "im3.tiff",
        "run_metadata.json",
    ]
    assert summary.line() == "3 done, 1 failed"


def test_existing_outputs_are_refused_then_overwritten(tmp_path):
    jobs = make_jobs(tmp_path)
    run(ThresholdTask(1.5), jobs)
    with pytest.raises(OutputExistsError, match="exist already") as info:
        run(ThresholdTask(0.5), jobs)
    assert "4 output file(s) exist already" in str(info.value)
    assert "--overwrite" in str(info.value) and "--resume" in str(info.value)
    summary = run(ThresholdTask(0.5), jobs, overwrite=True)
    assert [r.info["foreground"] for r in summary.results] == [0, 20, 20, 20]
    with pytest.raises(SteinbockLikeError, match="exclude each other"):
        run(ThresholdTask(0.5), jobs, overwrite=True, resume=True)


def test_resume_skips_readable_outputs_and_redoes_broken_ones(tmp_path):
    jobs = make_jobs(tmp_path)
    run(ThresholdTask(1.5), jobs[:2])
    jobs[1].outputs["mask"].write_bytes(b"II*\x00 half-written")  # e.g. copied by hand, cut off
    summary = run(ThresholdTask(1.5), jobs, resume=True)
    assert [r.status for r in summary.results] == ["skipped", "ok", "ok", "ok"]
    metadata = json.loads((tmp_path / "masks" / "run_metadata.json").read_text())
    assert metadata["images"]["im0"]["status"] == "skipped"
    assert metadata["images"]["im0"]["previous_status"] == "ok"
    assert metadata["summary"] == {"ok": 3, "skipped": 1, "failed": 0}


def test_stale_temp_files_of_an_interrupted_run_are_removed(tmp_path):
    jobs = make_jobs(tmp_path, n=1)
    out = tmp_path / "masks"
    out.mkdir()
    (out / ".tmp-im0-abc.tiff").write_bytes(b"partial")
    run(ThresholdTask(0.5), jobs)
    assert not (out / ".tmp-im0-abc.tiff").exists()
    assert remove_stale_temp_files(out) == []


class LeavesAKilledWritersFile(ThresholdTask):
    """As if a worker died while writing the last image's output (its file stays)."""

    def __init__(self, threshold, dead_pid):
        super().__init__(threshold)
        self.dead_pid = dead_pid

    def __call__(self, job):
        if job.name == "im2":
            (job.outputs["mask"].parent / f".tmp-{self.dead_pid}-abc.tiff").write_bytes(b"II*")
        return super().__call__(job)


def test_what_a_worker_that_died_was_writing_is_gone_after_the_batch(tmp_path):
    import subprocess
    import sys

    finished = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                              capture_output=True, text=True, check=True)  # fmt: skip
    jobs = make_jobs(tmp_path, n=3)
    summary = run(LeavesAKilledWritersFile(0.5, int(finished.stdout)), jobs)
    assert summary.count("ok") == 3
    assert sorted(p.name for p in (tmp_path / "masks").iterdir()) == [
        "im0.tiff", "im1.tiff", "im2.tiff", "run_metadata.json",
    ]  # fmt: skip


def test_worker_count_is_validated():
    with pytest.raises(SteinbockLikeError, match="at least 1"):
        LocalExecutor(0)


def test_input_error_message_is_kept_verbatim(tmp_path):
    def task(job):
        raise InputError(job.inputs["image"], "bad things")

    jobs = make_jobs(tmp_path, n=1)
    summary = run(task, jobs)
    assert summary.failed[0].error == f"{jobs[0].inputs['image']}: bad things"


class SetupFails(ThresholdTask):
    def setup(self):
        raise RuntimeError("model file is corrupt")


def test_a_worker_that_cannot_start_is_a_clear_error(tmp_path):
    # Many jobs: the first worker fails while the rest are still being submitted.
    jobs = make_jobs(tmp_path, n=40)
    for _ in range(5):
        with pytest.raises(SteinbockLikeError) as raised:
            run(SetupFails(0.5), jobs, executor=LocalExecutor(2), overwrite=True)
        assert str(raised.value) == (
            "a worker process could not start: RuntimeError: model file is corrupt"
        )
    with pytest.raises(RuntimeError, match="model file is corrupt"):  # one worker: the cause
        run(SetupFails(0.5), jobs, overwrite=True)


def test_resume_with_other_settings_is_refused_even_before_any_image_finished(tmp_path, caplog):
    jobs = make_jobs(tmp_path)
    run(ThresholdTask(1.5), jobs)
    # A run killed before any image finished: its settings are on record, no output is.
    for job in jobs:
        job.outputs["mask"].unlink()
    jobs[0].outputs["mask"].write_bytes(b"II*\x00 half-written")  # one cut off
    other = {"t": 0.5}
    with pytest.raises(SteinbockLikeError, match=r"made with --t 1\.5, this run has 0\.5"):
        run_batch(ThresholdTask(0.5), jobs, command="test threshold", parameters=other, resume=True)
    assert not any(job.outputs["mask"].exists() for job in jobs[1:])
    # the same settings resume; without any record, other settings go with a warning
    summary = run(ThresholdTask(1.5), jobs, resume=True)
    assert [r.status for r in summary.results] == ["ok"] * 4
    (tmp_path / "masks" / "run_metadata.json").unlink()
    jobs[0].outputs["mask"].write_bytes(b"II*\x00 half-written")
    summary = run_batch(
        ThresholdTask(0.5), jobs, command="test threshold", parameters=other, resume=True
    )
    assert [r.status for r in summary.results] == ["ok", "skipped", "skipped", "skipped"]
    assert "settings" in caplog.text and "cannot be checked" in caplog.text


def test_package_versions_equal_importlib_metadata():
    from importlib import metadata

    from steinbock_like.runner.metadata import CORE_PACKAGES, package_versions

    names = [*CORE_PACKAGES, "PyYAML", "scikit_learn", "Click", "no-such-package-here"]
    versions = package_versions(names)
    for name in names[:-1]:
        assert versions[name] == metadata.version(name), name
    assert "no-such-package-here" not in versions
