"""The batch runner every per-image command shares.

A command builds one :class:`Job` per image (its input and output files) and a
picklable task (a callable taking a job). :func:`run_batch` then applies the
overwrite/resume policy, runs the jobs on an executor, shows progress, keeps
going when one image fails, and writes ``run_metadata.json`` into every output
directory.

Executors are pluggable: anything with ``run(task, jobs) -> iterator of
JobResult`` works, so a distributed executor (dask, SLURM arrays) can be added
without touching the commands.

What the runner guarantees, whoever the executor:

- nothing is computed before the outputs are known to be writable (directories
  creatable and writable, file names the file system accepts);
- existing outputs are refused unless ``--overwrite``; ``--resume`` skips finished,
  readable outputs and refuses when they were made with other settings;
- a failed image leaves none of its outputs behind;
- ``run_metadata.json`` is rewritten as images finish, so an interrupted run keeps
  its record; per-image figures of skipped images are carried over from it, and
  per-run tables (:class:`RunTable`) are assembled from all of them.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import datetime
import json
import logging
import os
import platform
import signal
import sys
import time
import traceback
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any, Protocol

from steinbock_like.errors import (
    MissingToolError,
    OutputExistsError,
    SteinbockLikeError,
    describe_error,
)
from steinbock_like.io.atomic import TEMP_PREFIX, is_stale_temp_file, write_text_atomic
from steinbock_like.io.outputs import output_is_readable
from steinbock_like.layout import MASK_SUFFIX, RUN_METADATA

logger = logging.getLogger(__name__)

CORE_PACKAGES = ("numpy", "scipy", "scikit-image", "tifffile", "h5py", "pandas")
#: Options that change how a run goes, not what it writes: ignored when --resume
#: compares the settings of a run with those of the outputs it finds.
RUN_CONTROL_OPTIONS = frozenset({"workers", "overwrite", "resume", "threads", "scheduler"})
#: Seconds between rewrites of run_metadata.json while a batch runs.
METADATA_INTERVAL = 2.0


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


def jobs_for(
    named_inputs: Iterable[tuple[str, dict[str, Path]]],
    outputs: dict[str, Path | tuple[Path, str]],
) -> list[Job]:
    """One job per image: its inputs, and each output as ``DIR/NAME.tiff``.

    Parameters
    ----------
    named_inputs : iterable of (name, inputs)
        E.g. from :func:`named_files` or :func:`steinbock_like.io.pairs.match_by_name`.
    outputs : dict
        Output key -> directory (``NAME.tiff`` in it), or (directory, suffix).
    """
    jobs = []
    for name, inputs in named_inputs:
        files = {}
        for key, target in outputs.items():
            directory, suffix = target if isinstance(target, tuple) else (target, MASK_SUFFIX)
            files[key] = Path(directory) / f"{name}{suffix}"
        jobs.append(Job(name, dict(inputs), files))
    return jobs


def named_files(paths: Iterable[Path], key: str) -> list[tuple[str, dict[str, Path]]]:
    """``(image name, {key: path})`` for each file, for :func:`jobs_for`."""
    from steinbock_like.io.images import image_name

    return [(image_name(path), {key: path}) for path in paths]


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
    before = {path: _mtime(path) for path in job.outputs.values()}
    try:
        info = task(job) or {}
    except Exception as error:  # one image's failure must not stop the batch
        message = str(error) if isinstance(error, SteinbockLikeError) else describe_error(error)
        _remove_written(before)
        return JobResult(
            job.name,
            "failed",
            time.perf_counter() - start,
            error=message,
            traceback=traceback.format_exc(),
        )
    return JobResult(job.name, "ok", time.perf_counter() - start, info=info)


def _mtime(path: Path) -> int | None:
    try:
        return path.stat().st_mtime_ns
    except OSError:
        return None


def _remove_written(before: dict[Path, int | None]) -> None:
    """Delete the outputs a failed job wrote (a failed image leaves no partial results)."""
    for path, mtime in before.items():
        if _mtime(path) not in (None, mtime):
            with contextlib.suppress(OSError):
                path.unlink()


def threads_per_worker(workers: int, requested: int | None = None) -> int:
    """Threads each worker process may use: ``requested``, or the cores shared out."""
    if requested is not None:
        return requested
    return max(1, (os.cpu_count() or 1) // max(workers, 1))


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
        pool = concurrent.futures.ProcessPoolExecutor(
            max_workers=min(self.workers, len(jobs)),
            initializer=_init_worker,
            initargs=(task, os.getpid()),
        )
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
        finally:
            # On Ctrl-C, SIGTERM or an error, stop the workers now rather than letting
            # them finish the batch (the executor's own shutdown would wait for them).
            for future in futures:
                future.cancel()
            processes = list((getattr(pool, "_processes", None) or {}).values())
            for process in processes:
                if process.is_alive():
                    process.terminate()
            pool.shutdown(wait=True, cancel_futures=True)


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

    @classmethod
    def for_files(
        cls, run_tool: Callable[[list[Path], Path], Any], tool: str, input_key: str, output_key: str
    ) -> ExternalToolExecutor:
        """An executor calling ``run_tool(input files, output directory)`` once per batch.

        The inputs are the jobs' ``input_key`` files; the output directory is that of
        their ``output_key`` files (the tool names its outputs after the inputs).
        """

        def run_all(jobs: Sequence[Job]) -> None:
            run_tool([job.inputs[input_key] for job in jobs], jobs[0].outputs[output_key].parent)

        return cls(run_all, tool)

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


def _init_worker(task: Callable, parent: int) -> None:
    global _worker_task
    _die_with_parent(parent)
    # Ctrl-C reaches the whole process group: the main process alone handles it.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _worker_task = task
    _setup(task)


def _die_with_parent(parent: int) -> None:
    """Ask Linux to kill this worker when its parent dies (even by kill -9)."""
    if not sys.platform.startswith("linux"):
        return
    with contextlib.suppress(Exception):
        import ctypes

        pr_set_pdeathsig = 1
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL)
        if os.getppid() != parent:  # the parent died before the call
            os._exit(1)


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


@dataclass(frozen=True)
class RunTable:
    """A per-run table (one row per image) assembled from the figures the task returns.

    It survives ``--resume``: rows of skipped images come from the run metadata of the
    run that made them. It is an output like any other: refused without
    ``--overwrite``, written atomically.
    """

    path: Path
    columns: tuple[str, ...]
    index: str = "image"


def check_outputs(
    jobs: Sequence[Job],
    *,
    overwrite: bool,
    resume: bool,
    readable: Callable[[Path], bool],
    extra: Sequence[Path] = (),
) -> set[str]:
    """Apply the overwrite policy; return the names of jobs to skip (``--resume``).

    ``extra`` are per-run outputs (tables) that count as existing outputs too.

    Raises
    ------
    OutputExistsError
        If outputs exist and neither ``overwrite`` nor ``resume`` is set.
    """
    if overwrite and resume:
        raise SteinbockLikeError("--overwrite and --resume exclude each other: choose one")
    existing = [path for job in jobs for path in job.outputs.values() if path.exists()]
    existing += [path for path in extra if path.exists()]
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


def check_single_output(
    path: Path, *, overwrite: bool, resume: bool = False, why: str = ""
) -> bool:
    """The overwrite policy for a one-off output (a project, a pipeline, a table).

    Returns
    -------
    bool
        True to write it; False to keep the existing file (``resume``).

    Raises
    ------
    OutputExistsError
        If it exists and neither ``overwrite`` nor ``resume`` is set.
    """
    if not path.exists() or overwrite:
        return True
    if resume:
        logger.info("%s exists: kept (--resume)", path)
        return False
    raise OutputExistsError(
        f"{path} exists already{why}: use --overwrite to replace it or write elsewhere"
    )


def check_writable(directories: Iterable[Path], paths: Iterable[Path] = ()) -> None:
    """Create the output directories and prove each writable, before any work.

    Raises
    ------
    SteinbockLikeError
        One line naming the directory (or file name) that cannot be written.
    """
    name_max = 255
    for path in paths:
        try:
            encoded = os.fsencode(path.name)
        except UnicodeError:
            raise SteinbockLikeError(
                f"{path}: the file system cannot store this name (unsupported characters)"
            ) from None
        if len(encoded) > name_max:
            raise SteinbockLikeError(
                f"{path.parent}/{path.name[:40]}...: output file name is {len(encoded)} bytes "
                f"long; the file system allows {name_max}"
            )
    for directory in directories:
        try:
            directory.mkdir(parents=True, exist_ok=True)
        except FileExistsError:
            raise SteinbockLikeError(
                f"{directory}: cannot be an output directory, a file has that name"
            ) from None
        except OSError as error:
            raise SteinbockLikeError(
                f"{directory}: cannot create the output directory ({error.strerror})"
            ) from None
        probe = directory / f"{TEMP_PREFIX}{os.getpid()}-probe"
        try:
            probe.touch()
            probe.unlink()
        except OSError as error:
            raise SteinbockLikeError(
                f"{directory}: output directory is not writable ({error.strerror})"
            ) from None


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
    table: RunTable | None = None,
    data_dir: Path | None = None,
    resume_ignores: Iterable[str] = (),
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
        The options as the user gave them (JSON-serialisable), for the metadata and
        for ``--resume``'s check that finished outputs were made with the same ones.
    overwrite, resume : bool
        Replace existing outputs, or skip jobs whose outputs all exist and are
        readable. With neither, existing outputs are an error.
    executor : Executor, optional
        Defaults to a one-process :class:`LocalExecutor`.
    progress : bool, optional
        A progress bar; default: when stderr is a terminal (log lines otherwise).
    readable : callable, optional
        ``readable(path) -> bool`` for ``--resume``; defaults to
        :func:`~steinbock_like.io.outputs.output_is_readable`.
    extra_metadata : dict, optional
        Recorded in ``run_metadata.json`` besides the standard entries.
    table : RunTable, optional
        A per-run table to assemble from the jobs' figures.
    data_dir : Path, optional
        Paths in the metadata are written relative to it (so the record stays true
        when the data folder moves).
    resume_ignores : iterable of str
        Parameters that may differ on ``--resume`` because they do not change the
        outputs of an image (e.g. how many images to make).

    Returns
    -------
    BatchSummary
    """
    readable = readable or output_is_readable
    extra = [table.path] if table else []
    skip = check_outputs(jobs, overwrite=overwrite, resume=resume, readable=readable, extra=extra)
    output_dirs = sorted({path.parent for job in jobs for path in job.outputs.values()})
    record_dirs = output_dirs
    previous = read_previous_metadata(record_dirs) if resume else {}
    if skip:
        check_same_settings(previous, parameters, record_dirs, ignore=resume_ignores)
    check_writable(
        [*output_dirs, *(p.parent for p in extra)],
        [path for job in jobs for path in job.outputs.values()],
    )
    for directory in output_dirs:
        remove_stale_temp_files(directory)

    earlier_images = previous.get("images", {})
    results: dict[str, JobResult] = {
        job.name: JobResult(
            job.name, "skipped", info=earlier_images.get(job.name, {}).get("info", {})
        )
        for job in jobs
        if job.name in skip
    }
    todo = [job for job in jobs if job.name not in skip]
    if skip:
        logger.info("%d of %d images already done, skipped (--resume)", len(skip), len(jobs))

    recorder = RunRecorder(
        task,
        jobs,
        record_dirs,
        command=command,
        parameters=parameters,
        extra=extra_metadata or {},
        earlier=earlier_images,
        data_dir=data_dir,
    )
    executor = executor or LocalExecutor(1)
    show_bar = sys.stderr.isatty() if progress is None else progress
    try:
        with _progress(len(todo), command, show_bar) as advance:
            for done, result in enumerate(executor.run(task, todo), start=1):
                results[result.name] = result
                advance(result, done, len(todo))
                recorder.update(results)
    except BaseException:
        recorder.write(results, finished=False)
        raise
    summary = BatchSummary([results[job.name] for job in jobs])
    recorder.write(results, finished=True)
    if table is not None:
        write_run_table(table, summary)
    return summary


def write_run_table(table: RunTable, summary: BatchSummary) -> None:
    """Write the per-run table: one row per image with figures (done now or earlier)."""
    import pandas as pd

    from steinbock_like.io.tables import write_table

    rows = {
        result.name: {column: result.info.get(column) for column in table.columns}
        for result in summary.results
        if result.info and result.status in ("ok", "skipped")
    }
    frame = pd.DataFrame.from_dict(rows, orient="index", columns=list(table.columns))
    frame.index.name = table.index
    write_table(table.path, frame.sort_index())


def read_previous_metadata(directories: Sequence[Path]) -> dict[str, Any]:
    """The run metadata already in the output directories (merged; first directory wins)."""
    merged: dict[str, Any] = {}
    for directory in reversed(list(directories)):
        path = directory / RUN_METADATA
        with contextlib.suppress(OSError, ValueError):
            metadata = json.loads(path.read_text(encoding="utf-8"))
            images = {**merged.get("images", {}), **metadata.get("images", {})}
            merged = {**metadata, "images": images}
    return merged


def check_same_settings(
    previous: dict[str, Any],
    parameters: dict[str, Any],
    directories: Sequence[Path],
    *,
    ignore: Iterable[str] = (),
) -> None:
    """Refuse ``--resume`` over outputs made with other settings, naming the first one.

    Raises
    ------
    SteinbockLikeError
        If an option recorded by the earlier run differs from this run's.
    """
    earlier = previous.get("parameters")
    if not isinstance(earlier, dict):
        return
    now = _jsonable(parameters)
    ignored = RUN_CONTROL_OPTIONS | set(ignore)
    for key in sorted(set(earlier) | set(now)):
        if key in ignored or key not in earlier or key not in now:
            continue
        if earlier[key] != now[key]:
            option = "--" + key.replace("_", "-")
            where = directories[0] if directories else "the output directory"
            raise SteinbockLikeError(
                f"--resume: the outputs in {where} were made with {option} {earlier[key]!r}, "
                f"this run has {now[key]!r}; rerun with the same settings, or use "
                "--overwrite to redo every image"
            )


class RunRecorder:
    """Keeps ``run_metadata.json`` of every output directory up to date during a run."""

    def __init__(
        self,
        task: Callable,
        jobs: Sequence[Job],
        directories: Sequence[Path],
        *,
        command: str,
        parameters: dict[str, Any],
        extra: dict[str, Any],
        earlier: dict[str, Any],
        data_dir: Path | None,
    ):
        self.jobs = jobs
        self.directories = directories
        self.earlier = earlier
        self.data_dir = data_dir
        versions = package_versions(CORE_PACKAGES)
        task_versions = getattr(task, "versions", None)
        if callable(task_versions):
            versions.update(task_versions())
        self.header = {
            "command": f"steinbock-like {command}",
            "argv": sys.argv,
            "parameters": _jsonable(parameters),
            "started": _now(),
            "versions": versions,
        }
        self.extra = extra
        self.last_write = 0.0

    def update(self, results: dict[str, JobResult]) -> None:
        if time.monotonic() - self.last_write >= METADATA_INTERVAL:
            self.write(results, finished=False)

    def write(self, results: dict[str, JobResult], *, finished: bool) -> None:
        metadata = {**self.header, **_jsonable(self.extra)}
        metadata["finished" if finished else "updated"] = _now()
        if not finished:
            metadata["in_progress"] = True
        counts = {"ok": 0, "skipped": 0, "failed": 0}
        images = {}
        for job in self.jobs:
            result = results.get(job.name)
            status = result.status if result else "pending"
            counts[status] = counts.get(status, 0) + 1
            images[job.name] = self._entry(job, result)
        if not finished:
            counts["pending"] = sum(job.name not in results for job in self.jobs)
        metadata["summary"] = counts
        metadata["images"] = images
        text = json.dumps(metadata, indent=2, sort_keys=False) + "\n"
        for directory in self.directories:
            with contextlib.suppress(OSError):  # a record must never fail the run
                write_text_atomic(directory / RUN_METADATA, text)
        self.last_write = time.monotonic()

    def _entry(self, job: Job, result: JobResult | None) -> dict[str, Any]:
        earlier = self.earlier.get(job.name)
        if result is not None and result.status == "skipped" and earlier:
            return {**earlier, "status": "skipped", "previous_status": earlier.get("status")}
        entry: dict[str, Any] = {
            "status": result.status if result else "pending",
            "inputs": {key: self._path(path) for key, path in job.inputs.items()},
            "outputs": {key: self._path(path) for key, path in job.outputs.items()},
        }
        if result is not None:
            entry["seconds"] = round(result.seconds, 3)
            if result.error:
                entry["error"] = result.error
            if result.info:
                entry["info"] = _jsonable(result.info)
        return entry

    def _path(self, path: Path) -> str:
        if self.data_dir is None:
            return str(path)
        return os.path.relpath(Path(path).absolute(), Path(self.data_dir).absolute())


def package_versions(names: Iterable[str]) -> dict[str, str]:
    """Installed versions of ``names`` plus Python and steinbock-like."""
    from steinbock_like import __version__

    versions = {"steinbock-like": __version__, "python": platform.python_version()}
    for name in names:
        with contextlib.suppress(importlib_metadata.PackageNotFoundError):
            versions[name] = importlib_metadata.version(name)
    return versions


def remove_stale_temp_files(directory: Path) -> list[Path]:
    """Delete temporary files that runs no longer alive left behind (see io.atomic)."""
    removed = []
    for path in directory.glob(TEMP_PREFIX + "*"):
        if is_stale_temp_file(path):
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
