"""A virtual desktop served to a web browser: Xvfb + x11vnc + websockify/noVNC.

:class:`VncDesktop` starts, in this order, a virtual X server (Xvfb, on a free
display number that it picks itself, with a private Xauthority cookie), a VNC
server on that display (x11vnc, on 127.0.0.1 only, with a one-time password)
and websockify, which serves the noVNC web client and bridges its WebSocket
to the VNC server. The user opens :attr:`VncDesktop.url`. :meth:`VncDesktop.stop`
stops them in reverse order, each with its whole process group, so that no
child is left and the web port is free again.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import select
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from steinbock_like.apps.display import write_xauthority
from steinbock_like.errors import MissingToolError, SteinbockLikeError

DEFAULT_WEB_PORT = 6080
DEFAULT_GEOMETRY = "1600x1000x24"
NOVNC_DIR_ENV = "STEINBOCK_LIKE_NOVNC_DIR"
NOVNC_DIRS = ("/usr/share/novnc", "/opt/novnc")
START_TIMEOUT_S = 20.0
STOP_TIMEOUT_S = 5.0
# Lightweight window managers, first found is started (title bars to move and close
# windows); without one the desktop still works, windows just cannot be moved.
WINDOW_MANAGERS = ("openbox", "fluxbox", "matchbox-window-manager", "twm")
# VNC authentication uses the first 8 characters of a password only.
PASSWORD_LENGTH = 8


def find_novnc_dir() -> Path | None:
    """The directory holding noVNC's ``vnc.html`` ($STEINBOCK_LIKE_NOVNC_DIR or a default)."""
    configured = os.environ.get(NOVNC_DIR_ENV)
    for candidate in ([configured] if configured else []) + list(NOVNC_DIRS):
        if (Path(candidate) / "vnc.html").is_file():
            return Path(candidate)
    return None


def find_vnc_tools() -> dict[str, str]:
    """Paths of Xvfb, x11vnc, websockify and the noVNC directory.

    Raises
    ------
    MissingToolError
        Naming every missing part and how to install it.
    """
    tools = {name: shutil.which(name) for name in ("Xvfb", "x11vnc", "websockify")}
    novnc = find_novnc_dir()
    tools["novnc"] = str(novnc) if novnc else None
    missing = [name for name, path in tools.items() if not path]
    if missing:
        raise MissingToolError(
            f"--display vnc needs {', '.join(missing)} (not found): install them "
            "(Debian/Ubuntu: apt-get install xvfb x11vnc websockify novnc), use the "
            "steinbock-like container image, or use --display x11"
        )
    return tools


def port_is_free(port: int, address: str = "127.0.0.1") -> bool:
    """Whether a TCP server could listen on ``address:port`` now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((address, port))
        except OSError:
            return False
    return True


def free_port(address: str = "127.0.0.1") -> int:
    """A TCP port that is free now (the system's choice)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((address, 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, process: subprocess.Popen, timeout: float, address: str) -> bool:
    """Wait until ``address:port`` accepts connections or ``process`` exits."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return False
        try:
            with socket.create_connection((address, port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.1)
    return False


def stop_process_group(process: subprocess.Popen, timeout: float = STOP_TIMEOUT_S) -> None:
    """Stop a process started with ``start_new_session=True`` and everything in its group.

    SIGTERM to the group, SIGKILL to what is left after ``timeout`` seconds.
    """
    group = process.pid
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(group, sig)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            continue
        # The leader is gone; children it left in the group (forked workers) go too.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(group, signal.SIGKILL)
        return
    process.wait()


class VncDesktop:
    """A virtual X desktop viewable in a web browser; a context manager.

    Parameters
    ----------
    web_port : int
        Port of the noVNC web page (and its WebSocket).
    bind_address : str
        Address the web port listens on: ``127.0.0.1`` on a host, ``0.0.0.0`` inside
        a Docker container whose port is published.
    geometry : str
        Screen size and depth of the virtual X server, ``WIDTHxHEIGHTxDEPTH``.
    password : bool
        Protect the VNC connection with a random one-time password (given in the URL).
    work_dir : path-like, optional
        Where the cookie, password and log files go (default: a new temporary directory).

    Attributes
    ----------
    display : str
        The X display (``:N``) that apps must use, once started.
    url : str
        The page to open in a browser, once started.
    env : dict
        ``DISPLAY`` and ``XAUTHORITY`` for the apps, once started.
    """

    def __init__(
        self,
        web_port: int = DEFAULT_WEB_PORT,
        *,
        bind_address: str = "127.0.0.1",
        geometry: str = DEFAULT_GEOMETRY,
        password: bool = True,
        work_dir: str | Path | None = None,
    ):
        self.web_port = web_port
        self.bind_address = bind_address
        self.geometry = geometry
        self.password = (
            secrets.token_urlsafe(PASSWORD_LENGTH)[:PASSWORD_LENGTH] if password else None
        )
        self._given_work_dir = Path(work_dir) if work_dir else None
        self.work_dir: Path | None = None
        self.display = ""
        self.vnc_port = 0
        self._xvfb_pid = 0
        self.processes: list[tuple[str, subprocess.Popen]] = []

    # -- life cycle -------------------------------------------------------------------
    def __enter__(self) -> VncDesktop:
        self.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()

    def start(self) -> None:
        """Start Xvfb, x11vnc and websockify; raise with their log on failure."""
        tools = find_vnc_tools()
        if not port_is_free(self.web_port, self.bind_address):
            raise SteinbockLikeError(
                f"port {self.web_port} is already in use (another apps session?): "
                "choose another with --vnc-port"
            )
        if self._given_work_dir:
            self.work_dir = self._given_work_dir
            self.work_dir.mkdir(parents=True, exist_ok=True)
        else:
            self.work_dir = Path(tempfile.mkdtemp(prefix="steinbock-like-vnc-"))
        try:
            self._start_xvfb(tools["Xvfb"])
            self._start_window_manager()
            self._start_x11vnc(tools["x11vnc"])
            self._start_websockify(tools["websockify"], tools["novnc"])
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Stop every started process (reverse order, whole groups); remove the work files."""
        while self.processes:
            _name, process = self.processes.pop()
            stop_process_group(process)
        if self.work_dir and not self._given_work_dir:
            shutil.rmtree(self.work_dir, ignore_errors=True)
        if self.display and self._xvfb_pid:
            # Xvfb removes its lock and socket on a clean exit; after SIGKILL it cannot.
            number = self.display.lstrip(":")
            lock = Path(f"/tmp/.X{number}-lock")
            try:
                if int(lock.read_text().strip() or 0) == self._xvfb_pid:
                    lock.unlink()
                    (Path("/tmp/.X11-unix") / f"X{number}").unlink(missing_ok=True)
            except (OSError, ValueError):
                pass
            self._xvfb_pid = 0

    # -- what apps need ------------------------------------------------------------------
    @property
    def xauthority(self) -> Path:
        return self.work_dir / "Xauthority"

    @property
    def env(self) -> dict[str, str]:
        return {"DISPLAY": self.display, "XAUTHORITY": str(self.xauthority)}

    @property
    def url(self) -> str:
        query = "autoconnect=true&resize=scale&reconnect=true"
        if self.password:
            query += f"&password={self.password}"
        return f"http://localhost:{self.web_port}/vnc.html?{query}"

    # -- the three servers ----------------------------------------------------------------
    def _log(self, name: str):
        return open(self.work_dir / f"{name}.log", "wb")  # noqa: SIM115 (closed by Popen's user)

    def _popen(self, name: str, argv: list[str], **kwargs) -> subprocess.Popen:
        with self._log(name) as log:
            process = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                **kwargs,
            )
        self.processes.append((name, process))
        return process

    def _failure(self, name: str, problem: str) -> SteinbockLikeError:
        try:
            lines = (self.work_dir / f"{name}.log").read_text(errors="replace").strip().splitlines()
        except OSError:
            lines = []
        detail = f": {lines[-1].strip()}" if lines else ""
        return SteinbockLikeError(f"{name} {problem}{detail}")

    def _start_xvfb(self, xvfb: str) -> None:
        write_xauthority(self.xauthority, secrets.token_bytes(16))
        read_end, write_end = os.pipe()
        try:
            process = self._popen(
                "Xvfb",
                [xvfb, "-displayfd", str(write_end), "-screen", "0", self.geometry]
                + ["-nolisten", "tcp", "-auth", str(self.xauthority), "-noreset"],
                pass_fds=(write_end,),
            )
            os.close(write_end)
            write_end = -1
            number = _read_line(read_end, START_TIMEOUT_S)
        finally:
            if write_end >= 0:
                os.close(write_end)
            os.close(read_end)
        if not number.isdigit():
            raise self._failure("Xvfb", "did not start")
        self.display = f":{number}"
        self._xvfb_pid = process.pid
        if process.poll() is not None:
            raise self._failure("Xvfb", "exited at start")

    def _start_window_manager(self) -> None:
        for name in WINDOW_MANAGERS:
            path = shutil.which(name)
            if path:
                env = {**os.environ, **self.env}
                self._popen("window-manager", [path], env=env)
                return

    def _start_x11vnc(self, x11vnc: str) -> None:
        self.vnc_port = free_port()
        if self.password:
            password_file = self.work_dir / "vncpassword"
            descriptor = os.open(password_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(descriptor, "w") as file:
                file.write(self.password + "\n")
            # "rm:" makes x11vnc delete the file once read.
            authentication = ["-passwdfile", f"rm:{password_file}"]
        else:
            authentication = ["-nopw"]
        process = self._popen(
            "x11vnc",
            [x11vnc, "-display", self.display, "-auth", str(self.xauthority)]
            + ["-rfbport", str(self.vnc_port), "-localhost", "-forever", "-shared"]
            + ["-noxdamage", "-quiet", *authentication],
        )
        if not wait_for_port(self.vnc_port, process, START_TIMEOUT_S, "127.0.0.1"):
            raise self._failure("x11vnc", "did not start")

    def _start_websockify(self, websockify: str, novnc_dir: str) -> None:
        process = self._popen(
            "websockify",
            [websockify, "--web", novnc_dir]
            + [f"{self.bind_address}:{self.web_port}", f"127.0.0.1:{self.vnc_port}"],
        )
        probe_address = "127.0.0.1" if self.bind_address in ("0.0.0.0", "") else self.bind_address
        if not wait_for_port(self.web_port, process, START_TIMEOUT_S, probe_address):
            raise self._failure("websockify", f"did not start on port {self.web_port}")


def _read_line(descriptor: int, timeout: float) -> str:
    """Read what a process writes to a pipe up to a newline (Xvfb's -displayfd)."""
    deadline = time.monotonic() + timeout
    data = b""
    while b"\n" not in data:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        ready, _, _ = select.select([descriptor], [], [], remaining)
        if not ready:
            break
        chunk = os.read(descriptor, 64)
        if not chunk:
            break
        data += chunk
    return data.decode(errors="replace").strip()
