"""Benchmark ``classify ilastik prepare``: our CLI (2 worker processes) vs steinbock 0.16.5.

Makes N synthetic float32 TIFF images (default 8 x 40 channels x 1000 x 1000 px) and a
panel with three ilastik groups, runs steinbock's own CLI (installed in its own venv:
``python3.11 -m venv /tmp/steinbock-venv && /tmp/steinbock-venv/bin/pip install
steinbock==0.16.5 readimc napari``) and our per-image jobs side by side, and reports
wall time, peak memory (max RSS of the process tree, from ``getrusage``) and whether the
``ilastik_img`` outputs and crop names are equal.

    python benchmarks/bench_ilastik_prepare.py [--images 8] [--size 1000] [--channels 40]
        [--workers 2] [--steinbock /tmp/steinbock-venv/bin/steinbock] [--workdir DIR]
"""

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

import h5py
import numpy as np
import tifffile

from steinbock_like.testing import side_by_side_dirs, timed_command


def make_data(directory: Path, images: int, size: int, channels: int) -> None:
    (directory / "img").mkdir(parents=True)
    rng = np.random.default_rng(0)
    for index in range(images):
        image = rng.gamma(1.0, 5.0, size=(channels, size, size)).astype(np.float32)
        tifffile.imwrite(directory / "img" / f"image_{index:02d}.tiff", image)
    rows = ["channel,name,keep,ilastik"]
    for c in range(channels):
        group = "" if c % 4 == 3 else str(c % 4 + 1)
        rows.append(f"ch{c},name{c},1,{group}")
    (directory / "panel.csv").write_text("\n".join(rows) + "\n")


def timed(args: list[str], cwd: Path) -> tuple[float, float]:
    """Wall seconds and peak RSS (MiB) of the command (see testing.timed_command)."""
    outputs = ("ilastik_img", "ilastik_crops", "pixel_classifier.ilp")
    return timed_command(args, cwd, clear=outputs)[:2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=8)
    parser.add_argument("--size", type=int, default=1000)
    parser.add_argument("--channels", type=int, default=40)
    parser.add_argument("--cropsize", type=int, default=512)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--steinbock", default="/tmp/steinbock-venv/bin/steinbock")
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--repeats", type=int, default=3, help="runs of each tool (median)")
    args = parser.parse_args()

    root = Path(args.workdir or tempfile.mkdtemp(prefix="bench-ilastik-"))
    data = root / "data"
    if not data.exists():
        make_data(data, args.images, args.size, args.channels)
    theirs_dir, ours_dir = side_by_side_dirs(root, data, link=("img",), copy=("panel.csv",))
    commands = {}
    if Path(args.steinbock).is_file():
        commands["steinbock"] = (
            [args.steinbock, "classify", "ilastik", "prepare"]
            + ["--cropsize", str(args.cropsize), "--seed", "123"],
            theirs_dir,
        )
    ours = Path(sys.executable).parent / "steinbock-like"
    commands["ours"] = (
        [str(ours), "-q", "classify", "ilastik", "prepare"]
        + ["--cropsize", str(args.cropsize), "--seed", "123", "--workers", str(args.workers)],
        ours_dir,
    )
    # Alternate the tools so that neither always runs on a warmer cache; median of repeats.
    runs = {name: [] for name in commands}
    for _ in range(args.repeats):
        for name, (command, directory) in commands.items():
            runs[name].append(timed(command, directory))
    results = {
        name: (statistics.median(w for w, _ in values), max(m for _, m in values))
        for name, values in runs.items()
    }

    report = {
        k: {"wall_s": round(v[0], 2), "peak_rss_mib": round(v[1])} for k, v in results.items()
    }
    if "steinbock" in results:
        report["wall_ratio_ours_over_steinbock"] = round(
            results["ours"][0] / results["steinbock"][0], 3
        )
        worst, equal = 0.0, True
        for theirs_file in sorted((theirs_dir / "ilastik_img").glob("*.h5")):
            with (
                h5py.File(theirs_file) as a,
                h5py.File(ours_dir / "ilastik_img" / theirs_file.name) as b,
            ):
                x, y = a["img"][()], b["img"][()]
                equal &= x.shape == y.shape and np.array_equal(x, y)
                if x.shape == y.shape:
                    worst = max(worst, float(np.max(np.abs(x - y) / np.maximum(np.abs(x), 1e-30))))
        report["ilastik_img_equal"] = bool(equal)
        report["ilastik_img_max_rel_diff"] = worst
        report["crop_names_equal"] = sorted(
            p.name for p in (theirs_dir / "ilastik_crops").glob("*.h5")
        ) == sorted(p.name for p in (ours_dir / "ilastik_crops").glob("*.h5"))
    else:
        report["steinbock"] = f"not found at {args.steinbock}"
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
