"""Image enhancers: channels in, float32 images out (one per input, or one for all)."""

from __future__ import annotations

import numpy as np

from steinbock_like.process.registry import IMAGE, Param, Role, register

_ONE_OR_MORE = {"input": Role(IMAGE, help="Images (panel channel names or earlier outputs).")}
_TWO_OR_MORE = {"input": Role(IMAGE, min_count=2, help="Images to combine.")}


def normalize_image(image: np.ndarray, low: float = 1.0, high: float = 99.8, clip: bool = True):
    """Map the ``low`` and ``high`` percentiles of an image to 0 and 1 (float32).

    A constant image (percentiles equal) becomes zeros.
    """
    image = np.asarray(image, dtype=np.float32)
    lo, hi = np.percentile(image, [low, high])
    if hi <= lo:
        return np.zeros_like(image)
    out = (image - np.float32(lo)) / np.float32(hi - lo)
    if clip:
        np.clip(out, 0.0, 1.0, out=out)
    return out.astype(np.float32, copy=False)


@register(
    "normalize",
    "image_enhancer",
    inputs=_ONE_OR_MORE,
    output_kind=IMAGE,
    per_input=True,
    params={
        "low": Param("float", 1.0, "Percentile mapped to 0.", minimum=0),
        "high": Param("float", 99.8, "Percentile mapped to 1.", minimum=0),
        "clip": Param("bool", True, "Clip the result to 0..1."),
    },
)
def normalize(inputs, params, context):
    """Percentile normalisation: the ``low`` and ``high`` percentiles of each image become
    0 and 1 (values outside clipped unless ``clip: false``)."""
    return [
        normalize_image(x, params["low"], params["high"], params["clip"]) for x in inputs["input"]
    ]


@register(
    "denoise_median",
    "image_enhancer",
    inputs=_ONE_OR_MORE,
    output_kind=IMAGE,
    per_input=True,
    params={"radius": Param("int", 1, "Radius of the disk footprint (px).", minimum=1)},
)
def denoise_median(inputs, params, context):
    """Median filter over a disk of ``radius`` pixels (edges: nearest pixel repeated)."""
    from scipy.ndimage import median_filter
    from skimage.morphology import disk

    footprint = disk(params["radius"]).astype(bool)
    return [
        median_filter(np.asarray(x, dtype=np.float32), footprint=footprint, mode="nearest")
        for x in inputs["input"]
    ]


@register(
    "gaussian",
    "image_enhancer",
    inputs=_ONE_OR_MORE,
    output_kind=IMAGE,
    per_input=True,
    params={
        "sigma": Param("float", 1.0, "Standard deviation of the Gaussian (px).", minimum=0),
        "truncate": Param("float", 4.0, "Kernel radius in standard deviations.", minimum=0),
    },
)
def gaussian(inputs, params, context):
    """Gaussian smoothing with standard deviation ``sigma`` (px); edges: nearest pixel
    repeated, kernel cut at ``truncate`` standard deviations."""
    from scipy.ndimage import gaussian_filter

    return [
        gaussian_filter(
            np.asarray(x, dtype=np.float32),
            params["sigma"],
            mode="nearest",
            truncate=params["truncate"],
        )
        for x in inputs["input"]
    ]


@register("mean_of_images", "image_enhancer", inputs=_TWO_OR_MORE, output_kind=IMAGE)
def mean_of_images(inputs, params, context):
    """Pixel-wise mean of two or more images (float32)."""
    return np.mean(np.stack([np.asarray(x, np.float32) for x in inputs["input"]]), axis=0)


@register("max_of_images", "image_enhancer", inputs=_TWO_OR_MORE, output_kind=IMAGE)
def max_of_images(inputs, params, context):
    """Pixel-wise maximum of two or more images (float32)."""
    return np.max(np.stack([np.asarray(x, np.float32) for x in inputs["input"]]), axis=0)
