"""Run real ilastik headless over ilastik images, as steinbock does.

ilastik is called once for a batch of images (its start-up takes many seconds):

    run_ilastik.sh --headless --project=P --readonly --input_axes=cyx
        --export_source=Probabilities --output_format=tiff
        --output_filename_format=DIR/{nickname}.tiff --export_dtype=uint16
        --output_axis_order=yxc --pipeline_result_drange=(0.0,1.0)
        --export_drange=(0,65535) A.h5/img B.h5/img ...

ilastik names an input ``A.h5/img`` ``A-img``, so its outputs are renamed to
``A.tiff``. Its environment loses PYTHONPATH, PYTHONHOME and LD_LIBRARY_PATH (they
would break ilastik's bundled Python) and gets LAZYFLOW_THREADS and
LAZYFLOW_TOTAL_RAM_MB from the options.
"""

import logging
import os
import subprocess
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from steinbock_like.errors import MissingToolError, SteinbockLikeError
from steinbock_like.io.ilastik import IMAGE_DATASET
from steinbock_like.io.images import image_name

logger = logging.getLogger(__name__)

DEFAULT_BINARY = "/opt/ilastik/run_ilastik.sh"
BINARY_ENV = "ILASTIK_BINARY"
REMOVED_ENV = ("PYTHONPATH", "PYTHONHOME", "LD_LIBRARY_PATH")
THREADS_ENV = "LAZYFLOW_THREADS"
MEMORY_ENV = "LAZYFLOW_TOTAL_RAM_MB"
OUTPUT_SUFFIX = ".tiff"


def locate_ilastik(binary: str | Path | None = None):
    """Find the ilastik launcher; returns a :class:`~steinbock_like.tools.Candidate`.

    Tried in order: ``binary`` (``--ilastik``), ``$ILASTIK_BINARY``, ``run_ilastik.sh``
    or ``ilastik`` on PATH, ``ilastik*/run_ilastik.sh`` in the checkout or the current
    directory, and the container's ``/opt/ilastik/run_ilastik.sh``.

    Raises
    ------
    MissingToolError
        If none is an executable file; the message names the native backend.
    """
    from steinbock_like.tools import (
        Candidate,
        checkout_roots,
        describe_tried,
        first_found,
        is_executable,
        which,
    )

    explicit = binary or os.environ.get(BINARY_ENV)
    candidates = [
        Candidate(Path(binary) if binary else None, "--ilastik"),
        Candidate(
            Path(os.environ[BINARY_ENV]) if os.environ.get(BINARY_ENV) else None, f"${BINARY_ENV}"
        ),
    ]
    if not explicit:
        candidates += [Candidate(which(name), "PATH") for name in ("run_ilastik.sh", "ilastik")]
        for root in checkout_roots():
            candidates += [
                Candidate(path, "checkout") for path in sorted(root.glob("ilastik*/run_ilastik.sh"))
            ]
        candidates.append(Candidate(Path(DEFAULT_BINARY), "container"))
    found, tried = first_found(candidates, is_executable)
    if found is None:
        raise MissingToolError(
            f"ilastik not found (tried {describe_tried(tried)}; set --ilastik or {BINARY_ENV}); "
            "without ilastik, use the native backend: classify ilastik run --backend native"
        )
    return found


def find_ilastik_binary(binary: str | Path | None = None) -> Path:
    """The ilastik launcher (see :func:`locate_ilastik`)."""
    found = locate_ilastik(binary)
    logger.debug("ilastik: %s (%s)", found.path, found.source)
    return found.path


def ilastik_arguments(
    binary: str | Path,
    project: str | Path,
    image_files: Sequence[str | Path],
    probabilities_dir: str | Path,
) -> list[str]:
    """ilastik's headless command line for a batch of ilastik image files."""
    filename_format = Path(probabilities_dir) / ("{nickname}" + OUTPUT_SUFFIX)
    return [
        str(binary),
        "--headless",
        f"--project={project}",
        "--readonly",
        "--input_axes=cyx",
        "--export_source=Probabilities",
        "--output_format=tiff",
        f"--output_filename_format={filename_format}",
        "--export_dtype=uint16",
        "--output_axis_order=yxc",
        "--pipeline_result_drange=(0.0,1.0)",
        "--export_drange=(0,65535)",
        *(f"{Path(f)}/{IMAGE_DATASET}" for f in image_files),
    ]


def ilastik_environment(
    threads: int | None = None,
    memory_mb: int | None = None,
    base: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The environment ilastik runs in (a copy of ``base``, by default ours)."""
    env = dict(os.environ if base is None else base)
    for name in REMOVED_ENV:
        env.pop(name, None)
    if threads is not None:
        env[THREADS_ENV] = str(int(threads))
    if memory_mb is not None:
        env[MEMORY_ENV] = str(int(memory_mb))
    return env


def ilastik_output_name(image_file: str | Path) -> str:
    """The file ilastik writes for an image (``{nickname}.tiff``, nickname ``A-img``)."""
    return f"{image_name(image_file)}-{IMAGE_DATASET}{OUTPUT_SUFFIX}"


def probabilities_name(image_file: str | Path) -> str:
    """Our name for an image's probabilities: ``{image}.tiff``."""
    return f"{image_name(image_file)}{OUTPUT_SUFFIX}"


def rename_outputs(
    probabilities_dir: str | Path, image_files: Sequence[str | Path]
) -> tuple[list[Path], list[str]]:
    """Rename ilastik's ``A-img.tiff`` to ``A.tiff`` for each image.

    Returns
    -------
    renamed : list of Path
        The final probability files (also those already named so).
    missing : list of str
        Names of images for which ilastik wrote nothing.
    """
    probabilities_dir = Path(probabilities_dir)
    renamed, missing = [], []
    for image_file in image_files:
        written = probabilities_dir / ilastik_output_name(image_file)
        final = probabilities_dir / probabilities_name(image_file)
        if written.is_file():
            os.replace(written, final)
            renamed.append(final)
        elif final.is_file():
            renamed.append(final)
        else:
            missing.append(image_name(image_file))
    return renamed, missing


def run_ilastik(
    project: str | Path,
    image_files: Sequence[str | Path],
    probabilities_dir: str | Path,
    *,
    binary: str | Path | None = None,
    threads: int | None = None,
    memory_mb: int | None = None,
    on_line: Callable[[str], None] | None = None,
) -> list[Path]:
    """Classify a batch of ilastik images with real ilastik; return the probability files.

    Parameters
    ----------
    project : path-like
        Trained pixel-classification project (``.ilp``).
    image_files : sequence of path-like
        ilastik image files (dataset ``img``, float32 CYX).
    probabilities_dir : path-like
        Output directory (created if missing); outputs are ``{image}.tiff``.
    binary : path-like, optional
        ilastik launcher (see :func:`find_ilastik_binary`).
    threads, memory_mb : int, optional
        LAZYFLOW_THREADS and LAZYFLOW_TOTAL_RAM_MB.
    on_line : callable, optional
        Receives each line ilastik prints, as it prints it (default: logged at INFO).

    Raises
    ------
    MissingToolError
        No ilastik executable.
    SteinbockLikeError
        ilastik failed (exit status and the batch's images named) or wrote no output
        for some images (named).
    """
    binary = find_ilastik_binary(binary)
    probabilities_dir = Path(probabilities_dir)
    probabilities_dir.mkdir(parents=True, exist_ok=True)
    if not image_files:
        return []
    args = ilastik_arguments(binary, project, image_files, probabilities_dir)
    emit = on_line or (lambda line: logger.info("ilastik: %s", line))
    logger.debug("running %s", " ".join(args))
    last_lines: list[str] = []
    try:
        process = subprocess.Popen(
            args,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=ilastik_environment(threads, memory_mb),
            text=True,
            errors="replace",
            bufsize=1,
        )
    except OSError as error:
        raise MissingToolError(f"cannot start ilastik at {binary}: {error}") from error
    with process:
        for line in process.stdout:
            line = line.rstrip("\n")
            emit(line)
            last_lines = (last_lines + [line])[-5:]
        status = process.wait()
    names = [image_name(f) for f in image_files]
    if status != 0:
        tail = " | ".join(line for line in last_lines if line.strip())
        raise SteinbockLikeError(
            f"ilastik exited with status {status} on {len(names)} image(s): {', '.join(names)}"
            + (f" (last output: {tail})" if tail else "")
        )
    renamed, missing = rename_outputs(probabilities_dir, image_files)
    if missing:
        raise SteinbockLikeError(f"ilastik wrote no probabilities for: {', '.join(missing)}")
    return renamed
