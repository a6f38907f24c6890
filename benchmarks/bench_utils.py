"""Benchmark ``utils expand|match|mosaics tile|mosaics stitch``: ours vs steinbock 0.16.5.

Makes N synthetic masks (default 4 x 3000 x 3000 px, ~20 px round cells) and a second,
shifted set, runs steinbock's own CLI (its own venv, see bench_ilastik_prepare.py) and
ours on them, alternating the tools, and reports per command the median wall time, the
peak memory (max RSS of the process tree, from ``getrusage``) and whether every output
file holds the same values.

    python benchmarks/bench_utils.py [--images 4] [--size 3000] [--repeats 3]
        [--steinbock /tmp/steinbock-venv/bin/steinbock] [--workdir DIR]
"""

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import tifffile

from steinbock_like.testing import timed_command


def make_masks(directory: Path, images: int, size: int, shift: int) -> None:
    from skimage.segmentation import expand_labels

    directory.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for index in range(images):
        seeds = np.zeros((size, size), np.uint16)
        count = size * size // 400
        ys, xs = rng.integers(0, size, count), rng.integers(0, size, count)
        seeds[ys, xs] = np.arange(1, count + 1) % 65535 + 1
        mask = expand_labels(seeds, 8)
        tifffile.imwrite(directory / f"image_{index:02d}.tiff", np.roll(mask, shift, axis=1))


def timed(args: list[str], cwd: Path, output: Path) -> tuple[float, float]:
    """Wall seconds and peak RSS (MiB) of the command (see testing.timed_command)."""
    return timed_command(args, cwd, clear=(output,))[:2]


def same_outputs(ours: Path, theirs: Path) -> bool:
    names = sorted(p.name for p in theirs.iterdir())
    if not names or names != sorted(p.name for p in ours.iterdir() if p.suffix != ".json"):
        return False
    for name in names:
        if name.endswith(".csv"):
            if not pd.read_csv(ours / name).equals(pd.read_csv(theirs / name)):
                return False
        else:
            a, b = tifffile.imread(ours / name), tifffile.imread(theirs / name)
            if a.dtype != b.dtype or a.shape != b.shape or not np.array_equal(a, b):
                return False
    return True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=4)
    parser.add_argument("--size", type=int, default=3000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--steinbock", default="/tmp/steinbock-venv/bin/steinbock")
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()
    root = Path(args.workdir or tempfile.mkdtemp(prefix="bench-utils-"))
    if not (root / "a").exists():
        make_masks(root / "a", args.images, args.size, 0)
        make_masks(root / "b", args.images, args.size, 5)
    ours = str(Path(sys.executable).parent / "steinbock-like")
    steps = {
        "expand": (["utils", "expand", "a", "4"], "expanded"),
        "match": (["utils", "match", "a", "b"], "matched"),
        "tile": (["utils", "mosaics", "tile", "a", "--size", "1000"], "tiles"),
    }
    tools = {"ours": [ours, "-q"]}
    if Path(args.steinbock).is_file():
        tools["steinbock"] = [args.steinbock]
    report = {}
    for step, (command, output) in [*steps.items(), ("stitch", (None, "stitched"))]:
        runs = {tool: [] for tool in tools}
        for _ in range(args.repeats):
            for tool, prefix in tools.items():
                if step == "stitch":
                    command = ["utils", "mosaics", "stitch", f"tiles_{tool}", "--relabel"]
                out = f"{output}_{tool}"
                runs[tool].append(timed([*prefix, *command, "-o", out], root, Path(out)))
        entry = {
            tool: {
                "wall_s": round(statistics.median(w for w, _ in values), 2),
                "peak_rss_mib": round(max(m for _, m in values)),
            }
            for tool, values in runs.items()
        }
        if "steinbock" in tools:
            entry["same_outputs"] = same_outputs(
                root / f"{output}_ours", root / f"{output}_steinbock"
            )
        report[step] = entry
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
