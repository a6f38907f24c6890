"""``steinbock-like segment deepcell``: steinbock's DeepCell command, on our Mesmer (ONNX)."""

from __future__ import annotations

import logging
from pathlib import Path

import click

from steinbock_like import layout
from steinbock_like.cli.options import (
    AppContext,
    aggregation_option,
    img_option,
    normalization_options,
    panel_option,
    pass_app,
    path_option,
    run_jobs,
    runner_options,
)
from steinbock_like.cli.segment_mesmer import check_mesmer_aggregation

logger = logging.getLogger("steinbock_like")

#: steinbock's default model name: DeepCell's Mesmer network, which our ONNX file holds
DEFAULT_MODEL = "MultiplexSegmentation"
#: deepcell's Mesmer preprocessing switches, supported only at their defaults (on)
PREPROCESS_SWITCHES = {"threshold": True, "normalize": True}
#: deepcell's Mesmer preprocessing values we pass on: name -> type
PREPROCESS_VALUES = {"percentile": float, "kernel_size": int}


@click.command(
    name="deepcell",
    help="""Segment objects with DeepCell's Mesmer (steinbock's command; our ONNX network).

    The same as 'segment mesmer' with steinbock's option names: two channels from
    the panel's 'deepcell' column (1 = nuclear, 2 = membrane), each the --aggr of
    its channels after optional --minmax/--zscore; masks of --type to -o.
    --model: the Mesmer network (DeepCell's MultiplexSegmentation by default, from
    the model cache: 'steinbock-like models get mesmer') or an ONNX file, also
    looked up in --modeldir. --postprocess: a YAML file of deep-watershed
    parameters (maxima_threshold, interior_threshold, ...), --preprocess one of
    normalisation parameters (percentile, kernel_size), as DeepCell takes them.
    """,
)
@click.option(
    "--app",
    "application",
    type=click.Choice(["mesmer"]),
    default="mesmer",
    show_default=True,
    help="DeepCell application.",
)
@click.option(
    "--model",
    "model",
    default=DEFAULT_MODEL,
    show_default=True,
    help="Model name or ONNX file (Keras models need converting to ONNX).",
)
@click.option(
    "--modeldir",
    "model_dir",
    default="/opt/keras/models",
    show_default=True,
    help="Directory where --model is also looked for.",
)
@img_option()
@normalization_options
@panel_option()
@aggregation_option("mean, median, sum, max, min, std, var, prod, ptp, nanmean, ...")
@click.option(
    "--pixelsize",
    type=click.FloatRange(min=0, min_open=True),
    default=1.0,
    show_default=True,
    help="Pixel size in micrometres.",
)
@click.option(
    "--type",
    "mask_type",
    type=click.Choice(["whole-cell", "nuclear"]),
    default="whole-cell",
    show_default=True,
    help="Segmentation type.",
)
@click.option(
    "--preprocess",
    "preprocess_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="Preprocessing parameters (YAML: percentile, kernel_size).",
)
@click.option(
    "--postprocess",
    "postprocess_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="Postprocessing (deep watershed) parameters (YAML).",
)
@path_option("-o", "out_dir", default=layout.MASKS, help="Output directory of masks.")
@click.option(
    "--threads",
    type=click.IntRange(min=1),
    default=None,
    help="ONNX Runtime threads per worker [default: all cores].",
)
@runner_options
@pass_app
def deepcell_cmd(
    app: AppContext,
    application,
    model,
    model_dir,
    img_dir,
    minmax,
    zscore,
    panel_file,
    aggr,
    pixelsize,
    mask_type,
    preprocess_file,
    postprocess_file,
    out_dir,
    threads,
    workers,
    overwrite,
    resume,
):
    from steinbock_like.channels import channel_groups
    from steinbock_like.errors import InputError
    from steinbock_like.io.images import list_images
    from steinbock_like.io.panel import read_panel
    from steinbock_like.runner import jobs_for, named_files, threads_per_worker
    from steinbock_like.segment.mesmer.segmenter import DEFAULT_CHUNK_SIZE
    from steinbock_like.tasks.mesmer import MesmerTask

    check_mesmer_aggregation(aggr)
    model_path = _locate_model(app, model, model_dir)
    preprocess = None
    if preprocess_file is not None:
        preprocess = _preprocess_params(app.path(preprocess_file))
    postprocess = None
    if postprocess_file is not None:
        postprocess = _postprocess_params(app.path(postprocess_file))
    panel = read_panel(app.path(panel_file))
    groups = channel_groups(panel, "deepcell")
    if len(groups) != 2:
        raise InputError(
            app.path(panel_file),
            f"Mesmer needs exactly two groups in the 'deepcell' column (1 = nuclear, "
            f"2 = membrane), found {len(groups)}",
        )
    key = "cells" if mask_type == "whole-cell" else "nuclei"
    jobs = jobs_for(named_files(list_images(app.path(img_dir)), "image"), {key: app.path(out_dir)})
    task = MesmerTask(
        model_path,
        panel,
        mask_type,
        pixelsize,
        minmax,
        zscore,
        aggr,
        threads_per_worker(workers, threads),
        DEFAULT_CHUNK_SIZE,
        postprocess=postprocess,
        preprocess=preprocess,
    )
    run_jobs(
        task,
        jobs,
        command="segment deepcell",
        workers=workers,
        overwrite=overwrite,
        resume=resume,
        resolved={"model": model_path},
    )
    logger.info("masks in %s", app.path(out_dir))


def _locate_model(app: AppContext, model: str, model_dir: str) -> Path:
    from steinbock_like.errors import SteinbockLikeError
    from steinbock_like.models import locate_mesmer_model

    if model == DEFAULT_MODEL:
        return locate_mesmer_model(None)
    for candidate in (app.path(model), app.path(model_dir) / model):
        if candidate.is_file() and candidate.suffix == ".onnx":
            return locate_mesmer_model(candidate)
        if candidate.exists():
            raise SteinbockLikeError(
                f"{candidate}: Keras models are not supported; give an ONNX file of a "
                "Mesmer network"
            )
    raise SteinbockLikeError(f"--model {model}: no such ONNX file (also not in {model_dir})")


def _preprocess_params(path: Path) -> dict:
    """Keyword arguments of MesmerSegmenter from a DeepCell preprocessing YAML file."""
    from steinbock_like.errors import InputError
    from steinbock_like.io.params import read_yaml_params

    params = {}
    for name, value in read_yaml_params(path).items():
        if name in PREPROCESS_SWITCHES:
            if value is not PREPROCESS_SWITCHES[name]:
                raise InputError(path, f"{name}: only {PREPROCESS_SWITCHES[name]} is supported")
        elif name in PREPROCESS_VALUES:
            if not isinstance(value, (int, float)) or isinstance(value, bool) or value <= 0:
                raise InputError(path, f"{name}: expected a positive number, found {value!r}")
            if name == "percentile" and value > 100:
                raise InputError(path, f"percentile: expected at most 100, found {value!r}")
            params[name] = PREPROCESS_VALUES[name](value)
        else:
            known = ", ".join([*PREPROCESS_SWITCHES, *PREPROCESS_VALUES])
            raise InputError(path, f"unknown preprocessing parameter {name!r} (known: {known})")
    return params


def _postprocess_params(path: Path) -> dict:
    """WatershedParams per compartment: DeepCell's defaults updated with the file's values."""
    from dataclasses import fields, replace

    from steinbock_like.errors import InputError
    from steinbock_like.io.params import read_yaml_params
    from steinbock_like.segment.mesmer.postprocess import (
        NUCLEAR_PARAMS,
        WHOLE_CELL_PARAMS,
        WatershedParams,
    )

    params = read_yaml_params(path)
    known = {field.name: field.type for field in fields(WatershedParams)}
    for name, value in params.items():
        if name not in known:
            raise InputError(
                path, f"unsupported postprocessing parameter {name!r} (known: {', '.join(known)})"
            )
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            raise InputError(path, f"{name}: expected a number, found {value!r}")
    return {
        "whole-cell": replace(WHOLE_CELL_PARAMS, **params),
        "nuclear": replace(NUCLEAR_PARAMS, **params),
    }
