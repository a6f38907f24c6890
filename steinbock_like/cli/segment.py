"""``steinbock-like segment``: cell (and nucleus) masks from images or probabilities."""

import click

from steinbock_like.cli.segment_cellpose import cellpose_cmd
from steinbock_like.cli.segment_cellprofiler import cellprofiler_group
from steinbock_like.cli.segment_mesmer import mesmer_cmd


@click.group(
    name="segment",
    help="""Segment cells: object masks (masks/) from images or pixel probabilities.

    \b
    cellprofiler  nuclei + propagation on ilastik probabilities (CellProfiler or native)
    mesmer        deep learning on nuclear + membrane channels (ONNX, no TensorFlow)
    cellpose      deep learning (Cellpose) on multiplexed or brightfield images
    """,
)
def segment_group() -> None:
    pass


segment_group.add_command(cellprofiler_group)
segment_group.add_command(mesmer_cmd)
segment_group.add_command(cellpose_cmd)
from steinbock_like.cli.segment_deepcell import deepcell_cmd  # noqa: E402

segment_group.add_command(deepcell_cmd)
