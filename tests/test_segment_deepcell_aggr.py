"""``segment deepcell --aggr``: steinbock's numpy reductions over a group's channels."""

import shutil

import numpy as np
import pandas as pd
import pytest
import tifffile

from steinbock_like.segment.mesmer.inputs import AGGREGATIONS, mesmer_input
from tests.cli_helpers import run

IMAGE = "20210305_NE_mockData1_001"


@pytest.mark.parametrize("name", ["min", "std", "var", "ptp", "prod", "nanmax", "nanmedian"])
def test_every_aggregation_reduces_each_pixel_over_the_group(name):
    rng = np.random.default_rng(1)
    image = rng.uniform(0, 5, (4, 6, 7)).astype(np.float32)
    panel = pd.DataFrame({"deepcell": [1, 2, 2, 2]})
    nuclear, membrane = mesmer_input(image, panel, aggr=name)
    reduce = getattr(np, name)
    np.testing.assert_allclose(membrane, reduce(image[1:], axis=0), rtol=1e-6)
    np.testing.assert_allclose(nuclear, reduce(image[:1], axis=0), rtol=1e-6)
    assert membrane.dtype == np.float32


def test_steinbocks_names_are_all_known():
    assert {"mean", "median", "sum", "max", "min", "std", "amax", "nanmean"} <= set(AGGREGATIONS)


def test_unknown_aggregation_is_a_one_line_usage_error(tmp_path, capsys):
    assert run("--data", tmp_path, "segment", "deepcell", "--aggr", "cumsum") == 2
    err = capsys.readouterr().err
    assert "'cumsum'" in err and "nanmean" in err


@pytest.fixture
def data(refdata, mesmer_model, tmp_path, monkeypatch):
    """One reference image; the panel's membrane group widened to three channels."""
    monkeypatch.setenv("STEINBOCK_LIKE_MODELS", str(mesmer_model.parent))
    (tmp_path / "img").mkdir()
    shutil.copy(refdata / "img" / f"{IMAGE}.tiff", tmp_path / "img")
    panel = pd.read_csv(refdata / "panel.csv")
    panel.loc[[1, 2, 3], "deepcell"] = 2
    panel.to_csv(tmp_path / "panel.csv", index=False)
    return tmp_path


def test_aggregation_changes_the_masks(data):
    masks = {}
    for name in ("mean", "min", "max", "amax"):
        assert run("--data", data, "segment", "deepcell", "--aggr", name, "-o", name) == 0
        masks[name] = tifffile.imread(data / name / f"{IMAGE}.tiff")
    np.testing.assert_array_equal(masks["amax"], masks["max"])  # numpy's alias
    assert masks["mean"].max() > 5
    assert not np.array_equal(masks["min"], masks["mean"])
    assert not np.array_equal(masks["max"], masks["min"])
