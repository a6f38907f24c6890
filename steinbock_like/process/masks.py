"""Mask builders: masks (or an image, for ``blob``) in, label masks out."""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from steinbock_like.process.registry import IMAGE, MASK, Param, Role, register

_ONE_MASK = {"input": Role(MASK, max_count=1, help="One mask.")}
_TWO_MASKS = {"input": Role(MASK, min_count=2, max_count=2, help="Two masks: a, b.")}


def ring_mask(labels: np.ndarray, outer: float, inner: float) -> np.ndarray:
    """Pixels whose signed distance to their object lies in (``inner``, ``outer``].

    Outside an object the distance is positive: the Euclidean distance to the nearest
    labelled pixel, and a background pixel belongs to the ring of that nearest object
    only (so rings never enter another object, and neighbouring rings split the space
    between them). Inside an object it is negative: minus the distance to the nearest
    pixel of another value (edge pixels are at -1). Ring pixels keep their object's ID.

    Parameters
    ----------
    labels : ndarray of int, shape (Y, X)
    outer, inner : float
        Radii (px), ``inner < outer``; e.g. (8, 2): from 2 (exclusive) to 8 px outside;
        (0, -3): the object's rim up to 3 px deep; (2, -2): across the edge.
    """
    labels = np.asarray(labels)
    out = np.zeros_like(labels)
    if outer > 0 and labels.any():
        distance, (rows, cols) = ndi.distance_transform_edt(labels == 0, return_indices=True)
        band = (labels == 0) & (distance > inner) & (distance <= outer)
        out[band] = labels[rows[band], cols[band]]
    if inner < 0:  # inside: inner < -depth <= outer, i.e. -outer <= depth < -inner
        for index, box in enumerate(ndi.find_objects(labels), start=1):
            if box is None:
                continue
            padded = tuple(slice(max(s.start - 1, 0), s.stop + 1) for s in box)
            inside = labels[padded] == index
            # the image border counts as outside too (padding of one background pixel)
            depth = ndi.distance_transform_edt(np.pad(inside, 1))[1:-1, 1:-1]
            band = inside & (depth >= -outer) & (depth < -inner)
            out[padded][band] = index
    return out


@register(
    "ring",
    "mask_builder",
    inputs=_ONE_MASK,
    check=lambda params, inputs: (
        ("parameters.inner", f"must be smaller than outer ({params['outer']:g})")
        if params["inner"] >= params["outer"]
        else None
    ),
    params={
        "outer": Param("float", 4, "Outer radius (px); negative: inside the object."),
        "inner": Param("float", 0, "Inner radius (px), exclusive; negative: inside the object."),
    },
)
def ring(inputs, params, context):
    """A ring around (or inside) every object, with the object's ID: the pixels whose
    distance to the object lies in (``inner``, ``outer``], distances outside positive,
    inside negative (edge pixels -1). Outside pixels go to the nearest object only, so a
    ring never overlaps another object or another ring."""
    return ring_mask(inputs["input"][0], params["outer"], params["inner"])


@register(
    "expand",
    "mask_builder",
    inputs=_ONE_MASK,
    params={"distance": Param("float", 4, "Expansion distance (px).", minimum=0)},
)
def expand(inputs, params, context):
    """Grow every object by ``distance`` px into the background, without overlap
    (scikit-image's ``expand_labels``)."""
    from skimage.segmentation import expand_labels

    return expand_labels(np.asarray(inputs["input"][0]), params["distance"])


@register("subtract", "mask_builder", inputs=_TWO_MASKS)
def subtract(inputs, params, context):
    """The first mask with the second removed: IDs of ``a`` where ``b`` is 0 (e.g. cells
    minus nuclei = cytoplasm)."""
    a, b = (np.asarray(x) for x in inputs["input"])
    return np.where(b == 0, a, 0).astype(a.dtype)


@register(
    "multiply",
    "mask_builder",
    inputs={"input": Role(MASK, min_count=2, max_count=2, help="A mask and a mask or image.")},
)
def multiply(inputs, params, context):
    """The first mask restricted to the second: IDs of ``a`` where ``b`` is non-zero (e.g.
    cells inside a tissue mask)."""
    a, b = (np.asarray(x) for x in inputs["input"])
    return np.where(b != 0, a, 0).astype(a.dtype)


def blob_mask(
    image: np.ndarray,
    threshold: float | str = "otsu",
    downscale: int = 8,
    opening: int = 1,
    closing: int = 2,
    fill_holes: bool = True,
    invert: bool = False,
) -> np.ndarray:
    """A coarse tissue mask: binarise, downscale, open, close, fill holes, upscale.

    Parameters
    ----------
    image : ndarray, shape (Y, X)
    threshold : float or "otsu"
        Pixels above it are tissue.
    downscale : int
        Block size: a block is tissue when at least half its pixels are.
    opening, closing : int
        Disk radii (in downscaled pixels) of the binary opening and closing.
    fill_holes : bool
    invert : bool
        Tissue is below the threshold (brightfield: tissue darker than the glass).

    Returns
    -------
    ndarray of uint8, shape (Y, X)
        1 = tissue.
    """
    from skimage.filters import threshold_otsu
    from skimage.morphology import disk

    image = np.asarray(image, dtype=np.float32)
    level = threshold_otsu(image) if threshold == "otsu" else float(threshold)
    binary = image < level if invert else image > level
    height, width = binary.shape
    f = max(int(downscale), 1)
    ph, pw = -height % f, -width % f
    padded = np.pad(binary, ((0, ph), (0, pw)), mode="edge")
    small = padded.reshape(padded.shape[0] // f, f, padded.shape[1] // f, f).mean(axis=(1, 3))
    small = small >= 0.5
    if opening > 0:
        small = ndi.binary_opening(np.pad(small, opening, mode="edge"), disk(opening))[
            opening:-opening, opening:-opening
        ]
    if closing > 0:
        small = ndi.binary_closing(np.pad(small, closing, mode="edge"), disk(closing))[
            closing:-closing, closing:-closing
        ]
    if fill_holes:
        small = ndi.binary_fill_holes(small)
    large = np.repeat(np.repeat(small, f, axis=0), f, axis=1)[:height, :width]
    return large.astype(np.uint8)


@register(
    "blob",
    "mask_builder",
    inputs={"input": Role(IMAGE, max_count=1, help="One image (e.g. a mean of channels).")},
    params={
        "threshold": Param("float_or_auto", "otsu", "Intensity threshold, or otsu."),
        "downscale": Param("int", 8, "Block size of the coarse grid (px).", minimum=1),
        "opening": Param("int", 1, "Opening disk radius (coarse px).", minimum=0),
        "closing": Param("int", 2, "Closing disk radius (coarse px).", minimum=0),
        "fill_holes": Param("bool", True, "Fill holes in the tissue."),
        "invert": Param("bool", False, "Tissue is darker than the threshold (brightfield)."),
    },
)
def blob(inputs, params, context):
    """A coarse tissue mask (1 = tissue): threshold the image (``invert``: tissue below the
    threshold), downscale by ``downscale``
    (a block is tissue when half its pixels are), open, close, fill holes and upscale."""
    return blob_mask(
        inputs["input"][0],
        params["threshold"],
        params["downscale"],
        params["opening"],
        params["closing"],
        params["fill_holes"],
        params["invert"],
    )


@register(
    "repair",
    "mask_builder",
    inputs={
        "cells": Role(MASK, max_count=1, help="Cell mask."),
        "nuclei": Role(MASK, max_count=1, help="Nuclear mask."),
    },
    outputs={
        "cells": Role(MASK, required=False),
        "nuclei": Role(MASK, required=False),
        "cytoplasm": Role(MASK, required=False),
    },
    params={
        "trim": Param(
            "bool", True, "Trim nuclei to their cell's interior.", option="repair --trim"
        ),
    },
)
def repair(inputs, params, context):
    """Cell-nucleus matching as the ``repair`` command: matched cells, nuclei and their
    cytoplasm with shared IDs 1..N; unmatched objects dropped."""
    from steinbock_like.repair import repair_masks

    result = repair_masks(inputs["cells"][0], inputs["nuclei"][0], trim=params["trim"])
    return {"cells": result.cells, "nuclei": result.nuclei, "cytoplasm": result.cytoplasm}
