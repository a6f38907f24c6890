"""``steinbock-like utils``: steinbock's mask and image utilities."""

from __future__ import annotations

import logging
from pathlib import Path

import click

from steinbock_like.cli.options import AppContext, pass_app, run_jobs, runner_options

logger = logging.getLogger("steinbock_like")


@click.group(name="utils", help="Utilities: expand and match masks, tile and stitch mosaics.")
def utils_group() -> None:
    pass


def _mask_files(app: AppContext, value: str) -> list[Path]:
    from steinbock_like.io.images import list_images

    path = app.path(value)
    return [path] if path.is_file() else list_images(path, "mask")


@utils_group.command(
    name="expand",
    help="""Grow the objects of the masks in MASKS (a directory or one file) by DISTANCE
    pixels (Euclidean), without merging objects. Written to -o, or in place
    (with --overwrite) without it.""",
)
@click.argument("masks")
@click.argument("distance", type=click.FloatRange(min=0))
@click.option("-o", "out_dir", default=None, help="Output directory [default: MASKS itself].")
@runner_options
@pass_app
def expand_cmd(app: AppContext, masks, distance, out_dir, workers, overwrite, resume):
    from steinbock_like.runner import jobs_for, named_files
    from steinbock_like.tasks.utils import ExpandTask

    files = _mask_files(app, masks)
    target = app.path(out_dir) if out_dir else files[0].parent if files else app.path(masks)
    jobs = jobs_for(named_files(files, "mask"), {"mask": target})
    if out_dir is None:  # steinbock's default: grow the masks in place
        for job in jobs:
            job.params["in_place"] = True
    run_jobs(
        ExpandTask(distance),
        jobs,
        command="utils expand",
        workers=workers,
        overwrite=overwrite,
        resume=resume,
    )
    logger.info("expanded masks in %s", target)


@utils_group.command(
    name="match",
    help="""Pairs of overlapping objects of MASKS1 and MASKS2 (directories with masks of
    the same names, or two files): one CSV per mask in -o, with the two masks'
    names as column names.""",
)
@click.argument("masks1")
@click.argument("masks2")
@click.option("-o", "out_dir", required=True, help="Output directory of the CSV tables.")
@runner_options
@pass_app
def match_cmd(app: AppContext, masks1, masks2, out_dir, workers, overwrite, resume):
    from steinbock_like.io.pairs import match_by_name
    from steinbock_like.runner import Job, jobs_for
    from steinbock_like.tasks.utils import MatchTask

    path1, path2 = app.path(masks1), app.path(masks2)
    columns = (path1.name, path2.name)
    if path1.is_file() and path2.is_file():
        name = path1.name.rsplit(".", 1)[0]
        jobs = [
            Job(
                name,
                {"mask1": path1, "mask2": path2},
                {"table": app.path(out_dir) / f"{name}.csv"},
            )
        ]
    else:
        pairs = match_by_name(path1, path2, kinds=("mask", "mask"))
        named = [(name, {"mask1": first, "mask2": second}) for name, first, second in pairs]
        jobs = jobs_for(named, {"table": (app.path(out_dir), ".csv")})
    run_jobs(
        MatchTask(columns),
        jobs,
        command="utils match",
        workers=workers,
        overwrite=overwrite,
        resume=resume,
    )
    logger.info("object pairs in %s", app.path(out_dir))


@utils_group.group(name="mosaics", help="Cut images into tiles and stitch tiles back.")
def mosaics_group() -> None:
    pass


@mosaics_group.command(
    name="tile",
    help="""Cut IMAGES (TIFF files or directories of them) into tiles of --size pixels,
    named NAME_tx{x}_ty{y}_tw{width}_th{height}.tiff, in their own dtype.""",
)
@click.argument("images", nargs=-1)
@click.option("--size", "size", type=click.IntRange(min=1), required=True, help="Tile size.")
@click.option("-o", "out_dir", required=True, help="Output directory of the tiles.")
@runner_options
@pass_app
def tile_cmd(app: AppContext, images, size, out_dir, workers, overwrite, resume):
    from steinbock_like.io.images import image_name
    from steinbock_like.io.mosaics import collect_tiff_files
    from steinbock_like.io.tiff import tiff_shape
    from steinbock_like.runner import Job
    from steinbock_like.tasks.utils import TileTask
    from steinbock_like.utils import tile_grid, tile_name

    jobs = []
    for path in collect_tiff_files(app.path(image) for image in images):
        name = image_name(path)
        shape = tiff_shape(path)
        if shape[-1] % size == 1 or shape[-2] % size == 1:
            logger.warning("%s: --size %d leaves tiles 1 pixel wide or high", path, size)
        outputs = {}
        for tile in tile_grid(shape, size):
            stem = tile_name(name, tile)
            outputs[stem] = app.path(out_dir) / f"{stem}.tiff"
        jobs.append(Job(name, {"image": path}, outputs))
    run_jobs(
        TileTask(size),
        jobs,
        command="utils mosaics tile",
        workers=workers,
        overwrite=overwrite,
        resume=resume,
    )
    logger.info("tiles in %s", app.path(out_dir))


@mosaics_group.command(
    name="stitch",
    help="""Stitch TILES (files or directories named as 'tile' names them) into one image
    per name in -o; --relabel numbers the objects of stitched masks anew.""",
)
@click.argument("tiles", nargs=-1)
@click.option(
    "--relabel/--no-relabel",
    default=False,
    show_default=True,
    help="Relabel connected objects (first channel) after stitching.",
)
@click.option("-o", "out_dir", required=True, help="Output directory of the images.")
@runner_options
@pass_app
def stitch_cmd(app: AppContext, tiles, relabel, out_dir, workers, overwrite, resume):
    from steinbock_like.errors import InputError
    from steinbock_like.io.mosaics import collect_tiff_files
    from steinbock_like.runner import Job
    from steinbock_like.tasks.utils import StitchTask
    from steinbock_like.utils import parse_tile_name

    groups: dict[str, dict[str, Path]] = {}
    for path in collect_tiff_files(app.path(tile) for tile in tiles):
        info = parse_tile_name(path.name.rsplit(".", 1)[0])
        if info is None:
            raise InputError(path, "not a tile name (NAME_tx{x}_ty{y}_tw{w}_th{h}.tiff)")
        groups.setdefault(info.name, {})[path.name] = path
    jobs = [
        Job(name, inputs, {"image": app.path(out_dir) / f"{name}.tiff"})
        for name, inputs in groups.items()
    ]
    run_jobs(
        StitchTask(relabel),
        jobs,
        command="utils mosaics stitch",
        workers=workers,
        overwrite=overwrite,
        resume=resume,
    )
    logger.info("stitched images in %s", app.path(out_dir))
