"""OpenCV's linear resize of a whole image, computed for one window of it at a time.

Cellpose 3 resizes a normalised image by its ``rescale`` before the network and
the network's flows and cell probability back to the image's size afterwards,
both with ``cv2.resize(..., interpolation=cv2.INTER_LINEAR)`` on float32 images
with channels last. Where a destination pixel's value comes from depends on the
whole image's size (the source coordinate ``(d + 0.5) * src / dst - 0.5``), so a
crop resized on its own gives other values; the functions here give the whole
image's values for any window while reading only the source pixels it needs.

OpenCV takes two code paths for float32 images, and both are reproduced here to
the bit (see ``tests/test_cellpose_resize.py``):

``"opencv"`` (OpenCV's own code, used for two-channel images: Cellpose's input)
    Source coordinates rounded to float32; columns clamped to the image (weight 0
    beyond its edges), rows not (edge rows repeated, weights kept); a horizontal
    pass, then a vertical one, each ``a * (1 - f) + b * f`` in float32. An exact
    halving in both axes is an average of 2 x 2 pixels instead.
``"ipp"`` (Intel IPP, used by OpenCV's wheels for three-channel images: the flows)
    Source coordinates in float64 with the fraction rounded to float32, clamped in
    both axes; a horizontal pass, then a vertical one, each ``a + (b - a) * f``
    with one rounding (a fused multiply-add).

Masks computed at the network's scale (Cellpose's ``resample=False``) are resized
back with ``cv2.INTER_NEAREST``: destination pixel ``d`` takes source pixel
``floor(d * src / dst)`` (:func:`nearest_taps`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

METHODS = ("opencv", "ipp")


@dataclass(frozen=True)
class AxisTaps:
    """The two source pixels and the weight of the second one, per destination pixel.

    Attributes
    ----------
    low, high : ndarray of int
        Source indices (inside the source axis).
    fraction : ndarray of float32
        Weight of ``high``; ``low`` weighs ``1 - fraction``.
    """

    low: np.ndarray
    high: np.ndarray
    fraction: np.ndarray


def axis_taps(
    src: int, dst: int, start: int = 0, stop: int | None = None, *, method: str, clamp: bool = True
) -> AxisTaps:
    """Linear-interpolation taps of destination pixels ``start..stop`` of one axis.

    Parameters
    ----------
    src, dst : int
        Source and destination lengths of the axis (of the whole images).
    start, stop : int
        Destination pixels wanted (default: all).
    method : {"opencv", "ipp"}
        Which of OpenCV's code paths to reproduce (see the module's description).
    clamp : bool
        OpenCV's own code clamps columns (``True``) but not rows (``False``) at
        the image's edges; IPP clamps both.

    Returns
    -------
    AxisTaps
    """
    if method not in METHODS:
        raise ValueError(f"unknown resize method {method!r}")
    stop = dst if stop is None else stop
    positions = np.arange(start, stop, dtype=np.float64) + 0.5
    if method == "opencv":
        scale = 1.0 / (float(dst) / float(src))
        coordinate = (positions * scale - 0.5).astype(np.float32)
        low = np.floor(coordinate).astype(np.int64)
        fraction = coordinate - low.astype(np.float32)
    else:
        coordinate = positions * (float(src) / float(dst)) - 0.5
        low = np.floor(coordinate).astype(np.int64)
        fraction = (coordinate - low).astype(np.float32)
        clamp = True
    if clamp:
        outside = (low < 0) | (low >= src - 1)
        fraction[outside] = 0.0
        low = np.clip(low, 0, src - 1)
    high = np.clip(low + 1, 0, src - 1)
    low = np.clip(low, 0, src - 1)
    return AxisTaps(low, high, fraction.astype(np.float32))


def nearest_taps(src: int, dst: int, start: int = 0, stop: int | None = None) -> np.ndarray:
    """The source pixel of destination pixels ``start..stop`` in OpenCV's nearest resize.

    Parameters
    ----------
    src, dst : int
        Source and destination lengths of the axis (of the whole images).
    start, stop : int
        Destination pixels wanted (default: all).

    Returns
    -------
    ndarray of int
    """
    stop = dst if stop is None else stop
    scale = 1.0 / (float(dst) / float(src))
    positions = np.arange(start, stop, dtype=np.float64) * scale
    return np.minimum(np.floor(positions).astype(np.int64), src - 1)


def _interpolate(a: np.ndarray, b: np.ndarray, fraction: np.ndarray, method: str) -> np.ndarray:
    if method == "opencv":
        return a * (np.float32(1) - fraction) + b * fraction
    # a + (b - a) * f rounded once: (b - a) * f is exact in float64 (24 + 24 bits)
    difference = (b - a).astype(np.float64)
    difference *= fraction
    difference += a
    return difference.astype(np.float32)


def is_area_halving(src_shape: tuple[int, int], dst_shape: tuple[int, int], method: str) -> bool:
    """Whether OpenCV's own code averages 2 x 2 pixels instead (an exact halving)."""
    return method == "opencv" and all(s == 2 * d for s, d in zip(src_shape, dst_shape, strict=True))


def source_window(
    src_shape: tuple[int, int],
    dst_shape: tuple[int, int],
    rows: tuple[int, int],
    cols: tuple[int, int],
    *,
    method: str,
) -> tuple[int, int, int, int]:
    """The source pixels (y0, y1, x0, x1) that destination ``rows`` x ``cols`` read."""
    if is_area_halving(src_shape, dst_shape, method):
        return 2 * rows[0], 2 * rows[1], 2 * cols[0], 2 * cols[1]
    ty = axis_taps(src_shape[0], dst_shape[0], *rows, method=method, clamp=False)
    tx = axis_taps(src_shape[1], dst_shape[1], *cols, method=method)
    return int(ty.low.min()), int(ty.high.max()) + 1, int(tx.low.min()), int(tx.high.max()) + 1


def resize_window(
    read: Callable[[int, int, int, int], np.ndarray],
    src_shape: tuple[int, int],
    dst_shape: tuple[int, int],
    rows: tuple[int, int],
    cols: tuple[int, int],
    *,
    method: str,
) -> np.ndarray:
    """Rows ``rows`` and columns ``cols`` of the whole source resized to ``dst_shape``.

    Parameters
    ----------
    read : callable
        ``read(y0, y1, x0, x1)`` returns the source's pixels in that window as a
        float32 array of shape (C, y1 - y0, x1 - x0).
    src_shape, dst_shape : (int, int)
        Height and width of the whole source and of the whole resized image.
    rows, cols : (int, int)
        The destination window (start, stop).
    method : {"opencv", "ipp"}
        Which of OpenCV's code paths to reproduce.

    Returns
    -------
    ndarray of float32, shape (C, rows, cols)
        Equal to ``cv2.resize`` of the whole source (channels last) in that window.
    """
    y0, y1, x0, x1 = source_window(src_shape, dst_shape, rows, cols, method=method)
    source = np.asarray(read(y0, y1, x0, x1), dtype=np.float32)
    if is_area_halving(src_shape, dst_shape, method):
        channels, height, width = source.shape
        quads = source.reshape(channels, height // 2, 2, width // 2, 2)
        total = quads[:, :, 0, :, 0] + quads[:, :, 0, :, 1]
        total += quads[:, :, 1, :, 0]
        total += quads[:, :, 1, :, 1]
        total *= np.float32(0.25)
        return total
    ty = axis_taps(src_shape[0], dst_shape[0], *rows, method=method, clamp=False)
    tx = axis_taps(src_shape[1], dst_shape[1], *cols, method=method)
    fraction = ty.fraction[:, np.newaxis]
    out = np.empty((source.shape[0], len(ty.low), len(tx.low)), np.float32)
    for channel, plane in enumerate(source):  # one at a time: less memory
        horizontal = _interpolate(
            plane[:, tx.low - x0], plane[:, tx.high - x0], tx.fraction, method
        )
        out[channel] = _interpolate(
            horizontal[ty.low - y0], horizontal[ty.high - y0], fraction, method
        )
    return out


class ResizedImage:
    """A (C, Y, X) image resized by OpenCV, computed window by window on indexing.

    ``resized[:, y0:y1, x0:x1]`` equals the same window of ``cv2.resize`` of the
    whole image (channels last); only the source pixels it needs are read.

    Parameters
    ----------
    image : ndarray, shape (C, Y, X)
    shape : (int, int)
        Height and width to resize to.
    method : {"opencv", "ipp"}
    """

    def __init__(self, image: np.ndarray, shape: tuple[int, int], method: str = "opencv"):
        self.image = image
        self.size = (int(shape[0]), int(shape[1]))
        self.method = method

    @property
    def shape(self) -> tuple[int, int, int]:
        return (self.image.shape[0], *self.size)

    def __getitem__(self, key) -> np.ndarray:
        channels, rows, cols = key
        if channels != slice(None):
            raise IndexError("only all channels can be read from a ResizedImage")
        y0, y1 = rows.indices(self.size[0])[:2]
        x0, x1 = cols.indices(self.size[1])[:2]
        return resize_window(
            lambda a, b, c, d: self.image[:, a:b, c:d],
            self.image.shape[1:],
            self.size,
            (y0, y1),
            (x0, x1),
            method=self.method,
        )


def matches_opencv(
    src_shape: tuple[int, int], dst_shape: tuple[int, int], channels: int, method: str
) -> float:
    """Largest difference between :func:`resize_window` and ``cv2.resize`` on a probe.

    The probe is a random image of ``src_shape`` rows (resp. columns) but a few
    columns (rows), resized to ``dst_shape`` rows (columns), so that each axis
    is mapped as in the real resize at little cost. 0.0 where OpenCV's code path
    is reproduced to the bit on this machine.
    """
    import cv2

    rng = np.random.default_rng(0)
    worst = 0.0
    halving = is_area_halving(src_shape, dst_shape, method)
    for axis in (0, 1):
        src, dst = ([14, 14], [7, 7]) if halving else ([7, 7], [11, 11])
        src[axis], dst[axis] = src_shape[axis], dst_shape[axis]
        probe = rng.standard_normal((*src, channels)).astype(np.float32)
        expected = cv2.resize(probe, (dst[1], dst[0]), interpolation=cv2.INTER_LINEAR)
        expected = expected.reshape(dst[0], dst[1], channels)
        channel_first = np.moveaxis(probe, -1, 0)
        got = resize_window(
            lambda a, b, c, d, image=channel_first: image[:, a:b, c:d],
            tuple(src),
            tuple(dst),
            (0, dst[0]),
            (0, dst[1]),
            method=method,
        )
        worst = max(worst, float(np.max(np.abs(np.moveaxis(got, 0, -1) - expected))))
    return worst


def nearest_matches_opencv(src_shape: tuple[int, int], dst_shape: tuple[int, int]) -> bool:
    """Whether :func:`nearest_taps` gives ``cv2.INTER_NEAREST``'s pixels, on a probe of
    ``src_shape`` rows (columns) but a few columns (rows), for uint16 and float32 masks."""
    import cv2

    for dtype in (np.uint16, np.float32):
        for axis in (0, 1):
            src, dst = [5, 5], [7, 7]
            src[axis], dst[axis] = src_shape[axis], dst_shape[axis]
            index = np.arange(src[axis]) % 60000
            probe = np.broadcast_to(index if axis else index[:, np.newaxis], src)
            probe = np.ascontiguousarray(probe, dtype=dtype)
            got = cv2.resize(probe, (dst[1], dst[0]), interpolation=cv2.INTER_NEAREST)
            taps = nearest_taps(src[axis], dst[axis])
            line = got[0] if axis else got[:, 0]
            if not np.array_equal(line.astype(np.int64), index[taps]):
                return False
    return True
