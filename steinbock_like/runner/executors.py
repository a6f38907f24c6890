"""Executors: run a task on jobs in this process, a pool of processes, or one external tool call."""

from __future__ import annotations

import concurrent.futures
import contextlib
import logging
import os
import signal
import sys
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from steinbock_like.errors import (
    MissingToolError,
    SteinbockLikeError,
    describe_error,
)
from steinbock_like.runner.jobs import Job, JobResult

logger = logging.getLogger("steinbock_like.runner")


def execute_job(task: Callable, job: Job) -> JobResult:
    """Run one job, turning any exception into a failed result.

    A failed job leaves none of its outputs: neither what it wrote before failing nor
    an older file it was to replace (``--overwrite``, or a partial set on ``--resume``),
    so no output of a failed image can be taken for a result of this run.
    """
    start = time.perf_counter()
    try:
        info = task(job) or {}
    except Exception as error:  # one image's failure must not stop the batch
        message = str(error) if isinstance(error, SteinbockLikeError) else describe_error(error)
        remove_outputs(job)
        return JobResult(
            job.name,
            "failed",
            time.perf_counter() - start,
            error=message,
            traceback=traceback.format_exc(),
        )
    return JobResult(job.name, "ok", time.perf_counter() - start, info=info)


def remove_outputs(job: Job) -> None:
    """Delete a failed job's output files (a failed image leaves no results)."""
    for path in job.outputs.values():
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
        futures: list[concurrent.futures.Future] = []
        try:
            # Inside the try: a worker that dies (out of memory) can break the pool
            # while jobs are still being submitted, and submit() then raises.
            futures.extend(pool.submit(_run_in_worker, job) for job in jobs)
            for future in concurrent.futures.as_completed(futures):
                yield future.result()
        except _WorkerSetupFailed as failure:
            message, details = failure.args
            logger.debug("a worker's setup failed:\n%s", details)
            raise SteinbockLikeError(f"a worker process could not start: {message}") from None
        except concurrent.futures.process.BrokenProcessPool as error:
            # A worker died (out of memory, killed): say what to try.
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
    #: ``check_job(job)`` after the tool ran: a SteinbockLikeError (e.g. an output of
    #: the wrong shape) fails that job and removes its outputs.
    check_job: Callable[[Job], Any] | None = None

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
                problem = self._check(job)
                if problem is None:
                    yield JobResult(job.name, "ok", seconds, info={"backend": self.tool})
                    continue
                remove_outputs(job)
                yield JobResult(job.name, "failed", seconds, error=problem)
            else:
                message = error or f"{self.tool} wrote no output for this image"
                remove_outputs(job)
                yield JobResult(job.name, "failed", seconds, error=message)

    def _check(self, job: Job) -> str | None:
        if self.check_job is None:
            return None
        try:
            self.check_job(job)
        except SteinbockLikeError as problem:
            return str(problem)
        return None


_worker_task: Callable | None = None
#: Why this worker's setup() failed: (one line, traceback), reported with its first job.
_worker_setup_failure: tuple[str, str] | None = None


class _WorkerSetupFailed(Exception):
    """Carries a worker's setup() failure to the main process (args: line, traceback)."""


def _init_worker(task: Callable, parent: int) -> None:
    global _worker_task
    _die_with_parent(parent)
    # Ctrl-C reaches the whole process group: the main process alone handles it.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # The pool stops workers with SIGTERM: they must not run the main process's handler.
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    _worker_task = task
    try:
        _setup(task)
    except Exception as error:
        # Raising here would break the pool, whose error can only say that a worker
        # died; the first job this worker takes reports the cause instead.
        global _worker_setup_failure
        message = str(error) if isinstance(error, SteinbockLikeError) else describe_error(error)
        _worker_setup_failure = (message, traceback.format_exc())


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
    if _worker_setup_failure is not None:
        raise _WorkerSetupFailed(*_worker_setup_failure)
    return execute_job(_worker_task, job)


def _setup(task: Callable) -> None:
    setup = getattr(task, "setup", None)
    if callable(setup):
        setup()
