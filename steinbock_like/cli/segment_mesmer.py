"""``steinbock-like segment mesmer``: Mesmer on ONNX Runtime (no TensorFlow)."""

from __future__ import annotations

import logging
from pathlib import Path

import click

from steinbock_like import layout
from steinbock_like.cli.options import (
    AppContext,
    aggregation_option,
    image_jobs,
    image_source_options,
    img_option,
    normalization_options,
    panel_option,
    pass_app,
    path_option,
    run_jobs,
    runner_options,
)

logger = logging.getLogger("steinbock_like")

TYPES = {"whole-cell": "whole-cell", "nuclear": "nuclear", "both": "both"}


def check_mesmer_aggregation(aggr: str) -> None:
    """A usage error unless ``aggr`` names a per-pixel reduction Mesmer's input accepts."""
    from steinbock_like.segment.mesmer.inputs import AGGREGATIONS

    if aggr not in AGGREGATIONS:
        raise click.BadParameter(
            f"{aggr!r}: use one of {', '.join(AGGREGATIONS)}", param_hint="--aggr"
        )


@click.command(
    name="mesmer",
    short_help="Segment cells (and nuclei) with Mesmer.",
    help="""Segment cells (and nuclei) with Mesmer, the deepcell model, on ONNX Runtime.

    Two input channels come from the panel's 'deepcell' column: group 1 =
    nuclear, group 2 = membrane/cytoplasm, each the aggregate (--aggr) of its
    channels after optional per-channel --minmax or --zscore normalisation.
    Images are rescaled from --pixelsize to the model's 0.5 um/px, normalised
    as Mesmer does (99.9th-percentile clipping, adaptive histogram
    equalisation), tiled, segmented by deep watershed and scaled back.
    Large images are processed in overlapping chunks (--chunk-size), so memory
    does not grow with the image. --type both writes cells to -o and nuclei
    to --nuclei-out, ready for 'repair'. The model comes from the model cache
    ('steinbock-like models get mesmer') or --model.
    """,
)
@click.option(
    "--type",
    "mask_type",
    type=click.Choice(list(TYPES)),
    default="whole-cell",
    show_default=True,
    help="Which masks to make.",
)
@click.option(
    "--pixelsize",
    type=click.FloatRange(min=0, min_open=True),
    default=1.0,
    show_default=True,
    help="Pixel size of the images in micrometres.",
)
@normalization_options
@aggregation_option("mean, median, sum, max, min, std, var, prod, ptp, nanmean, ...")
@click.option(
    "--model",
    "model_path",
    type=click.Path(path_type=Path),
    default=None,
    help="Mesmer ONNX file [default: the model cache].",
)
@click.option(
    "--threads",
    type=click.IntRange(min=1),
    default=None,
    help="ONNX Runtime threads per worker [default: all cores].",
)
@click.option(
    "--chunk-size",
    type=click.IntRange(min=0),
    default=2048,
    show_default=True,
    help="Process images larger than this (pixels) in overlapping chunks; 0: never.",
)
@click.option(
    "--tile-min-signal",
    "tile_min_signal",
    type=click.FloatRange(min=0),
    default=0.0,
    show_default=True,
    help="Chunks whose mean input signal (nuclear and membrane channels) is below this "
    "hold no tissue: skipped, and counted in run_metadata.json; 0: none skipped.",
)
@img_option()
@panel_option()
@path_option("-o", "out_dir", default=layout.MASKS, help="Output directory of cell masks.")
@path_option(
    "--nuclei-out",
    "nuclei_out",
    default=layout.MASKS_NUCLEI,
    help="Output directory of nuclear masks (--type nuclear or both).",
)
@image_source_options
@runner_options
@pass_app
def mesmer_cmd(
    app: AppContext,
    mask_type,
    pixelsize,
    minmax,
    zscore,
    aggr,
    model_path,
    threads,
    chunk_size,
    tile_min_signal,
    img_dir,
    panel_file,
    out_dir,
    nuclei_out,
    workers,
    overwrite,
    resume,
):
    from steinbock_like.channels import channel_groups
    from steinbock_like.io.panel import read_panel
    from steinbock_like.models import locate_mesmer_model
    from steinbock_like.runner import threads_per_worker
    from steinbock_like.tasks.mesmer import MesmerTask

    check_mesmer_aggregation(aggr)
    model = locate_mesmer_model(app.path(model_path) if model_path else None)
    panel = read_panel(app.path(panel_file))
    groups = channel_groups(panel, "deepcell")
    if len(groups) != 2:
        from steinbock_like.errors import InputError

        raise InputError(
            app.path(panel_file),
            f"Mesmer needs exactly two groups in the 'deepcell' column (1 = nuclear, "
            f"2 = membrane), found {len(groups)}",
        )
    outputs = {}
    if mask_type in ("whole-cell", "both"):
        outputs["cells"] = app.output(out_dir)
    if mask_type in ("nuclear", "both"):
        outputs["nuclei"] = app.output(nuclei_out)
    if mask_type == "nuclear" and _given("out_dir") and not _given("nuclei_out"):
        outputs["nuclei"] = app.output(out_dir)  # steinbock's --type nuclear -o DIR
    jobs = image_jobs(app, img_dir, outputs)
    task = MesmerTask(
        model,
        panel,
        TYPES[mask_type],
        pixelsize,
        minmax,
        zscore,
        aggr,
        threads_per_worker(workers, threads),
        chunk_size,
        tile_min_signal=tile_min_signal,
    )
    run_jobs(
        task,
        jobs,
        command="segment mesmer",
        workers=workers,
        overwrite=overwrite,
        resume=resume,
        resolved={"model": model},
    )
    logger.info("masks in %s", ", ".join(str(path) for path in outputs.values()))


def _given(name: str) -> bool:
    """Whether option ``name`` was given on the command line (not left at its default)."""
    source = click.get_current_context().get_parameter_source(name)
    return source is not None and source is not click.core.ParameterSource.DEFAULT
