"""Overview figures of a Cellpose segmentation: input, prepared channels and outlines."""

from __future__ import annotations

import logging

import numpy as np

logger = logging.getLogger(__name__)


def display_scale(channel: np.ndarray, low: float = 1.0, high: float = 99.5) -> np.ndarray:
    """A channel as uint8 for display, stretched between two percentiles."""
    channel = np.asarray(channel, dtype=np.float32)
    if channel.size == 0:
        return channel.astype(np.uint8)
    lo, hi = np.percentile(channel, [low, high])
    if hi <= lo:
        return np.zeros(channel.shape, dtype=np.uint8)
    scaled = np.clip((channel - lo) / (hi - lo), 0.0, 1.0)
    return (scaled * 255).round().astype(np.uint8)


def composite_rgb(channels: np.ndarray) -> np.ndarray:
    """Prepared channels as an RGB picture: channel 0 green, channel 1 blue."""
    channels = np.asarray(channels)
    rgb = np.zeros((*channels.shape[1:], 3), dtype=np.uint8)
    rgb[..., 1] = display_scale(channels[0])
    if channels.shape[0] > 1:
        rgb[..., 2] = display_scale(channels[1])
    return rgb


def overview_figure(
    input_rgb: np.ndarray,
    preprocessed: list[np.ndarray],
    labels: np.ndarray,
    *,
    max_side: int = 1024,
    gap: int = 4,
    tissue: np.ndarray | None = None,
) -> np.ndarray:
    """One picture to check a segmentation at a glance.

    Panels, left to right: the input, each preprocessed channel (grayscale),
    the tissue mask (where given: tissue white, glass black) and the mask
    outlines (yellow) over the input. Large images are shrunk so that each
    panel's longer side is at most ``max_side``; outlines are drawn at full
    resolution first so that they survive the shrinking.

    Parameters
    ----------
    input_rgb : ndarray of uint8, shape (Y, X, 3)
    preprocessed : list of ndarray, shape (Y, X)
    labels : ndarray of int, shape (Y, X)
    max_side : int
    gap : int
        White pixels between panels.
    tissue : ndarray of bool, shape (Y, X), optional
        The region segmented in.

    Returns
    -------
    ndarray of uint8, shape (H, W, 3)
    """
    from skimage.segmentation import find_boundaries

    step = max(1, int(np.ceil(max(labels.shape) / max_side)))
    outlines = find_boundaries(labels, mode="inner")
    if step > 1:
        outlines = _block_any(outlines, step)
    overlay = input_rgb[::step, ::step].copy()
    overlay[outlines[: overlay.shape[0], : overlay.shape[1]]] = (255, 255, 0)
    panels = [input_rgb[::step, ::step]]
    panels += [
        np.repeat(display_scale(p[::step, ::step])[..., None], 3, axis=-1) for p in preprocessed
    ]
    if tissue is not None:
        shown = (np.asarray(tissue)[::step, ::step] != 0).astype(np.uint8) * 255
        panels.append(np.repeat(shown[..., None], 3, axis=-1))
    panels.append(overlay)
    height = max(p.shape[0] for p in panels)
    width = sum(p.shape[1] for p in panels) + gap * (len(panels) - 1)
    figure = np.full((height, width, 3), 255, dtype=np.uint8)
    x = 0
    for panel in panels:
        figure[: panel.shape[0], x : x + panel.shape[1]] = panel
        x += panel.shape[1] + gap
    return figure


def _block_any(mask: np.ndarray, step: int) -> np.ndarray:
    """Shrink a boolean image by ``step``: a block is True where any pixel is (ceil size)."""
    height, width = mask.shape
    padded = np.zeros((-(-height // step) * step, -(-width // step) * step), dtype=bool)
    padded[:height, :width] = mask
    blocks = padded.reshape(padded.shape[0] // step, step, padded.shape[1] // step, step)
    return blocks.any(axis=(1, 3))
