"""Mesmer's input preparation: resizing to the model's pixel size and normalisation.

Order of operations (deepcell 0.12 ``Mesmer.predict``), per image and channel:

1. resize from the image's pixel size to the model's 0.5 um/px
   (bilinear, ``preserve_range``, Gaussian anti-aliasing that is a no-op when
   upscaling; the new size is ``int(size * pixel_size / 0.5)``);
2. clip values above the 99.9th percentile of the channel's *non-zero* pixels
   (all-zero channels stay zero);
3. adaptive histogram normalisation: rescale the channel to [0, 1] with its own
   minimum and maximum, then CLAHE with a 128 px kernel (scikit-image's
   ``equalize_adapthist``, default clip limit 0.01 and 256 bins); a constant
   channel becomes all zeros.

For chunked processing of large images the two image-wide statistics (the
clipping value and the minimum) are computed once (:class:`ChannelStats`) and
applied to every chunk; CLAHE itself works on 128 px neighbourhoods.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np
from skimage.exposure import equalize_adapthist, rescale_intensity
from skimage.transform import resize

logger = logging.getLogger(__name__)

MODEL_PIXEL_SIZE_UM = 0.5
CLIP_PERCENTILE = 99.9
CLAHE_KERNEL_SIZE = 128


def model_resolution_shape(
    shape: tuple[int, int], pixel_size_um: float, model_pixel_size_um: float = MODEL_PIXEL_SIZE_UM
) -> tuple[int, int]:
    """Size of an image of ``shape`` once resampled to the model's pixel size."""
    if pixel_size_um <= 0:
        raise ValueError(f"pixel size must be positive, got {pixel_size_um}")
    if pixel_size_um == model_pixel_size_um:
        return tuple(shape)
    scale = pixel_size_um / model_pixel_size_um
    return int(shape[0] * scale), int(shape[1] * scale)


def resize_channels(image: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Resize a YXC image bilinearly to ``shape`` (Y, X), keeping values and dtype.

    deepcell resizes multi-channel input with scikit-image (order 1,
    ``mode="constant"``, anti-aliasing on); this does the same.
    """
    if tuple(image.shape[:2]) == tuple(shape):
        return image
    resized = resize(
        image,
        (*shape, image.shape[2]),
        order=1,
        mode="constant",
        preserve_range=True,
        anti_aliasing=True,
    )
    return resized.astype(image.dtype, copy=False)


@dataclass(frozen=True)
class ChannelStats:
    """Image-wide statistics of one channel that the normalisation needs.

    Attributes
    ----------
    clip_value : float or None
        Values above are clipped (None: the channel has no non-zero pixel).
    minimum : float
        Smallest value (after clipping).
    maximum : float
        Largest value after clipping.
    """

    clip_value: float | None
    minimum: float
    maximum: float

    @property
    def is_constant(self) -> bool:
        return self.maximum == self.minimum


def percentile_clip_value(channel: np.ndarray, percentile: float = CLIP_PERCENTILE):
    """The ``percentile`` of the non-zero pixels of ``channel``, or None if all are zero."""
    nonzero = channel[channel != 0]
    if nonzero.size == 0:
        return None
    # interpolate in float64, then round to the channel's dtype: what deepcell got with
    # numpy 1.x (numpy 2 interpolates float32 input in float32, which shifts the value)
    value = np.percentile(nonzero.astype(np.float64), percentile)
    return channel.dtype.type(value) if channel.dtype.kind == "f" else value


def clip_channel(channel: np.ndarray, clip_value) -> np.ndarray:
    """Copy of ``channel`` with values above ``clip_value`` set to it (None: no-op copy)."""
    clipped = np.array(channel, copy=True)
    if clip_value is not None:
        clipped[clipped > clip_value] = clip_value
    return clipped


def channel_stats(channel: np.ndarray, percentile: float = CLIP_PERCENTILE) -> ChannelStats:
    """Statistics of a whole YX channel (at model resolution) for normalisation."""
    clip_value = percentile_clip_value(channel, percentile)
    minimum = float(channel.min())
    maximum = float(channel.max())
    if clip_value is not None:
        # clipping lowers only values above the percentile, which is itself a pixel value
        # or lies between two, so the clipped maximum is the clip value
        maximum = min(maximum, float(clip_value))
        minimum = min(minimum, float(clip_value))
    return ChannelStats(clip_value, minimum, maximum)


def streamed_channel_stats(
    bands: Callable[[], Iterable[np.ndarray]], percentile: float = CLIP_PERCENTILE
) -> ChannelStats:
    """:func:`channel_stats` of a float32 channel too large to hold, read as bands of rows.

    Exactly the same values as :func:`channel_stats` on the whole channel: the
    percentile's two neighbouring order statistics are found by a radix selection
    over the float32 bit patterns (two passes over the bands, two 65,536-bin
    histograms in memory) and interpolated as :func:`numpy.percentile` does.

    Parameters
    ----------
    bands : callable
        ``bands()`` returns a fresh iterable over the channel's bands (any shapes);
        called twice.
    percentile : float
    """
    count, minimum, maximum = 0, np.inf, -np.inf
    high_counts = np.zeros(1 << 16, dtype=np.int64)
    for band in bands():
        band = np.asarray(band, dtype=np.float32)
        if band.size == 0:
            continue
        minimum = min(minimum, float(band.min()))
        maximum = max(maximum, float(band.max()))
        keys = _sortable_keys(band[band != 0])
        count += keys.size
        high_counts += np.bincount(keys >> 16, minlength=1 << 16)
    if count == 0:
        return ChannelStats(None, float(minimum), float(maximum))
    # numpy's "linear" method: virtual index (n - 1) * q between two order statistics
    index = (count - 1) * np.true_divide(percentile, 100)
    below = int(np.floor(index))
    ranks = (below, min(below + 1, count - 1))
    below_high = np.concatenate([[0], np.cumsum(high_counts)])
    highs = [int(np.searchsorted(below_high, rank, side="right")) - 1 for rank in ranks]
    low_counts = {high: np.zeros(1 << 16, dtype=np.int64) for high in set(highs)}
    for band in bands():
        keys = _sortable_keys(np.asarray(band, dtype=np.float32)[np.asarray(band) != 0])
        for high, counts in low_counts.items():
            counts += np.bincount(keys[(keys >> 16) == high] & 0xFFFF, minlength=1 << 16)
    values = []
    for rank, high in zip(ranks, highs, strict=True):
        below_low = np.cumsum(low_counts[high])
        low = int(np.searchsorted(below_low, rank - below_high[high], side="right"))
        values.append(float(_key_value(np.uint32((high << 16) | low))))
    gamma = index - below
    difference = values[1] - values[0]
    if gamma >= 0.5:
        clip_value = values[1] - difference * (1 - gamma)
    else:
        clip_value = values[0] + difference * gamma
    clip_value = np.float32(clip_value)
    return ChannelStats(
        clip_value, min(minimum, float(clip_value)), min(maximum, float(clip_value))
    )


def _sortable_keys(values: np.ndarray) -> np.ndarray:
    """uint32 keys that sort as the float32 ``values`` do (sign bit flipped, negatives inverted)."""
    bits = values.view(np.uint32)
    return np.where(bits >> 31, ~bits, bits | np.uint32(1 << 31)).astype(np.uint32, copy=False)


def _key_value(key: np.uint32) -> np.float32:
    bits = key & np.uint32(0x7FFFFFFF) if key >> 31 else ~key
    return np.asarray(bits, dtype=np.uint32).view(np.float32)[()]


def normalize_channel(
    channel: np.ndarray, stats: ChannelStats, kernel_size: int = CLAHE_KERNEL_SIZE
) -> np.ndarray:
    """Clip, rescale to [0, 1] with the image-wide range, then CLAHE (float32 YX)."""
    if stats.is_constant:
        return np.zeros(channel.shape, dtype=np.float32)
    clipped = clip_channel(channel.astype(np.float32, copy=False), stats.clip_value)
    unit = rescale_intensity(clipped, in_range=(stats.minimum, stats.maximum), out_range=(0.0, 1.0))
    if float(unit.max()) == float(unit.min()):
        # a chunk can be flat even where the image is not; CLAHE cannot scale it
        return np.zeros(channel.shape, dtype=np.float32)
    return equalize_adapthist(unit, kernel_size=kernel_size).astype(np.float32, copy=False)


def mesmer_preprocess(
    image: np.ndarray,
    stats: list[ChannelStats] | None = None,
    *,
    percentile: float = CLIP_PERCENTILE,
    kernel_size: int = CLAHE_KERNEL_SIZE,
) -> np.ndarray:
    """Normalise each channel of a YXC image at model resolution (float32 YXC).

    Parameters
    ----------
    image : ndarray, shape (Y, X, C)
        Channels at the model's pixel size.
    stats : list of ChannelStats, optional
        Image-wide statistics per channel; computed from ``image`` if omitted
        (pass them when ``image`` is one chunk of a larger image).
    percentile : float
        Clipping percentile of the non-zero pixels.
    kernel_size : int
        CLAHE kernel size in pixels.
    """
    if stats is None:
        stats = [channel_stats(image[..., c], percentile) for c in range(image.shape[-1])]
    output = np.empty(image.shape, dtype=np.float32)
    for c, channel_stat in enumerate(stats):
        if channel_stat.is_constant:
            logger.warning("channel %d is constant; normalised to zeros", c)
        output[..., c] = normalize_channel(image[..., c], channel_stat, kernel_size)
    return output
