"""Benchmark ``measure intensities|regionprops|neighbors``: our CLI vs steinbock 0.16.5.

Default: N synthetic images (8 x 40 float32 channels x 1000 x 1000 px, ~4,000 cells each,
Voronoi cells grown from random seeds up to 9 px, with gaps), steinbock's own CLI (its
own venv, /tmp/steinbock-venv) and ours alternated, median wall time of 3 runs, median
CPU time (user + system of the process tree: on a machine shared with other work the
figure the load changes least), peak memory (max RSS of the process tree, from
``getrusage`` in a fresh wrapper process), and whether the tables agree (same objects,
columns, pairs; worst relative difference). Ours runs with ``--workers N`` (default 1:
one process, whose intensities use a thread per core).

``--big``: one 20,000 x 20,000 image with 40 uint16 channels (uncompressed strips,
written band by band) and ~1.5 million cells (uint32 mask); only our intensities and
expansion neighbours are run, once, reporting time and peak memory. The files (~34 GB)
go to a temporary directory under --workdir (default /tmp) and are deleted afterwards.

    python benchmarks/bench_measure.py [--images 8] [--size 1000] [--channels 40]
        [--cells 4000] [--repeats 3] [--workers 1] [--steinbock PATH] [--workdir DIR]
    python benchmarks/bench_measure.py --big [--big-size 20000] [--big-cells 1500000]
"""

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import tifffile
from scipy import ndimage

from steinbock_like.testing import side_by_side_dirs, timed_command


def voronoi_band(shape, seeds_rc, labels, radius=9.0):
    """Cells grown from seeds (row, col within the band) up to ``radius``, 1-px gaps."""
    seeds = np.zeros(shape, dtype=np.uint32)
    seeds[seeds_rc[:, 0], seeds_rc[:, 1]] = labels
    distances, (i, j) = ndimage.distance_transform_edt(seeds == 0, return_indices=True)
    mask = seeds[i, j]
    mask[distances > radius] = 0
    # a gap between touching cells, as segmentations have
    edge = np.zeros(shape, bool)
    edge[:, 1:] |= mask[:, 1:] != mask[:, :-1]
    edge[1:, :] |= mask[1:, :] != mask[:-1, :]
    mask[edge] = 0
    return mask


def make_mask(height, width, cells, rng, band=2000, halo=24):
    """A cell mask built band by band (so huge masks need little memory)."""
    rows = rng.integers(0, height, cells)
    cols = rng.integers(0, width, cells)
    order = np.argsort(rows, kind="stable")
    rows, cols = rows[order], cols[order]
    labels = np.arange(1, cells + 1, dtype=np.uint32)
    for start in range(0, height, band):
        low, high = max(0, start - halo), min(height, start + band + halo)
        a, b = np.searchsorted(rows, [low, high])
        seeds = np.stack([rows[a:b] - low, cols[a:b]], axis=1)
        mask = voronoi_band((high - low, width), seeds, labels[a:b])
        yield mask[start - low : start - low + min(band, height - start)]


def make_data(directory: Path, images: int, size: int, channels: int, cells: int) -> None:
    (directory / "img").mkdir(parents=True)
    (directory / "masks").mkdir()
    rng = np.random.default_rng(0)
    for index in range(images):
        mask = np.concatenate(list(make_mask(size, size, cells, rng))).astype(np.uint16)
        image = rng.gamma(1.0, 5.0, size=(channels, size, size)).astype(np.float32)
        image[:, mask > 0] += 3.0
        name = f"image_{index:02d}.tiff"
        tifffile.imwrite(directory / "img" / name, image, photometric="minisblack")
        tifffile.imwrite(directory / "masks" / name, mask, photometric="minisblack")
    rows = ["channel,name,keep"] + [f"ch{c},name{c},1" for c in range(channels)]
    (directory / "panel.csv").write_text("\n".join(rows) + "\n")


def timed(args, cwd: Path, clean: str) -> tuple[float, float, float]:
    """Wall seconds, peak RSS (MiB) and CPU seconds (see testing.timed_command)."""
    return timed_command(args, cwd, clear=(clean,))


def compare(ours: Path, theirs: Path, neighbors: bool) -> dict:
    worst, same = 0.0, True
    files = sorted(theirs.glob("*.csv"))
    for path in files:
        if neighbors:
            a = pd.read_csv(path).sort_values(["Object", "Neighbor"])
            b = pd.read_csv(ours / path.name).sort_values(["Object", "Neighbor"])
            same &= (
                a[["Object", "Neighbor"]].values.tolist()
                == b[["Object", "Neighbor"]].values.tolist()
            )
            continue
        a = pd.read_csv(path, index_col="Object")
        b = pd.read_csv(ours / path.name, index_col="Object")
        same &= a.index.equals(b.index) and list(a.columns) == list(b.columns)
        if same:
            x, y = a.to_numpy(float), b.to_numpy(float)
            worst = max(worst, float(np.nanmax(np.abs(x - y) / np.maximum(np.abs(x), 1e-300))))
    return {"same_objects_columns_pairs": bool(same and files), "max_rel_diff": worst}


def small(args) -> dict:
    root = Path(args.workdir or tempfile.mkdtemp(prefix="bench-measure-"))
    data = root / "data"
    if not data.exists():
        make_data(data, args.images, args.size, args.channels, args.cells)
    names = ("ours", "steinbock")
    links = ("img", "masks", "panel.csv")
    dirs = dict(zip(names, side_by_side_dirs(root, data, names, link=links), strict=True))
    ours = Path(sys.executable).parent / "steinbock-like"
    steps = {
        "intensities": (["intensities"], "intensities"),
        "regionprops": (["regionprops"], "regionprops"),
        "neighbors_expansion_dmax4": (
            ["neighbors", "--type", "expansion", "--dmax", "4"],
            "neighbors",
        ),
    }
    report = {"load_average_before": os.getloadavg()}
    for step, (argv, out) in steps.items():
        if args.steps and step.split("_")[0] not in args.steps:
            continue
        commands = {"ours": [ours, "-q", "measure", *argv, "--workers", str(args.workers)]}
        if Path(args.steinbock).is_file():
            commands["steinbock"] = [args.steinbock, "measure", *argv]
        runs = {name: [] for name in commands}
        for _ in range(args.repeats):  # alternate the tools; median of repeats
            for name in ("steinbock", "ours"):
                if name in commands:
                    runs[name].append(timed(commands[name], dirs[name], out))
        entry = {
            name: {
                "wall_s": round(statistics.median(w for w, _, _ in values), 2),
                "cpu_s": round(statistics.median(c for _, _, c in values), 2),
                "peak_rss_mib": round(max(m for _, m, _ in values)),
            }
            for name, values in runs.items()
        }
        if "steinbock" in entry:
            entry["speedup"] = round(entry["steinbock"]["wall_s"] / entry["ours"]["wall_s"], 1)
            entry["cpu_ratio"] = round(entry["steinbock"]["cpu_s"] / entry["ours"]["cpu_s"], 1)
            entry.update(
                compare(dirs["ours"] / out, dirs["steinbock"] / out, step.startswith("neigh"))
            )
        report[step] = entry
        print(step, json.dumps(entry), flush=True)
    report["load_average_after"] = os.getloadavg()
    return report


def big(args) -> dict:
    root = Path(tempfile.mkdtemp(prefix="bench-measure-big-", dir=args.workdir or "/tmp"))
    try:
        size, channels = args.big_size, args.channels
        (root / "img").mkdir()
        (root / "masks").mkdir()
        rng = np.random.default_rng(1)
        start = time.perf_counter()
        band_rows = 2000
        bands = [None] * ((size + band_rows - 1) // band_rows)

        def mask_bands():
            for i, band in enumerate(make_mask(size, size, args.big_cells, rng, band=band_rows)):
                bands[i] = (band > 0).astype(np.uint16)  # cell pixels: brighter (kept small)
                yield band

        tifffile.imwrite(
            root / "masks" / "big.tiff",
            mask_bands(),
            shape=(size, size),
            dtype=np.uint32,
            photometric="minisblack",
            rowsperstrip=64,
            bigtiff=True,
        )
        noise = rng.integers(0, 200, size=(band_rows, size), dtype=np.uint16)

        def image_pages():
            for c in range(channels):
                for i, inside in enumerate(bands):
                    rows = min(band_rows, size - i * band_rows)
                    yield np.roll(noise[:rows], c * 7 + i, axis=1) + inside[:rows] * (c + 10)

        tifffile.imwrite(
            root / "img" / "big.tiff",
            image_pages(),
            shape=(channels, size, size),
            dtype=np.uint16,
            photometric="minisblack",
            rowsperstrip=64,
            bigtiff=True,
        )
        bands.clear()
        pd.DataFrame(
            {
                "channel": [f"c{i}" for i in range(channels)],
                "name": [f"m{i}" for i in range(channels)],
            }
        ).to_csv(root / "panel.csv", index=False)
        report = {
            "image": f"{channels} x {size} x {size} uint16 (uncompressed strips)",
            "cells_seeded": args.big_cells,
            "write_s": round(time.perf_counter() - start, 1),
            "load_average_before": os.getloadavg(),
        }
        ours = Path(sys.executable).parent / "steinbock-like"
        for step, argv, out in (
            ("intensities", ["intensities"], "intensities"),
            (
                "neighbors_expansion_dmax4",
                ["neighbors", "--type", "expansion", "--dmax", "4"],
                "neighbors",
            ),
        ):
            if args.steps and step.split("_")[0] not in args.steps:
                continue
            wall, rss, _ = timed([ours, "-q", "measure", *argv], root, out)
            with open(root / out / "big.csv") as table:
                rows = sum(1 for _ in table) - 1
            report[step] = {"wall_s": round(wall, 1), "peak_rss_mib": round(rss), "rows": rows}
            print(step, json.dumps(report[step]), flush=True)
        report["load_average_after"] = os.getloadavg()
        return report
    finally:
        shutil.rmtree(root, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=8)
    parser.add_argument("--size", type=int, default=1000)
    parser.add_argument("--channels", type=int, default=40)
    parser.add_argument("--cells", type=int, default=4000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--steinbock", default="/tmp/steinbock-venv/bin/steinbock")
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument(
        "--steps", nargs="*", default=None, help="intensities regionprops neighbors (default all)"
    )
    parser.add_argument("--big", action="store_true", help="the 20k x 20k case instead")
    parser.add_argument("--big-size", type=int, default=20000)
    parser.add_argument("--big-cells", type=int, default=1_500_000)
    args = parser.parse_args()
    report = big(args) if args.big else small(args)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
