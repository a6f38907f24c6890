"""``export heatmap``: the PNG has the layout's size and shows the table's values."""

import numpy as np
import pandas as pd
import pytest

from tests.cli_helpers import run

pytest.importorskip("matplotlib")


def _cells(path):
    cells = pd.DataFrame(
        {
            "Image": ["a.tiff"] * 2 + ["b.tiff"] * 2 + ["c.tiff"],
            "Object": [1, 2, 1, 2, 1],
            "CD3": [0.0, 2.0, 4.0, 4.0, 10.0],  # image means 1, 4, 10 -> 0, 1/3, 1
            "CD8": [5.0, 5.0, 1.0, 1.0, 3.0],  # 5, 1, 3 -> 1, 0, 0.5
            "area": [10, 20, 30, 40, 50],
        }
    )
    cells.to_csv(path, index=False)
    pd.DataFrame({"channel": ["X1", "X2"], "name": ["CD3", "CD8"], "keep": [1, 1]}).to_csv(
        path.parent / "panel.csv", index=False
    )


@pytest.mark.parametrize("by", ["image", "cell"])
def test_heatmap_png_shows_the_scaled_table(tmp_path, by):
    import imageio.v3 as iio
    from matplotlib import colormaps

    from steinbock_like.io.export.heatmap import heatmap_layout

    _cells(tmp_path / "cells.csv")
    assert run("--data", tmp_path, "export", "heatmap", "--by", by, "--order", "table") == 0
    png = iio.imread(tmp_path / "cells_heatmap.png")
    if by == "image":
        expected = np.array([[0.0, 1.0], [1 / 3, 0.0], [1.0, 0.5]])
    else:  # per cell: CD3 0, .2, .4, .4, 1; CD8 1, 1, 0, 0, .5
        expected = np.array([[0, 1], [0.2, 1], [0.4, 0], [0.4, 0], [1, 0.5]])
    layout = heatmap_layout(*expected.shape)  # markers: the panel's, not 'area'
    assert png.shape[:2] == (layout.height, layout.width)
    viridis = colormaps["viridis"]
    for (row, column), value in np.ndenumerate(expected):
        y, x = layout.centre(row, column)
        colour = np.asarray(viridis(value)[:3]) * 255
        np.testing.assert_allclose(png[y, x, :3], colour, atol=2)


def test_cells_are_grouped_by_their_brightest_marker():
    from steinbock_like.io.export.heatmap import order_by_dominant_marker

    scaled = pd.DataFrame(
        {"CD3": [0, 0.2, 0.4, 0.4, 1.0], "CD8": [1, 1, 0, 0, 0.5]}, index=list("abcde")
    )
    assert list(order_by_dominant_marker(scaled).index) == ["e", "c", "d", "a", "b"]


def test_heatmap_refuses_to_replace_and_needs_a_cell_table(tmp_path):
    _cells(tmp_path / "cells.csv")
    (tmp_path / "cells_heatmap.png").write_bytes(b"x")
    assert run("--data", tmp_path, "export", "heatmap") == 1
    assert (tmp_path / "cells_heatmap.png").read_bytes() == b"x"
    pd.DataFrame({"a": [1]}).to_csv(tmp_path / "other.csv", index=False)
    assert run("--data", tmp_path, "export", "heatmap", "--cells", "other.csv", "-o", "h.png") == 1
    assert not (tmp_path / "h.png").exists()
