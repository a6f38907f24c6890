"""``export csv|fcs|anndata|graphs|ome`` against steinbock's outputs in the reference data,
read back with the real readers (pandas, flowio, anndata, networkx, tifffile)."""

import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.cli_helpers import run


def _deepcell(refdata):
    return refdata / "intensities_deepcell", refdata / "regionprops_deepcell"


def test_csv_equals_steinbock(refdata, tmp_path):
    intensities, regionprops = _deepcell(refdata)
    out = tmp_path / "cells.csv"
    assert run("export", "csv", intensities, regionprops, "-o", out) == 0
    ours, theirs = pd.read_csv(out), pd.read_csv(refdata / "cells.csv")
    assert list(ours.columns) == list(theirs.columns)
    assert list(ours.columns[:2]) == ["Image", "Object"]
    pd.testing.assert_frame_equal(ours, theirs, check_exact=False, rtol=1e-12)


def test_fcs_equals_steinbock(refdata, tmp_path):
    flowio = pytest.importorskip("flowio")
    out = tmp_path / "cells.fcs"
    assert run("export", "fcs", *_deepcell(refdata), "-o", out) == 0

    def read(path):
        data = flowio.FlowData(str(path))
        names = [data.channels[k]["pnn"] for k in sorted(data.channels, key=int)]
        return names, np.reshape(np.asarray(data.events), (-1, data.channel_count))

    names, values = read(out)
    ref_names, ref_values = read(refdata / "cells.fcs")
    assert names == ref_names
    assert values.shape == (169, 11)
    np.testing.assert_array_equal(values, ref_values)


def test_anndata_equals_steinbock(refdata, tmp_path):
    anndata = pytest.importorskip("anndata")
    intensities, regionprops = _deepcell(refdata)
    out = tmp_path / "cells.h5ad"
    args = ["--panel", refdata / "panel.csv", "--info", refdata / "images.csv", "-o", out]
    code = run(
        "export", "anndata", "--intensities", intensities, "--data", regionprops,
        "--neighbors", refdata / "neighbors_deepcell", *args,
    )  # fmt: skip
    assert code == 0
    ours, theirs = anndata.read_h5ad(out), anndata.read_h5ad(refdata / "cells.h5ad")
    assert list(ours.obs_names) == list(theirs.obs_names)
    assert ours.obs_names[0] == "Object 1 in 20210305_NE_mockData1_001.tiff"
    assert ours.X.dtype == np.float32
    np.testing.assert_array_equal(ours.X, theirs.X)
    pd.testing.assert_frame_equal(ours.obs, theirs.obs)
    pd.testing.assert_frame_equal(ours.var, theirs.var)
    # beyond steinbock: the neighbour graph survives concatenation, block-diagonal
    adj = ours.obsp["adj"].tocoo()
    neighbors = sum(
        len(pd.read_csv(p)) for p in sorted((refdata / "neighbors_deepcell").glob("*.csv"))
    )
    assert adj.nnz == neighbors
    images = ours.obs["Image"].to_numpy()
    assert (images[adj.row] == images[adj.col]).all()
    first = pd.read_csv(refdata / "neighbors_deepcell" / "20210305_NE_mockData1_001.csv")
    row = ours.obs_names.get_loc(f"Object {first.Object[0]} in 20210305_NE_mockData1_001.tiff")
    col = ours.obs_names.get_loc(f"Object {first.Neighbor[0]} in 20210305_NE_mockData1_001.tiff")
    assert ours.obsp["adj"][row, col] == 1


def test_graphs_equal_steinbock(refdata, tmp_path):
    nx = pytest.importorskip("networkx")
    intensities, regionprops = _deepcell(refdata)
    out = tmp_path / "graphs"
    code = run(
        "export", "graphs", "--neighbors", refdata / "neighbors_deepcell",
        "--data", intensities, "--data", regionprops, "-o", out,
    )  # fmt: skip
    assert code == 0
    reference = sorted((refdata / "graphs").glob("*.graphml"))
    assert sorted(p.name for p in out.glob("*.graphml")) == [p.name for p in reference]
    for path in reference:
        ours, theirs = nx.read_graphml(out / path.name), nx.read_graphml(path)
        assert type(ours) is type(theirs)
        assert list(ours.nodes) == list(theirs.nodes)
        assert nx.utils.edges_equal(ours.edges, theirs.edges)
        for node in theirs.nodes:
            assert ours.nodes[node] == pytest.approx(theirs.nodes[node], rel=1e-12)
        assert (out / path.name).read_bytes() == path.read_bytes()


def test_ome_equals_steinbock(refdata, tmp_path):
    import tifffile

    out = tmp_path / "ome"
    assert run("export", "ome", "--img", refdata / "img", "--panel", refdata / "panel.csv",
               "-o", out) == 0  # fmt: skip
    reference = sorted((refdata / "ome").glob("*.ome.tiff"))
    assert sorted(p.name for p in out.glob("*.ome.tiff")) == [p.name for p in reference]
    for path in reference:
        with tifffile.TiffFile(out / path.name) as ours, tifffile.TiffFile(path) as theirs:
            assert ours.is_ome
            assert ours.series[0].axes == "CYX"
            np.testing.assert_array_equal(ours.asarray(), theirs.asarray())
            assert _channel_names(ours.ome_metadata) == _channel_names(theirs.ome_metadata)
    with tifffile.TiffFile(out / reference[0].name) as tif:
        assert _channel_names(tif.ome_metadata)[1] == "Pr141_Cytokeratin 5"


def _channel_names(ome_xml: str) -> list[str]:
    return [e.get("Name") for e in ET.fromstring(ome_xml).iter() if e.tag.endswith("}Channel")]


# --- synthetic tables: options, per-image outputs, errors -------------------------------


def _tables(root: Path) -> tuple[Path, Path, Path]:
    intensities, regionprops, neighbors = (root / d for d in ("int", "rp", "nb"))
    for d in (intensities, regionprops, neighbors):
        d.mkdir()
    for name, n in (("a", 3), ("b", 2)):
        ids = np.arange(1, n + 1)
        pd.DataFrame({"Object": ids, "CD3": ids * 1.5, "CD8": ids * 0.25}).to_csv(
            intensities / f"{name}.csv", index=False
        )
        pd.DataFrame({"Object": ids, "area": ids * 10}).to_csv(
            regionprops / f"{name}.csv", index=False
        )
        pairs = [(1, 2, 1.5), (2, 1, 1.5)] + ([(2, 3, 2.0)] if n == 3 else [])
        pd.DataFrame(pairs, columns=["Object", "Neighbor", "Distance"]).to_csv(
            neighbors / f"{name}.csv", index=False
        )
    return intensities, regionprops, neighbors


def test_csv_refuses_existing_output_and_overwrites(tmp_path):
    intensities, regionprops, _ = _tables(tmp_path)
    out = tmp_path / "cells.csv"
    out.write_text("keep me")
    assert run("export", "csv", intensities, regionprops, "-o", out) == 1
    assert out.read_text() == "keep me"
    assert run("export", "csv", intensities, regionprops, "-o", out, "--overwrite") == 0
    table = pd.read_csv(out)
    assert list(table.columns) == ["Image", "Object", "CD3", "CD8", "area"]
    assert table["Image"].tolist() == ["a.tiff"] * 3 + ["b.tiff"] * 2
    assert table["area"].tolist() == [10, 20, 30, 10, 20]
    assert not list(tmp_path.glob(".tmp-*"))


def test_no_concat_writes_one_table_per_image(tmp_path):
    intensities, regionprops, _ = _tables(tmp_path)
    out = tmp_path / "per_image"
    assert run("export", "csv", intensities, regionprops, "--no-concat", "-o", out) == 0
    b = pd.read_csv(out / "b.csv")
    assert list(b.columns) == ["Object", "CD3", "CD8", "area"]
    assert b["CD3"].tolist() == [1.5, 3.0]


def test_missing_related_table_is_one_line(tmp_path, capsys):
    intensities, regionprops, _ = _tables(tmp_path)
    (regionprops / "b.csv").unlink()
    assert run("export", "csv", intensities, regionprops, "-o", tmp_path / "c.csv") == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "b.csv" in err[0]


def test_anndata_no_concat_and_distances(tmp_path):
    anndata = pytest.importorskip("anndata")
    intensities, regionprops, neighbors = _tables(tmp_path)
    out = tmp_path / "adata"
    code = run(
        "--data", tmp_path, "export", "anndata", "--intensities", intensities,
        "--data", regionprops, "--neighbors", neighbors, "--no-concat", "-o", out,
    )  # fmt: skip
    assert code == 0
    a = anndata.read_h5ad(out / "a.h5ad")
    assert list(a.obs_names) == ["Object 1", "Object 2", "Object 3"]
    assert list(a.var_names) == ["CD3", "CD8"]
    assert a.obs["area"].tolist() == [10, 20, 30]
    assert a.obsp["dist"][1, 2] == pytest.approx(2.0)
    assert a.obsp["adj"][2, 1] == 0  # pair given one way only


def test_graphs_directed_when_pairs_are_one_way(tmp_path):
    nx = pytest.importorskip("networkx")
    intensities, _, neighbors = _tables(tmp_path)
    out = tmp_path / "graphs"
    code = run("export", "graphs", "--neighbors", neighbors, "--data", intensities, "-o", out)
    assert code == 0
    a, b = nx.read_graphml(out / "a.graphml"), nx.read_graphml(out / "b.graphml")
    assert a.is_directed() and not b.is_directed()
    assert a.edges["2", "3"]["Distance"] == pytest.approx(2.0)
    assert b.nodes["2"]["CD3"] == pytest.approx(3.0)
    assert (out / "run_metadata.json").is_file()


def test_histocat_layout_and_values(refdata, tmp_path):
    import tifffile

    out = tmp_path / "histocat"
    code = run(
        "export", "histocat", "--img", refdata / "img", "--masks", refdata / "masks_deepcell",
        "--panel", refdata / "panel.csv", "-o", out,
    )  # fmt: skip
    assert code == 0
    name = "20210305_NE_mockData1_002"
    files = sorted(p.name for p in (out / name).glob("*.tiff"))
    assert "Pr141_Cytokeratin_5.tiff" in files and f"{name}_mask.tiff" in files
    assert len(files) == 6
    channel = tifffile.imread(out / name / "Pr141_Cytokeratin_5.tiff")
    np.testing.assert_array_equal(
        np.squeeze(channel), tifffile.imread(refdata / "img" / f"{name}.tiff")[1]
    )
    mask = tifffile.imread(out / name / f"{name}_mask.tiff")
    assert mask.dtype == np.uint16
    np.testing.assert_array_equal(
        np.squeeze(mask), tifffile.imread(refdata / "masks_deepcell" / f"{name}.tiff")
    )


def test_anndata_var_of_compartment_columns():
    import pandas as pd

    from steinbock_like.io.export.anndata import channel_var

    panel = pd.DataFrame({"channel": ["Ir191", "Yb176"], "keep": [True, True]}, index=["DNA", "H3"])
    var = channel_var(panel, ["DNA", "H3", "DNA_nucleus", "H3_cyto_plasm"])
    assert list(var.index) == ["DNA", "H3", "DNA_nucleus", "H3_cyto_plasm"]
    assert list(var["channel"]) == ["Ir191", "Yb176", "Ir191", "Yb176"]
    assert list(var["compartment"]) == ["", "", "nucleus", "cyto_plasm"]
    assert "compartment" not in channel_var(panel, ["H3", "DNA"]).columns
    with pytest.raises(KeyError, match="'CD3_nucleus' is not a kept panel channel"):
        channel_var(panel, ["CD3_nucleus"])


def test_merged_object_tables_keep_objects_present_in_every_table_in_first_order():
    from steinbock_like.io.export.tables import merge_tables

    intensities = pd.DataFrame({"CD3": [1.0, 2.0, 3.0]}, index=pd.Index([3, 1, 2], name="Object"))
    regionprops = pd.DataFrame({"area": [10, 20, 40]}, index=pd.Index([1, 2, 4], name="Object"))
    merged = merge_tables([intensities, regionprops])
    assert merged.index.tolist() == [1, 2]  # 3 lacks regionprops, 4 lacks intensities
    assert merged.columns.tolist() == ["CD3", "area"]
    assert merged["CD3"].tolist() == [2.0, 3.0] and merged["area"].tolist() == [10, 20]
