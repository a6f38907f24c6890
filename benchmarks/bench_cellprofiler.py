"""Per-image time of the native CellProfiler backend vs the real CellProfiler, and agreement.

Usage::

    python benchmarks/bench_cellprofiler.py [--refdata DIR] [--python CP_PYTHON]
        [--synthetic-size 800] [--synthetic-count 4]
    python benchmarks/bench_cellprofiler.py --tiled-size 2048 [--tiled-image 6000]
        [--tiled-compression none|zlib] [--tiled-only]

Runs our pipeline on the refdata probabilities (if given) and on synthetic probabilities,
natively and (if CellProfiler's interpreter is found) with CellProfiler, and prints seconds per
image, the native backend's peak memory, and the mean object F1 / identical masks between the
two backends. CellProfiler's time includes its start-up (Java, module imports), measured
separately with a one-image run.

With ``--tiled-size N`` it instead runs the native backend through the CLI on one large
synthetic probability image (``--tiled-image`` pixels square), whole (``--tile-size 0``) and
in tiles of N pixels, each in its own process, and prints wall/CPU seconds, peak RSS, the
object F1 between the two masks and the number of whole-image objects the tiled mask splits.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np
import tifffile

from steinbock_like.errors import MissingToolError
from steinbock_like.segment.cellprofiler import binary, native, pipeline, translate
from steinbock_like.testing import synthetic_probabilities, timed_command

REPO = Path(__file__).resolve().parents[1]


def object_f1(truth: np.ndarray, predicted: np.ndarray) -> float:
    """F1 of objects matched at IoU > 0.5."""
    truth_ids, truth_index = np.unique(truth, return_inverse=True)
    pred_ids, pred_index = np.unique(predicted, return_inverse=True)
    overlap = np.zeros((truth_ids.size, pred_ids.size), np.int64)
    np.add.at(overlap, (truth_index.ravel(), pred_index.ravel()), 1)
    union = overlap.sum(1)[:, None] + overlap.sum(0)[None, :] - overlap
    iou = (overlap / union)[truth_ids > 0][:, pred_ids > 0]
    total = iou.shape[0] + iou.shape[1]
    return 1.0 if total == 0 else 2 * int((iou > 0.5).sum()) / total


def run_native(paths: list[Path], steps) -> tuple[list[np.ndarray], float, float]:
    """Masks, seconds per image, peak traced memory (MiB) of the largest image."""
    masks, seconds, peak = [], [], 0.0
    for path in paths:
        probabilities = tifffile.imread(path)
        tracemalloc.start()
        start = time.perf_counter()
        masks.append(native.run_steps(probabilities, steps))
        seconds.append(time.perf_counter() - start)
        peak = max(peak, tracemalloc.get_traced_memory()[1] / 2**20)
        tracemalloc.stop()
    # second pass without tracemalloc overhead for the timing
    seconds = []
    for path in paths:
        probabilities = tifffile.imread(path)
        start = time.perf_counter()
        native.run_steps(probabilities, steps)
        seconds.append(time.perf_counter() - start)
    return masks, float(np.mean(seconds)), peak


def run_cellprofiler(paths: list[Path], pipe: Path, python: Path, out: Path):
    start = time.perf_counter()
    written = binary.run_cellprofiler(pipe, paths, out, python=python, log=lambda line: None)
    seconds = time.perf_counter() - start
    return [tifffile.imread(path) for path in written], seconds


def report(label: str, paths: list[Path], pipe: Path, python: Path | None, work: Path) -> None:
    steps = translate.native_steps(pipe.read_text())
    shape = tifffile.imread(paths[0]).shape
    native_masks, native_seconds, peak = run_native(paths, steps)
    print(f"\n== {label}: {len(paths)} images, first {shape} ==")
    print(f"native:       {native_seconds:.3f} s/image, peak traced memory {peak:.0f} MiB")
    if python is None:
        print("cellprofiler: not installed (skipped)")
        return
    cp_masks, cp_seconds = run_cellprofiler(paths, pipe, python, work / f"{label}-cp")
    _, startup = run_cellprofiler(paths[:1], pipe, python, work / f"{label}-cp1")
    per_image = (cp_seconds - startup) / max(len(paths) - 1, 1) if len(paths) > 1 else cp_seconds
    print(
        f"cellprofiler: {cp_seconds / len(paths):.3f} s/image overall "
        f"({cp_seconds:.1f} s batch; one-image run {startup:.1f} s; "
        f"~{per_image:.3f} s per extra image)"
    )
    scores = [object_f1(a, b) for a, b in zip(cp_masks, native_masks, strict=True)]
    identical = sum(np.array_equal(a, b) for a, b in zip(cp_masks, native_masks, strict=True))
    print(
        f"native vs cellprofiler: mean F1 {np.mean(scores):.4f} (min {min(scores):.4f}), "
        f"identical {identical}/{len(paths)}"
    )


def large_probabilities(size: int, block: int = 500, seed: int = 0) -> np.ndarray:
    """A size x size probability image made of four random synthetic blocks (fast to make)."""
    blocks = [
        synthetic_probabilities(
            (block, block), cell_count=block * block // 900, min_gap=-2.0, seed=seed + k
        )[0]
        for k in range(4)
    ]
    rng = np.random.default_rng(seed)
    count = -(-size // block)
    rows = [np.concatenate([blocks[k] for k in rng.integers(0, 4, count)], 1) for _ in range(count)]
    return np.ascontiguousarray(np.concatenate(rows, 0)[:size, :size])


def split_count(whole: np.ndarray, tiled: np.ndarray) -> int:
    """Whole-image objects whose pixels the tiled mask gives to 2+ objects of >= 20% each."""
    from steinbock_like.metrics import overlap_table

    overlap = overlap_table(whole, tiled).toarray()[1:, 1:]
    sizes = np.bincount(whole.ravel(), minlength=overlap.shape[0] + 1)[1:]
    big_parts = overlap >= 0.2 * np.maximum(sizes, 1)[:, None]
    return int(np.count_nonzero(big_parts.sum(axis=1) > 1))


def report_tiled(
    size: int, tile_size: int, work: Path, compression: str | None, whole: bool = True
) -> None:
    """Whole vs tiled native segmentation of one large image, through the CLI."""
    from steinbock_like.io.probabilities import write_probabilities
    from steinbock_like.metrics import object_f1 as matched_f1

    (work / "ilastik_probabilities").mkdir()
    probabilities = large_probabilities(size)
    path = work / "ilastik_probabilities" / "slide.tiff"
    if compression is None:  # one uncompressed strip: tiles are read through a memory map
        tifffile.imwrite(path, probabilities, photometric="rgb")
    else:  # strips of zlib (write_probabilities): tiles come from a scratch copy
        write_probabilities(path, probabilities)
    del probabilities
    (work / "cell_segmentation.cppipe").write_text(pipeline.pipeline_text())
    cli = [sys.executable, "-m", "steinbock_like", "--data", work, "segment", "cellprofiler"]
    stored = compression or "uncompressed"
    print(f"== native CellProfiler, one {size} x {size} probability image ({stored}) ==")
    print(f"load average before: {os.getloadavg()[0]:.2f} (cores: {os.cpu_count()})")
    masks = {}
    runs = (("whole", 0), ("tiled", tile_size)) if whole else (("tiled", tile_size),)
    for name, tiles in runs:
        args = [*cli, "run", "--backend", "native", "--tile-size", tiles, "-o", name]
        wall, rss, cpu = timed_command(args, work, clear=(name,))
        masks[name] = tifffile.imread(work / name / "slide.tiff")
        label = f"tiles of {tile_size}" if tiles else "whole image"
        print(f"{label:>16}: {wall:7.1f} s wall, {cpu:7.1f} s CPU, peak RSS {rss:6.0f} MiB")
    if not whole:
        print(f"objects {len(np.unique(masks['tiled'])) - 1}")
        return
    whole, tiled = masks["whole"], masks["tiled"]
    counts = [len(np.unique(mask)) - 1 for mask in (whole, tiled)]
    print(
        f"objects whole {counts[0]}, tiled {counts[1]}; object F1 "
        f"{matched_f1(whole, tiled):.5f}; objects split by tiling {split_count(whole, tiled)}; "
        f"same foreground {np.mean((whole > 0) == (tiled > 0)):.6f}; "
        f"identical masks {np.array_equal(whole, tiled)}"
    )
    print(f"load average after: {os.getloadavg()[0]:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--refdata", type=Path, default=os.environ.get("STEINBOCK_LIKE_REFDATA"))
    parser.add_argument("--python", type=Path, default=None)
    parser.add_argument("--synthetic-size", type=int, default=800)
    parser.add_argument("--synthetic-count", type=int, default=4)
    parser.add_argument("--tiled-size", type=int, default=0, help="whole vs tiles of N px")
    parser.add_argument("--tiled-image", type=int, default=6000)
    parser.add_argument(
        "--tiled-compression", choices=["none", "zlib"], default="none",
        help="how the large probability image is stored",
    )  # fmt: skip
    parser.add_argument(
        "--tiled-only", action="store_true", help="no whole-image run (for images too large)"
    )
    args = parser.parse_args()
    if args.tiled_size:
        compression = None if args.tiled_compression == "none" else args.tiled_compression
        with tempfile.TemporaryDirectory() as tmp:
            report_tiled(
                args.tiled_image, args.tiled_size, Path(tmp), compression, not args.tiled_only
            )
        return

    python = args.python
    if python is None:
        try:
            python = binary.find_cellprofiler_python()
        except MissingToolError:
            local = REPO / ".venv-cellprofiler/bin/python"
            python = local if local.exists() else None

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        pipe = work / "cell_segmentation.cppipe"
        pipe.write_text(pipeline.pipeline_text())
        if args.refdata:
            refdata_paths = sorted(
                (Path(args.refdata) / "imc_mock/ilastik_probabilities").glob("*.tiff")
            )
            if refdata_paths:
                report("refdata", refdata_paths, pipe, python, work)
        synthetic_paths = []
        size = args.synthetic_size
        for seed in range(args.synthetic_count):
            probabilities, _ = synthetic_probabilities(
                (size, size), cell_count=size * size // 600, min_gap=-2.0, seed=seed
            )
            synthetic_paths.append(work / "synthetic" / f"synthetic_{seed}.tiff")
            synthetic_paths[-1].parent.mkdir(exist_ok=True)
            tifffile.imwrite(synthetic_paths[-1], probabilities)
        report(f"synthetic {size}x{size}", synthetic_paths, pipe, python, work)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"\nbenchmark process peak RSS: {rss:.0f} MiB")


if __name__ == "__main__":
    main()
