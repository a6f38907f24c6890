"""Cell segmentation with Cellpose: channel preparation, model lookup and a segmenter.

Multiplexed images are reduced to the two channels Cellpose models expect,
driven by the panel's ``cellpose`` column:

* group 1: cytoplasm/membrane signal (the channel to segment),
* group 2: nuclear signal (optional helper channel).

Within a group, channels are optionally normalised one by one (min-max or
z-score) and then aggregated (mean by default). A panel with only group 2
segments the nuclear signal itself (e.g. with the ``nuclei`` model).

Two Cellpose APIs are supported, detected from the installed version:

* 3.x: ``models.CellposeModel`` with built-in models cyto3, cyto2, cyto, nuclei
  and a ``channels=[1, 2]`` argument (segment channel 1, nuclei in channel 2);
* 4.x (Cellpose-SAM): models cpsam/cpsam_v2, which take up to three channels
  in any order through ``channel_axis``.

Models are never downloaded here: a name is looked up in Cellpose's own model
directory by :func:`steinbock_like.models.resolve_cellpose_model`, and a missing file
is a one-line :class:`~steinbock_like.errors.MissingToolError` saying where it must go.

Everything here except :class:`CellposeSegmenter` (which loads the network) is a
pure function on arrays; Cellpose and torch are imported only when a segmenter
is created.

\b
channels.py   the two input channels from the panel's ``cellpose`` column
segmenter.py  settings, the loaded network, Cellpose's version and API
blocks.py     large images block by block
grid.py       the whole image's network tiles, evaluated block by block
resize.py     OpenCV's resizing of the whole image, window by window
figures.py    overview figures
"""

from steinbock_like.segment.cellpose.blocks import (
    normalize_percentiles,
    segment_in_blocks,
)
from steinbock_like.segment.cellpose.channels import (
    CYTOPLASM_GROUP,
    NUCLEAR_GROUP,
    PANEL_COLUMN,
    cellpose_groups,
    prepare_channels,
)
from steinbock_like.segment.cellpose.figures import composite_rgb, display_scale, overview_figure
from steinbock_like.segment.cellpose.segmenter import (
    INSTALL_HINT,
    CellposeSegmenter,
    CellposeSettings,
    api_major,
    cellpose_version,
    versions,
)

__all__ = [
    "CYTOPLASM_GROUP",
    "INSTALL_HINT",
    "NUCLEAR_GROUP",
    "PANEL_COLUMN",
    "CellposeSegmenter",
    "CellposeSettings",
    "api_major",
    "cellpose_groups",
    "cellpose_version",
    "composite_rgb",
    "display_scale",
    "normalize_percentiles",
    "overview_figure",
    "prepare_channels",
    "segment_in_blocks",
    "versions",
]
