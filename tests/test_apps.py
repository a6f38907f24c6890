"""``apps``: X11 display checks, app environments and command lines, napari's layers,
and ``x11`` mode against a real Xvfb display (skipped where Xvfb is not installed)."""

from __future__ import annotations

import json
import os
import shutil
import socket
import struct
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from steinbock_like.apps import display as display_module
from steinbock_like.apps.display import (
    COOKIE_AUTH_NAME,
    FAMILY_LOCAL,
    DisplayUnavailableError,
    X11Display,
    find_cookie,
    parse_display,
    probe_x11,
    read_xauthority,
    write_xauthority,
)
from steinbock_like.apps.launch import AppCommand, app_environment, choose_display
from steinbock_like.apps.napari_viewer import channel_names, layer_specs, load_layer_specs
from steinbock_like.errors import MissingToolError, SteinbockLikeError

# The real entry point: a test fails if the ``apps`` group is not registered in cli/main.py.
STEINBOCK_LIKE = [sys.executable, "-m", "steinbock_like"]


# -- display names and cookies ----------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "host", "number", "local"),
    [
        (":0", "", 0, True),
        (":12.0", "", 12, True),
        ("unix:3", "unix", 3, True),
        ("localhost:10.0", "localhost", 10, False),
        ("/tmp/launch-x/org.xquartz:0", "/tmp/launch-x/org.xquartz", 0, False),
    ],
)
def test_parse_display(text, host, number, local):
    display = parse_display(text)
    assert (display.host, display.number, display.is_local) == (host, number, local)


@pytest.mark.parametrize("text", ["0", "host", ":x", "host:1:2"])
def test_parse_display_rejects_junk_with_the_vnc_hint(text):
    with pytest.raises(DisplayUnavailableError, match="--display vnc"):
        parse_display(text)


def _xauthority_entry(family, address, number, name, data):
    return struct.pack(">H", family) + b"".join(
        struct.pack(">H", len(field)) + field for field in (address, number, name, data)
    )


def test_xauthority_round_trip_and_cookie_lookup(tmp_path):
    path = tmp_path / "Xauthority"
    write_xauthority(path, b"0123456789abcdef")
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    assert read_xauthority(path) == [(65535, b"", b"", COOKIE_AUTH_NAME, b"0123456789abcdef")]
    assert find_cookie(parse_display(":7"), path) == b"0123456789abcdef"

    # A host's file, written for another host name (as seen from a container): the cookie
    # of the same local display number is used; other numbers are not.
    host_file = tmp_path / "host"
    host_file.write_bytes(
        _xauthority_entry(FAMILY_LOCAL, b"laptop", b"0", COOKIE_AUTH_NAME, b"cookie-0")
        + _xauthority_entry(FAMILY_LOCAL, b"laptop", b"1", COOKIE_AUTH_NAME, b"cookie-1")
        + b"\x01\x00\x00"  # truncated tail: ignored, as Xlib does
    )
    assert find_cookie(parse_display(":1"), host_file) == b"cookie-1"
    assert find_cookie(parse_display(":2"), host_file) is None
    assert find_cookie(parse_display(":0"), tmp_path / "missing") is None


class FakeXServer:
    """A Unix socket that answers the X11 connection setup with a fixed status."""

    def __init__(self, path: Path, status: int, reason: bytes = b""):
        self.received = b""
        self.server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.server.bind(str(path))
        self.server.listen(1)
        self.status, self.reason = status, reason
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        connection, _ = self.server.accept()
        with connection:
            self.received = connection.recv(1024)
            padded = self.reason + b"\0" * (-len(self.reason) % 4)
            header = struct.pack("<BBHHH", self.status, len(self.reason), 11, 0, len(padded) // 4)
            connection.sendall(header + padded)

    def close(self):
        self.thread.join(timeout=5)
        self.server.close()


@pytest.fixture
def socket_dir(tmp_path, monkeypatch):
    directory = tmp_path / "x11"
    directory.mkdir()
    monkeypatch.setattr(display_module, "X11_SOCKET_DIR", directory)
    return directory


def test_probe_sends_the_cookie_and_accepts_success(socket_dir, tmp_path):
    cookie_file = tmp_path / "cookie"
    write_xauthority(cookie_file, b"S" * 16)
    server = FakeXServer(socket_dir / "X5", status=1)
    try:
        assert probe_x11(":5", xauthority=cookie_file) == X11Display(":5", "", 5)
    finally:
        server.close()
    # byte order 'l', protocol 11.0, name and data lengths, then both padded to 4 bytes
    assert server.received[:10] == struct.pack("<BxHHHH", ord("l"), 11, 0, 18, 16)
    assert server.received[12:30] == COOKIE_AUTH_NAME
    assert server.received[32:48] == b"S" * 16
    assert len(server.received) == 48


def test_probe_reports_a_refused_connection_in_one_line(socket_dir, tmp_path):
    server = FakeXServer(socket_dir / "X6", status=0, reason=b"No protocol specified")
    try:
        with pytest.raises(DisplayUnavailableError) as error:
            probe_x11(":6", xauthority=tmp_path / "none")
    finally:
        server.close()
    message = str(error.value)
    assert "refused the connection (No protocol specified)" in message
    assert "xhost +local:" in message and "--display vnc" in message
    assert "\n" not in message


def test_probe_without_display_or_socket_says_what_to_mount(socket_dir, monkeypatch):
    monkeypatch.delenv("DISPLAY", raising=False)
    with pytest.raises(DisplayUnavailableError, match="DISPLAY is not set.*-v /tmp/.X11-unix"):
        probe_x11()
    with pytest.raises(DisplayUnavailableError, match="does not answer") as error:
        probe_x11(":4321")
    assert "does not answer" in str(error.value)
    assert "-v /tmp/.X11-unix:/tmp/.X11-unix" in str(error.value)
    assert "--display vnc" in str(error.value)


def test_auto_falls_back_to_vnc_and_x11_does_not(monkeypatch):
    monkeypatch.setenv("DISPLAY", ":4322")
    assert choose_display("auto") == ("vnc", None)
    assert choose_display("vnc") == ("vnc", None)
    with pytest.raises(DisplayUnavailableError, match="X11 display :4322 does not answer"):
        choose_display("x11")
    with pytest.raises(SteinbockLikeError, match="unknown display mode"):
        choose_display("wayland")


# -- environments and command lines -----------------------------------------------------------
def test_app_environment_software_gl_and_removed_variables():
    command = AppCommand("ilastik", ["x"], env={"EXTRA": "1"}, unset_env=("PYTHONPATH",))
    base = {"PYTHONPATH": "/ours", "KEEP": "yes"}
    env = app_environment(command, {"DISPLAY": ":9"}, base=base, runtime_dir=Path("/r"))
    assert env["DISPLAY"] == ":9" and env["KEEP"] == "yes" and env["EXTRA"] == "1"
    assert "PYTHONPATH" not in env
    assert env["LIBGL_ALWAYS_SOFTWARE"] == "1" and env["GALLIUM_DRIVER"] == "llvmpipe"
    assert env["QT_X11_NO_MITSHM"] == "1" and env["XDG_RUNTIME_DIR"] == "/r"
    host_gl = app_environment(command, {"DISPLAY": ":9"}, gl="host", base=base)
    assert "LIBGL_ALWAYS_SOFTWARE" not in host_gl
    server = AppCommand("jupyter", ["j"], needs_display=False)
    assert "DISPLAY" not in app_environment(server, {"DISPLAY": ":9"}, base={})


def test_launchers_find_apps_and_say_where_they_are_missing(tmp_path, monkeypatch):
    from steinbock_like.apps import launchers

    monkeypatch.setenv("ILASTIK_BINARY", str(tmp_path / "missing.sh"))
    with pytest.raises(MissingToolError, match="ilastik not found at .*missing.sh.*ILASTIK_BINARY"):
        launchers.ilastik_command([], tmp_path)
    fake = tmp_path / "run_ilastik.sh"
    fake.write_text("#!/bin/sh\n")
    fake.chmod(0o755)
    monkeypatch.setenv("ILASTIK_BINARY", str(fake))
    command = launchers.ilastik_command(["--project=a b.ilp"], tmp_path)
    assert command.argv == [str(fake), "--project=a b.ilp"]
    assert "PYTHONPATH" in command.unset_env and command.cwd == tmp_path

    monkeypatch.setenv("CELLPROFILER_PYTHON", str(tmp_path / "nope" / "python"))
    with pytest.raises(MissingToolError, match="CELLPROFILER_PYTHON"):
        launchers.cellprofiler_command([], tmp_path)
    monkeypatch.setenv("CELLPROFILER_PYTHON", sys.executable)
    command = launchers.cellprofiler_command(["-p", "x.cppipe"], tmp_path)
    assert command.argv == [sys.executable, "-m", "cellprofiler", "-p", "x.cppipe"]


@pytest.mark.parametrize(("in_container", "bind"), [(True, ""), (False, ""), (True, "0.0.0.0")])
def test_jupyter_binds_loopback_unless_asked(tmp_path, monkeypatch, in_container, bind):
    from steinbock_like.apps import launchers

    monkeypatch.setattr(launchers, "in_docker_container", lambda: in_container)
    monkeypatch.setattr(launchers.importlib.util, "find_spec", lambda name: object())
    monkeypatch.setenv("STEINBOCK_LIKE_BIND", bind)
    command = launchers.jupyter_command(["--debug"], tmp_path, lab=True)
    address = bind or "127.0.0.1"  # a container too: only the wrapper asks for 0.0.0.0
    assert command.argv[1:4] == ["lab", f"--ServerApp.ip={address}", "--ServerApp.port=8888"]
    assert f"--ServerApp.root_dir={tmp_path}" in command.argv
    assert ("--no-browser" in command.argv) == in_container
    assert command.argv[-1] == "--debug" and not command.needs_display


# -- napari layers (no napari needed) ------------------------------------------------------------
def test_channel_names_prefer_kept_then_all_then_numbers():
    assert channel_names(["a", "b", "c"], ["a", "c"], 2) == ["a", "c"]
    assert channel_names(["a", "b", "c"], ["a", "c"], 3) == ["a", "b", "c"]
    assert channel_names(["a", "b", "c"], ["a", "c"], 4) == [f"channel {i}" for i in (1, 2, 3, 4)]
    assert channel_names(None, None, 1) == ["channel 1"]


def test_layer_specs_images_per_channel_and_masks_as_labels():
    rng = np.random.default_rng(0)
    first = rng.random((4, 8, 10)).astype(np.float32)
    second = rng.random((4, 8, 10)).astype(np.float32)
    mask = np.zeros((8, 10), np.uint16)
    mask[2:5, 3:6] = 7
    specs = layer_specs(
        {"img_a": first, "img_b": second},
        {"masks": {"img_a": mask, "img_b": mask}, "masks_nuclei": {"img_b": mask}},
        kept_names=["DNA", "CD3", "CD45", "Ir193"],
    )
    assert [(s.kind, s.name) for s in specs] == [
        ("image", "img_a DNA"),
        ("image", "img_a CD3"),
        ("image", "img_a CD45"),
        ("image", "img_a Ir193"),
        ("labels", "img_a masks"),
        ("image", "img_b DNA"),
        ("image", "img_b CD3"),
        ("image", "img_b CD45"),
        ("image", "img_b Ir193"),
        ("labels", "img_b masks"),
        ("labels", "img_b masks_nuclei"),
    ]
    # First image: 3 channels visible; the second hidden; data and contrast from the channel.
    assert [s.options["visible"] for s in specs[:5]] == [True, True, True, False, True]
    assert not any(s.options["visible"] for s in specs[5:])
    np.testing.assert_array_equal(specs[1].data, first[1])
    low, high = specs[1].options["contrast_limits"]
    assert low == pytest.approx(np.percentile(first[1], 0.1))
    assert high == pytest.approx(np.percentile(first[1], 99.9))
    assert specs[0].options["blending"] == "additive"
    np.testing.assert_array_equal(specs[4].data, mask)
    # A constant channel still gets a usable contrast range.
    flat = layer_specs({"x": np.ones((1, 3, 3))}, {})
    assert flat[0].options["contrast_limits"] == (1.0, 2.0)


def test_layer_specs_reject_a_mask_of_another_size():
    with pytest.raises(SteinbockLikeError, match=r"masks/img: mask shape \(4, 4\)"):
        layer_specs({"img": np.zeros((1, 5, 5))}, {"masks": {"img": np.zeros((4, 4))}})


def test_load_layer_specs_reads_the_layout(tmp_path):
    from steinbock_like.io.images import write_image
    from steinbock_like.io.masks import write_mask

    (tmp_path / "img").mkdir()
    (tmp_path / "masks").mkdir()
    (tmp_path / "masks_custom").mkdir()
    pd.DataFrame(
        {"channel": ["Ir191", "Xe131", "Sm149"], "name": ["DNA", "", "CD20"], "keep": [1, 0, 1]}
    ).to_csv(tmp_path / "panel.csv", index=False)
    image = np.arange(2 * 6 * 6, dtype=np.float32).reshape(2, 6, 6)
    write_image(tmp_path / "img" / "sample 1.tiff", image)
    mask = np.eye(6, dtype=np.uint16)
    write_mask(tmp_path / "masks" / "sample 1.tiff", mask)
    write_mask(tmp_path / "masks_custom" / "sample 1.tiff", mask * 2)
    specs = load_layer_specs(["sample 1"], tmp_path)
    assert [s.name for s in specs] == [
        "sample 1 DNA",
        "sample 1 CD20",
        "sample 1 masks",
        "sample 1 masks_custom",
    ]
    np.testing.assert_array_equal(specs[1].data, image[1])
    np.testing.assert_array_equal(specs[3].data, mask * 2)
    assert len(load_layer_specs([str(tmp_path / "img" / "sample 1.tiff")], tmp_path)) == 4
    with pytest.raises(SteinbockLikeError, match="no such image"):
        load_layer_specs(["absent"], tmp_path)


def test_napari_command_needs_napari(tmp_path, monkeypatch):
    from steinbock_like.apps import launchers

    monkeypatch.setattr(launchers.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(MissingToolError, match="napari is not installed"):
        launchers.napari_command(["img1"], tmp_path)


# -- x11 mode against a real Xvfb -----------------------------------------------------------------
@pytest.fixture(scope="module")
def xvfb_display(tmp_path_factory):
    """A real Xvfb with a cookie: (display, Xauthority path)."""
    xvfb = shutil.which("Xvfb")
    if xvfb is None:
        pytest.skip("Xvfb not installed (run scripts/install_apps_test_deps.sh)")
    from steinbock_like.apps.vnc import _read_line

    cookie_file = tmp_path_factory.mktemp("xvfb") / "Xauthority"
    write_xauthority(cookie_file, os.urandom(16))
    read_end, write_end = os.pipe()
    process = subprocess.Popen(
        [xvfb, "-displayfd", str(write_end), "-screen", "0", "640x480x24"]
        + ["-nolisten", "tcp", "-auth", str(cookie_file)],
        pass_fds=(write_end,),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    os.close(write_end)
    number = _read_line(read_end, 15)
    os.close(read_end)
    if not number.isdigit():
        process.kill()
        pytest.fail("Xvfb did not start")
    yield f":{number}", cookie_file
    process.terminate()
    process.wait(timeout=10)


def test_probe_a_real_display(xvfb_display, tmp_path):
    display, cookie_file = xvfb_display
    assert probe_x11(display, xauthority=cookie_file).number == int(display[1:])
    with pytest.raises(DisplayUnavailableError, match="refused the connection"):
        probe_x11(display, xauthority=tmp_path / "no-cookie")


# A stand-in app: records its arguments, environment and working directory, and checks that
# a real X client (xdpyinfo, where installed) can use the display it was given.
RECORDING_APP = """#!/usr/bin/env python3
import json, os, shutil, subprocess, sys
xdpyinfo = shutil.which("xdpyinfo")
status = subprocess.run([xdpyinfo], capture_output=True).returncode if xdpyinfo else None
names = ("DISPLAY", "XAUTHORITY", "LIBGL_ALWAYS_SOFTWARE", "QT_X11_NO_MITSHM", "PYTHONPATH")
record = {"argv": sys.argv[1:], "cwd": os.getcwd(), "xdpyinfo": status,
          "env": {name: os.environ.get(name) for name in names}}
with open(os.environ["RECORD"], "w") as file:
    json.dump(record, file)
sys.exit(int(os.environ.get("EXIT_STATUS", "0")))
"""


def _run_cli(arguments, env, cwd=None):
    return subprocess.run(
        [*STEINBOCK_LIKE, *arguments],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
        cwd=cwd,
    )


def test_apps_ilastik_on_a_real_x11_display(xvfb_display, tmp_path):
    display, cookie_file = xvfb_display
    fake_ilastik = tmp_path / "run_ilastik.sh"
    fake_ilastik.write_text(RECORDING_APP)
    fake_ilastik.chmod(0o755)
    data_dir = tmp_path / "my data"
    data_dir.mkdir()
    record = tmp_path / "record.json"
    env = {
        "DISPLAY": display,
        "XAUTHORITY": str(cookie_file),
        "ILASTIK_BINARY": str(fake_ilastik),
        "RECORD": str(record),
        "PYTHONPATH": "/should/not/reach/ilastik",
        "EXIT_STATUS": "3",
    }
    arguments = ["--data", str(data_dir), "apps", "ilastik", "--display", "x11"]
    arguments += ["--project=my project.ilp", "--unknown-flag", "it's"]
    result = _run_cli(arguments, env)
    assert result.returncode == 3, result.stderr  # the app's own status
    assert f"opens on X11 display {display}" in result.stderr
    recorded = json.loads(record.read_text())
    assert recorded["argv"] == ["--project=my project.ilp", "--unknown-flag", "it's"]
    assert recorded["cwd"] == str(data_dir)
    assert recorded["env"]["DISPLAY"] == display
    assert recorded["env"]["LIBGL_ALWAYS_SOFTWARE"] == "1"
    assert recorded["env"]["QT_X11_NO_MITSHM"] == "1"
    assert recorded["env"]["PYTHONPATH"] is None
    # A wildcard copy of the cookie, in a session directory removed afterwards.
    assert recorded["env"]["XAUTHORITY"] != str(cookie_file)
    assert not Path(recorded["env"]["XAUTHORITY"]).exists()
    if shutil.which("xdpyinfo"):
        assert recorded["xdpyinfo"] == 0


def test_apps_x11_error_when_no_display_answers(tmp_path):
    env = {"DISPLAY": ":4323", "ILASTIK_BINARY": sys.executable}
    result = _run_cli(["--data", str(tmp_path), "apps", "run", "--display", "x11", "true"], env)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("Error: X11 display :4323 does not answer")
    assert "-v /tmp/.X11-unix:/tmp/.X11-unix" in lines[0] and "--display vnc" in lines[0]


def test_apps_reports_a_missing_app_in_one_line(tmp_path):
    env = {"ILASTIK_BINARY": str(tmp_path / "nowhere.sh")}
    result = _run_cli(["--data", str(tmp_path), "apps", "ilastik", "--display", "vnc"], env)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"Error: ilastik not found at {tmp_path / 'nowhere.sh'}: install ilastik 1.4 and set "
        "ILASTIK_BINARY to its run_ilastik.sh, or use the steinbock-like container image"
    ]


# -- safe by default: the browser desktop ---------------------------------------------------------
class _FakeDesktop:
    """Stands in for VncDesktop: records where it was asked to listen."""

    instances: list = []

    def __init__(self, web_port, *, bind_address, geometry, password, work_dir):
        self.web_port, self.bind_address, self.password = web_port, bind_address, password
        _FakeDesktop.instances.append(self)

    def start(self):
        pass

    def stop(self):
        pass

    @property
    def env(self):
        return {"DISPLAY": ":99"}

    @property
    def url(self):
        return f"http://localhost:{self.web_port}/vnc.html" + (
            "?password=x" if self.password else ""
        )


@pytest.mark.parametrize("in_container", [True, False])
@pytest.mark.parametrize("password", [True, False])
def test_browser_desktop_listens_on_loopback_and_warns_without_password(
    monkeypatch, in_container, password
):
    from steinbock_like.apps import launch

    monkeypatch.setattr(launch, "VncDesktop", _FakeDesktop)
    monkeypatch.setattr(launch, "in_docker_container", lambda: in_container)
    monkeypatch.setattr(launch, "choose_display", lambda mode: ("vnc", None))
    monkeypatch.delenv("STEINBOCK_LIKE_BIND", raising=False)
    _FakeDesktop.instances.clear()
    messages = []
    command = launch.AppCommand("true", ["true"])
    status = launch.run_app(
        command, display="vnc", vnc_port=6099, vnc_password=password, announce=messages.append
    )
    assert status == 0
    assert _FakeDesktop.instances[0].bind_address == "127.0.0.1"  # a container too
    warnings = [m for m in messages if "NO PASSWORD" in m]
    if password:
        assert warnings == []
    else:
        assert len(warnings) == 1
        assert "http://localhost:6099/vnc.html" in warnings[0]
        assert "127.0.0.1:6099" in warnings[0] and "ssh -L 6099:localhost:6099" in warnings[0]
        assert warnings[0].count("#" * 80) == 2  # loud: framed, before the address line
        assert messages.index(warnings[0]) < len(messages) - 1


def test_the_desktop_listens_elsewhere_only_when_asked(monkeypatch):
    from steinbock_like.apps import launch

    monkeypatch.setenv("STEINBOCK_LIKE_BIND", "0.0.0.0")
    assert launch.default_bind_address() == "0.0.0.0"
    monkeypatch.delenv("STEINBOCK_LIKE_BIND")
    monkeypatch.setattr(launch, "in_docker_container", lambda: True)
    assert launch.default_bind_address() == "127.0.0.1"


def test_every_help_text_and_example_publishes_on_loopback_only(capsys):
    import re

    from cli_helpers import run as run_cli

    texts = {}
    for args in (
        ["apps", "--help"],
        ["apps", "ilastik", "--help"],
        ["apps", "jupyterlab", "--help"],
    ):
        run_cli(*args)
        texts[" ".join(args)] = capsys.readouterr().out
    repo = Path(__file__).resolve().parents[1]
    for path in [
        repo / "README.md",
        repo / "Dockerfile",
        *(repo / "docker").iterdir(),
        *(repo / "docs").glob("*.md"),
        *(repo / "steinbock_like" / "apps").glob("*.py"),
        repo / "steinbock_like" / "cli" / "apps.py",
    ]:
        texts[str(path)] = path.read_text()
    publish = re.compile(r"(?:-p|--publish)[ =]\"?([0-9.:$a-z_{}]+:[0-9$a-z_{}]+)")
    found = {(where, m) for where, text in texts.items() for m in publish.findall(text)}
    assert found  # the examples exist
    assert [(where, m) for where, m in found if not m.startswith("127.0.0.1:")] == []
    assert "-p 127.0.0.1:6080:6080" in texts["apps --help"]
    assert "ssh -L 6080:localhost:6080" in texts["apps --help"]


def test_apps_group_is_registered_in_the_real_entry_point():
    result = subprocess.run(
        [*STEINBOCK_LIKE, "apps", "--help"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    for name in ("ilastik", "napari", "run"):
        assert f"  {name}" in result.stdout
