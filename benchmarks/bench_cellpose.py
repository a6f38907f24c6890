"""Benchmark ``segment cellpose`` on one large synthetic image: seconds and peak memory.

Writes a synthetic IMC image (``steinbock_like.example``) of ``--size`` x
``--size`` px, then runs the real command line in a child process and reports
its wall time and peak resident memory (the child's ``ru_maxrss``), the object
count and, against the generator's ground truth, AP and F1 at IoU 0.5.

Pretrained weights cannot be downloaded here, so without ``--model`` a small
model of Cellpose's default architecture (same size and speed as cyto3) is
trained for a few epochs on 128 px example images first; its accuracy is that
of a 10-epoch model, its speed and memory those of any Cellpose 3 model.

With ``--compare-blocks BLOCK`` the same image is segmented twice through the
command line, whole (``--block-size 0``) and in blocks of ``BLOCK`` px
(``--block-overlap`` px of context), and the two masks are compared: times and
peak RSS of each run, object counts, object F1 at IoU 0.5 between them, whole-image
objects split along a block border, and how far each unmatched object's centroid
lies from the nearest block seam.

With ``--diameter`` other than the model's own (11 px for the small model) Cellpose
resizes the image for its network (by model diameter / ``--diameter``); blocks then
resize only what their network tiles need (``segment/cellpose/resize.py``). Masks
are computed at the network's scale and resized back (steinbock's default) or, with
``--resample``, from the flows resized back to the image.

Usage::

    python benchmarks/bench_cellpose.py --size 6000 [--model PATH] [--work DIR]
    python benchmarks/bench_cellpose.py --size 2000 --compare-blocks 1024 [--block-overlap 64]
    python benchmarks/bench_cellpose.py --size 2000 --compare-blocks 1024 --diameter 7.33 \
        [--resample]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

BENCHMARKS = Path(__file__).resolve().parent


def train_small_model(work: Path, *, epochs: int = 10, seed: int = 11) -> Path:
    """Train a Cellpose 3 model briefly on example images; return the weights file."""
    from steinbock_like import layout
    from steinbock_like.example import write_example_imc
    from steinbock_like.io.images import read_image
    from steinbock_like.io.masks import read_mask
    from steinbock_like.io.panel import read_panel
    from steinbock_like.segment.cellpose import prepare_channels
    from steinbock_like.testing import train_cellpose_model

    root = work / "train"
    example = write_example_imc(root, images=8, size=128, seed=seed)
    panel = read_panel(root / layout.PANEL)
    images = [
        prepare_channels(read_image(root / layout.IMG / f"{name}.tiff"), panel)
        for name in example.images
    ]
    labels = [
        read_mask(root / layout.MASKS_TRUTH / f"{name}.tiff").astype(np.int32)
        for name in example.images
    ]
    return train_cellpose_model(
        images, labels, work / "model", epochs=epochs, diameter=11.0, model_name="bench_small"
    )


def unmatched_objects(a: np.ndarray, b: np.ndarray, iou: float = 0.5) -> np.ndarray:
    """IDs of the objects of ``a`` that no object of ``b`` matches at IoU > ``iou``."""
    from steinbock_like.metrics import overlap_table

    table = overlap_table(a, b).tocoo()
    area_a = np.bincount(a.ravel().astype(np.int64))
    area_b = np.bincount(b.ravel().astype(np.int64))
    keep = (table.row > 0) & (table.col > 0)
    rows, cols, shared = table.row[keep], table.col[keep], table.data[keep]
    matched = rows[shared / (area_a[rows] + area_b[cols] - shared) > iou]
    present = np.flatnonzero(area_a)
    return np.setdiff1d(present[present > 0], matched)


def seam_distances(labels: np.ndarray, ids: np.ndarray, seams_y, seams_x) -> np.ndarray:
    """Distance (px) of each object's centroid to the nearest inner block seam."""
    from scipy import ndimage

    if len(ids) == 0:
        return np.zeros(0)
    centres = np.array(ndimage.center_of_mass(labels > 0, labels, ids)).reshape(-1, 2)
    distances = np.full(len(ids), np.inf)
    for axis, seams in ((0, seams_y), (1, seams_x)):
        for seam in seams:  # the seam lies between pixel rows seam - 1 and seam
            distances = np.minimum(distances, np.abs(centres[:, axis] - (seam - 0.5)))
    return distances


def compare_blocks(args, data: Path, model: Path, name: str) -> None:
    """Segment ``name`` whole and in blocks through the CLI; print the comparison."""
    import os

    from steinbock_like import layout
    from steinbock_like.io.masks import read_mask
    from steinbock_like.metrics import match_objects, object_f1
    from steinbock_like.testing import timed_command
    from steinbock_like.tiles import plan_tiles

    sys.path.insert(0, str(BENCHMARKS.parent / "tests"))
    from test_tiles import split_objects

    base = [
        sys.executable, "-m", "steinbock_like", "--data", str(data), "segment", "cellpose",
        "--model", str(model), "--batch-size", str(args.batch_size), "--overwrite",
    ]  # fmt: skip
    if args.diameter:
        base += ["--diameter", str(args.diameter)]
    if args.resample:
        base += ["--resample"]
    runs = {
        "whole": ["--block-size", "0", "-o", "masks_whole"],
        "blocks": [
            "--block-size", str(args.compare_blocks), "--block-overlap", str(args.block_overlap),
            "-o", "masks_blocks",
        ],
    }  # fmt: skip
    figures = {}
    for key, extra in runs.items():
        load = os.getloadavg()[0]
        seconds, peak_mib, cpu = timed_command([*base, *extra], data, clear=(f"masks_{key}",))
        figures[key] = (seconds, peak_mib, cpu, load)
        print(
            f"  {key:6s}: {seconds:.0f} s wall, {cpu:.0f} s CPU, peak RSS {peak_mib:.0f} MiB "
            f"(load average {load:.2f} at start)",
            flush=True,
        )
    whole = read_mask(data / "masks_whole" / f"{name}{layout.MASK_SUFFIX}")
    blocks = read_mask(data / "masks_blocks" / f"{name}{layout.MASK_SUFFIX}")
    tiles = plan_tiles(whole.shape, args.compare_blocks, args.block_overlap, even=False)
    seams_y = sorted({t.core[0] for t in tiles} - {0})
    seams_x = sorted({t.core[2] for t in tiles} - {0})
    counts = match_objects(whole, blocks)
    split = split_objects(whole, blocks, tiles)
    lost = unmatched_objects(whole, blocks)  # whole-image objects the blocks miss
    extra = unmatched_objects(blocks, whole)  # block objects the whole image lacks
    near = args.block_overlap
    print(
        f"== {args.size} x {args.size} px, blocks {args.compare_blocks} (+{args.block_overlap} "
        f"overlap, {len(tiles)} blocks, seams at y {seams_y} x {seams_x}), --diameter "
        f"{args.diameter}{' --resample' if args.resample else ''}"
    )
    print(f"  objects: whole {len(np.unique(whole)) - 1}, blocks {len(np.unique(blocks)) - 1}")
    print(
        f"  object F1 (IoU 0.5) {object_f1(whole, blocks):.4f}: {counts.true_positives} matched, "
        f"{counts.false_negatives} whole-only, {counts.false_positives} block-only; "
        f"split along a block border: {split}"
    )
    print(f"  identical pixels: {np.mean((whole > 0) == (blocks > 0)):.5f} (foreground agrees)")
    for what, labels, ids in (("whole-only", whole, lost), ("block-only", blocks, extra)):
        distances = seam_distances(labels, ids, seams_y, seams_x)
        within = int(np.count_nonzero(distances <= near))
        print(
            f"  {what}: {len(ids)} objects, {within} with centroid within {near} px of a seam, "
            f"{len(ids) - within} farther; distances (px) "
            f"{np.round(np.sort(distances), 1).tolist()[:40]}"
        )
    result = {
        "size": args.size,
        "block": args.compare_blocks,
        "overlap": args.block_overlap,
        "whole_s": round(figures["whole"][0], 1),
        "blocks_s": round(figures["blocks"][0], 1),
        "whole_peak_mib": round(figures["whole"][1]),
        "blocks_peak_mib": round(figures["blocks"][1]),
        "diameter": args.diameter,
        "resample": args.resample,
        "objects_whole": int(len(np.unique(whole)) - 1),
        "objects_blocks": int(len(np.unique(blocks)) - 1),
        "f1": round(object_f1(whole, blocks), 5),
        "split": split,
    }
    print(json.dumps(result))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=6000, help="image width and height (px)")
    parser.add_argument("--channels", type=int, default=10, help="example panel size")
    parser.add_argument("--model", type=Path, default=None, help="Cellpose weights file")
    parser.add_argument("--work", type=Path, default=None, help="working directory (kept)")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument(
        "--compare-blocks",
        type=int,
        default=0,
        metavar="BLOCK",
        help="compare whole-image and block-wise segmentation at this block size",
    )
    parser.add_argument("--block-overlap", type=int, default=64, help="with --compare-blocks")
    parser.add_argument(
        "--diameter",
        type=float,
        default=None,
        help="segment cellpose --diameter (the small model's own: 11 px, no resizing)",
    )
    parser.add_argument(
        "--resample",
        action="store_true",
        help="segment cellpose --resample (masks from flows resized back to the image)",
    )
    args = parser.parse_args()

    from steinbock_like import layout
    from steinbock_like.example import write_example_imc
    from steinbock_like.io.masks import read_mask
    from steinbock_like.metrics import average_precision, object_f1

    work = args.work or Path(tempfile.mkdtemp(prefix="bench-cellpose-"))
    work.mkdir(parents=True, exist_ok=True)
    model = args.model
    if model is None:
        started = time.perf_counter()
        model = train_small_model(work)
        print(f"trained a small model in {time.perf_counter() - started:.0f} s: {model}")

    data = work / "data"
    started = time.perf_counter()
    example = write_example_imc(data, images=1, size=args.size, channels=args.channels, seed=7)
    print(f"example image {args.size} x {args.size}: {time.perf_counter() - started:.0f} s")

    if args.compare_blocks:
        compare_blocks(args, data, model, example.images[0])
        return

    command = [
        sys.executable, "-m", "steinbock_like", "--data", str(data), "segment", "cellpose",
        "--model", str(model), "--batch-size", str(args.batch_size), "--overwrite",
    ]  # fmt: skip
    started = time.perf_counter()
    subprocess.run(command, check=True)
    seconds = time.perf_counter() - started
    peak_gib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2**20  # KiB -> GiB

    name = example.images[0]
    truth = read_mask(data / layout.MASKS_TRUTH / f"{name}.tiff")
    mask = read_mask(data / layout.MASKS / f"{name}.tiff")
    figures = {
        "size": args.size,
        "seconds": round(seconds, 1),
        "peak_rss_gib": round(peak_gib, 2),
        "objects": int(len(np.unique(mask)) - 1),
        "truth_objects": int(len(np.unique(truth)) - 1),
        "ap50": round(average_precision(truth, mask), 3),
        "f1_50": round(object_f1(truth, mask), 3),
    }
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
