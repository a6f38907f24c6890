"""Benchmark of ``steinbock_like.repair.repair_masks`` on synthetic tissue.

Targets (issue 4): a 4000 x 4000 pair with about 40,000 cells and 37,000 nuclei repaired in
under 3 s with peak RSS under 1.5 GB, and time growing close to linearly in pixels.

Each size is generated in one subprocess and saved to a temporary folder, then repaired in a
fresh subprocess, so that the peak RSS of the repair (``ru_maxrss``) is not hidden by the
generator's. "baseline" is the RSS high-water mark after loading the two masks; "peak" after
the repairs.

Usage::

    python benchmarks/bench_repair.py [--sizes 1000 2000 4000 8000] [--repeats 3]
"""

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

CELL_PITCH = 20  # px between seeds on the jittered grid: 40,000 cells on 4000 x 4000
CELL_RADIUS = 12  # px: cells grow at most this far from their seed (some background)
NUCLEUS_FRACTION = 0.925  # about 37,000 nuclei for 40,000 cells


def make_cells(size: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Voronoi cells of jittered grid seeds, limited to CELL_RADIUS; labels in random order.

    Returns the uint16/uint32 mask and the (n, 2) seed coordinates, row k = label k + 1.
    """
    n_side = size // CELL_PITCH
    grid = (np.arange(n_side) + 0.5) * CELL_PITCH
    jitter = CELL_PITCH * 0.35
    seed_y = grid[:, None] + rng.uniform(-jitter, jitter, (n_side, n_side))
    seed_x = grid[None, :] + rng.uniform(-jitter, jitter, (n_side, n_side))
    n_cells = n_side * n_side
    dtype = np.uint16 if n_cells <= 65535 else np.uint32
    labels = rng.permutation(n_cells).reshape(n_side, n_side).astype(dtype) + 1
    seeds = np.empty((n_cells, 2))
    seeds[labels.ravel() - 1, 0] = seed_y.ravel()
    seeds[labels.ravel() - 1, 1] = seed_x.ravel()

    cells = np.zeros((size, size), dtype)
    xx = np.arange(size)
    gx = np.minimum(xx // CELL_PITCH, n_side - 1)
    for y0 in range(0, size, 256):  # row blocks keep the temporaries small
        yy = np.arange(y0, min(y0 + 256, size))[:, None]
        gy = np.minimum(yy // CELL_PITCH, n_side - 1)
        best_d2 = np.full((len(yy), size), np.inf, np.float32)
        best_label = np.zeros((len(yy), size), dtype)
        for dy in (-1, 0, 1):
            for dx in (-1, 0, 1):
                sy = np.clip(gy + dy, 0, n_side - 1)
                sx = np.clip(gx + dx, 0, n_side - 1)
                d2 = ((yy - seed_y[sy, sx]) ** 2 + (xx - seed_x[sy, sx]) ** 2).astype(np.float32)
                closer = d2 < best_d2
                best_d2[closer] = d2[closer]
                best_label[closer] = labels[sy, sx][closer]
        best_label[best_d2 > CELL_RADIUS**2] = 0
        cells[y0 : y0 + len(yy)] = best_label
    return cells, seeds


def make_nuclei(size: int, seeds: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Discs of radius 3-6 near cell seeds: most inside, some sticking out, some spanning two
    cells (centred between neighbouring seeds), a few in background; labels in random order."""
    n_nuclei = int(round(len(seeds) * NUCLEUS_FRACTION))
    owners = rng.choice(len(seeds), n_nuclei, replace=False)
    centres = seeds[owners].copy()
    kind = rng.uniform(size=n_nuclei)
    small_shift = kind < 0.70
    centres[small_shift] += rng.uniform(-2, 2, (small_shift.sum(), 2))
    sticking_out = (kind >= 0.70) & (kind < 0.90)
    angle = rng.uniform(0, 2 * np.pi, sticking_out.sum())
    distance = rng.uniform(5, 9, sticking_out.sum())
    centres[sticking_out] += np.stack([np.sin(angle), np.cos(angle)], axis=1) * distance[:, None]
    spanning = (kind >= 0.90) & (kind < 0.97)
    centres[spanning] += rng.choice([-0.5, 0.5], (spanning.sum(), 2)) * CELL_PITCH
    elsewhere = kind >= 0.97
    centres[elsewhere] = rng.uniform(0, size, (elsewhere.sum(), 2))
    radii = rng.integers(3, 7, n_nuclei)

    dtype = np.uint16 if n_nuclei <= 65535 else np.uint32
    nucleus_labels = rng.permutation(n_nuclei).astype(dtype) + 1
    nuclei = np.zeros((size, size), dtype)
    for radius in np.unique(radii):
        dy, dx = np.mgrid[-radius : radius + 1, -radius : radius + 1]
        inside = dy**2 + dx**2 <= radius**2
        offsets = np.stack([dy[inside], dx[inside]], axis=1)
        chosen = radii == radius
        coords = np.round(centres[chosen]).astype(np.int64)[:, None, :] + offsets[None]
        labels = np.broadcast_to(nucleus_labels[chosen][:, None], coords.shape[:2])
        valid = np.all((coords >= 0) & (coords < size), axis=2)
        nuclei[coords[..., 0][valid], coords[..., 1][valid]] = labels[valid]
    return nuclei


def generate(size: int, folder: Path) -> None:
    rng = np.random.default_rng(size)
    cells, seeds = make_cells(size, rng)
    nuclei = make_nuclei(size, seeds, rng)
    np.save(folder / "cells.npy", cells)
    np.save(folder / "nuclei.npy", nuclei)


def max_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def repair(folder: Path, repeats: int) -> dict:
    from steinbock_like.repair import repair_masks

    cells = np.load(folder / "cells.npy")
    nuclei = np.load(folder / "nuclei.npy")
    baseline = max_rss_mb()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = repair_masks(cells, nuclei)
        times.append(time.perf_counter() - start)
        del result  # so a repeat does not hold two results at once
    peak = max_rss_mb()
    result = repair_masks(cells, nuclei)
    return {
        "pixels": cells.size,
        "seconds": min(times),
        "baseline_mb": baseline,
        "peak_mb": peak,
        **result.metrics,
    }


def boundary_timing(folder: Path) -> dict:
    """Own boundary computation against skimage's find_boundaries (must be identical)."""
    from skimage.segmentation import find_boundaries

    from steinbock_like.repair import boundary_mask

    cells = np.load(folder / "cells.npy")
    start = time.perf_counter()
    ours = boundary_mask(cells, mode="inner")
    ours_s = time.perf_counter() - start
    start = time.perf_counter()
    theirs = find_boundaries(cells, connectivity=1, mode="inner")
    theirs_s = time.perf_counter() - start
    return {
        "ours_s": ours_s,
        "skimage_s": theirs_s,
        "identical": bool(np.array_equal(ours, theirs)),
    }


def run_worker(*args: str) -> dict:
    output = subprocess.run(
        [sys.executable, __file__, *args], check=True, capture_output=True, text=True
    ).stdout
    return json.loads(output.strip().splitlines()[-1]) if output.strip() else {}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 2000, 4000, 8000])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--worker", nargs=2, metavar=("TASK", "FOLDER"), help=argparse.SUPPRESS)
    parser.add_argument("--size", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.worker:
        task, folder = args.worker[0], Path(args.worker[1])
        if task == "generate":
            generate(args.size, folder)
            print("{}")
        elif task == "repair":
            print(json.dumps(repair(folder, args.repeats)))
        elif task == "boundary":
            print(json.dumps(boundary_timing(folder)))
        return

    header = (
        f"{'size':>6} {'Mpx':>6} {'cells':>7} {'nuclei':>7} {'matched':>7} {'frac':>5} "
        f"{'time s':>7} {'ns/px':>6} {'base MB':>8} {'peak MB':>8} {'+MB':>6}"
    )
    print(header)
    print("-" * len(header))
    boundary_rows = []
    for size in args.sizes:
        with tempfile.TemporaryDirectory(prefix="bench_repair_") as tmp:
            run_worker("--worker", "generate", tmp, "--size", str(size))
            row = run_worker("--worker", "repair", tmp, "--repeats", str(args.repeats))
            if size <= 4000:
                boundary_rows.append((size, run_worker("--worker", "boundary", tmp)))
        print(
            f"{size:>6} {row['pixels'] / 1e6:>6.1f} {row['cells']:>7} {row['nuclei']:>7} "
            f"{row['matched']:>7} {row['matched_fraction']:>5.2f} {row['seconds']:>7.3f} "
            f"{row['seconds'] / row['pixels'] * 1e9:>6.1f} {row['baseline_mb']:>8.0f} "
            f"{row['peak_mb']:>8.0f} {row['peak_mb'] - row['baseline_mb']:>6.0f}",
            flush=True,
        )
    print()
    print("boundary (inner): own vs skimage find_boundaries")
    for size, timing in boundary_rows:
        print(
            f"{size:>6}: own {timing['ours_s']:.3f} s, skimage {timing['skimage_s']:.3f} s, "
            f"identical: {timing['identical']}"
        )


if __name__ == "__main__":
    main()
