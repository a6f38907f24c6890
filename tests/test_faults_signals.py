"""Faults that need a real process: kill -9, SIGTERM and Ctrl-C of a run with --workers 2.

Each test starts ``python -m steinbock_like segment cellprofiler run --workers 2`` (the
native backend, about a second per image), signals it once the first mask is written,
and checks that no worker survives, the exit status, that nothing half-written is left
under a final name, and that ``--resume`` finishes the batch.
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from cli_helpers import default_ctrl_c

from steinbock_like.io.masks import read_mask
from steinbock_like.io.probabilities import write_probabilities

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux /proc")

NUM_IMAGES = 8


def make_dataset(root: Path, num_images: int = NUM_IMAGES, size: int = 500) -> Path:
    rng = np.random.default_rng(0)
    for i in range(num_images):
        probabilities = (rng.random((size, size, 3)) * 65535).astype(np.uint16)
        write_probabilities(root / "ilastik_probabilities" / f"im{i}.tiff", probabilities)
    assert cli(root, "segment", "cellprofiler", "prepare").returncode == 0
    return root


def cli(root: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "steinbock_like", "--data", str(root), *args],
        capture_output=True,
        text=True,
        timeout=300,
    )


def start_run(root: Path, *extra: str) -> subprocess.Popen:
    command = [sys.executable, "-m", "steinbock_like", "--data", str(root)]
    command += ["segment", "cellprofiler", "run", "--backend", "native", "--workers", "2", *extra]
    return subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group, as a shell job would be
        preexec_fn=default_ctrl_c,
    )


def masks(root: Path) -> list[str]:
    directory = root / "masks"
    return sorted(p.name for p in directory.glob("*.tiff")) if directory.is_dir() else []


def wait_for_workers_and_a_mask(root: Path, process: subprocess.Popen) -> list[int]:
    """Wait until the run has its two workers and has written a first mask."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        assert process.poll() is None, process.communicate()
        workers = children(process.pid)
        if masks(root) and len(workers) >= 2:
            return workers
        time.sleep(0.05)
    raise AssertionError("the run wrote no mask in 120 s")


def children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid and fields[0] != "Z":
            found.append(int(stat.parent.name))
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"  # a zombie has finished (its new parent may just not reap it)


def wait_until_gone(pids: list[int], seconds: float = 15) -> list[int]:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and any(alive(pid) for pid in pids):
        time.sleep(0.05)
    return [pid for pid in pids if alive(pid)]


def assert_resume_finishes(root: Path) -> None:
    done = cli(
        root, "segment", "cellprofiler", "run", "--backend", "native", "--workers", "2", "--resume"
    )
    assert done.returncode == 0, done.stderr
    assert masks(root) == [f"im{i}.tiff" for i in range(NUM_IMAGES)]
    assert all(read_mask(root / "masks" / name).shape == (250, 250) for name in masks(root))
    assert not list((root / "masks").glob(".tmp-*"))
    metadata = json.loads((root / "masks" / "run_metadata.json").read_text())
    summary = metadata["summary"]
    assert summary["failed"] == 0 and summary["ok"] + summary["skipped"] == NUM_IMAGES
    assert summary["ok"] >= 1  # the interrupted images were done now


def test_kill_9_of_the_main_process_kills_its_workers(tmp_path):
    make_dataset(tmp_path)
    process = start_run(tmp_path)
    workers = wait_for_workers_and_a_mask(tmp_path, process)
    process.kill()
    process.wait(timeout=30)
    assert wait_until_gone(workers) == []
    time.sleep(1.5)  # orphans would go on writing masks
    written = masks(tmp_path)
    assert len(written) < NUM_IMAGES
    time.sleep(1.5)
    assert masks(tmp_path) == written
    assert_resume_finishes(tmp_path)


def test_sigterm_stops_cleanly_with_143(tmp_path):
    make_dataset(tmp_path)
    process = start_run(tmp_path)
    workers = wait_for_workers_and_a_mask(tmp_path, process)
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 143, err
    assert "Traceback" not in err
    assert "WARNING terminated: " in err and "rerun with --resume to continue" in err
    assert err.count("terminated") == 1  # the workers do not report it too
    assert wait_until_gone(workers) == []
    metadata = json.loads((tmp_path / "masks" / "run_metadata.json").read_text())
    assert metadata["in_progress"] is True  # the record says the run did not finish
    assert_resume_finishes(tmp_path)


def test_ctrl_c_to_the_process_group_stops_cleanly_with_130(tmp_path):
    make_dataset(tmp_path)
    process = start_run(tmp_path)
    workers = wait_for_workers_and_a_mask(tmp_path, process)
    os.killpg(process.pid, signal.SIGINT)  # what a terminal's Ctrl-C does
    _, err = process.communicate(timeout=60)
    assert process.returncode == 130, err
    assert "Traceback" not in err and "KeyboardInterrupt" not in err
    assert "WARNING interrupted: " in err and "rerun with --resume to continue" in err
    assert wait_until_gone(workers) == []
    assert_resume_finishes(tmp_path)
