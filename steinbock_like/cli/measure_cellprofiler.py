"""``steinbock-like measure cellprofiler``: steinbock's legacy CellProfiler measurement.

``prepare`` writes what steinbock 0.16.5 writes (``cellprofiler_input/``: 16-bit ImageJ
TIFFs of every image and its mask; ``cell_measurement.cppipe``), except that the pipeline
uses stock CellProfiler 4.2 modules instead of ImcPluginsCP's (same measurements, same
column names). ``run`` runs it with the real CellProfiler, headless, into
``cellprofiler_output/`` (``Cell.csv``, ``Image.csv``, ``Experiment.csv``,
``Object relationships.csv``).
"""

from __future__ import annotations

import logging

import click

from steinbock_like import layout
from steinbock_like.cli.options import (
    AppContext,
    img_option,
    panel_option,
    pass_app,
    path_option,
    run_jobs,
    runner_options,
)

logger = logging.getLogger("steinbock_like")

PIPELINE = "cell_measurement.cppipe"
INPUT_DIR = "cellprofiler_input"
OUTPUT_DIR = "cellprofiler_output"


@click.group(name="cellprofiler", help="Run a CellProfiler measurement pipeline (legacy).")
def measure_cellprofiler_group() -> None:
    pass


@measure_cellprofiler_group.command(
    name="prepare",
    help="""Prepare a CellProfiler measurement pipeline and its input.

    Writes every image and its mask to --dataout as 16-bit TIFFs ({image}.tiff,
    {image}_mask.tiff; pixel values rounded and clipped to 0..65535, as steinbock
    does) and a CellProfiler 4.2 pipeline (--pipeout) that measures the cells:
    per-channel intensities (MeasureObjectIntensity on Image_c1 .. Image_cN),
    neighbours within 8 pixels, and per-image intensities. CellProfiler scales the
    16-bit values to 0..1: its intensities are the rounded pixel values / 65535.
    The pipeline needs no plugins.
    """,
)
@img_option()
@path_option("--masks", "masks_dir", default=layout.MASKS, help="Mask directory.")
@panel_option()
@path_option("--pipeout", "pipeline_file", default=PIPELINE, help="Pipeline to write.")
@path_option("--dataout", "data_dir", default=INPUT_DIR, help="CellProfiler input to write.")
@runner_options
@pass_app
def prepare_cmd(
    app: AppContext,
    img_dir,
    masks_dir,
    panel_file,
    pipeline_file,
    data_dir,
    workers,
    overwrite,
    resume,
):
    from steinbock_like.errors import InputError
    from steinbock_like.io.cellprofiler_input import MASK_SUFFIX
    from steinbock_like.io.cppipe import write_pipeline_file
    from steinbock_like.io.images import image_shape
    from steinbock_like.io.pairs import match_by_name
    from steinbock_like.io.panel import panel_for_image, read_panel
    from steinbock_like.measure.cellprofiler.pipeline import measurement_pipeline_text
    from steinbock_like.runner import Job, check_single_output
    from steinbock_like.tasks.measure_cellprofiler import CellProfilerInputTask

    panel = read_panel(app.path(panel_file))
    pairs = match_by_name(app.path(img_dir), app.path(masks_dir))
    num_channels = None
    for _, img, _ in pairs:
        channels = image_shape(img)[0]
        panel_for_image(panel, channels, img)
        if num_channels is None:
            num_channels = channels
        elif channels != num_channels:
            raise InputError(img, f"image has {channels} channels, {pairs[0][1].name} "
                                  f"{num_channels}: the pipeline needs one count")  # fmt: skip
    pipeline_path = app.path(pipeline_file)
    write_pipeline = check_single_output(pipeline_path, overwrite=overwrite, resume=resume)
    out = app.path(data_dir)
    jobs = [
        Job(name, {"img": img, "mask": mask},
            {"image": out / f"{name}.tiff", "mask": out / f"{name}{MASK_SUFFIX}"})
        for name, img, mask in pairs
    ]  # fmt: skip
    run_jobs(
        CellProfilerInputTask(num_channels or 0),
        jobs,
        command="measure cellprofiler prepare",
        workers=workers,
        overwrite=overwrite,
        resume=resume,
        resolved={"num_channels": num_channels},
    )
    if write_pipeline:
        write_pipeline_file(pipeline_path, measurement_pipeline_text(num_channels))
    logger.info("CellProfiler input in %s, pipeline %s", out, pipeline_path)


@measure_cellprofiler_group.command(
    name="run",
    help="""Run the CellProfiler measurement pipeline (real CellProfiler, headless).

    Runs PYTHON -m CELLPROFILER -c -r -p PIPE -i DATA -o OUT. PYTHON: --python,
    else $CELLPROFILER_PYTHON, else where scripts/install_cellprofiler.sh puts it,
    on PATH or in the container ('steinbock-like doctor'). OUT gets Cell.csv
    (one row per cell: intensities of every channel, scaled to 0..1; neighbours),
    Image.csv, Experiment.csv and 'Object relationships.csv'.
    """,
)
@click.option(
    "--python",
    "python",
    default=None,
    help="CellProfiler's interpreter [env: CELLPROFILER_PYTHON; default: found where "
    "scripts/install_cellprofiler.sh puts it, on PATH or in the container].",
)
@click.option("--cellprofiler", default="cellprofiler", show_default=True, help="Module name.")
@path_option(
    "--plugins-directory",
    "plugins_dir",
    default="/opt/cellprofiler_plugins",
    help="CellProfiler plugins directory (used where it exists; the pipeline needs none).",
)
@path_option("--pipe", "pipeline_file", default=PIPELINE, help="CellProfiler pipeline.")
@path_option("--data", "data_dir", default=INPUT_DIR, help="CellProfiler input directory.")
@path_option("-o", "out_dir", default=OUTPUT_DIR, help="Output directory.")
@click.option(
    "--overwrite",
    is_flag=True,
    help="Replace existing output files (by default existing outputs are an error).",
)
@pass_app
def run_cmd(
    app: AppContext, python, cellprofiler, plugins_dir, pipeline_file, data_dir, out_dir, overwrite
):
    import re

    from steinbock_like.errors import InputError, MissingToolError
    from steinbock_like.io.cppipe import read_pipeline_file
    from steinbock_like.measure.cellprofiler.run import run_measurement
    from steinbock_like.segment.cellprofiler.binary import find_cellprofiler_python

    pipeline_path = app.path(pipeline_file)
    read_pipeline_file(pipeline_path)
    data = app.path(data_dir)
    if not data.is_dir():
        raise InputError(data, "not found (write it with 'measure cellprofiler prepare')")
    try:
        interpreter = find_cellprofiler_python(python)
    except MissingToolError as error:
        tried = re.search(r"\(tried (.*?)\):", str(error))
        raise MissingToolError(
            "measure cellprofiler run needs CellProfiler 4.2, not found"
            f"{f' (tried {tried.group(1)})' if tried else ''}: install it with "
            "'bash scripts/install_cellprofiler.sh' and set CELLPROFILER_PYTHON"
        ) from error
    plugins = app.path(plugins_dir)
    written = run_measurement(
        interpreter,
        pipeline_path,
        data,
        app.path(out_dir),
        module=cellprofiler,
        plugins_dir=plugins if plugins.is_dir() else None,
        overwrite=overwrite,
    )
    logger.info("CellProfiler measurements (%d files) in %s", len(written), app.path(out_dir))
