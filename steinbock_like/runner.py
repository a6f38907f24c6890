"""The batch runner every per-image command shares.

A command builds one :class:`Job` per image (its input and output files) and a
picklable task (a callable taking a job). :func:`run_batch` then applies the
overwrite/resume policy, runs the jobs on an executor, shows progress, keeps
going when one image fails, and writes ``run_metadata.json`` into every output
directory.

Executors are pluggable: anything with ``run(task, jobs) -> iterator of
JobResult`` works, so a distributed executor (dask, SLURM arrays) can be added
without touching the commands.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import datetime
import json
import logging
import platform
import sys
import time
import traceback
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any, Protocol

from steinbock_like.errors import MissingToolError, OutputExistsError, SteinbockLikeError
from steinbock_like.io.atomic import TEMP_PREFIX, write_text_atomic
from steinbock_like.io.outputs import output_is_readable
from steinbock_like.layout import RUN_METADATA

logger = logging.getLogger(__name__)

CORE_PACKAGES = ("numpy", "scipy", "scikit-image", "tifffile", "h5py", "pandas")


@dataclass(frozen=True)
class Job:
    """One unit of work, usually one image.

    Attributes
    ----------
    name : str
        The image name, used in progress, errors and metadata.
    inputs : dict of str to Path
        Files the job reads.
    outputs : dict of str to Path
        Files the job writes; they decide overwrite and resume.
    params : dict
        Per-job values the task needs besides the files (e.g. a crop position).
    """

    name: str
    inputs: dict[str, Path] = field(default_factory=dict)
    outputs: dict[str, Path] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)


@dataclass
class JobResult:
    """What happened to one job."""

    name: str
    status: str  # "ok", "failed" or "skipped"
    seconds: float = 0.0
    error: str | None = None
    info: dict[str, Any] = field(default_factory=dict)
    traceback: str | None = None


class Task(Protocol):
    """A per-image task: ``setup()`` once per worker, then ``task(job)`` per job.

    ``__call__`` returns a JSON-serialisable dict (per-image figures for the
    metadata and the command's report) or None.
    """

    def __call__(self, job: Job) -> dict[str, Any] | None: ...


class Executor(Protocol):
    def run(self, task: Callable, jobs: Sequence[Job]) -> Iterator[JobResult]: ...


def execute_job(task: Callable, job: Job) -> JobResult:
    """Run one job, turning any exception into a failed result."""
    start = time.perf_counter()
    try:
        info = task(job) or {}
    except Exception as error:  # one image's failure must not stop the batch
        message = str(error) if isinstance(error, SteinbockLikeError) else _describe(error)
        return JobResult(
            job.name,
            "failed",
            time.perf_counter() - start,
            error=message,
            traceback=traceback.format_exc(),
        )
    return JobResult(job.name, "ok", time.perf_counter() - start, info=info)


class LocalExecutor:
    """Runs jobs in this process (``workers=1``) or in a pool of processes.

    Each worker process receives the task once and calls its ``setup()`` (for
    example to load a model) before its first job.
    """

    def __init__(self, workers: int = 1):
        if workers < 1:
            raise SteinbockLikeError(f"--workers must be at least 1, got {workers}")
        self.workers = workers

    def run(self, task: Callable, jobs: Sequence[Job]) -> Iterator[JobResult]:
        if self.workers == 1 or len(jobs) <= 1:
            _setup(task)
            for job in jobs:
                yield execute_job(task, job)
            return
        with concurrent.futures.ProcessPoolExecutor(
            max_workers=min(self.workers, len(jobs)),
            initializer=_init_worker,
            initargs=(task,),
        ) as pool:
            futures = [pool.submit(_run_in_worker, job) for job in jobs]
            try:
                for future in concurrent.futures.as_completed(futures):
                    yield future.result()
            except concurrent.futures.process.BrokenProcessPool as error:
                # A worker died (out of memory, or its setup() failed): say what to try.
                raise SteinbockLikeError(
                    "a worker process died (out of memory, or it could not start): "
                    "rerun with fewer --workers, or with --workers 1 to see the error"
                ) from error
            except BaseException:
                for future in futures:
                    future.cancel()
                raise


@dataclass
class ExternalToolExecutor:
    """Runs every job in one call of an external program whose start-up is slow
    (ilastik, CellProfiler), then reports each job by whether its outputs exist.

    ``run_all(jobs)`` runs the tool; a :class:`SteinbockLikeError` it raises
    fails the jobs without outputs (with its message), except
    :class:`MissingToolError`, which stops the command.
    """

    run_all: Callable[[Sequence[Job]], Any]
    tool: str

    def run(self, task: Callable, jobs: Sequence[Job]) -> Iterator[JobResult]:
        if not jobs:
            return
        start = time.perf_counter()
        error = None
        try:
            self.run_all(jobs)
        except MissingToolError:
            raise
        except SteinbockLikeError as failure:
            error = str(failure)
        seconds = (time.perf_counter() - start) / len(jobs)
        for job in jobs:
            if all(path.is_file() for path in job.outputs.values()):
                yield JobResult(job.name, "ok", seconds, info={"backend": self.tool})
            else:
                message = error or f"{self.tool} wrote no output for this image"
                yield JobResult(job.name, "failed", seconds, error=message)


_worker_task: Callable | None = None


def _init_worker(task: Callable) -> None:
    global _worker_task
    _worker_task = task
    _setup(task)


def _run_in_worker(job: Job) -> JobResult:
    assert _worker_task is not None
    return execute_job(_worker_task, job)


def _setup(task: Callable) -> None:
    setup = getattr(task, "setup", None)
    if callable(setup):
        setup()


@dataclass
class BatchSummary:
    """Results of a batch, in job order."""

    results: list[JobResult]

    def count(self, status: str) -> int:
        return sum(result.status == status for result in self.results)

    @property
    def failed(self) -> list[JobResult]:
        return [result for result in self.results if result.status == "failed"]

    def line(self) -> str:
        """One summary line for the log."""
        parts = [f"{self.count('ok')} done"]
        if self.count("skipped"):
            parts.append(f"{self.count('skipped')} skipped (already done)")
        if self.failed:
            parts.append(f"{len(self.failed)} failed")
        return ", ".join(parts)


def check_outputs(
    jobs: Sequence[Job], *, overwrite: bool, resume: bool, readable: Callable[[Path], bool]
) -> set[str]:
    """Apply the overwrite policy; return the names of jobs to skip (``--resume``).

    Raises
    ------
    OutputExistsError
        If outputs exist and neither ``overwrite`` nor ``resume`` is set.
    """
    if overwrite and resume:
        raise SteinbockLikeError("--overwrite and --resume exclude each other: choose one")
    existing = [path for job in jobs for path in job.outputs.values() if path.exists()]
    if not existing:
        return set()
    if overwrite:
        return set()
    if not resume:
        shown = ", ".join(str(path) for path in existing[:3])
        more = f" and {len(existing) - 3} more" if len(existing) > 3 else ""
        raise OutputExistsError(
            f"{len(existing)} output file(s) exist already ({shown}{more}): "
            "use --overwrite to replace them or --resume to skip finished images"
        )
    return {
        job.name
        for job in jobs
        if job.outputs and all(path.exists() and readable(path) for path in job.outputs.values())
    }


def run_batch(
    task: Callable,
    jobs: Sequence[Job],
    *,
    command: str,
    parameters: dict[str, Any],
    overwrite: bool = False,
    resume: bool = False,
    executor: Executor | None = None,
    progress: bool | None = None,
    readable: Callable[[Path], bool] | None = None,
    extra_metadata: dict[str, Any] | None = None,
) -> BatchSummary:
    """Run ``task`` on every job and record the run.

    Parameters
    ----------
    task : callable
        Picklable ``task(job) -> dict | None``; optional ``setup()`` per worker
        and ``versions() -> dict`` for the metadata.
    jobs : sequence of Job
    command : str
        The command line name, e.g. ``"segment mesmer"``.
    parameters : dict
        The options as the user gave them (JSON-serialisable), for the metadata.
    overwrite, resume : bool
        Replace existing outputs, or skip jobs whose outputs all exist and are
        readable. With neither, existing outputs are an error.
    executor : Executor, optional
        Defaults to a one-process :class:`LocalExecutor`.
    progress : bool, optional
        A progress bar; default: when stderr is a terminal (log lines otherwise).
    readable : callable, optional
        ``readable(path) -> bool`` for ``--resume``; defaults to
        :func:`output_is_readable`.

    Returns
    -------
    BatchSummary
    """
    readable = readable or output_is_readable
    skip = check_outputs(jobs, overwrite=overwrite, resume=resume, readable=readable)
    output_dirs = sorted({path.parent for job in jobs for path in job.outputs.values()})
    for directory in output_dirs:
        directory.mkdir(parents=True, exist_ok=True)
        remove_stale_temp_files(directory)

    started = _now()
    results: dict[str, JobResult] = {
        job.name: JobResult(job.name, "skipped") for job in jobs if job.name in skip
    }
    todo = [job for job in jobs if job.name not in skip]
    if skip:
        logger.info("%d of %d images already done, skipped (--resume)", len(skip), len(jobs))

    executor = executor or LocalExecutor(1)
    show_bar = sys.stderr.isatty() if progress is None else progress
    with _progress(len(todo), command, show_bar) as advance:
        for done, result in enumerate(executor.run(task, todo), start=1):
            results[result.name] = result
            advance(result, done, len(todo))

    summary = BatchSummary([results[job.name] for job in jobs])
    metadata = build_metadata(
        task, jobs, summary, command=command, parameters=parameters, started=started
    )
    if extra_metadata:
        metadata.update(extra_metadata)
    for directory in output_dirs:
        write_run_metadata(directory / RUN_METADATA, metadata)
    return summary


def build_metadata(
    task: Callable,
    jobs: Sequence[Job],
    summary: BatchSummary,
    *,
    command: str,
    parameters: dict[str, Any],
    started: str,
) -> dict[str, Any]:
    """The content of ``run_metadata.json`` (see docs/file-types.md)."""
    versions = package_versions(CORE_PACKAGES)
    task_versions = getattr(task, "versions", None)
    if callable(task_versions):
        versions.update(task_versions())
    by_name = {result.name: result for result in summary.results}
    images = {}
    for job in jobs:
        result = by_name[job.name]
        entry: dict[str, Any] = {
            "status": result.status,
            "seconds": round(result.seconds, 3),
            "inputs": {key: str(path) for key, path in job.inputs.items()},
            "outputs": {key: str(path) for key, path in job.outputs.items()},
        }
        if result.error:
            entry["error"] = result.error
        if result.info:
            entry["info"] = result.info
        images[job.name] = entry
    return {
        "command": f"steinbock-like {command}",
        "argv": sys.argv,
        "parameters": _jsonable(parameters),
        "started": started,
        "finished": _now(),
        "versions": versions,
        "summary": {
            "ok": summary.count("ok"),
            "skipped": summary.count("skipped"),
            "failed": summary.count("failed"),
        },
        "images": images,
    }


def write_run_metadata(path: Path, metadata: dict[str, Any]) -> None:
    """Write the metadata, keeping earlier per-image entries of images skipped now."""
    previous = {}
    if path.exists():
        with contextlib.suppress(OSError, ValueError):
            previous = json.loads(path.read_text(encoding="utf-8")).get("images", {})
    merged = dict(metadata)
    images = {}
    for name, entry in metadata["images"].items():
        earlier = previous.get(name)
        if entry["status"] == "skipped" and earlier and earlier.get("status") == "ok":
            entry = {**earlier, "status": "skipped", "previous_status": "ok"}
        images[name] = entry
    merged["images"] = images
    write_text_atomic(path, json.dumps(merged, indent=2, sort_keys=False) + "\n")


def package_versions(names: Iterable[str]) -> dict[str, str]:
    """Installed versions of ``names`` plus Python and steinbock-like."""
    from steinbock_like import __version__

    versions = {"steinbock-like": __version__, "python": platform.python_version()}
    for name in names:
        with contextlib.suppress(importlib_metadata.PackageNotFoundError):
            versions[name] = importlib_metadata.version(name)
    return versions


def remove_stale_temp_files(directory: Path) -> list[Path]:
    """Delete temporary files an interrupted run left behind (see io.atomic)."""
    removed = []
    for path in directory.glob(TEMP_PREFIX + "*"):
        with contextlib.suppress(OSError):
            path.unlink()
            removed.append(path)
    if removed:
        logger.info(
            "%s: removed %d unfinished file(s) of an interrupted run", directory, len(removed)
        )
    return removed


@contextlib.contextmanager
def _progress(total: int, command: str, show_bar: bool):
    if show_bar and total:
        from tqdm import tqdm

        with tqdm(total=total, desc=command, unit="image", file=sys.stderr) as bar:

            def advance(result: JobResult, done: int, total: int) -> None:
                bar.update(1)
                if result.status == "failed":
                    bar.write(f"{result.name}: failed: {result.error}", file=sys.stderr)
                    logger.debug("%s", result.traceback)

            yield advance
        return

    def log_line(result: JobResult, done: int, total: int) -> None:
        if result.status == "failed":
            logger.error("[%d/%d] %s: failed: %s", done, total, result.name, result.error)
            logger.debug("%s", result.traceback)
        else:
            logger.info(
                "[%d/%d] %s: %s (%.1f s)", done, total, result.name, result.status, result.seconds
            )

    yield log_line


def _describe(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0]}" if text else type(error).__name__


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "__dataclass_fields__"):
        return _jsonable(asdict(value))
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    return str(value)


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
