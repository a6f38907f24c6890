"""Cohorts (issue 20): image lists from SQLite/CSV, remote images through a cache,
versioned runs, npz masks, resume by image ID.

A real ``http.server`` on 127.0.0.1 (in a thread) serves brightfield example slides as
JPEG, PNG and TIFF, and counts the requests it answers. Cellpose's network is replaced by
a threshold stand-in (as in test_cellpose.py), so that the tests are about the cohort
workflow and take seconds; a subprocess running the same stand-in is killed with
SIGKILL in the middle of a run to test ``--resume``.
"""

from __future__ import annotations

import functools
import http.server
import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
import tifffile
from cli_helpers import run

from steinbock_like.errors import InputError
from steinbock_like.example.brightfield import brightfield_slide
from steinbock_like.io.masks import read_mask, write_mask
from steinbock_like.io.remote import ImageCache
from steinbock_like.io.sources import read_image_list
from steinbock_like.segment import cellpose as cp

SIZE = 96
GOOD = ("s_jpg", "s_png", "s_tif", "s_local")
BAD = ("bad_missing", "bad_corrupt", "bad_server")


class ThresholdSegmenter:
    """Stands in for Cellpose: connected components of the bright half of channel 0."""

    def __init__(self, model_path, settings=None, *, threads=None):
        pass

    def segment(self, channels, **kwargs):
        from scipy import ndimage

        return ndimage.label(np.asarray(channels)[0] > 0.5)[0]


class CountingHandler(http.server.SimpleHTTPRequestHandler):
    requests: list[str] = []

    def do_GET(self):
        type(self).requests.append(self.path)
        if self.path.startswith("/error"):
            self.send_error(500, "stand-in server error")
            return
        super().do_GET()

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """Slides as JPEG/PNG/TIFF (+ tissue masks as PNG, a corrupt JPEG) served over HTTP."""
    root = tmp_path_factory.mktemp("served")
    for index, name in enumerate(("a", "b", "c", "d", "e", "f")):
        rgb, _, tissue = brightfield_slide((SIZE, SIZE), np.random.default_rng([7, index]))
        rgb = rgb.round().astype(np.uint8)
        iio.imwrite(root / f"{name}.png", rgb)
        iio.imwrite(root / f"{name}.jpg", rgb, extension=".jpg", quality=95)
        tifffile.imwrite(root / f"{name}.tiff", rgb, photometric="rgb")
        iio.imwrite(root / f"{name}_tissue.png", (tissue * 255).astype(np.uint8))
    good = (root / "a.jpg").read_bytes()
    (root / "corrupt.jpg").write_bytes(good[: len(good) // 3] + b"\x00" * 64)
    handler = functools.partial(CountingHandler, directory=str(root))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", root
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture
def stand_in(monkeypatch, tmp_path) -> Path:
    """The threshold segmenter in place of Cellpose; returns a stand-in weights file."""
    monkeypatch.setattr(cp, "CellposeSegmenter", ThresholdSegmenter)
    monkeypatch.setattr(cp, "cellpose_version", lambda: "3.1.1")
    weights = tmp_path / "weights"
    weights.write_bytes(b"stand-in")
    return weights


def write_database(path: Path, url: str, served: Path) -> None:
    """An SQLite cohort: good rows (JPEG, PNG, TIFF over HTTP, a local TIFF) and bad ones."""
    rows = [
        ("s_jpg", f"{url}/a.jpg", f"{url}/a_tissue.png", "skin"),
        ("s_png", f"{url}/b.png", f"{url}/b_tissue.png", "skin"),
        ("s_tif", f"{url}/b.tiff", f"{url}/b_tissue.png", "skin"),
        ("s_local", str(served / "c.tiff"), str(served / "c_tissue.png"), "skin"),
        ("bad_missing", f"{url}/missing.jpg", None, "skin"),
        ("bad_corrupt", f"{url}/corrupt.jpg", None, "skin"),
        ("bad_server", f"{url}/error/d.png", None, "skin"),
        ("other", f"{url}/d.png", None, "liver"),
    ]
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE images (image_id TEXT, url TEXT, tissue_url TEXT, organ TEXT)")
        db.executemany("INSERT INTO images VALUES (?, ?, ?, ?)", rows)
        db.execute("CREATE TABLE other (x)")
    db.close()


def cohort_args(db: Path, weights: Path, cache: Path, *extra) -> list:
    return [
        "segment", "cellpose", "--stain", "hed", "--model", weights,
        "--images-from", db, "--table", "images", "--id-column", "image_id",
        "--uri-column", "url", "--mask-column", "tissue_url", "--where", "organ = 'skin'",
        "--cache", cache, *extra,
    ]  # fmt: skip


def test_cohort_from_sqlite_over_http(server, stand_in, tmp_path, monkeypatch):
    url, served = server
    monkeypatch.setattr(ImageCache, "backoff", 0.01)
    db = tmp_path / "cohort.sqlite"
    write_database(db, url, served)
    data, cache = tmp_path / "data", tmp_path / "cache"
    for folder in ("data", "again", "third"):
        (tmp_path / folder).mkdir()
    CountingHandler.requests.clear()
    args = cohort_args(db, stand_in, cache, "--mask-format", "npz", "--figures", "figures")
    assert run("--data", data, *args) == 1  # some images failed, the rest is done
    masks = data / "masks"
    assert sorted(p.name for p in masks.iterdir() if p.suffix == ".npz") == sorted(
        f"{name}.npz" for name in GOOD
    )
    for name in GOOD:
        mask = read_mask(masks / f"{name}.npz")
        assert mask.shape == (SIZE, SIZE) and mask.max() > 3
        figure = iio.imread(data / "figures" / f"{name}.png")
        # four panels 4 px apart: input, haematoxylin, tissue mask, outlines
        assert figure.shape[:2] == (SIZE, 4 * SIZE + 3 * 4)
        tissue_panel = figure[:, 2 * (SIZE + 4) : 3 * SIZE + 2 * 4]
        assert set(np.unique(tissue_panel)) == {0, 255}
    # PNG and TIFF of one slide hold the same pixels: the same masks
    np.testing.assert_array_equal(read_mask(masks / "s_png.npz"), read_mask(masks / "s_tif.npz"))
    # nothing is segmented outside the tissue mask of the list's mask column
    tissue = iio.imread(served / "b_tissue.png") > 0
    assert not read_mask(masks / "s_png.npz")[~tissue].any()
    record = json.loads((masks / "run_metadata.json").read_text())
    assert record["summary"]["ok"] == len(GOOD) and record["summary"]["failed"] == len(BAD)
    assert "other" not in record["images"]  # --where left it out
    errors = {name: record["images"][name]["error"] for name in BAD}
    assert "missing.jpg" in errors["bad_missing"] and "HTTP 404" in errors["bad_missing"]
    assert "corrupt.jpg" in errors["bad_corrupt"] and "not a readable" in errors["bad_corrupt"]
    assert "/error/d.png" in errors["bad_server"] and "4 attempts" in errors["bad_server"]
    assert all("\n" not in error for error in errors.values())
    assert record["images_from"]["images"] == len(GOOD) + len(BAD)
    info = record["images"]["s_png"]["info"]["sources"]
    assert info["image"]["uri"] == f"{url}/b.png" and len(info["image"]["sha256"]) == 64
    first = len(CountingHandler.requests)
    assert first == 5 + 1 + 1 + 4  # 3 images + 2 tissue masks, 404, corrupt, 500 x 4

    # Second run of the whole list: the good images and the corrupt one come from the
    # cache; only the URLs that failed to download are asked again.
    CountingHandler.requests.clear()
    assert run("--data", tmp_path / "again", *args) == 1
    assert sorted(set(CountingHandler.requests)) == ["/error/d.png", "/missing.jpg"]
    for name in GOOD:
        np.testing.assert_array_equal(
            read_mask(tmp_path / "again" / "masks" / f"{name}.npz"),
            read_mask(masks / f"{name}.npz"),
        )
    # Only the good ones: no request reaches the server at all.
    CountingHandler.requests.clear()
    good_only = [*args, "--where", "image_id LIKE 's%'"]
    assert run("--data", tmp_path / "third", *good_only) == 0
    assert CountingHandler.requests == []


# --------------------------------------------------------------------------- kill -9, --resume

SCRIPT = """
import os, sys, time
import numpy as np
from steinbock_like.segment import cellpose as cp

class Slow:
    def __init__(self, *args, **kwargs):
        pass

    def segment(self, channels, **kwargs):
        from scipy import ndimage

        time.sleep(float(os.environ.get("STAND_IN_DELAY", "0")))
        return ndimage.label(np.asarray(channels)[0] > 0.5)[0]

cp.CellposeSegmenter = Slow
cp.cellpose_version = lambda: "3.1.1"
from steinbock_like.cli.main import main
main(sys.argv[1:])
"""


def write_csv(path: Path, rows: list[tuple[str, str]]) -> None:
    path.write_text("id,uri\n" + "".join(f"{i},{u}\n" for i, u in rows))


def test_kill_9_then_resume_equals_an_uninterrupted_run(server, stand_in, tmp_path, capsys):
    """A subprocess (the stand-in segmenter, slowed down) is killed with SIGKILL after a
    few images; --resume (in this process, the same stand-in at full speed) finishes it
    with outputs byte-identical to an uninterrupted run."""
    url, _ = server
    rows = [(f"img_{n}", f"{url}/{n}.png") for n in "abcdef"]
    rows += [("img_a_jpg", f"{url}/a.jpg"), ("img_b_tif", f"{url}/b.tiff")]
    script = tmp_path / "run_cohort.py"
    script.write_text(SCRIPT)
    images = tmp_path / "images.csv"
    write_csv(images, rows)
    args = [
        "segment", "cellpose", "--stain", "hed", "--model", stand_in, "--images-from",
        images, "--cache", tmp_path / "cache", "--mask-format", "npz",
    ]  # fmt: skip
    killed, whole = tmp_path / "killed", tmp_path / "whole"
    killed.mkdir()
    whole.mkdir()
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1]), "STAND_IN_DELAY": "0.4"}
    process = subprocess.Popen(
        [sys.executable, script, "--data", killed, *args],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    masks = killed / "masks"

    def finished() -> int:  # (pathlib's glob also lists the hidden temporary files)
        return sum(not p.name.startswith(".") for p in masks.glob("*.npz"))

    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and finished() < 3:
        assert process.poll() is None, "the run ended before it could be killed"
        time.sleep(0.05)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    done = finished()
    assert 3 <= done < len(rows)
    record = json.loads((masks / "run_metadata.json").read_text())
    assert record.get("in_progress") is True

    # The list's row order changes; resume goes by image ID.
    write_csv(images, rows[::-1])
    capsys.readouterr()
    assert run("--data", killed, *args, "--resume") == 0
    err = capsys.readouterr().err
    assert f"{done} of {len(rows)} images already done" in err, err
    assert f"[{len(rows)}/{len(rows)}]" in err  # done/total over the whole list
    assert run("--data", whole, *args) == 0
    names = sorted(p.name for p in (whole / "masks").iterdir() if p.suffix == ".npz")
    assert len(names) == len(rows)
    assert sorted(p.name for p in masks.iterdir() if not p.name.endswith(".json")) == names
    for name in names:
        assert (masks / name).read_bytes() == (whole / "masks" / name).read_bytes(), name


# --------------------------------------------------------------------------- versioned runs


def test_versions_coexist_latest_is_the_second_and_a_rerun_is_refused(
    server, stand_in, tmp_path, capsys
):
    _, served = server
    data = tmp_path / "data"
    data.mkdir()
    # a file:// URI and a path relative to the list's folder; CYX (planar) RGB TIFFs,
    # the layout every command reads (measure reads them too)
    (data / "list").mkdir()
    for name in ("c", "e"):
        rgb = tifffile.imread(served / f"{name}.tiff")
        planar = np.moveaxis(rgb, -1, 0)
        tifffile.imwrite(data / "list" / f"{name}.tiff", planar, photometric="minisblack")
    write_csv(
        data / "list" / "images.csv",
        [("one", (data / "list" / "c.tiff").as_uri()), ("two", "e.tiff")],
    )
    base = ["segment", "cellpose", "--stain", "hed", "--model", stand_in]
    base += ["--images-from", "list/images.csv"]
    assert run("--data", data, *base, "--run-version", "v001") == 0
    runs = data / "runs"
    first = {p.name: p.read_bytes() for p in (runs / "v001" / "masks").iterdir()}
    assert {"one.tiff", "two.tiff"} <= set(first)
    assert os.readlink(runs / "latest") == "v001"
    assert not (data / "masks").exists()  # the data folder's own outputs are untouched

    args = [*base, "--run-version", "v002", "--min-size", "30", "--mask-format", "npz"]
    assert run("--data", data, *args) == 0
    assert os.readlink(runs / "latest") == "v002"
    assert (runs / "latest" / "masks" / "one.npz").is_file()
    assert {p.name: p.read_bytes() for p in (runs / "v001" / "masks").iterdir()} == first
    record = json.loads((runs / "v002" / "masks" / "run_metadata.json").read_text())
    assert record["run"]["version"] == "v002"
    assert record["parameters"]["min_size"] == 30 and record["parameters"]["stain"] == "hed"
    assert len(record["images_from"]["sha256"]) == 64 and "steinbock-like" in record["versions"]

    # measure reads the run's own masks (npz) and writes into the run
    measure = ["measure", "regionprops", "--images-from", "list/images.csv"]
    assert run("--data", data, *measure, "--run-version", "v002") == 0
    table = (runs / "v002" / "regionprops" / "one.csv").read_text().splitlines()
    assert len(table) - 1 == len(np.unique(read_mask(runs / "v002" / "masks" / "one.npz"))) - 1

    capsys.readouterr()
    assert run("--data", data, *base, "--run-version", "v001") == 1
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if not line.startswith("INFO")]
    assert len(errors) == 1 and "runs/v001: this run exists already (masks)" in errors[0]
    assert os.readlink(runs / "latest") == "v002"
    assert {p.name: p.read_bytes() for p in (runs / "v001" / "masks").iterdir()} == first
    assert run("--data", data, *base, "--run-version", "latest") == 1


# --------------------------------------------------------------------------- image lists


def test_image_list_checks_are_one_line_errors(tmp_path):
    listing = tmp_path / "list.csv"
    listing.write_text("id,uri\na,a.tiff\nb,b.tiff\na,c.tiff\n")
    with pytest.raises(InputError, match=r"'a' is listed twice \(rows 1 and 3\)"):
        read_image_list(listing)
    with pytest.raises(InputError, match="no column 'url'.*columns: id, uri"):
        read_image_list(listing, uri_column="url")
    listing.write_text("id,uri\n../up,a.tiff\n")
    with pytest.raises(InputError, match="cannot name a file"):
        read_image_list(listing)
    listing.write_text("id,uri\n,a.tiff\n")
    with pytest.raises(InputError, match="row 1 has no image ID"):
        read_image_list(listing)
    listing.write_text("id,uri,stain\nx,x.tiff,CD3\ny,y.tiff,CD8\n")
    selected = read_image_list(listing, where="stain = 'CD8'")
    assert [r.id for r in selected.records] == ["y"]
    assert selected.records[0].metadata == {"stain": "CD8"}


def test_where_is_read_only_and_the_checksum_ignores_row_order(tmp_path):
    path = tmp_path / "cohort.db"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE images (id TEXT, uri TEXT)")
        db.executemany("INSERT INTO images VALUES (?, ?)", [("a", "a.tif"), ("b", "b.tif")])
    db.close()
    before = path.read_bytes()
    for attack in (
        "1 = 1); DROP TABLE images; --",
        "id IN (SELECT name FROM pragma_table_list)",
        "load_extension('x') IS NULL",
    ):
        with pytest.raises(InputError, match="where"):
            read_image_list(path, where=attack)
    assert path.read_bytes() == before
    kept = read_image_list(path, where="id IN (SELECT id FROM images WHERE uri LIKE 'a%')")
    assert [r.id for r in kept.records] == ["a"]
    reversed_list = tmp_path / "reversed.csv"
    reversed_list.write_text("uri,id\nb.tif,b\na.tif,a\n")
    assert read_image_list(reversed_list).sha256 == read_image_list(path).sha256
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE more (x)")
    db.close()
    with pytest.raises(InputError, match=r"choose the table with --table \(tables: images, more\)"):
        read_image_list(path)


def test_cache_redownloads_a_damaged_file_and_a_stalled_server_times_out(server, tmp_path):
    import socket

    url, _ = server
    cache = ImageCache(tmp_path / "cache", retries=1, backoff=0.01, timeout=0.3)
    CountingHandler.requests.clear()
    first = cache.resolve(f"{url}/c.png")
    assert first.downloaded and cache.resolve(f"{url}/c.png").downloaded is False
    stored, _ = cache.cache_paths(f"{url}/c.png")
    stored.write_bytes(stored.read_bytes()[:-10] + b"0123456789")  # damaged, same size
    again = cache.resolve(f"{url}/c.png")
    assert again.downloaded and again.sha256 == first.sha256
    assert CountingHandler.requests == ["/c.png", "/c.png"]
    assert tifffile.imread(first.path).shape == (3, SIZE, SIZE)  # decoded, channels first

    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(1)  # accepts connections, never answers
    try:
        started = time.monotonic()
        with pytest.raises(InputError, match="download failed after 2 attempts.*timed out"):
            cache.resolve(f"http://127.0.0.1:{silent.getsockname()[1]}/x.png")
        assert time.monotonic() - started < 5
    finally:
        silent.close()


def test_npz_masks_are_masks_everywhere(tmp_path):
    from steinbock_like.io.outputs import output_is_readable

    mask = np.zeros((20, 30), dtype=np.uint32)
    mask[2:5, 3:9] = 70000
    write_mask(tmp_path / "m.npz", mask)
    back = read_mask(tmp_path / "m.npz", shape=(20, 30))
    assert back.dtype == np.uint32 and np.array_equal(back, mask)
    assert output_is_readable(tmp_path / "m.npz")
    (tmp_path / "bad.npz").write_bytes(b"PK\x03\x04 not a zip")
    assert not output_is_readable(tmp_path / "bad.npz")
    with pytest.raises(InputError, match="bad.npz: unreadable or truncated npz mask"):
        read_mask(tmp_path / "bad.npz")


TISSUE_CONFIG = """schema_version: 1
processors:
  - type: mean_of_images
    input: [red, green, blue]
    output: brightness
    keep: false
  - type: gaussian
    input: [brightness]
    output: smooth
    parameters: {sigma: 2}
    keep: false
  - type: blob
    input: [smooth]
    output: tissue
    parameters: {threshold: otsu, downscale: 4, opening: 1, closing: 2, invert: true}
quantify:
  - name: tissue
    masks: {cell: tissue}
    intensities: false
"""


def test_process_reads_an_image_list_of_png_files(server, tmp_path):
    """process with --images-from: PNG images (decoded channels first) named by their IDs;
    the same masks as from TIFFs of the same pixels in img/."""
    _, served = server
    data = tmp_path / "data"
    (data / "img").mkdir(parents=True)
    (data / "panel.csv").write_text("channel,name,keep\nred,red,1\ngreen,green,1\nblue,blue,1\n")
    (data / "config.yaml").write_text(TISSUE_CONFIG)
    for name in ("a", "b"):
        planar = np.moveaxis(iio.imread(served / f"{name}.png"), -1, 0)
        tifffile.imwrite(data / "img" / f"tissue_{name}.tiff", planar, photometric="minisblack")
    write_csv(data / "list.csv", [("tissue_a", str(served / "a.png")), ("tissue_b", "b.png")])
    (data / "b.png").write_bytes((served / "b.png").read_bytes())
    listed = ["process", "--config", "config.yaml", "--images-from", "list.csv"]
    assert run("--data", data, *listed, "--cache", tmp_path / "cache", "--run-version", "png") == 0
    assert run("--data", data, "process", "--config", "config.yaml") == 0
    for name in ("tissue_a", "tissue_b"):
        from_list = read_mask(data / "runs" / "png" / "masks_tissue" / f"{name}.tiff")
        assert from_list.any() and not from_list.all()
        np.testing.assert_array_equal(from_list, read_mask(data / "masks_tissue" / f"{name}.tiff"))
        assert (data / "runs" / "png" / "regionprops_tissue" / f"{name}.csv").is_file()


def test_mesmer_reads_an_image_list_and_reproduces_deepcell(
    refdata, mesmer_model, tmp_path, monkeypatch
):
    """segment mesmer with --images-from (file:// URIs to the reference images, read in
    place) gives steinbock's deepcell masks, under the run's folder."""
    pytest.importorskip("onnxruntime")
    monkeypatch.setenv("STEINBOCK_LIKE_MODELS", str(mesmer_model.parent))
    reference = sorted((refdata / "masks_deepcell").glob("*.tiff"))[:1]
    rows = [(p.stem, (refdata / "img" / p.name).as_uri()) for p in reference]
    write_csv(tmp_path / "images.csv", rows)
    (tmp_path / "panel.csv").write_bytes((refdata / "panel.csv").read_bytes())
    args = ["segment", "mesmer", "--minmax", "--images-from", "images.csv", "--run-dir", "r1"]
    assert run("--data", tmp_path, *args) == 0
    for path in reference:
        ours = read_mask(tmp_path / "r1" / "masks" / path.name)
        np.testing.assert_array_equal(ours, read_mask(path))
    assert os.readlink(tmp_path / "latest") == "r1"


def test_latest_is_a_text_file_where_links_fail(tmp_path, monkeypatch):
    from steinbock_like.runner import versions

    def no_links(*args, **kwargs):
        raise OSError("links not supported")

    (tmp_path / "runs" / "v001").mkdir(parents=True)
    (tmp_path / "runs" / "v002").mkdir()
    assert os.path.islink(versions.mark_latest(tmp_path / "runs" / "v001"))
    monkeypatch.setattr(versions.os, "symlink", no_links)
    latest = versions.mark_latest(tmp_path / "runs" / "v002")
    assert not latest.is_symlink() and latest.read_text() == "v002\n"
    assert versions.latest_run(tmp_path / "runs") == tmp_path / "runs" / "v002"
