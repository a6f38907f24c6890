"""ilastik's pixel features, computed as ilastik 1.3.3 (lazyflow + fastfilters) computes them.

The six feature types of ilastik's pixel classification workflow are built from separable
Gaussian-derivative filters on a presmoothed image:

* presmoothing: for a scale ``s > 1`` the image is smoothed with ``sqrt(s**2 - 1)`` and the
  feature is then computed at sigma 1; for ``s <= 1`` the image is smoothed with ``s`` and the
  feature computed at ``s`` (so a scale of 1.0 is smoothed twice);
* kernels: radius ``floor(window * sigma + 0.5)`` with a window of 3.5 sigma for presmoothing and
  2.0 sigma for the feature filters; float32 coefficients;
* borders mirror without repeating the edge pixel (``d c b | a b c d | c b a``);
* float32 arithmetic in fastfilters' order: one fused multiply-add per tap; along x, the
  pixels that fastfilters computes outside its AVX loops are rounded in the order of its
  compiled scalar code, so a value depends on its column (see ``_correlate``);
* DifferenceOfGaussians is ``G(sigma) - G(0.66 sigma)``; StructureTensorEigenvalues takes
  gradients at ``0.5 sigma`` and smooths their products at ``sigma``; eigenvalues come larger
  first.

Feature columns are ordered by feature type (in the selection's order), then scale, then input
channel, then component (eigenvalue index); :func:`feature_names` gives ilastik's names for them.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
from scipy.ndimage import correlate1d

GAUSSIAN_SMOOTHING = "GaussianSmoothing"
LAPLACIAN_OF_GAUSSIAN = "LaplacianOfGaussian"
GAUSSIAN_GRADIENT_MAGNITUDE = "GaussianGradientMagnitude"
DIFFERENCE_OF_GAUSSIANS = "DifferenceOfGaussians"
STRUCTURE_TENSOR_EIGENVALUES = "StructureTensorEigenvalues"
HESSIAN_OF_GAUSSIAN_EIGENVALUES = "HessianOfGaussianEigenvalues"

#: ilastik's feature ids, in the order of its feature-selection dialog.
FEATURE_IDS = (
    GAUSSIAN_SMOOTHING,
    LAPLACIAN_OF_GAUSSIAN,
    GAUSSIAN_GRADIENT_MAGNITUDE,
    DIFFERENCE_OF_GAUSSIANS,
    STRUCTURE_TENSOR_EIGENVALUES,
    HESSIAN_OF_GAUSSIAN_EIGENVALUES,
)

#: Names ilastik uses for the feature columns (``ClassifierForests/feature_names``).
FEATURE_DISPLAY_NAMES = {
    GAUSSIAN_SMOOTHING: "Gaussian Smoothing",
    LAPLACIAN_OF_GAUSSIAN: "Laplacian of Gaussian",
    GAUSSIAN_GRADIENT_MAGNITUDE: "Gaussian Gradient Magnitude",
    DIFFERENCE_OF_GAUSSIANS: "Difference of Gaussians",
    STRUCTURE_TENSOR_EIGENVALUES: "Structure Tensor Eigenvalues",
    HESSIAN_OF_GAUSSIAN_EIGENVALUES: "Hessian of Gaussian Eigenvalues",
}

#: Columns per input channel (2-D images: two eigenvalues).
FEATURE_COMPONENTS = {
    GAUSSIAN_SMOOTHING: 1,
    LAPLACIAN_OF_GAUSSIAN: 1,
    GAUSSIAN_GRADIENT_MAGNITUDE: 1,
    DIFFERENCE_OF_GAUSSIANS: 1,
    STRUCTURE_TENSOR_EIGENVALUES: 2,
    HESSIAN_OF_GAUSSIAN_EIGENVALUES: 2,
}

#: ilastik's default scale list (the columns of ``FeatureSelections/SelectionMatrix``).
DEFAULT_SCALES = (0.3, 0.7, 1.0, 1.6, 3.5, 5.0, 10.0)

PRESMOOTHING_WINDOW = 3.5
FILTER_WINDOW = 2.0
DOG_SIGMA_RATIO = 0.66
STRUCTURE_TENSOR_GRADIENT_RATIO = 0.5


@dataclass(frozen=True)
class FeatureSelection:
    """Which features at which scales, as stored in an ilastik project's ``FeatureSelections``.

    Parameters
    ----------
    feature_ids : sequence of str
        Feature types, one per row of ``selection_matrix`` (ilastik ids such as
        ``"GaussianSmoothing"``).
    scales : sequence of float
        Scales, one per column of ``selection_matrix``.
    selection_matrix : array-like of bool, shape (len(feature_ids), len(scales))
        True where a feature type is computed at a scale.
    compute_in_2d : bool
        ilastik's ``ComputeIn2d``; only affects feature names for 2-D images.
    """

    feature_ids: tuple[str, ...]
    scales: tuple[float, ...]
    selection_matrix: np.ndarray
    compute_in_2d: bool = True

    def __post_init__(self):
        matrix = np.array(self.selection_matrix, dtype=bool)
        object.__setattr__(self, "feature_ids", tuple(str(f) for f in self.feature_ids))
        object.__setattr__(self, "scales", tuple(float(s) for s in self.scales))
        if matrix.shape != (len(self.feature_ids), len(self.scales)):
            raise ValueError(
                f"selection matrix of shape {matrix.shape} does not match "
                f"{len(self.feature_ids)} features x {len(self.scales)} scales"
            )
        unknown = [f for f in self.feature_ids if f not in FEATURE_COMPONENTS]
        if unknown:
            raise ValueError(f"unknown feature {unknown[0]!r}; known: {', '.join(FEATURE_IDS)}")
        if any(s <= 0 for s in self.scales):
            raise ValueError(f"scales must be positive, got {self.scales}")
        matrix.setflags(write=False)
        object.__setattr__(self, "selection_matrix", matrix)

    @classmethod
    def from_pairs(cls, pairs: Sequence[tuple[str, float]]) -> FeatureSelection:
        """A selection of the given (feature id, scale) pairs, in ilastik's column order."""
        feature_ids = [f for f in FEATURE_IDS if any(p[0] == f for p in pairs)]
        feature_ids += [p[0] for p in pairs if p[0] not in feature_ids]
        scales = sorted({float(p[1]) for p in pairs})
        matrix = np.zeros((len(feature_ids), len(scales)), dtype=bool)
        for feature_id, scale in pairs:
            matrix[feature_ids.index(feature_id), scales.index(float(scale))] = True
        return cls(tuple(feature_ids), tuple(scales), matrix)

    def selected(self) -> list[tuple[str, float]]:
        """Selected (feature id, scale) pairs in column order: feature type, then scale."""
        return [
            (feature_id, scale)
            for i, feature_id in enumerate(self.feature_ids)
            for j, scale in enumerate(self.scales)
            if self.selection_matrix[i, j]
        ]

    def num_columns(self, num_channels: int) -> int:
        """Number of feature columns for an image of ``num_channels`` channels."""
        return num_channels * sum(FEATURE_COMPONENTS[f] for f, _ in self.selected())

    def halo(self) -> int:
        """Pixels of context a feature value depends on, for the largest selected filter."""
        return max((_scale_halo(scale) for _, scale in self.selected()), default=0)


def default_feature_selection() -> FeatureSelection:
    """All six feature types at scales 1.0, 1.6, 3.5, 5.0 and 10.0 (the choice for IMC)."""
    matrix = np.zeros((len(FEATURE_IDS), len(DEFAULT_SCALES)), dtype=bool)
    matrix[:, 2:] = True
    return FeatureSelection(FEATURE_IDS, DEFAULT_SCALES, matrix)


def feature_names(selection: FeatureSelection, num_channels: int) -> list[str]:
    """ilastik's names of the feature columns, e.g. ``"Gaussian Smoothing (σ=1.0) in 2D [0]"``.

    Parameters
    ----------
    selection : FeatureSelection
        The selected features.
    num_channels : int
        Number of input channels.

    Returns
    -------
    list of str
        One name per column, in column order (the bracketed index runs over channels and
        components, component fastest).
    """
    dims = "2D" if selection.compute_in_2d else "3D"
    names = []
    for feature_id, scale in selection.selected():
        count = num_channels * FEATURE_COMPONENTS[feature_id]
        label = f"{FEATURE_DISPLAY_NAMES[feature_id]} (σ={scale}) in {dims}"
        names += [f"{label} [{i}]" for i in range(count)]
    return names


def kernel_radius(sigma: float, window: float) -> int:
    """Half width of a Gaussian kernel: ``floor(window * sigma + 0.5)``."""
    return int(math.floor(window * sigma + 0.5))


def gaussian_kernel(sigma: float, order: int = 0, window: float = FILTER_WINDOW) -> np.ndarray:
    """A 1-D Gaussian (derivative) kernel with fastfilters' float32 coefficients.

    The coefficients are computed as fastfilters 0.2 computes them, rounding to float32 where
    it stores them: the sampled (derivative of the) Gaussian, for order 2 minus its mean over
    the taps, then divided by its normalisation sum (accumulated in double from the float32
    values). A rounding step elsewhere moves coefficients by one float32 step, enough to
    move a pixel's feature across a forest's split threshold.

    Parameters
    ----------
    sigma : float
        Standard deviation in pixels.
    order : {0, 1, 2}
        Derivative order.
    window : float
        Kernel radius in units of sigma (rounded to the nearest pixel; at least 1 for
        derivatives).

    Returns
    -------
    ndarray of float32, shape (2 * radius + 1,)
        Correlation kernel: order 0 sums to 1; order 1 responds with 1 to the ramp ``x``
        (antisymmetric); order 2 has zero sum and responds with 2 to ``x**2``.
    """
    if order not in (0, 1, 2):
        raise ValueError(f"derivative order must be 0, 1 or 2, got {order}")
    radius = kernel_radius(sigma, window)
    if order > 0:
        # A one-tap derivative kernel is 0/0 (fastfilters would give NaN); ilastik's dialog
        # offers sigma 0.3, the only scale where this happens, for Gaussian smoothing only.
        radius = max(radius, 1)
    x = np.arange(radius + 1, dtype=np.float64)
    if order == 0:
        norm = 1.0 / (math.sqrt(2.0 * math.pi) * sigma)
    else:
        norm = -1.0 / (math.sqrt(2.0 * math.pi) * sigma**3)
    gauss = norm * np.exp(x * x * (-0.5 / sigma / sigma))
    if order == 0:
        half = gauss.astype(np.float32)
    elif order == 1:
        half = (x * gauss).astype(np.float32)
    else:
        half = ((1.0 - (x / sigma) * (x / sigma)) * gauss).astype(np.float32)
        mean = float(half[0]) + sum(2 * float(v) for v in half[1:])
        mean /= 2.0 * radius + 1.0
        half = (half.astype(np.float64) - mean).astype(np.float32)
    if order == 0:
        total = float(half[0]) + sum(2 * float(v) for v in half[1:])
    elif order == 1:
        total = sum(-2.0 * float(v) * float(k) for k, v in enumerate(half) if k > 0)
    else:
        total = sum(float(v) * float(k) ** 2 for k, v in enumerate(half) if k > 0)
    half = (half.astype(np.float64) / total).astype(np.float32)
    if order == 1:
        half = -half  # positive taps for c_k * (x[i + k] - x[i - k])
        return np.concatenate([-half[:0:-1], half]).astype(np.float32)
    return np.concatenate([half[:0:-1], half]).astype(np.float32)


def presmoothing_sigma(scale: float) -> float:
    """Sigma of the presmoothing that ilastik applies before a feature at ``scale``."""
    return math.sqrt(scale**2 - 1.0) if scale > 1.0 else scale


def filter_sigma(scale: float) -> float:
    """Sigma at which ilastik computes a feature on the presmoothed image."""
    return 1.0 if scale > 1.0 else scale


def _filter_margin(scale: float) -> int:
    # The widest feature filter on the presmoothed image is the structure tensor:
    # gradient kernel plus smoothing of the gradient products.
    sigma = filter_sigma(scale)
    gradient = gaussian_kernel(STRUCTURE_TENSOR_GRADIENT_RATIO * sigma, 1).size // 2
    return gradient + gaussian_kernel(sigma, 2).size // 2


def _scale_halo(scale: float) -> int:
    return kernel_radius(presmoothing_sigma(scale), PRESMOOTHING_WINDOW) + _filter_margin(scale)


def _correlate(
    image: np.ndarray,
    kernel: np.ndarray,
    axis: int,
    columns: tuple[int, int] | None = None,
) -> np.ndarray:
    """Correlate along ``axis`` with mirror borders as fastfilters does; float32 out.

    fastfilters (AVX2 with FMA, as ilastik 1.3.3 runs it) computes each output pixel as
    ``c_0 * x[i]`` in float32, then adds ``c_k * (x[i + k] +- x[i - k])`` for k = 1..radius
    with one fused multiply-add (a single rounding) per tap. The fused step is exact here:
    the float32 product is exact in float64 and the float64 sum is rounded to float32.

    Along x (``axis=-1``) some pixels of each row are computed by fastfilters' scalar code,
    whose operation order differs for short kernels (see :func:`_scalar_columns`); pass
    ``columns=(first, width)``, the image column of ``image``'s first column and the image
    width, to reproduce them (default: ``image`` is the whole width).
    """
    radius = kernel.size // 2
    image = np.asarray(image, dtype=np.float32)
    if radius == 0:
        return image * kernel[0]
    left, right = kernel[radius - 1 :: -1], kernel[radius + 1 :]
    if radius >= image.shape[axis]:
        return correlate1d(image, kernel, axis=axis, mode="mirror")
    if np.array_equal(right, left):
        combine = np.add
    elif np.array_equal(right, -left):
        combine = np.subtract
    else:
        return correlate1d(image, kernel, axis=axis, mode="mirror")
    padded = _mirror_pad(image, radius, axis)
    length = image.shape[axis]
    index = [slice(None)] * image.ndim

    def shifted(offset: int) -> np.ndarray:
        index[axis] = slice(radius + offset, radius + offset + length)
        return padded[tuple(index)]

    out = np.multiply(shifted(0), kernel[radius])
    pair = np.empty(out.shape, dtype=np.float32)
    wide = np.empty(out.shape, dtype=np.float64)
    for j in range(1, radius + 1):
        combine(shifted(j), shifted(-j), out=pair)
        np.multiply(pair, np.float64(kernel[radius + j]), out=wide)
        wide += out
        out[...] = wide
    if axis in (-1, image.ndim - 1):
        first, width = columns if columns is not None else (0, length)
        for tree, positions in _scalar_columns(radius, first, length, width):
            taps = padded[..., positions[:, None] + radius + np.arange(-radius, radius + 1)]
            out[..., positions] = _evaluate(tree, taps, kernel[radius:], combine)
    return out


# Operation order of fastfilters' scalar x-pass code for the short kernels ilastik uses.
#
# fastfilters compiles its x pass with -Ofast for each kernel radius 1..10; the pixels of a
# row outside its AVX loops (the left border, up to the first multiple of 8, from the last
# multiple of 32 to the right border, and the right border) are plain C that the compiler
# reassociates. A tree is a tap index k (the rounded product c_k * p_k, p_0 = x[i],
# p_k = x[i + k] +- x[i - k]), ("fma", k, tree) (c_k * p_k + tree, one rounding) or ("add",
# tree, tree). Read off a build of fastfilters' 2017-2021 sources (the ones ilastik 1.3.x
# ships) with their flags and GCC 12 (features bit-identical to that build at every scale
# and width tried). The refdata confirms the radius-1 order (it decides a Difference of
# Gaussians pixel of mockData2_002); the others follow that build, as ilastik's own
# compiler is not at hand. Radii without an entry (3, 5..10: not reached by ilastik's
# scales 0.3 .. 10) keep the AVX order everywhere.
def _chain(radius: int):
    tree = 0
    for k in range(1, radius + 1):
        tree = ("fma", k, tree)
    return tree


_SCALAR_ORDERS = {
    # radius: (left-border pixel trees, aligned/tail tree, right-border tree)
    1: ((_chain(1),), ("fma", 0, 1), _chain(1)),
    2: ((_chain(2), ("fma", 2, ("fma", 0, 1))), ("fma", 0, ("fma", 1, 2)), _chain(2)),
    4: (
        (_chain(4),) * 4,
        ("fma", 0, ("add", ("fma", 1, 2), ("fma", 3, 4))),
        ("add", ("fma", 2, ("fma", 1, 0)), ("fma", 4, 3)),
    ),
}


def _scalar_columns(radius: int, first: int, length: int, width: int):
    """Yield ``(tree, positions)``: columns of an array (image columns ``first`` to
    ``first + length``) that fastfilters computes in scalar code, grouped by operation order.

    For a row of ``width`` pixels and kernel radius r: pixels x < r are the left border
    (one tree per x); x >= width - r the right border; the AVX loops cover
    [align8(r), (width - r) rounded down to 32) when that end lies beyond align32(align8(r)),
    and the rest is scalar. Radii without a known scalar order yield nothing.
    """
    if radius not in _SCALAR_ORDERS:
        return
    left_trees, inner_tree, right_tree = _SCALAR_ORDERS[radius]
    aligned = (radius + 7) & ~7
    avx_end = (width - radius) & ~31
    avx = (aligned, avx_end) if avx_end > ((aligned + 31) & ~31) else (0, 0)
    x = np.arange(first, first + length)
    for border_x in range(min(radius, first + length)):
        if border_x >= first:
            yield left_trees[border_x], np.array([border_x - first], dtype=np.intp)
    right = (x >= width - radius) & (x >= radius)
    inner = (x >= radius) & ~right & ((x < avx[0]) | (x >= avx[1]))
    for tree, mask in ((inner_tree, inner), (right_tree, right)):
        if mask.any():
            yield tree, np.flatnonzero(mask)


def _evaluate(tree, taps: np.ndarray, coefficients: np.ndarray, combine) -> np.ndarray:
    """Evaluate an operation tree on ``taps`` (..., n, 2r + 1): float32, one rounding per op."""
    radius = coefficients.size - 1

    def pair(k: int) -> np.ndarray:
        if k == 0:
            return taps[..., radius]
        return combine(taps[..., radius + k], taps[..., radius - k])

    def value(node) -> np.ndarray:
        if isinstance(node, int):
            return pair(node) * coefficients[node]
        if node[0] == "fma":
            fused = pair(node[1]).astype(np.float64) * np.float64(coefficients[node[1]])
            return (fused + value(node[2])).astype(np.float32)
        return value(node[1]) + value(node[2])

    return value(tree)


def _mirror_pad(image: np.ndarray, radius: int, axis: int) -> np.ndarray:
    """Pad ``radius`` mirrored values (edge not repeated) at both ends of ``axis``; float32."""
    length = image.shape[axis]
    shape = list(image.shape)
    shape[axis] = length + 2 * radius
    padded = np.empty(shape, dtype=np.float32)
    index = [slice(None)] * image.ndim

    def at(span):
        index[axis] = span
        return tuple(index)

    padded[at(slice(radius, radius + length))] = image
    for j in range(1, radius + 1):
        padded[at(radius - j)] = image[at(j)]
        padded[at(radius + length - 1 + j)] = image[at(length - 1 - j)]
    return padded


def _separable(
    image: np.ndarray,
    kernel_y: np.ndarray,
    kernel_x: np.ndarray,
    rows: slice = slice(None),
    cols: slice = slice(None),
    columns: tuple[int, int] | None = None,
) -> np.ndarray:
    """Correlate the last two axes of ``image`` with a separable kernel, mirroring at borders,
    and keep ``rows`` and ``cols`` of the result.

    Along x first, then y, as fastfilters does (the order changes float32 rounding); the y
    pass runs on the kept columns only. ``columns``: see :func:`_correlate`.
    """
    along_x = _correlate(image, kernel_x, axis=-1, columns=columns)[..., cols]
    return _correlate(along_x, kernel_y, axis=-2)[..., rows, :]


def _symmetric_eigenvalues(
    a: np.ndarray, b: np.ndarray, c: np.ndarray, out_large: np.ndarray, out_small: np.ndarray
) -> None:
    """Eigenvalues of the 2 x 2 symmetric matrices ``[[a, b], [b, c]]``, larger first."""
    half_trace = (a + c) * np.float32(0.5)
    radius = (a - c) * np.float32(0.5)
    np.square(radius, out=radius)
    radius += b * b
    np.sqrt(radius, out=radius)
    np.add(half_trace, radius, out=out_large)
    np.subtract(half_trace, radius, out=out_small)


class _ScaleResponses:
    """Filter responses of a presmoothed image at one feature sigma, each computed once."""

    def __init__(
        self,
        presmoothed: np.ndarray,
        sigma: float,
        rows: slice,
        cols: slice,
        columns: tuple[int, int],
    ):
        self.image = presmoothed
        self.sigma = sigma
        self.rows = rows
        self.cols = cols
        self.columns = columns  # (image column of the first column, image width)
        self._kernels = {k: gaussian_kernel(sigma, k) for k in (0, 1, 2)}
        self._along_x: dict[int, np.ndarray] = {}
        self._cache: dict[str, np.ndarray] = {}

    def _x_pass(self, order: int) -> np.ndarray:
        # fastfilters filters along x first; cropping to the output columns before the y
        # pass saves the y pass on columns that are only context.
        if order not in self._along_x:
            full = _correlate(self.image, self._kernels[order], axis=-1, columns=self.columns)
            self._along_x[order] = full[:, :, self.cols]
        return self._along_x[order]

    def derivative(self, order_y: int, order_x: int) -> np.ndarray:
        key = f"d{order_y}{order_x}"
        if key not in self._cache:
            along_y = _correlate(self._x_pass(order_x), self._kernels[order_y], axis=-2)
            self._cache[key] = along_y[:, self.rows]
        return self._cache[key]

    def smoothed(self, sigma: float) -> np.ndarray:
        kernel = gaussian_kernel(sigma, 0)
        return _separable(self.image, kernel, kernel, self.rows, self.cols, self.columns)

    def structure_tensor(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        # fastfilters swaps lazyflow's inner and outer scales: gradients at 0.5 sigma,
        # products smoothed at sigma.
        inner = STRUCTURE_TENSOR_GRADIENT_RATIO * self.sigma
        smooth = gaussian_kernel(inner, 0)
        derive = gaussian_kernel(inner, 1)
        grad_y = _separable(self.image, derive, smooth, columns=self.columns)
        grad_x = _separable(self.image, smooth, derive, columns=self.columns)
        products = np.empty((3,) + grad_x.shape, dtype=np.float32)
        np.multiply(grad_x, grad_x, out=products[0])
        np.multiply(grad_x, grad_y, out=products[1])
        np.multiply(grad_y, grad_y, out=products[2])
        del grad_x, grad_y
        outer = self._kernels[0]
        smoothed = _separable(products, outer, outer, self.rows, self.cols, self.columns)
        return smoothed[0], smoothed[1], smoothed[2]


def _windows(length: int, start: int, stop: int, margin: int) -> tuple[slice, slice]:
    """Input window around ``start:stop`` widened by ``margin`` (clipped to the image), and the
    output window relative to it."""
    lo = max(start - margin, 0)
    hi = min(stop + margin, length)
    return slice(lo, hi), slice(start - lo, stop - lo)


def iter_feature_blocks(
    image_cyx,
    selection: FeatureSelection,
    region: tuple[slice, slice] | None = None,
    columns: tuple[int, int] | None = None,
) -> Iterator[tuple[int, np.ndarray]]:
    """Yield ``(first column, block)`` for every selected (feature, scale), in column order.

    A block holds the feature's columns for all channels, shape (columns, Y, X) over ``region``.
    Only the image context each scale needs around ``region`` is filtered, so computing a
    region of a large image costs about as much as computing a small image of that size, and
    the result equals the region of the whole-image result. ``columns=(first, width)`` says
    that ``image_cyx`` is a crop starting at column ``first`` of an image ``width`` wide
    (default: the whole image), which fastfilters' rounding depends on.
    """
    shape = tuple(np.shape(image_cyx))
    if len(shape) != 3:
        raise ValueError(f"expected a CYX image, got shape {shape}")
    num_channels, height, width = shape
    if region is None:
        region = (slice(0, height), slice(0, width))
    y0, y1, _ = region[0].indices(height)
    x0, x1, _ = region[1].indices(width)
    first_column, image_width = columns if columns is not None else (0, width)

    column = 0
    by_scale: dict[float, list[tuple[str, int]]] = {}
    for feature_id, scale in selection.selected():
        by_scale.setdefault(scale, []).append((feature_id, column))
        column += num_channels * FEATURE_COMPONENTS[feature_id]

    for scale, features in by_scale.items():
        # Presmoothed values are needed `margin` pixels around the region; those need
        # `presmoothing radius` more pixels of input.
        margin = _filter_margin(scale)
        pre_sigma = presmoothing_sigma(scale)
        pre_radius = kernel_radius(pre_sigma, PRESMOOTHING_WINDOW)
        pre_rows, out_rows = _windows(height, y0, y1, margin)
        pre_cols, out_cols = _windows(width, x0, x1, margin)
        in_rows, pre_in_rows = _windows(height, pre_rows.start, pre_rows.stop, pre_radius)
        in_cols, pre_in_cols = _windows(width, pre_cols.start, pre_cols.stop, pre_radius)
        kernel = gaussian_kernel(pre_sigma, 0, PRESMOOTHING_WINDOW)
        # Slicing first reads only the needed part of lazy arrays (h5py datasets, memmaps).
        context = np.asarray(image_cyx[:, in_rows, in_cols], dtype=np.float32)
        frame = (first_column + in_cols.start, image_width)
        presmoothed = _separable(context, kernel, kernel, pre_in_rows, pre_in_cols, frame)
        presmoothed = np.ascontiguousarray(presmoothed)
        frame = (first_column + pre_cols.start, image_width)
        responses = _ScaleResponses(presmoothed, filter_sigma(scale), out_rows, out_cols, frame)
        for feature_id, first in features:
            yield first, _feature_block(feature_id, responses)


def _feature_block(feature_id: str, responses: _ScaleResponses) -> np.ndarray:
    """One feature's columns (channels x components, component fastest), shape (F, Y, X)."""
    if feature_id == GAUSSIAN_SMOOTHING:
        return responses.derivative(0, 0)
    if feature_id == LAPLACIAN_OF_GAUSSIAN:
        return responses.derivative(2, 0) + responses.derivative(0, 2)
    if feature_id == GAUSSIAN_GRADIENT_MAGNITUDE:
        grad_y = responses.derivative(1, 0)
        grad_x = responses.derivative(0, 1)
        return np.sqrt(grad_y * grad_y + grad_x * grad_x)
    if feature_id == DIFFERENCE_OF_GAUSSIANS:
        return responses.derivative(0, 0) - responses.smoothed(DOG_SIGMA_RATIO * responses.sigma)
    if feature_id == STRUCTURE_TENSOR_EIGENVALUES:
        xx, xy, yy = responses.structure_tensor()
        return _eigenvalue_block(xx, xy, yy)
    if feature_id == HESSIAN_OF_GAUSSIAN_EIGENVALUES:
        yy = responses.derivative(2, 0)
        xy = responses.derivative(1, 1)
        xx = responses.derivative(0, 2)
        return _eigenvalue_block(xx, xy, yy)
    raise ValueError(f"unknown feature {feature_id!r}")


def _eigenvalue_block(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    num_channels = a.shape[0]
    block = np.empty((num_channels, 2) + a.shape[1:], dtype=np.float32)
    _symmetric_eigenvalues(a, b, c, block[:, 0], block[:, 1])
    return block.reshape((2 * num_channels,) + a.shape[1:])


def compute_feature_planes(
    image_cyx: np.ndarray,
    selection: FeatureSelection,
    region: tuple[slice, slice] | None = None,
    out: np.ndarray | None = None,
    columns: tuple[int, int] | None = None,
) -> np.ndarray:
    """All selected feature columns as planes, shape (F, Y, X), float32.

    Parameters
    ----------
    image_cyx : ndarray, shape (C, Y, X)
        Input image (converted to float32).
    selection : FeatureSelection
        Features and scales.
    region : (slice, slice), optional
        Rows and columns of the output; the surrounding image is used as context, so the
        result equals the same region of the whole-image result. Default: the whole image.
    out : ndarray of float32, shape (F, Y, X), optional
        Where to write the planes.
    columns : (int, int), optional
        ``(first, width)`` when ``image_cyx`` is a crop starting at column ``first`` of an
        image ``width`` pixels wide: fastfilters rounds some pixels differently depending on
        their column, so a crop gives the whole image's values only if it knows where it lies.

    Returns
    -------
    ndarray of float32, shape (F, Y, X)
        F = ``selection.num_columns(C)``, in ilastik's column order.
    """
    num_channels, height, width = tuple(np.shape(image_cyx))
    if region is None:
        region = (slice(0, height), slice(0, width))
    rows = len(range(*region[0].indices(height)))
    cols = len(range(*region[1].indices(width)))
    shape = (selection.num_columns(num_channels), rows, cols)
    if out is None:
        out = np.empty(shape, dtype=np.float32)
    elif out.shape != shape or out.dtype != np.float32:
        raise ValueError(f"out must be float32 of shape {shape}, got {out.dtype} {out.shape}")
    for first, block in iter_feature_blocks(image_cyx, selection, region, columns):
        out[first : first + block.shape[0]] = block
    return out


def compute_features(
    image_cyx: np.ndarray,
    selection: FeatureSelection,
    region: tuple[slice, slice] | None = None,
) -> np.ndarray:
    """ilastik's pixel features of an image, shape (Y, X, F), float32.

    Parameters
    ----------
    image_cyx : ndarray, shape (C, Y, X)
        Input image (converted to float32).
    selection : FeatureSelection
        Features and scales.
    region : (slice, slice), optional
        Rows and columns to compute (default: all), with the rest of the image as context.

    Returns
    -------
    ndarray of float32, shape (Y, X, F)
        Feature columns in ilastik's order (see :func:`feature_names`). The array is a
        transposed view of channel-planar storage (see :func:`compute_feature_planes`).
    """
    return compute_feature_planes(image_cyx, selection, region).transpose(1, 2, 0)
