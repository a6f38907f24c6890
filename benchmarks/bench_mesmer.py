"""Mesmer on ONNX Runtime: seconds per megapixel and peak memory on synthetic tissue.

Each image size runs in a fresh child process so that its peak RSS is its own.

Usage::

    python benchmarks/bench_mesmer.py --sizes 2000 4000 8000 --threads 2
    python benchmarks/bench_mesmer.py --sizes 2000 --agreement 3000

The model comes from the cache (``steinbock-like models get mesmer``) or ``--model``.
Synthetic images: 1 um/px, dense Voronoi cells 16 px apart (nuclear discs, membrane borders).
"""

import argparse
import json
import resource
import subprocess
import sys
import time

import numpy as np
from scipy import ndimage
from skimage.segmentation import find_boundaries


def synthetic_tissue(shape, *, spacing=16, seed=0):
    """Dense synthetic tissue (float32 YX nuclear and membrane channels).

    Voronoi cells around jittered grid points: bright nuclear discs at the
    points, membrane signal on the cell borders, noise on both channels.
    """
    rng = np.random.default_rng(seed)
    height, width = shape
    grid_y, grid_x = np.meshgrid(
        np.arange(spacing / 2, height, spacing), np.arange(spacing / 2, width, spacing)
    )
    jitter = rng.uniform(-spacing / 5, spacing / 5, (2, grid_y.size))
    centres_y = np.clip(grid_y.ravel() + jitter[0], 0, height - 1).astype(int)
    centres_x = np.clip(grid_x.ravel() + jitter[1], 0, width - 1).astype(int)
    not_centre = np.ones(shape, bool)
    not_centre[centres_y, centres_x] = False
    distance, nearest = ndimage.distance_transform_edt(not_centre, return_indices=True)
    cell_ids = np.zeros(shape, np.int32)
    cell_ids[centres_y, centres_x] = np.arange(1, centres_y.size + 1)
    cell_ids = cell_ids[nearest[0], nearest[1]]
    del nearest
    brightness = np.concatenate([[0], rng.uniform(0.5, 1.0, centres_y.size)]).astype(np.float32)
    nuclear = ndimage.gaussian_filter(
        ((distance <= spacing * 0.22) * brightness[cell_ids]).astype(np.float32), 1.5
    )
    del distance
    membrane = ndimage.gaussian_filter(find_boundaries(cell_ids).astype(np.float32) + 0.2, 1.0)
    del cell_ids
    for channel in (nuclear, membrane):
        channel += rng.normal(0, 0.03, shape).astype(np.float32)
        np.clip(channel, 0, None, out=channel)
    return nuclear, membrane


def peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2  # kB on Linux


def run_child(args) -> None:
    from steinbock_like.models import locate_mesmer_model
    from steinbock_like.segment.mesmer import MesmerSegmenter

    segmenter = MesmerSegmenter(
        locate_mesmer_model(args.model), threads=args.threads, chunk_size=args.chunk_size
    )
    nuclear, membrane = synthetic_tissue((args.child, args.child))
    rss_input = peak_rss_gb()
    start = time.perf_counter()
    masks = segmenter.segment(nuclear, membrane, pixel_size_um=1.0)
    seconds = time.perf_counter() - start
    mask = masks["whole-cell"]
    print(
        json.dumps(
            {
                "size": args.child,
                "seconds": seconds,
                "s_per_mpx": seconds / (args.child**2 / 1e6),
                "peak_rss_gb": peak_rss_gb(),
                "rss_after_input_gb": rss_input,
                "objects": int(mask.max()),
            }
        )
    )


def object_f1(reference, predicted, iou_threshold=0.5):
    """F1 of one-to-one object matches at IoU > threshold."""
    ref_ids, ref_sizes = np.unique(reference[reference > 0], return_counts=True)
    pred_ids, pred_sizes = np.unique(predicted[predicted > 0], return_counts=True)
    both = (reference > 0) & (predicted > 0)
    pairs, overlaps = np.unique(
        np.stack([reference[both], predicted[both]]).astype(np.int64), axis=1, return_counts=True
    )
    ref_size = np.zeros(int(reference.max()) + 1)
    ref_size[ref_ids] = ref_sizes
    pred_size = np.zeros(int(predicted.max()) + 1)
    pred_size[pred_ids] = pred_sizes
    iou = overlaps / (ref_size[pairs[0]] + pred_size[pairs[1]] - overlaps)
    return 2 * np.count_nonzero(iou > iou_threshold) / (ref_ids.size + pred_ids.size)


def run_agreement(args) -> None:
    from steinbock_like.models import locate_mesmer_model
    from steinbock_like.segment.mesmer import MesmerSegmenter

    segmenter = MesmerSegmenter(locate_mesmer_model(args.model), threads=args.threads)
    nuclear, membrane = synthetic_tissue((args.agreement, args.agreement), seed=1)
    start = time.perf_counter()
    whole = segmenter.segment(nuclear, membrane, chunk_size=0)["whole-cell"]
    whole_seconds = time.perf_counter() - start
    start = time.perf_counter()
    chunked = segmenter.segment(nuclear, membrane, chunk_size=args.chunk_size)["whole-cell"]
    chunked_seconds = time.perf_counter() - start
    print(
        f"agreement {args.agreement} px: whole {whole.max()} objects in {whole_seconds:.0f} s, "
        f"chunked ({args.chunk_size} px) {chunked.max()} objects in {chunked_seconds:.0f} s, "
        f"object F1 {object_f1(whole, chunked):.4f}, "
        f"identical pixels {np.mean((whole > 0) == (chunked > 0)):.4f} (foreground)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="*", default=[2000])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--chunk-size", type=int, default=2048)
    parser.add_argument("--model", default=None)
    parser.add_argument("--agreement", type=int, default=0, help="image size for chunked vs whole")
    parser.add_argument("--child", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        run_child(args)
        return
    print(f"Mesmer ONNX, {args.threads} threads, chunk size {args.chunk_size}, 1 um/px")
    for size in args.sizes:
        command = [sys.executable, __file__, "--child", str(size), "--threads", str(args.threads)]
        command += ["--chunk-size", str(args.chunk_size)]
        if args.model:
            command += ["--model", args.model]
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            print(f"{size} px: failed\n{result.stderr[-2000:]}")
            continue
        figures = json.loads(result.stdout.strip().splitlines()[-1])
        print(
            f"{size} x {size} px: {figures['seconds']:.1f} s, "
            f"{figures['s_per_mpx']:.1f} s/Mpx, peak RSS {figures['peak_rss_gb']:.2f} GB "
            f"(input {figures['rss_after_input_gb']:.2f} GB), {figures['objects']} objects"
        )
    if args.agreement:
        run_agreement(args)


if __name__ == "__main__":
    main()
