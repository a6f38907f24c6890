"""``steinbock-like segment cellprofiler``: nuclei + propagation on ilastik probabilities."""

from __future__ import annotations

import logging
from pathlib import Path

import click

from steinbock_like import layout
from steinbock_like.cli.options import AppContext, pass_app, path_option, run_jobs, runner_options

logger = logging.getLogger("steinbock_like")


@click.group(
    name="cellprofiler",
    short_help="Segment cells from pixel probabilities.",
    help="""Cell segmentation from pixel probabilities, CellProfiler's way.

    \b
    1. prepare: write a CellProfiler pipeline (cell_segmentation.cppipe) that
       finds nuclei in the Nucleus probability, grows them into cells over
       Nucleus + Cytoplasm and resizes the cells to the original image size
    2. run: apply it to ilastik_probabilities/ -> masks/, with real
       CellProfiler or natively (same algorithm, same masks, no CellProfiler)
    """,
)
def cellprofiler_group() -> None:
    pass


@cellprofiler_group.command(
    name="prepare",
    help="""Write a CellProfiler 4.2 segmentation pipeline.

    The pipeline splits the 3-class probability image (Nucleus, Cytoplasm,
    Background), smooths the nucleus probability, identifies nuclei (global
    Minimum Cross-Entropy threshold, declumping by intensity, holes filled),
    drops tiny objects, propagates them into cells over Nucleus + Cytoplasm,
    shrinks the cells by 1/--scale to the original image size and saves them
    as 16-bit masks. Open it in CellProfiler's GUI to change more settings;
    'run' honours the edits.
    """,
)
@path_option("-o", "pipeline_file", default=layout.CELLPROFILER_PIPELINE, help="Pipeline to write.")
@click.option(
    "--scale",
    type=float,
    default=2.0,
    show_default=True,
    help="Scale of the probabilities relative to the images (ilastik prepare --scale).",
)
@click.option(
    "--min-diameter",
    type=float,
    default=7.0,
    show_default=True,
    help="Smallest nucleus diameter in pixels, at the probabilities' scale.",
)
@click.option(
    "--max-diameter",
    type=float,
    default=25.0,
    show_default=True,
    help="Largest nucleus diameter in pixels, at the probabilities' scale.",
)
@click.option(
    "--threshold-factor",
    type=float,
    default=1.2,
    show_default=True,
    help="Correction factor of the nucleus threshold (higher: fewer, smaller nuclei).",
)
@click.option("--overwrite", is_flag=True, help="Replace an existing pipeline file.")
@pass_app
def prepare_cmd(
    app: AppContext, pipeline_file, scale, min_diameter, max_diameter, threshold_factor, overwrite
):
    from steinbock_like.io.cppipe import write_pipeline_file
    from steinbock_like.runner import check_single_output
    from steinbock_like.segment.cellprofiler.pipeline import PipelineSettings, pipeline_text

    path = app.path(pipeline_file)
    check_single_output(path, overwrite=overwrite)
    settings = PipelineSettings(
        scale=scale,
        nucleus_diameter=(min_diameter, max_diameter),
        threshold_factor=threshold_factor,
    )
    write_pipeline_file(path, pipeline_text(settings))
    logger.info("wrote %s", path)


@cellprofiler_group.command(
    name="run",
    help="""Segment cells in every probability image with the pipeline.

    --backend cellprofiler runs CellProfiler headless (python -m cellprofiler
    -c -r) in its own interpreter (--python); --backend native runs the same
    modules here (supported: the modules 'prepare' writes, with their
    settings as edited; anything else is an error naming the module). auto:
    CellProfiler where its interpreter exists, else native.

    The native backend segments images larger than --tile-size in
    overlapping tiles (thresholds still computed over the whole image;
    objects stitched across tile borders; tiles without signal skipped).
    """,
)
@click.option(
    "--backend",
    type=click.Choice(["auto", "native", "cellprofiler"]),
    default="auto",
    show_default=True,
    help="Who segments.",
)
@path_option(
    "--pipe", "pipeline_file", default=layout.CELLPROFILER_PIPELINE, help="CellProfiler pipeline."
)
@path_option(
    "--probabilities",
    "probabilities_dir",
    default=layout.ILASTIK_PROBABILITIES,
    help="Probability images (uint16 YXC).",
)
@path_option("-o", "out_dir", default=layout.MASKS, help="Output directory of cell masks.")
@click.option(
    "--python",
    "python",
    default=None,
    help="CellProfiler's interpreter [env: CELLPROFILER_PYTHON; default: found where "
    "scripts/install_cellprofiler.sh puts it, on PATH or in the container, see "
    "'steinbock-like doctor'].",
)
@click.option(
    "--plugins-directory",
    "plugins_dir",
    type=click.Path(path_type=Path),
    default=None,
    help="CellProfiler plugins directory, if the pipeline needs plugins.",
)
@click.option(
    "--tile-size",
    type=click.IntRange(min=0),
    default=4096,
    show_default=True,
    help="Native backend only (ignored by CellProfiler): segment probability images "
    "larger than this (pixels, either side) in overlapping tiles with the image-wide "
    "thresholds, stitched; 0: never.",
)
@runner_options
@pass_app
def run_cmd(
    app: AppContext,
    backend,
    pipeline_file,
    probabilities_dir,
    out_dir,
    python,
    plugins_dir,
    tile_size,
    workers,
    overwrite,
    resume,
):
    from steinbock_like.io.cppipe import read_pipeline_file
    from steinbock_like.io.images import list_images
    from steinbock_like.runner import jobs_for, named_files
    from steinbock_like.segment.cellprofiler.binary import find_cellprofiler_python
    from steinbock_like.tasks.cellprofiler import NativeCellProfilerTask, cellprofiler_executor
    from steinbock_like.tools import choose_backend

    pipeline_path = app.path(pipeline_file)
    text = read_pipeline_file(pipeline_path)
    backend = choose_backend(backend, "cellprofiler", lambda: find_cellprofiler_python(python))
    interpreter = find_cellprofiler_python(python) if backend == "cellprofiler" else None
    probabilities = list_images(app.path(probabilities_dir), "probability image")
    jobs = jobs_for(named_files(probabilities, "probabilities"), {"mask": app.path(out_dir)})
    if backend == "cellprofiler":
        run_jobs(
            None,
            jobs,
            command="segment cellprofiler run",
            workers=1,
            overwrite=overwrite,
            resume=resume,
            executor=cellprofiler_executor(pipeline_path, python, plugins_dir),
            resolved={"backend": backend},
            extra_metadata={"cellprofiler_python": str(interpreter)},
        )
    else:
        from steinbock_like.segment.cellprofiler.translate import native_steps

        native_steps(text)  # an unsupported module is an error before any image is read
        run_jobs(
            NativeCellProfilerTask(text, tile_size=tile_size),
            jobs,
            command="segment cellprofiler run",
            workers=workers,
            overwrite=overwrite,
            resume=resume,
            resolved={"backend": backend},
        )
    logger.info("cell masks in %s", app.path(out_dir))
