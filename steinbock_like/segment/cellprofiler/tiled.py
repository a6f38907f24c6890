"""Native CellProfiler pipelines on large images, tile by tile.

The pipeline's per-pixel and per-object steps (channel splitting, image arithmetic,
smoothing, thresholding with a *fixed* value, hole filling, declumping, filtering,
propagation) only look at a neighbourhood of each pixel, so they are run on overlapping
tiles (:mod:`steinbock_like.tiles`) whose margin exceeds a cell. What is image-wide is
computed first, over the whole image, exactly as the whole-image run computes it:

- the global threshold of each thresholding step (:func:`pipeline_thresholds`); the gray
  image it is computed from is built in bands of rows (with a halo of rows for the
  smoothing), so the probabilities are never converted to float as a whole;
- the automatic smoothing size (from the image shape);
- "objects touching the border" means the image border: a tile side inside the image is
  no border (:class:`~steinbock_like.segment.cellprofiler.native.Region`);
- ResizeObjects runs on the stitched objects (its sampling grid spans the whole image).

Each tile runs the pipeline up to the objects that become the saved mask (cells grow from
the tile's own nuclei and carry their numbers); the tiles' objects are stitched (an object
is taken from the tile whose core holds the centre of its bounding box, whole, margin
parts included) and numbered 1..N in the order of their seeds' positions in the image,
which is how the whole-image run numbers them (:mod:`.order`); so the mask equals the
whole-image one wherever the objects do (cells discarded at the image border leave no gap
in the numbers here). Pixels on the border between two touching objects can differ where
the flooding order of watershed/propagation ties (the order among equal values depends
on the whole queue). Tiles where no pixel of a primary step's input
reaches its threshold hold no objects: they are skipped and counted.

Pipelines with a step whose result depends on the whole image other than through a
threshold (:func:`tiling_blockers`) are run whole.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Iterator, Sequence

import numpy as np

from steinbock_like import tiles as slide_tiles
from steinbock_like.segment.cellprofiler.native import (
    DECLUMP_SHAPE,
    GaussianSmooth,
    IdentifyPrimary,
    IdentifySecondary,
    ImageMath,
    LoadImage,
    ObjectsToImage,
    Region,
    ResizeObjects,
    SaveMask,
    SplitChannels,
    Step,
    as_mask,
    execute_steps,
    resize_labels,
)
from steinbock_like.segment.cellprofiler.threshold import (
    THRESHOLD_MANUAL,
    THRESHOLD_OTSU,
    corrected_threshold,
    global_threshold,
)

logger = logging.getLogger(__name__)

#: Largest tile core (pixels of the probability image); larger images are tiled.
DEFAULT_TILE_SIZE = 4096
#: Smallest margin around a tile core, in pixels.
MIN_MARGIN = 64
#: Steps that make gray images (per pixel, or local: smoothing).
IMAGE_STEPS = (LoadImage, SplitChannels, ImageMath, GaussianSmooth)
#: Steps run once on the stitched objects.
TAIL_STEPS = (ResizeObjects, ObjectsToImage, SaveMask)
#: Pixels per band when the gray images are built for the thresholds.
BAND_PIXELS = 1 << 22


def tiling_blockers(steps: Sequence[Step]) -> list[str]:
    """Why ``steps`` cannot run tile by tile with the whole-image result (empty: they can)."""
    reasons = []
    for step in steps:
        if isinstance(step, IdentifyPrimary):
            if step.erase_above_count is not None:
                reasons.append(f"{step.output}: objects erased above a count (of the whole image)")
            if step.maxima_resize_factor < 1:
                reasons.append(f"{step.output}: maxima on a lower-resolution (whole) image")
            if step.declump_method == DECLUMP_SHAPE:
                reasons.append(f"{step.output}: shape declumping (a jitter over the whole image)")
    if saved_objects(steps) is None:
        reasons.append("the saved mask is not objects, resized or not, of an earlier step")
    return reasons


def saved_objects(steps: Sequence[Step]) -> tuple[str, list[ResizeObjects]] | None:
    """The objects that become the saved mask and the ResizeObjects steps between them.

    None where the saved label image is not made that way, or where a resized object set
    is used by another step (it would need the whole image).
    """
    saves = [step for step in steps if isinstance(step, SaveMask)]
    converters = {step.output: step.input for step in steps if isinstance(step, ObjectsToImage)}
    resizes = {step.output: step for step in steps if isinstance(step, ResizeObjects)}
    if len(saves) != 1 or saves[0].image not in converters:
        return None
    name, chain = converters[saves[0].image], []
    while name in resizes:
        chain.insert(0, resizes[name])
        name = resizes[name].input
    used = {name for step in steps if not isinstance(step, TAIL_STEPS) for name in _inputs(step)}
    if any(step.output in used for step in resizes.values()):
        return None
    return name, chain


def _inputs(step: Step) -> list[str]:
    if isinstance(step, IdentifySecondary):
        return [step.input_objects, step.image]
    if isinstance(step, ImageMath):
        return [name for name, _ in step.inputs]
    return [getattr(step, "input", "")]


def smoothing_halo(steps: Sequence[Step], image_shape: tuple[int, int]) -> int:
    """Rows beyond which the gray images' smoothing (chained) cannot reach."""
    from steinbock_like.segment.cellprofiler.native import auto_smoothing_diameter

    halo = 1
    for step in steps:
        if isinstance(step, GaussianSmooth):
            diameter = step.diameter or auto_smoothing_diameter(image_shape)
            halo += int(4.0 * diameter / 2.35 + 0.5) + 1  # scipy truncates at 4 sigma
    return halo


def tile_margin(steps: Sequence[Step], image_shape: tuple[int, int]) -> int:
    """Margin around tile cores: four of the largest nucleus diameters plus the smoothing."""
    diameters = [step.max_diameter for step in steps if isinstance(step, IdentifyPrimary)]
    return max(MIN_MARGIN, math.ceil(4 * max(diameters, default=0))) + smoothing_halo(
        steps, image_shape
    )


def _threshold_steps(steps: Sequence[Step]) -> Iterator[tuple[int, str, object]]:
    for index, step in enumerate(steps):
        if isinstance(step, IdentifyPrimary):
            yield index, step.input, step.threshold
        elif isinstance(step, IdentifySecondary):
            yield index, step.image, step.threshold


def image_bands(
    source, steps: Sequence[Step], name: str, *, band_pixels: int = BAND_PIXELS
) -> Iterator[np.ndarray]:
    """The gray image ``name`` of the pipeline, in bands of rows, top to bottom.

    Each band is computed from the probabilities of its rows plus a halo of rows above and
    below (:func:`smoothing_halo`), so its values equal the whole image's exactly.
    ``source`` hands out ``read(rows, cols)`` crops of the (Y, X, C) probabilities
    (:class:`steinbock_like.tiles.ArrayRegions`).
    """
    height, width = source.shape
    image_steps = [step for step in steps if isinstance(step, IMAGE_STEPS)]
    halo = smoothing_halo(steps, (height, width))
    rows = max(1, 4 * halo, band_pixels // max(1, width))
    region = Region((height, width))
    for start in range(0, height, rows):
        stop = min(height, start + rows)
        first, last = max(0, start - halo), min(height, stop + halo)
        crop = source.read(slice(first, last), slice(0, width))
        images = execute_steps(crop, image_steps, region).images
        if name not in images:
            raise KeyError(name)
        yield images[name][start - first : stop - first]


def pipeline_thresholds(
    source, steps: Sequence[Step], *, band_pixels: int = BAND_PIXELS
) -> dict[int, float]:
    """The global threshold of every thresholding step, by step index, over the whole image.

    Equal to what the whole-image run computes. Manual thresholds need no pixels; two-class
    Otsu (without log transform) is computed from a histogram streamed over bands of rows
    (range, then counts, as scikit-image bins them); Minimum Cross-Entropy (Li) and the
    other variants need the whole gray image in memory (one float32 plane at a time): Li
    iterates over means of all pixels above a moving threshold, in float32 summation order.
    """
    thresholds = {}
    for index, name, params in _threshold_steps(steps):
        if params.method == THRESHOLD_MANUAL:
            thresholds[index] = float(params.manual_threshold)
        elif (
            params.method == THRESHOLD_OTSU
            and params.three_class_foreground is None
            and not params.log_transform
        ):
            thresholds[index] = _streamed_otsu(
                lambda n=name: image_bands(source, steps, n, band_pixels=band_pixels), params
            )
        else:
            plane = np.empty(source.shape, np.float32)
            start = 0
            for band in image_bands(source, steps, name, band_pixels=band_pixels):
                plane[start : start + band.shape[0]] = band
                start += band.shape[0]
            thresholds[index] = global_threshold(plane, params, overwrite=True)
            del plane
    return thresholds


def _streamed_otsu(bands, params) -> float:
    """Two-class Otsu of the image ``bands()`` yields, as ``threshold_otsu(image)`` gives it."""
    import skimage.filters

    low = high = None
    for band in bands():
        band_low, band_high = band.min(), band.max()
        low = band_low if low is None else min(low, band_low)
        high = band_high if high is None else max(high, band_high)
    if low == high:
        return corrected_threshold(float(low), params)
    counts = np.zeros(256, np.int64)
    edges = None
    for band in bands():
        band_counts, edges = np.histogram(band, bins=256, range=(low, high))
        counts += band_counts
    centres = (edges[:-1] + edges[1:]) / 2.0
    threshold = skimage.filters.threshold_otsu(hist=(counts, centres))
    return corrected_threshold(float(threshold), params)


@dataclasses.dataclass(frozen=True)
class TileRunner:
    """Runs the pipeline on one tile's crop (picklable: sent to dask workers).

    Called with ``(tile, crop)``; returns the object sets named ``objects`` (their
    final labels) in the crop's frame.
    """

    steps: tuple
    image_shape: tuple[int, int]
    thresholds: dict
    objects: tuple[str, ...]

    def __call__(self, item) -> dict:
        tile, crop = item
        region = self.region(tile)
        space = execute_steps(crop, self.steps, region, skip=TAIL_STEPS)
        result: dict = {name: space.objects[name].segmented for name in self.objects}
        owner = space.objects[self.objects[0]]
        if owner.order is not None:  # number the objects as the whole-image run does
            rows, cols = np.divmod(owner.order, crop.shape[1])
            keys = (rows + tile.outer[0]) * self.image_shape[1] + cols + tile.outer[2]
            result[self.objects[0]] = (owner.segmented, keys)
        return result

    def region(self, tile: slide_tiles.Tile) -> Region:
        edges = slide_tiles.tile_edges(tile, self.image_shape)
        return Region(self.image_shape, edges, self.thresholds)

    def signal(self, tile: slide_tiles.Tile, crop: np.ndarray) -> float:
        """How far the crop reaches a primary threshold: below 1, it holds no objects.

        The largest ratio of a primary step's input (before its threshold smoothing,
        which only averages) to its threshold.
        """
        image_steps = [step for step in self.steps if isinstance(step, IMAGE_STEPS)]
        images = execute_steps(crop, image_steps, self.region(tile)).images
        ratio = 0.0
        for index, step in enumerate(self.steps):
            if isinstance(step, IdentifyPrimary):
                threshold = self.thresholds[index]
                if threshold <= 0:
                    return math.inf
                ratio = max(ratio, float(images[step.input].max(initial=0)) / threshold)
        return ratio


def run_steps_tiled(
    probabilities: np.ndarray, steps: Sequence[Step], **options
) -> tuple[np.ndarray, slide_tiles.TilingInfo]:
    """Run a native pipeline on a large probability image in overlapping tiles.

    Parameters
    ----------
    probabilities : ndarray, shape (Y, X, C), or regions
        Pixel-classification probabilities (uint16 YXC), or regions of them (see
        :func:`segment_objects_tiled`).
    steps : sequence of steps
        A pipeline without :func:`tiling_blockers`.
    **options
        ``tile_size``, ``margin``, ``skip_empty``, ``distribute``, ``label``: see
        :func:`segment_objects_tiled`.

    Returns
    -------
    ndarray of uint16
        The saved mask (numbered 1..N as the whole-image run numbers its objects).
    TilingInfo
        Tiles planned and skipped.
    """
    chain = saved_objects(steps)
    if chain is None:
        raise ValueError("pipeline cannot be tiled: " + "; ".join(tiling_blockers(steps)))
    name, resizes = chain
    objects, info = segment_objects_tiled(probabilities, steps, [name], **options)
    mask = objects[name]
    for step in resizes:
        mask = resize_labels(mask, step.factor, step.size)
    return as_mask(mask), info


def segment_objects_tiled(
    probabilities: np.ndarray,
    steps: Sequence[Step],
    names: Sequence[str],
    *,
    tile_size: int = DEFAULT_TILE_SIZE,
    margin: int | None = None,
    skip_empty: bool = True,
    distribute: bool = False,
    label: str = "",
) -> tuple[dict[str, np.ndarray], slide_tiles.TilingInfo]:
    """Object sets of a pipeline on a large probability image, in overlapping tiles.

    Parameters
    ----------
    probabilities : ndarray, shape (Y, X, C), or regions
        Pixel-classification probabilities (uint16 YXC), or an object handing out
        ``read(rows, cols)`` regions of them with ``shape`` (Y, X) (e.g.
        :func:`steinbock_like.io.probabilities.spool_probabilities`), so that the
        image is never held whole.
    steps : sequence of steps
        A pipeline without :func:`tiling_blockers`.
    names : sequence of str
        Object sets to return, e.g. ``["ScaledCells", "FilteredScaledNuclei"]``. The
        first decides which tile an object comes from; the others are numbered like it
        (a nucleus keeps the number of the cell grown from it).
    tile_size : int
        Largest tile core in pixels.
    margin : int, optional
        Context around each core; default :func:`tile_margin`. Must exceed a cell.
    skip_empty : bool
        Skip tiles where no primary step's input reaches its threshold.
    distribute : bool
        Spread the tiles over the dask cluster when run inside a dask task.
    label : str
        The image's name, for the progress lines.

    Returns
    -------
    dict of str to ndarray of uint32
        Labels (Y, X) per name, numbered 1..N in the whole-image run's order.
    TilingInfo
        Tiles planned and skipped.
    """
    blockers = tiling_blockers(steps)
    if blockers:
        raise ValueError(f"pipeline cannot be tiled: {'; '.join(blockers)}")
    if isinstance(probabilities, np.ndarray):
        if probabilities.ndim != 3:
            raise ValueError(f"probabilities must be YXC, got shape {probabilities.shape}")
        source = slide_tiles.ArrayRegions(probabilities)
    else:
        source = probabilities
    shape = source.shape
    thresholds = pipeline_thresholds(source, steps)
    runner = TileRunner(tuple(steps), shape, thresholds, tuple(names))
    info = slide_tiles.TilingInfo()

    def read(tile):
        return tile, source.read(*tile.outer_slices)

    def mapper(_function, tiles):
        items = (read(tile) for tile in tiles)
        if distribute:
            return slide_tiles.distributed_map(runner, items, workers_seen=info.workers)
        return map(runner, items)

    labels, info = slide_tiles.segment_in_tiles(
        lambda tile: runner(read(tile)),
        shape,
        tile_size=tile_size,
        margin=tile_margin(steps, shape) if margin is None else margin,
        signal=(lambda tile: runner.signal(*read(tile))) if skip_empty else None,
        min_signal=1.0 if skip_empty else 0.0,
        mapper=mapper,
        info=info,
        label=label,
        linked={name: names[0] for name in names[1:]},
    )
    for name in names:  # every tile skipped: no objects
        labels.setdefault(name, np.zeros(shape, np.uint32))
    return labels, info
