"""measure through the command line: refdata fidelity, compartments, bad input, --resume."""

import numpy as np
import pandas as pd
import pytest
import tifffile
from cli_helpers import run

MASKS = ("masks_ilastik", "masks_deepcell")


@pytest.mark.parametrize("masks", MASKS)
def test_refdata_tables_are_reproduced(refdata, tmp_path, masks):
    suffix = masks.removeprefix("masks_")
    common = ["--img", refdata / "img", "--masks", refdata / masks]
    assert (
        run(
            "--data",
            tmp_path,
            "measure",
            "intensities",
            *common,
            "--panel",
            refdata / "panel.csv",
            "-o",
            "int",
        )
        == 0
    )
    assert run("--data", tmp_path, "measure", "regionprops", *common, "-o", "rp") == 0
    assert (
        run(
            "--data",
            tmp_path,
            "measure",
            "neighbors",
            "--masks",
            refdata / masks,
            "--type",
            "expansion",
            "--dmax",
            "4",
            "-o",
            "nb",
        )
        == 0
    )
    names = sorted(p.name for p in (refdata / f"intensities_{suffix}").glob("*.csv"))
    assert names and names == sorted(p.name for p in (tmp_path / "int").glob("*.csv"))
    for name in names:
        for ours_dir, ref_dir in (("int", "intensities"), ("rp", "regionprops")):
            ours = pd.read_csv(tmp_path / ours_dir / name, index_col="Object")
            ref = pd.read_csv(refdata / f"{ref_dir}_{suffix}" / name, index_col="Object")
            assert ours.index.tolist() == ref.index.tolist()
            assert list(ours.columns) == list(ref.columns)
            np.testing.assert_allclose(ours.to_numpy(), ref.to_numpy(), rtol=1e-9, atol=0)
        ours = pd.read_csv(tmp_path / "nb" / name)
        ref = pd.read_csv(refdata / f"neighbors_{suffix}" / name)
        assert list(ours.columns) == ["Object", "Neighbor", "Distance"]
        assert (
            ours[["Object", "Neighbor"]].values.tolist()
            == ref[["Object", "Neighbor"]].values.tolist()
        )
        assert ours["Distance"].isna().all() and ref["Distance"].isna().all()
    # the intensities file is byte for byte steinbock's
    assert (tmp_path / "int" / names[0]).read_bytes() == (
        refdata / f"intensities_{suffix}" / names[0]
    ).read_bytes()


def _dataset(root, *, channels=3, shape=(20, 30)):
    (root / "img").mkdir(parents=True)
    (root / "masks").mkdir()
    (root / "nuclei").mkdir()
    image = np.arange(channels * shape[0] * shape[1], dtype=np.float32).reshape(channels, *shape)
    tifffile.imwrite(root / "img" / "a.tiff", image, photometric="minisblack")
    mask = np.zeros(shape, np.uint16)
    mask[2:8, 3:10] = 4
    mask[10:18, 12:25] = 9
    tifffile.imwrite(root / "masks" / "a.tiff", mask)
    nuclei = np.zeros(shape, np.uint16)
    nuclei[4:6, 5:7] = 4  # cell 9 has no nucleus; 12 is no cell
    nuclei[0, 0] = 12
    tifffile.imwrite(root / "nuclei" / "a.tiff", nuclei)
    pd.DataFrame(
        {
            "channel": [f"c{i}" for i in range(channels)],
            "name": [f"m{i}" for i in range(channels)],
            "keep": [1, 0, 1][:channels],
        }
    ).to_csv(root / "panel.csv", index=False)
    return image, mask, nuclei


def test_compartments_add_suffixed_columns(tmp_path):
    image, mask, nuclei = _dataset(tmp_path)
    args = ["--data", tmp_path, "measure"]
    assert run(*args, "intensities", "--compartment", "nuclei=nuclei", "--aggr", "max") == 0
    table = pd.read_csv(tmp_path / "intensities" / "a.csv", index_col="Object")
    assert table.index.tolist() == [4, 9]
    assert list(table.columns) == ["m0", "m2", "m0_nuclei", "m2_nuclei"]
    assert table.loc[4, "m2"] == image[2][mask == 4].max()
    assert table.loc[4, "m0_nuclei"] == image[0][nuclei == 4].max() == image[0, 5, 6]
    assert np.isnan(table.loc[9, "m0_nuclei"])
    assert run(*args, "regionprops", "area", "--compartment", "nuclei=nuclei") == 0
    props = pd.read_csv(tmp_path / "regionprops" / "a.csv", index_col="Object")
    assert list(props.columns) == ["area", "area_nuclei"]
    assert props.loc[4].tolist() == [42, 4] and props.loc[9, "area"] == 104
    assert np.isnan(props.loc[9, "area_nuclei"])


def test_resume_skips_done_images(tmp_path):
    _dataset(tmp_path)
    args = ["--data", tmp_path, "measure", "intensities"]
    assert run(*args) == 0
    out = tmp_path / "intensities" / "a.csv"
    out.write_text("Object,m0\n1,123\n")
    assert run(*args) == 1  # existing outputs are an error without --resume/--overwrite
    assert run(*args, "--resume") == 0
    assert out.read_text() == "Object,m0\n1,123\n"
    assert run(*args, "--overwrite") == 0
    assert pd.read_csv(out, index_col="Object").index.tolist() == [4, 9]


def _error_line(capsys) -> str:
    """The command's final error line (per-image failures are logged before it)."""
    err = capsys.readouterr().err
    assert "Traceback" not in err
    line = err.strip().splitlines()[-1]
    assert line.startswith("Error: ")
    return line


def test_bad_input_is_one_line_naming_the_file(tmp_path, capsys):
    image, mask, _ = _dataset(tmp_path)
    args = ["--data", tmp_path, "measure"]
    # panel lists 3 channels (2 kept), image has 4
    tifffile.imwrite(
        tmp_path / "img" / "a.tiff", np.zeros((4, 20, 30), np.float32), photometric="minisblack"
    )
    assert run(*args, "intensities") == 1
    err = _error_line(capsys)
    assert "img/a.tiff" in err and "panel" in err
    # mask of another shape than its image
    tifffile.imwrite(tmp_path / "img" / "a.tiff", image, photometric="minisblack")
    tifffile.imwrite(tmp_path / "masks" / "a.tiff", mask[:10])
    for command in ("intensities", "regionprops"):
        assert run(*args, command, "--overwrite") == 1
        err = _error_line(capsys)
        assert "masks/a.tiff" in err and "shape" in err
    # a mask without an image
    tifffile.imwrite(tmp_path / "masks" / "a.tiff", mask)
    tifffile.imwrite(tmp_path / "masks" / "b.tiff", mask)
    assert run(*args, "intensities", "--overwrite") == 1
    assert "masks/b.tiff" in _error_line(capsys)
    # expansion without --dmax
    assert run(*args, "neighbors", "--type", "expansion") == 1
    assert "--dmax" in capsys.readouterr().err


def test_centroid_and_border_neighbors_cli(tmp_path):
    _dataset(tmp_path)
    args = ["--data", tmp_path, "measure", "neighbors"]
    assert run(*args, "--type", "centroids", "--kmax", "1", "-o", "c") == 0
    table = pd.read_csv(tmp_path / "c" / "a.csv")
    # centroids (4.5, 6) and (13.5, 18): 9 and 12 apart
    assert table[["Object", "Neighbor"]].values.tolist() == [[4, 9], [9, 4]]
    assert np.allclose(table["Distance"], 15.0)
    assert run(*args, "--type", "borders", "--dmax", "4", "-o", "b") == 0
    assert pd.read_csv(tmp_path / "b" / "a.csv").empty  # nearest border pixels 3 rows, 3 cols
    assert run(*args, "--type", "borders", "--dmax", "4.3", "-o", "b2") == 0
    table = pd.read_csv(tmp_path / "b2" / "a.csv")
    assert table[["Object", "Neighbor"]].values.tolist() == [[4, 9], [9, 4]]
    assert np.allclose(table["Distance"], np.hypot(3, 3), rtol=1e-6)
