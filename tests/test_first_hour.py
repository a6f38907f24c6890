"""What a new user trips over in the first hour (issue 17), each through the CLI."""

import logging

import numpy as np
import pytest
from cli_helpers import run


def test_missing_data_directory_is_named(tmp_path, capsys):
    missing = tmp_path / "nonexistent"
    assert run("--data", missing, "check") == 1
    error = capsys.readouterr().err.strip()
    assert error == f"Error: {missing}: data directory not found (--data / STEINBOCK_LIKE_DATA)"
    # commands that do not read it still work (example creates it)
    assert run("--data", missing, "example", "imc", ".", "--images", "1", "--size", "32") == 0
    assert (missing / "img").is_dir()


def test_check_counts_one_mask_directory_in_the_singular(tmp_path, capsys):
    assert run("--data", tmp_path, "example", "imc", ".", "--images", "1", "--size", "32") == 0
    capsys.readouterr()
    assert run("--data", tmp_path, "check", "--masks", "masks_truth") == 0
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.endswith("consistent with panel.csv and 1 mask directory")


def test_napari_masks_is_a_real_option_and_the_hint_names_the_apps_extra(
    tmp_path, monkeypatch, capsys
):
    import importlib.util

    from steinbock_like.cli.main import cli

    command = cli.commands["apps"].commands["napari"]
    assert "--masks" in [opt for param in command.params for opt in param.opts]
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "napari" else real_find_spec(name, *a),
    )
    assert run("--data", tmp_path, "apps", "napari", "--masks", "masks_x", "img1") == 1
    assert "pip install 'steinbock-like[apps]'" in capsys.readouterr().err


def test_uint32_warning_names_the_file_with_its_folder(tmp_path, caplog):
    from steinbock_like.io.masks import write_mask

    mask = np.arange(1, 300 * 300 + 1, dtype=np.uint32).reshape(300, 300)
    with caplog.at_level(logging.WARNING, logger="steinbock_like"):
        write_mask(tmp_path / "masks" / "a.tiff", mask) if (
            tmp_path / "masks"
        ).mkdir() is None else None
    warnings = [r.getMessage() for r in caplog.records if "uint32" in r.getMessage()]
    assert warnings == [
        f"{tmp_path / 'masks' / 'a.tiff'}: more than 65535 objects, written as uint32"
    ]


@pytest.mark.parametrize(
    "group",
    [[], ["export"], ["segment"], ["apps"], ["models"], ["example"], ["preprocess", "imc"]],
)
def test_group_help_lines_are_not_cut_mid_phrase(group, capsys):
    assert run(*group, "--help") == 0
    out = capsys.readouterr().out
    commands = out.split("Commands:")[-1].strip().splitlines()
    assert commands and not [line for line in commands if line.rstrip().endswith("...")]
