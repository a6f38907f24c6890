"""Benchmark ``measure cellprofiler prepare``: our CLI vs steinbock 0.16.5.

Makes N synthetic float32 images (default 4 x 40 channels x 2000 x 2000 px) with masks of
square cells and a panel, runs steinbock's own CLI (its own venv, as in
``bench_ilastik_prepare.py``) and ours side by side (alternated, median of repeats), and
reports wall time, peak memory (max RSS of the process tree, from ``getrusage`` of a
wrapper process) and whether the ``cellprofiler_input/`` files are byte-identical.
steinbock reads every image whole; ours converts one channel at a time.

    python benchmarks/bench_measure_cellprofiler.py [--images 4] [--size 2000]
        [--channels 40] [--workers 1] [--steinbock /tmp/steinbock-venv/bin/steinbock]
"""

import argparse
import filecmp
import json
import statistics
import sys
import tempfile
from pathlib import Path

import numpy as np
import tifffile

from steinbock_like.testing import side_by_side_dirs, timed_command

OUTPUTS = ("cellprofiler_input", "cell_measurement.cppipe")


def make_data(directory: Path, images: int, size: int, channels: int) -> None:
    (directory / "img").mkdir(parents=True)
    (directory / "masks").mkdir()
    rng = np.random.default_rng(0)
    cells = np.arange(size // 10) * 10
    mask = np.zeros((size, size), np.uint16)
    label = 0
    for y in cells:
        for x in cells:
            label += 1
            mask[y + 1 : y + 9, x + 1 : x + 9] = label
    for index in range(images):
        image = rng.gamma(1.0, 5.0, size=(channels, size, size)).astype(np.float32)
        tifffile.imwrite(directory / "img" / f"image_{index:02d}.tiff", image)
        tifffile.imwrite(directory / "masks" / f"image_{index:02d}.tiff", mask)
    rows = ["channel,name,keep"] + [f"ch{c},name{c},1" for c in range(channels)]
    (directory / "panel.csv").write_text("\n".join(rows) + "\n")


def timed(args: list[str], cwd: Path) -> tuple[float, float]:
    """Wall seconds and peak RSS (MiB) of the command (see testing.timed_command)."""
    return timed_command(args, cwd, clear=(*OUTPUTS, "run_metadata.json"))[:2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=4)
    parser.add_argument("--size", type=int, default=2000)
    parser.add_argument("--channels", type=int, default=40)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--steinbock", default="/tmp/steinbock-venv/bin/steinbock")
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--repeats", type=int, default=3, help="runs of each tool (median)")
    args = parser.parse_args()

    root = Path(args.workdir or tempfile.mkdtemp(prefix="bench-cpmeasure-"))
    data = root / "data"
    if not data.exists():
        make_data(data, args.images, args.size, args.channels)
    theirs_dir, ours_dir = side_by_side_dirs(root, data, link=("img", "masks"), copy=("panel.csv",))
    commands = {}
    if Path(args.steinbock).is_file():
        commands["steinbock"] = ([args.steinbock, "measure", "cellprofiler", "prepare"], theirs_dir)
    ours = Path(sys.executable).parent / "steinbock-like"
    commands["ours"] = (
        [str(ours), "-q", "measure", "cellprofiler", "prepare", "--workers", str(args.workers)],
        ours_dir,
    )
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
    report["image_mib"] = round(args.channels * args.size**2 * 4 / 2**20)
    if "steinbock" in results:
        report["wall_ratio_ours_over_steinbock"] = round(
            results["ours"][0] / results["steinbock"][0], 3
        )
        theirs = sorted(p.name for p in (theirs_dir / "cellprofiler_input").glob("*.tiff"))
        ours_names = sorted(p.name for p in (ours_dir / "cellprofiler_input").glob("*.tiff"))
        report["file_names_equal"] = theirs == ours_names
        report["files_byte_identical"] = theirs == ours_names and all(
            filecmp.cmp(theirs_dir / "cellprofiler_input" / n, ours_dir / "cellprofiler_input" / n,
                        shallow=False)
            for n in theirs
        )  # fmt: skip
    else:
        report["steinbock"] = f"not found at {args.steinbock}"
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
