"""CellProfiler 4.2 pipeline files (.cppipe): write our own, read any, and map to native steps.

The text format (CellProfiler pipeline "Version:5") is a header of ``key:value`` lines followed
by one block per module::

    ModuleName:[module_num:1|svn_version:'Unknown'|variable_revision_number:N|...|enabled:True|...]
        Setting label:value
        ...

CellProfiler matches a module's settings by *position* for its revision number; the labels
are for people. This module therefore writes the settings in CellProfiler 4.2.8's order, and
reads them as an ordered list of (label, value) pairs looked up by label (labels that repeat,
such as ColorToGray's "Name the output image", are looked up by occurrence).

The pipeline written by :func:`write_pipeline` uses IdentifyPrimaryObjects' *advanced*
settings, spelling out what CellProfiler does: in basic mode CellProfiler ignores the written
declumping method, threshold smoothing and maxima suppression distance (see
:func:`native_steps`), which made steinbock's pipeline text misleading.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence

from steinbock_like.errors import SteinbockLikeError
from steinbock_like.segment.cellprofiler import native

PIPELINE_HEADER = "CellProfiler Pipeline: http://www.cellprofiler.org"
PIPELINE_VERSION = 5
DATE_REVISION = 428

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

# Names used in the pipeline we write.
PROBABILITIES = "Probabilities"
NUCLEUS = "NucleusProbability"
CYTOPLASM = "CytoplasmProbability"
BACKGROUND = "BackgroundProbability"
NUCLEUS_PLUS_CYTOPLASM = "NucleusPlusCytoplasmProbability"
SMOOTH_NUCLEUS = "SmoothedNucleusProbability"
NUCLEI = "ScaledNuclei"
FILTERED_NUCLEI = "FilteredScaledNuclei"
SCALED_CELLS = "ScaledCells"
CELLS = "Cells"
CELL_MASK = "CellMask"

# Threshold smoothing scale whose sigma is exactly 1 (sigma = scale / 0.6744 / 2): what basic
# mode uses for IdentifyPrimaryObjects, and what steinbock asked for in IdentifySecondaryObjects.
UNIT_SIGMA_SMOOTHING_SCALE = 1.3488


# --------------------------------------------------------------------------------------------
# Settings of the pipeline we write
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class PipelineSettings:
    """What ``segment cellprofiler prepare`` can change in the written pipeline.

    Attributes
    ----------
    scale : float
        How much the probabilities were up-scaled by ``classify ilastik prepare`` (2 by
        default); the cell masks are resized by ``1 / scale`` to the original image size.
    nucleus_diameter : (float, float)
        Nucleus diameter range in pixels at the probabilities' scale.
    threshold_factor : float
        Correction factor for the nucleus threshold.
    nucleus_smoothing_diameter : float
        Artifact diameter of the Gaussian smoothing of the nucleus probability.
    min_nucleus_area : float
        Nuclei smaller than this many pixels (at the probabilities' scale) are dropped.
    declump_method, dividing_method : str
        How touching nuclei are split. "Intensity"/"Intensity" is what steinbock's pipeline
        really did (basic mode), whatever its text said.
    cell_threshold_smoothing_scale : float
        Threshold smoothing scale of the cell (nucleus + cytoplasm) threshold.
    cell_threshold_factor : float
        Correction factor of the cell threshold.
    regularization : float
        Propagation's regularization factor.
    nucleus_channel, cytoplasm_channel, background_channel : int
        One-based channels of the probability image.
    """

    scale: float = 2.0
    nucleus_diameter: tuple[float, float] = (7, 25)
    threshold_factor: float = 1.2
    nucleus_smoothing_diameter: float = 4
    min_nucleus_area: float = 5
    declump_method: str = native.DECLUMP_INTENSITY
    dividing_method: str = native.DIVIDE_INTENSITY
    cell_threshold_smoothing_scale: float = UNIT_SIGMA_SMOOTHING_SCALE
    cell_threshold_factor: float = 1.0
    regularization: float = 0.05
    nucleus_channel: int = 1
    cytoplasm_channel: int = 2
    background_channel: int = 3

    def __post_init__(self):
        low, high = self.nucleus_diameter
        if not 0 < low <= high:
            raise SteinbockLikeError(
                f"nucleus diameter range must satisfy 0 < min <= max, got {low},{high}"
            )
        if not self.scale > 0:
            raise SteinbockLikeError(f"scale must be positive, got {self.scale}")
        if not self.threshold_factor > 0:
            raise SteinbockLikeError(
                f"threshold factor must be positive, got {self.threshold_factor}"
            )


@dataclasses.dataclass
class PipelineModule:
    """One module block of a .cppipe file.

    Attributes
    ----------
    name : str
        CellProfiler's module name, e.g. "IdentifyPrimaryObjects".
    number : int
        ``module_num`` (1-based position).
    revision : int
        ``variable_revision_number``: the layout of the settings.
    enabled : bool
    settings : list of (label, value)
        In file order.
    notes : list of str
    """

    name: str
    number: int
    revision: int
    enabled: bool = True
    settings: list[tuple[str, str]] = dataclasses.field(default_factory=list)
    notes: list[str] = dataclasses.field(default_factory=list)

    def get(self, label: str, occurrence: int = 0, default: str | None = None) -> str:
        """The value of the ``occurrence``-th setting labelled ``label``."""
        found = [value for key, value in self.settings if key == label]
        if occurrence < len(found):
            return found[occurrence]
        if default is not None:
            return default
        raise SteinbockLikeError(
            f"pipeline module #{self.number} {self.name}: no setting {label!r}"
        )

    def values(self, label: str) -> list[str]:
        """All values of the settings labelled ``label``, in order."""
        return [value for key, value in self.settings if key == label]

    def describe(self) -> str:
        return f"module #{self.number} {self.name}"


# --------------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------------


def _yes_no(flag: bool) -> str:
    return "Yes" if flag else "No"


def _number(value: float) -> str:
    """Integers without a trailing .0, as CellProfiler writes integer-valued settings."""
    value = float(value)
    return str(int(value)) if value.is_integer() else repr(value)


def _threshold_settings(
    method: str, smoothing_scale: float, factor: float, adaptive_window: int
) -> list[tuple[str, str]]:
    # The Threshold settings group (setting version 12), in CellProfiler 4.2.8's order.
    return [
        ("Threshold setting version", "12"),
        ("Threshold strategy", "Global"),
        ("Thresholding method", method),
        ("Threshold smoothing scale", _number(smoothing_scale)),
        ("Threshold correction factor", _number(factor)),
        ("Lower and upper bounds on threshold", "0.0,1.0"),
        ("Manual threshold", "0.0"),
        ("Select the measurement to threshold with", "None"),
        ("Two-class or three-class thresholding?", "Two classes"),
        ("Log transform before thresholding?", "No"),
        ("Assign pixels in the middle intensity class to the foreground or the background?",
         "Foreground"),
        ("Size of adaptive window", str(adaptive_window)),
        ("Lower outlier fraction", "0.05"),
        ("Upper outlier fraction", "0.05"),
        ("Averaging method", "Mean"),
        ("Variance method", "Standard deviation"),
        ("# of deviations", "2"),
        ("Thresholding method", "Otsu"),
    ]  # fmt: skip


def _pipeline_modules(settings: PipelineSettings) -> list[PipelineModule]:
    """The modules of our pipeline, settings in CellProfiler 4.2.8's order per revision."""
    low, high = settings.nucleus_diameter
    resize_factor = _number(1.0 / settings.scale)
    split_outputs = [
        (settings.nucleus_channel, NUCLEUS),
        (settings.cytoplasm_channel, CYTOPLASM),
        (settings.background_channel, BACKGROUND),
    ]
    color_to_gray = [
        ("Select the input image", PROBABILITIES),
        ("Conversion method", "Split"),
        ("Image type", "Channels"),
        ("Name the output image", "ProbabilitiesGray"),
        ("Relative weight of the red channel", "1.0"),
        ("Relative weight of the green channel", "1.0"),
        ("Relative weight of the blue channel", "1.0"),
        ("Convert red to gray?", "Yes"),
        ("Name the output image", "ProbabilitiesRed"),
        ("Convert green to gray?", "Yes"),
        ("Name the output image", "ProbabilitiesGreen"),
        ("Convert blue to gray?", "Yes"),
        ("Name the output image", "ProbabilitiesBlue"),
        ("Convert hue to gray?", "Yes"),
        ("Name the output image", "ProbabilitiesHue"),
        ("Convert saturation to gray?", "Yes"),
        ("Name the output image", "ProbabilitiesSaturation"),
        ("Convert value to gray?", "Yes"),
        ("Name the output image", "ProbabilitiesValue"),
        ("Channel count", str(len(split_outputs))),
    ]
    for channel, name in split_outputs:
        color_to_gray += [
            ("Channel number", str(channel)),
            ("Relative weight of the channel", "1.0"),
            ("Image name", name),
        ]

    modules = [
        PipelineModule("Images", 0, 2, settings=[
            (":", ""),
            ("Filter images?", "Images only"),
            ("Select the rule criteria",
             'and (extension does isimage) (directory doesnot containregexp "[\\\\/]\\.")'),
        ]),
        PipelineModule("Metadata", 0, 6, settings=[
            ("Extract metadata?", "No"),
            ("Metadata data type", "Text"),
            ("Metadata types", "{}"),
            ("Extraction method count", "1"),
            ("Metadata extraction method", "Extract from file/folder names"),
            ("Metadata source", "File name"),
            ("Regular expression to extract from file name", "^(?P<Image>.*)$"),
            ("Regular expression to extract from folder name", "(?P<Folder>.*)$"),
            ("Extract metadata from", "All images"),
            ("Select the filtering criteria", 'and (file does contain "")'),
            ("Metadata file location", "Elsewhere...|"),
            ("Match file and image metadata", "[]"),
            ("Use case insensitive matching?", "No"),
            ("Metadata file name", ""),
            ("Does cached metadata exist?", "No"),
        ], notes=["No metadata: each probability image is segmented on its own."]),
        PipelineModule("NamesAndTypes", 0, 8, settings=[
            ("Assign a name to", "All images"),
            ("Select the image type", "Color image"),
            ("Name to assign these images", PROBABILITIES),
            ("Match metadata", "[]"),
            ("Image set matching method", "Order"),
            ("Set intensity range from", "Image bit-depth"),
            ("Assignments count", "1"),
            ("Single images count", "0"),
            ("Maximum intensity", "65535.0"),
            ("Process as 3D?", "No"),
            ("Relative pixel spacing in X", "1.0"),
            ("Relative pixel spacing in Y", "1.0"),
            ("Relative pixel spacing in Z", "1.0"),
            ("Select the rule criteria", 'and (file does contain "")'),
            ("Name to assign these images", PROBABILITIES),
            ("Name to assign these objects", "Objects"),
            ("Select the image type", "Color image"),
            ("Set intensity range from", "Image bit-depth"),
            ("Maximum intensity", "65535.0"),
        ], notes=["16-bit probabilities (one channel per class) scaled to 0..1."]),
        PipelineModule("Groups", 0, 2, settings=[
            ("Do you want to group your images?", "No"),
            ("grouping metadata count", "1"),
            ("Metadata category", "None"),
        ]),
        PipelineModule("ColorToGray", 0, 4, settings=color_to_gray,
                       notes=["One gray image per class probability."]),
        PipelineModule("ImageMath", 0, 5, settings=[
            ("Operation", "Add"),
            ("Raise the power of the result by", "1.0"),
            ("Multiply the result by", "1.0"),
            ("Add to result", "0.0"),
            ("Set values less than 0 equal to 0?", "Yes"),
            ("Set values greater than 1 equal to 1?", "Yes"),
            ("Replace invalid values with 0?", "Yes"),
            ("Ignore the image masks?", "No"),
            ("Name the output image", NUCLEUS_PLUS_CYTOPLASM),
            ("Image or measurement?", "Image"),
            ("Select the image", NUCLEUS),
            ("Multiply the image by", "1.0"),
            ("Measurement", ""),
            ("Image or measurement?", "Image"),
            ("Select the image", CYTOPLASM),
            ("Multiply the image by", "1.0"),
            ("Measurement", ""),
        ], notes=["Cell probability: nucleus plus cytoplasm."]),
        PipelineModule("Smooth", 0, 2, settings=[
            ("Select the input image", NUCLEUS),
            ("Name the output image", SMOOTH_NUCLEUS),
            ("Select smoothing method", "Gaussian Filter"),
            ("Calculate artifact diameter automatically?", "No"),
            ("Typical artifact diameter", _number(settings.nucleus_smoothing_diameter)),
            ("Edge intensity difference", "0.1"),
            ("Clip intensities to 0 and 1?", "Yes"),
        ]),
        PipelineModule("IdentifyPrimaryObjects", 0, 15, settings=[
            ("Select the input image", SMOOTH_NUCLEUS),
            ("Name the primary objects to be identified", NUCLEI),
            ("Typical diameter of objects, in pixel units (Min,Max)",
             f"{_number(low)},{_number(high)}"),
            ("Discard objects outside the diameter range?", "No"),
            ("Discard objects touching the border of the image?", "No"),
            ("Method to distinguish clumped objects", settings.declump_method),
            ("Method to draw dividing lines between clumped objects", settings.dividing_method),
            ("Size of smoothing filter", "1"),
            ("Suppress local maxima that are closer than this minimum allowed distance",
             _number(low / 1.5) if low <= 10 else "7.0"),
            ("Speed up by using lower-resolution image to find local maxima?", "Yes"),
            ("Fill holes in identified objects?", "After both thresholding and declumping"),
            ("Automatically calculate size of smoothing filter for declumping?", "No"),
            ("Automatically calculate minimum allowed distance between local maxima?", "Yes"),
            ("Handling of objects if excessive number of objects identified", "Continue"),
            ("Maximum number of objects", "500"),
            ("Use advanced settings?", "Yes"),
            *_threshold_settings(
                native.THRESHOLD_LI, UNIT_SIGMA_SMOOTHING_SCALE, settings.threshold_factor, 50
            ),
        ], notes=["Nuclei: Minimum Cross-Entropy threshold, smoothing sigma 1."]),
        PipelineModule("MeasureObjectSizeShape", 0, 3, settings=[
            ("Select object sets to measure", NUCLEI),
            ("Calculate the Zernike features?", "No"),
            ("Calculate the advanced features?", "No"),
        ]),
        PipelineModule("FilterObjects", 0, 10, settings=[
            ("Select the objects to filter", NUCLEI),
            ("Name the output objects", FILTERED_NUCLEI),
            ("Select the filtering mode", "Measurements"),
            ("Select the filtering method", "Limits"),
            ("Select the objects that contain the filtered objects", "None"),
            ("Select the location of the rules or classifier file", "Elsewhere...|"),
            ("Rules or classifier file name", "rules.txt"),
            ("Class number", "1"),
            ("Measurement count", "1"),
            ("Additional object count", "0"),
            ("Assign overlapping child to", "Both parents"),
            ("Keep removed objects as a separate set?", "No"),
            ("Name the objects removed by the filter", "RemovedObjects"),
            ("Select the measurement to filter by", "AreaShape_Area"),
            ("Filter using a minimum measurement value?", "Yes"),
            ("Minimum value", _number(settings.min_nucleus_area)),
            ("Filter using a maximum measurement value?", "No"),
            ("Maximum value", "1.0"),
            ("Allow fuzzy feature matching?", "No"),
        ], notes=["Drop tiny nuclei."]),
        PipelineModule("IdentifySecondaryObjects", 0, 10, settings=[
            ("Select the input objects", FILTERED_NUCLEI),
            ("Name the objects to be identified", SCALED_CELLS),
            ("Select the method to identify the secondary objects", "Propagation"),
            ("Select the input image", NUCLEUS_PLUS_CYTOPLASM),
            ("Number of pixels by which to expand the primary objects", "10"),
            ("Regularization factor", _number(settings.regularization)),
            ("Discard secondary objects touching the border of the image?", "No"),
            ("Discard the associated primary objects?", "No"),
            ("Name the new primary objects", "FilteredNuclei"),
            ("Fill holes in identified objects?", "Yes"),
            *_threshold_settings(
                native.THRESHOLD_LI,
                settings.cell_threshold_smoothing_scale,
                settings.cell_threshold_factor,
                10,
            ),
        ], notes=["Cells: propagation from the nuclei on the nucleus + cytoplasm probability."]),
        PipelineModule("ResizeObjects", 0, 3, settings=[
            ("Select the input object", SCALED_CELLS),
            ("Name the output object", CELLS),
            ("Method", "Factor"),
            ("X Factor", resize_factor),
            ("Y Factor", resize_factor),
            ("Z Factor", "1.0"),
            ("Width (X)", "100"),
            ("Height (Y)", "100"),
            ("Planes (Z)", "10"),
            ("Select the image with the desired dimensions", "None"),
        ], notes=["Back to the original image size."]),
        PipelineModule("ConvertObjectsToImage", 0, 1, settings=[
            ("Select the input objects", CELLS),
            ("Name the output image", CELL_MASK),
            ("Select the color format", "uint16"),
            ("Select the colormap", "Default"),
        ]),
        PipelineModule("SaveImages", 0, 16, settings=[
            ("Select the type of image to save", "Image"),
            ("Select the image to save", CELL_MASK),
            ("Select method for constructing file names", "From image filename"),
            ("Select image name for file prefix", PROBABILITIES),
            ("Enter single file name", "CellMask"),
            ("Number of digits", "4"),
            ("Append a suffix to the image file name?", "No"),
            ("Text to append to the image name", ""),
            ("Saved file format", "tiff"),
            ("Output file location", "Default Output Folder|"),
            ("Image bit depth", "16-bit integer"),
            ("Overwrite existing files without warning?", "Yes"),
            ("When to save", "Every cycle"),
            ("Record the file and path information to the saved image?", "No"),
            ("Create subfolders in the output folder?", "No"),
            ("Base image folder", "Elsewhere...|"),
            ("How to save the series", "T (Time)"),
            ("Save with lossless compression?", "No"),
        ], notes=["16-bit cell mask named after the probability image."]),
    ]  # fmt: skip
    for number, module in enumerate(modules, start=1):
        module.number = number
    return modules


def _module_header(module: PipelineModule) -> str:
    notes = "[" + ", ".join(repr(note) for note in module.notes) + "]"
    return (
        f"{module.name}:[module_num:{module.number}|svn_version:'Unknown'|"
        f"variable_revision_number:{module.revision}|show_window:False|notes:{notes}|"
        f"batch_state:array([], dtype=uint8)|enabled:{module.enabled}|wants_pause:False]"
    )


def format_pipeline(modules: Sequence[PipelineModule]) -> str:
    """Serialise modules as CellProfiler 4.2 pipeline text."""
    lines = [
        PIPELINE_HEADER,
        f"Version:{PIPELINE_VERSION}",
        f"DateRevision:{DATE_REVISION}",
        "GitHash:",
        f"ModuleCount:{len(modules)}",
        "HasImagePlaneDetails:False",
    ]
    for module in modules:
        lines.append("")
        lines.append(_module_header(module))
        for label, value in module.settings:
            # The Images module's first setting is a bare ":" (an empty label and value).
            lines.append(f"    {label}" if label == ":" else f"    {label}:{value}")
    return "\n".join(lines) + "\n"


def write_pipeline(settings: PipelineSettings | None = None) -> str:
    """Our CellProfiler 4.2 segmentation pipeline as text.

    Probabilities (Nucleus, Cytoplasm, Background; 16-bit) -> nuclei by a Minimum
    Cross-Entropy threshold of the smoothed nucleus probability, split by intensity ->
    nuclei smaller than ``min_nucleus_area`` dropped -> cells by propagation on
    nucleus + cytoplasm -> resized by ``1 / scale`` -> 16-bit masks named after the input.
    """
    return format_pipeline(_pipeline_modules(settings or PipelineSettings()))


# --------------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------------

_MODULE_HEADER = re.compile(r"^(?P<name>[A-Za-z0-9_]+):\[(?P<attributes>.*)\]\s*$")


def _header_attribute(attributes: str, key: str) -> str | None:
    match = re.search(rf"(?:^|\|){key}:([^|]*)", attributes)
    return match.group(1) if match else None


def read_pipeline(text: str) -> list[PipelineModule]:
    """Parse CellProfiler pipeline text (format version 5, CellProfiler 4.x).

    Returns
    -------
    list of PipelineModule
        In pipeline order, with every setting as (label, value) in file order.

    Raises
    ------
    SteinbockLikeError
        If the text is not a CellProfiler 4 pipeline.
    """
    lines = text.splitlines()
    if not lines or not lines[0].startswith("CellProfiler Pipeline"):
        raise SteinbockLikeError("not a CellProfiler pipeline: the first line should be "
                                 f"{PIPELINE_HEADER!r}")  # fmt: skip
    modules: list[PipelineModule] = []
    version = None
    for line_number, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        if line.startswith((" ", "\t")):
            if not modules:
                raise SteinbockLikeError(f"pipeline line {line_number}: setting before a module")
            label, _, value = line.strip().partition(":")
            modules[-1].settings.append((":" if not label and not value else label, value))
            continue
        match = _MODULE_HEADER.match(line)
        if match and "module_num:" in match.group("attributes"):
            attributes = match.group("attributes")
            revision = _header_attribute(attributes, "variable_revision_number")
            number = _header_attribute(attributes, "module_num")
            enabled = _header_attribute(attributes, "enabled")
            notes = re.findall(r"'((?:[^'\\]|\\.)*)'", _header_attribute(attributes, "notes") or "")
            modules.append(
                PipelineModule(
                    name=match.group("name"),
                    number=int(number) if number else len(modules) + 1,
                    revision=int(revision) if revision else 0,
                    enabled=(enabled or "True").strip() == "True",
                    notes=notes,
                )
            )
            continue
        key, _, value = line.partition(":")
        if key == "Version":
            version = int(value)
    if version is not None and version < 5:
        raise SteinbockLikeError(
            f"pipeline format version {version} is too old: open and save it in CellProfiler 4"
        )
    if not modules:
        raise SteinbockLikeError("the pipeline has no modules")
    return modules


# --------------------------------------------------------------------------------------------
# Native parameters
# --------------------------------------------------------------------------------------------


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
    low, high = _pair(module.get("Typical diameter of objects, in pixel units (Min,Max)"))
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
        smoothing_size = float(module.get("Size of smoothing filter"))
    automatic_suppression = basic or _yes(
        module.get("Automatically calculate minimum allowed distance between local maxima?")
    )
    low_res = basic or _yes(
        module.get("Speed up by using lower-resolution image to find local maxima?")
    )
    written_suppression = float(
        module.get("Suppress local maxima that are closer than this minimum allowed distance")
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
        erase_above = int(float(module.get("Maximum number of objects")))
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
        channels = [int(float(value)) - 1 for value in module.values("Channel number")]
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
        float(value)
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
        diameter=None if automatic else float(module.get("Typical artifact diameter")),
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
    minimum = float(module.get("Minimum value"))
    maximum = float(module.get("Maximum value"))
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
        regularization=float(module.get("Regularization factor")),
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
        if module.revision <= 2:
            factor = float(module.get("Factor"))
            return native.ResizeObjects(**common, factor=(factor, factor))
        return native.ResizeObjects(
            **common, factor=(float(module.get("Y Factor")), float(module.get("X Factor")))
        )
    if method == "Dimensions":
        height = module.get("Height (Y)" if module.revision >= 3 else "Height")
        width = module.get("Width (X)" if module.revision >= 3 else "Width")
        return native.ResizeObjects(**common, size=(int(float(height)), int(float(width))))
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
