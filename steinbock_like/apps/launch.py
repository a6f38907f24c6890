"""Run a GUI app on an X11 display or on a virtual desktop in the browser.

``run_app`` picks the display (``x11``: the host's ``$DISPLAY``, checked first;
``vnc``: a :class:`~steinbock_like.apps.vnc.VncDesktop`; ``auto``: x11 where a
display answers, vnc otherwise), runs the app in its own process group with
software OpenGL, and on the app's exit, Ctrl-C, SIGTERM or SIGHUP stops the app,
everything the app left in its group, and the desktop.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from steinbock_like.apps.display import (
    DisplayUnavailableError,
    X11Display,
    find_cookie,
    probe_x11,
    write_xauthority,
)
from steinbock_like.apps.vnc import (
    DEFAULT_GEOMETRY,
    DEFAULT_WEB_PORT,
    VncDesktop,
    stop_process_group,
)
from steinbock_like.errors import SteinbockLikeError

logger = logging.getLogger(__name__)

DISPLAY_MODES = ("auto", "x11", "vnc")
GL_MODES = ("software", "host")
BIND_ENV = "STEINBOCK_LIKE_BIND"
APP_STOP_TIMEOUT_S = 10.0

# Mesa's CPU renderer: no GPU, no host libGL and no /dev/dri needed, so OpenGL apps
# (ilastik's volumina, napari's vispy) cannot crash in a driver that does not match.
SOFTWARE_GL_ENV = {
    "LIBGL_ALWAYS_SOFTWARE": "1",
    "GALLIUM_DRIVER": "llvmpipe",
    "QT_QUICK_BACKEND": "software",
    "QT_XCB_GL_INTEGRATION": "xcb_glx",
}
# Shared memory cannot cross a container boundary: Qt and GTK must not try it.
X11_ENV = {"QT_X11_NO_MITSHM": "1", "_X11_NO_MITSHM": "1", "_MITSHM": "0", "NO_AT_BRIDGE": "1"}


@dataclass
class AppCommand:
    """What to run for an app.

    Attributes
    ----------
    name : str
        The app's name in messages.
    argv : list of str
        The command line.
    env : dict
        Variables to set for it.
    unset_env : tuple of str
        Variables to remove for it (e.g. ``PYTHONPATH`` for a bundled Python).
    needs_display : bool
        Whether it opens windows (jupyter does not).
    cwd : path, optional
        Its working directory.
    """

    name: str
    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)
    unset_env: tuple[str, ...] = ()
    needs_display: bool = True
    cwd: Path | None = None


class _Stopped(Exception):
    """SIGTERM or SIGHUP arrived (``docker stop``, a closed terminal)."""


def in_docker_container() -> bool:
    """Whether this runs inside a Docker/Podman container (not Singularity/Apptainer).

    There, a server must listen on all addresses for a published port to reach it;
    Singularity shares the host's network, where 127.0.0.1 is the safe choice.
    """
    return Path("/.dockerenv").exists() or Path("/run/.containerenv").exists()


def default_bind_address() -> str:
    """``$STEINBOCK_LIKE_BIND``, else ``127.0.0.1``, in a container too.

    Inside a container started with ``--network host``, 0.0.0.0 would be every interface
    of the host; a published port (``-p 127.0.0.1:6080:6080``) needs the container to
    listen beyond its loopback, which the user (or docker/steinbock-like.sh) asks for with
    ``-e STEINBOCK_LIKE_BIND=0.0.0.0``.
    """
    return os.environ.get(BIND_ENV) or "127.0.0.1"


#: Printed when the browser desktop has no password.
NO_PASSWORD_WARNING = """\
################################################################################
WARNING: --no-vnc-password: the desktop at {url} has NO PASSWORD.
Anyone who can reach {address}:{port} controls it, and the files and programs
of this session with your permissions. Publish it on 127.0.0.1 only
(-p 127.0.0.1:{port}:{port}) and reach it from elsewhere through an SSH tunnel
(ssh -L {port}:localhost:{port} HOST), or drop --no-vnc-password.
################################################################################"""


def choose_display(mode: str, display_text: str | None = None) -> tuple[str, X11Display | None]:
    """Resolve ``auto``/``x11``/``vnc`` to ``x11`` (with the checked display) or ``vnc``.

    Raises
    ------
    DisplayUnavailableError
        In ``x11`` mode, when the display does not answer (one line: what to mount).
    """
    if mode not in DISPLAY_MODES:
        raise SteinbockLikeError(
            f"unknown display mode {mode!r} (known: {', '.join(DISPLAY_MODES)})"
        )
    if mode == "vnc":
        return "vnc", None
    try:
        return "x11", probe_x11(display_text)
    except DisplayUnavailableError as error:
        if mode == "x11":
            raise
        logger.info("no usable X11 display (%s); using the browser (vnc)", str(error).split(":")[0])
        return "vnc", None


def app_environment(
    command: AppCommand,
    display_env: Mapping[str, str],
    *,
    gl: str = "software",
    base: Mapping[str, str] | None = None,
    runtime_dir: Path | None = None,
) -> dict[str, str]:
    """The environment the app runs with (pure: no side effects)."""
    env = dict(os.environ if base is None else base)
    if command.needs_display:
        env.update(display_env)
        env.update(X11_ENV)
        env.setdefault("QT_QPA_PLATFORM", "xcb")
        if gl == "software":
            env.update(SOFTWARE_GL_ENV)
    if runtime_dir is not None:
        env["XDG_RUNTIME_DIR"] = str(runtime_dir)
    for name in command.unset_env:
        env.pop(name, None)
    env.update(command.env)
    return env


@contextlib.contextmanager
def _termination_signals_raise() -> Iterator[None]:
    """Turn SIGTERM/SIGHUP into an exception while the app runs (PID 1 ignores them otherwise)."""

    def handler(signum, frame):
        raise _Stopped(signal.Signals(signum).name)

    previous = {}
    try:
        for sig in (signal.SIGTERM, signal.SIGHUP):
            previous[sig] = signal.signal(sig, handler)
    except ValueError:  # not the main thread: leave signals alone
        pass
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def _x11_display_env(display: X11Display, work_dir: Path) -> dict[str, str]:
    """DISPLAY plus, where the host's cookie names another host, a copy valid here."""
    env = {"DISPLAY": display.text}
    cookie = find_cookie(display)
    if cookie is not None:
        # In a container, the cookie was written for the host's name, which Xlib would not
        # match: a wildcard copy makes the same cookie usable by the app.
        xauthority = work_dir / "Xauthority"
        write_xauthority(xauthority, cookie)
        env["XAUTHORITY"] = str(xauthority)
    return env


def run_app(
    command: AppCommand,
    *,
    display: str = "auto",
    vnc_port: int = DEFAULT_WEB_PORT,
    bind_address: str | None = None,
    geometry: str = DEFAULT_GEOMETRY,
    vnc_password: bool = True,
    gl: str = "software",
    announce: Callable[[str], None] = lambda message: None,
    on_started: Callable[[subprocess.Popen, dict[str, str]], None] | None = None,
) -> int:
    """Run an app until it exits; return its exit status (130 when interrupted).

    Parameters
    ----------
    command : AppCommand
        What to run.
    display : {"auto", "x11", "vnc"}
        Where its windows go.
    vnc_port : int
        The web port of the VNC desktop.
    bind_address : str, optional
        Where the web port listens (default: :func:`default_bind_address`).
    geometry : str
        Size of the virtual screen (vnc).
    vnc_password : bool
        Protect the desktop with a one-time password carried in the URL.
    gl : {"software", "host"}
        OpenGL through Mesa's CPU renderer, or whatever the system provides.
    announce : callable
        Receives the lines to show the user (the URL to open).
    on_started : callable, optional
        Called with the app's process and environment once it runs (tests).

    Raises
    ------
    SteinbockLikeError
        When the display or the desktop cannot be used, or the app cannot start.
    """
    if gl not in GL_MODES:
        raise SteinbockLikeError(f"unknown OpenGL mode {gl!r} (known: {', '.join(GL_MODES)})")
    work_dir = Path(tempfile.mkdtemp(prefix=f"steinbock-like-{command.name}-"))
    try:
        with contextlib.ExitStack() as stack, _termination_signals_raise():
            display_env: dict[str, str] = {}
            if command.needs_display:
                mode, x11_display = choose_display(display)
                if mode == "vnc":
                    desktop = VncDesktop(
                        vnc_port,
                        bind_address=bind_address or default_bind_address(),
                        geometry=geometry,
                        password=vnc_password,
                        work_dir=work_dir / "vnc",
                    )
                    stack.callback(desktop.stop)
                    desktop.start()
                    display_env = desktop.env
                    if not vnc_password:
                        announce(
                            NO_PASSWORD_WARNING.format(
                                url=desktop.url, address=desktop.bind_address, port=vnc_port
                            )
                        )
                    announce(f"{command.name} is shown in the web browser: open {desktop.url}")
                else:
                    display_env = _x11_display_env(x11_display, work_dir)
                    announce(f"{command.name} opens on X11 display {x11_display.text}")
            runtime_dir = work_dir / "runtime"
            runtime_dir.mkdir(mode=0o700)
            env = app_environment(command, display_env, gl=gl, runtime_dir=runtime_dir)
            return _run_until_exit(command, env, on_started, announce)
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)


def _run_until_exit(
    command: AppCommand,
    env: dict[str, str],
    on_started: Callable[[subprocess.Popen, dict[str, str]], None] | None,
    announce: Callable[[str], None],
) -> int:
    try:
        process = subprocess.Popen(command.argv, env=env, cwd=command.cwd, start_new_session=True)
    except OSError as error:
        raise SteinbockLikeError(
            f"{command.name}: cannot start {command.argv[0]} ({error.strerror})"
        ) from None
    try:
        if on_started is not None:
            on_started(process, env)
        status = process.wait()
    except (KeyboardInterrupt, _Stopped):
        announce(f"stopping {command.name}")
        return 130
    finally:
        # Whatever the app left running in its group (kernels, helpers) goes with it.
        stop_process_group(process, APP_STOP_TIMEOUT_S)
    return status if status >= 0 else 128 - status
