"""The shared runner on a real dask cluster: a scheduler and two worker processes on loopback.

The ``dask scheduler`` and ``dask worker`` programs run as subprocesses (no
in-process stand-in); commands run through the CLI with ``--scheduler`` and must
write the same bytes as the local executor, also when a worker is killed
(kill -9) mid-batch and when the client is stopped and the run resumed.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from cli_helpers import run

from steinbock_like.io.masks import write_mask

pytest.importorskip("distributed")

DASK = Path(sys.executable).parent / "dask"
TESTS = Path(__file__).resolve().parent


class Cluster:
    """A dask scheduler and worker processes started from the command line."""

    def __init__(self, directory: Path, workers: int = 2):
        self.directory = directory
        self.file = directory / "scheduler.json"
        self.processes: list[subprocess.Popen] = []
        self.log = open(directory / "dask.log", "w")  # noqa: SIM115
        self.scheduler = self._start(
            "scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard"
        )
        self.workers = [self.add_worker() for _ in range(workers)]
        self.address = json.loads(self.file.read_text())["address"]
        self.wait_for_workers(workers)

    def _start(self, kind: str, *args: str) -> subprocess.Popen:
        command = [str(DASK), kind, "--scheduler-file", str(self.file), *args]
        # the tests' own modules importable there too (for jobs defined in a test)
        path = os.pathsep.join(filter(None, [str(TESTS), os.environ.get("PYTHONPATH")]))
        process = subprocess.Popen(
            command,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            cwd=self.directory,
            env={**os.environ, "PYTHONPATH": path},
        )
        self.processes.append(process)
        deadline = time.monotonic() + 60
        while kind == "scheduler" and not self.file.is_file():
            assert time.monotonic() < deadline, (self.directory / "dask.log").read_text()
            time.sleep(0.1)
        return process

    def add_worker(self) -> subprocess.Popen:
        return self._start(
            "worker",
            "--nthreads",
            "1",
            "--nworkers",
            "1",
            "--no-nanny",
            "--no-dashboard",
            "--host",
            "127.0.0.1",
            "--local-directory",
            str(self.directory),
        )

    def client(self):
        from distributed import Client

        return Client(self.address, timeout=30, set_as_default=False)

    def wait_for_workers(self, count: int) -> None:
        with self.client() as client:
            client.wait_for_workers(count, timeout=60)

    def close(self) -> None:
        for process in reversed(self.processes):
            if process.poll() is None:
                process.kill()
        for process in self.processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
        self.log.close()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    started = Cluster(tmp_path_factory.mktemp("dask"))
    yield started
    started.close()


def outputs(root: Path) -> dict[str, bytes]:
    """Every output file under ``root`` but the inputs and the run records."""
    files = {}
    for path in sorted(root.rglob("*")):
        relative = path.relative_to(root).as_posix()
        skipped = relative.startswith("img/") or path.name in ("run_metadata.json", "panel.csv")
        if path.is_file() and not skipped:
            files[relative] = path.read_bytes()
    return files


def same_outputs_as_local(tmp_path: Path, cluster, capsys, args: list, output_dir: str) -> dict:
    """Run ``args`` in ``tmp_path/local`` and on the cluster in ``tmp_path/dask``;
    assert the outputs are the same bytes; return the dask run's per-image infos."""
    assert run("--data", tmp_path / "local", *args) == 0
    code = run("--data", tmp_path / "dask", *args, "--scheduler", cluster.address)
    assert code == 0, capsys.readouterr().err
    assert outputs(tmp_path / "dask") == outputs(tmp_path / "local")
    metadata = json.loads((tmp_path / "dask" / output_dir / "run_metadata.json").read_text())
    return {name: image["info"] for name, image in metadata["images"].items()}


def make_repair_inputs(root: Path, count: int = 6) -> None:
    rng = np.random.default_rng(0)
    for index in range(count):
        cells = np.zeros((60, 60), np.uint16)
        nuclei = np.zeros((60, 60), np.uint16)
        for label, (y, x) in enumerate(rng.integers(3, 50, size=(12, 2)), start=1):
            cells[y : y + 8, x : x + 8] = label
            nuclei[y + 2 : y + 5, x + 2 : x + 5] = label
        write_mask(root / "masks" / f"image{index}.tiff", cells)
        write_mask(root / "masks_nuclei" / f"image{index}.tiff", nuclei)


def test_repair_on_dask_writes_the_local_bytes(cluster, tmp_path, capsys):
    local, remote = tmp_path / "local", tmp_path / "dask"
    make_repair_inputs(local)
    make_repair_inputs(remote)
    assert run("--data", local, "repair") == 0
    code = run("--data", remote, "repair", "--scheduler", cluster.address)
    assert code == 0, capsys.readouterr().err
    assert "running on dask scheduler" in capsys.readouterr().err
    expected = outputs(local)
    assert len(expected) == 6 * (2 + 3) + 1 and outputs(remote) == expected
    metadata = json.loads((remote / "masks_matched" / "run_metadata.json").read_text())
    assert metadata["summary"]["ok"] == 6
    assert metadata["parameters"]["scheduler"] == cluster.address
    # existing outputs are refused as with the local executor, before anything runs
    assert run("--data", remote, "repair", "--scheduler", cluster.address) == 1
    assert "--resume" in capsys.readouterr().err


def test_failures_come_back_per_image(cluster, tmp_path, capsys, monkeypatch):
    make_repair_inputs(tmp_path, 3)
    write_mask(tmp_path / "masks_nuclei" / "image1.tiff", np.zeros((5, 5), np.uint16))
    monkeypatch.setenv("STEINBOCK_LIKE_SCHEDULER", cluster.address)
    assert run("--data", tmp_path, "repair") == 1
    err = capsys.readouterr().err
    assert "image1.tiff: nuclear mask shape (5, 5) differs" in err and "Traceback" not in err
    assert sorted(p.name for p in (tmp_path / "masks_matched").glob("*.tiff")) == [
        "image0.tiff",
        "image2.tiff",
    ]


def test_ilastik_prepare_on_dask_writes_the_local_bytes(refdata, cluster, tmp_path, capsys):
    args = ["classify", "ilastik", "prepare", "--cropsize", "50", "--seed", "123"]
    for name in ("local", "dask"):
        shutil.copytree(refdata / "img", tmp_path / name / "img")
        shutil.copy(refdata / "panel.csv", tmp_path / name / "panel.csv")
    assert run("--data", tmp_path / "local", *args) == 0
    code = run("--data", tmp_path / "dask", *args, "--scheduler", cluster.address)
    assert code == 0, capsys.readouterr().err
    ours, expected = outputs(tmp_path / "dask"), outputs(tmp_path / "local")
    assert sum(name.startswith("ilastik_img/") for name in expected) == 6
    assert ours.keys() == expected.keys()
    for name, content in expected.items():
        if not name.endswith(".ilp"):  # the project records its creation time
            assert ours[name] == content, name


def _mesmer_root(refdata, root: Path) -> Path:
    """12 images (the six reference images, twice) with a Mesmer panel."""
    (root / "img").mkdir(parents=True)
    for copy in ("a", "b"):
        for image in sorted((refdata / "img").glob("*.tiff")):
            shutil.copy(image, root / "img" / f"{copy}_{image.name}")
    shutil.copy(refdata / "panel.csv", root / "panel.csv")
    return root


@pytest.fixture(scope="module")
def mesmer_local(refdata, mesmer_model, tmp_path_factory):
    """The local executor's Mesmer outputs (the reference for the dask runs)."""
    pytest.importorskip("onnxruntime")
    root = _mesmer_root(refdata, tmp_path_factory.mktemp("mesmer_local"))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("STEINBOCK_LIKE_MODELS", str(mesmer_model.parent))
        assert run("--data", root, "segment", "mesmer", "--minmax") == 0
    return outputs(root)


@pytest.fixture
def mesmer_data(refdata, mesmer_model, mesmer_local, tmp_path, monkeypatch):
    monkeypatch.setenv("STEINBOCK_LIKE_MODELS", str(mesmer_model.parent))
    return {"local": mesmer_local, "dask": _mesmer_root(refdata, tmp_path / "dask")}


def test_mesmer_on_dask_writes_the_local_bytes(mesmer_data, cluster, capsys):
    code = run(
        "--data",
        mesmer_data["dask"],
        "segment",
        "mesmer",
        "--minmax",
        "--scheduler",
        cluster.address,
    )
    assert code == 0, capsys.readouterr().err
    expected = mesmer_data["local"]
    assert len(expected) == 12 and outputs(mesmer_data["dask"]) == expected


def _cli(root: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "steinbock_like", "--data", str(root), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_for_output(directory: Path, process: subprocess.Popen, count: int = 1) -> None:
    deadline = time.monotonic() + 120
    while len(list(directory.glob("*.tiff"))) < count:
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.02)


def test_worker_killed_mid_batch_leaves_the_same_outputs(mesmer_data, tmp_path_factory):
    cluster = Cluster(tmp_path_factory.mktemp("dask_kill"))
    try:
        root = mesmer_data["dask"]
        client = _cli(root, "segment", "mesmer", "--minmax", "--scheduler", cluster.address)
        _wait_for_output(root / "masks", client)
        with cluster.client() as dask_client:
            busy = {address for address, keys in dask_client.processing().items() if keys}
            pids = dask_client.run(os.getpid, workers=list(busy) or None)
        victim = next(iter(pids.values()))
        os.kill(victim, signal.SIGKILL)
        _, err = client.communicate(timeout=180)
        assert client.returncode == 0, err
        assert outputs(root) == mesmer_data["local"]
        assert not list((root / "masks").glob("*.tmp*")) and not list(root.glob("masks/.*"))
        assert sum(process.poll() is not None for process in cluster.workers) == 1
    finally:
        cluster.close()


def test_resume_after_the_client_stopped_midway(mesmer_data, cluster):
    root = mesmer_data["dask"]
    args = ["segment", "mesmer", "--minmax", "--scheduler", cluster.address]
    client = _cli(root, *args)
    _wait_for_output(root / "masks", client)
    client.send_signal(signal.SIGTERM)
    client.communicate(timeout=60)
    done = len(list((root / "masks").glob("*.tiff")))
    assert client.returncode != 0 and done < 12
    assert run("--data", root, *args) == 1  # existing outputs: refused without --resume
    assert run("--data", root, *args, "--resume") == 0
    assert outputs(root) == mesmer_data["local"]
    metadata = json.loads((root / "masks" / "run_metadata.json").read_text())
    assert metadata["summary"]["ok"] + metadata["summary"]["skipped"] == 12
    assert metadata["summary"]["skipped"] >= 1


def test_bad_cluster_options_are_one_line_errors(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr("steinbock_like.runner.dask.CONNECT_TIMEOUT_S", 2)
    make_repair_inputs(tmp_path, 1)
    assert run("--data", tmp_path, "repair", "--cluster", "local:zero") == 1
    assert "local:N needs a positive N" in capsys.readouterr().err
    assert run("--data", tmp_path, "repair", "--cluster-config", "x.yaml") == 1
    assert "--cluster-config needs --cluster" in capsys.readouterr().err
    assert run("--data", tmp_path, "repair", "--scheduler", "tcp://127.0.0.1:9") == 1
    err = capsys.readouterr().err
    assert "cannot reach the dask scheduler at tcp://127.0.0.1:9" in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_adaptive_is_only_for_a_running_cluster(tmp_path, capsys):
    make_repair_inputs(tmp_path, 1)
    assert run("--data", tmp_path, "repair", "--adaptive") == 1
    assert "--adaptive needs --scheduler" in capsys.readouterr().err
    assert run("--data", tmp_path, "repair", "--cluster", "local:1", "--adaptive") == 1
    assert "--adaptive is for a running cluster" in capsys.readouterr().err
    from steinbock_like.runner.dask import DaskExecutor

    # which clusters get every job at once: those that grow with their queue
    assert DaskExecutor("tcp://host:8786", adaptive=True).all_at_once
    assert not DaskExecutor("tcp://host:8786").all_at_once
    assert DaskExecutor(cluster="slurm").all_at_once
    assert not DaskExecutor(cluster="local:2").all_at_once


class _SlowJob:
    """A job that takes ``seconds`` and says which worker ran it, and when."""

    def __init__(self, seconds: float):
        self.seconds = seconds

    def __call__(self, job):
        from distributed import get_worker

        start = time.time()
        time.sleep(self.seconds)
        return {"worker": get_worker().address, "start": start, "end": time.time()}


def test_every_worker_counts_and_workers_that_join_get_jobs_at_once(tmp_path):
    from distributed import Client, LocalCluster

    from steinbock_like.runner.dask import DaskExecutor, _cluster_threads
    from steinbock_like.runner.jobs import Job
    from steinbock_like.tiles import cluster_workers

    # dask's scheduler_info() describes five workers only: seven must count as seven
    with (
        LocalCluster(n_workers=7, threads_per_worker=1, processes=False) as local,
        Client(local, set_as_default=False) as client,
    ):
        assert _cluster_threads(client) == 7
        assert client.submit(cluster_workers, pure=False).result() == 7

    cluster = Cluster(tmp_path, workers=1)
    try:
        jobs = [Job(f"job{i}", {}, {}) for i in range(4)]
        results = DaskExecutor(cluster.address).run(_SlowJob(4.0), jobs)
        cluster.add_worker()  # joins while the first job runs
        infos = [result.info for result in results]
    finally:
        cluster.close()
    first = min(infos, key=lambda info: info["start"])
    joined = [info for info in infos if info["worker"] != first["worker"]]
    # the worker that joined started a job before the first one ended (not after it)
    assert joined and min(info["start"] for info in joined) < first["end"]


def test_a_scheduler_lost_between_results_is_one_line(cluster, monkeypatch):
    from steinbock_like.errors import SteinbockLikeError
    from steinbock_like.runner import dask as dask_runner
    from steinbock_like.runner.jobs import Job

    calls = []

    def threads_then_gone(client):
        calls.append(client)
        if len(calls) > 1:  # as distributed raises it when the scheduler went away
            raise OSError("Connection reset by peer")
        return 2

    monkeypatch.setattr(dask_runner, "_cluster_threads", threads_then_gone)
    jobs = [Job(f"job{i}", {}, {}) for i in range(4)]
    with pytest.raises(SteinbockLikeError) as raised:
        list(dask_runner.DaskExecutor(cluster.address).run(_SlowJob(0.2), jobs))
    assert str(raised.value) == (
        f"lost the connection to the dask scheduler {cluster.address} (OSError); "
        "rerun with --resume to finish the batch"
    )


def test_tiles_of_one_large_image_spread_over_the_workers(
    mesmer_model, cluster, tmp_path, monkeypatch, capsys
):
    pytest.importorskip("onnxruntime")
    import tifffile

    from steinbock_like.testing import two_channel_tissue

    monkeypatch.setenv("STEINBOCK_LIKE_MODELS", str(mesmer_model.parent))
    nuclear, membrane = two_channel_tissue((256, 768), spacing=24, seed=6)
    for name in ("local", "dask"):
        (tmp_path / name / "img").mkdir(parents=True)
        tifffile.imwrite(tmp_path / name / "img" / "slide.tiff", np.stack([nuclear, membrane]))
        (tmp_path / name / "panel.csv").write_text("channel,name,deepcell\nA,a,1\nB,b,2\n")
    args = ["segment", "mesmer", "--pixelsize", "0.5", "--chunk-size", "256"]
    info = same_outputs_as_local(tmp_path, cluster, capsys, args, "masks")["slide"]
    assert (info["tiles"], info["tiles_skipped"], info["tile_workers"]) == (3, 0, 2)


def test_large_image_intensities_spread_channel_groups_over_the_workers(cluster, tmp_path, capsys):
    import tifffile

    from steinbock_like.tasks.measure import SPREAD_PIXELS

    rng = np.random.default_rng(8)
    size = 2100  # over SPREAD_PIXELS: measured in channel groups on a cluster
    assert size * size > SPREAD_PIXELS
    image = rng.integers(0, 1000, (5, size, size), dtype=np.uint16)
    mask = np.repeat(np.repeat(rng.integers(0, 3000, (size // 7, size // 7)), 7, 0), 7, 1)
    rings = mask.copy()
    rings[::2] = 0
    for name in ("local", "dask"):
        root = tmp_path / name
        (root / "img").mkdir(parents=True)
        tifffile.imwrite(root / "img" / "big.tiff", image)
        for folder, labels in (("masks", mask), ("rings", rings)):
            (root / folder).mkdir()
            write_mask(root / folder / "big.tiff", labels.astype(np.uint16))
        (root / "panel.csv").write_text(
            "channel,name,keep\n" + "".join(f"c{i},m{i},{int(i != 1)}\n" for i in range(5))
        )
    args = ["measure", "intensities", "--compartment", "rings=rings"]
    info = same_outputs_as_local(tmp_path, cluster, capsys, args, "intensities")["big"]
    assert (info["channel_groups"], info["channel_workers"]) == (2, 2)
    header = (tmp_path / "dask" / "intensities" / "big.csv").read_text().splitlines()[0]
    assert header == "Object,m0,m2,m3,m4,m0_rings,m2_rings,m3_rings,m4_rings"


def test_native_classifier_tiles_spread_over_the_workers(refdata, cluster, tmp_path, capsys):
    for name in ("local", "dask"):
        root = tmp_path / name
        root.mkdir()
        shutil.copy(refdata / "ilastik_original.ilp", root / "pixel_classifier.ilp")
        shutil.copytree(refdata / "ilastik_crops_original", root / "ilastik_crops")
        shutil.copytree(refdata / "ilastik_img", root / "ilastik_img")
        assert run("--data", root, "classify", "ilastik", "fix", "--no-backup") == 0
    args = ["classify", "ilastik", "run", "--backend", "native", "--tile-size", "64"]
    assert run("--data", tmp_path / "local", *args) == 0
    code = run("--data", tmp_path / "dask", *args, "--scheduler", cluster.address)
    assert code == 0, capsys.readouterr().err
    ours = outputs(tmp_path / "dask")
    expected = outputs(tmp_path / "local")
    probabilities = [name for name in expected if name.startswith("ilastik_probabilities/")]
    assert len(probabilities) == 6
    assert all(ours[name] == expected[name] for name in probabilities)
    metadata = json.loads(
        (tmp_path / "dask" / "ilastik_probabilities" / "run_metadata.json").read_text()
    )
    assert {info["info"].get("tile_workers") for info in metadata["images"].values()} == {2}


def test_native_cellprofiler_tiles_spread_over_the_workers(cluster, tmp_path, capsys):
    import tifffile

    from steinbock_like.testing import synthetic_probabilities

    probabilities, _ = synthetic_probabilities((320, 480), cell_count=300, seed=7)
    for name in ("local", "dask"):
        (tmp_path / name / "ilastik_probabilities").mkdir(parents=True)
        tifffile.imwrite(tmp_path / name / "ilastik_probabilities" / "slide.tiff", probabilities)
        assert run("--data", tmp_path / name, "segment", "cellprofiler", "prepare") == 0
    args = ["segment", "cellprofiler", "run", "--backend", "native", "--tile-size", "160"]
    info = same_outputs_as_local(tmp_path, cluster, capsys, args, "masks")["slide"]
    assert (info["tiles"], info["tiles_skipped"], info["tile_workers"]) == (6, 0, 2)


def test_lost_scheduler_is_one_line_and_resume_completes(mesmer_data, cluster, tmp_path_factory):
    doomed = Cluster(tmp_path_factory.mktemp("dask_lost"), workers=1)
    root = mesmer_data["dask"]
    args = ["segment", "mesmer", "--minmax"]
    try:
        client = _cli(root, *args, "--scheduler", doomed.address)
        _wait_for_output(root / "masks", client)
        doomed.scheduler.kill()
        _, err = client.communicate(timeout=120)
    finally:
        doomed.close()
    assert client.returncode == 1
    lines = err.strip().splitlines()
    assert lines[-1].startswith("Error: lost the connection to the dask scheduler"), err
    assert "--resume" in lines[-1] and "Traceback" not in err
    assert run("--data", root, *args, "--resume", "--scheduler", cluster.address) == 0
    assert outputs(root) == mesmer_data["local"]


def test_slurm_cluster_gets_the_config_file_options(tmp_path, monkeypatch, capsys):
    """No SLURM here: a stand-in dask_jobqueue records what the command asks of it."""
    import types

    from steinbock_like.io.cluster_config import read_cluster_config
    from steinbock_like.runner import dask as runner_dask

    made = {}

    class SLURMCluster:
        def __init__(self, **options):
            made["options"] = options

        def scale(self, jobs):
            made["jobs"] = jobs

        def adapt(self, **limits):
            made["adapt"] = limits

    monkeypatch.setitem(
        sys.modules, "dask_jobqueue", types.SimpleNamespace(SLURMCluster=SLURMCluster)
    )
    config = tmp_path / "slurm.yaml"
    config.write_text("queue: cpu\ncores: 8\nprocesses: 4\nmemory: 32GB\njobs: 3\n")
    options = read_cluster_config(config)
    runner_dask._start_cluster("slurm", options)
    assert made == {
        "options": {"queue": "cpu", "cores": 8, "processes": 4, "memory": "32GB"},
        "jobs": 3,
    }
    runner_dask._start_cluster("slurm", {"cores": 2, "maximum_jobs": 5})
    assert made["adapt"] == {"minimum_jobs": 0, "maximum_jobs": 5}
    config.write_text("- not\n- a mapping\n")
    make_repair_inputs(tmp_path, 1)
    args = ["--data", tmp_path, "repair", "--cluster", "slurm", "--cluster-config", config]
    assert run(*args) == 1
    assert f"{config}: expected a mapping of option names to values" in capsys.readouterr().err


def test_cluster_local_starts_and_stops_its_own_workers(tmp_path, capsys):
    make_repair_inputs(tmp_path / "local", 2)
    make_repair_inputs(tmp_path / "dask", 2)
    assert run("--data", tmp_path / "local", "repair") == 0
    assert run("--data", tmp_path / "dask", "repair", "--cluster", "local:2") == 0
    assert "running on dask cluster local:2" in capsys.readouterr().err
    assert outputs(tmp_path / "dask") == outputs(tmp_path / "local")
