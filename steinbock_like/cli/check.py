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

    Reads the panel, every image's header (channel count, size: images too
    large to hold whole, or too thin to segment, are reported; see
    STEINBOCK_LIKE_MAX_IMAGE_BYTES), the
    pixels of floating-point images (NaN or infinite values are reported), the
    image names (names too long for the outputs named after them) and, for each
    --masks directory, every mask (shape against its image, object ID dtype),
    and reports each problem on one line naming the file. Exits non-zero if any
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
    import numpy as np

    from steinbock_like.io.images import (
        check_image_size,
        check_segmentable,
        image_name,
        image_shape,
        iter_image_channels,
        list_images,
    )
    from steinbock_like.io.masks import read_mask
    from steinbock_like.io.pairs import match_by_name
    from steinbock_like.io.panel import panel_for_image, read_panel
    from steinbock_like.io.tiff import tiff_dtype

    problems: list[str] = []
    panel = read_panel(app.path(panel_file))
    images = list_images(app.path(img_dir))
    shapes = {}
    named: dict[str, Path] = {}
    for path in images:
        if named.setdefault(image_name(path), path) != path:
            problems.append(
                f"{path}: another image has the name {image_name(path)!r} "
                f"({named[image_name(path)].name}); outputs named after it would collide"
            )
            continue
        try:
            shape = image_shape(path)
            panel_for_image(panel, shape[0], path)
            shapes[image_name(path)] = shape[1:]
            check_output_names(path)
            check_image_size(path, shape)
            check_segmentable(path, shape)
            if np.issubdtype(tiff_dtype(path), np.floating):
                for _ in iter_image_channels(path):  # raises on NaN/Inf, a channel at a time
                    pass
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


#: Bytes a file name may have on the usual file systems (ext4, XFS, APFS, NTFS).
NAME_MAX = 255
#: The longest suffix an output named after an image gets: an ilastik crop,
#: ``{image}_x{X}_y{Y}_w{W}_h{H}.h5`` with 5-digit positions and sizes.
LONGEST_OUTPUT_SUFFIX = "_x00000_y00000_w00000_h00000.h5"


def check_output_names(path: Path) -> None:
    """Refuse an image whose name is too long (or not encodable) for the outputs named after it."""
    import os

    from steinbock_like.io.images import image_name

    name = image_name(path)
    try:
        name.encode("utf-8")
    except UnicodeError:
        raise InputError(
            os.fsencode(path).decode("utf-8", "backslashreplace"),
            "the name is not valid UTF-8 text (undecodable bytes); rename the file",
        ) from None
    length = len(os.fsencode(name + LONGEST_OUTPUT_SUFFIX))
    if length > NAME_MAX:
        raise InputError(
            path,
            f"image name is {len(os.fsencode(name))} bytes long: outputs named after it "
            f"(e.g. ilastik crops, NAME{LONGEST_OUTPUT_SUFFIX}) would exceed the "
            f"{NAME_MAX}-byte limit of file names; rename it",
        )
