"""Drop-in for steinbock 0.16.5: every steinbock command and option name is accepted,
the migration page is generated from the alias table, and the script-wide switches work."""

import logging
from pathlib import Path

import click
import numpy as np
import pytest

from steinbock_like.cli.main import cli
from steinbock_like.cli.steinbock_compat import commands_of, migration_markdown
from tests.cli_helpers import run

# Facts: steinbock 0.16.5's commands and option names, as its --help lists them
# (segment deepcell and segment cellpose from its source: they are listed only where
# DeepCell / Cellpose are installed).
STEINBOCK_0_16_5 = {  # fmt: skip
    "preprocess imc panel": (
        "--imcpanel",
        "--channelcol",
        "--namecol",
        "--keepcol",
        "--ilastikcol",
        "--mcd",
        "--txt",
        "--unzip",
        "--no-unzip",
        "-o",
        "--verbosity",
        "-v",
    ),
    "preprocess imc images": (
        "--mcd",
        "--txt",
        "--unzip",
        "--no-unzip",
        "--panel",
        "--hpf",
        "--imgout",
        "--infoout",
        "--strict",
        "--verbosity",
        "-v",
    ),
    "preprocess external panel": ("--img", "-o", "--verbosity", "-v"),
    "preprocess external images": (
        "--img",
        "--panel",
        "--mmap",
        "--no-mmap",
        "--imgout",
        "--infoout",
        "--verbosity",
        "-v",
    ),
    "classify ilastik prepare": (
        "-o",
        "--img",
        "--panel",
        "--aggr",
        "--mean",
        "--no-mean",
        "--meanfactor",
        "--scale",
        "--cropsize",
        "--imgout",
        "--cropout",
        "--seed",
        "--verbosity",
        "-v",
    ),
    "classify ilastik run": (
        "--ilastik",
        "--ilp",
        "--img",
        "-o",
        "--threads",
        "--mem",
        "--verbosity",
        "-v",
    ),
    "classify ilastik fix": (
        "--ilp",
        "--crop",
        "--probabs",
        "--backup",
        "--no-backup",
        "--axisorder",
        "--verbosity",
        "-v",
    ),
    "segment cellprofiler prepare": ("-o", "--verbosity", "-v"),
    "segment cellprofiler run": (
        "--python",
        "--cellprofiler",
        "--plugins-directory",
        "--pipe",
        "--probabs",
        "-o",
        "--verbosity",
        "-v",
    ),
    "segment deepcell": (
        "--app",
        "--model",
        "--modeldir",
        "--img",
        "--minmax",
        "--no-minmax",
        "--zscore",
        "--no-zscore",
        "--panel",
        "--aggr",
        "--pixelsize",
        "--type",
        "--preprocess",
        "--postprocess",
        "-o",
        "--verbosity",
        "-v",
    ),
    "segment cellpose": (
        "--img",
        "--minmax",
        "--no-minmax",
        "--zscore",
        "--no-zscore",
        "--panel",
        "--aggr",
        "--batch-size",
        "--resample",
        "--no-resample",
        "--channel-axis",
        "--normalize",
        "--no-normalize",
        "--invert",
        "--no-invert",
        "--rescale",
        "--diameter",
        "--flow-threshold",
        "--cellprob-threshold",
        "--min-size",
        "--max-size-fraction",
        "--niter",
        "--augment",
        "--no-augment",
        "--tile-overlap",
        "-o",
        "--verbosity",
        "-v",
    ),
    "measure intensities": (
        "--img",
        "--masks",
        "--panel",
        "--aggr",
        "--mmap",
        "--no-mmap",
        "-o",
        "--verbosity",
        "-v",
    ),
    "measure regionprops": ("--img", "--masks", "--mmap", "--no-mmap", "-o", "--verbosity", "-v"),
    "measure neighbors": (
        "--masks",
        "--type",
        "--metric",
        "--dmax",
        "--kmax",
        "--mmap",
        "--no-mmap",
        "-o",
        "--verbosity",
        "-v",
    ),
    "measure cellprofiler prepare": (
        "--img",
        "--masks",
        "--panel",
        "--pipeout",
        "--dataout",
        "--verbosity",
        "-v",
    ),
    "measure cellprofiler run": (
        "--python",
        "--cellprofiler",
        "--plugins-directory",
        "--pipe",
        "--data",
        "-o",
        "--verbosity",
        "-v",
    ),
    "export ome": ("--img", "--panel", "-o", "--verbosity", "-v"),
    "export histocat": ("--img", "--masks", "--panel", "-o", "--verbosity", "-v"),
    "export csv": ("--concat", "--no-concat", "-o", "--verbosity", "-v"),
    "export fcs": ("--concat", "--no-concat", "-o", "--verbosity", "-v"),
    "export anndata": (
        "--intensities",
        "--data",
        "--neighbors",
        "--panel",
        "--info",
        "--concat",
        "--no-concat",
        "--format",
        "-o",
        "--verbosity",
        "-v",
    ),
    "export graphs": ("--neighbors", "--data", "--format", "-o", "--verbosity", "-v"),
    "utils expand": ("--mmap", "--no-mmap", "-o", "--verbosity", "-v"),
    "utils match": ("--mmap", "--no-mmap", "-o", "--verbosity", "-v"),
    "utils mosaics tile": ("--size", "--mmap", "--no-mmap", "-o", "--verbosity", "-v"),
    "utils mosaics stitch": (
        "--relabel",
        "--no-relabel",
        "--mmap",
        "--no-mmap",
        "-o",
        "--verbosity",
        "-v",
    ),
    "view": ("--img", "--masks", "--panel", "--pixelsize", "--verbosity", "-v"),
    "apps ilastik": ("--ilastik", "--verbosity", "-v"),
    "apps cellprofiler": ("--python", "--cellprofiler", "--plugins-directory", "--verbosity", "-v"),
    "apps jupyter": ("--python", "--jupyter", "--verbosity", "-v"),
    "apps jupyterlab": ("--python", "--jupyter", "--verbosity", "-v"),
}

#: steinbock's positional arguments (name: count, -1 = any number)
STEINBOCK_ARGUMENTS = {
    "measure regionprops": -1,
    "export csv": -1,
    "export fcs": -1,
    "utils expand": 2,
    "utils match": 2,
    "utils mosaics tile": -1,
    "utils mosaics stitch": -1,
    "view": 1,
}

OURS = dict(commands_of(cli))


def _names(command: click.Command) -> set[str]:
    return {name for p in command.params for name in (*p.opts, *p.secondary_opts)}


@pytest.mark.parametrize("path", sorted(STEINBOCK_0_16_5))
def test_every_steinbock_command_and_option_is_accepted(path):
    assert path in OURS, f"missing command: {path}"
    missing = set(STEINBOCK_0_16_5[path]) - _names(OURS[path])
    assert not missing, f"{path}: missing {sorted(missing)}"


@pytest.mark.parametrize("path", sorted(STEINBOCK_0_16_5))
def test_every_steinbock_option_parses(path, capsys):
    """Through the real parser: an unknown option would exit 2 before --help runs."""
    by_name = {n: p for p in OURS[path].params for n in (*p.opts, *p.secondary_opts)}
    for name in STEINBOCK_0_16_5[path]:
        param = by_name[name]
        value = (
            []
            if getattr(param, "is_flag", False)
            else ["INFO" if name in ("-v", "--verbosity") else "1"]
        )
        assert run(*path.split(), name, *value, "--help") == 0, name
        assert "Usage:" in capsys.readouterr().out


@pytest.mark.parametrize("path", sorted(STEINBOCK_ARGUMENTS))
def test_steinbock_positional_arguments(path):
    arguments = [p for p in OURS[path].params if isinstance(p, click.Argument)]
    nargs = STEINBOCK_ARGUMENTS[path]
    if nargs == -1:
        assert arguments and arguments[-1].nargs == -1
    else:
        assert sum(a.nargs for a in arguments[:nargs]) == nargs


def test_migration_page_is_up_to_date():
    page = Path(__file__).parents[1] / "docs" / "migration.md"
    assert page.read_text() == migration_markdown(), (
        "docs/migration.md is stale: python -m steinbock_like.cli.steinbock_compat "
        "> docs/migration.md"
    )
    assert "`steinbock-like classify ilastik fix --cropdir X`" in page.read_text()


def test_steinbock_verbosity_sets_the_log_level(tmp_path):
    logger = logging.getLogger("steinbock_like")
    assert run("--data", tmp_path, "segment", "cellprofiler", "prepare", "-v", "WARNING") == 0
    assert logger.level == logging.WARNING
    assert run("--data", tmp_path, "segment", "cellprofiler", "prepare", "--overwrite",
               "--verbosity", "debug") == 0  # fmt: skip
    assert logger.level == logging.DEBUG
    assert run("segment", "cellprofiler", "prepare", "-v", "LOUD") == 2


def test_environment_turns_on_overwrite(tmp_path, monkeypatch):
    monkeypatch.delenv("STEINBOCK_LIKE_OVERWRITE", raising=False)
    args = ["--data", tmp_path, "segment", "cellprofiler", "prepare"]
    assert run(*args) == 0
    assert run(*args) == 1  # exists: refused
    monkeypatch.setenv("STEINBOCK_LIKE_OVERWRITE", "1")
    assert run(*args) == 0
    masks = tmp_path / "masks"
    masks.mkdir()
    from steinbock_like.io.masks import read_mask, write_mask

    write_mask(masks / "a.tiff", np.array([[1, 0, 0, 0]], np.uint16))
    out = ["--data", tmp_path, "utils", "expand", "masks", "1", "-o", "expanded"]
    assert run(*out) == 0
    assert run(*out) == 0  # replaced, not refused
    # an explicit --resume wins over the environment: the existing output is kept
    write_mask(masks / "a.tiff", np.array([[0, 0, 0, 1]], np.uint16))
    assert run(*out, "--resume") == 0
    assert read_mask(tmp_path / "expanded" / "a.tiff").tolist() == [[1, 1, 0, 0]]
    assert run(*out) == 0
    assert read_mask(tmp_path / "expanded" / "a.tiff").tolist() == [[0, 0, 1, 1]]
    monkeypatch.setenv("STEINBOCK_LIKE_OVERWRITE", "0")
    assert run(*out) == 1


def test_unsupported_value_of_an_accepted_option_is_an_error(tmp_path, capsys):
    # another channel axis than our images' (CYX): an error, not silently something else
    assert run("--data", tmp_path, "segment", "cellpose", "--channel-axis", "2") == 2
    assert "not supported" in capsys.readouterr().err
    # values that are what we do pass (and the command then runs: no panel here)
    code = run("--data", tmp_path, "segment", "cellpose", "--no-resample", "--channel-axis", "0",
               "--max-size-fraction", "0.4", "--no-augment", "--invert")  # fmt: skip
    assert code == 1
    assert "not supported" not in capsys.readouterr().err


def test_fix_takes_steinbock_names(refdata, tmp_path):
    import shutil

    from steinbock_like.io.ilastik_project import read_project

    shutil.copy(refdata / "ilastik_original.ilp", tmp_path / "project.ilp")
    shutil.copytree(refdata / "ilastik_crops_original", tmp_path / "crops")
    code = run(
        "--data", tmp_path, "classify", "ilastik", "fix", "--ilp", "project.ilp",
        "--crop", "crops", "--probabs", "probs", "--axisorder", "zyxc", "--no-backup", "-v", "INFO",
    )  # fmt: skip
    assert code == 0
    summary = read_project(tmp_path / "project.ilp")
    assert all(lane.file_path.startswith("crops/") for lane in summary.lanes)
