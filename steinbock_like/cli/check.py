"""``steinbock-like check``: validate a dataset before a long run."""

from __future__ import annotations

import logging
from pathlib import Path

import click

from steinbock_like import layout
from steinbock_like.cli.options import AppContext, img_option, panel_option, pass_app
from steinbock_like.errors import InputError, SteinbockLikeError

logger = logging.getLogger("steinbock_like")


@click.command(
    name="check",
    help="""Check that a dataset's files are consistent, without writing anything.

    Reads the panel, every image's header (channel count) and, for each --masks
    directory, every mask (shape against its image, object ID dtype), and
    reports each problem on one line naming the file. Exits non-zero if any
    problem was found.
    """,
)
@panel_option()
@img_option()
@click.option(
    "--masks",
    "mask_dirs",
    multiple=True,
    type=click.Path(path_type=Path),
    help="A mask directory to check against the images (repeatable).",
)
@pass_app
def check_cmd(app: AppContext, panel_file: Path, img_dir: Path, mask_dirs: tuple[Path, ...]):
    from steinbock_like.io.images import image_name, image_shape, list_images
    from steinbock_like.io.masks import read_mask
    from steinbock_like.io.pairs import match_by_name
    from steinbock_like.io.panel import panel_for_image, read_panel

    problems: list[str] = []
    panel = read_panel(app.path(panel_file))
    images = list_images(app.path(img_dir))
    shapes = {}
    for path in images:
        try:
            shape = image_shape(path)
            panel_for_image(panel, shape[0], path)
            shapes[image_name(path)] = shape[1:]
        except InputError as error:
            problems.append(str(error))
    for mask_dir in mask_dirs:
        try:
            pairs = match_by_name(app.path(img_dir), app.path(mask_dir))
        except InputError as error:
            problems.append(str(error))
            continue
        for name, _, mask_path in pairs:
            if name not in shapes:
                continue
            try:
                read_mask(mask_path, shape=shapes[name])
            except InputError as error:
                problems.append(str(error))
    for problem in problems:
        click.echo(problem, err=True)
    if problems:
        raise SteinbockLikeError(f"{len(problems)} problem(s) found")
    logger.info(
        "%s: %d images consistent with %s%s",
        layout.IMG if img_dir == Path(layout.IMG) else img_dir,
        len(images),
        panel_file,
        f" and {len(mask_dirs)} mask director{'y' if len(mask_dirs) == 1 else 'ies'}"
        if mask_dirs
        else "",
    )
