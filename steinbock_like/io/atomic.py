"""Atomic file writes: a temporary file in the target directory, then a rename.

An interrupted run therefore never leaves a half-written output under its
final name, and a rerun with ``--resume`` can trust every file it finds.

Temporary files are named ``.tmp-<pid>-<random><suffix>``: short whatever the final
name (so a long image name fails before any work, not at the rename), hidden from
listings, and owned by a process, so that cleaning up removes only the files of runs
that are no longer alive (two runs in one directory never delete each other's files).
Finished files get the permissions the user's umask asks for, as if created directly.
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path

TEMP_PREFIX = ".tmp-"
_TEMP_OWNER = re.compile(r"^\.tmp-(\d+)-")


@functools.cache
def current_umask() -> int:
    """The process's umask (read without changing it where /proc allows)."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def temp_owner(path: str | Path) -> int | None:
    """The process ID in a temporary file's name, or None for other names."""
    match = _TEMP_OWNER.match(Path(path).name)
    return int(match.group(1)) if match else None


def process_is_alive(pid: int) -> bool:
    """Whether a process with this ID exists (on this machine)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def is_stale_temp_file(path: str | Path) -> bool:
    """A temporary file whose writing process is gone (or that names no process)."""
    owner = temp_owner(path)
    return owner is None or (owner != os.getpid() and not process_is_alive(owner))


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it to ``path`` on success.

    The temporary file keeps the final suffix (writers such as tifffile and
    h5py look at it) and starts with ``.tmp-<pid>-`` so that listings ignore it.
    On any exception the temporary file is removed and ``path`` is untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(
        prefix=f"{TEMP_PREFIX}{os.getpid()}-", suffix=path.suffix, dir=path.parent
    )
    os.close(fd)
    tmp_path = Path(tmp_name)
    try:
        yield tmp_path
        # mkstemp creates 0600; a lab's group must be able to read results.
        os.chmod(tmp_path, 0o666 & ~current_umask())
        os.replace(tmp_path, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()
        raise


def write_text_atomic(path: str | Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically (UTF-8)."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_bytes_atomic(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
