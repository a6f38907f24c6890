"""Jobs (one image each), their results, and the task and executor protocols."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from steinbock_like.layout import MASK_SUFFIX

logger = logging.getLogger("steinbock_like.runner")


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
