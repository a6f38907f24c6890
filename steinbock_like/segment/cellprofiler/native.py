"""CellProfiler's probability-to-mask segmentation, reimplemented without CellProfiler.

A pipeline is a list of *steps* (frozen dataclasses, one per supported CellProfiler module,
built by :func:`steinbock_like.segment.cellprofiler.translate.native_steps`) run in order on
a namespace of gray images and object sets, as CellProfiler runs its modules on an image set.
The numerical details follow CellProfiler 4.2.8 so that masks agree pixel for pixel in almost
all cases:

- every image is stored as float32 (CellProfiler's ``Image`` does this; float64 intermediates
  move watershed ties);
- "Minimum Cross-Entropy" is scikit-image's ``threshold_li`` with CellProfiler's tolerance
  (not centrosome's maximum-correlation ``TM_MCT``);
- threshold arithmetic is done in float64, as numpy < 2 did for ``float32 scalar * float``;
- secondary objects are seeded from the primary objects' *unedited* labels (see
  :func:`identify_secondary_objects`).

- the declumping watershed and the propagation are our own (:mod:`.watershed`,
  :mod:`.propagate`) and flood in exactly the order of the code CellProfiler 4.2 runs
  (scikit-image 0.18.3's watershed, centrosome's propagate), and Li's threshold follows
  scikit-image 0.18.3 (:func:`li_threshold`): the masks do not depend on the installed
  scikit-image, whose later releases break watershed ties differently.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence

import centrosome.cpmorphology
import centrosome.smooth
import centrosome.threshold
import numpy as np
import scipy.ndimage

from steinbock_like.errors import SteinbockLikeError
from steinbock_like.segment.cellprofiler.order import seed_order
from steinbock_like.segment.cellprofiler.propagate import propagate
from steinbock_like.segment.cellprofiler.threshold import (  # noqa: F401 (steps use them)
    THRESHOLD_LI,
    THRESHOLD_MANUAL,
    THRESHOLD_OTSU,
    ThresholdParams,
    apply_threshold,
    threshold_image,
)
from steinbock_like.segment.cellprofiler.watershed import watershed

# CellProfiler's labels are int32 in practice; keep one dtype throughout.
LABEL_DTYPE = np.int32
EIGHT_CONNECTED = np.ones((3, 3), bool)

DECLUMP_INTENSITY = "Intensity"
DECLUMP_SHAPE = "Shape"
DECLUMP_NONE = "None"
DIVIDE_INTENSITY = "Intensity"
DIVIDE_SHAPE = "Shape"
DIVIDE_PROPAGATE = "Propagate"
DIVIDE_NONE = "None"


# --------------------------------------------------------------------------------------------
# Steps: the parameters of each supported module, already resolved (basic mode applied)
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class LoadImage:
    """NamesAndTypes: the probability image, scaled to 0..1.

    ``intensity_max`` None means "from the image's bit depth" (65535 for uint16).
    """

    name: str
    intensity_max: float | None = None


@dataclasses.dataclass(frozen=True)
class SplitChannels:
    """ColorToGray, Split: ``outputs`` holds (zero-based channel index, output image name)."""

    input: str
    outputs: tuple[tuple[int, str], ...]


@dataclasses.dataclass(frozen=True)
class ImageMath:
    """ImageMath on images: ``inputs`` holds (image name, factor) pairs."""

    operation: str
    inputs: tuple[tuple[str, float], ...]
    output: str
    exponent: float = 1.0
    after_factor: float = 1.0
    addend: float = 0.0
    truncate_low: bool = True
    truncate_high: bool = True
    replace_nan: bool = True


@dataclasses.dataclass(frozen=True)
class GaussianSmooth:
    """Smooth, Gaussian Filter; ``diameter`` None means CellProfiler's automatic size."""

    input: str
    output: str
    diameter: float | None


@dataclasses.dataclass(frozen=True)
class IdentifyPrimary:
    """IdentifyPrimaryObjects with every setting resolved as CellProfiler applies it.

    In basic mode CellProfiler ignores several written settings; the pipeline reader has
    already replaced them by what CellProfiler really uses.
    """

    input: str
    output: str
    min_diameter: float
    max_diameter: float
    threshold: ThresholdParams
    exclude_size: bool = False
    exclude_border: bool = False
    declump_method: str = DECLUMP_INTENSITY
    dividing_method: str = DIVIDE_INTENSITY
    declump_smoothing_size: float = 1.0
    maxima_suppression_size: float = 7.0
    maxima_resize_factor: float = 1.0
    fill_holes_after_threshold: bool = True
    fill_holes_after_declump: bool = True
    erase_above_count: int | None = None


@dataclasses.dataclass(frozen=True)
class FilterByMeasurement:
    """FilterObjects, Measurements / Limits on ``AreaShape_Area``."""

    input: str
    output: str
    min_area: float | None
    max_area: float | None


@dataclasses.dataclass(frozen=True)
class IdentifySecondary:
    """IdentifySecondaryObjects by Propagation."""

    input_objects: str
    output: str
    image: str
    threshold: ThresholdParams
    regularization: float = 0.05
    fill_holes: bool = True
    discard_edge: bool = False


@dataclasses.dataclass(frozen=True)
class ResizeObjects:
    """ResizeObjects by a (y, x) factor or to a (height, width) size."""

    input: str
    output: str
    factor: tuple[float, float] | None = None
    size: tuple[int, int] | None = None


@dataclasses.dataclass(frozen=True)
class ObjectsToImage:
    """ConvertObjectsToImage as uint16 labels."""

    input: str
    output: str


@dataclasses.dataclass(frozen=True)
class SaveMask:
    """SaveImages: the image that becomes the mask file."""

    image: str


Step = (
    LoadImage
    | SplitChannels
    | ImageMath
    | GaussianSmooth
    | IdentifyPrimary
    | FilterByMeasurement
    | IdentifySecondary
    | ResizeObjects
    | ObjectsToImage
    | SaveMask
)


@dataclasses.dataclass(frozen=True)
class Region:
    """Where a crop lies in its image, when a pipeline runs tile by tile (:mod:`.tiled`).

    Attributes
    ----------
    image_shape : (int, int)
        Shape of the whole image (CellProfiler's automatic smoothing size depends on it).
    edges : (bool, bool, bool, bool)
        Whether the crop's top, bottom, left and right sides are the image's border: only
        there are objects "touching the border".
    thresholds : mapping of int to float
        The global threshold of each thresholding step (by its index in the pipeline),
        computed over the whole image (:func:`.tiled.pipeline_thresholds`).
    """

    image_shape: tuple[int, int]
    edges: tuple[bool, bool, bool, bool] = (True, True, True, True)
    thresholds: Mapping[int, float] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class Objects:
    """An object set: final labels plus the labels CellProfiler keeps alongside them.

    Attributes
    ----------
    segmented : ndarray of int32
        The objects after all filtering, numbered 1..N.
    unedited : ndarray of int32
        The labels before border/size filtering and hole filling (propagation seeds).
    order : ndarray of int64, optional
        Per ``segmented`` label (index 0 unused), the raster index of the seed it grew
        from: CellProfiler numbers objects in this order (kept for tiles: :mod:`.tiled`).
    """

    segmented: np.ndarray
    unedited: np.ndarray
    order: np.ndarray | None = None


# --------------------------------------------------------------------------------------------
# Image operations
# --------------------------------------------------------------------------------------------


def probabilities_to_float(probabilities: np.ndarray, intensity_max: float | None) -> np.ndarray:
    """Scale stored probabilities to CellProfiler's 0..1 float32 pixel data.

    Parameters
    ----------
    probabilities : ndarray, shape (Y, X, C)
        Integer probabilities (usually uint16).
    intensity_max : float or None
        The value that stands for 1; None takes the maximum of the integer dtype.
    """
    if intensity_max is None:
        if probabilities.dtype.kind in "ui":
            intensity_max = float(np.iinfo(probabilities.dtype).max)
        else:
            intensity_max = 1.0
    return (probabilities.astype(np.float64) / intensity_max).astype(np.float32)


def smooth_gaussian(
    image: np.ndarray, diameter: float | None, image_shape: tuple[int, int] | None = None
) -> np.ndarray:
    """The Smooth module's Gaussian filter: sigma = diameter / 2.35, edge-normalised.

    ``diameter`` None uses CellProfiler's automatic artifact diameter, from
    ``image_shape`` (the whole image's; default ``image.shape``).
    """
    if diameter is None:
        diameter = auto_smoothing_diameter(image_shape or image.shape)
    sigma = float(diameter) / 2.35
    smoothed = centrosome.smooth.smooth_with_function_and_mask(
        image,
        lambda x: scipy.ndimage.gaussian_filter(x, sigma, mode="constant", cval=0),
        np.ones(image.shape, bool),
    )
    return smoothed.astype(np.float32)


def auto_smoothing_diameter(image_shape: tuple[int, int]) -> float:
    """CellProfiler's automatic artifact diameter of the Smooth module."""
    return min(30.0, max(1.0, float(np.mean(image_shape)) / 40.0))


def image_math(images: Sequence[np.ndarray], step: ImageMath) -> np.ndarray:
    """ImageMath's arithmetic operations with its post-processing and truncation."""
    pixels = [
        image * factor if factor != 1 else image
        for image, (_, factor) in zip(images, step.inputs, strict=True)
    ]
    result = pixels[0].astype(np.float32, copy=True)
    for other in pixels[1:]:
        if step.operation in ("Add", "Average"):
            result = result + other
        elif step.operation == "Subtract":
            result = result - other
        elif step.operation == "Multiply":
            result = result * other
        else:
            raise SteinbockLikeError(f"ImageMath operation {step.operation!r} is not supported")
    if step.operation == "Average":
        result = result / sum(factor for _, factor in step.inputs)
    if step.exponent != 1:
        result = result**step.exponent
    if step.after_factor != 1:
        result = result * step.after_factor
    if step.addend != 0:
        result = result + step.addend
    result = np.asarray(result, dtype=np.float32).copy()
    if step.truncate_low:
        result[result < 0] = 0
    if step.truncate_high:
        result[result > 1] = 1
    if step.replace_nan:
        result[np.isnan(result)] = 0
    return result


# --------------------------------------------------------------------------------------------
# IdentifyPrimaryObjects
# --------------------------------------------------------------------------------------------


def declump_smooth(image: np.ndarray, filter_size: float) -> np.ndarray:
    """IdentifyPrimaryObjects' declumping blur: a Gaussian truncated at 2 SD, edge-normalised.

    sigma = filter_size / 2.35; the kernel spans +-max(int(filter_size / 2), 1) pixels.
    """
    if filter_size == 0:
        return image
    sigma = filter_size / 2.35
    half_width = max(int(float(filter_size) / 2.0), 1)
    offsets = np.arange(-half_width, half_width + 1)
    kernel = np.exp(-0.5 * offsets**2 / sigma**2) / (math.sqrt(2.0 * math.pi) * sigma)

    def separable_blur(array: np.ndarray) -> np.ndarray:
        blurred = scipy.ndimage.convolve1d(array, kernel, axis=0, mode="constant")
        return scipy.ndimage.convolve1d(blurred, kernel, axis=1, mode="constant")

    # Dividing by the blurred all-ones image undoes the darkening at the image edge.
    edge_weight = separable_blur(np.ones(image.shape, np.float64))
    smoothed = image.copy()
    smoothed[...] = separable_blur(image) / edge_weight
    return smoothed


def seed_maxima(
    image: np.ndarray, labels: np.ndarray, suppression_size: float, resize_factor: float
) -> np.ndarray:
    """One seed point per regional maximum, maxima closer than the suppression size merged.

    With ``resize_factor < 1`` the maxima are found on a down-sampled copy (CellProfiler's
    "lower-resolution image" speed-up) and mapped back.
    """
    footprint = centrosome.cpmorphology.strel_disk(max(1, suppression_size - 0.5))
    if resize_factor < 1.0:
        small_shape = np.array(image.shape) * resize_factor
        coords = np.mgrid[0 : small_shape[0], 0 : small_shape[1]].astype(float) / resize_factor
        search_image = scipy.ndimage.map_coordinates(image, coords)
        search_labels = scipy.ndimage.map_coordinates(labels, coords, order=0).astype(labels.dtype)
    else:
        search_image, search_labels = image, labels
    maxima = centrosome.cpmorphology.is_local_maximum(search_image, search_labels, footprint)
    maxima[search_image <= 0] = 0
    if resize_factor < 1.0:
        inverse_factor = float(image.shape[0]) / float(maxima.shape[0])
        coords = np.mgrid[0 : image.shape[0], 0 : image.shape[1]].astype(float) / inverse_factor
        maxima = scipy.ndimage.map_coordinates(maxima.astype(float), coords) > 0.5
    return centrosome.cpmorphology.binary_shrink(maxima)


def declump(image: np.ndarray, labels: np.ndarray, step: IdentifyPrimary):
    """Split touching objects: seeds at maxima, then a watershed inside the foreground.

    Returns the divided labels and the seeds (labelled as the objects grown from them).
    """
    if step.declump_method == DECLUMP_NONE or step.dividing_method == DIVIDE_NONE:
        return labels, labels
    blurred = declump_smooth(image, step.declump_smoothing_size)
    distance = None
    if step.declump_method == DECLUMP_INTENSITY:
        maxima = seed_maxima(
            blurred, labels, step.maxima_suppression_size, step.maxima_resize_factor
        )
    elif step.declump_method == DECLUMP_SHAPE:
        if step.fill_holes_after_threshold or step.fill_holes_after_declump:
            foreground = labels > 0
        else:
            # a point far from the edge may still be next to a hole
            foreground = centrosome.cpmorphology.fill_labeled_holes(labels) > 0
        distance = scipy.ndimage.distance_transform_edt(foreground)
        # CellProfiler jitters the distances (seeded) so that maxima are unique
        distance = distance + np.random.RandomState(0).uniform(0, 0.001, distance.shape)
        maxima = seed_maxima(
            distance, labels, step.maxima_suppression_size, step.maxima_resize_factor
        )
    else:
        raise SteinbockLikeError(f"declumping method {step.declump_method!r} is not supported")

    seeds, _ = scipy.ndimage.label(maxima, EIGHT_CONNECTED)
    if step.dividing_method == DIVIDE_PROPAGATE:
        divided, _ = propagate(np.zeros(seeds.shape), seeds, labels != 0, 1.0)
        return divided.astype(LABEL_DTYPE), seeds
    if step.dividing_method == DIVIDE_INTENSITY:
        landscape = 1 - image
    elif step.dividing_method == DIVIDE_SHAPE:
        if distance is None:
            distance = scipy.ndimage.distance_transform_edt(labels > 0)
        landscape = -distance - np.min(-distance)
    else:
        raise SteinbockLikeError(f"dividing-line method {step.dividing_method!r} is not supported")
    return watershed(landscape, seeds, mask=labels != 0).astype(LABEL_DTYPE), seeds


def border_values(labels: np.ndarray, edges=None) -> np.ndarray:
    """Labels on the image border: the sides ``edges`` (top, bottom, left, right) marks."""
    edges = (True, True, True, True) if edges is None else edges
    sides = (labels[0, :], labels[-1, :], labels[:, 0], labels[:, -1])
    chosen = [side for side, is_edge in zip(sides, edges, strict=True) if is_edge]
    return np.concatenate(chosen) if chosen else np.zeros(0, labels.dtype)


def remove_border_objects(labels: np.ndarray, edges=None) -> np.ndarray:
    """Zero every object that touches the image border (the sides ``edges`` marks)."""
    border = border_values(labels, edges)
    touching = np.zeros(int(labels.max(initial=0)) + 1, bool)
    touching[border] = True
    touching[0] = False
    return np.where(touching[labels], 0, labels)


def remove_by_diameter(labels: np.ndarray, min_diameter: float, max_diameter: float):
    """Zero objects whose area is outside the circle areas of the diameter range."""
    areas = np.bincount(labels.ravel(), minlength=int(labels.max(initial=0)) + 1)
    area_image = areas[labels]
    labels = labels.copy()
    labels[area_image < math.pi * min_diameter * min_diameter / 4] = 0
    labels[area_image > math.pi * max_diameter * max_diameter / 4] = 0
    return labels


def identify_primary_objects(
    image: np.ndarray, step: IdentifyPrimary, region: Region | None = None, index: int = -1
) -> Objects:
    """IdentifyPrimaryObjects: threshold, fill holes, declump, filter, fill holes, relabel.

    Parameters
    ----------
    image : ndarray of float32, shape (Y, X)
        Gray image in 0..1.
    step : IdentifyPrimary
        Resolved settings.
    region, index : Region, int, optional
        For a crop of a larger image: where it lies and its global threshold (of step
        ``index``); by default ``image`` is the whole image.

    Returns
    -------
    Objects
        ``segmented`` numbered 1..N; ``unedited`` the declumped labels before filtering.
    """
    foreground = _threshold(image, step.threshold, region, index)
    max_hole_area = step.max_diameter * step.max_diameter
    if step.fill_holes_after_threshold:
        foreground = centrosome.cpmorphology.fill_labeled_holes(
            foreground, size_fn=lambda size, is_foreground: size < max_hole_area
        )
    labels, _ = scipy.ndimage.label(foreground, EIGHT_CONNECTED)
    labels, seeds = declump(image, labels.astype(LABEL_DTYPE), step)
    unedited = labels.copy()
    if step.exclude_border:
        labels = remove_border_objects(labels, region and region.edges)
    if step.exclude_size:
        labels = remove_by_diameter(labels, step.min_diameter, step.max_diameter)
    if step.fill_holes_after_declump:
        labels = centrosome.cpmorphology.fill_labeled_holes(labels)
    order = None if region is None else seed_order(seeds, labels)
    labels, count = centrosome.cpmorphology.relabel(labels)
    if step.erase_above_count is not None and count > step.erase_above_count:
        labels = np.zeros_like(labels)
        unedited = np.zeros_like(unedited)
    return Objects(segmented=labels.astype(LABEL_DTYPE), unedited=unedited, order=order)


# --------------------------------------------------------------------------------------------
# FilterObjects, IdentifySecondaryObjects, ResizeObjects
# --------------------------------------------------------------------------------------------


def filter_by_area(objects: Objects, min_area: float | None, max_area: float | None) -> Objects:
    """FilterObjects on AreaShape_Area (pixel count): keep min <= area <= max, renumber."""
    segmented = objects.segmented
    count = int(segmented.max(initial=0))
    areas = np.bincount(segmented.ravel(), minlength=count + 1)[1:]
    keep = np.ones(count, bool)
    if min_area is not None:
        keep &= areas >= min_area
    if max_area is not None:
        keep &= areas <= max_area
    new_ids = np.zeros(count + 1, LABEL_DTYPE)
    new_ids[1:][keep] = np.arange(1, int(keep.sum()) + 1, dtype=LABEL_DTYPE)
    order = None if objects.order is None else np.append(objects.order[:1], objects.order[1:][keep])
    return Objects(segmented=new_ids[segmented], unedited=objects.unedited, order=order)


def _threshold(image, params: ThresholdParams, region: Region | None, index: int) -> np.ndarray:
    if region is None:
        return threshold_image(image, params)
    return apply_threshold(image, region.thresholds[index], params.smoothing_sigma)


def identify_secondary_objects(
    image: np.ndarray,
    primary: Objects,
    step: IdentifySecondary,
    region: Region | None = None,
    index: int = -1,
):
    """IdentifySecondaryObjects by propagation from the primary objects.

    The seeds are the primary objects' *unedited* labels, less objects that were filtered
    away without touching the image edge: objects removed because they touch the edge still
    compete for pixels during propagation and are dropped afterwards (CellProfiler does so).

    Returns
    -------
    ndarray of int32, shape (Y, X)
        Cells numbered as their primary objects.
    """
    if image.shape != primary.segmented.shape:
        raise SteinbockLikeError(
            f"IdentifySecondaryObjects: image {step.image} has shape {image.shape} but objects "
            f"{step.input_objects} have shape {primary.segmented.shape}"
        )
    foreground = _threshold(image, step.threshold, region, index)
    seeds = primary.unedited.copy()
    edge_ids = np.unique(border_values(seeds, region and region.edges))
    touches_edge = np.zeros(int(seeds.max(initial=0)) + 1, bool)
    touches_edge[edge_ids] = True
    seeds[~touches_edge[seeds] & (primary.segmented == 0)] = 0

    cells, _ = propagate(image, seeds, foreground, step.regularization)
    if step.fill_holes:
        cells = centrosome.cpmorphology.fill_labeled_holes(cells, mask=cells == 0)
    cells = np.asarray(cells, LABEL_DTYPE)

    # Renumber each cell as the (filtered) primary object it contains; 0 if none.
    max_id = int(cells.max(initial=0))
    if max_id > 0:
        lookup = np.asarray(
            scipy.ndimage.maximum(primary.segmented, cells, np.arange(max_id + 1)), LABEL_DTYPE
        )
        lookup[0] = 0
        cells = lookup[cells]
    if step.discard_edge:
        cells = remove_border_objects(cells, region and region.edges)
    return cells


def resize_labels(
    labels: np.ndarray,
    factor: tuple[float, float] | None = None,
    size: tuple[int, int] | None = None,
) -> np.ndarray:
    """ResizeObjects: nearest-neighbour zoom by a (y, x) factor or to a (height, width) size."""
    if size is not None:
        factor = (size[0] / labels.shape[0], size[1] / labels.shape[1])
    if factor is None:
        raise ValueError("give a factor or a size")
    return scipy.ndimage.zoom(labels, factor, order=0, mode="nearest")


# --------------------------------------------------------------------------------------------
# Running a pipeline
# --------------------------------------------------------------------------------------------


def _lookup(namespace: dict, name: str, kind: str, step) -> np.ndarray | Objects:
    try:
        return namespace[name]
    except KeyError:
        raise SteinbockLikeError(
            f"{type(step).__name__}: no {kind} named {name!r} is made earlier in the pipeline"
        ) from None


def run_steps(probabilities: np.ndarray, steps: Sequence[Step]) -> np.ndarray:
    """Run a native pipeline on one probability image.

    Parameters
    ----------
    probabilities : ndarray, shape (Y, X, C)
        Pixel-classification probabilities (uint16 YXC).
    steps : sequence of steps
        From :func:`steinbock_like.segment.cellprofiler.translate.native_steps`.

    Returns
    -------
    ndarray of uint16, shape (Y', X')
        The mask that the pipeline's SaveImages writes.
    """
    return as_mask(execute_steps(probabilities, steps).saved)


@dataclasses.dataclass
class Namespace:
    """What the steps made so far: gray images, object sets, label images, the saved mask."""

    images: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)
    objects: dict[str, Objects] = dataclasses.field(default_factory=dict)
    label_images: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)
    saved: np.ndarray | None = None


def as_mask(saved: np.ndarray | None) -> np.ndarray:
    """The saved label image as a mask; an error if the pipeline saves none.

    uint16 as the pipeline's 16-bit SaveImages writes it, or uint32 where an object ID
    exceeds 65535 (a whole slide): 16 bits would lose those objects, and the mask
    writer warns that it writes uint32.
    """
    if saved is None:
        raise SteinbockLikeError("the pipeline saves no object mask (SaveImages of a label image)")
    fits = int(saved.max(initial=0)) <= np.iinfo(np.uint16).max
    return saved.astype(np.uint16 if fits else np.uint32, copy=False)


def execute_steps(
    probabilities: np.ndarray,
    steps: Sequence[Step],
    region: Region | None = None,
    skip: tuple[type, ...] = (),
) -> Namespace:
    """Run ``steps`` (but those of the types in ``skip``) on probabilities (Y, X, C).

    ``region`` describes a crop of a larger image (see :class:`Region`); the step indices
    it refers to are positions in ``steps``.
    """
    if probabilities.ndim != 3:
        raise ValueError(f"probabilities must be YXC, got shape {probabilities.shape}")
    space = Namespace()
    images, objects, label_images = space.images, space.objects, space.label_images
    for index, step in enumerate(steps):
        if isinstance(step, skip):
            continue
        if isinstance(step, LoadImage):
            images[step.name] = probabilities_to_float(probabilities, step.intensity_max)
        elif isinstance(step, SplitChannels):
            color = _lookup(images, step.input, "image", step)
            if color.ndim != 3:
                raise SteinbockLikeError(f"ColorToGray: image {step.input!r} is not a color image")
            for channel, name in step.outputs:
                if channel >= color.shape[2]:
                    raise SteinbockLikeError(
                        f"ColorToGray: channel {channel + 1} requested but the probability "
                        f"image has {color.shape[2]} channels"
                    )
                images[name] = np.ascontiguousarray(color[:, :, channel])
        elif isinstance(step, ImageMath):
            inputs = [_lookup(images, name, "image", step) for name, _ in step.inputs]
            images[step.output] = image_math(inputs, step)
        elif isinstance(step, GaussianSmooth):
            image = _lookup(images, step.input, "image", step)
            shape = region.image_shape if region is not None else None
            images[step.output] = smooth_gaussian(image, step.diameter, shape)
        elif isinstance(step, IdentifyPrimary):
            image = _lookup(images, step.input, "image", step)
            objects[step.output] = identify_primary_objects(image, step, region, index)
        elif isinstance(step, FilterByMeasurement):
            source = _lookup(objects, step.input, "objects", step)
            objects[step.output] = filter_by_area(source, step.min_area, step.max_area)
        elif isinstance(step, IdentifySecondary):
            image = _lookup(images, step.image, "image", step)
            primary = _lookup(objects, step.input_objects, "objects", step)
            cells = identify_secondary_objects(image, primary, step, region, index)
            objects[step.output] = Objects(cells, cells, order=primary.order)
        elif isinstance(step, ResizeObjects):
            source = _lookup(objects, step.input, "objects", step)
            resized = resize_labels(source.segmented, step.factor, step.size)
            objects[step.output] = Objects(segmented=resized, unedited=resized)
        elif isinstance(step, ObjectsToImage):
            label_images[step.output] = _lookup(objects, step.input, "objects", step).segmented
        elif isinstance(step, SaveMask):
            space.saved = _lookup(label_images, step.image, "label image", step)
        else:
            raise TypeError(f"unknown step {step!r}")
    return space
