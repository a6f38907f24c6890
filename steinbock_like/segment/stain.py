"""Brightfield (IHC/H&E) preparation and tissue-restricted segmentation, on arrays.

* :func:`haematoxylin_channel`: RGB -> colour deconvolution into haematoxylin,
  eosin and DAB (Ruifrok & Johnston, :func:`skimage.color.rgb2hed`) -> the
  haematoxylin channel with nuclei bright, histogram-equalised.
* :func:`segment_within_tissue`: crop an image to the bounding box of its
  tissue mask, segment the crop, drop objects outside the tissue and paste the
  result back into full-resolution image coordinates.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

STAINS = ("hed",)
ROW_CHUNK = 1024  # rows per deconvolution block: bounds the float64 temporaries


def as_rgb(image: np.ndarray) -> np.ndarray:
    """An RGB(A) image in either axis order as float32 (Y, X, 3) scaled to 0..1.

    Parameters
    ----------
    image : ndarray, shape (Y, X, 3|4) or (3|4, Y, X)
        Integer images are divided by their dtype's maximum; float images are
        taken as 0..1, or as 0..255 where they exceed 1 (e.g. an 8-bit image
        stored as float), or divided by their maximum beyond that. An alpha
        channel is dropped.

    Raises
    ------
    ValueError
        If the array is not a 3- or 4-channel image.
    """
    image = np.asarray(image)
    if image.ndim != 3:
        raise ValueError(f"an RGB image needs 3 dimensions, got shape {image.shape}")
    if image.shape[-1] not in (3, 4) and image.shape[0] in (3, 4):
        image = np.moveaxis(image, 0, -1)
    if image.shape[-1] not in (3, 4):
        raise ValueError(f"expected 3 (RGB) or 4 (RGBA) channels, got shape {image.shape}")
    rgb = image[..., :3]
    if rgb.dtype.kind in "ui":
        scale = float(np.iinfo(rgb.dtype).max)
    else:
        peak = float(np.nanmax(rgb)) if rgb.size else 0.0
        scale = 1.0 if peak <= 1.0 else 255.0 if peak <= 255.0 else peak
    return (rgb.astype(np.float32) / np.float32(scale)).clip(0.0, 1.0)


def haematoxylin_concentration(rgb: np.ndarray, *, row_chunk: int = ROW_CHUNK) -> np.ndarray:
    """The haematoxylin channel of a colour deconvolution (optical density units).

    Parameters
    ----------
    rgb : ndarray, shape (Y, X, 3)
        Brightfield image scaled to 0..1 (see :func:`as_rgb`).

    Returns
    -------
    ndarray of float32, shape (Y, X)
        Higher where there is more haematoxylin (nuclei).
    """
    from skimage.color import rgb2hed

    out = np.empty(rgb.shape[:2], dtype=np.float32)
    # The deconvolution is per pixel, so row blocks give the same result with
    # float64 temporaries of one block only.
    for start in range(0, rgb.shape[0], row_chunk):
        block = rgb[start : start + row_chunk]
        out[start : start + row_chunk] = rgb2hed(block)[..., 0]
    return out


def haematoxylin_channel(
    rgb: np.ndarray, *, mask: np.ndarray | None = None, nbins: int = 1024
) -> np.ndarray:
    """Haematoxylin with nuclei bright on a dark background, histogram-equalised.

    Seen as transmitted light, the haematoxylin channel shows dark nuclei; it
    is inverted so that nuclei are bright, as in the fluorescence images
    Cellpose's models expect, and histogram-equalised to even out staining
    strength between slides, then stretched so that the faintest pixels are
    0. The inverted transmission is an increasing
    function of the haematoxylin concentration and equalisation depends only
    on the order of values, so the concentration is equalised directly.

    Parameters
    ----------
    rgb : ndarray, shape (Y, X, 3) or (3, Y, X)
        Brightfield image (any dtype, see :func:`as_rgb`).
    mask : ndarray of bool, shape (Y, X), optional
        Only these pixels (the tissue) enter the histogram.
    nbins : int
        Histogram bins for the equalisation.

    Returns
    -------
    ndarray of float32, shape (Y, X), values in 0..1
    """
    from skimage.exposure import equalize_hist

    concentration = haematoxylin_concentration(as_rgb(rgb))
    if mask is not None and not np.any(mask):
        return np.zeros(concentration.shape, dtype=np.float32)
    equalised = np.asarray(equalize_hist(concentration, nbins=nbins, mask=mask), np.float32)
    # Equalisation maps the lowest bin to its cumulative share, which is large
    # where much of the tissue is plain background; stretch so it becomes 0.
    lowest = float(equalised[mask].min() if mask is not None else equalised.min())
    if lowest < 1.0:
        equalised = (equalised - np.float32(lowest)) / np.float32(1.0 - lowest)
    return np.clip(equalised, 0.0, 1.0)


def prepare_stain(image: np.ndarray, stain: str, *, mask: np.ndarray | None = None) -> np.ndarray:
    """The channel to segment for a brightfield ``stain`` (only ``"hed"`` so far)."""
    if stain != "hed":
        raise ValueError(f"unknown stain {stain!r}; expected one of {STAINS}")
    return haematoxylin_channel(image, mask=mask)


# --------------------------------------------------------------------------- tissue


def tissue_bounding_box(tissue: np.ndarray, *, margin: int = 0) -> tuple[slice, slice] | None:
    """The (rows, columns) slices of the tissue's bounding box, widened by ``margin`` px.

    Returns None for an empty mask.
    """
    tissue = np.asarray(tissue, dtype=bool)
    rows = np.flatnonzero(tissue.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(tissue.any(axis=0))
    height, width = tissue.shape
    return (
        slice(max(0, rows[0] - margin), min(height, rows[-1] + 1 + margin)),
        slice(max(0, cols[0] - margin), min(width, cols[-1] + 1 + margin)),
    )


def keep_inside(labels: np.ndarray, tissue: np.ndarray, *, min_inside: float = 0.5) -> np.ndarray:
    """Remove objects that lie mostly outside the tissue and clip the rest to it.

    Parameters
    ----------
    labels : ndarray of int, shape (Y, X)
    tissue : ndarray of bool, shape (Y, X)
    min_inside : float
        Objects with a smaller fraction of their area in the tissue are removed.

    Returns
    -------
    ndarray, shape (Y, X), same dtype as ``labels``
        Objects only on tissue pixels, renumbered 1..n in order of their old IDs.
    """
    labels = np.asarray(labels)
    tissue = np.asarray(tissue, dtype=bool)
    if labels.shape != tissue.shape:
        raise ValueError(f"labels {labels.shape} and tissue {tissue.shape} differ in shape")
    flat = labels.ravel().astype(np.int64, copy=False)
    area = np.bincount(flat)
    inside = np.bincount(flat, weights=tissue.ravel(), minlength=area.size)
    with np.errstate(invalid="ignore", divide="ignore"):
        keep = inside / area >= min_inside
    keep[0] = False
    new_ids = np.zeros(area.size, dtype=labels.dtype)
    new_ids[keep] = np.arange(1, int(keep.sum()) + 1, dtype=labels.dtype)
    result = new_ids[labels]
    result[~tissue] = 0
    return result


def segment_within_tissue(
    tissue: np.ndarray,
    segment: Callable[[tuple[slice, slice], np.ndarray], np.ndarray],
    *,
    margin: int = 8,
    min_inside: float = 0.5,
    dtype: np.dtype = np.dtype(np.uint32),
) -> tuple[np.ndarray, tuple[slice, slice] | None]:
    """Segment only the tissue's bounding box and map the objects back to the full image.

    Parameters
    ----------
    tissue : ndarray, shape (Y, X)
        Region of interest, nonzero = tissue.
    segment : callable
        ``segment(box, tissue_crop) -> labels`` segments the image region
        ``box`` (row and column slices); ``tissue_crop`` is the tissue inside
        it. It must return labels of the crop's shape.
    margin : int
        Pixels of context kept around the tissue's bounding box, so that
        objects at the tissue's edge are seen whole.
    min_inside : float
        See :func:`keep_inside`.
    dtype : numpy dtype
        Of the returned labels.

    Returns
    -------
    labels : ndarray, shape (Y, X)
        Objects only on tissue pixels, in full-image coordinates; all zeros
        for an empty tissue mask (``segment`` is then not called).
    box : (slice, slice) or None
        The region that was segmented.
    """
    tissue = np.asarray(tissue) != 0
    labels = np.zeros(tissue.shape, dtype=dtype)
    box = tissue_bounding_box(tissue, margin=margin)
    if box is None:
        return labels, None
    tissue_crop = tissue[box]
    crop_labels = np.asarray(segment(box, tissue_crop))
    if crop_labels.shape != tissue_crop.shape:
        raise ValueError(
            f"segmentation of a {tissue_crop.shape} crop returned shape {crop_labels.shape}"
        )
    labels[box] = keep_inside(crop_labels, tissue_crop, min_inside=min_inside)
    return labels, box
