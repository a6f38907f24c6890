"""The command line as a user runs it: help, one-line errors, exit codes."""

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from steinbock_like.cli.main import cli, main
from steinbock_like.io.images import write_image
from steinbock_like.io.masks import write_mask


def run_cli(capsys, *args):
    with pytest.raises(SystemExit) as info:
        main(list(args))
    captured = capsys.readouterr()
    return info.value.code, captured.out, captured.err


def run_ok(capsys, *args):
    try:
        main(list(args))
    except SystemExit as exit_:
        assert exit_.code == 0, capsys.readouterr().err
    return capsys.readouterr()


def all_commands(group, path=()):
    for name, command in group.commands.items():
        yield (*path, name), command
        if hasattr(command, "commands"):
            yield from all_commands(command, (*path, name))


def test_every_group_and_command_has_help_with_defaults(capsys):
    out = run_ok(capsys, "--help").out
    assert "Segment multiplexed tissue images" in out and "--data" in out
    commands = list(all_commands(cli))
    assert ("example", "imc") in [path for path, _ in commands]
    for path, command in commands:
        text = run_ok(capsys, *path, "--help").out
        assert command.help and len(text.splitlines()) > 3, path
        for param in command.params:
            if getattr(param, "show_default", False):
                shown = param.default
                if getattr(param, "secondary_opts", None):  # --x/--no-x flags show the name
                    shown = (param.opts if param.default else param.secondary_opts)[0].lstrip("-")
                assert f"[default: {shown}" in " ".join(text.split()), (path, param.name)


def test_python_dash_m_and_version():
    result = subprocess.run(
        [sys.executable, "-m", "steinbock_like", "--version"], capture_output=True, text=True
    )
    assert result.returncode == 0 and "steinbock-like, version" in result.stdout


def make_dataset(root, *, channels=3, mask_shape=(8, 9), extra_mask=False):
    (root / "panel.csv").write_text("channel,name\nA,a\nB,b\nC,c\n")
    write_image(root / "img" / "x.tiff", np.zeros((channels, 8, 9), np.float32))
    write_mask(root / "masks" / "x.tiff", np.zeros(mask_shape, np.uint16))
    if extra_mask:
        write_mask(root / "masks" / "y.tiff", np.zeros(mask_shape, np.uint16))


def test_check_accepts_a_consistent_dataset(tmp_path, capsys):
    make_dataset(tmp_path)
    err = run_ok(capsys, "--data", str(tmp_path), "check", "--masks", "masks").err
    assert "1 images consistent" in err


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"channels": 4}, "img/x.tiff: image has 4 channels but the panel lists 3"),
        (
            {"mask_shape": (9, 8)},
            "masks/x.tiff: mask shape (9, 8) does not match image shape (8, 9)",
        ),
        ({"extra_mask": True}, "masks/y.tiff: no matching file in"),
    ],
)
def test_check_reports_one_line_per_problem_without_traceback(tmp_path, capsys, kwargs, expected):
    make_dataset(tmp_path, **kwargs)
    code, _, err = run_cli(capsys, "--data", str(tmp_path), "check", "--masks", "masks")
    assert code == 1
    assert expected in err
    assert "Traceback" not in err
    assert err.strip().splitlines()[-1] == "Error: 1 problem(s) found"


def test_truncated_image_is_named(tmp_path, capsys):
    make_dataset(tmp_path)
    path = tmp_path / "img" / "x.tiff"
    path.write_bytes(path.read_bytes()[:20])
    code, _, err = run_cli(capsys, "--data", str(tmp_path), "check")
    assert code == 1 and f"{path}: unreadable" in err and "Traceback" not in err


def test_missing_panel_is_one_line_and_debug_shows_traceback(tmp_path, capsys):
    code, _, err = run_cli(capsys, "--data", str(tmp_path), "check")
    assert code == 1
    assert err.strip() == f"Error: {tmp_path / 'panel.csv'}: panel file not found"
    code, _, err = run_cli(capsys, "--debug", "--data", str(tmp_path), "check")
    assert code == 1 and "Traceback" in err


def test_unknown_option_is_a_usage_error(capsys):
    code, _, err = run_cli(capsys, "check", "--no-such-option")
    assert code == 2 and "No such option" in err


def test_example_imc_writes_a_valid_dataset_and_resumes(tmp_path, capsys):
    from steinbock_like import example
    from steinbock_like.cli import example as example_cli
    from steinbock_like.io.images import read_image
    from steinbock_like.io.masks import read_mask
    from steinbock_like.io.panel import read_panel

    assert (example_cli.MIN_CHANNELS, example_cli.MAX_CHANNELS) == (
        example.MIN_CHANNELS,
        example.MAX_CHANNELS,
    )
    args = ["--data", str(tmp_path), "example", "imc", "demo", "--size", "64", "--channels", "5"]
    run_ok(capsys, *args, "--images", "2", "--workers", "2")
    panel = read_panel(tmp_path / "demo" / "panel.csv")
    image = read_image(tmp_path / "demo" / "img" / "example_002.tiff", num_channels=len(panel))
    cells = read_mask(tmp_path / "demo" / "masks_truth" / "example_002.tiff", shape=(64, 64))
    assert image.shape == (5, 64, 64) and cells.max() > 5
    code, _, err = run_cli(capsys, *args, "--images", "2")
    assert code == 1 and "panel.csv exists already" in err
    run_ok(capsys, *args, "--images", "3", "--resume")
    assert (tmp_path / "demo" / "masks_truth_nuclei" / "example_003.tiff").exists()
    assert np.array_equal(  # resumed images are untouched, the dataset stays deterministic
        read_image(tmp_path / "demo" / "img" / "example_002.tiff"), image
    )


def test_evaluate_scores_masks_against_the_truth(tmp_path, capsys):
    truth = np.zeros((10, 10), np.uint16)
    truth[0:4, 0:4] = 1
    truth[6:10, 6:10] = 2
    truth[0:3, 6:9] = 3
    pred = np.zeros_like(truth)
    pred[0:4, 0:3] = 7  # IoU 12/16 with 1: a match
    pred[6:10, 6:8] = 8  # IoU 8/16 with 2: not above 0.5
    pred[5, 0] = 9  # a spurious object
    write_mask(tmp_path / "masks_truth" / "a.tiff", truth)
    write_mask(tmp_path / "masks" / "a.tiff", pred)
    err = run_ok(capsys, "--data", str(tmp_path), "evaluate").err
    table = pd.read_csv(tmp_path / "evaluation.csv", index_col="image")
    row = table.loc["a"]
    assert (row["reference_objects"], row["objects"], row["true_positives"]) == (3, 3, 1)
    assert row["f1"] == pytest.approx(2 / 6) and row["average_precision"] == pytest.approx(1 / 5)
    assert "mean F1 0.333" in err


def test_evaluate_writes_no_table_when_every_image_fails(tmp_path, capsys):
    (tmp_path / "masks_truth").mkdir()
    (tmp_path / "masks").mkdir()
    (tmp_path / "masks_truth" / "a.tiff").write_bytes(b"not a tiff")
    (tmp_path / "masks" / "a.tiff").write_bytes(b"not a tiff")
    code, _, err = run_cli(capsys, "--data", str(tmp_path), "evaluate")
    assert code == 1 and "a.tiff" in err
    assert not (tmp_path / "evaluation.csv").exists()
