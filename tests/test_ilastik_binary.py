"""classify ilastik run with a fake ilastik executable that checks what it is given."""

import os
import stat
import sys

import numpy as np
import pytest
import tifffile

from steinbock_like.classify.ilastik.binary import (
    find_ilastik_binary,
    ilastik_arguments,
    ilastik_environment,
    run_ilastik,
)
from steinbock_like.errors import MissingToolError, SteinbockLikeError
from steinbock_like.io.ilastik import write_ilastik_image

FAKE_ILASTIK = """\
#!{python}
import os, sys
from pathlib import Path
import numpy as np, tifffile

args = sys.argv[1:]
expected = [
    "--headless", "--project={project}", "--readonly", "--input_axes=cyx",
    "--export_source=Probabilities", "--output_format=tiff",
    "--output_filename_format={out}/{{nickname}}.tiff", "--export_dtype=uint16",
    "--output_axis_order=yxc", "--pipeline_result_drange=(0.0,1.0)", "--export_drange=(0,65535)",
]
if args[: len(expected)] != expected:
    sys.exit("bad arguments: %r" % (args,))
for name in ("PYTHONPATH", "PYTHONHOME", "LD_LIBRARY_PATH"):
    if name in os.environ:
        sys.exit("%s leaked into ilastik's environment" % name)
if os.environ.get("LAZYFLOW_THREADS") != "3" or os.environ.get("LAZYFLOW_TOTAL_RAM_MB") != "1024":
    sys.exit("lazyflow settings missing")
print("ilastik starting", flush=True)
for item in args[len(expected):]:
    file, dataset = item.rsplit("/", 1)
    assert dataset == "img" and Path(file).is_file(), item
    if "{fail_on}" and Path(file).stem == "{fail_on}":
        print("ERROR: cannot classify", Path(file).stem, flush=True)
        sys.exit(2)
    if Path(file).stem == "{skip}":
        continue
    nickname = Path(file).stem + "-" + dataset  # ilastik's nickname for A.h5/img
    tifffile.imwrite("{out}/" + nickname + ".tiff", np.full((4, 5, 3), 65535, np.uint16))
    print("exported", nickname, flush=True)
"""


def make_fake(tmp_path, out, project, fail_on="", skip=""):
    script = tmp_path / "run_ilastik.sh"
    script.write_text(
        FAKE_ILASTIK.format(
            python=sys.executable, project=project, out=out, fail_on=fail_on, skip=skip
        )
    )
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return script


@pytest.fixture
def images(tmp_path):
    paths = []
    for name in ("a_001", "b_002"):
        path = tmp_path / "ilastik_img" / f"{name}.h5"
        write_ilastik_image(path, np.zeros((2, 5, 4), np.float32))
        paths.append(path)
    return paths


@pytest.fixture
def polluted_env(monkeypatch):
    for name in ("PYTHONPATH", "PYTHONHOME", "LD_LIBRARY_PATH"):
        monkeypatch.setenv(name, "/should/not/reach/ilastik")


def test_run_renames_outputs_and_streams(tmp_path, images, polluted_env):
    out = tmp_path / "ilastik_probabilities"
    project = tmp_path / "p.ilp"
    project.write_bytes(b"")
    fake = make_fake(tmp_path, out, project)
    lines = []
    written = run_ilastik(
        project, images, out, binary=fake, threads=3, memory_mb=1024, on_line=lines.append
    )
    assert [p.name for p in written] == ["a_001.tiff", "b_002.tiff"]
    assert sorted(p.name for p in out.iterdir()) == ["a_001.tiff", "b_002.tiff"]
    assert tifffile.imread(written[0]).shape == (4, 5, 3)
    assert lines == ["ilastik starting", "exported a_001-img", "exported b_002-img"]


def test_run_failure_names_images(tmp_path, images, polluted_env):
    out = tmp_path / "probabilities"
    project = tmp_path / "p.ilp"
    fake = make_fake(tmp_path, out, project, fail_on="b_002")
    with pytest.raises(SteinbockLikeError, match=r"status 2 on 2 image\(s\): a_001, b_002") as info:
        run_ilastik(project, images, out, binary=fake, threads=3, memory_mb=1024, on_line=print)
    assert "cannot classify b_002" in str(info.value)


def test_run_missing_output_named(tmp_path, images, polluted_env):
    out = tmp_path / "probabilities"
    project = tmp_path / "p.ilp"
    fake = make_fake(tmp_path, out, project, skip="a_001")
    with pytest.raises(SteinbockLikeError, match="no probabilities for: a_001$"):
        run_ilastik(project, images, out, binary=fake, threads=3, memory_mb=1024, on_line=print)
    assert (out / "b_002.tiff").is_file()


def test_missing_binary_names_native_backend(tmp_path, monkeypatch):
    monkeypatch.delenv("ILASTIK_BINARY", raising=False)
    with pytest.raises(MissingToolError, match="--backend native"):
        find_ilastik_binary(tmp_path / "nope.sh")
    not_executable = tmp_path / "run_ilastik.sh"
    not_executable.write_text("#!/bin/sh\n")
    with pytest.raises(MissingToolError, match=str(not_executable)):
        find_ilastik_binary(not_executable)


def test_binary_from_environment(tmp_path, monkeypatch):
    fake = tmp_path / "ilastik.sh"
    fake.write_text("#!/bin/sh\n")
    fake.chmod(0o755)
    monkeypatch.setenv("ILASTIK_BINARY", str(fake))
    assert find_ilastik_binary() == fake
    assert find_ilastik_binary(None) == fake


def test_arguments_and_environment(tmp_path, monkeypatch):
    args = ilastik_arguments("/opt/ilastik/run_ilastik.sh", "p.ilp", ["d/a.h5"], "out")
    assert args[0] == "/opt/ilastik/run_ilastik.sh" and args[-1] == "d/a.h5/img"
    assert "--output_filename_format=out/{nickname}.tiff" in args
    env = ilastik_environment(2, 500, base={"PYTHONPATH": "x", "LD_LIBRARY_PATH": "y", "A": "1"})
    assert env == {"A": "1", "LAZYFLOW_THREADS": "2", "LAZYFLOW_TOTAL_RAM_MB": "500"}
    assert "LAZYFLOW_THREADS" not in ilastik_environment(base={})
    monkeypatch.setenv("PYTHONPATH", "/ours")
    assert "PYTHONPATH" not in ilastik_environment()
    assert os.environ["PYTHONPATH"] == "/ours"  # our own environment is left alone
