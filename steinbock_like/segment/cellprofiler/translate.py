"""Map a CellProfiler pipeline (any ``.cppipe`` using the supported modules) to native steps.

:func:`native_steps` reads each module's settings as CellProfiler 4.2 interprets them (basic
or advanced mode) and returns the steps :func:`steinbock_like.segment.cellprofiler.native.run_steps`
runs; a module or setting the native backend does not implement is an error naming it.
"""

from __future__ import annotations

from collections.abc import Sequence

from steinbock_like.errors import SteinbockLikeError
from steinbock_like.io.cppipe import PipelineModule, read_pipeline
from steinbock_like.segment.cellprofiler import native

# Modules that only describe the input files or compute measurements nothing here uses.
INPUT_MODULES = ("Images", "Metadata", "Groups")
NO_OP_MODULES = ("MeasureObjectSizeShape",)
NATIVE_MODULES = (
    *INPUT_MODULES,
    *NO_OP_MODULES,
    "NamesAndTypes",
    "ColorToGray",
    "ImageMath",
    "Smooth",
    "IdentifyPrimaryObjects",
    "FilterObjects",
    "IdentifySecondaryObjects",
    "ResizeObjects",
    "ConvertObjectsToImage",
    "SaveImages",
)


def _yes(value: str) -> bool:
    return value.strip() == "Yes"


def _pair(value: str) -> tuple[float, float]:
    low, high = (float(part) for part in value.split(","))
    return low, high


def _unsupported(module: PipelineModule, what: str) -> SteinbockLikeError:
    return SteinbockLikeError(
        f"pipeline {module.describe()}: {what} is not supported by the native backend "
        "(use --backend cellprofiler)"
    )


def _invalid(module: PipelineModule, what: str) -> SteinbockLikeError:
    return SteinbockLikeError(f"pipeline {module.describe()}: {what}")


def _number(
    module: PipelineModule,
    label: str,
    value: float,
    *,
    minimum: float | None = None,
    above: float | None = None,
) -> float:
    """``value`` of setting ``label``, refused unless finite and within the bounds."""
    import math

    if not math.isfinite(value):
        raise _invalid(module, f"setting {label!r} is {value}, not a finite number")
    if minimum is not None and value < minimum:
        raise _invalid(module, f"setting {label!r} is {value:g}; it must be at least {minimum:g}")
    if above is not None and value <= above:
        raise _invalid(module, f"setting {label!r} is {value:g}; it must be above {above:g}")
    return value


def _threshold_params(module: PipelineModule, *, basic: bool) -> native.ThresholdParams:
    """The threshold CellProfiler really applies for a module's Threshold settings group.

    In basic mode (IdentifyPrimaryObjects "Use advanced settings? No") CellProfiler ignores
    the written strategy, method (except Manual), smoothing scale and log transform: it uses
    a global Minimum Cross-Entropy threshold and a fixed smoothing sigma of 1. The correction
    factor and bounds apply in both modes.
    """
    method = module.get("Thresholding method")
    strategy = module.get("Threshold strategy")
    low, high = _pair(module.get("Lower and upper bounds on threshold"))
    factor = float(module.get("Threshold correction factor"))
    scale = float(module.get("Threshold smoothing scale"))
    if method == "Measurement":
        raise _unsupported(module, "thresholding by a measurement")
    if basic:
        if method != native.THRESHOLD_MANUAL:
            method = native.THRESHOLD_LI
        return native.ThresholdParams(
            method=method,
            smoothing_sigma=1.0,
            correction_factor=factor,
            lower_bound=low,
            upper_bound=high,
            manual_threshold=float(module.get("Manual threshold", default="0")),
        )
    if strategy != "Global" and method != native.THRESHOLD_MANUAL:
        raise _unsupported(module, f"threshold strategy {strategy!r}")
    if method not in (native.THRESHOLD_LI, native.THRESHOLD_OTSU, native.THRESHOLD_MANUAL):
        raise _unsupported(module, f"thresholding method {method!r}")
    three_class = None
    if method == native.THRESHOLD_OTSU and module.get(
        "Two-class or three-class thresholding?", default="Two classes"
    ).startswith("Three"):
        three_class = (
            module.get(
                "Assign pixels in the middle intensity class to the foreground or the background?",
                default="Foreground",
            )
            == "Foreground"
        )
    return native.ThresholdParams(
        method=method,
        smoothing_sigma=scale / 0.6744 / 2.0 if scale != 0 else 0.0,
        correction_factor=factor,
        lower_bound=low,
        upper_bound=high,
        manual_threshold=float(module.get("Manual threshold", default="0")),
        log_transform=method != native.THRESHOLD_MANUAL
        and _yes(module.get("Log transform before thresholding?", default="No")),
        three_class_foreground=three_class,
    )


def _identify_primary(module: PipelineModule) -> native.IdentifyPrimary:
    """Resolve IdentifyPrimaryObjects' settings as CellProfiler 4.2 applies them.

    Basic mode: declump and divide by Intensity, fill holes after thresholding and after
    declumping, suppression distance min diameter / 1.5 (or 7 on a 10 / min down-sampled
    image when min > 10), threshold as in :func:`_threshold_params`. The declumping smoothing
    filter size and its "automatic" switch are honoured in both modes.
    """
    basic = not _yes(module.get("Use advanced settings?"))
    diameter_label = "Typical diameter of objects, in pixel units (Min,Max)"
    low, high = _pair(module.get(diameter_label))
    _number(module, diameter_label, low, minimum=0)
    _number(module, diameter_label, high, minimum=max(low, 1))
    declump_method = module.get("Method to distinguish clumped objects")
    dividing_method = module.get("Method to draw dividing lines between clumped objects")
    fill_holes = module.get("Fill holes in identified objects?")
    if basic:
        declump_method = native.DECLUMP_INTENSITY
        dividing_method = native.DIVIDE_INTENSITY
    if declump_method not in (native.DECLUMP_INTENSITY, native.DECLUMP_SHAPE, native.DECLUMP_NONE):
        raise _unsupported(module, f"declumping method {declump_method!r}")
    if _yes(module.get("Automatically calculate size of smoothing filter for declumping?")):
        smoothing_size = 2.35 * low / 3.5
    else:
        smoothing_size = _number(
            module,
            "Size of smoothing filter",
            float(module.get("Size of smoothing filter")),
            minimum=0,
        )
    automatic_suppression = basic or _yes(
        module.get("Automatically calculate minimum allowed distance between local maxima?")
    )
    low_res = basic or _yes(
        module.get("Speed up by using lower-resolution image to find local maxima?")
    )
    suppression_label = "Suppress local maxima that are closer than this minimum allowed distance"
    written_suppression = _number(
        module, suppression_label, float(module.get(suppression_label)), minimum=0
    )
    if low > 10 and low_res:
        resize_factor = 10.0 / low
        suppression = 7 if automatic_suppression else written_suppression * resize_factor + 0.5
    else:
        resize_factor = 1.0
        suppression = low / 1.5 if automatic_suppression else written_suppression
    erase_above = None
    if not basic and module.get(
        "Handling of objects if excessive number of objects identified"
    ) == ("Erase"):
        erase_above = int(
            _number(
                module,
                "Maximum number of objects",
                float(module.get("Maximum number of objects")),
                minimum=0,
            )
        )
    return native.IdentifyPrimary(
        input=module.get("Select the input image"),
        output=module.get("Name the primary objects to be identified"),
        min_diameter=low,
        max_diameter=high,
        threshold=_threshold_params(module, basic=basic),
        exclude_size=_yes(module.get("Discard objects outside the diameter range?")),
        exclude_border=_yes(module.get("Discard objects touching the border of the image?")),
        declump_method=declump_method,
        dividing_method=dividing_method,
        declump_smoothing_size=smoothing_size,
        maxima_suppression_size=suppression,
        maxima_resize_factor=resize_factor,
        fill_holes_after_threshold=basic or fill_holes == "After both thresholding and declumping",
        fill_holes_after_declump=basic or fill_holes != "Never",
        erase_above_count=erase_above,
    )


def _names_and_types(module: PipelineModule) -> native.LoadImage:
    if module.get("Assign a name to") != "All images":
        raise _unsupported(module, "assigning names by rules (several input images)")
    if module.get("Select the image type") not in ("Color image", "Grayscale image"):
        raise _unsupported(module, f"image type {module.get('Select the image type')!r}")
    intensity_max = None
    if module.get("Set intensity range from") != "Image bit-depth":
        intensity_max = float(module.get("Maximum intensity"))
    return native.LoadImage(module.get("Name to assign these images"), intensity_max)


def _color_to_gray(module: PipelineModule) -> native.SplitChannels:
    if module.get("Conversion method") != "Split":
        raise _unsupported(module, f"conversion method {module.get('Conversion method')!r}")
    image_type = module.get("Image type")
    if image_type == "Channels":
        channels = [
            int(_number(module, "Channel number", float(value), minimum=1)) - 1
            for value in module.values("Channel number")
        ]
        names = module.values("Image name")
        outputs = tuple(zip(channels, names, strict=False))
    elif image_type == "RGB":
        output_names = module.values("Name the output image")  # [gray, red, green, blue, ...]
        outputs = tuple(
            (index, output_names[index + 1])
            for index, color in enumerate(("red", "green", "blue"))
            if _yes(module.get(f"Convert {color} to gray?"))
        )
    else:
        raise _unsupported(module, f"image type {image_type!r}")
    return native.SplitChannels(module.get("Select the input image"), outputs)


def _image_math(module: PipelineModule) -> native.ImageMath:
    operation = module.get("Operation")
    if operation not in ("Add", "Subtract", "Multiply", "Average"):
        raise _unsupported(module, f"operation {operation!r}")
    kinds = module.values("Image or measurement?")
    if any(kind != "Image" for kind in kinds):
        raise _unsupported(module, "measurements as operands")
    names = [
        value
        for label, value in module.settings
        if label.startswith("Select the ") and label.endswith(" image")
    ]
    factors = [
        _number(module, label, float(value))
        for label, value in module.settings
        if label.startswith("Multiply the ") and label.endswith(" image by")
    ]
    return native.ImageMath(
        operation=operation,
        inputs=tuple(zip(names, factors, strict=True)),
        output=module.get("Name the output image"),
        exponent=float(module.get("Raise the power of the result by")),
        after_factor=float(module.get("Multiply the result by")),
        addend=float(module.get("Add to result")),
        truncate_low=_yes(module.get("Set values less than 0 equal to 0?")),
        truncate_high=_yes(module.get("Set values greater than 1 equal to 1?")),
        replace_nan=_yes(module.get("Replace invalid values with 0?")),
    )


def _smooth(module: PipelineModule) -> native.GaussianSmooth:
    method = module.get("Select smoothing method")
    if method != "Gaussian Filter":
        raise _unsupported(module, f"smoothing method {method!r}")
    automatic = _yes(module.get("Calculate artifact diameter automatically?"))
    return native.GaussianSmooth(
        input=module.get("Select the input image"),
        output=module.get("Name the output image"),
        diameter=None
        if automatic
        else _number(
            module,
            "Typical artifact diameter",
            float(module.get("Typical artifact diameter")),
            above=0,
        ),
    )


def _filter_objects(module: PipelineModule) -> native.FilterByMeasurement:
    if module.get("Select the filtering mode") != "Measurements":
        raise _unsupported(module, f"filtering mode {module.get('Select the filtering mode')!r}")
    if module.get("Select the filtering method") != "Limits":
        raise _unsupported(
            module, f"filtering method {module.get('Select the filtering method')!r}"
        )
    measurements = module.values("Select the measurement to filter by")
    if measurements != ["AreaShape_Area"]:
        raise _unsupported(module, f"filtering by {', '.join(measurements)}")
    if int(module.get("Additional object count", default="0")) > 0:
        raise _unsupported(module, "relabelling additional objects")
    minimum = _number(module, "Minimum value", float(module.get("Minimum value")))
    maximum = _number(module, "Maximum value", float(module.get("Maximum value")))
    return native.FilterByMeasurement(
        input=module.get("Select the objects to filter"),
        output=module.get("Name the output objects"),
        min_area=minimum if _yes(module.get("Filter using a minimum measurement value?")) else None,
        max_area=maximum if _yes(module.get("Filter using a maximum measurement value?")) else None,
    )


def _identify_secondary(module: PipelineModule) -> native.IdentifySecondary:
    method = module.get("Select the method to identify the secondary objects")
    if method != "Propagation":
        raise _unsupported(module, f"method {method!r}")
    return native.IdentifySecondary(
        input_objects=module.get("Select the input objects"),
        output=module.get("Name the objects to be identified"),
        image=module.get("Select the input image"),
        threshold=_threshold_params(module, basic=False),
        regularization=_number(
            module,
            "Regularization factor",
            float(module.get("Regularization factor")),
            minimum=0,
        ),
        fill_holes=_yes(module.get("Fill holes in identified objects?")),
        discard_edge=_yes(
            module.get("Discard secondary objects touching the border of the image?")
        ),
    )


def _resize_objects(module: PipelineModule) -> native.ResizeObjects:
    method = module.get("Method")
    common = {
        "input": module.get("Select the input object"),
        "output": module.get("Name the output object"),
    }
    if method == "Factor":
        labels = ("Factor", "Factor") if module.revision <= 2 else ("Y Factor", "X Factor")
        factor = tuple(
            _number(module, label, float(module.get(label)), above=0) for label in labels
        )
        return native.ResizeObjects(**common, factor=factor)
    if method == "Dimensions":
        labels = ("Height (Y)", "Width (X)") if module.revision >= 3 else ("Height", "Width")
        size = tuple(
            int(_number(module, label, float(module.get(label)), minimum=1)) for label in labels
        )
        return native.ResizeObjects(**common, size=size)
    raise _unsupported(module, f"resizing method {method!r}")


def _convert_objects(module: PipelineModule) -> native.ObjectsToImage:
    color_format = module.get("Select the color format")
    if color_format not in ("uint16", "Grayscale"):
        raise _unsupported(module, f"color format {color_format!r}")
    return native.ObjectsToImage(
        module.get("Select the input objects"), module.get("Name the output image")
    )


def _save_images(module: PipelineModule) -> native.SaveMask:
    if module.get("Select the type of image to save") != "Image":
        raise _unsupported(module, "saving anything but an image")
    return native.SaveMask(module.get("Select the image to save"))


_STEP_READERS = {
    "NamesAndTypes": _names_and_types,
    "ColorToGray": _color_to_gray,
    "ImageMath": _image_math,
    "Smooth": _smooth,
    "IdentifyPrimaryObjects": _identify_primary,
    "FilterObjects": _filter_objects,
    "IdentifySecondaryObjects": _identify_secondary,
    "ResizeObjects": _resize_objects,
    "ConvertObjectsToImage": _convert_objects,
    "SaveImages": _save_images,
}


def native_steps(modules: Sequence[PipelineModule] | str) -> list[native.Step]:
    """The native backend's steps for a pipeline, honouring its (possibly edited) settings.

    Parameters
    ----------
    modules : list of PipelineModule or str
        A parsed pipeline, or pipeline text.

    Returns
    -------
    list of steps
        For :func:`steinbock_like.segment.cellprofiler.native.run_steps`.

    Raises
    ------
    SteinbockLikeError
        Naming every enabled module the native backend does not support, or the first
        unsupported setting of a supported module.
    """
    if isinstance(modules, str):
        modules = read_pipeline(modules)
    enabled = [module for module in modules if module.enabled]
    unknown = [m for m in enabled if m.name not in NATIVE_MODULES]
    if unknown:
        names = ", ".join(module.describe() for module in unknown)
        raise SteinbockLikeError(
            f"the native backend does not support pipeline {names} "
            "(use --backend cellprofiler, or remove the module)"
        )
    steps: list[native.Step] = []
    for module in enabled:
        reader = _STEP_READERS.get(module.name)
        if reader is None:
            continue
        try:
            steps.append(reader(module))
        except (ValueError, IndexError) as error:
            raise SteinbockLikeError(
                f"pipeline {module.describe()}: cannot read its settings ({error})"
            ) from None
    if not any(isinstance(step, native.SaveMask) for step in steps):
        raise SteinbockLikeError("the pipeline has no SaveImages module saving the cell mask")
    return steps


def expected_mask_shape(
    probabilities_shape: Sequence[int], modules: Sequence[PipelineModule] | str
) -> tuple[int, int] | None:
    """The (Y, X) shape of the mask a pipeline should make from probabilities of this shape.

    The probabilities' shape scaled by the pipeline's ResizeObjects (by factor, rounded
    as ``scipy.ndimage.zoom`` rounds, or to its dimensions). None when the pipeline has
    more than one ResizeObjects (which objects are saved is not followed here).

    Raises
    ------
    SteinbockLikeError
        For a ResizeObjects setting that makes no sense (see :func:`native_steps`).
    """
    if isinstance(modules, str):
        modules = read_pipeline(modules)
    resizes = [m for m in modules if m.enabled and m.name == "ResizeObjects"]
    height, width = (int(n) for n in probabilities_shape[:2])
    if not resizes:
        return height, width
    if len(resizes) > 1:
        return None
    try:
        step = _resize_objects(resizes[0])
    except (ValueError, IndexError) as error:
        raise SteinbockLikeError(
            f"pipeline {resizes[0].describe()}: cannot read its settings ({error})"
        ) from None
    if step.size is not None:
        return step.size
    return round(height * step.factor[0]), round(width * step.factor[1])


def check_mask_shape(mask_shape: Sequence[int], expected: tuple[int, int] | None, source) -> None:
    """Refuse a mask whose shape is empty or not the one the pipeline should make.

    Raises
    ------
    SteinbockLikeError
        Naming ``source`` (the probability image), the shape made and the one expected.
    """
    shape = tuple(int(n) for n in mask_shape)
    if len(shape) != 2 or min(shape) < 1 or (expected is not None and shape != tuple(expected)):
        raise SteinbockLikeError(
            f"{source}: the pipeline made a mask of shape {shape}, expected {expected} "
            "(the probabilities' shape scaled by its ResizeObjects); nothing written"
        )
