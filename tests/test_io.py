"""The io layer: every validation error names the file and leaves no output behind."""

import re

import numpy as np
import pandas as pd
import pytest
import tifffile

from steinbock_like.channels import aggregate_groups, channel_groups, normalize_channel
from steinbock_like.errors import InputError, SteinbockLikeError
from steinbock_like.io.atomic import atomic_path
from steinbock_like.io.images import image_name, image_shape, read_image, write_image
from steinbock_like.io.masks import read_mask, write_mask
from steinbock_like.io.pairs import match_by_name
from steinbock_like.io.panel import panel_for_image, read_panel, write_panel
from steinbock_like.io.probabilities import (
    iter_probability_bands,
    probability_regions,
    read_probabilities,
    spool_probabilities,
    write_probabilities,
)

PANEL = """channel,name,keep,ilastik,deepcell,cellpose,Tube Number
Ir191,DNA1,1,1,1,2,12
Pr141,panCK,1,2,2,1,7
Sm147,Laminin,0,,,,3
Yb172,H3K27Ac,1,1,1,,
"""


def write(path, text):
    path.write_text(text)
    return path


def test_panel_is_parsed_with_types_and_extra_columns(tmp_path):
    panel = read_panel(write(tmp_path / "panel.csv", PANEL))
    assert panel["channel"].tolist() == ["Ir191", "Pr141", "Sm147", "Yb172"]
    assert panel["keep"].tolist() == [True, True, False, True]
    assert np.isnan(panel.loc[2, "ilastik"]) and panel.loc[1, "ilastik"] == 2.0
    assert panel["Tube Number"].tolist() == ["12", "7", "3", ""]


def test_panel_round_trip_keeps_integral_labels(tmp_path):
    panel = read_panel(write(tmp_path / "panel.csv", PANEL))
    write_panel(tmp_path / "out.csv", panel)
    text = (tmp_path / "out.csv").read_text()
    assert "Ir191,DNA1,1,1,1,2,12" in text
    pd.testing.assert_frame_equal(read_panel(tmp_path / "out.csv"), panel)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("name\nDNA\n", "no 'channel' column"),
        ("channel,name\nIr191,DNA\nIr191,DNA2\n", "duplicate channel ID 'Ir191'"),
        ("channel,name\nIr191,DNA\nIr193,DNA\n", "duplicate channel name 'DNA'"),
        ("channel,name,ilastik\nIr191,DNA,nuclear\n", "group label 'nuclear' in column 'ilastik'"),
        ("channel,name,keep\nIr191,,1\n", "channel 'Ir191' is kept (keep=1) but has no name"),
        ("channel,name,keep\nIr191,DNA,yes\n", "'keep' must be 0 or 1"),
    ],
)
def test_panel_errors_name_the_file(tmp_path, text, message):
    path = write(tmp_path / "panel.csv", text)
    with pytest.raises(InputError, match=re.escape(message)) as info:
        read_panel(path)
    assert str(info.value).startswith(str(path) + ": ")
    assert message in str(info.value)


def test_unnamed_channel_is_allowed_where_not_kept(tmp_path):
    panel = read_panel(write(tmp_path / "p.csv", "channel,name,keep\nA,a,1\nB,,0\n"))
    assert panel["name"].tolist() == ["a", ""]


def test_panel_rows_for_image_accept_kept_or_all_channels(tmp_path):
    panel = read_panel(write(tmp_path / "panel.csv", PANEL))
    assert panel_for_image(panel, 3)["channel"].tolist() == ["Ir191", "Pr141", "Yb172"]
    assert len(panel_for_image(panel, 4)) == 4
    with pytest.raises(InputError, match="image has 5 channels but the panel lists 3 kept"):
        panel_for_image(panel, 5, tmp_path / "img.tiff")


def test_channel_groups_and_aggregation(tmp_path):
    panel = panel_for_image(read_panel(write(tmp_path / "panel.csv", PANEL)), 3)
    groups = channel_groups(panel, "ilastik")
    assert groups == {1.0: [0, 2], 2.0: [1]}
    image = np.stack([np.full((2, 2), v, np.float32) for v in (1.0, 10.0, 3.0)])
    out = aggregate_groups(image, groups, aggr="mean")
    assert out.shape == (2, 2, 2) and out.dtype == np.float32
    assert np.all(out[0] == 2.0) and np.all(out[1] == 10.0)
    assert np.all(aggregate_groups(image, groups, aggr="max")[0] == 3.0)
    with pytest.raises(SteinbockLikeError, match="no 'mesmer' column"):
        channel_groups(panel, "mesmer")
    with pytest.raises(SteinbockLikeError, match="not a numpy function"):
        aggregate_groups(image, groups, aggr="average_of_stuff")


def test_normalisations():
    channel = np.array([[0.0, 5.0], [10.0, 5.0]], np.float32)
    assert np.allclose(normalize_channel(channel, "minmax"), [[0, 0.5], [1, 0.5]])
    z = normalize_channel(channel, "zscore")
    assert abs(float(z.mean())) < 1e-6 and abs(float(z.std()) - 1) < 1e-6
    assert np.all(normalize_channel(np.ones((2, 2)), "minmax") == 0)


def test_image_round_trip_any_dtype_read_as_float32_unscaled(tmp_path):
    data = np.arange(2 * 3 * 4, dtype=np.uint16).reshape(2, 3, 4) * 1000
    tifffile.imwrite(tmp_path / "a.tiff", data, compression="lzw")
    image = read_image(tmp_path / "a.tiff", num_channels=2)
    assert image.dtype == np.float32 and image.shape == (2, 3, 4)
    assert image.max() == data.max()
    write_image(tmp_path / "b.tiff", image)
    assert np.array_equal(read_image(tmp_path / "b.tiff"), image)
    assert image_shape(tmp_path / "b.tiff") == (2, 3, 4)


def test_ome_tiff_singleton_axes_are_dropped(tmp_path):
    data = np.random.default_rng(0).random((1, 3, 1, 5, 6), dtype=np.float32)
    tifffile.imwrite(tmp_path / "x.ome.tiff", data, metadata={"axes": "TCZYX"})
    assert read_image(tmp_path / "x.ome.tiff").shape == (3, 5, 6)
    assert image_name(tmp_path / "x.ome.tiff") == "x"


def test_truncated_tiff_is_a_one_line_error(tmp_path):
    tifffile.imwrite(
        tmp_path / "full.tiff", np.ones((3, 64, 64), np.float32), photometric="minisblack"
    )
    raw = (tmp_path / "full.tiff").read_bytes()
    (tmp_path / "cut.tiff").write_bytes(raw[: len(raw) // 3])
    with pytest.raises(InputError, match="unreadable or truncated TIFF") as info:
        read_image(tmp_path / "cut.tiff")
    message = str(info.value)
    assert message.startswith(f"{tmp_path / 'cut.tiff'}: unreadable or truncated TIFF")
    assert "\n" not in message


def test_not_a_tiff_and_missing_file(tmp_path):
    write(tmp_path / "fake.tiff", "hello")
    with pytest.raises(InputError, match="unreadable or truncated TIFF"):
        read_image(tmp_path / "fake.tiff")
    with pytest.raises(InputError, match="file not found"):
        read_image(tmp_path / "nothing.tiff")


def test_channel_count_mismatch(tmp_path):
    write_image(tmp_path / "a.tiff", np.ones((4, 8, 8), np.float32))
    with pytest.raises(InputError, match="image has 4 channels but the panel lists 3"):
        read_image(tmp_path / "a.tiff", num_channels=3)


def test_masks_are_uint16_and_validated(tmp_path):
    mask = np.zeros((5, 6), np.int64)
    mask[1:3, 1:3] = 7
    write_mask(tmp_path / "m.tiff", mask)
    back = read_mask(tmp_path / "m.tiff", shape=(5, 6))
    assert back.dtype == np.uint16 and back[1, 1] == 7
    with pytest.raises(
        InputError, match=r"mask shape \(5, 6\) does not match image shape \(6, 5\)"
    ):
        read_mask(tmp_path / "m.tiff", shape=(6, 5))
    tifffile.imwrite(tmp_path / "float.tiff", mask.astype(np.float32))
    with pytest.raises(InputError, match="must hold integer object IDs, found dtype float32"):
        read_mask(tmp_path / "float.tiff")
    tifffile.imwrite(tmp_path / "neg.tiff", -mask.astype(np.int32))
    with pytest.raises(InputError, match="negative"):
        read_mask(tmp_path / "neg.tiff")


def test_masks_beyond_uint16_become_uint32_with_a_warning(tmp_path, caplog):
    mask = np.arange(70000, dtype=np.uint32).reshape(280, 250)
    write_mask(tmp_path / "big.tiff", mask)
    assert read_mask(tmp_path / "big.tiff").dtype == np.uint32
    assert "more than 65535 objects" in caplog.text


def test_probabilities_from_float_truncate_like_ilastik(tmp_path):
    probabilities = np.array([[[0.5, 0.25, 0.25]]], np.float32)
    write_probabilities(tmp_path / "p.tiff", probabilities)
    back = read_probabilities(tmp_path / "p.tiff")
    assert back.dtype == np.uint16 and back.tolist() == [[[32767, 16383, 16383]]]


@pytest.mark.parametrize(
    ("layout", "num_bands", "mapped"),
    [
        ({"compression": "zlib", "rowsperstrip": 7}, 5, False),  # as write_probabilities
        ({"compression": "zlib", "tile": (32, 48)}, 4, False),  # the last tiles partial
        ({"compression": "lzw"}, 1, False),  # one strip, as ilastik's export
        # classes as pages, compressed: bands cut from a whole read
        ({"photometric": "minisblack", "planarconfig": None, "compression": "zlib"}, 6, False),
        ({}, 1, True),  # uncompressed: the file itself, memory-mapped
        ({"byteorder": ">"}, 1, True),
        ({"byteorder": ">", "photometric": "minisblack", "planarconfig": None}, 6, True),
    ],
)
def test_probability_regions_equal_the_whole_read(tmp_path, layout, num_bands, mapped):
    rng = np.random.default_rng(4)
    probabilities = rng.integers(0, 65536, (101, 150, 3), dtype=np.uint16)
    options = {"photometric": "rgb", "planarconfig": "contig", **layout}
    tifffile.imwrite(tmp_path / "p.tiff", probabilities, **options)
    whole = read_probabilities(tmp_path / "p.tiff")
    assert np.array_equal(whole, probabilities)
    bands = list(iter_probability_bands(tmp_path / "p.tiff", min_rows=20))
    assert [start for start, _ in bands] == list(np.cumsum([0] + [len(b) for _, b in bands])[:-1])
    assert all(len(band) >= 20 for _, band in bands[:-1]) and len(bands) == num_bands
    assert np.array_equal(np.concatenate([band for _, band in bands]), probabilities)
    for opened in (spool_probabilities, probability_regions):
        with opened(tmp_path / "p.tiff") as regions:
            assert regions.shape == (101, 150)
            assert (type(regions).__name__ == "MappedRegions") == (
                mapped and opened is not spool_probabilities
            )
            for rows, cols in [(slice(0, 101), slice(0, 150)), (slice(13, 77), slice(140, 150))]:
                region = regions.read(rows, cols)
                assert region.dtype == np.uint16 and region.dtype.isnative
                assert np.array_equal(region, probabilities[rows, cols])


def test_truncated_probabilities_spool_is_a_one_line_error(tmp_path):
    probabilities = np.full((200, 300, 3), 1234, np.uint16)
    write_probabilities(tmp_path / "p.tiff", probabilities)
    raw = (tmp_path / "p.tiff").read_bytes()
    (tmp_path / "cut.tiff").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(InputError, match="unreadable or truncated TIFF") as info:
        spool_probabilities(tmp_path / "cut.tiff").close()
    assert str(info.value).startswith(str(tmp_path / "cut.tiff")) and "\n" not in str(info.value)
    tifffile.imwrite(tmp_path / "f.tiff", probabilities.astype(np.float32), photometric="rgb")
    with pytest.raises(InputError, match="must be uint16, found float32"):
        spool_probabilities(tmp_path / "f.tiff")
    # uncompressed, cut short: not memory-mapped, the reader names the file
    tifffile.imwrite(tmp_path / "u.tiff", probabilities, photometric="rgb")
    raw = (tmp_path / "u.tiff").read_bytes()
    (tmp_path / "cut.tiff").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(InputError, match="unreadable or truncated TIFF") as info:
        probability_regions(tmp_path / "cut.tiff").close()
    assert str(info.value).startswith(str(tmp_path / "cut.tiff")) and "\n" not in str(info.value)


def test_pairs_report_unmatched_files_both_ways(tmp_path):
    (tmp_path / "img").mkdir()
    (tmp_path / "masks").mkdir()
    for name in ("a", "b"):
        write_mask(tmp_path / "img" / f"{name}.tiff", np.zeros((2, 2), np.uint16))
    write_mask(tmp_path / "masks" / "a.tiff", np.zeros((2, 2), np.uint16))
    with pytest.raises(InputError, match="no matching file in") as info:
        match_by_name(tmp_path / "img", tmp_path / "masks")
    assert str(info.value).startswith(str(tmp_path / "img" / "b.tiff"))
    assert "no matching file in" in str(info.value)
    write_mask(tmp_path / "masks" / "b.tiff", np.zeros((2, 2), np.uint16))
    write_mask(tmp_path / "masks" / "c.tiff", np.zeros((2, 2), np.uint16))
    with pytest.raises(InputError) as info:
        match_by_name(tmp_path / "img", tmp_path / "masks")
    assert str(info.value).startswith(str(tmp_path / "masks" / "c.tiff"))
    write_mask(tmp_path / "img" / "c.tiff", np.zeros((2, 2), np.uint16))
    assert [n for n, _, _ in match_by_name(tmp_path / "img", tmp_path / "masks")] == ["a", "b", "c"]


def test_atomic_write_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "out" / "x.tiff"
    with pytest.raises(RuntimeError, match="interrupted"), atomic_path(target) as tmp:
        tmp.write_bytes(b"half")
        raise RuntimeError("interrupted")
    assert not target.exists()
    assert list(target.parent.iterdir()) == []
    write_mask(target, np.ones((2, 2), np.uint16))
    assert [p.name for p in target.parent.iterdir()] == ["x.tiff"]


def test_panel_examples_are_valid():
    from pathlib import Path

    examples = sorted((Path(__file__).parents[1] / "panel_examples").glob("*.csv"))
    assert len(examples) == 3
    for path in examples:
        panel = read_panel(path)
        groups = channel_groups(panel_for_image(panel, int(panel["keep"].sum())), "deepcell")
        assert sorted(groups) == [1.0, 2.0], path.name


@pytest.mark.parametrize("aggr", ["mean", "sum", "max", "min"])
def test_streaming_aggregation_equals_the_stacked_one_bit_for_bit(tmp_path, aggr):
    from steinbock_like.channels import aggregate_groups_streaming
    from steinbock_like.io.images import iter_image_channels

    image = np.random.default_rng(1).gamma(1.0, 5.0, (7, 33, 41)).astype(np.float32)
    write_image(tmp_path / "a.tiff", image)
    groups = {1.0: [0, 2, 5], 2.0: [3], 4.0: [1, 6]}
    needed = sorted(c for members in groups.values() for c in members)
    streamed = aggregate_groups_streaming(
        iter_image_channels(tmp_path / "a.tiff", needed), groups, aggr=aggr
    )
    assert np.array_equal(streamed, aggregate_groups(image, groups, aggr=aggr))


def test_channel_iteration_reads_requested_pages_and_reports_truncation(tmp_path):
    from steinbock_like.io.images import iter_image_channels

    image = np.arange(4 * 16 * 16, dtype=np.float32).reshape(4, 16, 16)
    write_image(tmp_path / "a.tiff", image)
    got = dict(iter_image_channels(tmp_path / "a.tiff", [3, 1]))
    assert sorted(got) == [1, 3] and np.array_equal(got[3], image[3])
    with pytest.raises(InputError, match="channel 4 requested but the image has 4"):
        list(iter_image_channels(tmp_path / "a.tiff", [4]))
    tifffile.imwrite(tmp_path / "raw.tiff", image, photometric="minisblack")
    raw = (tmp_path / "raw.tiff").read_bytes()
    (tmp_path / "cut.tiff").write_bytes(raw[: len(raw) * 3 // 4])
    with pytest.raises(InputError, match="unreadable or truncated TIFF"):
        list(iter_image_channels(tmp_path / "cut.tiff"))


@pytest.mark.parametrize("dtype", [np.uint16, np.float32])
def test_channel_bands_of_one_strip_pages_are_read_a_band_at_a_time(tmp_path, dtype):
    from steinbock_like.io.blocks import ChannelBands

    rng = np.random.default_rng(2)
    image = rng.integers(0, 60000, (3, 90, 70)).astype(dtype)
    # uncompressed, one strip per page (as ImageJ writes): decoding would read a page whole
    tifffile.imwrite(tmp_path / "a.tiff", image, photometric="minisblack", rowsperstrip=90)
    with tifffile.TiffFile(tmp_path / "a.tiff") as tif:
        assert len(tif.pages[0].dataoffsets) == 1
    with ChannelBands(tmp_path / "a.tiff") as reader:
        bands = list(reader.bands(2, min_rows=20))
    assert [start for start, _ in bands] == [0, 20, 40, 60, 80]
    assert all(band.dtype == np.float32 for _, band in bands)
    assert np.array_equal(np.concatenate([band for _, band in bands]), image[2])
    if dtype == np.float32:  # a NaN is still named, in the band that holds it
        image[1, 55, 3] = np.nan
        tifffile.imwrite(tmp_path / "a.tiff", image, photometric="minisblack", rowsperstrip=90)
        with ChannelBands(tmp_path / "a.tiff") as reader:
            read = reader.bands(1, min_rows=20)
            assert [start for start, _ in [next(read), next(read)]] == [0, 20]
            with pytest.raises(InputError, match="non-finite pixel values") as info:
                next(read)
        assert str(info.value).startswith(str(tmp_path / "a.tiff"))


# -- neighbour tables -----------------------------------------------------------------------------
def test_neighbors_written_with_steinbock_columns_only_and_read_back(tmp_path):
    from steinbock_like.io.tables import read_neighbors, write_neighbors

    table = pd.DataFrame(
        {"Distance": [1.5, np.nan, 2.0], "Neighbor": [2, 1, 1], "Object": [1, 2, 3], "x": 0},
        index=[7, 8, 9],
    )
    write_neighbors(tmp_path / "n.csv", table)
    assert (tmp_path / "n.csv").read_text() == (
        "Object,Neighbor,Distance\n1,2,1.5\n2,1,\n3,1,2.0\n"
    )  # fixed column order, no index, NaN as an empty field
    back = read_neighbors(tmp_path / "n.csv")
    assert back["Object"].tolist() == [1, 2, 3] and back["Neighbor"].tolist() == [2, 1, 1]
    assert back["Distance"].tolist()[0] == 1.5 and np.isnan(back["Distance"].tolist()[1])
    assert [p.name for p in tmp_path.iterdir()] == ["n.csv"]  # no temporary file left


def test_neighbors_without_a_column_are_named(tmp_path):
    from steinbock_like.io.tables import read_neighbors

    (tmp_path / "n.csv").write_text("Object,Distance\n1,2.0\n")
    with pytest.raises(InputError, match=r"n.csv: neighbors table lacks column\(s\) Neighbor"):
        read_neighbors(tmp_path / "n.csv")
    with pytest.raises(InputError, match="file not found"):
        read_neighbors(tmp_path / "absent.csv")


def test_refdata_neighbors_round_trip_byte_for_byte(refdata, tmp_path):
    from steinbock_like.io.export.tables import read_neighbor_table
    from steinbock_like.io.tables import write_neighbors

    for path in sorted((refdata / "neighbors_deepcell").glob("*.csv")):
        table = read_neighbor_table(path)
        assert table.dtypes.astype(str).tolist() == ["int64", "int64", "float32"]
        write_neighbors(tmp_path / path.name, table)
        assert (tmp_path / path.name).read_bytes() == path.read_bytes(), path.name


def test_page_by_page_writers_refuse_wrong_channels_and_leave_no_file(tmp_path):
    import numpy as np
    import pytest

    from steinbock_like.io.cellprofiler_input import write_cellprofiler_image
    from steinbock_like.io.images import read_image, write_image_channels

    channel = np.ones((4, 5), np.uint16)
    write_image_channels(tmp_path / "ok.tiff", [channel, channel * 2], (2, 4, 5))
    assert read_image(tmp_path / "ok.tiff")[:, 0, 0].tolist() == [1.0, 2.0]
    with pytest.raises(ValueError, match=r"expected float32 \(4, 5\), got float32 \(5, 4\)"):
        write_image_channels(tmp_path / "a.tiff", [channel.T], (1, 4, 5))
    with pytest.raises(ValueError, match="got 1 channels, expected 2"):
        write_image_channels(tmp_path / "b.tiff", [channel], (2, 4, 5))
    with pytest.raises(ValueError, match=r"expected uint16 \(4, 5\), got float32"):
        write_cellprofiler_image(tmp_path / "c.tiff", [channel.astype(np.float32)], (1, 4, 5))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ok.tiff"]
