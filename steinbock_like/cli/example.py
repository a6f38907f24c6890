"""``steinbock-like example``: synthetic datasets to try the toolkit on."""

from __future__ import annotations

import logging
from pathlib import Path

import click

from steinbock_like.cli.options import AppContext, pass_app

logger = logging.getLogger("steinbock_like")


@click.group(name="example", help="Write example datasets in the standard layout.")
def example_group() -> None:
    pass


@example_group.command(
    name="imc",
    help="""Write a synthetic imaging-mass-cytometry dataset into DIR.

    DIR receives panel.csv (with ilastik, deepcell and cellpose channel groups),
    img/*.tiff (float32 CYX: nuclear, membrane and cytoplasmic markers over
    touching cells, background, empty regions and Poisson noise) and the ground
    truth masks_truth/ (cells) and masks_truth_nuclei/ (nuclei, same IDs).
    Channels are written one at a time, so large images fit in little memory.
    A relative DIR is resolved against --data.
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
    type=click.IntRange(min=3),
    default=10,
    show_default=True,
    help="Number of channels (markers).",
)
@click.option(
    "--seed",
    type=int,
    default=0,
    show_default=True,
    help="Random seed; the same seed gives the same dataset.",
)
@pass_app
def example_imc_cmd(
    app: AppContext, directory: Path, images: int, size: int, channels: int, seed: int
) -> None:
    from steinbock_like.example import write_example_imc

    out_dir = app.path(directory)
    summary = write_example_imc(out_dir, images=images, size=size, channels=channels, seed=seed)
    logger.info("wrote %s", summary)
