"""Mesmer (deepcell's multiplexed tissue segmentation) on ONNX Runtime, without TensorFlow.

Usage::

    from steinbock_like.models import locate_mesmer_model
    from steinbock_like.segment.mesmer import MesmerSegmenter, mesmer_input

    segmenter = MesmerSegmenter(locate_mesmer_model(), threads=2)
    nuclear, membrane = mesmer_input(image_cyx, panel, minmax=True)
    masks = segmenter.segment(nuclear, membrane, pixel_size_um=1.0, compartment="both")
    masks["whole-cell"], masks["nuclear"]

Modules: :mod:`.inputs` (channel groups), :mod:`.preprocess` (resize, clipping,
CLAHE), :mod:`.tiling` (tiles and blending), :mod:`.model` (the network),
:mod:`.postprocess` (deep watershed), :mod:`steinbock_like.tiles` (large images),
:mod:`.segmenter` (the pipeline).
"""

import importlib

# Loaded on first use: the command line imports .inputs (light) without the network,
# scipy.signal and the rest, which only the process that segments needs.
_EXPORTS = {
    "mesmer_input": "inputs",
    "NUCLEAR_PARAMS": "postprocess",
    "WHOLE_CELL_PARAMS": "postprocess",
    "WatershedParams": "postprocess",
    "COMPARTMENTS": "segmenter",
    "MesmerSegmenter": "segmenter",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)
