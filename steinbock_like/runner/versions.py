"""Versioned runs: ``runs/<version>/<output dir>/``, and ``runs/latest``.

A command given ``--run-version v001`` (or ``--run-dir DIR``) writes its outputs under the
run's directory instead of the data folder, so that a parameter change never overwrites
an earlier analysis. ``latest`` beside the run directories points to the newest run that
completed (a relative symbolic link; a small text file holding the run's name where the
file system has no links). It changes only when a run completes, never on an interrupt.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterable
from pathlib import Path

from steinbock_like.errors import OutputExistsError, SteinbockLikeError
from steinbock_like.io.atomic import TEMP_PREFIX, write_text_atomic

RUNS = "runs"
LATEST = "latest"
_VERSION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,99}$")


def run_directory(data_dir: Path, version: str | None, run_dir: Path | None) -> Path | None:
    """The directory of a run: ``run_dir``, or ``DATA/runs/<version>``, or None.

    Raises
    ------
    SteinbockLikeError
        For both options at once, a version that cannot name a directory, or ``latest``.
    """
    if version is not None and run_dir is not None:
        raise SteinbockLikeError("--run-version and --run-dir exclude each other: choose one")
    if run_dir is not None:
        run_dir = Path(run_dir)
        return run_dir if run_dir.is_absolute() else Path(data_dir) / run_dir
    if version is None:
        return None
    if not _VERSION.match(version) or version == LATEST:
        raise SteinbockLikeError(
            f"--run-version {version!r}: use letters, digits, '.', '_', '-' or '+' "
            f"(e.g. v001; {LATEST!r} is reserved)"
        )
    return Path(data_dir) / RUNS / version


def check_new_run(run_dir: Path, output_dirs: Iterable[Path], *, overwrite: bool, resume: bool):
    """Refuse to write into a run's output directories that hold an earlier run's files.

    Raises
    ------
    OutputExistsError
        One line, unless ``overwrite`` or ``resume``.
    """
    if overwrite or resume:
        return
    used = sorted(
        directory
        for directory in output_dirs
        if directory.is_dir() and any(_is_output(entry) for entry in directory.iterdir())
    )
    if used:
        shown = ", ".join(os.path.relpath(d, run_dir) for d in used)
        raise OutputExistsError(
            f"{run_dir}: this run exists already ({shown}); choose another --run-version, "
            "or --overwrite to redo it, or --resume to finish it"
        )


def _is_output(entry: Path) -> bool:
    return not entry.name.startswith(TEMP_PREFIX)


def mark_latest(run_dir: Path) -> Path:
    """Point ``latest`` beside ``run_dir`` to it (atomically); return the link's path."""
    link = run_dir.parent / LATEST
    temporary = run_dir.parent / f"{TEMP_PREFIX}{os.getpid()}-latest"
    with contextlib.suppress(FileNotFoundError):
        temporary.unlink()
    try:
        os.symlink(run_dir.name, temporary, target_is_directory=True)
        if link.is_dir() and not link.is_symlink():
            raise OSError("a directory is named latest")
        os.replace(temporary, link)
    except OSError:
        with contextlib.suppress(OSError):
            temporary.unlink()
        if link.is_symlink():
            link.unlink()
        if link.is_dir():
            raise SteinbockLikeError(f"{link}: a directory has this name; rename it") from None
        write_text_atomic(link, run_dir.name + "\n")
    return link


def latest_run(runs_dir: Path) -> Path | None:
    """The run ``latest`` points to in ``runs_dir`` (link or text file), or None."""
    link = Path(runs_dir) / LATEST
    if link.is_symlink():
        return Path(runs_dir) / os.readlink(link)
    if link.is_file():
        return Path(runs_dir) / link.read_text(encoding="utf-8").strip()
    return None
