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

from steinbock_like.testing import two_channel_tissue


def peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2  # kB on Linux


def run_child(args) -> None:
    from steinbock_like.models import locate_mesmer_model
    from steinbock_like.segment.mesmer import MesmerSegmenter

    segmenter = MesmerSegmenter(
        locate_mesmer_model(args.model), threads=args.threads, chunk_size=args.chunk_size
    )
    nuclear, membrane = two_channel_tissue((args.child, args.child))
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
    nuclear, membrane = two_channel_tissue((args.agreement, args.agreement), seed=1)
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
