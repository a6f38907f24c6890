"""preprocess imc|external through the real CLI: identity with steinbock's outputs on the
reference data, recovery from .txt files, --resume, one-line errors."""

import shutil
import zipfile

import numpy as np
import pandas as pd
import tifffile
from cli_helpers import run

MCD1 = "20210305_NE_mockData1"
MCD2 = "20210305_NE_mockData2"


def images_of(directory):
    return sorted(p.name for p in directory.glob("*.tiff"))


def assert_images_equal(ours_dir, ref_dir, names=None, atol=0.0):
    names = names or images_of(ref_dir)
    for name in names:
        ours = tifffile.imread(ours_dir / name)
        ref = tifffile.imread(ref_dir / name)
        assert ours.dtype == np.float32 == ref.dtype, name
        assert ours.shape == ref.shape, name
        np.testing.assert_allclose(ours, ref, rtol=0, atol=atol, err_msg=name)


def copy_raw(refdata, target, *stems, txt=True):
    target.mkdir(parents=True, exist_ok=True)
    for stem in stems:
        source = refdata / "raw" / stem
        shutil.copy(source / f"{stem}.mcd", target)
        if txt:
            for path in source.glob("*.txt"):
                shutil.copy(path, target)
    return target


def test_imc_panel_and_images_equal_steinbock(refdata, tmp_path):
    raw = refdata / "raw"
    code = run(
        "--data",
        tmp_path,
        "preprocess",
        "imc",
        "panel",
        "--imcpanel",
        raw / "panel.csv",
        "--mcd",
        raw,
        "--txt",
        raw,
    )
    assert code == 0
    assert (tmp_path / "panel.csv").read_text() == (refdata / "panel.csv").read_text()
    code = run(
        "--data", tmp_path, "preprocess", "imc", "images", "--mcd", raw, "--txt", raw, "--hpf", "50"
    )
    assert code == 0
    assert images_of(tmp_path / "img") == images_of(refdata / "img")
    assert_images_equal(tmp_path / "img", refdata / "img")
    ours = pd.read_csv(tmp_path / "images.csv")
    ref = pd.read_csv(refdata / "images.csv")
    pd.testing.assert_frame_equal(ours, ref)
    assert (tmp_path / "images.csv").read_text() == (refdata / "images.csv").read_text()


def test_hot_pixel_filter_changes_values(refdata, tmp_path):
    # without --hpf the values differ from steinbock's --hpf 50 output somewhere: the
    # identity above is not vacuous
    raw = refdata / "raw"
    shutil.copy(refdata / "panel.csv", tmp_path / "panel.csv")
    assert (
        run(
            "--data",
            tmp_path,
            "preprocess",
            "imc",
            "images",
            "--mcd",
            raw,
            "--txt",
            raw,
            "--workers",
            "2",
        )
        == 0
    )
    changed = 0
    for name in images_of(refdata / "img"):
        ours = tifffile.imread(tmp_path / "img" / name)
        ref = tifffile.imread(refdata / "img" / name)
        assert ours.shape == ref.shape
        changed += int((ours != ref).sum())
        assert np.all(ours >= ref)  # the filter only lowers values
    assert changed > 0


def test_panel_from_mcd_files_without_imc_panel(refdata, tmp_path):
    copy_raw(refdata, tmp_path / "raw", MCD1, MCD2, txt=False)
    assert run("--data", tmp_path, "preprocess", "imc", "panel") == 0
    panel = pd.read_csv(tmp_path / "panel.csv")
    assert list(panel.columns[:6]) == ["channel", "name", "keep", "ilastik", "deepcell", "cellpose"]
    assert list(panel["channel"]) == ["Ag107", "Pr141", "Sm147", "Eu153", "Yb172"]
    assert list(panel["ilastik"]) == [1, 2, 3, 4, 5]
    assert panel["keep"].eq(1).all()


def test_zip_archive_is_read_in_place(refdata, tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    with zipfile.ZipFile(raw / "run.zip", "w", zipfile.ZIP_DEFLATED) as archive:
        for path in (refdata / "raw" / MCD1).iterdir():
            if path.suffix in (".mcd", ".txt"):
                archive.write(path, f"{MCD1}/{path.name}")
    shutil.copy(refdata / "panel.csv", tmp_path / "panel.csv")
    assert run("--data", tmp_path, "preprocess", "imc", "images", "--hpf", "50") == 0
    names = [f"{MCD1}_00{i}.tiff" for i in (1, 2, 3)]
    assert images_of(tmp_path / "img") == names
    assert_images_equal(tmp_path / "img", refdata / "img", names)
    assert sorted(p.name for p in raw.iterdir()) == ["run.zip"]  # nothing unpacked
    assert (
        run(
            "--data",
            tmp_path,
            "preprocess",
            "imc",
            "images",
            "--no-unzip",
            "--imgout",
            "img2",
            "--infoout",
            "images2.csv",
        )
        == 1
    )


def test_truncated_mcd_is_recovered_from_txt(refdata, tmp_path, capsys):
    raw = copy_raw(refdata, tmp_path / "raw", MCD1)
    mcd = raw / f"{MCD1}.mcd"
    mcd.write_bytes(mcd.read_bytes()[:200_000])  # the metadata at the end is lost
    shutil.copy(refdata / "panel.csv", tmp_path / "panel.csv")
    assert run("--data", tmp_path, "preprocess", "imc", "images", "--hpf", "50") == 0
    names = [f"{MCD1}_00{i}.tiff" for i in (1, 2, 3)]
    assert images_of(tmp_path / "img") == names
    # .txt files hold 3 decimals
    assert_images_equal(tmp_path / "img", refdata / "img", names, atol=5e-4)
    info = pd.read_csv(tmp_path / "images.csv")
    assert list(info["image"]) == names
    assert info["recovered"].all()
    assert list(info["acquisition_id"]) == [1, 2, 3]
    assert list(info["recovery_file"]) == [f"{MCD1}_ROI_00{i}_{i}.txt" for i in (1, 2, 3)]
    assert "unreadable .mcd file" in capsys.readouterr().err


def test_random_bytes_in_one_acquisition_recovers_it_alone(refdata, tmp_path, capsys):
    raw = copy_raw(refdata, tmp_path / "raw", MCD1)
    mcd = raw / f"{MCD1}.mcd"
    data = bytearray(mcd.read_bytes())
    data[276122:344922] = np.random.default_rng(0).bytes(344922 - 276122)  # acquisition 3
    mcd.write_bytes(bytes(data))
    shutil.copy(refdata / "panel.csv", tmp_path / "panel.csv")
    assert run("--data", tmp_path, "preprocess", "imc", "images", "--hpf", "50") == 0
    info = pd.read_csv(tmp_path / "images.csv")
    assert list(info["recovered"]) == [False, False, True]
    ref = pd.read_csv(refdata / "images.csv").set_index("image")
    columns = [c for c in ref.columns if c != "recovered"]
    pd.testing.assert_frame_equal(info.set_index("image")[columns], ref.loc[info["image"], columns])
    assert_images_equal(tmp_path / "img", refdata / "img", [f"{MCD1}_00{i}.tiff" for i in (1, 2)])
    assert_images_equal(tmp_path / "img", refdata / "img", [f"{MCD1}_003.tiff"], atol=5e-4)


def test_corrupt_mcd_without_txt_fails_only_its_acquisitions(refdata, tmp_path, capsys):
    raw = copy_raw(refdata, tmp_path / "raw", MCD1, txt=False)
    copy_raw(refdata, raw, MCD2)
    broken = raw / f"{MCD1}.mcd"
    broken.write_bytes(np.random.default_rng(1).bytes(broken.stat().st_size))
    shutil.copy(refdata / "panel.csv", tmp_path / "panel.csv")
    code = run("--data", tmp_path, "preprocess", "imc", "images", "--hpf", "50")
    err = capsys.readouterr().err
    assert code == 1 and "Traceback" not in err
    last = err.strip().splitlines()[-1]
    assert last.startswith("Error: 1 of 4 images failed") and str(broken) in last
    names = [f"{MCD2}_00{i}.tiff" for i in (1, 2, 3)]
    assert images_of(tmp_path / "img") == names
    assert_images_equal(tmp_path / "img", refdata / "img", names)
    assert list(pd.read_csv(tmp_path / "images.csv")["image"]) == names


def test_resume_keeps_images_csv_rows(refdata, tmp_path):
    raw = refdata / "raw"
    shutil.copy(refdata / "panel.csv", tmp_path / "panel.csv")
    args = (
        "--data",
        tmp_path,
        "preprocess",
        "imc",
        "images",
        "--mcd",
        raw,
        "--txt",
        raw,
        "--hpf",
        "50",
    )
    assert run(*args) == 0
    info = pd.read_csv(tmp_path / "images.csv")
    info.loc[info["image"] == f"{MCD2}_001.tiff", "acquisition_description"] = "EDITED"
    info.to_csv(tmp_path / "images.csv", index=False)
    (tmp_path / "img" / f"{MCD1}_002.tiff").unlink()
    assert run(*args) == 1  # outputs exist: neither --overwrite nor --resume
    assert run(*args, "--resume") == 0
    after = pd.read_csv(tmp_path / "images.csv")
    assert len(after) == 6
    assert after.loc[after["image"] == f"{MCD2}_001.tiff", "acquisition_description"].item() == (
        "EDITED"  # kept from the previous images.csv, not recomputed
    )
    assert_images_equal(tmp_path / "img", refdata / "img")
    ref = pd.read_csv(refdata / "images.csv")
    pd.testing.assert_frame_equal(after.drop(index=0), ref.drop(index=0))


def test_missing_raw_directory_is_one_line(tmp_path, capsys):
    code = run("--data", tmp_path, "preprocess", "imc", "images")
    err = capsys.readouterr().err
    assert code == 1
    assert err.strip() == f"Error: {tmp_path / 'raw'}: directory not found"
    assert run("--data", tmp_path, "preprocess", "imc", "panel") == 1
    assert "no IMC panel" in capsys.readouterr().err


# ----------------------------------------------------------------------------- external


def write_external(directory):
    rng = np.random.default_rng(0)
    directory.mkdir(parents=True)
    arrays = {
        "flat": rng.integers(0, 1000, (20, 30), dtype=np.uint16),
        "cyx": rng.random((3, 20, 30), dtype=np.float32),
        "yxc": rng.integers(0, 255, (20, 30, 3), dtype=np.uint8),
        "zcyx": rng.random((4, 3, 20, 30), dtype=np.float32),
    }
    tifffile.imwrite(directory / "flat.tif", arrays["flat"])
    tifffile.imwrite(directory / "cyx.tiff", arrays["cyx"], photometric="minisblack")
    tifffile.imwrite(directory / "yxc.tiff", arrays["yxc"], photometric="rgb")
    tifffile.imwrite(
        directory / "zcyx.tiff", arrays["zcyx"], imagej=True, metadata={"axes": "ZCYX"}
    )
    return arrays


def test_external_images_2d_cyx_yxc_zcyx(tmp_path):
    arrays = write_external(tmp_path / "external")
    assert run("--data", tmp_path, "preprocess", "external", "images") == 0
    expected = {
        "flat.tiff": arrays["flat"][np.newaxis],
        "cyx.tiff": arrays["cyx"],
        "yxc.tiff": np.moveaxis(arrays["yxc"], -1, 0),
        "zcyx.tiff": arrays["zcyx"].max(axis=0),
    }
    for name, values in expected.items():
        image = tifffile.imread(tmp_path / "img" / name)
        assert image.dtype == np.float32
        np.testing.assert_array_equal(image, values.astype(np.float32), err_msg=name)
    info = pd.read_csv(tmp_path / "images.csv").set_index("image")
    assert info.loc["yxc.tiff", "num_channels"] == 3 and info.loc["flat.tiff", "num_channels"] == 1
    assert (info.loc["cyx.tiff", ["width_px", "height_px"]] == [30, 20]).all()
    # another projection
    assert (
        run(
            "--data",
            tmp_path,
            "preprocess",
            "external",
            "images",
            "--projection",
            "mean",
            "--imgout",
            "img_mean",
            "--infoout",
            "mean.csv",
        )
        == 0
    )
    np.testing.assert_allclose(
        tifffile.imread(tmp_path / "img_mean" / "zcyx.tiff"), arrays["zcyx"].mean(axis=0), rtol=1e-6
    )


def test_external_panel_from_ome_channel_names_selects_channels(tmp_path, capsys):
    external = tmp_path / "external"
    external.mkdir()
    image = np.arange(3 * 8 * 9, dtype=np.uint16).reshape(3, 8, 9)
    tifffile.imwrite(
        external / "a.ome.tiff",
        image,
        metadata={"axes": "CYX", "Channel": {"Name": ["DNA", "CD45", "CK"]}},
    )
    assert run("--data", tmp_path, "preprocess", "external", "panel") == 0
    panel = pd.read_csv(tmp_path / "panel.csv")
    assert list(panel["channel"]) == [1, 2, 3]
    assert list(panel["name"]) == ["DNA", "CD45", "CK"]
    assert list(panel["ilastik"]) == [1, 2, 3]
    panel.loc[1, "keep"] = 0
    panel.to_csv(tmp_path / "panel.csv", index=False)
    assert run("--data", tmp_path, "preprocess", "external", "images") == 0
    out = tifffile.imread(tmp_path / "img" / "a.tiff")  # .ome dropped from the name
    np.testing.assert_array_equal(out, image[[0, 2]].astype(np.float32))
    # a panel channel beyond the image's channels: one line naming the file
    panel.loc[3] = [4, "extra", 1, 4, None, None]
    panel.to_csv(tmp_path / "panel.csv", index=False)
    code = run("--data", tmp_path, "preprocess", "external", "images", "--overwrite")
    err = capsys.readouterr().err
    assert code == 1
    assert "the panel lists channel 4 but the image has 3" in err.strip().splitlines()[-1]
    assert str(external / "a.ome.tiff") in err.strip().splitlines()[-1]


def test_example_raw_preprocesses_back_to_its_images(tmp_path):
    assert (
        run("example", "imc", tmp_path, "--images", "2", "--size", "40", "--channels", "5", "--raw")
        == 0
    )
    assert sorted(p.name for p in (tmp_path / "raw").glob("*.txt")) == [
        "example_001.txt",
        "example_002.txt",
    ]
    assert run("--data", tmp_path, "preprocess", "imc", "panel", "-o", "panel_raw.csv") == 0
    ours = pd.read_csv(tmp_path / "panel_raw.csv")
    example = pd.read_csv(tmp_path / "panel.csv")
    assert list(ours["channel"]) == list(example["channel"])
    assert list(ours["name"]) == list(example["name"])
    assert (
        run(
            "--data",
            tmp_path,
            "preprocess",
            "imc",
            "images",
            "--panel",
            "panel_raw.csv",
            "--imgout",
            "img_raw",
        )
        == 0
    )
    for name in ("example_001.tiff", "example_002.tiff"):
        np.testing.assert_array_equal(
            tifffile.imread(tmp_path / "img_raw" / name), tifffile.imread(tmp_path / "img" / name)
        )
