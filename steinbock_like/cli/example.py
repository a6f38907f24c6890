"""``steinbock-like example``: synthetic datasets to try the toolkit on."""

from __future__ import annotations

import logging
from pathlib import Path

import click

from steinbock_like import layout
from steinbock_like.cli.options import AppContext, pass_app, run_jobs, runner_options
from steinbock_like.errors import OutputExistsError

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
@runner_options
@pass_app
def example_imc_cmd(
    app: AppContext,
    directory: Path,
    images: int,
    size: int,
    channels: int,
    seed: int,
    workers: int,
    overwrite: bool,
    resume: bool,
) -> None:
    from steinbock_like.example import example_image_names, example_panel, select_markers
    from steinbock_like.io.panel import write_panel
    from steinbock_like.runner import Job
    from steinbock_like.tasks.example import ExampleImageTask

    root = app.path(directory)
    panel_path = root / layout.PANEL
    if panel_path.exists() and not (overwrite or resume):
        raise OutputExistsError(
            f"{panel_path} exists already: use --overwrite to replace the dataset "
            "or --resume to complete it"
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
    run_jobs(
        ExampleImageTask(root, size, channels, seed),
        jobs,
        command="example imc",
        parameters={"images": images, "size": size, "channels": channels, "seed": seed},
        workers=workers,
        overwrite=overwrite,
        resume=resume,
    )
    logger.info("example imc: %d images of %d x %d x %d in %s", images, channels, size, size, root)
