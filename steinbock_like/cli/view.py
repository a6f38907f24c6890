"""``steinbock-like view``: steinbock's napari viewer command, through ``apps napari``."""

from __future__ import annotations

import click

from steinbock_like import layout
from steinbock_like.cli.apps import PASS_THROUGH, display_options
from steinbock_like.cli.options import AppContext, pass_app, path_option


@click.command(
    name="view",
    context_settings=PASS_THROUGH,
    help="""Show image IMG_FILE_NAME (in --img) in napari: one layer per channel named
    from the panel, and its masks from each --masks directory as label layers
    (steinbock's 'view'; the same as 'apps napari').""",
)
@display_options
@path_option("--img", "img_dir", default=layout.IMG, help="Image directory.")
@click.option(
    "--masks",
    "mask_dirs",
    multiple=True,
    default=[layout.MASKS],
    help=f"Mask directory (repeatable) [default: {layout.MASKS}].",
)
@path_option("--panel", "panel_file", default=layout.PANEL, help="Panel CSV file.")
@click.option(
    "--pixelsize",
    type=float,
    default=1.0,
    show_default=True,
    help="Pixel size in micrometres (accepted for steinbock; layers are shown in pixels).",
)
@click.argument("img_file_name")
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
@pass_app
def view_cmd(
    app: AppContext, img_dir, mask_dirs, panel_file, pixelsize, img_file_name, args, **display
):
    from steinbock_like.apps.launchers import napari_command
    from steinbock_like.cli.apps import _run

    data_dir = app.data_dir.resolve()
    argv = [str(app.path(img_dir).resolve() / img_file_name)]
    for directory in mask_dirs:
        argv += ["--masks", str(app.path(directory).resolve())]
    _run(napari_command([*argv, *args], data_dir, app.path(panel_file).resolve()), **display)
