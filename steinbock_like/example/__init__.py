"""Synthetic IMC-like example data with ground truth.

A packed tissue of touching cells (an additively weighted Voronoi tessellation
of jittered hexagonal seeds, cut off at a maximum reach so that some
intercellular space remains), a nucleus strictly inside every cell, a few empty
regions (vessels, lumens) and several cell types with their own marker
expression. Each channel is rendered from the label layout alone (expected
counts per pixel, a small Gaussian point-spread function, a low background and
Poisson sampling), so an image of any size is written one channel at a time and
the C x Y x X stack is never held in memory.

The pure pieces (:func:`simulate_tissue`, :func:`render_channel`,
:func:`example_panel`) are public for tests and other commands;
:func:`write_example_imc` writes a dataset in the standard layout (``panel.csv``,
``img/``, ``masks_truth/``, ``masks_truth_nuclei/``).

\b
markers.py   the panel: cell types, markers, compartments, segmentation groups
tissue.py    the label layout: cells, nuclei, empty regions
render.py    one channel's pixels from the layout
dataset.py   writing a dataset in the standard layout
labels.py    sparse training labels for a pixel classifier, drawn from the truth
"""

from steinbock_like.example.dataset import (
    ExampleSummary,
    channel_rng,
    example_image_names,
    example_outputs,
    layout_rng,
    write_example_image,
    write_example_imc,
)
from steinbock_like.example.labels import training_labels
from steinbock_like.example.markers import (
    CELL_TYPES,
    COMPARTMENTS,
    GROUPS,
    MARKERS,
    MAX_CHANNELS,
    MIN_CHANNELS,
    Marker,
    example_panel,
    select_markers,
)
from steinbock_like.example.render import cell_expression, render_channel
from steinbock_like.example.tissue import Tissue, simulate_tissue

__all__ = [
    "CELL_TYPES",
    "COMPARTMENTS",
    "GROUPS",
    "MARKERS",
    "MAX_CHANNELS",
    "MIN_CHANNELS",
    "ExampleSummary",
    "Marker",
    "Tissue",
    "cell_expression",
    "channel_rng",
    "example_image_names",
    "example_outputs",
    "example_panel",
    "layout_rng",
    "render_channel",
    "select_markers",
    "simulate_tissue",
    "training_labels",
    "write_example_image",
    "write_example_imc",
]
