"""Benchmark ``preprocess imc images``: our CLI (1 and 2 workers) vs steinbock 0.16.5.

Replicates the reference acquisitions (``$STEINBOCK_LIKE_REFDATA/imc_mock/raw``: two
``.mcd`` files with 3 acquisitions each and their ``.txt`` files) ``--copies`` times
under new names (default 10: 20 ``.mcd`` + 60 ``.txt`` = 80 files, 60 images), runs
steinbock's own CLI (in its own venv, as benchmarks/bench_ilastik_prepare.py) and ours
side by side with ``--hpf 50``, alternated, and reports the median wall time and the
peak memory (max RSS of the process tree, from ``getrusage``) of each, and whether
``img/`` and ``images.csv`` are equal.

    python benchmarks/bench_preprocess.py [--copies 10] [--repeats 3]
        [--steinbock /tmp/steinbock-venv/bin/steinbock] [--refdata DIR] [--workdir DIR]
"""

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

import numpy as np
import tifffile

from steinbock_like.testing import timed_command


def replicate(refraw: Path, raw: Path, copies: int) -> int:
    """Copy every acquisition (.mcd + its .txt files) ``copies`` times; return the file count."""
    raw.mkdir(parents=True)
    count = 0
    for folder in sorted(p for p in refraw.iterdir() if p.is_dir()):
        for mcd in folder.glob("*.mcd"):
            for copy in range(copies):
                stem = f"{mcd.stem}_r{copy:02d}"
                shutil.copy(mcd, raw / f"{stem}.mcd")
                count += 1
                for txt in folder.glob(f"{mcd.stem}_*.txt"):
                    suffix = txt.name[len(mcd.stem) :]
                    shutil.copy(txt, raw / f"{stem}{suffix}")
                    count += 1
    return count


def timed(args: list[str], cwd: Path) -> tuple[float, float]:
    """Wall seconds and peak RSS (MiB) of the command (see testing.timed_command)."""
    return timed_command(args, cwd, clear=("img", "images.csv"))[:2]


def same_outputs(a: Path, b: Path) -> dict:
    names_a = sorted(p.name for p in (a / "img").glob("*.tiff"))
    names_b = sorted(p.name for p in (b / "img").glob("*.tiff"))
    equal = names_a == names_b
    if equal:
        for name in names_a:
            x, y = tifffile.imread(a / "img" / name), tifffile.imread(b / "img" / name)
            equal &= x.dtype == y.dtype and x.shape == y.shape and np.array_equal(x, y)
    return {
        "images": len(names_a),
        "img_equal": bool(equal),
        "images_csv_equal": (a / "images.csv").read_text() == (b / "images.csv").read_text(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--copies", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3, help="runs of each tool (median)")
    parser.add_argument("--steinbock", default="/tmp/steinbock-venv/bin/steinbock")
    parser.add_argument(
        "--refdata", type=Path, default=Path(os.environ.get("STEINBOCK_LIKE_REFDATA", "."))
    )
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()

    refraw = args.refdata / "imc_mock" / "raw"
    if not refraw.is_dir():
        sys.exit(f"{refraw}: not found (set STEINBOCK_LIKE_REFDATA or --refdata)")
    root = Path(args.workdir or tempfile.mkdtemp(prefix="bench-preprocess-"))
    raw = root / "raw"
    files = replicate(refraw, raw, args.copies) if not raw.exists() else len(list(raw.iterdir()))
    ours = str(Path(sys.executable).parent / "steinbock-like")
    command = ["preprocess", "imc", "images", "--hpf", "50"]
    commands = {}
    if Path(args.steinbock).is_file():
        commands["steinbock"] = [args.steinbock, *command]
    commands["ours_workers1"] = [ours, "-q", *command, "--workers", "1"]
    commands["ours_workers2"] = [ours, "-q", *command, "--workers", "2"]
    dirs = {}
    for name in commands:
        directory = root / name
        shutil.rmtree(directory, ignore_errors=True)
        directory.mkdir()
        (directory / "raw").symlink_to(raw)
        shutil.copy(args.refdata / "imc_mock" / "panel.csv", directory / "panel.csv")
        dirs[name] = directory
    runs = {name: [] for name in commands}
    for _ in range(args.repeats):  # alternated, so that no tool always runs on a warmer cache
        for name, cmd in commands.items():
            runs[name].append(timed(cmd, dirs[name]))
    report = {"files": files, "acquisitions": 6 * args.copies, "command": " ".join(command)}
    for name, values in runs.items():
        report[name] = {
            "wall_s": round(statistics.median(w for w, _ in values), 2),
            "peak_rss_mib": round(max(m for _, m in values)),
        }
    if "steinbock" in runs:
        for name in ("ours_workers1", "ours_workers2"):
            report[name]["wall_ratio_vs_steinbock"] = round(
                report[name]["wall_s"] / report["steinbock"]["wall_s"], 3
            )
            report[name]["vs_steinbock"] = same_outputs(dirs["steinbock"], dirs[name])
    else:
        report["steinbock"] = f"not found at {args.steinbock}"
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
