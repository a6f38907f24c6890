"""``steinbock-like segment cellpose``: Cellpose on multiplexed or brightfield images."""

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
from steinbock_like.errors import InputError, SteinbockLikeError
from steinbock_like.runner import Job

logger = logging.getLogger("steinbock_like")


CELLPOSE_HELP = """Segment cells with Cellpose (3.x or 4.x, detected at run time).

\b
Multiplexed images (default): the panel's 'cellpose' column groups channels:
  1 = cytoplasm/membrane signal (segmented), 2 = nuclear signal (helper).
Each group's channels are optionally normalised one by one (--minmax or
--zscore) and aggregated (--aggr, mean by default). A panel with only group 2
segments the nuclear signal (e.g. with --model nuclei).

\b
Brightfield IHC/H&E (--stain hed): RGB TIFFs are deconvolved into
haematoxylin, eosin and DAB; the haematoxylin channel (nuclei bright,
histogram-equalised) is segmented.

With --tissue-masks DIR (binary masks NAME.tiff of the region of interest, same
size as the image) only the tissue's bounding box is segmented and objects
outside the tissue are removed; masks stay in full-image coordinates.

Cohorts: --images-from LIST reads the images from a CSV/SQLite list of
paths or http(s) URLs (downloaded once into --cache; tissue masks from
--mask-column), names the outputs by image ID, and --run-version NAME keeps
the run in runs/NAME/ (see docs/cohorts.md).

Models are never downloaded here: get them once with 'steinbock-like models
get cyto3' (cyto3, cyto2, cyto, nuclei with Cellpose 3; cpsam with Cellpose 4).
A name is looked up in the model cache (verified), then in Cellpose's model
directory ($CELLPOSE_LOCAL_MODELS_PATH, else ~/.cellpose/models; also a user
model's file name); --model PATH loads a custom model. The model, its SHA-256
and the Cellpose version go into run_metadata.json.

Images larger than --block-size are segmented block by block with
--block-overlap px of context, each cell kept by the block holding its centre,
so memory stays bounded whatever the image size. With Cellpose 3, each block is
evaluated on the whole image's network tiles (resized by --diameter as Cellpose
resizes the whole image) and gives the whole image's objects; with Cellpose 4,
--augment or --invert, blocks see their own tiles and a few percent of the
objects differ slightly from a whole-image run.
"""


@click.command(
    name="cellpose", help=CELLPOSE_HELP, short_help="Segment cells with Cellpose (3.x or 4.x)."
)
@click.option(
    "--model",
    "model",
    default=None,
    metavar="NAME|PATH",
    help="Cellpose model name or weights file [default: cyto3 with Cellpose 3, cpsam with 4].",
)
@click.option(
    "--diameter",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    metavar="PX",
    help="Typical cell diameter in pixels [default: the model's own].",
)
@click.option(
    "--flow-threshold",
    type=float,
    default=0.4,
    show_default=True,
    help="Maximum flow error of a kept object (higher: more objects).",
)
@click.option(
    "--cellprob-threshold",
    type=float,
    default=0.0,
    show_default=True,
    help="Cell probability threshold (lower: more and larger objects).",
)
@click.option(
    "--min-size",
    type=click.IntRange(min=0),
    default=15,
    show_default=True,
    help="Objects smaller than this (px) are removed.",
)
@click.option(
    "--batch-size",
    type=click.IntRange(min=1),
    default=8,
    show_default=True,
    help="Network tiles evaluated at once.",
)
@click.option(
    "--tile-overlap",
    type=click.FloatRange(0, 1, max_open=True),
    default=0.1,
    show_default=True,
    help="Overlap between network tiles (fraction).",
)
@click.option(
    "--block-size",
    type=click.IntRange(min=0),
    default=2048,
    show_default=True,
    help="Segment larger images in blocks of this size (px), bounding memory; 0: whole image.",
)
@click.option(
    "--block-overlap",
    type=click.IntRange(min=0),
    default=64,
    show_default=True,
    help="Context (px) around each block; make it larger than the largest cell.",
)
@click.option(
    "--tile-min-signal",
    "tile_min_signal",
    type=click.FloatRange(min=0),
    default=0.0,
    show_default=True,
    help="Blocks whose mean signal is below this hold no tissue: skipped, and counted in "
    "run_metadata.json; 0: none skipped.",
)
@click.option("--gpu/--no-gpu", default=False, show_default=True, help="Run on a GPU.")
@click.option(
    "--resample/--no-resample",
    default=False,
    show_default=True,
    help="Compute masks from flows resized to the image (Cellpose's default) instead of at "
    "the network's scale (steinbock's default); matters where the scale is not 1.",
)
@click.option(
    "--normalize/--no-normalize",
    default=True,
    show_default=True,
    help="Stretch each channel between its 1st and 99th percentiles before the network.",
)
@click.option(
    "--invert/--no-invert",
    default=False,
    show_default=True,
    help="Invert the normalised channels (for dark cells).",
)
@click.option(
    "--rescale",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="Resize factor for the network, used without --diameter [default: the model's].",
)
@click.option(
    "--max-size-fraction",
    type=click.FloatRange(min=0, min_open=True),
    default=0.4,
    show_default=True,
    help="Masks larger than this fraction of the image are removed.",
)
@click.option(
    "--niter",
    type=click.IntRange(min=0),
    default=None,
    help="Iterations of the flow dynamics [default: Cellpose's, from the scale; 0: same].",
)
@click.option(
    "--augment/--no-augment",
    default=False,
    show_default=True,
    help="Test-time augmentation (flipped tiles; slower).",
)
@normalization_options
@aggregation_option()
@click.option(
    "--stain",
    type=click.Choice(["hed"]),
    default=None,
    help="Brightfield stain of RGB input images (hed: segment the haematoxylin).",
)
@click.option(
    "--tissue-masks",
    "tissue_dir",
    type=click.Path(path_type=Path),
    default=None,
    help="Directory of tissue masks (NAME.tiff, nonzero = tissue) to segment within.",
)
@click.option(
    "--figures",
    "figures_dir",
    type=click.Path(path_type=Path),
    default=None,
    help="Write one PNG per image here: input, preprocessed channel(s) (the haematoxylin "
    "with --stain hed), the tissue mask (with tissue masks), outlines.",
)
@click.option(
    "--mask-format",
    type=click.Choice(["tiff", "npz"]),
    default="tiff",
    show_default=True,
    help="Masks as TIFF, or as compressed NumPy files (NAME.npz, for cohorts of many "
    "small images; read by every command that reads masks).",
)
@img_option()
@panel_option()
@path_option("-o", "--masks", "masks_dir", default=layout.MASKS, help="Output cell masks.")
@image_source_options
@runner_options
@pass_app
def cellpose_cmd(
    app: AppContext,
    model: str | None,
    diameter: float | None,
    flow_threshold: float,
    cellprob_threshold: float,
    min_size: int,
    batch_size: int,
    tile_overlap: float,
    block_size: int,
    block_overlap: int,
    tile_min_signal: float,
    gpu: bool,
    resample: bool,
    normalize: bool,
    invert: bool,
    rescale: float | None,
    max_size_fraction: float,
    niter: int | None,
    augment: bool,
    minmax: bool,
    zscore: bool,
    aggr: str,
    stain: str | None,
    tissue_dir: Path | None,
    figures_dir: Path | None,
    mask_format: str,
    img_dir: Path,
    panel_file: Path,
    masks_dir: Path,
    workers: int,
    overwrite: bool,
    resume: bool,
) -> None:
    from steinbock_like.channels import aggregation_function
    from steinbock_like.io.masks import MASK_FORMATS
    from steinbock_like.models import (
        default_cellpose_model,
        resolve_cellpose_model,
        sha256_of_file,
    )
    from steinbock_like.runner import threads_per_worker
    from steinbock_like.segment import cellpose as cp
    from steinbock_like.tasks.cellpose import CellposeTask

    if minmax and zscore:
        raise SteinbockLikeError("--minmax and --zscore exclude each other: choose one")
    if invert and not normalize:
        raise SteinbockLikeError("--invert needs --normalize (Cellpose inverts normalised images)")
    version = cp.cellpose_version()
    major = cp.api_major(version)
    model_file = resolve_cellpose_model(model or default_cellpose_model(major), major=major)

    panel = None
    if stain is None:
        from steinbock_like.io.panel import read_panel

        panel = read_panel(app.path(panel_file))
        cp.cellpose_groups(panel)  # fail now, not once per image
        aggregation_function(aggr)

    outputs = {"mask": (app.output(masks_dir), MASK_FORMATS[mask_format])}
    if figures_dir is not None:
        outputs["figure"] = (app.output(figures_dir), ".png")
    jobs = []
    for job in image_jobs(app, img_dir, outputs, mask_key=None if tissue_dir else "tissue"):
        inputs = dict(job.inputs)
        if tissue_dir is not None:
            inputs["tissue"] = _tissue_mask_path(app.path(tissue_dir), job.name)
        jobs.append(Job(job.name, inputs, job.outputs, job.params))

    settings = cp.CellposeSettings(
        diameter=diameter,
        flow_threshold=flow_threshold,
        cellprob_threshold=cellprob_threshold,
        min_size=min_size,
        batch_size=batch_size,
        tile_overlap=tile_overlap,
        gpu=gpu,
        resample=resample,
        normalize=normalize,
        invert=invert,
        rescale=rescale,
        max_size_fraction=max_size_fraction,
        niter=niter,
        augment=augment,
    )
    task = CellposeTask(
        model_file.path,
        settings,
        panel=panel,
        normalize="minmax" if minmax else "zscore" if zscore else None,
        aggr=aggr,
        stain=stain,
        threads=threads_per_worker(workers) if workers > 1 else None,
        block_size=block_size,
        block_overlap=block_overlap,
        tile_min_signal=tile_min_signal,
    )
    model_record = {
        "name": model_file.name,
        "path": str(model_file.path),
        "builtin": model_file.builtin,
        "sha256": sha256_of_file(model_file.path),
        "cellpose": version,
        "api": f"{major}.x",
    }
    summary = run_jobs(
        task,
        jobs,
        command="segment cellpose",
        workers=workers,
        overwrite=overwrite,
        resume=resume,
        resolved={"model": model_file.name, "normalize": task.normalize},
        extra_metadata={"model": model_record},
    )
    objects = sum(r.info.get("objects", 0) for r in summary.results if r.info)
    logger.info(
        "segment cellpose: %d objects in %d images; masks in %s",
        objects,
        summary.count("ok"),
        app.output(masks_dir),
    )


def _tissue_mask_path(directory: Path, name: str) -> Path:
    """The tissue mask of image ``name``: NAME.tiff or NAME.tif in ``directory``."""
    for suffix in layout.IMAGE_SUFFIXES:
        candidate = directory / f"{name}{suffix}"
        if candidate.is_file():
            return candidate
    raise InputError(directory / f"{name}{layout.MASK_SUFFIX}", "tissue mask not found")
