"""``view`` (napari through the apps machinery)."""

from tests.cli_helpers import run


def test_view_opens_the_image_and_its_masks_in_napari(tmp_path, monkeypatch):
    import steinbock_like.apps.launchers as launchers
    import steinbock_like.cli.apps as apps

    calls = {}

    def fake_command(args, data_dir, panel):
        calls["command"] = (list(args), data_dir, panel)
        return "napari"

    monkeypatch.setattr(launchers, "napari_command", fake_command)
    monkeypatch.setattr(apps, "_run", lambda command, **display: calls.update(display=display))
    code = run("--data", tmp_path, "view", "a.tiff", "--masks", "masks", "--masks", "cells",
               "--pixelsize", "0.5", "--display", "x11", "-v", "DEBUG")  # fmt: skip
    assert code == 0
    args, data_dir, panel = calls["command"]
    root = tmp_path.resolve()
    masks = ["--masks", str(root / "masks"), "--masks", str(root / "cells")]
    assert args == [str(root / "img" / "a.tiff"), *masks]
    assert data_dir == root and panel == root / "panel.csv"
    assert calls["display"]["display_mode"] == "x11"


def test_view_without_napari_is_one_line(tmp_path, monkeypatch, capsys):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "napari" else real(name, *a)
    )
    assert run("--data", tmp_path, "view", "a.tiff") == 1
    err = capsys.readouterr().err
    assert err.startswith("Error: napari is not installed") and err.count("\n") == 1
