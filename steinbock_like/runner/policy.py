"""What a run may write: overwrite/resume, settings of finished outputs, writability."""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from steinbock_like.errors import (
    OutputExistsError,
    SteinbockLikeError,
)
from steinbock_like.io.atomic import TEMP_PREFIX, is_stale_temp_file
from steinbock_like.runner.jobs import Job
from steinbock_like.runner.metadata import jsonable

logger = logging.getLogger("steinbock_like.runner")

#: Options that change how a run goes, not what it writes: ignored when --resume
#: compares the settings of a run with those of the outputs it finds.
RUN_CONTROL_OPTIONS = frozenset({"workers", "overwrite", "resume", "threads", "scheduler"})


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


def check_jobs(jobs: Sequence[Job], extra: Sequence[Path] = ()) -> None:
    """Refuse a batch whose jobs would write over each other or over their inputs.

    Raises
    ------
    SteinbockLikeError
        One line naming the files: two images with one name (``a.tif`` and ``a.tiff``),
        two jobs with one output, an output that is an input (e.g. ``-o`` naming the
        input directory), or an output path that is a directory.
    """
    by_name: dict[str, Job] = {}
    for job in jobs:
        other = by_name.setdefault(job.name, job)
        if other is not job:
            first, second = _first_input(other), _first_input(job)
            raise SteinbockLikeError(
                f"two images are named {job.name!r} ({first} and {second}): their outputs "
                "would replace each other; rename or remove one"
            )
    inputs = {_key(path): path for job in jobs for path in job.inputs.values()}
    writers: dict[Path, str] = {}
    for job in jobs:
        # A job marked in_place (e.g. ``utils expand`` without -o) replaces its own input,
        # atomically, after reading it; never another job's.
        own = {_key(path) for path in job.inputs.values()} if job.params.get("in_place") else set()
        for path in job.outputs.values():
            key = _key(path)
            if key in inputs and key not in own:
                raise SteinbockLikeError(
                    f"{path}: this output would replace the input file {inputs[key]}; "
                    "choose another output directory"
                )
            if writers.setdefault(key, job.name) != job.name:
                raise SteinbockLikeError(
                    f"{path}: images {writers[key]!r} and {job.name!r} would both write it"
                )
            if path.is_dir():
                raise SteinbockLikeError(f"{path}: an output file's path is a directory")
    for path in extra:
        if _key(path) in inputs:
            raise SteinbockLikeError(f"{path}: this output would replace an input file")
        if path.is_dir():
            raise SteinbockLikeError(f"{path}: an output file's path is a directory")


def _key(path: Path) -> Path:
    return Path(os.path.abspath(path))


def _first_input(job: Job) -> Path | str:
    return next(iter(job.inputs.values()), job.name)


def _check_exclusive(overwrite: bool, resume: bool) -> None:
    if overwrite and resume:
        raise SteinbockLikeError("--overwrite and --resume exclude each other: choose one")


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
    _check_exclusive(overwrite, resume)
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
    path: Path,
    *,
    overwrite: bool,
    resume: bool = False,
    why: str = "",
    directory_ok: bool = False,
) -> bool:
    """The overwrite policy for a one-off output (a project, a pipeline, a table).

    Returns
    -------
    bool
        True to write it; False to keep the existing file (``resume``).

    ``directory_ok``: the output is a directory store (zarr); otherwise an existing
    directory of that name is an error even with ``overwrite``.

    Raises
    ------
    OutputExistsError
        If it exists and neither ``overwrite`` nor ``resume`` is set.
    """
    _check_exclusive(overwrite, resume)
    if path.is_dir() and not directory_ok:
        raise OutputExistsError(f"{path} is a directory: give a file name")
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
            path.name.encode("utf-8")  # recorded in projects, tables and the run record
        except UnicodeError:
            shown = os.fsencode(path.name).decode("utf-8", "backslashreplace")
            raise SteinbockLikeError(
                f"{path.parent}/{shown}: the name is not valid UTF-8 text (undecodable "
                "bytes in the image's file name); rename the file"
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
            what = "a broken link" if directory.is_symlink() else "a file"
            raise SteinbockLikeError(
                f"{directory}: cannot be an output directory, {what} has that name"
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


def check_same_settings(
    previous: dict[str, Any],
    parameters: dict[str, Any],
    directories: Sequence[Path],
    *,
    ignore: Iterable[str] = (),
) -> None:
    """Refuse ``--resume`` over outputs made with other settings, naming the first one.

    Applies whenever ``--resume`` finds an earlier run's record, whether or not any of its
    images finished: the record is written before the first output. Without a record
    (``previous`` has no parameters) there is nothing to compare.

    Raises
    ------
    SteinbockLikeError
        If an option recorded by the earlier run differs from this run's.
    """
    earlier = previous.get("parameters")
    if not isinstance(earlier, dict):
        return
    now = jsonable(parameters)
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
            "%s: removed %d unfinished file(s) of an interrupted run or a worker that died",
            directory,
            len(removed),
        )
    return removed
