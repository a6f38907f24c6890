"""Benchmark ``segment cellpose`` on one large synthetic image: seconds and peak memory.

Writes a synthetic IMC image (``steinbock_like.example``) of ``--size`` x
``--size`` px, then runs the real command line in a child process and reports
its wall time and peak resident memory (the child's ``ru_maxrss``), the object
count and, against the generator's ground truth, AP and F1 at IoU 0.5.

Pretrained weights cannot be downloaded here, so without ``--model`` a small
model of Cellpose's default architecture (same size and speed as cyto3) is
trained for a few epochs on 128 px example images first; its accuracy is that
of a 10-epoch model, its speed and memory those of any Cellpose 3 model.

Usage::

    python benchmarks/bench_cellpose.py --size 6000 [--model PATH] [--work DIR]
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=6000, help="image width and height (px)")
    parser.add_argument("--channels", type=int, default=10, help="example panel size")
    parser.add_argument("--model", type=Path, default=None, help="Cellpose weights file")
    parser.add_argument("--work", type=Path, default=None, help="working directory (kept)")
    parser.add_argument("--batch-size", type=int, default=8)
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
