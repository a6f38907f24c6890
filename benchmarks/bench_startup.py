"""Start-up time of the command line: ``--help`` of the root and of commands.

Every command line tool call pays Python's start plus the imports at module level of
the CLI; a shell loop that calls the toolkit once per image pays it per image. Heavy
libraries (numpy, pandas, scikit-image, ...) are imported only inside the command that
runs, so ``--help`` stays close to Python's own start.

Usage: python benchmarks/bench_startup.py [--repeats 15]

Prints the median wall time of each command line (a fresh process each run) and, for
``--help``, the heavy modules that got imported (none expected) and the slowest
imports as ``python -X importtime`` reports them.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

HEAVY = ("numpy", "pandas", "scipy", "skimage", "tifffile", "h5py", "torch", "onnxruntime")
COMMANDS = (
    ["--help"],
    ["check", "--help"],
    ["segment", "cellpose", "--help"],
    ["classify", "ilastik", "run", "--help"],
    ["measure", "--help"],
    ["export", "--help"],
    ["models", "list", "--help"],
)


def _cli(args: list[str]) -> list[str]:
    return [sys.executable, "-m", "steinbock_like", *args]


def median_seconds(command: list[str], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def heavy_modules(args: list[str]) -> list[str]:
    code = (
        "import sys\n"
        "from steinbock_like.cli.main import main\n"
        "try:\n"
        f"    main({args!r})\n"
        "except SystemExit:\n"
        "    pass\n"
        f"print(' '.join(m for m in {HEAVY!r} if m in sys.modules), file=sys.stderr)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    return result.stderr.split()


def slowest_imports(count: int = 8) -> list[tuple[int, str]]:
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "import steinbock_like.cli.main"],
        capture_output=True,
        text=True,
        check=True,
    )
    rows = []
    for line in result.stderr.splitlines():
        parts = line.split("|")
        if len(parts) == 3 and parts[1].strip().isdigit():
            rows.append((int(parts[1]), parts[2].rstrip()))
    return sorted(rows, reverse=True)[:count]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args()
    python = median_seconds([sys.executable, "-c", "pass"], args.repeats)
    print(f"python -c pass: {python:.3f} s (median of {args.repeats})")
    for command in COMMANDS:
        seconds = median_seconds(_cli(command), args.repeats)
        heavy = heavy_modules(command)
        print(
            f"steinbock-like {' '.join(command)}: {seconds:.3f} s "
            f"(heavy modules imported: {', '.join(heavy) or 'none'})"
        )
    print("slowest imports of steinbock_like.cli.main (cumulative microseconds):")
    for micros, name in slowest_imports():
        print(f"  {micros:8d} {name}")
    print(f"(from {Path(__file__).name}; target: --help under 0.25 s)")


if __name__ == "__main__":
    main()
