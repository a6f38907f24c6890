"""Benchmark the runner on dask.distributed, and a large slide tiled over dask workers.

1. A batch of N synthetic two-channel tissue images (default 16 x 512 x 512 px)
   through ``segment mesmer --threads 1``: the local executor with one worker,
   then a dask cluster (``dask scheduler`` + ``dask worker`` programs on loopback)
   with 1 and with 2 worker processes. Prints wall times (median of repeats), the
   speed-up of 2 dask workers over 1 and the dask overhead per job (1 dask worker
   vs local), and checks the masks are byte-identical.
2. One large slide (default 4000 x 4000 px; ``--slide 20000`` for a whole
   slide) through ``segment mesmer --chunk-size 2048`` on 2 dask workers (its
   tiles spread over both): wall time and peak RSS of each worker process
   (``getrusage`` in the workers). ``--slide-tissue F`` puts tissue in a central
   square of about F of the area, the rest empty (those tiles are skipped).
3. Stitching (``--stitch-size``, default 0 = skip; e.g. 6000): tiled vs whole-image
   Mesmer on one image, object F1 and objects split along a tile border.

    python benchmarks/bench_dask.py [--images 16] [--size 512] [--repeats 1]
        [--slide 4000] [--slide-tissue 1.0] [--stitch-size 6000] [--workdir DIR]

Needs the Mesmer model cached (``steinbock-like models get mesmer``, or
STEINBOCK_LIKE_MODELS pointing at a folder holding it).
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import tifffile

from steinbock_like.testing import two_channel_tissue

BIN = Path(sys.executable).parent
PANEL = "channel,name,deepcell\nnuc,nuc,1\nmem,mem,2\n"


def make_batch(root: Path, images: int, size: int) -> None:
    (root / "img").mkdir(parents=True)
    for index in range(images):
        nuclear, membrane = two_channel_tissue((size, size), spacing=24, seed=index)
        tifffile.imwrite(root / "img" / f"image_{index:02d}.tiff", np.stack([nuclear, membrane]))
    (root / "panel.csv").write_text(PANEL)


def cli(root: Path, *args: str) -> float:
    start = time.perf_counter()
    subprocess.run(
        [str(BIN / "steinbock-like"), "--data", str(root), *args],
        check=True,
        capture_output=True,
    )
    return time.perf_counter() - start


class Cluster:
    def __init__(self, directory: Path, workers: int):
        directory.mkdir(parents=True, exist_ok=True)
        file = directory / "scheduler.json"
        file.unlink(missing_ok=True)
        self.log = open(directory / "dask.log", "w")  # noqa: SIM115
        common = ["--scheduler-file", str(file)]
        self.processes = [
            subprocess.Popen(
                [str(BIN / "dask"), "scheduler", *common, "--host", "127.0.0.1", "--port", "0"],
                stdout=self.log,
                stderr=subprocess.STDOUT,
            )
        ]
        while not file.is_file():
            time.sleep(0.1)
        for _ in range(workers):
            self.processes.append(
                subprocess.Popen(
                    [str(BIN / "dask"), "worker", *common, "--nthreads", "1", "--no-nanny"]
                    + ["--host", "127.0.0.1", "--local-directory", str(directory)],
                    stdout=self.log,
                    stderr=subprocess.STDOUT,
                )
            )
        self.address = json.loads(file.read_text())["address"]
        from distributed import Client

        self.client = Client(self.address, timeout=60)
        self.client.wait_for_workers(workers, timeout=120)

    def peak_rss_mib(self) -> dict[str, float]:
        import resource

        def peak():
            return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

        return self.client.run(peak)

    def close(self) -> None:
        self.client.close()
        for process in reversed(self.processes):
            process.kill()
            process.wait()
        self.log.close()


def masks(root: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((root / "masks").glob("*.tiff"))}


def bench_batch(work: Path, images: int, size: int, repeats: int) -> None:
    data = work / "batch"
    make_batch(data, images, size)
    args = ["segment", "mesmer", "--pixelsize", "0.5", "--threads", "1", "--overwrite"]
    times: dict[str, list[float]] = {
        "local, 1 worker": [],
        "dask, 1 worker": [],
        "dask, 2 workers": [],
    }
    reference = None
    for _ in range(repeats):
        times["local, 1 worker"].append(cli(data, *args, "--workers", "1"))
        reference = masks(data)
        for workers in (1, 2):
            cluster = Cluster(work / f"dask{workers}", workers)
            try:
                label = f"dask, {workers} worker" + ("s" if workers > 1 else "")
                times[label].append(cli(data, *args, "--scheduler", cluster.address))
                assert masks(data) == reference, "dask masks differ from the local ones"
            finally:
                cluster.close()
    medians = {label: statistics.median(values) for label, values in times.items()}
    print(f"\n== batch: {images} images of {size} x {size} px, segment mesmer --threads 1")
    for label, value in medians.items():
        print(
            f"  {label:18s} {value:7.1f} s   (runs: {', '.join(f'{v:.1f}' for v in times[label])})"
        )
    local, one, two = medians.values()
    print(f"  speed-up, 2 dask workers over 1: {one / two:.2f}x")
    print(
        f"  dask overhead, 1 worker vs local: {one - local:+.1f} s in all, "
        f"{(one - local) / images:+.2f} s per job ({(one / local - 1) * 100:+.1f}%)"
    )
    print("  masks: byte-identical to the local executor's")


BLOCK = 2048  # the synthetic slide is generated block by block (never whole)
TIFF_TILE = 512


def write_slide(path: Path, size: int, tissue: float) -> int:
    """A (2, size, size) float32 tiled TIFF whose tissue fills a central square.

    The square covers about ``tissue`` of the area (1.0: all of it), the rest is
    zero; generated a 2048 px block at a time and written tile by tile, so that
    the slide is never held in memory. Returns the number of tissue blocks.
    """
    side = size * tissue**0.5
    low, high = (size - side) / 2, (size + side) / 2
    blocks = range(0, size, BLOCK)
    in_tissue = {
        (by, bx)
        for by in blocks
        for bx in blocks
        if by < high and by + BLOCK > low and bx < high and bx + BLOCK > low
    }

    def block(channel: int, by: int, bx: int) -> np.ndarray:
        shape = (min(BLOCK, size - by), min(BLOCK, size - bx))
        if (by, bx) not in in_tissue:
            return np.zeros(shape, np.float32)
        return two_channel_tissue(shape, spacing=24, seed=by * size + bx)[channel]

    def tiles():
        for channel in (0, 1):
            for by in blocks:
                band = np.concatenate([block(channel, by, bx) for bx in blocks], axis=1)
                for ty in range(0, band.shape[0], TIFF_TILE):
                    for tx in range(0, size, TIFF_TILE):
                        tile = np.zeros((TIFF_TILE, TIFF_TILE), np.float32)
                        part = band[ty : ty + TIFF_TILE, tx : tx + TIFF_TILE]
                        tile[: part.shape[0], : part.shape[1]] = part
                        yield tile

    tifffile.imwrite(
        path, tiles(), shape=(2, size, size), dtype=np.float32, tile=(TIFF_TILE, TIFF_TILE),
        compression="zlib", photometric="minisblack",
    )  # fmt: skip
    return len(in_tissue)


def bench_slide(work: Path, size: int, tissue: float) -> None:
    data = work / "slide"
    (data / "img").mkdir(parents=True)
    start = time.perf_counter()
    blocks = write_slide(data / "img" / "slide.tiff", size, tissue)
    print(f"\n(slide written in {time.perf_counter() - start:.0f} s, {blocks} tissue blocks)")
    (data / "panel.csv").write_text(PANEL)
    cluster = Cluster(work / "dask_slide", 2)
    try:
        seconds = cli(
            data, "segment", "mesmer", "--pixelsize", "0.5", "--threads", "1",
            "--chunk-size", "2048", "--tile-min-signal", "0.001", "--scheduler", cluster.address,
        )  # fmt: skip
        peaks = cluster.peak_rss_mib()
    finally:
        cluster.close()
    metadata = json.loads((data / "masks" / "run_metadata.json").read_text())
    info = metadata["images"]["slide"]["info"]
    print(
        f"\n== slide: {size} x {size} px ({tissue:.0%} tissue), segment mesmer "
        "--chunk-size 2048 --tile-min-signal 0.001 on 2 dask workers"
    )
    print(f"  wall time {seconds:.1f} s; {info.get('cells')} cells")
    print(
        f"  tiles {info.get('tiles')}, skipped {info.get('tiles_skipped')}, "
        f"computed on {info.get('tile_workers', 1)} workers"
    )
    for address, peak in peaks.items():
        print(f"  worker {address}: peak RSS {peak:.0f} MiB")


def bench_stitch(size: int) -> None:
    from steinbock_like.metrics import object_f1
    from steinbock_like.models import get_mesmer_model
    from steinbock_like.segment.mesmer import MesmerSegmenter
    from steinbock_like.tiles import plan_tiles

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from test_tiles import split_objects

    cache = os.environ.get("STEINBOCK_LIKE_MODELS")
    segmenter = MesmerSegmenter(get_mesmer_model(Path(cache) if cache else None), threads=2)
    nuclear, membrane = two_channel_tissue((size, size), spacing=24, seed=2)
    start = time.perf_counter()
    whole = segmenter.segment(nuclear, membrane, pixel_size_um=0.5, chunk_size=0)["whole-cell"]
    whole_s = time.perf_counter() - start
    start = time.perf_counter()
    tiled = segmenter.segment(nuclear, membrane, pixel_size_um=0.5, chunk_size=2048)["whole-cell"]
    tiled_s = time.perf_counter() - start
    tiles = plan_tiles((size, size), 2048, 256)
    print(f"\n== stitching: Mesmer on {size} x {size} px, whole vs tiles of 2048 (+256 margin)")
    print(
        f"  whole {whole_s:.0f} s, {whole.max()} cells; tiled {tiled_s:.0f} s, {tiled.max()} cells"
    )
    print(f"  object F1 {object_f1(whole, tiled):.4f}; objects split along a tile border: "
          f"{split_objects(whole, tiled, tiles)}")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=16)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--slide", type=int, default=4000, help="0: skip")
    parser.add_argument(
        "--slide-tissue", type=float, default=1.0, help="fraction of the slide holding tissue"
    )
    parser.add_argument("--stitch-size", type=int, default=0, help="0: skip")
    parser.add_argument("--workdir", type=Path)
    args = parser.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="bench_dask_"))
    print(f"load average before: {os.getloadavg()}, {os.cpu_count()} cores")
    try:
        if args.images:
            bench_batch(work, args.images, args.size, args.repeats)
        if args.slide:
            bench_slide(work, args.slide, args.slide_tissue)
        if args.stitch_size:
            bench_stitch(args.stitch_size)
    finally:
        print(f"\nload average after: {os.getloadavg()}")
        if args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
