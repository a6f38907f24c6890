"""Per-image time of the native CellProfiler backend vs the real CellProfiler, and agreement.

Usage::

    python benchmarks/bench_cellprofiler.py [--refdata DIR] [--python CP_PYTHON]
        [--synthetic-size 800] [--synthetic-count 4]

Runs our pipeline on the refdata probabilities (if given) and on synthetic probabilities,
natively and (if CellProfiler's interpreter is found) with CellProfiler, and prints seconds per
image, the native backend's peak memory, and the mean object F1 / identical masks between the
two backends. CellProfiler's time includes its start-up (Java, module imports), measured
separately with a one-image run.
"""

from __future__ import annotations

import argparse
import os
import resource
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np
import tifffile

from steinbock_like.errors import MissingToolError
from steinbock_like.segment.cellprofiler import binary, native, pipeline, translate
from steinbock_like.testing import synthetic_probabilities

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--refdata", type=Path, default=os.environ.get("STEINBOCK_LIKE_REFDATA"))
    parser.add_argument("--python", type=Path, default=None)
    parser.add_argument("--synthetic-size", type=int, default=800)
    parser.add_argument("--synthetic-count", type=int, default=4)
    args = parser.parse_args()

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
