"""The label layout of a synthetic tissue: touching cells, nuclei inside them, empty regions."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import cached_property

import numpy as np
from scipy import ndimage

from steinbock_like.example.markers import (
    CELL_TYPES,
    NUCLEUS_FRACTION,
    SEED_RADIUS,
    STROMA_DOMAIN_MIX,
    TUMOR_DOMAIN_MIX,
)

logger = logging.getLogger(__name__)


DEFAULT_SPACING = 11.0  # px between neighbouring cell centres (about 1 um per px in IMC)
MIN_NUCLEUS_MARGIN = 1.5  # px between a nucleus and its cell's edge: strictly inside
MEMBRANE_WIDTH = 0.7  # sd (px) of the membrane's intensity profile across the cell edge
MEMBRANE_INTERIOR = 0.12  # membrane marker level in the cell's interior, relative to its edge
CYTOPLASM_IN_NUCLEUS = 0.25  # cytoplasmic marker level over the nucleus, relative
ROW_CHUNK = 512  # rows per block where per-pixel temporaries would be large


@dataclass
class Tissue:
    """The label layout of one synthetic image.

    Attributes
    ----------
    cells : ndarray of int32, shape (Y, X)
        Cell IDs 1..n, 0 for background; touching cells share an edge.
    nuclei : ndarray of int32, shape (Y, X)
        The ID of the enclosing cell on nucleus pixels, 0 elsewhere.
    cell_types : ndarray of int8, shape (n + 1,)
        Index into :data:`CELL_TYPES` per cell ID (-1 at index 0, the background).
    edge_distance : ndarray of float32, shape (Y, X)
        Distance (px) to the nearest cell-edge pixel (0 on the edge); cells cut
        by the image border have no edge there.
    empty : ndarray of bool, shape (Y, X)
        Empty regions (vessels, lumens): no cells.
    """

    cells: np.ndarray
    nuclei: np.ndarray
    cell_types: np.ndarray
    edge_distance: np.ndarray
    empty: np.ndarray

    @property
    def shape(self) -> tuple[int, int]:
        return tuple(self.cells.shape)

    @property
    def num_cells(self) -> int:
        return len(self.cell_types) - 1

    @cached_property
    def membrane_profile(self) -> np.ndarray:
        """Relative membrane-marker level per pixel: 1 on the cell edge, low inside."""
        profile = np.square(self.edge_distance, dtype=np.float32)
        profile *= np.float32(-0.5 / MEMBRANE_WIDTH**2)
        np.exp(profile, out=profile)
        profile *= np.float32(1.0 - MEMBRANE_INTERIOR)
        profile += np.float32(MEMBRANE_INTERIOR)
        profile[self.cells == 0] = 0.0
        return profile

    @cached_property
    def cytoplasm_profile(self) -> np.ndarray:
        """Relative cytoplasmic-marker level per pixel: 1 in the cytoplasm, dim over nuclei."""
        profile = (self.cells > 0).astype(np.float32)
        profile[self.nuclei > 0] = CYTOPLASM_IN_NUCLEUS
        return profile

    @cached_property
    def matrix_mask(self) -> np.ndarray:
        """Intercellular space that holds extracellular matrix (not cells, not empty regions)."""
        return (self.cells == 0) & ~self.empty


def simulate_tissue(
    shape: tuple[int, int],
    rng: np.random.Generator,
    *,
    cell_spacing: float = DEFAULT_SPACING,
    empty_fraction: float = 0.06,
    gap_fraction: float = 0.06,
    tumor_fraction: float = 0.5,
) -> Tissue:
    """Simulate the cell and nucleus layout of a tissue section.

    Parameters
    ----------
    shape : (int, int)
        Image (Y, X) in pixels.
    rng : numpy.random.Generator
        Source of randomness; the same state gives the same tissue.
    cell_spacing : float
        Typical distance between neighbouring cell centres (px).
    empty_fraction : float
        Approximate fraction of the area in empty regions (at least one region
        is placed where the image can hold one).
    gap_fraction : float
        Fraction of cell positions left out, opening small intercellular gaps.
    tumor_fraction : float
        Fraction of cells in tumour nests (the rest is immune/stromal).

    Returns
    -------
    Tissue
        Cell IDs are consecutive from 1; every cell has exactly one nucleus.
    """
    height, width = (int(n) for n in shape)
    if height < 1 or width < 1:
        raise ValueError(f"tissue shape must be positive, got {shape}")
    spacing = float(cell_spacing)
    scale = spacing / DEFAULT_SPACING
    seed_radius = np.minimum(np.asarray(SEED_RADIUS) * scale, 0.18 * spacing)
    reach = 0.42 * spacing  # furthest a cell grows beyond its seed disc
    # Simulate on a padded canvas and crop, so that border cells are cut, not missing.
    pad = int(np.ceil(1.5 * spacing))
    canvas = (height + 2 * pad, width + 2 * pad)

    seeds = _jittered_hex_seeds(canvas, spacing, rng)
    seeds = seeds[rng.random(len(seeds)) >= gap_fraction]
    empty_canvas = _empty_regions(canvas, pad, spacing, empty_fraction, rng)
    if empty_canvas.any():
        # Keep seeds far enough from empty regions that no cell can reach into one.
        distance = ndimage.distance_transform_edt(~empty_canvas)
        keep = distance[seeds[:, 0], seeds[:, 1]] > reach + seed_radius.max() + 1.5
        seeds = seeds[keep]
        del distance
    types = _cell_types(seeds, canvas, spacing, tumor_fraction, rng)

    cells = _grow_cells(canvas, seeds, seed_radius[types], reach)
    cells[empty_canvas] = 0
    edge_distance = _edge_distance(cells)
    nuclei = _place_nuclei(cells, seeds, types, edge_distance, rng)

    crop = (slice(pad, pad + height), slice(pad, pad + width))
    cells, nuclei = cells[crop], nuclei[crop]
    edge_distance = np.ascontiguousarray(edge_distance[crop])
    empty = np.ascontiguousarray(empty_canvas[crop])
    # Cells whose nucleus lies outside the image (or that got none) are dropped,
    # so that cells and nuclei match one to one; then IDs are made consecutive.
    has_nucleus = np.bincount(nuclei.ravel(), minlength=len(seeds) + 1) > 0
    has_nucleus[0] = False
    new_ids = np.zeros(len(seeds) + 1, dtype=np.int32)
    new_ids[has_nucleus] = np.arange(1, int(has_nucleus.sum()) + 1, dtype=np.int32)
    cells = new_ids[cells]
    nuclei = new_ids[nuclei]
    cell_types = np.concatenate([[-1], types[has_nucleus[1:]]]).astype(np.int8)
    return Tissue(cells, nuclei, cell_types, edge_distance, empty)


def _jittered_hex_seeds(shape, spacing: float, rng: np.random.Generator) -> np.ndarray:
    """Cell centres (int, N x 2, y/x) on a hexagonal grid, each moved randomly.

    The jitter is at most a quarter of the spacing, so neighbours stay at least
    half a spacing apart (a Poisson-disc-like pattern at the cost of a grid).
    """
    row_step = spacing * np.sqrt(3) / 2
    rows = np.arange(0, shape[0], row_step)
    cols = np.arange(0, shape[1], spacing)
    y, x = np.meshgrid(rows, cols, indexing="ij")
    x = x + (np.arange(len(rows)) % 2)[:, None] * spacing / 2
    radius = 0.24 * spacing * np.sqrt(rng.random(y.shape))
    angle = rng.uniform(0, 2 * np.pi, y.shape)
    y = np.rint(y + radius * np.sin(angle)).astype(np.int64).ravel()
    x = np.rint(x + radius * np.cos(angle)).astype(np.int64).ravel()
    inside = (y >= 0) & (y < shape[0]) & (x >= 0) & (x < shape[1])
    return np.stack([y[inside], x[inside]], axis=1)


def _empty_regions(shape, pad, spacing, fraction, rng: np.random.Generator) -> np.ndarray:
    """A boolean mask of a few elliptical empty regions (vessels, lumens)."""
    height, width = shape
    empty = np.zeros(shape, dtype=bool)
    inner = (height - 2 * pad, width - 2 * pad)
    mean_area = np.pi * (3.0 * spacing) ** 2 * 0.75
    count = rng.poisson(fraction * inner[0] * inner[1] / mean_area)
    if fraction > 0 and min(inner) >= 12 * spacing:
        count = max(count, 1)  # so that every reasonably sized image shows one
    for _ in range(count):
        major = rng.uniform(1.5, 4.5) * spacing
        minor = major * rng.uniform(0.5, 1.0)
        angle = rng.uniform(0, np.pi)
        cy = pad + rng.uniform(0, inner[0])
        cx = pad + rng.uniform(0, inner[1])
        y0, y1 = int(max(cy - major - 1, 0)), int(min(cy + major + 2, height))
        x0, x1 = int(max(cx - major - 1, 0)), int(min(cx + major + 2, width))
        yy, xx = np.ogrid[y0:y1, x0:x1]
        u = (xx - cx) * np.cos(angle) + (yy - cy) * np.sin(angle)
        v = -(xx - cx) * np.sin(angle) + (yy - cy) * np.cos(angle)
        empty[y0:y1, x0:x1] |= (u / major) ** 2 + (v / minor) ** 2 <= 1
    return empty


def _cell_types(seeds, shape, spacing, tumor_fraction, rng: np.random.Generator) -> np.ndarray:
    """A cell type per seed: tumour nests and immune/stromal areas from a smooth random field."""
    if len(seeds) == 0:
        return np.zeros(0, dtype=np.int64)
    domain_size = 12 * spacing  # tumour nests of about a dozen cells across
    coarse = rng.standard_normal((int(shape[0] / domain_size) + 5, int(shape[1] / domain_size) + 5))
    coarse = ndimage.gaussian_filter(coarse, 1.0)
    field_at_seeds = ndimage.map_coordinates(
        coarse, [seeds[:, 0] / domain_size + 2, seeds[:, 1] / domain_size + 2], order=3
    )
    tumor_domain = field_at_seeds > np.quantile(field_at_seeds, 1 - tumor_fraction)
    types = np.empty(len(seeds), dtype=np.int64)
    for in_domain, mix in ((tumor_domain, TUMOR_DOMAIN_MIX), (~tumor_domain, STROMA_DOMAIN_MIX)):
        mix = np.asarray(mix) / np.sum(mix)
        types[in_domain] = rng.choice(len(CELL_TYPES), size=int(in_domain.sum()), p=mix)
    return types


def _grow_cells(shape, seeds: np.ndarray, radii: np.ndarray, reach: float) -> np.ndarray:
    """Label each pixel with its nearest seed disc, up to ``reach`` px from the disc.

    Growing from discs of different radii gives an additively weighted Voronoi
    tessellation: curved edges, cells of different sizes, touching neighbours.
    Seed IDs are 1 + the seed's index.
    """
    discs = np.zeros(shape, dtype=np.int32)
    ids = np.arange(1, len(seeds) + 1, dtype=np.int32)
    # Largest discs first, so that the smaller disc keeps the centre of a rare overlap.
    for radius in np.unique(radii)[::-1]:
        chosen = radii == radius
        r = int(np.floor(radius))
        dy, dx = np.mgrid[-r : r + 1, -r : r + 1]
        within = dy**2 + dx**2 <= radius**2
        for oy, ox in zip(dy[within], dx[within], strict=True):
            y = np.clip(seeds[chosen, 0] + oy, 0, shape[0] - 1)
            x = np.clip(seeds[chosen, 1] + ox, 0, shape[1] - 1)
            discs[y, x] = ids[chosen]
    discs[seeds[:, 0], seeds[:, 1]] = ids  # every seed keeps its centre pixel
    distance, (iy, ix) = ndimage.distance_transform_edt(discs == 0, return_indices=True)
    cells = discs[iy, ix]
    del iy, ix
    cells[distance > reach] = 0
    return cells


def _edge_distance(cells: np.ndarray) -> np.ndarray:
    """Distance (float32 px) to the nearest edge pixel: a cell pixel next to another label."""
    edge = np.zeros(cells.shape, dtype=bool)
    vertical = cells[1:] != cells[:-1]
    edge[1:] |= vertical
    edge[:-1] |= vertical
    del vertical
    horizontal = cells[:, 1:] != cells[:, :-1]
    edge[:, 1:] |= horizontal
    edge[:, :-1] |= horizontal
    del horizontal
    edge &= cells > 0
    if not edge.any():
        return np.full(cells.shape, np.inf, dtype=np.float32)
    return ndimage.distance_transform_edt(~edge).astype(np.float32)


def _place_nuclei(cells, seeds, types, edge_distance, rng: np.random.Generator) -> np.ndarray:
    """An elliptical nucleus around each cell's seed, kept off the cell's edge.

    The ellipse is clipped to pixels at least :data:`MIN_NUCLEUS_MARGIN` from
    any edge pixel, so every nucleus pixel and its 8 neighbours lie in the cell.
    """
    count = len(seeds)
    area = np.bincount(cells.ravel(), minlength=count + 1)[1:].astype(np.float32)
    radius = np.sqrt(area / np.pi)
    low, high = np.asarray(NUCLEUS_FRACTION).T
    size = radius * rng.uniform(low[types], high[types]).astype(np.float32)
    elongation = rng.uniform(1.0, 1.35, count).astype(np.float32)
    angle = rng.uniform(0, np.pi, count)
    # Per-ID tables (index 0 = background) for vectorised per-pixel lookups.
    inv_major2 = np.concatenate([[0], 1 / np.maximum(size * elongation, 0.5) ** 2])
    inv_minor2 = np.concatenate([[0], 1 / np.maximum(size / elongation, 0.5) ** 2])
    cos = np.concatenate([[0], np.cos(angle)]).astype(np.float32)
    sin = np.concatenate([[0], np.sin(angle)]).astype(np.float32)
    centre_y = np.concatenate([[0], seeds[:, 0]]).astype(np.float32)
    centre_x = np.concatenate([[0], seeds[:, 1]]).astype(np.float32)
    inv_major2, inv_minor2 = inv_major2.astype(np.float32), inv_minor2.astype(np.float32)

    nuclei = np.zeros_like(cells)
    x = np.arange(cells.shape[1], dtype=np.float32)
    for start in range(0, cells.shape[0], ROW_CHUNK):
        labels = cells[start : start + ROW_CHUNK]
        y = np.arange(start, start + len(labels), dtype=np.float32)[:, None]
        dy = y - centre_y[labels]
        dx = x - centre_x[labels]
        u = dx * cos[labels] + dy * sin[labels]
        v = dy * cos[labels] - dx * sin[labels]
        inside = u * u * inv_major2[labels] + v * v * inv_minor2[labels] <= 1
        inside &= edge_distance[start : start + ROW_CHUNK] >= MIN_NUCLEUS_MARGIN
        inside &= labels > 0
        nuclei[start : start + ROW_CHUNK][inside] = labels[inside]
    return nuclei
