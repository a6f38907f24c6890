"""Run the measurement pipeline with the real CellProfiler, headless, in its own interpreter.

``PYTHON -m cellprofiler -c -r -p PIPELINE -i INPUT_DIR -o TMP`` (as steinbock runs it),
then the CSV files CellProfiler wrote are moved atomically into the output directory, so
an interrupted or failed run leaves no partial tables there.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from steinbock_like.errors import SteinbockLikeError
from steinbock_like.io.atomic import atomic_path
from steinbock_like.measure.cellprofiler.pipeline import OUTPUT_FILES
from steinbock_like.segment.cellprofiler.binary import run_streamed

logger = logging.getLogger(__name__)


def measurement_command(
    python: Path,
    pipeline_path: Path,
    input_dir: Path,
    output_dir: Path,
    *,
    module: str = "cellprofiler",
    plugins_dir: Path | None = None,
) -> list[str]:
    """steinbock's CellProfiler command line."""
    command = [
        str(python), "-m", module, "-c", "-r",
        "-p", str(pipeline_path), "-i", str(input_dir), "-o", str(output_dir),
    ]  # fmt: skip
    if plugins_dir is not None:
        command.append(f"--plugins-directory={plugins_dir}")
    return command


def run_measurement(
    python: Path,
    pipeline_path: Path,
    input_dir: Path,
    output_dir: Path,
    *,
    module: str = "cellprofiler",
    plugins_dir: Path | None = None,
    overwrite: bool = False,
    log: Callable[[str], None] | None = None,
) -> list[Path]:
    """Run CellProfiler on ``input_dir``; returns the tables written to ``output_dir``.

    Raises
    ------
    OutputExistsError
        If one of the tables exists and ``overwrite`` is not set (checked first).
    SteinbockLikeError
        If CellProfiler fails (its last line of output is named) or writes no table.
    """
    from steinbock_like.runner import check_single_output

    for name in OUTPUT_FILES:
        check_single_output(output_dir / name, overwrite=overwrite)
    log = log or logger.debug
    output_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="steinbock-like-cpmeasure-") as work:
        raw = Path(work)
        command = measurement_command(
            python, pipeline_path.resolve(), input_dir.resolve(), raw,
            module=module, plugins_dir=plugins_dir,
        )  # fmt: skip
        return_code, lines = run_streamed(command, log)
        last = next((line.strip() for line in reversed(lines) if line.strip()), "")
        tables = sorted(raw.glob("*.csv"))
        if return_code != 0 or not tables:
            raise SteinbockLikeError(
                f"CellProfiler failed on {pipeline_path.name} (exit code {return_code}"
                f"{', no tables written' if not tables else ''}): {last}"
            )
        written = []
        for table in tables:
            target = output_dir / table.name
            with atomic_path(target) as tmp:
                shutil.move(table, tmp)
            written.append(target)
    return written
