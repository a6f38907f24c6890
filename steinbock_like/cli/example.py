"""``steinbock-like example``: synthetic datasets to try the toolkit on."""

from __future__ import annotations

import logging
from pathlib import Path

import click

from steinbock_like import layout
from steinbock_like.cli.options import AppContext, pass_app, path_option, run_jobs, runner_options
from steinbock_like.errors import SteinbockLikeError

logger = logging.getLogger("steinbock_like")

# Kept in step with steinbock_like.example (tested); not imported so that --help stays fast.
MIN_CHANNELS, MAX_CHANNELS = 3, 45


@click.group(name="example", help="Write example datasets in the standard layout.")
def example_group() -> None:
    pass


@example_group.command(
    name="imc",
    help="""Write a synthetic imaging-mass-cytometry dataset into DIRECTORY.

    DIRECTORY receives panel.csv (with ilastik, deepcell and cellpose channel
    groups), img/example_NNN.tiff (float32 CYX: nuclear, membrane and
    cytoplasmic markers over touching cells of several types, background,
    empty regions and Poisson noise) and the ground truth masks_truth/ (cells)
    and masks_truth_nuclei/ (nuclei, with their cell's ID). Channels are
    written one at a time, so large images need little memory (about 1 GB at
    5000 x 5000). A relative DIRECTORY is resolved against --data.
    """,
)
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--images", type=click.IntRange(min=1), default=3, show_default=True, help="Number of images."
)
@click.option(
    "--size",
    type=click.IntRange(min=32),
    default=256,
    show_default=True,
    help="Image width and height in pixels.",
)
@click.option(
    "--channels",
    type=click.IntRange(MIN_CHANNELS, MAX_CHANNELS),
    default=10,
    show_default=True,
    help="Number of channels (markers); at least one nuclear and one membrane marker.",
)
@click.option(
    "--seed",
    type=int,
    default=0,
    show_default=True,
    help="Random seed; the same seed gives the same dataset.",
)
@click.option(
    "--raw",
    is_flag=True,
    help="Also write raw/: each image as an IMC .txt file and raw/panel.csv in the IMC "
    "segmentation pipeline's format (input of 'preprocess imc').",
)
@runner_options
@pass_app
def example_imc_cmd(
    app: AppContext,
    directory: Path,
    images: int,
    size: int,
    channels: int,
    seed: int,
    raw: bool,
    workers: int,
    overwrite: bool,
    resume: bool,
) -> None:
    from steinbock_like.example import example_image_names, example_panel, select_markers
    from steinbock_like.io.panel import write_panel
    from steinbock_like.runner import Job, check_single_output
    from steinbock_like.tasks.example import ExampleImageTask

    root = app.path(directory)
    panel_path = root / layout.PANEL
    check_single_output(
        panel_path, overwrite=overwrite or resume, why=" (use --resume to complete the dataset)"
    )
    write_panel(panel_path, example_panel(select_markers(channels)))
    jobs = [
        Job(
            name,
            outputs={
                "image": root / layout.IMG / f"{name}.tiff",
                "cells": root / layout.MASKS_TRUTH / f"{name}{layout.MASK_SUFFIX}",
                "nuclei": root / layout.MASKS_TRUTH_NUCLEI / f"{name}{layout.MASK_SUFFIX}",
            },
            params={"index": index},
        )
        for index, name in enumerate(example_image_names(images))
    ]
    if raw:  # the raw .txt file is the job's last output (for --resume)
        from steinbock_like.io.imc import write_raw_panel

        write_raw_panel(root / layout.RAW_PANEL, example_panel(select_markers(channels)))
        for job in jobs:
            job.outputs["raw"] = root / layout.RAW / f"{job.name}.txt"
    run_jobs(
        ExampleImageTask(root, size, channels, seed, raw=raw),
        jobs,
        command="example imc",
        workers=workers,
        overwrite=overwrite,
        resume=resume,
        resume_ignores=("images", "raw"),
    )
    logger.info("example imc: %d images of %d x %d x %d in %s", images, channels, size, size, root)


@example_group.command(
    name="brightfield",
    help="""Write synthetic brightfield (H&E-like) slides with ground truth to DIRECTORY.

    RGB slides as 3-channel images (img/, panel.csv with the channels red,
    green, blue): haematoxylin nuclei in eosin tissue, bright glass around it;
    the truth in masks_truth_nuclei/ and tissue_truth/. Input for the IHC route:
    'segment cellpose --stain hed' or panel_examples/configs/ihc_cellpose_hed.yaml.
    """,
)
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@click.option("--images", type=click.IntRange(min=1), default=2, show_default=True,
              help="Number of slides.")  # fmt: skip
@click.option("--size", type=click.IntRange(min=32), default=256, show_default=True,
              help="Width and height in pixels.")  # fmt: skip
@click.option("--seed", type=int, default=0, show_default=True, help="Random seed.")
@click.option("--overwrite", is_flag=True, help="Replace an existing example's files.")
@pass_app
def example_brightfield_cmd(
    app: AppContext, directory: Path, images: int, size: int, seed: int, overwrite: bool
) -> None:
    from steinbock_like.example.brightfield import write_example_brightfield
    from steinbock_like.runner import check_single_output

    root = app.path(directory)
    check_single_output(root / layout.PANEL, overwrite=overwrite)
    names = write_example_brightfield(root, images=images, size=size, seed=seed)
    logger.info("example brightfield: %d slides of %d x %d px in %s", len(names), size, size, root)


@example_group.command(
    name="ilastik-labels",
    help="""Paint training labels from the ground truth into an ilastik project.

    For the example dataset only: after 'classify ilastik prepare', labels a
    random share (--fraction) of each crop's pixels as Nucleus, Cytoplasm or
    Background from masks_truth/ and masks_truth_nuclei/ (away from object
    boundaries), so that 'classify ilastik run --backend native' can train
    and run a classifier with no GUI step. Existing labels are replaced.
    """,
)
@path_option("--ilp", "project_file", default=layout.ILASTIK_PROJECT, help="Project to label.")
@path_option("--truth", "truth_dir", default=layout.MASKS_TRUTH, help="Ground-truth cell masks.")
@path_option(
    "--truth-nuclei",
    "truth_nuclei_dir",
    default=layout.MASKS_TRUTH_NUCLEI,
    help="Ground-truth nuclear masks.",
)
@click.option(
    "--scale",
    type=click.IntRange(min=1),
    default=2,
    show_default=True,
    help="Scale of the crops relative to the images (prepare --scale).",
)
@click.option(
    "--fraction",
    type=click.FloatRange(0, 1, min_open=True),
    default=0.1,
    show_default=True,
    help="Share of the eligible pixels to label.",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Random seed.")
@pass_app
def example_ilastik_labels_cmd(
    app: AppContext, project_file, truth_dir, truth_nuclei_dir, scale, fraction, seed
) -> None:
    import numpy as np

    from steinbock_like.classify.ilastik.prepare import parse_crop_file_name
    from steinbock_like.classify.ilastik.project import write_training_labels
    from steinbock_like.example.labels import crop_training_labels
    from steinbock_like.io.ilastik_project import read_project
    from steinbock_like.io.masks import read_mask

    project_path = app.path(project_file)
    if not project_path.is_file():
        raise SteinbockLikeError(
            f"{project_path}: project not found (run classify ilastik prepare)"
        )
    rng = np.random.default_rng(seed)
    labels_by_lane = {}
    for index, lane in enumerate(read_project(project_path).lanes):
        if lane is None:
            continue
        name, x, y, width, height = parse_crop_file_name(lane.file_path)
        cells, nuclei = (
            read_mask(app.path(directory) / f"{name}{layout.MASK_SUFFIX}")
            for directory in (truth_dir, truth_nuclei_dir)
        )
        labels_by_lane[index] = crop_training_labels(
            cells, nuclei, (y, x, height, width), scale, rng, fraction=fraction
        )
    pixels = write_training_labels(project_path, labels_by_lane)
    logger.info("%s: %d pixels labelled in %d crops", project_path, pixels, len(labels_by_lane))
