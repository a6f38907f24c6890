"""run_metadata.json: written as images finish, read back by --resume."""

from __future__ import annotations

import contextlib
import datetime
import json
import logging
import os
import platform
import re
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from steinbock_like.io.atomic import write_text_atomic
from steinbock_like.layout import RUN_METADATA
from steinbock_like.runner.jobs import Job, JobResult

logger = logging.getLogger("steinbock_like.runner")

CORE_PACKAGES = ("numpy", "scipy", "scikit-image", "tifffile", "h5py", "pandas")
#: Seconds between rewrites of run_metadata.json while a batch runs.
METADATA_INTERVAL = 2.0


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
            "parameters": jsonable(parameters),
            "started": _now(),
            "versions": versions,
        }
        self.extra = extra
        self.last_write = 0.0

    def update(self, results: dict[str, JobResult]) -> None:
        if time.monotonic() - self.last_write >= METADATA_INTERVAL:
            self.write(results, finished=False)

    def write(self, results: dict[str, JobResult], *, finished: bool) -> None:
        metadata = {**self.header, **jsonable(self.extra)}
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
                entry["info"] = jsonable(result.info)
        return entry

    def _path(self, path: Path) -> str:
        if self.data_dir is None:
            return str(path)
        return os.path.relpath(Path(path).absolute(), Path(self.data_dir).absolute())


def package_versions(names: Iterable[str]) -> dict[str, str]:
    """Installed versions of ``names`` plus Python and steinbock-like."""
    from steinbock_like import __version__

    versions = {"steinbock-like": __version__, "python": platform.python_version()}
    installed = _dist_info_versions()
    for name in names:
        version = installed.get(_normalized(name))
        if version is None:  # not found by name: ask importlib (slow to import)
            from importlib import metadata as importlib_metadata

            with contextlib.suppress(importlib_metadata.PackageNotFoundError):
                version = importlib_metadata.version(name)
        if version is not None:
            versions[name] = version
    return versions


def _normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "_", name).lower()


def _dist_info_versions() -> dict[str, str]:
    """``{normalized name: version}`` from the ``NAME-VERSION.dist-info`` folders on
    ``sys.path`` (the first found wins, as for imports): what importlib.metadata
    reads, without the ~12 ms its import costs at every start."""
    found: dict[str, str] = {}
    for entry in sys.path:
        with contextlib.suppress(OSError):
            for item in os.scandir(entry or "."):
                if item.name.endswith(".dist-info") and "-" in item.name:
                    name, _, version = item.name[: -len(".dist-info")].rpartition("-")
                    found.setdefault(_normalized(name), version)
    return found


def jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "__dataclass_fields__"):
        return jsonable(asdict(value))
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    return str(value)


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
