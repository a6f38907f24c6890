"""The fast paths of measure intensities: repr-identical CSV text, run sums, the
pandas-free panel reader, threads."""

import os

import numpy as np
import pandas as pd
import pytest
import tifffile
from cli_helpers import run

from steinbock_like.errors import InputError
from steinbock_like.io.float_text import csv_lines, float64_digits
from steinbock_like.io.panel import read_panel
from steinbock_like.io.panel_rows import PanelRows, read_panel_rows
from steinbock_like.measure.intensities import RunSums, compact_labels, label_runs


def _repr_lines(values):
    return "".join(("" if v != v else repr(v)) + "\n" for v in values.tolist())


def test_float_text_equals_repr_on_hard_values():
    rng = np.random.default_rng(7)
    n = 20000
    values = np.concatenate(
        [
            rng.random(n) * 10.0 ** rng.integers(-6, 17, n),  # every notation
            np.frombuffer(rng.bytes(8 * n), dtype=np.float64),  # any bit pattern
            rng.integers(0, 10**6, n) / 2.0 ** rng.integers(0, 40, n),  # exact ties
            rng.integers(0, 10**6, n) / 10.0 ** rng.integers(0, 9, n),  # short decimals
            np.nextafter(10.0 ** rng.integers(-5, 17, n), rng.choice([0, np.inf], n)),
            rng.integers(0, 10**16, n).astype(float),  # integers: "123.0"
            rng.random(n).astype(np.float32).astype(np.float64),
            -rng.gamma(1, 5, n),
            [0.0, -0.0, np.nan, np.inf, -np.inf, 1e16, 1e-4, 1e-5, 9.999999999999999e-5],
            [5e-324, 1.7976931348623157e308, 2.0**53, 0.1, 0.30000000000000004],
        ]
    )
    assert csv_lines([values]).decode() == _repr_lines(values)
    # means of float32 values, the common case: almost all formatted without repr
    sums = rng.gamma(1, 5, (n, 50)).astype(np.float32).astype(np.float64).sum(axis=1)
    means = sums / rng.integers(50, 400, n)
    assert csv_lines([means]).decode() == _repr_lines(means)
    assert float64_digits(means)[3].mean() < 0.01


def test_compiled_csv_rows_equal_repr_on_hard_values(monkeypatch):
    from steinbock_like.io import float_text

    if float_text._compiled is None:
        if os.environ.get("CI"):
            pytest.fail("steinbock_like.io._float_text was not built (C compiler missing?)")
        pytest.skip("the compiled CSV writer is not built here (no C compiler at install)")
    rng = np.random.default_rng(17)
    n = 50000
    powers = 2.0 ** rng.integers(-20, 60, n)
    values = np.concatenate(
        [
            rng.random(n) * 10.0 ** rng.integers(-6, 17, n),
            np.frombuffer(rng.bytes(8 * n), dtype=np.float64),
            rng.integers(0, 10**6, n) / 2.0 ** rng.integers(0, 40, n),  # exact ties
            rng.integers(0, 10**6, n) / 10.0 ** rng.integers(0, 9, n),  # short decimals
            np.nextafter(10.0 ** rng.integers(-5, 17, n), rng.choice([0, np.inf], n)),
            rng.integers(0, 10**16, n).astype(float),
            powers,  # a quarter gap below: the asymmetric case
            np.nextafter(powers, 0),
            -rng.gamma(1, 5, n) / rng.integers(1, 400, n),
            [0.0, -0.0, np.nan, np.inf, -np.inf, 1e16, 1e-4, 1e-5, 9.999999999999999e-5],
            [9999999999999998.0, 5e-324, 1.7976931348623157e308, 0.1, 0.30000000000000004],
        ]
    )
    columns = values[: len(values) // 3 * 3].reshape(3, -1)
    ids = np.arange(columns.shape[1], dtype=np.uint32) * 7
    text = float_text.csv_lines([ids, *columns])
    expected = "".join(
        f"{i}," + ",".join("" if v != v else repr(v) for v in row) + "\n"
        for i, row in zip(ids.tolist(), columns.T.tolist(), strict=True)
    )
    assert text.decode() == expected
    monkeypatch.setattr(float_text, "_compiled", None)  # the numpy path: the same bytes
    assert float_text.csv_lines([ids, *columns]) == text


def test_csv_lines_mixes_columns():
    floats = np.array([0.5, np.nan, 12.0])
    text = csv_lines([np.array([1, 20, 300], np.uint16), floats, floats * 2, ["a", "b", "c"]])
    assert text == b"1,0.5,1.0,a\n20,,,b\n300,12.0,24.0,c\n"


def test_object_table_writer_equals_pandas_for_many_rows(tmp_path):
    from steinbock_like.io.tables import write_object_columns

    rng = np.random.default_rng(3)
    ids = np.arange(1, 2001, dtype=np.uint32) * 3
    columns = {f"m{i}": rng.gamma(1, 5, 2000) / rng.integers(1, 300, 2000) for i in range(7)}
    columns["m2"][5] = np.nan
    write_object_columns(tmp_path / "ours.csv", ids, columns)
    pd.DataFrame(columns, index=pd.Index(ids, name="Object")).to_csv(tmp_path / "pandas.csv")
    assert (tmp_path / "ours.csv").read_bytes() == (tmp_path / "pandas.csv").read_bytes()


def test_run_sums_equal_per_pixel_sums_bit_for_bit():
    rng = np.random.default_rng(5)
    mask = rng.integers(0, 40, (37, 23)).astype(np.uint16)
    mask[mask > 30] = 0
    # values of one scale (as intensities are): float64 sums of float32 are then exact
    values = (rng.random(mask.shape) * 100 + 1).astype(np.float32)
    ids, index = compact_labels(mask)
    starts, labels, lengths = label_runs(index)
    assert lengths.sum() == index.size
    assert (labels == index.ravel()[starts]).all()
    expected = np.bincount(index.ravel(), weights=values.ravel(), minlength=len(ids) + 1)
    runs = RunSums(len(ids))
    banded = sum(
        runs.sums(start, index[start : start + 5], values[start : start + 5])
        for start in range(0, len(index), 5)
    )
    assert np.array_equal(banded, expected)
    assert np.array_equal(runs.counts, np.bincount(index.ravel(), minlength=len(ids) + 1))
    lean = RunSums(len(ids), keep_labels=False)  # run starts only (whole-slide images)
    for _ in range(2):
        assert np.array_equal(lean.sums(0, index, values), expected)


def _compiled_run_sums():
    """The compiled kernel; CI builds it (its absence there is a failure, not a skip)."""
    from steinbock_like.measure import intensities

    if intensities._run_sums is None:
        if os.environ.get("CI"):
            pytest.fail("steinbock_like.measure._run_sums was not built (C compiler missing?)")
        pytest.skip("the compiled run sums are not built here (no C compiler at install)")
    return intensities._run_sums


@pytest.mark.parametrize("dtype", ["float32", "float64", "uint16", "int16", "uint8", "int8"])
@pytest.mark.parametrize("index_types", [("int32", "uint32"), ("int64", "int64")])
def test_compiled_run_sums_equal_the_numpy_path(monkeypatch, dtype, index_types):
    from steinbock_like.measure import intensities

    kernel = _compiled_run_sums()
    rng = np.random.default_rng(11)
    mask = rng.integers(0, 60, (64, 53)).astype(np.uint16)
    mask[:, 10:20] = mask[:, 10:11]  # long runs as well as short ones
    info = np.iinfo(dtype) if dtype[0] in "ui" else None
    if info is None:
        values = (rng.random(mask.shape) * 1000 - 100).astype(dtype)
    else:
        values = rng.integers(info.min, info.max, mask.shape, endpoint=True).astype(dtype)
    ids, index = compact_labels(mask)
    starts, labels, _ = label_runs(index)
    out = np.zeros((1, len(ids) + 1))
    kernel.run_sums(
        [values.ravel()], starts.astype(index_types[0]), labels.astype(index_types[1]), out
    )
    out = out[0]
    expected = np.add.reduceat(values.ravel().astype(np.float64), starts)
    expected = np.bincount(labels, weights=expected, minlength=len(ids) + 1)
    if dtype == "float64":  # numpy sums pairwise, the kernel in order: rounding only
        np.testing.assert_allclose(out, expected, rtol=1e-13)
    else:
        assert np.array_equal(out, expected)  # exact sums: the same bits
    twice = np.stack([out, out])
    kernel.run_sums([values.ravel()] * 2, starts, labels, twice)  # it adds to what is there
    np.testing.assert_allclose(twice, [2 * expected] * 2, rtol=1e-13)
    # 1 to 9 channels at once (groups of four and the rest): each as alone
    many = np.stack([values.ravel()[::-1], values.ravel()] * 5)
    for count in range(1, 10):
        together = np.zeros((count, len(ids) + 1))
        kernel.run_sums(list(many[:count]), starts, labels, together)
        for row, channel in zip(together, many[:count], strict=True):
            alone = np.zeros((1, len(ids) + 1))
            kernel.run_sums([channel], starts, labels, alone)
            assert np.array_equal(row, alone[0])
    # RunSums with and without the kernel: the same bits
    with_kernel = RunSums(len(ids)).sums(0, index, values)
    monkeypatch.setattr(intensities, "_run_sums", None)
    assert np.array_equal(RunSums(len(ids)).sums(0, index, values), with_kernel)


def test_compiled_run_sums_refuse_bad_arguments():
    kernel = _compiled_run_sums()
    values = [np.ones(10, np.float32)]
    starts = np.array([0, 4], np.int32)
    labels = np.array([1, 2], np.uint32)
    out = np.zeros((1, 3))
    kernel.run_sums(values, starts, labels, out)
    assert out.tolist() == [[0.0, 4.0, 6.0]]
    with pytest.raises(ValueError, match="out of range"):
        kernel.run_sums(values, starts, np.array([1, 3], np.uint32), out)
    with pytest.raises(ValueError, match="out of range"):  # starts beyond the values
        kernel.run_sums(values, np.array([0, 11], np.int32), labels, out)
    with pytest.raises(ValueError, match="out of range"):  # not from the first pixel
        kernel.run_sums(values, np.array([1, 4], np.int32), labels, out)
    with pytest.raises(TypeError, match="value type"):
        kernel.run_sums([values[0].astype(np.int64)], starts, labels, out)
    with pytest.raises(TypeError, match="value type"):  # mixed types
        kernel.run_sums([values[0], values[0].astype(np.uint16)], starts, labels, out)
    with pytest.raises(ValueError, match="length"):
        kernel.run_sums([values[0], values[0][:5]], starts, labels, np.zeros((2, 3)))
    with pytest.raises(TypeError, match="float64"):
        kernel.run_sums(values, starts, labels, out.astype(np.float32))
    with pytest.raises(ValueError, match="one row per channel"):
        kernel.run_sums(values * 2, starts, labels, np.zeros(5))
    with pytest.raises((BufferError, ValueError)):  # read-only output
        kernel.run_sums(values, starts, labels, np.frombuffer(bytes(24)))
    with pytest.raises(ValueError, match="length"):
        kernel.run_sums(values, starts, np.array([1], np.uint32), out)
    assert out.tolist() == [[0.0, 4.0, 6.0]]  # nothing added by a refused call


def _panel(tmp_path, text, name="panel.csv"):
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    "text",
    [
        "channel,name,keep\nX1,A,1\nX2,B,0\nX3,C,1\n",
        "channel,name\nX1,A\nX2,B\n",
        "channel\nX1\nX2\n",
        "channel, name, keep, ilastik, deepcell\nX1, A, 1, 1, \nX2, , 0, nan, 2\n",
        "Unnamed: 0,channel,name,keep\n0,X1,A,1.0\n1,X2,B,True\n",
    ],
)
def test_panel_rows_equal_read_panel(tmp_path, text):
    path = _panel(tmp_path, text)
    assert read_panel_rows(path) == PanelRows.from_table(read_panel(path))


@pytest.mark.parametrize(
    "text",
    [
        "channel,name,keep\nX1,A,1\nX1,B,1\n",  # duplicate channel
        "channel,name,keep\nX1,A,1\nX2,A,1\n",  # duplicate name
        "channel,name,keep\nX1,,1\n",  # kept without a name
        "channel,name,keep\nX1,A,2\n",  # bad keep
        "name,keep\nA,1\n",  # no channel column
        "channel,name,ilastik\nX1,A,one\n",  # bad group label
        "channel,name\n",  # no rows
    ],
)
def test_panel_rows_report_problems_as_read_panel(tmp_path, text):
    path = _panel(tmp_path, text)
    with pytest.raises(InputError) as theirs:
        read_panel(path)
    with pytest.raises(InputError) as ours:
        read_panel_rows(path)
    assert str(ours.value) == str(theirs.value)


def test_panel_rows_for_image(tmp_path):
    rows = read_panel_rows(_panel(tmp_path, "channel,name,keep\nX1,A,1\nX2,B,0\nX3,C,1\n"))
    assert rows.for_image(2).name == ("A", "C")
    assert rows.for_image(3).keep == (True, False, True)
    with pytest.raises(InputError, match="image has 4 channels but the panel lists 2 kept"):
        rows.for_image(4, "img.tiff")


def test_threads_give_the_same_table(tmp_path):
    rng = np.random.default_rng(2)
    (tmp_path / "img").mkdir()
    (tmp_path / "masks").mkdir()
    mask = np.kron(rng.integers(0, 60, (12, 9)), np.ones((5, 5), int)).astype(np.uint16)
    image = rng.gamma(1, 5, (6, *mask.shape)).astype(np.float32)
    tifffile.imwrite(tmp_path / "img" / "a.tiff", image)
    tifffile.imwrite(tmp_path / "masks" / "a.tiff", mask)
    rows = "".join(f"c{i},n{i},1\n" for i in range(6))
    _panel(tmp_path, "channel,name,keep\n" + rows)
    for workers in ("1", "2"):  # threads: all cores, or half of them (one image)
        assert (
            run("--data", tmp_path, "measure", "intensities", "--workers", workers, "-o", workers)
            == 0
        )
    one = (tmp_path / "1" / "a.csv").read_bytes()
    assert one == (tmp_path / "2" / "a.csv").read_bytes()
    table = pd.read_csv(tmp_path / "1" / "a.csv", index_col="Object")
    ids, index = compact_labels(mask)
    counts = np.bincount(index.ravel())[1:]
    expected = np.bincount(index.ravel(), weights=image[4].ravel())[1:] / counts
    assert table.index.tolist() == ids.tolist()
    # float32 values of very different scales: sums in another order differ in the last bit
    np.testing.assert_allclose(table["n4"].to_numpy(), expected, rtol=1e-14, atol=0)


@pytest.mark.parametrize("aggr", ["mean", "max"])
def test_nan_in_the_background_is_reported_naming_the_image(tmp_path, capsys, aggr):
    (tmp_path / "img").mkdir()
    (tmp_path / "masks").mkdir()
    mask = np.zeros((20, 30), np.uint16)
    mask[2:8, 3:9] = 4
    image = np.ones((2, 20, 30), np.float32)
    image[1, 15, 25] = np.nan  # outside every object
    tifffile.imwrite(tmp_path / "img" / "a.tiff", image, photometric="minisblack")
    tifffile.imwrite(tmp_path / "masks" / "a.tiff", mask)
    _panel(tmp_path, "channel,name\nc0,n0\nc1,n1\n")
    assert run("--data", tmp_path, "measure", "intensities", "--aggr", aggr) == 1
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert line.startswith("Error: ") and "img/a.tiff" in line and "1 NaN" in line


def test_banded_reading_in_threads_equals_scipy(tmp_path, monkeypatch):
    """A compressed image (not memory-mapped) read in many bands, by two threads."""
    from scipy import ndimage

    import steinbock_like.tasks.measure as tasks
    from steinbock_like.runner import Job

    rng = np.random.default_rng(4)
    mask = np.kron(rng.integers(0, 90, (30, 4)), np.ones((7, 9), int)).astype(np.uint32)
    image = (rng.random((3, *mask.shape)) * 100 + 1).astype(np.float32)
    tifffile.imwrite(tmp_path / "a.tiff", image, rowsperstrip=8, compression="zlib")
    tifffile.imwrite(tmp_path / "m.tiff", mask)
    monkeypatch.setattr(tasks, "BAND_PIXELS", 4 * 16 * mask.shape[1])  # bands of 16 rows
    panel = PanelRows(("c0", "c1", "c2"), ("a", "b", "c"), (True, False, True))
    job = Job("a", {"img": tmp_path / "a.tiff", "mask": tmp_path / "m.tiff"}, {})
    job.outputs["table"] = tmp_path / "out.csv"
    ids = np.unique(mask[mask > 0])
    assert tasks.IntensitiesTask(panel, threads=2)(job) == {"objects": len(ids), "channels": 2}
    table = pd.read_csv(tmp_path / "out.csv", index_col="Object")
    assert table.index.tolist() == ids.tolist() and list(table.columns) == ["a", "c"]
    np.testing.assert_allclose(table["c"], ndimage.mean(image[2], mask, ids), rtol=1e-14)


def test_mapped_channels_fast_path_equals_page_by_page(tmp_path, monkeypatch):
    from steinbock_like.io import mapped

    image = np.random.default_rng(2).random((5, 30, 20)).astype(np.float32)
    tifffile.imwrite(tmp_path / "plain.tiff", image)
    tifffile.imwrite(tmp_path / "zlib.tiff", image, compression="zlib")
    tifffile.imwrite(tmp_path / "uint16.tiff", (image * 1000).astype(np.uint16), imagej=True)
    tifffile.imwrite(tmp_path / "float64.tiff", image.astype(np.float64))
    fast = {p.name: mapped.map_channels(p) for p in sorted(tmp_path.iterdir())}
    assert fast["zlib.tiff"] is None and fast["float64.tiff"] is None
    monkeypatch.setattr(mapped, "_contiguous_offsets", lambda series, shape: None)
    for name in ("plain.tiff", "uint16.tiff"):
        slow = mapped.map_channels(tmp_path / name)
        assert fast[name].offsets == slow.offsets and fast[name].dtype == slow.dtype
        expected = tifffile.imread(tmp_path / name)
        for c in range(5):
            assert np.array_equal(fast[name].channel(c), expected[c])


def test_small_images_measure_without_heavy_imports(tmp_path):
    """Start-up is a large part of measuring a few small images: neither scipy.ndimage
    (tiles) nor distributed (dask) nor pandas may be imported for them."""
    import subprocess
    import sys

    (tmp_path / "img").mkdir()
    (tmp_path / "masks").mkdir()
    tifffile.imwrite(tmp_path / "img" / "a.tiff", np.ones((2, 20, 30), np.float32))
    tifffile.imwrite(tmp_path / "masks" / "a.tiff", np.arange(600, dtype=np.uint16).reshape(20, 30))
    (tmp_path / "panel.csv").write_text("channel,name\nX,x\nY,y\n")
    script = (
        "import sys\n"
        "from steinbock_like.cli.main import main\n"
        "try:\n"
        f"    main(['--data', {str(tmp_path)!r}, '-q', 'measure', 'intensities'])\n"
        "except SystemExit as exit_:\n"
        "    assert exit_.code == 0, exit_.code\n"
        "print(sorted(m for m in ('scipy.ndimage', 'distributed', 'pandas') if m in sys.modules))\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
    assert (tmp_path / "intensities" / "a.csv").read_text().splitlines()[1] == "1,1.0,1.0"
