"""Our CellProfiler 4.2 segmentation pipeline: a shipped ``.cppipe`` with adjustable settings.

``cell_segmentation.cppipe`` (next to this module) finds nuclei in the Nucleus probability,
grows them into cells over Nucleus + Cytoplasm and resizes the cells to the original image
size. It uses IdentifyPrimaryObjects' *advanced* settings, spelling out what CellProfiler
does: in basic mode CellProfiler ignores the written declumping method, threshold smoothing
and maxima suppression distance, which made steinbock's pipeline text misleading.
:func:`pipeline_text` returns it with the values of :class:`PipelineSettings` filled in.
"""

from __future__ import annotations

import dataclasses
from importlib import resources

from steinbock_like.errors import SteinbockLikeError
from steinbock_like.io.cppipe import PipelineModule, format_pipeline, read_pipeline
from steinbock_like.segment.cellprofiler import native

TEMPLATE = "cell_segmentation.cppipe"

#: CellProfiler's default threshold smoothing scale (sigma 1 of its Gaussian).
UNIT_SIGMA_SMOOTHING_SCALE = 1.3488


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


def _number(value: float) -> str:
    """Integers without a trailing .0, as CellProfiler writes integer-valued settings."""
    value = float(value)
    return str(int(value)) if value.is_integer() else repr(value)


def template_modules() -> list[PipelineModule]:
    """The modules of the shipped pipeline, with its default settings."""
    text = resources.files(__package__).joinpath(TEMPLATE).read_text(encoding="utf-8")
    return read_pipeline(text)


def pipeline_text(settings: PipelineSettings | None = None) -> str:
    """Our CellProfiler 4.2 segmentation pipeline as text, with ``settings`` filled in.

    Probabilities (Nucleus, Cytoplasm, Background; 16-bit) -> nuclei by a Minimum
    Cross-Entropy threshold of the smoothed nucleus probability, split by intensity ->
    nuclei smaller than ``min_nucleus_area`` dropped -> cells by propagation on
    nucleus + cytoplasm -> resized by ``1 / scale`` -> 16-bit masks named after the input.
    """
    settings = settings or PipelineSettings()
    modules = {module.name: module for module in template_modules()}
    low, high = settings.nucleus_diameter
    channels = (settings.nucleus_channel, settings.cytoplasm_channel, settings.background_channel)
    for occurrence, channel in enumerate(channels):
        modules["ColorToGray"].set("Channel number", str(channel), occurrence)
    modules["Smooth"].set("Typical artifact diameter", _number(settings.nucleus_smoothing_diameter))
    primary = modules["IdentifyPrimaryObjects"]
    primary.set(
        "Typical diameter of objects, in pixel units (Min,Max)", f"{_number(low)},{_number(high)}"
    )
    primary.set("Method to distinguish clumped objects", settings.declump_method)
    primary.set("Method to draw dividing lines between clumped objects", settings.dividing_method)
    primary.set(
        "Suppress local maxima that are closer than this minimum allowed distance",
        _number(low / 1.5) if low <= 10 else "7.0",
    )
    primary.set("Threshold correction factor", _number(settings.threshold_factor))
    modules["FilterObjects"].set("Minimum value", _number(settings.min_nucleus_area))
    secondary = modules["IdentifySecondaryObjects"]
    secondary.set("Regularization factor", _number(settings.regularization))
    secondary.set("Threshold smoothing scale", _number(settings.cell_threshold_smoothing_scale))
    secondary.set("Threshold correction factor", _number(settings.cell_threshold_factor))
    for axis in ("X Factor", "Y Factor"):
        modules["ResizeObjects"].set(axis, _number(1.0 / settings.scale))
    return format_pipeline(list(modules.values()))
