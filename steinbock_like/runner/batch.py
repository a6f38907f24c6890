"""run_batch: the policy, an executor, progress and the record of one batch."""

from __future__ import annotations

import contextlib
import logging
import signal
import sys
import threading
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from steinbock_like.io.outputs import output_is_readable
from steinbock_like.layout import RUN_METADATA
from steinbock_like.runner.executors import LocalExecutor
from steinbock_like.runner.jobs import BatchSummary, Executor, Job, JobResult
from steinbock_like.runner.metadata import RunRecorder, read_previous_metadata
from steinbock_like.runner.policy import (
    RunTable,
    check_jobs,
    check_outputs,
    check_same_settings,
    check_writable,
    remove_stale_temp_files,
)

logger = logging.getLogger("steinbock_like.runner")


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
    check_jobs(jobs, extra)
    skip = check_outputs(jobs, overwrite=overwrite, resume=resume, readable=readable, extra=extra)
    output_dirs = sorted({path.parent for job in jobs for path in job.outputs.values()})
    record_dirs = output_dirs
    previous = read_previous_metadata(record_dirs) if resume else {}
    if resume:
        # An earlier run records its settings before its first output: whatever it left
        # (finished images, a cut-off file, or only its record) was made with them.
        found = [p for job in jobs for p in job.outputs.values() if p.exists()]
        found += [p for p in extra if p.exists()]
        if found and not isinstance(previous.get("parameters"), dict):
            logger.warning(
                "--resume: no readable %s in %s: the settings the %d output file(s) found "
                "were made with cannot be checked against this run's",
                RUN_METADATA,
                ", ".join(str(d) for d in record_dirs),
                len(found),
            )
        check_same_settings(previous, parameters, record_dirs, ignore=resume_ignores)
    check_writable(
        [*output_dirs, *(p.parent for p in extra)],
        [path for job in jobs for path in job.outputs.values()],
    )
    for directory in output_dirs:
        remove_stale_temp_files(directory)

    earlier_images = previous.get("images", {})
    if table is not None:
        # A table row comes from the figures recorded when the image was done: an image
        # finished just before a kill (outputs written, record not yet) is done again.
        unrecorded = {name for name in skip if not earlier_images.get(name, {}).get("info")}
        if unrecorded:
            logger.info(
                "%d finished image(s) have no recorded figures for %s: redone",
                len(unrecorded),
                table.path.name,
            )
            skip -= unrecorded
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
    recorder.write(results, finished=False)  # the settings are on record before any output
    try:
        with _terminate_as_exit(), _progress(len(jobs), command, show_bar, len(skip)) as advance:
            # done/total over the whole list: images finished earlier (--resume) count
            for done, result in enumerate(executor.run(task, todo), start=len(skip) + 1):
                results[result.name] = result
                advance(result, done, len(jobs))
                recorder.update(results)
    except BaseException as error:
        recorder.write(results, finished=False)
        if isinstance(error, KeyboardInterrupt | Terminated):
            finished = sum(result.status != "skipped" for result in results.values())
            logger.warning(
                "%s: %d of %d images done; rerun with --resume to continue",
                "terminated" if isinstance(error, Terminated) else "interrupted",
                finished,
                len(todo),
            )
        raise
    # A worker killed while writing (kill -9, the OOM killer) leaves its temporary
    # file; its job was rerun elsewhere, and no job of this batch is writing now.
    for directory in output_dirs:
        remove_stale_temp_files(directory)
    summary = BatchSummary([results[job.name] for job in jobs])
    recorder.write(results, finished=True)
    if table is not None:
        write_run_table(table, summary)
    return summary


def write_run_table(table: RunTable, summary: BatchSummary) -> None:
    """Write the per-run table: one row per image with figures (done now or earlier).

    Nothing is written when no image has figures (every image failed), so that a rerun
    is not refused for a table that holds nothing.
    """
    import pandas as pd

    from steinbock_like.io.tables import write_table

    rows = {
        result.name: {column: result.info.get(column) for column in table.columns}
        for result in summary.results
        if result.info and result.status in ("ok", "skipped")
    }
    if not rows:
        return
    frame = pd.DataFrame.from_dict(rows, orient="index", columns=list(table.columns))
    frame.index.name = table.index
    write_table(table.path, frame.sort_index())


class Terminated(SystemExit):
    """SIGTERM during a batch: unwinds like Ctrl-C (workers stopped, record written)
    and exits with status 143 (128 + SIGTERM) without a traceback."""


@contextlib.contextmanager
def _terminate_as_exit():
    """Turn SIGTERM into :class:`Terminated` while a batch runs (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        signal.signal(signal.SIGTERM, signal.SIG_DFL)  # a second SIGTERM kills at once
        raise Terminated(128 + signal.SIGTERM)

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextlib.contextmanager
def _progress(total: int, command: str, show_bar: bool, initial: int = 0):
    if show_bar and total > initial:
        from tqdm import tqdm

        with tqdm(total=total, initial=initial, desc=command, unit="image", file=sys.stderr) as bar:

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
