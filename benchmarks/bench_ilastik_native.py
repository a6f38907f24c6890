"""Speed and memory of the native ilastik backend on a 4-channel, 160-feature classifier.

Usage::

    python benchmarks/bench_ilastik_native.py [--size 2000 ...] [--workers 1 2] [--tile 512]
        [--processes] [--h5]

The classifier is the refdata project ``ilastik_original.ilp`` (a real ilastik 1.3.3 forest:
all six features at five scales on 4 channels = 160 columns) when ``STEINBOCK_LIKE_REFDATA`` is
set, else one trained here with the same feature selection on sparse synthetic labels. The
image is a synthetic 4-channel "tissue" (blobs plus noise). Prints megapixels per second and
the peak resident memory of this process plus its worker processes (sampled every 20 ms);
the input image (unless read from HDF5 with ``--h5``) and the uint16 output are counted, so
they are reported separately. CPU
seconds (this process and its workers) tell the speed independent of other load on the
machine: on an idle machine, N workers reach about N times the Mpx per CPU second.
"""

import argparse
import os
import tempfile
import threading
import time
from pathlib import Path

import h5py
import numpy as np

from steinbock_like.classify.ilastik.classifier import PixelClassifier
from steinbock_like.classify.ilastik.features import default_feature_selection
from steinbock_like.classify.ilastik.training import (
    LabelledImage,
    fit_pixel_classifier,
    load_pixel_classifier,
)


def synthetic_image(size: int, num_channels: int = 4, seed: int = 0, out=None):
    """A float32 CYX image of bright blobs on a dim background, written in bands of rows.

    ``out`` may be any array-like of shape (num_channels, size, size) (e.g. an h5py dataset);
    only one band is held in memory at a time.
    """
    if out is None:
        out = np.empty((num_channels, size, size), dtype=np.float32)
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[-6:7, -6:7]
    blob = np.exp(-(yy**2 + xx**2) / 18.0).astype(np.float32) * 40
    band = 512
    for y0 in range(0, size, band):
        rows = min(band, size - y0)
        image = rng.gamma(1.5, 2.0, size=(num_channels, rows + 12, size)).astype(np.float32)
        centres = rng.integers(6, [rows + 6, size - 7], size=(rows * size // 400, 2))
        for y, x in centres:
            image[0, y - 6 : y + 7, x - 6 : x + 7] += blob
            image[1:, y - 6 : y + 7, x - 6 : x + 7] += blob * 0.3
        out[:, y0 : y0 + rows] = image[:, 6 : 6 + rows]
    return out


def benchmark_classifier() -> tuple[PixelClassifier, str]:
    root = os.environ.get("STEINBOCK_LIKE_REFDATA")
    project = Path(root or "/nonexistent") / "imc_mock" / "ilastik_original.ilp"
    if project.is_file():
        return load_pixel_classifier(project), f"refdata {project.name}"
    image = synthetic_image(256, seed=1)
    labels = np.zeros(image.shape[1:], dtype=np.uint8)
    rng = np.random.default_rng(2)
    picks = rng.integers(0, 256, size=(1200, 2))
    bright = image[0] > np.percentile(image[0], 80)
    labels[picks[:, 0], picks[:, 1]] = np.where(bright[picks[:, 0], picks[:, 1]], 1, 3)
    classifier = fit_pixel_classifier(
        [LabelledImage(image, labels, "synthetic")],
        default_feature_selection(),
        ("Nucleus", "Cytoplasm", "Background"),
    )
    return classifier, "trained on synthetic labels"


class PeakMemory:
    """Peak summed RSS of this process and its children, sampled from /proc."""

    def __init__(self, interval: float = 0.02):
        self.interval = interval
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    @staticmethod
    def _rss(pid: int) -> int:
        try:
            with open(f"/proc/{pid}/status") as status:
                for line in status:
                    if line.startswith("VmRSS:"):
                        return int(line.split()[1]) * 1024
        except OSError:
            pass
        return 0

    @staticmethod
    def _children(pid: int) -> list[int]:
        try:
            with open(f"/proc/{pid}/task/{pid}/children") as children:
                return [int(p) for p in children.read().split()]
        except OSError:
            return []

    def _run(self):
        me = os.getpid()
        while not self._stop.is_set():
            total = self._rss(me) + sum(self._rss(c) for c in self._children(me))
            self.peak = max(self.peak, total)
            time.sleep(self.interval)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def _cpu_seconds() -> float:
    """User + system CPU time of this process and its finished children."""
    times = os.times()
    return times.user + times.system + times.children_user + times.children_system


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, nargs="+", default=[2000])
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--tile", type=int, default=512)
    parser.add_argument("--processes", action="store_true", help="worker processes, not threads")
    parser.add_argument("--h5", action="store_true", help="read the image from an HDF5 file")
    args = parser.parse_args()

    classifier, origin = benchmark_classifier()
    print(
        f"classifier: {origin}; {classifier.num_channels} channels, "
        f"{classifier.model.num_features} feature columns, {classifier.model.num_trees} trees, "
        f"halo {classifier.halo} px, tile {args.tile}"
    )
    kind = "processes" if args.processes else "threads"
    for size in args.size:
        if args.h5:
            # As the CLI reads ilastik_img/*.h5: tile by tile from the file.
            h5_path = Path(tempfile.mkdtemp()) / "img.h5"
            h5_file = h5py.File(h5_path, "w")
            image = h5_file.create_dataset(
                "img", shape=(4, size, size), dtype=np.float32, chunks=(4, 256, 256)
            )
            synthetic_image(size, out=image)
            in_mb = 0.0
        else:
            image = synthetic_image(size)
            in_mb = image.nbytes / 2**20
        out_mb = size * size * classifier.num_classes * 2 / 2**20
        for workers in args.workers:
            with PeakMemory() as memory:
                cpu_before = _cpu_seconds()
                start = time.perf_counter()
                classifier.predict(
                    image,
                    tile_size=args.tile,
                    workers=workers,
                    processes=args.processes,
                    dtype=np.uint16,
                )
                seconds = time.perf_counter() - start
                cpu = _cpu_seconds() - cpu_before
            megapixels = size * size / 1e6
            print(
                f"{size} x {size} px, workers={workers} ({kind}): {seconds:.1f} s wall, "
                f"{megapixels / seconds:.3f} Mpx/s; {cpu:.1f} CPU s ({megapixels / cpu:.3f} Mpx "
                f"per CPU s); peak RSS {memory.peak / 2**20:.0f} MB (input {in_mb:.0f} MB + "
                f"uint16 output {out_mb:.0f} MB included); load average {os.getloadavg()[0]:.1f}"
            )
        if args.h5:
            h5_file.close()
            h5_path.unlink()
        del image


if __name__ == "__main__":
    main()
