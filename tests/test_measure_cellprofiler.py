"""``measure cellprofiler prepare|run``: steinbock's input files, a stock-CellProfiler
pipeline, and (with real CellProfiler) steinbock's tables whose values equal ours."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tifffile

from steinbock_like.errors import MissingToolError, SteinbockLikeError
from steinbock_like.io.cppipe import read_pipeline
from steinbock_like.measure.cellprofiler.inputs import (
    to_cellprofiler_channel,
    to_cellprofiler_mask,
)
from steinbock_like.measure.cellprofiler.pipeline import measurement_pipeline_text
from steinbock_like.segment.cellprofiler import binary
from tests.cli_helpers import run

# Facts from steinbock 0.16.5's cell_measurement.cppipe (modules 1-6 are kept at their
# positions) and from running it with ImcPluginsCP: Cell.csv's columns, alphabetical.
STEINBOCK_FIRST_MODULES = [
    "Images",
    "Metadata",
    "NamesAndTypes",
    "Groups",
    "ConvertImageToObjects",
    "MeasureObjectNeighbors",
]
INTENSITY_FEATURES = [
    "IntegratedIntensityEdge", "IntegratedIntensity", "LowerQuartileIntensity",
    "MADIntensity", "MassDisplacement", "MaxIntensityEdge", "MaxIntensity",
    "MeanIntensityEdge", "MeanIntensity", "MedianIntensity", "MinIntensityEdge",
    "MinIntensity", "StdIntensityEdge", "StdIntensity", "UpperQuartileIntensity",
]  # fmt: skip
NEIGHBOR_FEATURES = [
    "AngleBetweenNeighbors", "FirstClosestDistance", "FirstClosestObjectNumber",
    "NumberOfNeighbors", "PercentTouching", "SecondClosestDistance",
    "SecondClosestObjectNumber",
]  # fmt: skip


def steinbock_cell_columns(num_channels: int) -> list[str]:
    channels = range(1, num_channels + 1)
    columns = ["ImageNumber", "ObjectNumber"]
    columns += [f"Intensity_{f}_Image_c{c}" for f in INTENSITY_FEATURES for c in channels]
    for feature in ("CenterMassIntensity_X", "CenterMassIntensity_Y", "CenterMassIntensity_Z"):
        columns += [f"Location_{feature}_Image_c{c}" for c in channels]
    columns += ["Location_Center_X", "Location_Center_Y", "Location_Center_Z"]
    for feature in ("MaxIntensity_X", "MaxIntensity_Y", "MaxIntensity_Z"):
        columns += [f"Location_{feature}_Image_c{c}" for c in channels]
    columns += [f"Neighbors_{f}_8" for f in NEIGHBOR_FEATURES]
    return [*columns, "Number_Object_Number"]


def _cellprofiler_python() -> Path | None:
    try:
        return binary.find_cellprofiler_python()
    except MissingToolError:
        return None


needs_cellprofiler = pytest.mark.skipif(
    _cellprofiler_python() is None,
    reason="CellProfiler not installed: run scripts/install_cellprofiler.sh "
    "(or set CELLPROFILER_PYTHON)",
)


def test_pipeline_splits_every_channel_and_measures_it_with_stock_modules():
    modules = read_pipeline(measurement_pipeline_text(3))
    assert [m.name for m in modules[:6]] == STEINBOCK_FIRST_MODULES
    assert [m.number for m in modules] == list(range(1, len(modules) + 1))
    by_name = {m.name: m for m in modules}
    gray = by_name["ColorToGray"]
    assert gray.get("Channel count") == "3"
    assert gray.values("Channel number") == ["1", "2", "3"]
    assert gray.values("Image name") == ["Image_c1", "Image_c2", "Image_c3"]
    images = "Image_c1, Image_c2, Image_c3"
    assert by_name["MeasureObjectIntensity"].get("Select images to measure") == images
    assert by_name["MeasureImageIntensity"].get("Select images to measure") == images
    assert by_name["MeasureObjectNeighbors"].get("Neighbor distance") == "8"
    # no ImcPluginsCP module
    assert not [m.name for m in modules if "Multichannel" in m.name]
    with pytest.raises(SteinbockLikeError):
        measurement_pipeline_text(0)


def test_inputs_are_rounded_clipped_uint16_as_steinbock_writes_them():
    values = np.array([[-1.2, 0.5, 1.5, 2.4, 2.6, 70000.0]], dtype=np.float32)
    out = to_cellprofiler_channel(values)
    assert out.dtype == np.uint16
    assert out.tolist() == [[0, 0, 2, 2, 3, 65535]]  # half to even, as numpy rounds
    assert to_cellprofiler_mask(np.array([[0, 7]], dtype=np.uint32)).dtype == np.uint16
    with pytest.raises(SteinbockLikeError, match="65535"):
        to_cellprofiler_mask(np.array([[0, 70000]], dtype=np.uint32))


def _small_dataset(root: Path, num_channels=3) -> None:
    from steinbock_like.io.images import write_image
    from steinbock_like.io.masks import write_mask

    (root / "img").mkdir(parents=True)
    (root / "masks").mkdir()
    rng = np.random.default_rng(0)
    for name in ("a", "b"):
        image = rng.uniform(0, 20, (num_channels, 12, 10)).astype(np.float32)
        mask = np.zeros((12, 10), np.uint16)
        mask[2:6, 2:6], mask[7:11, 4:9] = 3, 9
        write_image(root / "img" / f"{name}.tiff", image)
        write_mask(root / "masks" / f"{name}.tiff", mask)
    pd.DataFrame(
        {"channel": [f"m{i}" for i in range(3)], "name": [f"M{i}" for i in range(3)], "keep": 1}
    ).to_csv(root / "panel.csv", index=False)


def test_prepare_writes_steinbocks_input_layout_and_pipeline(tmp_path):
    _small_dataset(tmp_path)
    assert run("--data", tmp_path, "measure", "cellprofiler", "prepare") == 0
    data = tmp_path / "cellprofiler_input"
    assert sorted(p.name for p in data.glob("*.tiff")) == [
        "a.tiff", "a_mask.tiff", "b.tiff", "b_mask.tiff"
    ]  # fmt: skip
    with tifffile.TiffFile(data / "a.tiff") as tif:
        assert tif.is_imagej and tif.imagej_metadata["channels"] == 3
        assert tif.series[0].axes == "CYX" and tif.series[0].dtype == np.uint16
        pixels = tif.asarray()
    original = tifffile.imread(tmp_path / "img" / "a.tiff")
    np.testing.assert_array_equal(pixels, np.around(original).astype(np.uint16))
    with tifffile.TiffFile(data / "a_mask.tiff") as tif:
        assert tif.is_imagej and tif.series[0].axes == "YX"
        np.testing.assert_array_equal(tif.asarray(), tifffile.imread(tmp_path / "masks/a.tiff"))
    modules = read_pipeline((tmp_path / "cell_measurement.cppipe").read_text())
    assert {m.name: m for m in modules}["ColorToGray"].get("Channel count") == "3"
    # a second run refuses to replace, --overwrite replaces
    assert run("--data", tmp_path, "measure", "cellprofiler", "prepare") == 1
    assert run("--data", tmp_path, "measure", "cellprofiler", "prepare", "--overwrite") == 0


def test_prepare_refuses_images_of_different_channel_counts(tmp_path, capsys):
    from steinbock_like.io.images import write_image

    _small_dataset(tmp_path)
    write_image(tmp_path / "img" / "b.tiff", np.zeros((2, 12, 10), np.float32))
    panel = pd.read_csv(tmp_path / "panel.csv")
    panel.loc[2, "keep"] = 0  # a has all 3 panel rows, b the 2 kept ones: both fit the panel
    panel.to_csv(tmp_path / "panel.csv", index=False)
    assert run("--data", tmp_path, "measure", "cellprofiler", "prepare") == 1
    err = capsys.readouterr().err
    assert "b.tiff" in err and "2 channels" in err and err.count("\n") == 1
    assert not (tmp_path / "cellprofiler_input").exists()


def test_run_without_cellprofiler_is_one_line_naming_the_install(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("CELLPROFILER_PYTHON", raising=False)
    _small_dataset(tmp_path)
    assert run("--data", tmp_path, "measure", "cellprofiler", "prepare") == 0
    capsys.readouterr()
    missing = tmp_path / "no-python"
    assert run("--data", tmp_path, "measure", "cellprofiler", "run", "--python", missing) == 1
    err = capsys.readouterr().err
    assert err.startswith("Error: measure cellprofiler run needs CellProfiler 4.2")
    assert "scripts/install_cellprofiler.sh" in err and str(missing) in err
    assert err.count("\n") == 1
    assert not (tmp_path / "cellprofiler_output").exists()


@pytest.fixture(scope="module")
def cellprofiler_run(refdata, tmp_path_factory):
    """prepare + run on the reference images and ilastik masks, and `measure intensities`
    on the same images rounded as prepare rounds them."""
    from steinbock_like.io.images import read_image, write_image

    data = tmp_path_factory.mktemp("cpmeasure")
    common = ["--data", data, "measure"]
    masks = refdata / "masks_ilastik"
    assert run(*common, "cellprofiler", "prepare", "--img", refdata / "img", "--masks", masks,
               "--panel", refdata / "panel.csv") == 0  # fmt: skip
    assert run(*common, "cellprofiler", "run") == 0
    (data / "rounded").mkdir()
    for path in sorted((refdata / "img").glob("*.tiff")):
        write_image(data / "rounded" / path.name, np.around(read_image(path)))
    for img, out in ((refdata / "img", "intensities"), (data / "rounded", "rounded_intensities")):
        assert run(*common, "intensities", "--img", img, "--masks", masks,
                   "--panel", refdata / "panel.csv", "-o", out) == 0  # fmt: skip
    assert run(*common, "regionprops", "--img", refdata / "img", "--masks", masks,
               "-o", "regionprops") == 0  # fmt: skip
    return data


@needs_cellprofiler
def test_cellprofiler_tables_and_columns_are_steinbocks(cellprofiler_run):
    out = cellprofiler_run / "cellprofiler_output"
    assert sorted(p.name for p in out.iterdir()) == [
        "Cell.csv", "Experiment.csv", "Image.csv", "Object relationships.csv"
    ]  # fmt: skip
    cells = pd.read_csv(out / "Cell.csv")
    assert list(cells.columns) == steinbock_cell_columns(5)
    relationships = pd.read_csv(out / "Object relationships.csv")
    assert set(relationships["Module"]) == {"MeasureObjectNeighbors"}
    assert set(relationships["Module Number"]) == {6}  # steinbock's module number
    image = pd.read_csv(out / "Image.csv")
    assert len(image) == 6 and "Intensity_TotalIntensity_Image_c5" in image.columns


@needs_cellprofiler
def test_cellprofiler_means_equal_measure_intensities(cellprofiler_run):
    """CellProfiler's MeanIntensity is round(pixel) / 65535, averaged over the cell."""
    data = cellprofiler_run
    cells = pd.read_csv(data / "cellprofiler_output" / "Cell.csv")
    image = pd.read_csv(data / "cellprofiler_output" / "Image.csv")
    names = dict(zip(image["ImageNumber"], image["FileName_Image"], strict=True))
    checked = 0
    for number, group in cells.groupby("ImageNumber"):
        name = names[number]
        ours = pd.read_csv(data / "rounded_intensities" / name.replace(".tiff", ".csv"))
        unrounded = pd.read_csv(data / "intensities" / name.replace(".tiff", ".csv"))
        assert group["ObjectNumber"].tolist() == ours["Object"].tolist()
        for channel, marker in enumerate(ours.columns[1:], start=1):
            theirs = group[f"Intensity_MeanIntensity_Image_c{channel}"].to_numpy() * 65535
            np.testing.assert_allclose(theirs, ours[marker].to_numpy(), rtol=1e-9, atol=1e-9)
            # rounding moves a mean by at most half a count
            assert np.abs(theirs - unrounded[marker].to_numpy()).max() <= 0.5
            checked += len(group)
    assert checked == 5 * len(cells) > 0


@needs_cellprofiler
def test_cellprofiler_areas_and_centres_equal_measure_regionprops(cellprofiler_run):
    data = cellprofiler_run
    cells = pd.read_csv(data / "cellprofiler_output" / "Cell.csv")
    image = pd.read_csv(data / "cellprofiler_output" / "Image.csv")
    names = dict(zip(image["ImageNumber"], image["FileName_Image"], strict=True))
    compared = 0
    for number, group in cells.groupby("ImageNumber"):
        props = pd.read_csv(data / "regionprops" / names[number].replace(".tiff", ".csv"))
        assert group["ObjectNumber"].tolist() == props["Object"].tolist()
        # pixels per cell = integrated / mean intensity, on a channel where the cell has signal
        integrated = group[[f"Intensity_IntegratedIntensity_Image_c{c}" for c in range(1, 6)]]
        mean = group[[f"Intensity_MeanIntensity_Image_c{c}" for c in range(1, 6)]]
        with np.errstate(invalid="ignore", divide="ignore"):
            area = np.nanmax(integrated.to_numpy() / mean.to_numpy(), axis=1)
        known = np.isfinite(area)
        np.testing.assert_allclose(area[known], props["area"].to_numpy()[known], rtol=1e-6)
        compared += int(known.sum())
        np.testing.assert_allclose(group["Location_Center_X"], props["centroid-1"], atol=1e-9)
        np.testing.assert_allclose(group["Location_Center_Y"], props["centroid-0"], atol=1e-9)
    assert compared >= 0.9 * len(cells)


def test_run_refuses_existing_tables_and_names_a_failing_cellprofiler(
    tmp_path, monkeypatch, capsys
):
    """Without CellProfiler: this interpreter stands in (it has no 'cellprofiler' module)."""
    import sys

    _small_dataset(tmp_path)
    assert run("--data", tmp_path, "measure", "cellprofiler", "prepare") == 0
    out = tmp_path / "cellprofiler_output"
    out.mkdir()
    (out / "Cell.csv").write_text("old\n")
    capsys.readouterr()
    args = ["--data", tmp_path, "measure", "cellprofiler", "run", "--python", sys.executable]
    assert run(*args) == 1
    assert "Cell.csv exists already" in capsys.readouterr().err
    monkeypatch.setenv("STEINBOCK_LIKE_OVERWRITE", "1")  # steinbock scripts rerun in place
    assert run(*args) == 1
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("Error: CellProfiler failed on cell_measurement.cppipe (exit code 1")
    assert "No module named cellprofiler" in err
    assert (out / "Cell.csv").read_text() == "old\n"  # a failed run replaces nothing
