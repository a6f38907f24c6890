"""Benchmark the cohort workflow's storage and download cache (issue 20).

steinbock 0.16.5 has no image lists, downloads or npz masks, so there is nothing to run
side by side; this reports what the cohort options cost and save:

- mask files: total bytes, write and read time of N nuclei masks of the brightfield
  example (SIZE x SIZE px) as TIFF (zlib, the default) and as npz (``--mask-format npz``);
- the image cache: per-image time to resolve N JPEGs served by a local ``http.server``
  (cold: download + decode to TIFF; warm: from the cache, checksum verified), and the
  number of requests the warm pass made (must be 0).

    python benchmarks/bench_cohorts.py [--images 200] [--size 256] [--workdir DIR]
"""

import argparse
import functools
import http.server
import statistics
import tempfile
import threading
import time
from pathlib import Path

import imageio.v3 as iio
import numpy as np

from steinbock_like.example.brightfield import brightfield_slide
from steinbock_like.io.masks import read_mask, write_mask
from steinbock_like.io.remote import ImageCache


def masks_figures(root: Path, masks: list[np.ndarray]) -> None:
    print(f"{'format':8} {'total KiB':>10} {'write ms/mask':>14} {'read ms/mask':>13}")
    for suffix in (".tiff", ".npz"):
        folder = root / f"masks{suffix.replace('.', '_')}"
        folder.mkdir()
        start = time.perf_counter()
        for index, mask in enumerate(masks):
            write_mask(folder / f"m{index:04d}{suffix}", mask)
        write = (time.perf_counter() - start) / len(masks) * 1000
        start = time.perf_counter()
        for index in range(len(masks)):
            read_mask(folder / f"m{index:04d}{suffix}")
        read = (time.perf_counter() - start) / len(masks) * 1000
        size = sum(p.stat().st_size for p in folder.iterdir()) / 1024
        print(f"{suffix[1:]:8} {size:10.0f} {write:14.2f} {read:13.2f}")


def cache_figures(root: Path, slides: list[np.ndarray]) -> None:
    served = root / "served"
    served.mkdir()
    for index, rgb in enumerate(slides):
        iio.imwrite(served / f"s{index:04d}.jpg", rgb, extension=".jpg", quality=90)
    requests = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def do_GET(self):
            requests.append(self.path)
            super().do_GET()

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(Handler, directory=str(served))
    )
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{httpd.server_address[1]}"
    cache = ImageCache(root / "cache")
    try:
        for name in ("cold", "warm"):
            requests.clear()
            times = []
            for index in range(len(slides)):
                start = time.perf_counter()
                cache.resolve(f"{url}/s{index:04d}.jpg")
                times.append((time.perf_counter() - start) * 1000)
            print(
                f"{name}: median {statistics.median(times):.2f} ms/image, "
                f"total {sum(times) / 1000:.2f} s, {len(requests)} HTTP requests"
            )
    finally:
        httpd.shutdown()
        httpd.server_close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as temporary:
        root = args.workdir or Path(temporary)
        root.mkdir(parents=True, exist_ok=True)
        slides, masks = [], []
        for index in range(args.images):
            rgb, nuclei, _ = brightfield_slide((args.size, args.size), np.random.default_rng(index))
            slides.append(rgb.round().astype(np.uint8))
            masks.append(nuclei)
        print(f"{args.images} brightfield example slides of {args.size} x {args.size} px")
        masks_figures(root, masks)
        cache_figures(root, slides)


if __name__ == "__main__":
    main()
