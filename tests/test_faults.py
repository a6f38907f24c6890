"""Faults and bad input provoked for real through the command line (issue 15).

Each test makes the fault happen (kill -9, ``ulimit -f``, a read-only directory, a
corrupt or odd file) and asserts what is left: outputs, tables, messages, modes.
Signals to runs with worker processes are in ``test_faults_signals.py``.
"""

import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest
import tifffile
from cli_helpers import run

from steinbock_like.io.ilastik import read_ilastik_crop, write_ilastik_image
from steinbock_like.io.images import write_image
from steinbock_like.io.masks import read_mask, write_mask
from steinbock_like.io.probabilities import write_probabilities

PANEL = "channel,name,ilastik,deepcell\nA,a,1,1\nB,b,2,2\nC,c,2,\n"
UNICODE_NAME = "example_001 ü 日"


def image_dataset(root: Path, names=("im0", "im1"), size=40, seed=0) -> Path:
    (root / "panel.csv").write_text(PANEL)
    rng = np.random.default_rng(seed)
    for name in names:
        write_image(root / "img" / f"{name}.tiff", rng.random((3, size, size), dtype=np.float32))
    return root


def listing(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir()) if directory.exists() else []


def cli(root: Path, *args, shell_prefix: str = "", unprivileged: bool = False):
    """``python -m steinbock_like --data ROOT ARGS`` in a shell (for ulimit/umask)."""
    import shlex

    command = " ".join(
        shlex.quote(str(a)) for a in [sys.executable, "-m", "steinbock_like", "--data", root, *args]
    )
    if shell_prefix:
        command = f"{shell_prefix}; exec {command}"
    argv = ["bash", "-c", command]
    if unprivileged and os.geteuid() == 0:  # root without the power to ignore file modes
        caps = "-dac_override,-dac_read_search"
        argv = ["setpriv", f"--bounding-set={caps}", f"--inh-caps={caps}", *argv]
    return subprocess.run(argv, capture_output=True, text=True, timeout=300)


# --------------------------------------------------------------------------------------
# repair / evaluate: per-run tables survive kill + resume, a failed image's rerun, and are
# never replaced without --overwrite
# --------------------------------------------------------------------------------------


def repair_dataset(root: Path, count: int, size: int = 120) -> Path:
    """Cells (squares) and nuclei (smaller squares) with a few odd ones per image."""
    for i in range(count):
        cells = np.zeros((size, size), np.uint16)
        nuclei = np.zeros((size, size), np.uint16)
        label = 0
        for y in range(2, size - 12, 12):
            for x in range(2, size - 12, 12):
                label += 1
                cells[y : y + 10, x : x + 10] = label
                if (label + i) % 7:  # some cells have no nucleus
                    nuclei[y + 3 : y + 7, x + 3 : x + 7] = label
        write_mask(root / "masks" / f"im{i:02d}.tiff", cells)
        write_mask(root / "masks_nuclei" / f"im{i:02d}.tiff", nuclei)
    return root


def test_repair_killed_then_resumed_keeps_every_row_of_its_metrics(tmp_path):
    reference = repair_dataset(tmp_path / "reference", 12)
    assert cli(reference, "repair").returncode == 0
    expected = pd.read_csv(reference / "repair_metrics.csv")
    assert len(expected) == 12

    root = repair_dataset(tmp_path / "killed", 12, size=600)
    repair_dataset(root, 12)  # same masks as the reference: same metrics
    for path in (root / "masks").glob("im*.tiff"):  # except the first few: slow ones
        if path.name >= "im04":
            big = np.kron(read_mask(path), np.ones((5, 5), np.uint16))
            write_mask(path, big)
            write_mask(
                root / "masks_nuclei" / path.name,
                np.kron(read_mask(root / "masks_nuclei" / path.name), np.ones((5, 5), np.uint16)),
            )
    process = subprocess.Popen(
        [sys.executable, "-m", "steinbock_like", "--data", str(root), "repair"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 120
    while len(listing(root / "masks_matched")) < 3 and time.monotonic() < deadline:
        assert process.poll() is None
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.wait()
    done_before = len([n for n in listing(root / "masks_matched") if n.endswith(".tiff")])
    assert 0 < done_before < 12
    assert not (root / "repair_metrics.csv").exists()

    assert cli(root, "repair", "--resume").returncode == 0
    table = pd.read_csv(root / "repair_metrics.csv")
    assert list(table["image"]) == [f"im{i:02d}" for i in range(12)]
    small = table.set_index("image").loc[[f"im{i:02d}" for i in range(4)]]
    pd.testing.assert_frame_equal(small, expected.set_index("image").iloc[:4])


def test_failed_image_rerun_with_resume_keeps_all_rows(tmp_path, capsys):
    root = repair_dataset(tmp_path, 3)
    good = (root / "masks_nuclei" / "im01.tiff").read_bytes()
    (root / "masks_nuclei" / "im01.tiff").write_bytes(good[:100])
    assert run("--data", root, "repair") == 1
    assert "im01.tiff: unreadable or truncated TIFF" in capsys.readouterr().err
    assert listing(root / "masks_matched") == ["im00.tiff", "im02.tiff", "run_metadata.json"]
    (root / "masks_nuclei" / "im01.tiff").write_bytes(good)
    assert run("--data", root, "repair", "--resume") == 0
    table = pd.read_csv(root / "repair_metrics.csv")
    assert list(table["image"]) == ["im00", "im01", "im02"]
    assert table.notna().all().all()


def test_repair_and_evaluate_never_replace_a_table_without_overwrite(tmp_path, capsys):
    root = repair_dataset(tmp_path, 2)
    assert run("--data", root, "repair") == 0
    before = (root / "repair_metrics.csv").read_bytes()
    code = run(
        "--data",
        root,
        "repair",
        "--cells-out",
        "other_cells",
        "--nuclei-out",
        "other_nuclei",
        "--cytoplasm-out",
        "other_cytoplasm",
    )
    err = capsys.readouterr().err
    assert code == 1 and "repair_metrics.csv" in err and "--overwrite" in err
    assert (root / "repair_metrics.csv").read_bytes() == before
    assert not (root / "other_cells").exists() or listing(root / "other_cells") == []

    shutil.copytree(root / "masks", root / "masks_truth")
    assert run("--data", root, "evaluate") == 0
    scores = (root / "evaluation.csv").read_bytes()
    assert run("--data", root, "evaluate", "--masks", "masks_matched") == 1
    assert "evaluation.csv" in capsys.readouterr().err
    assert (root / "evaluation.csv").read_bytes() == scores
    assert run("--data", root, "evaluate", "--masks", "masks_matched", "--overwrite") == 0
    assert (root / "evaluation.csv").read_bytes() != scores


# --------------------------------------------------------------------------------------
# --resume with other settings
# --------------------------------------------------------------------------------------


def test_resume_with_another_scale_is_refused_naming_the_option(tmp_path, capsys):
    root = image_dataset(tmp_path, ("im0", "im1", "im2"))
    assert run("--data", root, "classify", "ilastik", "prepare", "--scale", "2") == 0
    (root / "ilastik_img" / "im2.h5").unlink()  # as if killed before the last image
    files = {p: p.read_bytes() for p in (root / "ilastik_img").iterdir()}
    code = run("--data", root, "classify", "ilastik", "prepare", "--scale", "1", "--resume")
    err = capsys.readouterr().err
    assert code == 1
    assert "--scale 2" in err and "this run has 1" in err
    assert {p: p.read_bytes() for p in (root / "ilastik_img").iterdir()} == files
    assert run("--data", root, "classify", "ilastik", "prepare", "--scale", "2", "--resume") == 0
    assert (root / "ilastik_img" / "im2.h5").is_file()


# --------------------------------------------------------------------------------------
# Two runs in one directory; stale files of dead runs
# --------------------------------------------------------------------------------------


def test_a_second_run_leaves_the_temp_file_of_a_live_run_alone(tmp_path):
    root = image_dataset(tmp_path)
    out = root / "ilastik_img"
    out.mkdir()
    # Another run, alive, in the middle of writing a file into the same directory.
    writer = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from steinbock_like.io.atomic import atomic_path\n"
            f"with atomic_path({str(out / 'other.h5')!r}) as tmp:\n"
            "    tmp.write_bytes(b'data'); print(tmp, flush=True); sys.stdin.readline()\n",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    temp = Path(writer.stdout.readline().strip())
    dead = out / ".tmp-999999999-leftover.h5"  # a run that no longer exists
    dead.write_bytes(b"half")
    try:
        assert run("--data", root, "classify", "ilastik", "prepare", "--cropsize", "20") == 0
        assert temp.is_file() and not dead.exists()
    finally:
        writer.communicate("go\n", timeout=30)
    assert writer.returncode == 0
    assert (out / "other.h5").read_bytes() == b"data" and not temp.exists()


# --------------------------------------------------------------------------------------
# Disk full, umask
# --------------------------------------------------------------------------------------


def test_disk_full_leaves_no_outputs_of_failed_images(tmp_path):
    root = image_dataset(tmp_path, ("small0", "small1"), size=60)
    rng = np.random.default_rng(1)
    for name in ("big0", "big1"):
        write_image(root / "img" / f"{name}.tiff", rng.random((3, 300, 300), dtype=np.float32))
    # 600 KiB per file: the small images' files fit, the big ones' (4 MiB) do not.
    result = cli(
        root, "classify", "ilastik", "prepare", "--cropsize", "20", shell_prefix="ulimit -f 600"
    )
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert "big0: failed:" in result.stderr and "File too large" in result.stderr
    assert listing(root / "ilastik_img") == ["run_metadata.json", "small0.h5", "small1.h5"]
    crops = [n.split("_x")[0] for n in listing(root / "ilastik_crops") if n.endswith(".h5")]
    assert crops == ["small0", "small1"]
    assert not list(root.rglob(".tmp-*"))


@pytest.mark.parametrize(("umask", "mode"), [("002", 0o664), ("077", 0o600), ("022", 0o644)])
def test_outputs_honour_the_umask(tmp_path, umask, mode):
    root = image_dataset(tmp_path)
    result = cli(
        root, "classify", "ilastik", "prepare", "--cropsize", "20", shell_prefix=f"umask {umask}"
    )
    assert result.returncode == 0, result.stderr
    files = [
        root / "ilastik_img" / "im0.h5",
        root / "ilastik_img" / "run_metadata.json",
        root / "pixel_classifier.ilp",
        *(root / "ilastik_crops").iterdir(),
    ]
    assert {oct(stat.S_IMODE(p.stat().st_mode)) for p in files} == {oct(mode)}


# --------------------------------------------------------------------------------------
# Names: Unicode, too long
# --------------------------------------------------------------------------------------


def test_unicode_image_names_through_prepare_and_a_segmenter(tmp_path):
    from steinbock_like.io.ilastik_project import read_project

    root = image_dataset(tmp_path, (UNICODE_NAME, "plain"), size=60)
    assert run("--data", root, "classify", "ilastik", "prepare", "--cropsize", "20") == 0
    assert f"{UNICODE_NAME}.h5" in listing(root / "ilastik_img")
    project = read_project(root / "pixel_classifier.ilp")
    assert sorted(lane.nickname.split("_x")[0] for lane in project.lanes) == [
        UNICODE_NAME,
        "plain",
    ]
    rng = np.random.default_rng(0)
    probabilities = (rng.random((120, 120, 3)) * 65535).astype(np.uint16)
    write_probabilities(root / "ilastik_probabilities" / f"{UNICODE_NAME}.tiff", probabilities)
    assert run("--data", root, "segment", "cellprofiler", "prepare") == 0
    assert run("--data", root, "segment", "cellprofiler", "run", "--backend", "native") == 0
    assert read_mask(root / "masks" / f"{UNICODE_NAME}.tiff").shape == (60, 60)
    metadata = json.loads((root / "masks" / "run_metadata.json").read_text(encoding="utf-8"))
    assert metadata["images"][UNICODE_NAME]["status"] == "ok"
    assert run("--data", root, "check") == 0


def test_a_245_character_name_is_refused_before_any_work_and_check_reports_it(tmp_path, capsys):
    long_name = "a" * 245
    root = image_dataset(tmp_path, ("im0", long_name))
    assert run("--data", root, "check") == 1
    err = capsys.readouterr().err
    assert f"{long_name}.tiff: image name is 245 bytes long" in err
    assert run("--data", root, "classify", "ilastik", "prepare", "--cropsize", "20") == 1
    err = capsys.readouterr().err
    assert "output file name is" in err and "the file system allows 255" in err
    assert len(err.strip().splitlines()) == 1
    assert listing(root / "ilastik_img") == [] and listing(root / "ilastik_crops") == []


# --------------------------------------------------------------------------------------
# Unwritable outputs: one line naming the directory, nothing computed
# --------------------------------------------------------------------------------------


def test_output_path_that_is_a_file_is_refused_before_any_work(tmp_path, capsys):
    root = image_dataset(tmp_path)
    (root / "ilastik_img").write_text("not a directory")
    assert run("--data", root, "classify", "ilastik", "prepare", "--cropsize", "20") == 1
    err = capsys.readouterr().err
    assert err.strip().splitlines() == [
        f"Error: {root / 'ilastik_img'}: cannot be an output directory, a file has that name"
    ]
    assert listing(root / "ilastik_crops") == [] and not (root / "pixel_classifier.ilp").exists()


@pytest.mark.skipif(
    os.geteuid() == 0 and shutil.which("setpriv") is None,
    reason="root ignores permissions and setpriv is missing to drop them",
)
def test_read_only_output_directory_is_refused_before_any_work(tmp_path):
    root = image_dataset(tmp_path, tuple(f"im{i}" for i in range(5)))
    (root / "ilastik_img").mkdir()
    (root / "ilastik_img").chmod(0o555)  # read-only
    result = cli(root, "-v", "classify", "ilastik", "prepare", unprivileged=True)
    assert result.returncode == 1
    lines = [line for line in result.stderr.splitlines() if line.startswith("Error")]
    assert lines == [
        f"Error: {root / 'ilastik_img'}: output directory is not writable (Permission denied)"
    ]
    assert "[1/5]" not in result.stderr  # no image was computed
    assert listing(root / "ilastik_img") == [] and listing(root / "ilastik_crops") == []


# --------------------------------------------------------------------------------------
# classify ilastik fix: validate everything, then write; a failure changes nothing
# --------------------------------------------------------------------------------------


ZYXC_AXISTAGS = json.dumps(
    {"axes": [{"key": k, "typeFlags": 2} for k in "zyx"] + [{"key": "c", "typeFlags": 1}]}
)


def foreign_project(root: Path) -> Path:
    """A project with 3 crops in ilastik's own layout (uint16 ZYXC) and label blocks."""
    from steinbock_like.io.ilastik_project import LabelBlock, read_project, write_label_blocks

    image_dataset(root, ("im0", "im1", "im2"), size=40)
    assert run("--data", root, "classify", "ilastik", "prepare", "--cropsize", "20") == 0
    crops = sorted((root / "ilastik_crops").glob("*.h5"))
    for crop in crops:
        with h5py.File(crop, "r") as file:
            data = file["crop"][()]
        zyxc = (np.moveaxis(data, 0, -1)[np.newaxis] * 1000).astype(np.uint16)
        with h5py.File(crop, "w") as file:
            dataset = file.create_dataset(crop.stem, data=zyxc)
            dataset.attrs["axistags"] = json.dumps(
                {
                    "axes": [{"key": k, "typeFlags": 2} for k in "zyx"]
                    + [{"key": "c", "typeFlags": 1}]
                }
            )
    with h5py.File(root / "pixel_classifier.ilp", "r+") as file:  # lanes in ZYXC
        for lane in file["Input Data/infos"].values():
            raw = lane["Raw Data"]
            shape = raw["shape"][()]
            del raw["axistags"], raw["shape"]
            raw["axistags"] = ZYXC_AXISTAGS
            raw["shape"] = np.array([1, shape[1], shape[2], shape[0]], np.int64)
    project = read_project(root / "pixel_classifier.ilp")
    blocks = {
        lane: [
            LabelBlock(
                lane,
                "block0000",
                np.ones((1, 4, 5, 1), np.uint8),
                "[0:1,2:6,3:8,0:1]",
            )
        ]
        for lane in range(len(project.lanes))
    }
    write_label_blocks(root / "pixel_classifier.ilp", blocks)
    return root


def snapshot(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and "ilastik_img" not in p.parts
    }


def set_axistags(path: Path, keys: str) -> None:
    with h5py.File(path, "r+") as file:
        dataset = file[next(iter(file))]
        dataset.attrs["axistags"] = json.dumps({"axes": [{"key": k, "typeFlags": 2} for k in keys]})


@pytest.mark.parametrize("backup", [True, False])
def test_fix_with_an_unknown_axis_order_in_crop_3_of_3_changes_nothing(tmp_path, capsys, backup):
    root = foreign_project(tmp_path)
    third = sorted((root / "ilastik_crops").glob("*.h5"))[2]
    set_axistags(third, "qyxc")
    before = snapshot(root)
    args = ["--data", root, "classify", "ilastik", "fix"]
    assert run(*args, *([] if backup else ["--no-backup"])) == 1
    err = capsys.readouterr().err
    assert third.name in err and "Traceback" not in err
    assert snapshot(root) == before  # no crop converted, the project untouched, no .bak
    assert not list(root.glob("*.bak"))
    set_axistags(third, "zyxc")
    assert run(*args) == 0  # nothing blocks the rerun
    for crop in (root / "ilastik_crops").glob("*.h5"):
        assert read_ilastik_crop(crop).shape == (3, 20, 20)
    assert (root / "pixel_classifier.ilp.bak").is_file()


def test_fix_with_a_garbage_block_slice_changes_nothing(tmp_path, capsys):
    root = foreign_project(tmp_path)
    with h5py.File(root / "pixel_classifier.ilp", "r+") as file:
        labels = file["PixelClassification/LabelSets/labels002"]
        labels["block0000"].attrs["blockSlice"] = "[garbage"
    before = snapshot(root)
    assert run("--data", root, "classify", "ilastik", "fix") == 1
    err = capsys.readouterr().err
    assert "pixel_classifier.ilp" in err and "Traceback" not in err
    assert snapshot(root) == before and not list(root.glob("*.bak"))


# --------------------------------------------------------------------------------------
# Non-finite pixels
# --------------------------------------------------------------------------------------


def test_nan_and_inf_pixels_are_one_line_naming_the_file_in_check_and_commands(tmp_path, capsys):
    root = image_dataset(tmp_path, ("good", "nan", "inf"))
    for name, value in (("nan", np.nan), ("inf", np.inf)):
        image = np.ones((3, 40, 40), np.float32)
        image[1, 5, 7] = value
        write_image(root / "img" / f"{name}.tiff", image)
    assert run("--data", root, "check") == 1
    err = capsys.readouterr().err
    assert f"{root / 'img' / 'nan.tiff'}: non-finite pixel values (1 NaN, 0 infinite)" in err
    assert f"{root / 'img' / 'inf.tiff'}: non-finite pixel values (0 NaN, 1 infinite)" in err
    assert run("--data", root, "classify", "ilastik", "prepare", "--cropsize", "20") == 1
    err = capsys.readouterr().err
    assert f"nan: failed: {root / 'img' / 'nan.tiff'}: non-finite pixel values" in err
    assert listing(root / "ilastik_img") == ["good.h5", "run_metadata.json"]
    # per-channel readers (measure reads bands of rows)
    for name in ("good", "nan", "inf"):
        write_mask(root / "masks" / f"{name}.tiff", np.ones((40, 40), np.uint16))
    assert run("--data", root, "measure", "intensities") == 1
    err = capsys.readouterr().err
    assert "nan.tiff: non-finite pixel values" in err and "inf.tiff: non-finite" in err


def test_nan_in_an_ilastik_image_fails_that_image_naming_it(tmp_path, capsys):
    from steinbock_like.io.ilastik_project import LabelBlock, write_label_blocks

    root = image_dataset(tmp_path, ("im0", "im1"), size=60)
    assert run("--data", root, "classify", "ilastik", "prepare", "--cropsize", "20") == 0
    labels = np.zeros((1, 10, 10), np.uint8)
    labels[0, :5], labels[0, 5:] = 1, 2
    write_label_blocks(
        root / "pixel_classifier.ilp",
        {0: [LabelBlock(0, "block0000", labels, "[0:1,0:10,0:10]")]},
    )
    assert run("--data", root, "classify", "ilastik", "run", "--backend", "native") == 0
    image = np.ones((2, 120, 120), np.float32)
    image[0, 100, 3] = np.nan
    write_ilastik_image(root / "ilastik_img" / "im1.h5", image)
    assert run("--data", root, "classify", "ilastik", "run", "--overwrite") == 1
    err = capsys.readouterr().err
    assert f"{root / 'ilastik_img' / 'im1.h5'}: non-finite pixel values (1 NaN" in err
    assert listing(root / "ilastik_probabilities") == ["im0.tiff", "run_metadata.json"]


# --------------------------------------------------------------------------------------
# CellProfiler pipelines whose settings make no sense
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (("X Factor:0.5", "X Factor:0"), "'X Factor' is 0; it must be above 0"),
        (("Y Factor:0.5", "Y Factor:-1"), "'Y Factor' is -1; it must be above 0"),
        (("(Min,Max):7,25", "(Min,Max):-2,25"), "is -2; it must be at least 0"),
        (("(Min,Max):7,25", "(Min,Max):25,4"), "is 4; it must be at least 25"),
        (("Regularization factor:0.05", "Regularization factor:nan"), "not a finite number"),
    ],
)
def test_nonsense_pipeline_settings_are_refused_before_any_output(tmp_path, capsys, edit, message):
    rng = np.random.default_rng(0)
    write_probabilities(
        tmp_path / "ilastik_probabilities" / "im0.tiff",
        (rng.random((128, 128, 3)) * 65535).astype(np.uint16),
    )
    assert run("--data", tmp_path, "segment", "cellprofiler", "prepare") == 0
    pipeline = tmp_path / "cell_segmentation.cppipe"
    text = pipeline.read_text()
    old, new = edit
    assert old in text, old
    pipeline.write_text(text.replace(old, new))
    assert run("--data", tmp_path, "segment", "cellprofiler", "run", "--backend", "native") == 1
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert listing(tmp_path / "masks") == []


def test_a_mask_of_the_wrong_shape_is_never_written():
    from steinbock_like.errors import SteinbockLikeError
    from steinbock_like.segment.cellprofiler.pipeline import pipeline_text
    from steinbock_like.segment.cellprofiler.translate import check_mask_shape, expected_mask_shape

    text = pipeline_text()
    assert expected_mask_shape((257, 131, 3), text) == (128, 66)  # scipy's zoom rounding
    check_mask_shape((128, 66), (128, 66), "p.tiff")
    with pytest.raises(SteinbockLikeError, match=r"p.tiff: the pipeline made a mask of shape"):
        check_mask_shape((128, 0), (128, 66), "p.tiff")
    with pytest.raises(SteinbockLikeError, match=r"expected \(128, 66\)"):
        check_mask_shape((256, 132), (128, 66), "p.tiff")


# --------------------------------------------------------------------------------------
# Huge images
# --------------------------------------------------------------------------------------


def test_images_beyond_the_memory_limit_are_reported_and_refused(tmp_path, capsys, monkeypatch):
    root = image_dataset(tmp_path, ("small", "large"), size=20)
    write_image(root / "img" / "large.tiff", np.zeros((3, 200, 200), np.float32))
    monkeypatch.setenv("STEINBOCK_LIKE_MAX_IMAGE_BYTES", str(100_000))
    assert run("--data", root, "check") == 1
    err = capsys.readouterr().err
    assert f"{root / 'img' / 'large.tiff'}: image of 3 x 200 x 200 pixels needs 0.0 GiB" in err
    assert "small.tiff" not in err
    assert run("--data", root, "classify", "ilastik", "prepare", "--cropsize", "20") == 1
    err = capsys.readouterr().err
    assert "large: failed:" in err and "STEINBOCK_LIKE_MAX_IMAGE_BYTES" in err
    assert listing(root / "ilastik_img") == ["run_metadata.json", "small.h5"]


def test_a_huge_image_is_judged_by_its_header_alone(tmp_path, capsys):
    # 1 x 50,000 x 50,000 float32 (10 GB) written as a sparse file: a few kB on disk.
    path = tmp_path / "img" / "huge.tiff"
    path.parent.mkdir()
    (tmp_path / "panel.csv").write_text("channel,name\nA,a\n")
    tifffile.imwrite(
        path, shape=(1, 50_000, 50_000), dtype=np.float32, photometric="minisblack", bigtiff=True
    )
    start = time.perf_counter()
    assert run("--data", tmp_path, "check") == 1
    assert run("--data", tmp_path, "classify", "ilastik", "prepare", "--cropsize", "20") == 1
    assert time.perf_counter() - start < 10  # nothing was unpacked
    err = capsys.readouterr().err
    assert "huge.tiff: image of 1 x 50000 x 50000 pixels: more than 2147483648 pixels" in err
    # prepare judges the ilastik image it would make (2 channels, scaled by 2)
    assert "huge.tiff: image of 2 x 100000 x 100000 pixels: more than 2147483648" in err


def test_a_10_by_100000_strip_is_refused_by_the_tile_based_segmenters_at_once(tmp_path, capsys):
    from steinbock_like.errors import InputError
    from steinbock_like.runner import Job
    from steinbock_like.tasks.mesmer import MesmerTask

    root = image_dataset(tmp_path, ("good",))
    strip = root / "img" / "strip.tiff"
    write_image(strip, np.ones((3, 10, 100_000), np.float32))
    assert run("--data", root, "check") == 1
    err = capsys.readouterr().err
    assert f"{strip}: image of 10 x 100000 pixels is too thin to segment" in err
    assert "good.tiff" not in err
    # Mesmer (whose model this test does without) refuses it before reading the pixels
    task = MesmerTask(Path("no-model.onnx"), None, "whole-cell", 1.0, True, False, "mean", 1, 0)
    task._segmenter = object()  # as after setup(): any use of the model would fail
    with pytest.raises(InputError, match="too thin to segment"):
        task(Job("strip", {"image": strip}, {"cells": root / "masks" / "strip.tiff"}))
    square = root / "img" / "good.tiff"  # the rule spares small images, e.g. 40 x 40
    with pytest.raises(AttributeError, match="object"):  # got past the check, to the (absent) model
        task(Job("good", {"image": square}, {"cells": root / "masks" / "good.tiff"}))
