"""The command line of each app: where it is installed and how it is started.

Each function returns an :class:`~steinbock_like.apps.launch.AppCommand`; the
user's extra arguments are appended unchanged (after ours, so that they win where
an app takes the last value of a repeated option).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path

from steinbock_like.apps.launch import AppCommand, default_bind_address, in_docker_container
from steinbock_like.errors import MissingToolError

ILASTIK_BINARY_ENV = "ILASTIK_BINARY"
DEFAULT_ILASTIK_BINARY = "/opt/ilastik/run_ilastik.sh"
CELLPROFILER_PYTHON_ENV = "CELLPROFILER_PYTHON"
DEFAULT_CELLPROFILER_PYTHON = "/opt/cellprofiler-venv/bin/python"
JUPYTER_PORT = 8888
# A bundled or separate Python must not see ours.
FOREIGN_PYTHON_UNSET = ("PYTHONPATH", "PYTHONHOME", "LD_LIBRARY_PATH", "VIRTUAL_ENV")


def ilastik_command(args: Sequence[str], data_dir: Path) -> AppCommand:
    """ilastik's GUI (``$ILASTIK_BINARY``, else ``/opt/ilastik/run_ilastik.sh``)."""
    binary = Path(os.environ.get(ILASTIK_BINARY_ENV) or DEFAULT_ILASTIK_BINARY)
    if not (binary.is_file() and os.access(binary, os.X_OK)):
        raise MissingToolError(
            f"ilastik not found at {binary}: install ilastik 1.4 and set {ILASTIK_BINARY_ENV} "
            "to its run_ilastik.sh, or use the steinbock-like container image"
        )
    return AppCommand("ilastik", [str(binary), *args], unset_env=FOREIGN_PYTHON_UNSET, cwd=data_dir)


def cellprofiler_command(args: Sequence[str], data_dir: Path) -> AppCommand:
    """CellProfiler's GUI, run by its own interpreter (``$CELLPROFILER_PYTHON``)."""
    python = Path(os.environ.get(CELLPROFILER_PYTHON_ENV) or DEFAULT_CELLPROFILER_PYTHON)
    if not python.exists():
        raise MissingToolError(
            f"CellProfiler's Python interpreter {python} does not exist: install CellProfiler "
            f"4.2 with its GUI (wxPython) and set {CELLPROFILER_PYTHON_ENV}, or use the "
            "steinbock-like container image"
        )
    return AppCommand(
        "cellprofiler",
        [str(python), "-m", "cellprofiler", *args],
        unset_env=FOREIGN_PYTHON_UNSET,
        cwd=data_dir,
    )


def napari_command(args: Sequence[str], data_dir: Path, panel: Path | None = None) -> AppCommand:
    """napari with the images, their channel names and their masks (see ``napari_viewer``).

    ``args`` are image names or paths, and the viewer's options (``--masks DIR``).
    """
    if importlib.util.find_spec("napari") is None:
        raise MissingToolError(
            "napari is not installed: pip install 'steinbock-like[apps]', or use the "
            "steinbock-like container image"
        )
    argv = [sys.executable, "-m", "steinbock_like.apps.napari_viewer", "--data", str(data_dir)]
    if panel is not None:
        argv += ["--panel", str(panel)]
    return AppCommand("napari", [*argv, *args], cwd=data_dir)


def jupyter_command(
    args: Sequence[str], data_dir: Path, *, lab: bool, bind_address: str | None = None
) -> AppCommand:
    """A Jupyter Notebook or JupyterLab server rooted at the data directory.

    It listens on ``$STEINBOCK_LIKE_BIND``, else 127.0.0.1 (see
    :func:`~steinbock_like.apps.launch.default_bind_address`: docker/steinbock-like.sh sets
    0.0.0.0 where it publishes the port on the host's 127.0.0.1); in a container it does
    not try to open a browser.
    """
    module = "jupyterlab" if lab else "notebook"
    if importlib.util.find_spec(module) is None:
        package = "jupyterlab" if lab else "notebook"
        raise MissingToolError(
            f"{package} is not installed: pip install {package}, or use the steinbock-like "
            "container image"
        )
    jupyter = shutil.which("jupyter") or str(Path(sys.executable).with_name("jupyter"))
    address = bind_address or default_bind_address()
    argv = [jupyter, "lab" if lab else "notebook", f"--ServerApp.ip={address}"]
    argv += [f"--ServerApp.port={JUPYTER_PORT}", f"--ServerApp.root_dir={data_dir}"]
    if in_docker_container():
        argv += ["--no-browser"]
    return AppCommand(
        "jupyterlab" if lab else "jupyter", [*argv, *args], needs_display=False, cwd=data_dir
    )


def program_command(program: str, args: Sequence[str], data_dir: Path) -> AppCommand:
    """Any X11 program (``apps run PROGRAM``), on the same display choices."""
    if not (shutil.which(program) or Path(program).is_file()):
        raise MissingToolError(f"program {program!r} not found")
    return AppCommand(Path(program).name, [program, *args], cwd=data_dir)
