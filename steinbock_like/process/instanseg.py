"""InstanSeg segmentation (the ``instanseg-torch`` package) with a TorchScript model file the
user provides; nothing is downloaded at run time."""

from __future__ import annotations

import numpy as np

from steinbock_like.errors import InputError, MissingToolError
from steinbock_like.process.registry import IMAGE, MASK, Param, Role, register

INSTALL_HINT = "install it with: pip install 'steinbock-like[instanseg]' (torch==2.13.0 first)"


def _import_instanseg():
    try:
        import torch
        from instanseg import InstanSeg
    except ImportError as error:
        raise MissingToolError(
            f"instanseg-torch cannot be imported ({error}): {INSTALL_HINT}"
        ) from error
    return torch, InstanSeg


def _prepare_instanseg(params, context):
    from importlib.metadata import version

    from steinbock_like.models import sha256_of_file

    path = context.path(params["model"])
    if not path.is_file():
        raise InputError(
            path, "InstanSeg model file not found (a TorchScript .pt exported by instanseg-torch)"
        )
    _import_instanseg()
    return {
        "model": str(path),
        "_versions": {
            "instanseg-torch": version("instanseg-torch"),
            "instanseg_model_sha256": sha256_of_file(path),
        },
    }


def load_instanseg(path: str, threads: int | None = None):
    """The InstanSeg inference object for a TorchScript model file, on the CPU."""
    torch, InstanSeg = _import_instanseg()
    if threads:
        torch.set_num_threads(int(threads))
    try:
        network = torch.jit.load(str(path), map_location="cpu")
    except Exception as error:  # torch raises RuntimeError/ValueError for a bad file
        raise InputError(path, f"cannot be loaded as a TorchScript model ({error})") from None
    return InstanSeg(network, device="cpu", verbosity=0)


def segment_instanseg(
    model,
    image: np.ndarray,
    *,
    pixel_size: float | None,
    tile_size: int,
    batch_size: int,
    normalise: bool,
    targets: list[str],
) -> dict[str, np.ndarray]:
    """Run InstanSeg's tiled inference on a CYX image; ``targets`` among nucleus, cell.

    Returns a dict target -> label mask (int32, shape YX) in image coordinates.
    """
    import torch

    tensor = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32))
    both = bool(getattr(model.instanseg, "cells_and_nuclei", False))
    target = (
        "all_outputs"
        if (len(targets) == 2 or not both)
        else ("nuclei" if targets == ["nucleus"] else "cells")
    )
    with torch.no_grad():
        instances = model.eval_medium_image(
            tensor,
            pixel_size=pixel_size,
            normalise=normalise,
            tile_size=tile_size,
            batch_size=batch_size,
            return_image_tensor=False,
            target=target,
        )
    labels = instances.detach().cpu().numpy().reshape(-1, *image.shape[1:]).astype(np.int32)
    if target == "all_outputs" and both:
        by_target = {"nucleus": labels[0], "cell": labels[1]}
    else:
        by_target = {t: labels[0] for t in targets}
    return {t: by_target[t] for t in targets}


@register(
    "instanseg",
    "object_segmenter",
    inputs={"input": Role(IMAGE, help="Channels given to the network (CYX, in this order).")},
    outputs={"nucleus": Role(MASK, required=False), "cell": Role(MASK, required=False)},
    params={
        "model": Param("path", "instanseg.pt", "TorchScript model file (never downloaded)."),
        "pixel_size": Param(
            "float", None, "Pixel size (um); rescaled to the model's.", minimum=0, nullable=True
        ),
        "tile_size": Param("int", 512, "Tile size of the sliding window (px).", minimum=64),
        "batch_size": Param("int", 1, "Tiles per network call.", minimum=1),
        "normalise": Param("bool", True, "InstanSeg's percentile normalisation."),
        "threads": Param("int", None, "torch CPU threads.", minimum=1, nullable=True),
    },
    prepare=_prepare_instanseg,
)
def instanseg(inputs, params, context):
    """InstanSeg (``instanseg-torch``) with a TorchScript model file you provide: the
    channels go to the network in the order given, the image is tiled by InstanSeg's
    sliding window; outputs ``nucleus`` and/or ``cell`` label masks."""
    key = ("instanseg", params["model"], params["threads"])
    if key not in context.cache:
        context.cache[key] = load_instanseg(params["model"], params["threads"])
    image = np.stack([np.asarray(x, dtype=np.float32) for x in inputs["input"]])
    return segment_instanseg(
        context.cache[key],
        image,
        pixel_size=params["pixel_size"],
        tile_size=params["tile_size"],
        batch_size=params["batch_size"],
        normalise=params["normalise"],
        targets=params["_outputs"],
    )
