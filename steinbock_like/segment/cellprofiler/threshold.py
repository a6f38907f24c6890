"""CellProfiler 4.2's global thresholds (Minimum Cross-Entropy, Otsu, manual) on float32 images."""

from __future__ import annotations

import dataclasses
import math

import centrosome.threshold
import numpy as np
import scipy.ndimage

from steinbock_like.errors import SteinbockLikeError

THRESHOLD_LI = "Minimum Cross-Entropy"
THRESHOLD_OTSU = "Otsu"
THRESHOLD_MANUAL = "Manual"


@dataclasses.dataclass(frozen=True)
class ThresholdParams:
    """A global threshold as CellProfiler's Threshold settings group computes it.

    Attributes
    ----------
    method : str
        "Minimum Cross-Entropy", "Otsu" or "Manual".
    smoothing_sigma : float
        Gaussian sigma applied to the image before comparing with the threshold; 0 = none.
    correction_factor, lower_bound, upper_bound : float
        The automatic threshold is multiplied by the factor, then clipped to the bounds.
    manual_threshold : float
        Used as is (no correction, no bounds) when ``method == "Manual"``.
    log_transform : bool
        Threshold the log-transformed image (Li and Otsu only).
    three_class_foreground : bool or None
        Otsu only: None for two classes; else whether the middle class is foreground.
    """

    method: str = THRESHOLD_LI
    smoothing_sigma: float = 0.0
    correction_factor: float = 1.0
    lower_bound: float = 0.0
    upper_bound: float = 1.0
    manual_threshold: float = 0.0
    log_transform: bool = False
    three_class_foreground: bool | None = None


def li_threshold(values: np.ndarray, *, overwrite: bool = False) -> float:
    """CellProfiler 4.2's Minimum Cross-Entropy threshold (Li's iterative method).

    CellProfiler 4.2 calls scikit-image 0.18.3's ``threshold_li`` with a tolerance of half
    the smallest step between distinct values (at least 0.5 / 65536), so the iteration stops
    at the resolution of the data. This is that computation, in the input's precision
    (float32 means and logarithms for float32 pixels), without scikit-image: later releases
    stop early when the background mean reaches 0.

    Parameters
    ----------
    values : ndarray of float
        The pixels (any shape); NaN is ignored.
    overwrite : bool
        ``values`` may be changed (saves a copy of the image: large images).

    Returns
    -------
    float
        The threshold, in the units of ``values``.
    """
    values = np.asarray(values)
    data = values.ravel()
    copied = not np.shares_memory(data, values)
    dropped = np.isnan(data)
    if dropped.any():  # copies only where needed (the values and their order are kept)
        data, copied = data[~dropped], True
    del dropped
    if data.size == 0:
        return math.nan
    if np.all(data == data[0]):
        return float(data[0])
    dropped = ~np.isfinite(data)
    if dropped.any():
        data, copied = data[~dropped], True
    del dropped
    if data.size == 0:
        return 0.0
    tolerance = max(_smallest_step(data) / 2, 0.5 / 65536)
    data_min = np.min(data)
    if copied or overwrite:
        data -= data_min  # the same values as data - data_min, in place
    else:
        data = data - data_min
    t_next = np.mean(data)
    t_current = -2 * tolerance
    while abs(t_next - t_current) > tolerance:
        t_current = t_next
        foreground = data > t_current
        mean_foreground = np.mean(data[foreground])
        mean_background = np.mean(data[~foreground])
        with np.errstate(divide="ignore"):  # log(0) when the background is all 0: t = 0
            t_next = (mean_background - mean_foreground) / (
                np.log(mean_background) - np.log(mean_foreground)
            )
    return float(t_next + data_min)


def _smallest_step(data: np.ndarray, chunk: int = 1 << 22) -> float:
    """Smallest difference between distinct values (``min(diff(unique(data)))``)."""
    ordered = np.sort(data, axis=None)
    smallest = math.inf
    for start in range(0, ordered.size - 1, chunk):
        steps = np.diff(ordered[start : start + chunk + 1])
        steps = steps[steps > 0]
        if steps.size:
            smallest = min(smallest, float(np.min(steps)))
    return smallest


def global_threshold(image: np.ndarray, params: ThresholdParams, *, overwrite=False) -> float:
    """The corrected global threshold of ``image`` (float64 arithmetic throughout).

    ``overwrite``: ``image`` may be changed (saves a copy of it).
    """
    if params.method == THRESHOLD_MANUAL:
        return float(params.manual_threshold)
    data = image.ravel()
    conversion = None
    if params.log_transform:
        data, conversion = centrosome.threshold.log_transform(data)
    if data.size == 0:
        threshold = 0.0
    elif np.all(data == data[0]):
        threshold = float(data[0])
    elif params.method == THRESHOLD_LI:
        threshold = li_threshold(data, overwrite=overwrite)
    elif params.method == THRESHOLD_OTSU:
        import skimage.filters

        if params.three_class_foreground is None:
            threshold = float(skimage.filters.threshold_otsu(data))
        else:
            thresholds = skimage.filters.threshold_multiotsu(data, nbins=128)
            threshold = float(thresholds[0 if params.three_class_foreground else 1])
    else:
        raise SteinbockLikeError(f"threshold method {params.method!r} is not supported natively")
    if conversion is not None:
        threshold = float(centrosome.threshold.inverse_log_transform(threshold, conversion))
    return corrected_threshold(threshold, params)


def corrected_threshold(threshold: float, params: ThresholdParams) -> float:
    """An automatic threshold times the correction factor, clipped to the bounds."""
    threshold = float(threshold) * float(params.correction_factor)
    return min(max(threshold, float(params.lower_bound)), float(params.upper_bound))


def apply_threshold(image: np.ndarray, threshold: float, sigma: float) -> np.ndarray:
    """Foreground = (optionally Gaussian-smoothed) image >= threshold."""
    if sigma == 0:
        return image >= threshold
    blurred = centrosome.smooth.smooth_with_function_and_mask(
        image,
        lambda x: scipy.ndimage.gaussian_filter(x, sigma, mode="constant", cval=0),
        np.ones(image.shape, bool),
    )
    return blurred >= threshold


def threshold_image(image: np.ndarray, params: ThresholdParams) -> np.ndarray:
    """Binary foreground of a gray image by a global threshold."""
    return apply_threshold(image, global_threshold(image, params), params.smoothing_sigma)
