"""``export ome-zarr`` and ``export spatialdata`` on the reference data, read back with
ome-zarr-py and spatialdata (skipped where the ``export`` extra is not installed)."""

import numpy as np
import pytest
import tifffile

from tests.cli_helpers import run

NAME = "20210305_NE_mockData2_001"
CHANNELS = ["Ag107_Ag107", "Pr141_Cytokeratin 5", "Sm147_Laminin", "Eu153_YBX1", "Yb172_H3K27Ac"]


def test_ome_zarr_holds_image_channel_names_and_mask(refdata, tmp_path):
    pytest.importorskip("ome_zarr")
    from ome_zarr.io import parse_url
    from ome_zarr.reader import Reader

    out = tmp_path / "ome_zarr"
    code = run(
        "export", "ome-zarr", "--img", refdata / "img", "--masks", refdata / "masks_deepcell",
        "--panel", refdata / "panel.csv", "-o", out,
    )  # fmt: skip
    assert code == 0
    assert len(list(out.glob("*.ome.zarr"))) == 6
    nodes = list(Reader(parse_url(str(out / f"{NAME}.ome.zarr")))())
    image = nodes[0]
    assert image.metadata["channel_names"] == CHANNELS
    np.testing.assert_array_equal(
        np.asarray(image.data[0]), tifffile.imread(refdata / "img" / f"{NAME}.tiff")
    )
    labels = [n for n in nodes if n.metadata.get("name") == "cells"]
    np.testing.assert_array_equal(
        np.asarray(labels[0].data[0]), tifffile.imread(refdata / "masks_deepcell" / f"{NAME}.tiff")
    )


def test_spatialdata_links_table_to_labels(refdata, tmp_path):
    sd = pytest.importorskip("spatialdata")
    anndata = pytest.importorskip("anndata")
    out = tmp_path / "cells.zarr"
    code = run(
        "export", "spatialdata", "--img", refdata / "img", "--masks", refdata / "masks_deepcell",
        "--intensities", refdata / "intensities_deepcell",
        "--data", refdata / "regionprops_deepcell", "--neighbors", refdata / "neighbors_deepcell",
        "--panel", refdata / "panel.csv", "--info", refdata / "images.csv", "-o", out,
    )  # fmt: skip
    assert code == 0
    data = sd.read_zarr(out)
    assert sorted(data.images) == sorted(p.stem for p in (refdata / "img").glob("*.tiff"))
    image = data.images[NAME]
    assert list(image.coords["c"].values) == CHANNELS
    np.testing.assert_array_equal(image.values, tifffile.imread(refdata / "img" / f"{NAME}.tiff"))
    mask = tifffile.imread(refdata / "masks_deepcell" / f"{NAME}.tiff")
    np.testing.assert_array_equal(data.labels[f"{NAME}_masks"].values, mask)

    table = data.tables["table"]
    reference = anndata.read_h5ad(refdata / "cells.h5ad")
    assert list(table.obs_names) == list(reference.obs_names)
    np.testing.assert_array_equal(table.X, reference.X)
    attrs = table.uns["spatialdata_attrs"]
    assert attrs["region_key"] == "region" and attrs["instance_key"] == "Object"
    rows = table.obs["region"] == f"{NAME}_masks"
    assert sorted(table.obs.loc[rows, "Object"]) == sorted(set(np.unique(mask)) - {0})
    # a cell's area in the table is its pixel count in the linked labels
    cell = table.obs[rows].iloc[3]
    assert (mask == cell["Object"]).sum() == cell["area"]
    assert table.obsp["adj"].nnz > 0


def test_spatialdata_refuses_existing_store(refdata, tmp_path):
    pytest.importorskip("spatialdata")
    out = tmp_path / "cells.zarr"
    out.mkdir()
    (out / "keep").write_text("x")
    assert run("export", "spatialdata", "--img", refdata / "img", "--masks", tmp_path / "none",
               "--intensities", tmp_path / "none", "--panel", refdata / "panel.csv",
               "-o", out) == 1  # fmt: skip
    assert (out / "keep").read_text() == "x"
