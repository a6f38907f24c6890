"""Bad input through real commands: one line naming the file, non-zero exit, no partial output."""

import numpy as np
import tifffile
from cli_helpers import run

from steinbock_like.io.images import write_image
from steinbock_like.io.masks import write_mask

PANEL = "channel,name,ilastik,deepcell\nA,a,1,1\nB,b,2,2\nC,c,2,\n"


def dataset(root, panel=PANEL):
    (root / "panel.csv").write_text(panel)
    rng = np.random.default_rng(0)
    for name in ("good1", "good2"):
        write_image(root / "img" / f"{name}.tiff", rng.random((3, 20, 20), dtype=np.float32))
    return root


def outputs(directory):
    return sorted(p.name for p in directory.iterdir()) if directory.exists() else []


def test_truncated_image_stops_prepare_before_any_output(tmp_path, capsys):
    # prepare draws crop positions from every image's size (as steinbock does), so an
    # unreadable image is an error before anything is written
    dataset(tmp_path)
    good = (tmp_path / "img" / "good1.tiff").read_bytes()
    (tmp_path / "img" / "cut.tiff").write_bytes(good[: len(good) // 2])
    code = run("--data", tmp_path, "classify", "ilastik", "prepare", "--cropsize", "10")
    err = capsys.readouterr().err
    assert code == 1 and "Traceback" not in err
    assert err.strip() == (
        f"Error: {tmp_path / 'img' / 'cut.tiff'}: unreadable or truncated TIFF "
        "(invalid page offset 3442)"
    )
    assert outputs(tmp_path / "ilastik_img") == []


def test_wrong_channel_count_fails_its_image_alone(tmp_path, capsys):
    dataset(tmp_path)
    write_image(tmp_path / "img" / "four.tiff", np.ones((4, 20, 20), np.float32))
    code = run("--data", tmp_path, "classify", "ilastik", "prepare", "--cropsize", "10")
    err = capsys.readouterr().err
    assert code == 1 and "Traceback" not in err
    assert f"{tmp_path / 'img' / 'four.tiff'}: image has 4 channels but the panel lists 3" in err
    assert err.strip().splitlines()[-1].startswith("Error: 1 of 3 images failed")
    assert outputs(tmp_path / "ilastik_img") == ["good1.h5", "good2.h5", "run_metadata.json"]
    assert not any(name.startswith("four") for name in outputs(tmp_path / "ilastik_crops"))


def test_bad_panels_stop_before_any_output(tmp_path, capsys):
    for panel, message in [
        ("channel,name\nA,a\nA,b\nC,c\n", "panel.csv: duplicate channel ID 'A'"),
        ("channel,name,ilastik\nA,a,x\nB,b,1\nC,c,\n", "group label 'x' in column 'ilastik'"),
    ]:
        dataset(tmp_path, panel)
        code = run("--data", tmp_path, "classify", "ilastik", "prepare", "--cropsize", "10")
        err = capsys.readouterr().err
        assert code == 1 and message in err and len(err.strip().splitlines()) == 1
        assert outputs(tmp_path / "ilastik_img") == []
        assert not (tmp_path / "pixel_classifier.ilp").exists()


def test_masks_of_wrong_dtype_shape_or_without_partner(tmp_path, capsys):
    for name in ("a", "b"):
        write_mask(tmp_path / "masks" / f"{name}.tiff", np.ones((8, 8), np.uint16))
        write_mask(tmp_path / "masks_nuclei" / f"{name}.tiff", np.ones((8, 8), np.uint16))
    tifffile.imwrite(tmp_path / "masks_nuclei" / "b.tiff", np.ones((8, 8), np.float32))
    assert run("--data", tmp_path, "repair") == 1
    err = capsys.readouterr().err
    assert "masks_nuclei/b.tiff: a mask must hold integer object IDs, found dtype float32" in err
    assert outputs(tmp_path / "masks_matched") == ["a.tiff", "run_metadata.json"]
    write_mask(tmp_path / "masks" / "c.tiff", np.ones((8, 8), np.uint16))
    assert run("--data", tmp_path, "repair", "--overwrite") == 1
    err = capsys.readouterr().err.strip()
    assert (
        err
        == f"Error: {tmp_path / 'masks' / 'c.tiff'}: no matching file in "
        + str(tmp_path / "masks_nuclei")
        + " (1 unmatched in all)"
    )
