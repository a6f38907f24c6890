"""``steinbock-like apps``: GUI apps on X11 or in the web browser, and Jupyter."""

from __future__ import annotations

import functools
import sys
from pathlib import Path

import click

from steinbock_like import layout
from steinbock_like.cli.options import AppContext, pass_app

PASS_THROUGH = {"ignore_unknown_options": True, "allow_extra_args": True}

HELP = """Run ilastik, CellProfiler, napari or Jupyter on the data directory.

\b
Where windows go (--display):
  x11   the X11 display in $DISPLAY (with Docker: -e DISPLAY -v /tmp/.X11-unix:/tmp/.X11-unix)
  vnc   a virtual desktop shown in the web browser: open the printed
        http://localhost:PORT/vnc.html address (with Docker, publish it on this
        machine only: -p 127.0.0.1:6080:6080 -e STEINBOCK_LIKE_BIND=0.0.0.0;
        from another machine use an SSH tunnel: ssh -L 6080:localhost:6080 HOST)
  auto  x11 where a display answers, vnc otherwise (default)

Arguments the command does not know are passed to the app unchanged (put them
after -- where they look like our options).
"""


def display_options(function):
    """``--display``, ``--vnc-port``, ``--vnc-password``, ``--geometry``, ``--gl``."""

    @click.option(
        "--display",
        "display_mode",
        type=click.Choice(["auto", "x11", "vnc"]),
        default="auto",
        show_default=True,
        envvar="STEINBOCK_LIKE_DISPLAY",
        help="Where the app's windows go [env: STEINBOCK_LIKE_DISPLAY].",
    )
    @click.option(
        "--vnc-port",
        type=click.IntRange(1, 65535),
        default=6080,
        show_default=True,
        envvar="STEINBOCK_LIKE_VNC_PORT",
        help="Web port of the browser desktop (vnc) [env: STEINBOCK_LIKE_VNC_PORT].",
    )
    @click.option(
        "--vnc-password/--no-vnc-password",
        default=True,
        show_default=True,
        help="Protect the browser desktop with a one-time password (part of the printed URL). "
        "--no-vnc-password leaves it open to anyone who reaches the port (a warning is "
        "printed).",
    )
    @click.option(
        "--geometry",
        default="1600x1000x24",
        show_default=True,
        help="Screen size of the browser desktop, WIDTHxHEIGHTxDEPTH.",
    )
    @click.option(
        "--gl",
        type=click.Choice(["software", "host"]),
        default="software",
        show_default=True,
        help="OpenGL on the CPU (Mesa llvmpipe: no GPU or host driver needed) or the system's.",
    )
    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        return function(*args, **kwargs)

    return wrapper


def _run(
    command, display_mode="auto", vnc_port=6080, vnc_password=True, geometry="", gl="software"
):
    from steinbock_like.apps.launch import run_app

    status = run_app(
        command,
        display=display_mode,
        vnc_port=vnc_port,
        vnc_password=vnc_password,
        geometry=geometry or "1600x1000x24",
        gl=gl,
        announce=lambda message: click.echo(message, err=True),
    )
    if status:
        # The app's own status (130 after Ctrl-C); click's Exit is swallowed outside
        # standalone mode, SystemExit is not.
        sys.exit(status)


@click.group("apps", help=HELP)
def apps_group() -> None:
    pass


@apps_group.command("ilastik", context_settings=PASS_THROUGH)
@display_options
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
@pass_app
def ilastik_cmd(app: AppContext, args: tuple[str, ...], **display) -> None:
    """ilastik's GUI ($ILASTIK_BINARY, else /opt/ilastik/run_ilastik.sh).

    Open the project that `classify ilastik prepare` wrote with
    `apps ilastik pixel_classifier.ilp`.
    """
    from steinbock_like.apps.launchers import ilastik_command

    _run(ilastik_command(args, app.data_dir.resolve()), **display)


@apps_group.command("cellprofiler", context_settings=PASS_THROUGH)
@display_options
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
@pass_app
def cellprofiler_cmd(app: AppContext, args: tuple[str, ...], **display) -> None:
    """CellProfiler's GUI, in its own Python ($CELLPROFILER_PYTHON, else
    /opt/cellprofiler-venv/bin/python).

    Edit the pipeline that `segment cellprofiler prepare` wrote with
    `apps cellprofiler -p cell_segmentation.cppipe`.
    """
    from steinbock_like.apps.launchers import cellprofiler_command

    _run(cellprofiler_command(args, app.data_dir.resolve()), **display)


@apps_group.command("napari", context_settings=PASS_THROUGH)
@display_options
@click.option(
    "--panel",
    "panel_file",
    type=click.Path(path_type=Path),
    default=layout.PANEL,
    show_default=True,
    help="Panel CSV giving the channel names.",
)
@click.option(
    "--masks",
    "mask_dirs",
    multiple=True,
    type=click.Path(path_type=Path),
    help="Another mask directory to show (repeatable; masks*/ directories are shown anyway).",
)
@click.argument("images", nargs=-1, type=click.UNPROCESSED)
@pass_app
def napari_cmd(
    app: AppContext, images: tuple[str, ...], panel_file: Path, mask_dirs, **display
) -> None:
    """napari with IMAGES (names in img/ or paths): one layer per channel, named from the
    panel, and the masks of the same name (masks/, masks_nuclei/, ...) as label layers.
    """
    from steinbock_like.apps.launchers import napari_command

    data_dir = app.data_dir.resolve()
    extra = [arg for mask_dir in mask_dirs for arg in ("--masks", str(app.path(mask_dir)))]
    _run(napari_command([*images, *extra], data_dir, app.path(panel_file).resolve()), **display)


def _jupyter(app: AppContext, args: tuple[str, ...], *, lab: bool) -> None:
    from steinbock_like.apps.launchers import jupyter_command

    _run(jupyter_command(args, app.data_dir.resolve(), lab=lab))


@apps_group.command("jupyter", context_settings=PASS_THROUGH)
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
@pass_app
def jupyter_cmd(app: AppContext, args: tuple[str, ...]) -> None:
    """A Jupyter Notebook server on the data directory (port 8888; on 127.0.0.1 unless
    STEINBOCK_LIKE_BIND says otherwise)."""
    _jupyter(app, args, lab=False)


@apps_group.command("jupyterlab", context_settings=PASS_THROUGH)
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
@pass_app
def jupyterlab_cmd(app: AppContext, args: tuple[str, ...]) -> None:
    """A JupyterLab server on the data directory (port 8888; on 127.0.0.1 unless
    STEINBOCK_LIKE_BIND says otherwise)."""
    _jupyter(app, args, lab=True)


@apps_group.command("run", context_settings=PASS_THROUGH)
@display_options
@click.argument("program")
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
@pass_app
def run_cmd(app: AppContext, program: str, args: tuple[str, ...], **display) -> None:
    """Any other X11 PROGRAM, on the same displays (e.g. `apps run --display vnc xterm`)."""
    from steinbock_like.apps.launchers import program_command

    _run(program_command(program, args, app.data_dir.resolve()), **display)
