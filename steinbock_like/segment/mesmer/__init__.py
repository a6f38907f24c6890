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

from steinbock_like.segment.mesmer.inputs import mesmer_input
from steinbock_like.segment.mesmer.postprocess import (
    NUCLEAR_PARAMS,
    WHOLE_CELL_PARAMS,
    WatershedParams,
)
from steinbock_like.segment.mesmer.segmenter import COMPARTMENTS, MesmerSegmenter

__all__ = [
    "COMPARTMENTS",
    "NUCLEAR_PARAMS",
    "WHOLE_CELL_PARAMS",
    "MesmerSegmenter",
    "WatershedParams",
    "mesmer_input",
]
