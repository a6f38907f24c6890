"""Benchmark the example data generator: seconds and peak memory per image size.

Each size runs in a fresh subprocess, so that ``ru_maxrss`` (the peak resident
set size) belongs to that size alone. The target is a peak below 4 GB for one
5000 x 5000 x 40 image.

Usage::

    python benchmarks/bench_example.py                 # 1000, 2500 and 5000 px, 40 channels
    python benchmarks/bench_example.py --sizes 5000 --channels 40
"""

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGET_PEAK_BYTES = 4 * 1024**3


def run_one(size: int, channels: int, seed: int) -> dict:
    """Generate one image in a temporary directory; return seconds, peak RSS, cells, bytes."""
    from steinbock_like.example import write_example_imc

    with tempfile.TemporaryDirectory(prefix="bench-example-") as tmp:
        started = time.perf_counter()
        summary = write_example_imc(tmp, images=1, size=size, channels=channels, seed=seed)
        seconds = time.perf_counter() - started
        written = sum(p.stat().st_size for p in Path(tmp).rglob("*") if p.is_file())
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    return {
        "size": size,
        "channels": channels,
        "seconds": round(seconds, 2),
        "peak_rss_mib": round(peak_kib / 1024, 1),
        "cells": summary.cell_counts[0],
        "written_mib": round(written / 1024**2, 1),
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 2500, 5000])
    parser.add_argument("--channels", type=int, default=40)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--one", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.one:
        print(json.dumps(run_one(args.sizes[0], args.channels, args.seed)))
        return 0

    failed = False
    print(f"{'size':>6} {'channels':>8} {'seconds':>8} {'peak MiB':>9} {'cells':>8} {'out MiB':>8}")
    for size in args.sizes:
        command = [sys.executable, __file__, "--one", "--sizes", str(size)]
        command += ["--channels", str(args.channels), "--seed", str(args.seed)]
        result = json.loads(subprocess.run(command, check=True, capture_output=True).stdout)
        print(
            f"{result['size']:>6} {result['channels']:>8} {result['seconds']:>8} "
            f"{result['peak_rss_mib']:>9} {result['cells']:>8} {result['written_mib']:>8}",
            flush=True,
        )
        failed |= result["peak_rss_mib"] * 1024**2 > TARGET_PEAK_BYTES
    if failed:
        print("peak memory above the 4 GB target", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
