"""Run the real CellProfiler headless on probability images, in its own interpreter.

CellProfiler 4.2 needs Python 3.9 and old numpy, so it lives in a separate virtual
environment (``scripts/install_cellprofiler.sh``) and is run as a subprocess::

    PYTHON -m cellprofiler -c -r -p PIPELINE -i INPUT_DIR -o OUTPUT_DIR

on a temporary input folder holding links to (or copies of) the probability images. The
masks CellProfiler saves are then moved atomically to ``OUTPUT/{image}.tiff``.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

from steinbock_like.errors import MissingToolError, SteinbockLikeError
from steinbock_like.io.atomic import atomic_path

logger = logging.getLogger(__name__)

CELLPROFILER_PYTHON_ENV = "CELLPROFILER_PYTHON"
DEFAULT_CELLPROFILER_PYTHON = "/opt/cellprofiler-venv/bin/python"
LOCAL_VENV = ".venv-cellprofiler"
MASK_SUFFIX = ".tiff"


def locate_cellprofiler(python: str | os.PathLike | None = None):
    """Find CellProfiler's interpreter; returns a :class:`~steinbock_like.tools.Candidate`.

    Tried in order: ``python`` (``--python``), ``$CELLPROFILER_PYTHON``,
    ``.venv-cellprofiler/bin/python`` of the checkout or the current directory (where
    ``scripts/install_cellprofiler.sh`` installs it), the interpreter of a
    ``cellprofiler`` command on PATH, and the container's
    ``/opt/cellprofiler-venv/bin/python``.

    Raises
    ------
    MissingToolError
        If none exists; one line naming every place tried and how to install it.
    """
    from steinbock_like.tools import (
        Candidate,
        checkout_roots,
        describe_tried,
        first_found,
        script_interpreter,
        which,
    )

    on_path = which("cellprofiler")
    candidates = [
        Candidate(Path(python) if python is not None else None, "--python"),
        Candidate(
            Path(os.environ[CELLPROFILER_PYTHON_ENV])
            if os.environ.get(CELLPROFILER_PYTHON_ENV)
            else None,
            f"${CELLPROFILER_PYTHON_ENV}",
        ),
        *(
            Candidate(root / LOCAL_VENV / "bin" / "python", "scripts/install_cellprofiler.sh")
            for root in checkout_roots()
        ),
        Candidate(script_interpreter(on_path) if on_path else None, f"PATH ({on_path})"),
        Candidate(Path(DEFAULT_CELLPROFILER_PYTHON), "container"),
    ]
    # an explicit choice is the only one tried: --python never falls back to the variable
    if python is not None:
        candidates = candidates[:1]
    elif os.environ.get(CELLPROFILER_PYTHON_ENV):
        candidates = candidates[1:2]
    found, tried = first_found(candidates, Path.exists)
    if found is None:
        raise MissingToolError(
            f"CellProfiler not found (tried {describe_tried(tried)}): install it with "
            f"'bash scripts/install_cellprofiler.sh', set {CELLPROFILER_PYTHON_ENV}, "
            "or use --backend native"
        )
    return found


def find_cellprofiler_python(python: str | os.PathLike | None = None) -> Path:
    """The interpreter that has CellProfiler (see :func:`locate_cellprofiler`)."""
    found = locate_cellprofiler(python)
    logger.debug("CellProfiler: %s (%s)", found.path, found.source)
    return found.path


def cellprofiler_command(
    python: Path,
    pipeline_path: Path,
    input_dir: Path,
    output_dir: Path,
    plugins_dir: Path | None = None,
) -> list[str]:
    """The headless CellProfiler command line."""
    command = [
        str(python), "-m", "cellprofiler", "-c", "-r",
        "-p", str(pipeline_path), "-i", str(input_dir), "-o", str(output_dir),
    ]  # fmt: skip
    if plugins_dir is not None:
        command.append(f"--plugins-directory={plugins_dir}")
    return command


def _stage_inputs(probability_paths: Sequence[Path], input_dir: Path) -> None:
    """Symbolic links to the probability images (copies where links are not possible)."""
    names = [path.name for path in probability_paths]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise SteinbockLikeError(f"several probability images are named {duplicates[0]}")
    for path in probability_paths:
        if not path.is_file():
            raise SteinbockLikeError(f"{path}: probability image not found")
        target = input_dir / path.name
        try:
            target.symlink_to(path.resolve())
        except OSError:
            shutil.copy2(path, target)


def run_streamed(command: Sequence[str], log: Callable[[str], None]) -> tuple[int, list[str]]:
    """Run a CellProfiler command line, handing each output line to ``log`` as it comes.

    Returns the exit code and the output lines (stdout and stderr together).

    Raises
    ------
    MissingToolError
        If the interpreter cannot be started.
    """
    logger.info("running %s", " ".join(command))
    try:
        process = subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            text=True,
            errors="replace",
        )
    except OSError as error:
        raise MissingToolError(f"cannot run CellProfiler with {command[0]}: {error}") from None
    assert process.stdout is not None
    lines = []
    for line in process.stdout:
        line = line.rstrip("\n")
        lines.append(line)
        log(line)
    return process.wait(), lines


def run_cellprofiler(
    pipeline_path: str | os.PathLike,
    probability_paths: Sequence[str | os.PathLike],
    output_dir: str | os.PathLike,
    *,
    python: str | os.PathLike | None = None,
    plugins_dir: str | os.PathLike | None = None,
    log: Callable[[str], None] | None = None,
) -> list[Path]:
    """Segment probability images with the real CellProfiler.

    Parameters
    ----------
    pipeline_path : path-like
        A CellProfiler 4.2 pipeline (.cppipe) whose SaveImages names the mask after its input.
    probability_paths : sequence of path-like
        Probability TIFFs; each yields ``output_dir/{stem}.tiff``.
    output_dir : path-like
        Where the masks go (created if missing); existing masks are replaced.
    python : path-like, optional
        CellProfiler's interpreter (default: $CELLPROFILER_PYTHON, else
        /opt/cellprofiler-venv/bin/python).
    plugins_dir : path-like, optional
        Passed as ``--plugins-directory`` where it exists.
    log : callable, optional
        Called with each line CellProfiler prints (default: this module's logger, DEBUG).

    Returns
    -------
    list of Path
        The written masks, in the order of ``probability_paths``.

    Raises
    ------
    MissingToolError
        If the interpreter is missing.
    SteinbockLikeError
        If CellProfiler fails, or produced no mask for an image (named).
    """
    interpreter = find_cellprofiler_python(python)
    pipeline_path = Path(pipeline_path)
    if not pipeline_path.is_file():
        raise SteinbockLikeError(f"{pipeline_path}: pipeline not found")
    probability_paths = [Path(path) for path in probability_paths]
    output_dir = Path(output_dir)
    if log is None:
        log = logger.debug
    plugins = Path(plugins_dir) if plugins_dir is not None and Path(plugins_dir).is_dir() else None
    if not probability_paths:
        return []

    with tempfile.TemporaryDirectory(prefix="steinbock-like-cellprofiler-") as work:
        input_dir, raw_output_dir = Path(work, "input"), Path(work, "output")
        input_dir.mkdir()
        raw_output_dir.mkdir()
        _stage_inputs(probability_paths, input_dir)
        command = cellprofiler_command(
            interpreter, pipeline_path.resolve(), input_dir, raw_output_dir, plugins
        )
        return_code, output_lines = run_streamed(command, log)

        # SaveImages names each mask after its input file's stem.
        missing = [
            path
            for path in probability_paths
            if not (raw_output_dir / (path.stem + MASK_SUFFIX)).is_file()
        ]
        if return_code != 0 or missing:
            # CellProfiler runs the images in order: the first one without a mask failed.
            failed = missing[0].name if missing else "unknown image"
            last = next((line for line in reversed(output_lines) if line.strip()), "")
            raise SteinbockLikeError(
                f"CellProfiler failed on {failed} (exit code {return_code}): {last}"
            )

        written = []
        output_dir.mkdir(parents=True, exist_ok=True)
        for path in probability_paths:
            mask_path = output_dir / (path.stem + MASK_SUFFIX)
            with atomic_path(mask_path) as tmp:
                shutil.move(raw_output_dir / (path.stem + MASK_SUFFIX), tmp)
            written.append(mask_path)
        return written
