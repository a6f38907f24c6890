"""The example panel: cell types, their markers and where each marker sits in a cell."""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from steinbock_like.errors import SteinbockLikeError

logger = logging.getLogger(__name__)


CELL_TYPES = (
    "tumor",
    "T_helper",
    "T_cytotoxic",
    "B_cell",
    "macrophage",
    "endothelial",
    "fibroblast",
)
COMPARTMENTS = ("nuclear", "membrane", "cytoplasm", "extracellular")

# Cell-type mix in tumour nests and in the surrounding stroma (same order as CELL_TYPES).
TUMOR_DOMAIN_MIX = (0.85, 0.03, 0.04, 0.0, 0.05, 0.01, 0.02)
STROMA_DOMAIN_MIX = (0.03, 0.18, 0.15, 0.12, 0.17, 0.12, 0.23)
# Radius (px, at the default spacing of 11 px) of the seed disc each type grows
# from: a larger disc wins more of the contested space, so tumour cells and
# macrophages come out larger than lymphocytes.
SEED_RADIUS = (2.0, 1.0, 1.0, 1.0, 2.0, 1.5, 1.5)
# Nucleus semi-axis as a fraction of the cell's equivalent radius (low, high).
NUCLEUS_FRACTION = (
    (0.55, 0.72),
    (0.7, 0.85),
    (0.7, 0.85),
    (0.7, 0.85),
    (0.5, 0.65),
    (0.5, 0.65),
    (0.5, 0.65),
)


@dataclass(frozen=True)
class Marker:
    """One panel channel: a metal-tagged antibody and where its target sits.

    Parameters
    ----------
    channel : str
        Metal tag, e.g. ``"Ir191"`` (the panel's channel ID).
    name : str
        Target name, e.g. ``"DNA1"``.
    compartment : {"nuclear", "membrane", "cytoplasm", "extracellular"}
        Where the signal lies.
    levels : mapping
        Cell type -> mean counts per pixel in the compartment of positive cells.
    fractions : mapping
        Cell type -> fraction of cells that are positive (1 where unlisted).
    matrix : float
        Mean counts per pixel in the intercellular space (extracellular matrix).
    segmentation : bool
        Broadly expressed: listed in the panel's ilastik/deepcell/cellpose groups.
    """

    channel: str
    name: str
    compartment: str
    levels: Mapping[str, float] = field(default_factory=dict)
    fractions: Mapping[str, float] = field(default_factory=dict)
    matrix: float = 0.0
    segmentation: bool = False

    @property
    def mass(self) -> int:
        return int(re.sub(r"\D", "", self.channel))


def _all(level: float) -> dict[str, float]:
    return dict.fromkeys(CELL_TYPES, level)


_T = ("T_helper", "T_cytotoxic")

# In priority order: the first C markers make a C-channel panel, so any prefix
# of length >= 3 has a nuclear, a membrane and a cytoplasmic marker.
MARKERS: tuple[Marker, ...] = (
    Marker("Ir191", "DNA1", "nuclear", _all(20.0), segmentation=True),
    Marker("Yb171", "HLA-ABC", "membrane", {**_all(6.0), "tumor": 8.0}, segmentation=True),
    Marker("Nd148", "panCK", "cytoplasm", {"tumor": 15.0}, segmentation=True),
    Marker("Ir193", "DNA2", "nuclear", _all(35.0), segmentation=True),
    Marker("Gd158", "E-cadherin", "membrane", {"tumor": 12.0}, segmentation=True),
    Marker(
        "Sm152",
        "CD45",
        "membrane",
        {**dict.fromkeys(_T + ("B_cell",), 10.0), "macrophage": 8.0},
        segmentation=True,
    ),
    Marker(
        "Nd143",
        "Vimentin",
        "cytoplasm",
        {"fibroblast": 12.0, "endothelial": 8.0, "macrophage": 5.0},
        segmentation=True,
    ),
    Marker("Er170", "CD3", "membrane", dict.fromkeys(_T, 8.0), segmentation=True),
    Marker("Yb176", "Histone H3", "nuclear", _all(10.0), segmentation=True),
    Marker("Tb159", "CD68", "cytoplasm", {"macrophage": 12.0}, segmentation=True),
    Marker("Dy161", "CD20", "membrane", {"B_cell": 10.0}, segmentation=True),
    Marker("Dy162", "CD8a", "membrane", {"T_cytotoxic": 8.0}),
    Marker("Gd156", "CD4", "membrane", {"T_helper": 6.0, "macrophage": 2.0}),
    Marker("Eu151", "CD31", "membrane", {"endothelial": 10.0}),
    Marker("Pr141", "alphaSMA", "cytoplasm", {"fibroblast": 12.0, "endothelial": 3.0}),
    Marker(
        "Er168",
        "Ki-67",
        "nuclear",
        {"tumor": 15.0, **dict.fromkeys(_T, 10.0)},
        {"tumor": 0.3, **dict.fromkeys(_T, 0.1)},
    ),
    Marker("Tm169", "Collagen I", "extracellular", {"fibroblast": 1.0}, matrix=4.0),
    Marker("Gd155", "FOXP3", "nuclear", {"T_helper": 8.0}, {"T_helper": 0.2}),
    Marker("Er167", "Granzyme B", "cytoplasm", {"T_cytotoxic": 8.0}, {"T_cytotoxic": 0.4}),
    Marker("Sm147", "CD163", "membrane", {"macrophage": 8.0}, {"macrophage": 0.6}),
    Marker(
        "Yb174",
        "HLA-DR",
        "membrane",
        {"B_cell": 10.0, "macrophage": 10.0, "tumor": 2.0},
        {"tumor": 0.2},
    ),
    Marker("Nd144", "CD14", "membrane", {"macrophage": 6.0}),
    Marker("Nd146", "CD16", "membrane", {"macrophage": 4.0}, {"macrophage": 0.5}),
    Marker("Sm149", "CD11b", "membrane", {"macrophage": 6.0}),
    Marker("Yb173", "CD45RO", "membrane", dict.fromkeys(_T, 6.0), dict.fromkeys(_T, 0.5)),
    Marker(
        "Ho165",
        "PD-1",
        "membrane",
        {"T_cytotoxic": 5.0, "T_helper": 4.0},
        {"T_cytotoxic": 0.3, "T_helper": 0.2},
    ),
    Marker(
        "Dy163",
        "PD-L1",
        "membrane",
        {"tumor": 4.0, "macrophage": 5.0},
        {"tumor": 0.3, "macrophage": 0.5},
    ),
    Marker("Er166", "Beta-catenin", "membrane", {"tumor": 8.0}),
    Marker("Lu175", "p53", "nuclear", {"tumor": 10.0}, {"tumor": 0.4}),
    Marker("Dy164", "CAIX", "membrane", {"tumor": 6.0}, {"tumor": 0.3}),
    Marker("Nd142", "Cleaved Caspase3", "cytoplasm", {"tumor": 6.0}, {"tumor": 0.05}),
    Marker("Nd145", "CD11c", "membrane", {"macrophage": 5.0}, {"macrophage": 0.5}),
    Marker("Nd150", "pS6", "cytoplasm", {"tumor": 5.0, "fibroblast": 3.0}, {"tumor": 0.5}),
    Marker(
        "Eu153", "CD44", "membrane", {"tumor": 4.0, "fibroblast": 6.0, **dict.fromkeys(_T, 3.0)}
    ),
    Marker("Sm154", "Fibronectin", "extracellular", {"fibroblast": 1.5}, matrix=3.0),
    Marker("Gd160", "GATA3", "nuclear", {"tumor": 8.0, "T_helper": 3.0}, {"tumor": 0.7}),
    Marker("Yb172", "CK7", "cytoplasm", {"tumor": 8.0}, {"tumor": 0.7}),
    Marker("In113", "CD138", "membrane", {"B_cell": 6.0, "tumor": 3.0}, {"B_cell": 0.2}),
    Marker("In115", "CD57", "membrane", {"T_cytotoxic": 4.0}, {"T_cytotoxic": 0.2}),
    Marker("La139", "CD56", "membrane", {"T_cytotoxic": 3.0}, {"T_cytotoxic": 0.1}),
    Marker("Y89", "MPO", "cytoplasm", {"macrophage": 4.0}, {"macrophage": 0.2}),
    Marker("Pt195", "c-Myc", "nuclear", {"tumor": 5.0}, {"tumor": 0.4}),
    Marker("Pt196", "ER", "nuclear", {"tumor": 8.0}, {"tumor": 0.6}),
    Marker("Pt198", "Podoplanin", "membrane", {"fibroblast": 5.0, "endothelial": 3.0}),
    Marker("Bi209", "H3K27me3", "nuclear", _all(6.0)),
)
MIN_CHANNELS = 3
MAX_CHANNELS = len(MARKERS)

# Segmentation groups by compartment: ilastik (1 nuclear, 2 membrane, 3 cytoplasm),
# deepcell/Mesmer (1 nuclear, 2 membrane and cytoplasm), cellpose (1 cytoplasm, 2 nuclear).
GROUPS = {
    "ilastik": {"nuclear": 1, "membrane": 2, "cytoplasm": 3},
    "deepcell": {"nuclear": 1, "membrane": 2, "cytoplasm": 2},
    "cellpose": {"nuclear": 2, "membrane": 1, "cytoplasm": 1},
}


def select_markers(channels: int) -> list[Marker]:
    """The first ``channels`` markers of :data:`MARKERS`, in panel order (by mass).

    Raises
    ------
    SteinbockLikeError
        If ``channels`` is outside 3..:data:`MAX_CHANNELS`.
    """
    if not MIN_CHANNELS <= channels <= MAX_CHANNELS:
        raise SteinbockLikeError(
            f"the example panel has {MIN_CHANNELS} to {MAX_CHANNELS} channels, not {channels}"
        )
    return sorted(MARKERS[:channels], key=lambda marker: marker.mass)


def example_panel(markers: Sequence[Marker]) -> pd.DataFrame:
    """The panel table for ``markers``: channel, name, keep and the group columns.

    Group labels are floats (NaN where a marker is in no group), as
    :func:`steinbock_like.io.panel.read_panel` returns them.
    """
    rows = []
    for marker in markers:
        row = {"channel": marker.channel, "name": marker.name, "keep": True}
        for column, groups in GROUPS.items():
            group = groups.get(marker.compartment) if marker.segmentation else None
            row[column] = float(group) if group is not None else np.nan
        rows.append(row)
    return pd.DataFrame(rows, columns=["channel", "name", "keep", *GROUPS])
