"""ilastik pixel features: kernels, analytic responses, borders, regions and column order."""

import h5py
import numpy as np
import pytest
from scipy.ndimage import correlate1d

from steinbock_like.classify.ilastik import features as ft
from steinbock_like.classify.ilastik.features import (
    FeatureSelection,
    compute_feature_planes,
    compute_features,
    default_feature_selection,
    feature_names,
    gaussian_kernel,
    kernel_radius,
)

ALL_SCALES = (0.3, 0.7, 1.0, 1.6, 3.5, 5.0, 10.0)


def single(feature_id: str, scale: float) -> FeatureSelection:
    return FeatureSelection.from_pairs([(feature_id, scale)])


@pytest.mark.parametrize(
    ("sigma", "window", "radius"),
    [
        (1.0, 2.0, 2),
        (0.5, 2.0, 1),
        (0.3, 2.0, 1),
        (9.9498743, 3.5, 35),
        (1.0, 3.5, 4),
        (0.66, 2.0, 1),
    ],
)
def test_kernel_radius_rounds_window_times_sigma(sigma, window, radius):
    assert kernel_radius(sigma, window) == radius
    assert gaussian_kernel(sigma, 0, window).size == 2 * radius + 1


@pytest.mark.parametrize("sigma", [0.3, 0.7, 1.0, 2.5, 9.95])
def test_kernel_moments(sigma):
    x = np.arange(-kernel_radius(sigma, 2.0), kernel_radius(sigma, 2.0) + 1, dtype=np.float64)
    smooth, first, second = (gaussian_kernel(sigma, order).astype(np.float64) for order in range(3))
    assert smooth.dtype == np.float64 and gaussian_kernel(sigma, 1).dtype == np.float32
    assert smooth.sum() == pytest.approx(1.0, abs=1e-6)
    np.testing.assert_allclose(smooth, smooth[::-1])
    assert np.sum(first * x) == pytest.approx(1.0, abs=1e-6)
    np.testing.assert_allclose(first, -first[::-1])
    assert second.sum() == pytest.approx(0.0, abs=1e-6)
    assert np.sum(second * x**2) == pytest.approx(2.0, abs=1e-5)
    assert second[x.size // 2] < 0  # a peak has negative curvature


def test_kernel_rejects_third_order():
    with pytest.raises(ValueError, match="order"):
        gaussian_kernel(1.0, 3)


def test_presmoothing_scale_relation():
    assert ft.presmoothing_sigma(5.0) == pytest.approx(np.sqrt(24.0))
    assert ft.filter_sigma(5.0) == 1.0
    assert ft.presmoothing_sigma(1.0) == 1.0 and ft.filter_sigma(1.0) == 1.0
    assert ft.presmoothing_sigma(0.7) == 0.7 and ft.filter_sigma(0.7) == 0.7


def test_constant_image_smooths_to_itself_and_has_no_structure():
    image = np.full((2, 40, 50), 3.25, dtype=np.float32)
    selection = FeatureSelection(ft.FEATURE_IDS, ALL_SCALES, np.ones((6, 7), dtype=bool))
    result = compute_features(image, selection)
    assert result.shape == (40, 50, selection.num_columns(2))
    names = feature_names(selection, 2)
    for column, name in enumerate(names):
        expected = 3.25 if name.startswith("Gaussian Smoothing") else 0.0
        np.testing.assert_allclose(result[..., column], expected, atol=2e-5, err_msg=name)


def test_gradient_magnitude_of_a_ramp_is_its_slope_in_the_interior():
    yy, xx = np.mgrid[0:80, 0:90].astype(np.float32)
    image = (0.3 * xx - 0.4 * yy)[np.newaxis]
    for scale in (0.7, 1.0, 3.5):
        selection = single(ft.GAUSSIAN_GRADIENT_MAGNITUDE, scale)
        margin = selection.halo()
        result = compute_features(image, selection)[margin:-margin, margin:-margin, 0]
        np.testing.assert_allclose(result, 0.5, rtol=1e-4)


def test_structure_tensor_of_a_ramp_has_eigenvalues_slope_squared_and_zero():
    yy, xx = np.mgrid[0:64, 0:64].astype(np.float32)
    image = (0.6 * xx + 0.8 * yy)[np.newaxis]
    selection = single(ft.STRUCTURE_TENSOR_EIGENVALUES, 1.6)
    margin = selection.halo()
    result = compute_features(image, selection)[margin:-margin, margin:-margin]
    np.testing.assert_allclose(result[..., 0], 1.0, rtol=1e-4)
    np.testing.assert_allclose(result[..., 1], 0.0, atol=1e-4)


@pytest.mark.parametrize("scale", [0.7, 1.0, 1.6, 5.0])
def test_hessian_eigenvalues_and_laplacian_of_a_quadratic(scale):
    # f = a x^2 + b y^2 + c x y has Hessian [[2a, c], [c, 2b]] everywhere; Gaussian
    # presmoothing only adds a constant to a quadratic.
    a, b, c = 0.02, -0.01, 0.03
    yy, xx = np.mgrid[-40:41, -40:41].astype(np.float64)
    image = (a * xx**2 + b * yy**2 + c * xx * yy).astype(np.float32)[np.newaxis]
    selection = FeatureSelection.from_pairs(
        [(ft.HESSIAN_OF_GAUSSIAN_EIGENVALUES, scale), (ft.LAPLACIAN_OF_GAUSSIAN, scale)]
    )
    margin = selection.halo()
    result = compute_features(image, selection)[margin:-margin, margin:-margin]
    expected = np.sort(np.linalg.eigvalsh([[2 * a, c], [c, 2 * b]]))[::-1]
    # Columns: LoG first (feature order of ilastik), then the two eigenvalues.
    np.testing.assert_allclose(result[..., 0], 2 * a + 2 * b, atol=2e-4)
    np.testing.assert_allclose(result[..., 1], expected[0], atol=2e-4)
    np.testing.assert_allclose(result[..., 2], expected[1], atol=2e-4)


@pytest.mark.parametrize("scale", [0.7, 1.6, 3.5])
def test_difference_of_gaussians_of_a_delta(scale):
    size = 61
    image = np.zeros((1, size, size), dtype=np.float32)
    image[0, size // 2, size // 2] = 1.0
    result = compute_features(image, single(ft.DIFFERENCE_OF_GAUSSIANS, scale))[..., 0]
    # The impulse response is the separable presmoothing kernel convolved with G(s) - G(0.66 s).
    pre = gaussian_kernel(ft.presmoothing_sigma(scale), 0, ft.PRESMOOTHING_WINDOW)
    sigma = ft.filter_sigma(scale)
    wide = np.convolve(pre, gaussian_kernel(sigma, 0))
    narrow = np.convolve(pre, gaussian_kernel(0.66 * sigma, 0))
    expected = np.zeros((size, size))
    for kernel, sign in ((wide, 1.0), (narrow, -1.0)):
        r = kernel.size // 2
        expected[size // 2 - r : size // 2 + r + 1, size // 2 - r : size // 2 + r + 1] += (
            sign * np.outer(kernel, kernel)
        )
    np.testing.assert_allclose(result, expected, atol=1e-6)
    assert result.sum() == pytest.approx(0.0, abs=1e-5)  # both Gaussians integrate to 1
    assert result[size // 2, size // 2] < 0  # the narrower Gaussian peaks higher


def test_borders_mirror_without_repeating_the_edge_pixel():
    rng = np.random.default_rng(3)
    image = rng.random((1, 30, 25), dtype=np.float32) * 10
    scale = 3.5
    result = compute_features(image, single(ft.GAUSSIAN_SMOOTHING, scale))[..., 0]
    # Independent computation: explicit reflect padding ("d c b | a b c d") then valid sums.
    expected = image[0].astype(np.float64)
    for sigma, window in ((ft.presmoothing_sigma(scale), 3.5), (1.0, 2.0)):
        kernel = gaussian_kernel(sigma, 0, window).astype(np.float64)
        r = kernel.size // 2
        padded = np.pad(expected, r, mode="reflect")
        rows = sum(kernel[i] * padded[i : i + expected.shape[0], :] for i in range(kernel.size))
        expected = sum(kernel[i] * rows[:, i : i + expected.shape[1]] for i in range(kernel.size))
    np.testing.assert_allclose(result, expected, rtol=1e-5)


def test_eigenvalues_come_larger_first():
    rng = np.random.default_rng(4)
    image = rng.gamma(2.0, 3.0, size=(3, 40, 40)).astype(np.float32)
    for feature_id in (ft.STRUCTURE_TENSOR_EIGENVALUES, ft.HESSIAN_OF_GAUSSIAN_EIGENVALUES):
        result = compute_features(image, single(feature_id, 1.0))
        assert result.shape[-1] == 6  # channel, then component
        assert np.all(result[..., 0::2] >= result[..., 1::2])
        assert np.any(result[..., 0::2] > result[..., 1::2] + 1e-3)


def test_channel_then_component_column_order():
    rng = np.random.default_rng(5)
    image = rng.random((2, 32, 32), dtype=np.float32)
    selection = single(ft.HESSIAN_OF_GAUSSIAN_EIGENVALUES, 1.6)
    both = compute_features(image, selection)
    first = compute_features(image[:1], selection)
    second = compute_features(image[1:], selection)
    np.testing.assert_array_equal(both[..., 0:2], first)
    np.testing.assert_array_equal(both[..., 2:4], second)


def test_region_equals_crop_of_the_whole_image():
    rng = np.random.default_rng(6)
    image = rng.gamma(2.0, 3.0, size=(2, 90, 110)).astype(np.float32)
    selection = FeatureSelection(ft.FEATURE_IDS, ALL_SCALES, np.ones((6, 7), dtype=bool))
    whole = compute_feature_planes(image, selection)
    for rows, cols in [(slice(0, 30), slice(70, 110)), (slice(41, 58), slice(3, 99))]:
        part = compute_feature_planes(image, selection, (rows, cols))
        np.testing.assert_array_equal(part, whole[:, rows, cols])


def test_feature_names_of_the_default_selection():
    names = feature_names(default_feature_selection(), 4)
    assert len(names) == 160
    assert names[0] == "Gaussian Smoothing (σ=1.0) in 2D [0]"
    assert names[19] == "Gaussian Smoothing (σ=10.0) in 2D [3]"
    assert names[80] == "Structure Tensor Eigenvalues (σ=1.0) in 2D [0]"
    assert names[-1] == "Hessian of Gaussian Eigenvalues (σ=10.0) in 2D [7]"


def test_selection_validation_and_pair_order():
    with pytest.raises(ValueError, match="unknown feature 'Bogus'"):
        FeatureSelection(("Bogus",), (1.0,), [[True]])
    with pytest.raises(ValueError, match="does not match"):
        FeatureSelection((ft.GAUSSIAN_SMOOTHING,), (1.0, 2.0), [[True]])
    selection = FeatureSelection.from_pairs(
        [(ft.HESSIAN_OF_GAUSSIAN_EIGENVALUES, 1.0), (ft.GAUSSIAN_SMOOTHING, 3.5)]
    )
    assert selection.selected() == [
        (ft.GAUSSIAN_SMOOTHING, 3.5),
        (ft.HESSIAN_OF_GAUSSIAN_EIGENVALUES, 1.0),
    ]
    assert selection.num_columns(3) == 9
    # Presmoothing radius at 10.0 is 35, plus the structure tensor's 1 + 2.
    assert default_feature_selection().halo() == 38


def test_column_order_matches_the_refdata_project(refdata):
    with h5py.File(refdata / "ilastik_original.ilp", "r") as project:
        group = project["FeatureSelections"]
        selection = FeatureSelection(
            tuple(f.decode() for f in group["FeatureIds"][()]),
            tuple(group["Scales"][()]),
            group["SelectionMatrix"][()],
            bool(np.all(group["ComputeIn2d"][()])),
        )
        stored = [
            n.decode() for n in project["PixelClassification/ClassifierForests/feature_names"]
        ]
    assert feature_names(selection, 4) == stored
    assert len(stored) == 160


def test_scipy_mirror_mode_is_reflection_without_edge_repeat():
    # The border rule the features rely on, pinned against scipy's naming.
    line = np.array([1.0, 2.0, 3.0, 4.0])
    out = correlate1d(line, np.array([1.0, 0.0, 0.0]), mode="mirror")
    assert out.tolist() == [2.0, 1.0, 2.0, 3.0]


@pytest.mark.parametrize("axis", [-1, -2])
@pytest.mark.parametrize(("sigma", "order"), [(1.0, 0), (1.0, 1), (1.0, 2), (0.5, 1), (0.66, 0)])
def test_short_kernel_arithmetic_matches_scipy(axis, sigma, order):
    rng = np.random.default_rng(12)
    image = rng.normal(size=(3, 2, 23, 17)).astype(np.float32)
    kernel = gaussian_kernel(sigma, order)
    expected = correlate1d(image, kernel, axis=axis, mode="mirror")
    result = ft._correlate(image, kernel, axis)
    assert result.shape == image.shape and result.dtype == np.float32
    np.testing.assert_allclose(result, expected, atol=1e-6)


def _fma(c, p, s):
    """float32 fused multiply-add (one rounding; exact product in float64)."""
    return np.float32(np.float64(c) * np.float64(p) + np.float64(s))


def test_x_pass_rounds_scalar_pixels_in_fastfilters_order():
    # fastfilters' AVX loops compute c0*x, then add c1*(a + b) fused; its -Ofast scalar code
    # (left border, up to the first multiple of 8, from the last multiple of 32 on, right
    # border) fuses the other way: c0*x + round(c1*(a + b)). Width 118, radius 1: AVX on
    # columns 8..95.
    rng = np.random.default_rng(21)
    image = rng.gamma(2.0, 3.0, size=(200, 118)).astype(np.float32)
    kernel = gaussian_kernel(0.66, 0)
    c0, c1 = kernel[1], kernel[2]
    result = ft._correlate(image, kernel, axis=-1)
    differing = {"avx": 0, "scalar": 0}
    for x in (1, 5, 50, 95, 96, 110, 116):
        for y in range(image.shape[0]):
            pair = np.float32(image[y, x - 1] + image[y, x + 1])
            avx = _fma(c1, pair, np.float32(c0 * image[y, x]))
            scalar = _fma(c0, image[y, x], np.float32(c1 * pair))
            expected = avx if 8 <= x < 96 else scalar
            assert result[y, x] == expected, (y, x)
            differing["avx" if 8 <= x < 96 else "scalar"] += int(avx != scalar)
    assert differing["scalar"] > 0  # the order matters on this data


def test_scalar_columns_of_a_row():
    def groups(radius, first, length, width):
        return sorted(
            (p.tolist(), str(t)) for t, p in ft._scalar_columns(radius, first, length, width)
        )

    inner = str(ft._SCALAR_ORDERS[2][1])
    left = [str(t) for t in ft._SCALAR_ORDERS[2][0]]
    right = str(ft._SCALAR_ORDERS[2][2])
    assert groups(2, 0, 118, 118) == sorted(
        [([0], left[0]), ([1], left[1]), ([*range(2, 8), *range(96, 116)], inner)]
        + [([116, 117], right)]
    )
    # Too short for the AVX loops: everything between the borders is scalar.
    assert groups(2, 0, 40, 40) == sorted(
        [([0], left[0]), ([1], left[1]), (list(range(2, 38)), inner), ([38, 39], right)]
    )
    # A crop from column 90 of the 118-wide row: positions are relative to the crop.
    assert groups(2, 90, 20, 118) == [(list(range(6, 20)), inner)]
    assert list(ft._scalar_columns(12, 0, 118, 118)) == []  # long kernels: AVX order


def test_crop_that_knows_its_columns_equals_the_whole_image():
    rng = np.random.default_rng(22)
    image = rng.gamma(2.0, 3.0, size=(1, 60, 150)).astype(np.float32)
    selection = default_feature_selection()
    whole = compute_feature_planes(image, selection)
    crop = image[:, :, 40:]
    region = (slice(10, 50), slice(60, 110))  # image columns 100..150, in the scalar tail
    part = compute_feature_planes(crop, selection, region, columns=(40, 150))
    np.testing.assert_array_equal(part, whole[:, 10:50, 100:150])
