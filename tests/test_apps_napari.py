"""``apps napari`` end to end: the real viewer (``napari_viewer.main`` -> ``show`` ->
``napari.run``) on a real Xvfb display, started through ``python -m steinbock_like``.

A ``sitecustomize`` hook, put on the app's ``PYTHONPATH`` by the test only, lets the real
event loop start, then records what the viewer holds (layers, window, a canvas screenshot)
and closes the window, so that the app exits by itself as when a user closes it.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from test_apps import xvfb_display  # noqa: F401 (a fixture: a real Xvfb with a cookie)

STEINBOCK_LIKE = [sys.executable, "-m", "steinbock_like"]

# Imported by every Python started with this hook's folder on PYTHONPATH; does nothing
# unless NAPARI_SMOKE_RECORD is set, and then only once napari itself is imported.
HOOK = """
import importlib.abc
import importlib.util
import json
import os
import sys

RECORD = os.environ.get("NAPARI_SMOKE_RECORD")


def _patch(napari):
    real_run = napari.run

    def run(*args, **kwargs):
        from qtpy.QtCore import QTimer
        from qtpy.QtGui import QGuiApplication

        viewer = napari.current_viewer()

        def finish():
            window = viewer.window._qt_window
            shot = viewer.screenshot(canvas_only=True, flash=False)
            record = {
                "platform": QGuiApplication.platformName(),
                "title": window.windowTitle(),
                "visible": window.isVisible(),
                "layers": [
                    {
                        "name": layer.name,
                        "type": type(layer).__name__,
                        "shape": list(layer.data.shape),
                        "visible": bool(layer.visible),
                        "sum": float(layer.data.sum()),
                    }
                    for layer in viewer.layers
                ],
                "screenshot": {
                    "shape": list(shot.shape),
                    "distinct_colours": int(len(set(map(tuple, shot[..., :3].reshape(-1, 3))))),
                },
            }
            with open(RECORD, "w") as file:
                json.dump(record, file)
            viewer.close()

        QTimer.singleShot(int(os.environ.get("NAPARI_SMOKE_DELAY_MS", "1000")), finish)
        return real_run(*args, **kwargs)

    napari.run = run


class _Finder(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name != "napari":
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        real_exec = spec.loader.exec_module

        def exec_module(module):
            real_exec(module)
            _patch(module)

        spec.loader.exec_module = exec_module
        return spec


if RECORD:
    sys.meta_path.insert(0, _Finder())
"""


def _napari_missing() -> str | None:
    for module in ("napari", "PySide6.QtCore"):
        try:
            found = importlib.util.find_spec(module) is not None
        except ImportError:
            found = False
        if not found:
            return f"{module} not installed: pip install 'steinbock-like[apps]' (scripts/test.sh)"
    return None


NAPARI_MISSING = _napari_missing()


@pytest.fixture
def small_layout(tmp_path) -> Path:
    """img/, masks/ and masks_nuclei/ for one 3-channel 40 x 50 image, and its panel."""
    from steinbock_like.io.images import write_image
    from steinbock_like.io.masks import write_mask

    data = tmp_path / "data"
    (data / "img").mkdir(parents=True)
    pd.DataFrame(
        {
            "channel": ["Ir191", "Xe131", "Sm149", "Nd150"],
            "name": ["DNA", "unused", "CD20", "CD3"],
            "keep": [1, 0, 1, 1],
        }
    ).to_csv(data / "panel.csv", index=False)
    image = np.zeros((3, 40, 50), np.float32)
    image[0, 5:15, 5:20] = 10.0
    image[1, 20:35, 10:30] = 5.0
    image[2, 2:8, 40:48] = 1.0
    write_image(data / "img" / "slide one.tiff", image)
    cells = np.zeros((40, 50), np.uint16)
    cells[5:15, 5:20] = 1
    cells[20:35, 10:30] = 2
    nuclei = np.zeros((40, 50), np.uint16)
    nuclei[8:12, 9:14] = 1
    write_mask(data / "masks" / "slide one.tiff", cells)
    write_mask(data / "masks_nuclei" / "slide one.tiff", nuclei)
    return data


@pytest.mark.slow
@pytest.mark.skipif(NAPARI_MISSING is not None, reason=str(NAPARI_MISSING))
def test_apps_napari_opens_the_real_viewer_on_xvfb_and_exits(
    xvfb_display,  # noqa: F811
    small_layout,
    tmp_path,
):
    display, cookie_file = xvfb_display
    hook_dir = tmp_path / "hook"
    hook_dir.mkdir()
    (hook_dir / "sitecustomize.py").write_text(HOOK)
    record = tmp_path / "record.json"
    # The app runs in the data folder: entries of a relative PYTHONPATH are made absolute.
    inherited = filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))
    python_path = [str(hook_dir), *map(os.path.abspath, inherited)]
    env = {
        **os.environ,
        "DISPLAY": display,
        "XAUTHORITY": str(cookie_file),
        "PYTHONPATH": os.pathsep.join(python_path),
        "NAPARI_SMOKE_RECORD": str(record),
        # napari's first start writes settings and caches: keep them out of $HOME.
        "HOME": str(tmp_path / "home"),
        "XDG_CONFIG_HOME": str(tmp_path / "config"),
        "XDG_CACHE_HOME": str(tmp_path / "cache"),
    }
    env.pop("QT_QPA_PLATFORM", None)  # the app sets xcb: a real X11 window
    result = subprocess.run(
        [*STEINBOCK_LIKE, "--data", str(small_layout), "apps", "napari", "--display", "x11"]
        + ["slide one"],
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"X11 display {display}" in result.stderr
    assert record.is_file(), "the viewer never reached its event loop: " + result.stderr[-3000:]
    seen = json.loads(record.read_text())
    assert seen["platform"] == "xcb" and seen["visible"]
    assert seen["title"] == "steinbock-like napari"
    # One layer per kept channel, named from the panel, then the masks of the same name.
    assert [(layer["type"], layer["name"]) for layer in seen["layers"]] == [
        ("Image", "slide one DNA"),
        ("Image", "slide one CD20"),
        ("Image", "slide one CD3"),
        ("Labels", "slide one masks"),
        ("Labels", "slide one masks_nuclei"),
    ]
    assert all(layer["shape"] == [40, 50] for layer in seen["layers"])
    # The data arrived unchanged: channel sums and label sums.
    assert [layer["sum"] for layer in seen["layers"]] == [
        10.0 * 150,
        5.0 * 300,
        1.0 * 48,
        1 * 150 + 2 * 300,
        1 * 20,
    ]
    assert all(layer["visible"] for layer in seen["layers"])
    # The canvas was drawn (software OpenGL): more than the background colour.
    assert seen["screenshot"]["distinct_colours"] > 3
