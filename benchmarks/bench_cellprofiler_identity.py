"""How many native CellProfiler masks are identical to real CellProfiler 4.2.8's.

Usage::

    python benchmarks/bench_cellprofiler_identity.py [--count 60] [--python CP_PYTHON]
        [--min-size 64] [--max-size 192] [--seed 0] [--configuration NAME ...]
        [--with-skimage-watershed]

Makes ``--count`` synthetic probability maps with touching and clumped nuclei (sizes,
nucleus radii, gaps, blur and noise drawn per map; half are noise-free, whose plateaus of
probability 1 make flooding ties common) and, for each of several pipeline configurations
(default; less smoothing; dividing lines by shape or propagation; declumping by shape; maxima
on a down-sampled image), runs them through one real CellProfiler batch and through the
native backend. Prints, per configuration and in all, how many masks are identical, with the
differing pixels of the others.
``--with-skimage-watershed`` also counts what the native backend gives when its declumping
watershed is replaced by the installed scikit-image's (as before our own flooding order).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import tifffile

from steinbock_like.segment.cellprofiler import binary, native, pipeline, translate
from steinbock_like.segment.cellprofiler.watershed import watershed
from steinbock_like.testing import synthetic_probabilities


def identity_maps(count: int, *, min_size: int, max_size: int, seed: int):
    """Yield (name, probabilities) of ``count`` varied synthetic maps with touching objects."""
    rng = np.random.default_rng(seed)
    for index in range(count):
        shape = tuple(int(v) for v in rng.integers(min_size, max_size + 1, 2))
        low = float(rng.uniform(3.0, 8.0))
        radius = (low, low + float(rng.uniform(1.0, 6.0)))
        mean_area = np.pi * (radius[0] + 3.0) ** 2
        cell_count = max(1, int(shape[0] * shape[1] / mean_area * rng.uniform(0.4, 1.2)))
        probabilities, _ = synthetic_probabilities(
            shape,
            cell_count=cell_count,
            nucleus_radius=radius,
            cytoplasm_width=float(rng.uniform(2.0, 7.0)),
            min_gap=float(rng.uniform(-6.0, 2.0)),
            blur_sigma=float(rng.uniform(0.5, 2.5)),
            # noise-free maps keep plateaus of probability 1: flooding ties everywhere
            noise=0.0 if rng.random() < 0.5 else float(rng.uniform(0.0, 0.15)),
            seed=int(rng.integers(2**31)),
        )
        yield f"identity_{index:04d}", probabilities


CONFIGURATIONS = {
    "default": {},
    # less smoothing: more local maxima, unseeded basins that neighbouring seeds compete for
    "smoothing 1": {"nucleus_smoothing_diameter": 1},
    # watershed on the distance transform: plateaus of equal distance, ties everywhere
    "dividing by shape": {"dividing_method": native.DIVIDE_SHAPE},
    "declumping by shape": {
        "declump_method": native.DECLUMP_SHAPE,
        "dividing_method": native.DIVIDE_SHAPE,
    },
    "dividing by propagation": {"dividing_method": native.DIVIDE_PROPAGATE},
    # maxima searched on a down-sampled image
    "diameter 12-40": {"nucleus_diameter": (12, 40)},
}


def skimage_watershed(image, markers, mask=None):
    """The installed scikit-image's watershed, for comparison only."""
    import skimage.segmentation

    return skimage.segmentation.watershed(
        image, markers=markers, connectivity=np.ones((3, 3), bool), mask=mask
    ).astype(np.int32)


def compare(name, settings, args, python, work: Path) -> tuple[int, int]:
    """Run one configuration; print and return (identical, maps)."""
    text = pipeline.pipeline_text(pipeline.PipelineSettings(**settings))
    steps = translate.native_steps(text)
    folder = work / name.replace(" ", "_")
    (folder / "probabilities").mkdir(parents=True)
    pipe = folder / "cell_segmentation.cppipe"
    pipe.write_text(text)
    paths, images = [], []
    for map_name, probabilities in identity_maps(
        args.count, min_size=args.min_size, max_size=args.max_size, seed=args.seed
    ):
        paths.append(folder / "probabilities" / f"{map_name}.tiff")
        tifffile.imwrite(paths[-1], probabilities)
        images.append(probabilities)

    start = time.perf_counter()
    native_masks = [native.run_steps(image, steps) for image in images]
    native_seconds = time.perf_counter() - start
    start = time.perf_counter()
    written = binary.run_cellprofiler(
        pipe, paths, folder / "masks", python=python, log=lambda line: None
    )
    cellprofiler_seconds = time.perf_counter() - start
    references = [tifffile.imread(path) for path in written]

    identical, objects = 0, 0
    for path, mask, reference in zip(paths, native_masks, references, strict=True):
        objects += int(reference.max())
        if np.array_equal(mask, reference):
            identical += 1
        else:
            differing = int(np.count_nonzero(mask != reference))
            print(f"  differs: {path.name} {reference.shape}: {differing} pixels")
    line = (
        f"{name:>24}: native identical to CellProfiler 4.2.8 in {identical} of {len(paths)} "
        f"maps ({objects} objects); native {native_seconds:.1f} s, CellProfiler "
        f"{cellprofiler_seconds:.1f} s"
    )
    if args.with_skimage_watershed:
        import skimage

        native.watershed = skimage_watershed
        try:
            masks = [native.run_steps(image, steps) for image in images]
        finally:
            native.watershed = watershed
        same = sum(bool(np.array_equal(m, r)) for m, r in zip(masks, references, strict=True))
        line += f"; with scikit-image {skimage.__version__}'s watershed: {same}"
    print(line, flush=True)
    return identical, len(paths)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=60, help="maps per configuration")
    parser.add_argument("--min-size", type=int, default=64)
    parser.add_argument("--max-size", type=int, default=192)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--python", help="CellProfiler's interpreter ($CELLPROFILER_PYTHON)")
    parser.add_argument(
        "--configuration", action="append", choices=sorted(CONFIGURATIONS), help="default: all"
    )
    parser.add_argument("--with-skimage-watershed", action="store_true")
    args = parser.parse_args()

    python = binary.find_cellprofiler_python(args.python)
    names = args.configuration or list(CONFIGURATIONS)
    total_identical = total = 0
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            identical, count = compare(name, CONFIGURATIONS[name], args, python, Path(tmp))
            total_identical += identical
            total += count
    print(
        f"all: {total_identical} of {total} maps identical "
        f"(sizes {args.min_size}-{args.max_size} px, seed {args.seed})"
    )


if __name__ == "__main__":
    main()
