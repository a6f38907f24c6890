"""``steinbock-like measure cellprofiler``: steinbock's legacy CellProfiler measurement.

Only the command names and options exist so far: both commands stop with one line
saying what to use instead, or what to install where CellProfiler is missing.
"""

from __future__ import annotations

import click

from steinbock_like import layout
from steinbock_like.cli.options import AppContext, img_option, panel_option, pass_app, path_option

NOT_YET = (
    "measure cellprofiler is not implemented yet: use 'measure intensities', "
    "'measure regionprops' and 'measure neighbors' (steinbock's recommended route)"
)


@click.group(name="cellprofiler", help="Run a CellProfiler measurement pipeline (legacy).")
def measure_cellprofiler_group() -> None:
    pass


def _python_option(function):
    return click.option(
        "--python",
        "python",
        default=None,
        help="CellProfiler's interpreter [env: CELLPROFILER_PYTHON; default: "
        "/opt/cellprofiler-venv/bin/python].",
    )(function)


def _require_cellprofiler(python: str | None) -> None:
    from steinbock_like.errors import MissingToolError
    from steinbock_like.segment.cellprofiler.binary import find_cellprofiler_python

    try:
        find_cellprofiler_python(python)
    except MissingToolError as error:
        interpreter = python or "$CELLPROFILER_PYTHON or /opt/cellprofiler-venv/bin/python"
        raise MissingToolError(
            f"measure cellprofiler needs CellProfiler 4 ({interpreter} not found): install it "
            "with scripts/install_cellprofiler.sh and set CELLPROFILER_PYTHON, or use "
            "'measure intensities|regionprops|neighbors'"
        ) from error
    raise MissingToolError(NOT_YET)


@measure_cellprofiler_group.command(
    name="prepare", help="Prepare a CellProfiler measurement pipeline and its input."
)
@img_option()
@path_option("--masks", "masks_dir", default=layout.MASKS, help="Mask directory.")
@panel_option()
@path_option(
    "--pipeout", "pipeline_file", default="cell_measurement.cppipe", help="Pipeline to write."
)
@path_option("--dataout", "data_dir", default="cellprofiler_input", help="Input to write.")
@_python_option
@pass_app
def prepare_cmd(app: AppContext, img_dir, masks_dir, panel_file, pipeline_file, data_dir, python):
    _require_cellprofiler(python)


@measure_cellprofiler_group.command(name="run", help="Run the CellProfiler measurement pipeline.")
@_python_option
@click.option("--cellprofiler", default="cellprofiler", show_default=True, help="Module name.")
@path_option(
    "--plugins-directory", "plugins_dir", default="/opt/cellprofiler_plugins", help="Plugins."
)
@path_option("--pipe", "pipeline_file", default="cell_measurement.cppipe", help="Pipeline.")
@path_option("--data", "data_dir", default="cellprofiler_input", help="Pipeline input.")
@path_option("-o", "out_dir", default="cellprofiler_output", help="Output directory.")
@pass_app
def run_cmd(app: AppContext, python, cellprofiler, plugins_dir, pipeline_file, data_dir, out_dir):
    _require_cellprofiler(python)
