"""End to end: ``apps run --display vnc`` with a real Qt window, seen through noVNC in Chromium.

Needs Xvfb, x11vnc, websockify, noVNC, Chromium and PySide6 (installed by
``scripts/install_apps_test_deps.sh``); skips with the reason where one is missing.
Chromium is driven over its DevTools protocol on a pipe (``--remote-debugging-pipe``):
its one-shot ``--screenshot`` mode does not wait for the WebSocket and captures
"Connecting...".
"""

from __future__ import annotations

import base64
import contextlib
import io
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
from cli_helpers import default_ctrl_c

from steinbock_like.apps.vnc import find_vnc_tools, port_is_free
from steinbock_like.errors import MissingToolError

pytestmark = pytest.mark.slow

# The command line, with the apps group registered even where cli/main.py does not do it yet.
# The real entry point: a test fails if the ``apps`` group is not registered in cli/main.py.
STEINBOCK_LIKE = [sys.executable, "-m", "steinbock_like"]
WINDOW_COLOR = (30, 190, 70)
WINDOW_TITLE = "steinbock-like test window"
SCREEN = (1280, 800)
WINDOW_RECT = (200, 150, 640, 400)  # x, y, width, height on the virtual screen

# A real Qt app: one window of a known colour and place; Escape quits it.
QT_WINDOW_SCRIPT = textwrap.dedent(
    f"""
    import sys
    from PySide6.QtCore import Qt
    from PySide6.QtGui import QColor, QPalette
    from PySide6.QtWidgets import QApplication, QWidget

    class Window(QWidget):
        def keyPressEvent(self, event):
            if event.key() == Qt.Key_Escape:
                QApplication.quit()

    app = QApplication(sys.argv)
    window = Window()
    window.setWindowTitle({WINDOW_TITLE!r})
    palette = window.palette()
    palette.setColor(QPalette.Window, QColor(*{WINDOW_COLOR!r}))
    window.setPalette(palette)
    window.setAutoFillBackground(True)
    window.setGeometry(*{WINDOW_RECT!r})
    window.show()
    print("window shown", flush=True)
    sys.exit(app.exec())
    """
)


def _require_vnc_stack() -> str:
    try:
        find_vnc_tools()
    except MissingToolError as error:
        pytest.skip(f"{error} (run scripts/install_apps_test_deps.sh)")
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if not chromium:
        pytest.skip("chromium not installed (run scripts/install_apps_test_deps.sh)")
    try:
        import PySide6.QtWidgets  # noqa: F401
    except ImportError:
        pytest.skip("PySide6 not installed (run scripts/install_apps_test_deps.sh)")
    return chromium


class HeadlessChromium:
    """Headless Chromium driven over the DevTools protocol on a pipe (fds 3 and 4)."""

    def __init__(self, binary: str, profile_dir: Path, size: tuple[int, int]):
        to_browser_read, self._to_browser = os.pipe()
        self._from_browser, from_browser_write = os.pipe()
        flags = [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--remote-debugging-pipe",
            f"--user-data-dir={profile_dir}",
            f"--window-size={size[0]},{size[1]}",
        ]
        devnull = os.open(os.devnull, os.O_WRONLY)
        self.pid = os.posix_spawn(
            binary,
            [binary, *flags, "about:blank"],
            os.environ,
            file_actions=[
                (os.POSIX_SPAWN_DUP2, to_browser_read, 3),
                (os.POSIX_SPAWN_DUP2, from_browser_write, 4),
                (os.POSIX_SPAWN_DUP2, devnull, 1),
                (os.POSIX_SPAWN_DUP2, devnull, 2),
            ],
            setsid=True,
        )
        for descriptor in (to_browser_read, from_browser_write, devnull):
            os.close(descriptor)
        self._buffer = b""
        self._next_id = 0
        self.session = None

    def call(self, method: str, params: dict | None = None, *, session: bool = True) -> dict:
        self._next_id += 1
        message = {"id": self._next_id, "method": method, "params": params or {}}
        if session and self.session:
            message["sessionId"] = self.session
        os.write(self._to_browser, json.dumps(message).encode() + b"\0")
        while True:
            reply = self._receive()
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply["result"]

    def _receive(self) -> dict:
        while b"\0" not in self._buffer:
            chunk = os.read(self._from_browser, 1 << 20)
            if not chunk:
                raise RuntimeError("Chromium closed the DevTools pipe")
            self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(message)

    def open(self, url: str, size: tuple[int, int]) -> None:
        target = self.call("Target.createTarget", {"url": "about:blank"}, session=False)
        attached = self.call(
            "Target.attachToTarget", {"targetId": target["targetId"], "flatten": True}
        )
        self.session = attached["sessionId"]
        self.call(
            "Emulation.setDeviceMetricsOverride",
            {"width": size[0], "height": size[1], "deviceScaleFactor": 1, "mobile": False},
        )
        self.call("Page.navigate", {"url": url})

    def evaluate(self, expression: str):
        result = self.call("Runtime.evaluate", {"expression": expression, "returnByValue": True})
        return result["result"].get("value")

    def screenshot(self) -> np.ndarray:
        import imageio.v3 as iio

        data = self.call("Page.captureScreenshot", {"format": "png"})["data"]
        return iio.imread(io.BytesIO(base64.b64decode(data)), extension=".png")[..., :3]

    def click_and_key(self, x: int, y: int, key: str, code: int) -> None:
        for kind in ("mousePressed", "mouseReleased"):
            self.call(
                "Input.dispatchMouseEvent",
                {"type": kind, "x": x, "y": y, "button": "left", "clickCount": 1},
            )
        for kind in ("keyDown", "keyUp"):
            self.call(
                "Input.dispatchKeyEvent",
                {"type": kind, "key": key, "code": key, "windowsVirtualKeyCode": code},
            )

    def close(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pid, signal.SIGKILL)
        os.waitpid(self.pid, 0)
        os.close(self._to_browser)
        os.close(self._from_browser)


def _descendants(pid: int) -> dict[int, str]:
    """Every live descendant of ``pid``: pid -> start time (to tell a reused pid apart)."""
    children: dict[int, list[int]] = {}
    start_times = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        children.setdefault(int(fields[1]), []).append(int(entry.name))
        start_times[int(entry.name)] = fields[19]
    found, pending = {}, [pid]
    while pending:
        for child in children.get(pending.pop(), []):
            found[child] = start_times[child]
            pending.append(child)
    return found


def _still_running(processes: dict[int, str]) -> list[int]:
    alive = []
    for pid, start_time in processes.items():
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        if fields[19] == start_time and fields[0] != "Z":
            alive.append(pid)
    return alive


def _app_environment(processes: dict[int, str]) -> dict[str, str]:
    """The environment of the Qt window's process (found by its script's name)."""
    for pid in processes:
        try:
            if b"qt_window.py" in Path(f"/proc/{pid}/cmdline").read_bytes():
                raw = Path(f"/proc/{pid}/environ").read_bytes()
                return dict(item.split("=", 1) for item in raw.decode().split("\0") if "=" in item)
        except OSError:
            continue
    pytest.fail("the Qt window's process was not found")


def _window_pixels(image: np.ndarray) -> np.ndarray:
    return np.all(np.abs(image.astype(int) - np.array(WINDOW_COLOR)) <= 12, axis=-1)


def _start_app(tmp_path: Path, port: int, *extra: str) -> tuple[subprocess.Popen, str]:
    """Start ``apps run --display vnc`` with the Qt window; return it and the URL it printed."""
    script = tmp_path / "qt_window.py"
    script.write_text(QT_WINDOW_SCRIPT)
    geometry = f"{SCREEN[0]}x{SCREEN[1]}x24"
    command = [*STEINBOCK_LIKE, "--data", str(tmp_path), "apps"]
    command += ["run", "--display", "vnc", "--vnc-port", str(port), "--geometry", geometry]
    command += [*extra, sys.executable, str(script)]
    app = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=default_ctrl_c,  # stopped with SIGINT below
    )
    deadline = time.monotonic() + 30
    lines = []
    while time.monotonic() < deadline:
        line = app.stderr.readline()
        if not line:
            break
        lines.append(line)
        match = re.search(r"open (http://\S+)", line)
        if match:
            return app, match.group(1)
    app.kill()
    pytest.fail(f"no URL printed by apps run: {''.join(lines)}")


def _wait_until(predicate, timeout: float, interval: float = 0.2):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value is not None and value is not False:
            return value
        time.sleep(interval)
    return predicate()


@pytest.fixture
def web_port() -> int:
    from steinbock_like.apps.vnc import free_port

    return free_port()


def test_vnc_shows_a_real_qt_window_in_chromium_and_cleans_up(tmp_path, web_port):
    chromium_binary = _require_vnc_stack()
    started = time.monotonic()
    app, url = _start_app(tmp_path, web_port)
    browser = None
    try:
        assert url.startswith(f"http://localhost:{web_port}/vnc.html?")
        assert "password=" in url
        # Xvfb, x11vnc, websockify and the app all run before the page is opened.
        processes = _wait_until(
            lambda: _descendants(app.pid) if len(_descendants(app.pid)) >= 4 else None, 15
        )
        assert processes, "Xvfb, x11vnc, websockify and the app did not all start"
        browser = HeadlessChromium(chromium_binary, tmp_path / "chromium-profile", SCREEN)
        browser.open(url.replace("localhost", "127.0.0.1"), SCREEN)
        connected = _wait_until(
            lambda: browser.evaluate(
                "document.documentElement.classList.contains('noVNC_connected')"
            ),
            20,
        )
        assert connected, "noVNC did not connect to the VNC server"

        def shot_with_window():
            image = browser.screenshot()
            return image if _window_pixels(image).mean() > 0.05 else None

        image = _wait_until(shot_with_window, 20, 0.5)
        seconds_to_screenshot = time.monotonic() - started
        assert image is not None, "the Qt window never appeared in the noVNC page"
        import imageio.v3 as iio

        iio.imwrite(tmp_path / "screenshot.png", image)  # for a look when the test fails
        # The window's pixels fill the window's rectangle (scaled from the virtual screen
        # to the page) and nothing outside it.
        mask = _window_pixels(image)
        rows, cols = np.nonzero(mask)
        height, width = mask.shape
        canvas = browser.evaluate(
            "(() => { const r = document.querySelector('#noVNC_container canvas')"
            ".getBoundingClientRect(); return [r.left, r.top, r.width, r.height]; })()"
        )
        left, top, canvas_width, canvas_height = canvas
        scale_x, scale_y = canvas_width / SCREEN[0], canvas_height / SCREEN[1]
        x, y, w, h = WINDOW_RECT
        expected = (
            left + x * scale_x,
            top + y * scale_y,
            left + (x + w) * scale_x,
            top + (y + h) * scale_y,
        )
        found = (cols.min(), rows.min(), cols.max() + 1, rows.max() + 1)
        assert np.allclose(found, expected, atol=4), (found, expected)
        inside = mask[
            int(expected[1]) + 2 : int(expected[3]) - 2, int(expected[0]) + 2 : int(expected[2]) - 2
        ]
        assert inside.mean() > 0.98
        assert mask.sum() <= inside.size * 1.05
        print(f"VNC start to screenshot: {seconds_to_screenshot:.1f} s")

        # Close the app the way a user does: a key press through the browser.
        processes = _descendants(app.pid)
        app_env = _app_environment(processes)
        display_number = app_env["DISPLAY"].lstrip(":")
        browser.click_and_key(
            int((expected[0] + expected[2]) / 2), int((expected[1] + expected[3]) / 2), "Escape", 27
        )
        assert app.wait(timeout=20) == 0
    finally:
        if browser:
            browser.close()
        if app.poll() is None:
            app.send_signal(signal.SIGINT)
            app.wait(timeout=20)
    assert _still_running(processes) == []
    assert port_is_free(web_port)
    # Xvfb's lock file and socket are gone, and so is the session's cookie directory.
    assert not Path(f"/tmp/.X{display_number}-lock").exists()
    assert not Path(f"/tmp/.X11-unix/X{display_number}").exists()
    assert not Path(app_env["XAUTHORITY"]).exists()


def test_ctrl_c_stops_app_and_desktop(tmp_path, web_port):
    _require_vnc_stack()
    app, url = _start_app(tmp_path, web_port, "--no-vnc-password")
    assert "password=" not in url
    processes = _wait_until(
        lambda: _descendants(app.pid) if len(_descendants(app.pid)) >= 4 else None, 15
    )
    assert processes
    assert not port_is_free(web_port)
    app.send_signal(signal.SIGINT)
    assert app.wait(timeout=30) == 130
    # Under load the signal can arrive while the app is still starting: then the
    # launcher aborts before announcing; either way everything must be cleaned up.
    err = app.stderr.read()
    assert "stopping" in err or "Aborted." in err
    assert _still_running(processes) == []
    assert port_is_free(web_port)
