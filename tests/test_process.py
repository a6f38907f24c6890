"""process: processors against hand-computed cases, and configuration validation."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage as ndi

from steinbock_like.process.config import ConfigError, load_config_text, validate_config
from steinbock_like.process.masks import blob_mask, ring_mask
from steinbock_like.process.pipeline import run_pipeline
from steinbock_like.process.registry import Context, load_registry

CHANNELS = ["DNA1", "DNA2", "CD45", "HLA-ABC"]


def run_one(name, inputs, **params):
    processor = load_registry()[name]
    full = {**processor.defaults(), **params}
    return processor.function(inputs, full, Context())


# -- image enhancers ----------------------------------------------------------------------------


def test_normalize_maps_percentiles_to_0_and_1():
    image = np.arange(101, dtype=np.float32).reshape(1, 101)  # percentile p == value p
    (out,) = run_one("normalize", {"input": [image]}, low=10, high=90)
    assert out[0, 10] == 0 and out[0, 90] == pytest.approx(1.0)
    assert out[0, 50] == pytest.approx(0.5)
    assert out.min() == 0 and out.max() == 1  # clipped


def test_median_removes_an_impulse_and_keeps_a_plateau():
    image = np.zeros((9, 9), np.float32)
    image[4, 4] = 100
    image[:, 7:] = 5
    (out,) = run_one("denoise_median", {"input": [image]}, radius=1)
    assert out[4, 4] == 0
    assert out[4, 8] == 5 and out[4, 6] == 0


def test_gaussian_of_an_impulse_is_the_hand_computed_kernel():
    sigma = 1.5
    image = np.zeros((31, 31), np.float32)
    image[15, 15] = 1
    (out,) = run_one("gaussian", {"input": [image]}, sigma=sigma)
    radius = int(4 * sigma + 0.5)
    x = np.arange(-radius, radius + 1)
    weights = np.exp(-(x**2) / (2 * sigma**2))
    weights /= weights.sum()
    assert out[15, 15] == pytest.approx(weights[radius] ** 2, rel=1e-5)
    assert out[15, 17] == pytest.approx(weights[radius] * weights[radius + 2], rel=1e-5)


def test_mean_and_max_of_images():
    a = np.array([[1, 4]], np.float32)
    b = np.array([[3, 0]], np.float32)
    np.testing.assert_array_equal(run_one("mean_of_images", {"input": [a, b]}), [[2, 2]])
    np.testing.assert_array_equal(run_one("max_of_images", {"input": [a, b]}), [[3, 4]])


# -- mask builders ------------------------------------------------------------------------------


def disk_labels(shape=(61, 61), center=(30, 30), radius=8, label=1):
    rows, cols = np.indices(shape)
    labels = np.zeros(shape, np.uint16)
    labels[(rows - center[0]) ** 2 + (cols - center[1]) ** 2 <= radius**2] = label
    return labels


def brute_force_signed_distance(labels, label):
    """Distance to the object outside (positive), minus depth inside: by brute force."""
    rows, cols = np.indices(labels.shape)
    inside = np.argwhere(labels == label)
    outside = np.argwhere(labels != label)
    out = np.zeros(labels.shape)
    for r, c in np.ndindex(labels.shape):
        if labels[r, c] == label:
            # the image border counts as outside too
            border = min(r + 1, c + 1, labels.shape[0] - r, labels.shape[1] - c)
            d = np.sqrt(((outside - (r, c)) ** 2).sum(1)).min() if len(outside) else np.inf
            out[r, c] = -min(d, border)
        else:
            out[r, c] = np.sqrt(((inside - (r, c)) ** 2).sum(1)).min()
    del rows, cols
    return out


@pytest.mark.parametrize(("outer", "inner"), [(8, 2), (3, 0), (0, -3), (2, -2), (-1, -4)])
def test_ring_radii_are_exact_on_a_disk(outer, inner):
    labels = disk_labels(radius=8, label=5)
    ring = ring_mask(labels, outer, inner)
    signed = brute_force_signed_distance(labels, 5)
    expected = (signed > inner) & (signed <= outer)
    np.testing.assert_array_equal(ring == 5, expected)
    assert set(np.unique(ring)) <= {0, 5}


def test_ring_never_overlaps_another_label_and_rings_do_not_overlap():
    labels = disk_labels(radius=6, center=(30, 20), label=1)
    labels[disk_labels(radius=6, center=(30, 36), label=1) > 0] = 2
    labels[50:55, 5:10] = 3
    ring = ring_mask(labels, 8, 0)
    assert not np.any((ring != 0) & (labels != 0))  # never inside any object
    # each ring pixel belongs to its nearest object
    _, (r, c) = ndi.distance_transform_edt(labels == 0, return_indices=True)
    on = ring != 0
    np.testing.assert_array_equal(ring[on], labels[r[on], c[on]])
    inner = ring_mask(labels, 0, -2)
    assert np.all(inner[inner != 0] == labels[inner != 0])


def test_subtract_multiply_expand():
    a = np.array([[1, 1, 2, 2]], np.uint16)
    b = np.array([[0, 3, 3, 0]], np.uint16)
    np.testing.assert_array_equal(run_one("subtract", {"input": [a, b]}), [[1, 0, 0, 2]])
    np.testing.assert_array_equal(run_one("multiply", {"input": [a, b]}), [[0, 1, 2, 0]])
    seed = np.zeros((1, 9), np.uint16)
    seed[0, 4] = 7
    np.testing.assert_array_equal(
        run_one("expand", {"input": [seed]}, distance=2), [[0, 0, 7, 7, 7, 7, 7, 0, 0]]
    )


def test_blob_recovers_a_synthetic_tissue():
    rng = np.random.default_rng(0)
    shape = (256, 256)
    tissue = disk_labels(shape, (128, 128), 90) > 0
    tissue[100:140, 110:150] = False  # a lumen, large: stays a hole? no: filled (fill_holes)
    image = rng.poisson(np.where(tissue, 20.0, 1.0)).astype(np.float32)
    image[tissue & (rng.random(shape) < 0.3)] = 0  # dropouts inside the tissue
    image[5:8, 5:8] = 50  # debris outside
    mask = blob_mask(image, "otsu", downscale=8, opening=1, closing=2, fill_holes=True)
    truth = disk_labels(shape, (128, 128), 90) > 0
    iou = np.logical_and(mask, truth).sum() / np.logical_or(mask, truth).sum()
    assert iou > 0.95
    assert mask[6, 6] == 0 and mask[120, 130] == 1  # debris dropped, lumen filled
    kept_hole = blob_mask(image, "otsu", downscale=8, fill_holes=False)
    assert kept_hole[120, 130] == 0


def test_blob_hand_computed_blocks():
    image = np.zeros((8, 8), np.float32)
    image[:4, :4] = 1  # one 4x4 block of tissue
    image[4, 4] = 1  # one stray pixel: its block is 1/16 tissue
    mask = blob_mask(image, 0.5, downscale=4, opening=0, closing=0, fill_holes=False)
    expected = np.zeros((8, 8), np.uint8)
    expected[:4, :4] = 1
    np.testing.assert_array_equal(mask, expected)


def test_repair_processor_equals_repair_masks():
    from steinbock_like.repair import repair_masks

    cells = disk_labels(radius=10, label=3)
    nuclei = disk_labels(radius=4, label=9)
    out = run_one("repair", {"cells": [cells], "nuclei": [nuclei]})
    ref = repair_masks(cells, nuclei)
    np.testing.assert_array_equal(out["cells"], ref.cells)
    np.testing.assert_array_equal(out["cytoplasm"], ref.cytoplasm)
    assert out["cytoplasm"].max() == 1 and (out["nuclei"] == 1).sum() == (nuclei > 0).sum()


# -- defaults equal the commands' defaults -------------------------------------------------------


def command_option_default(spec: str):
    from steinbock_like.cli.main import cli

    *path, option = spec.split()
    command = cli
    for name in path:
        command = command.commands[name]
    for param in command.params:
        if option in param.opts or option in getattr(param, "secondary_opts", []):
            return param.default
    raise AssertionError(f"{spec}: no such option")


def test_processor_defaults_are_their_commands_defaults():
    checked = 0
    for processor in load_registry().values():
        for name, param in processor.params.items():
            if param.option:
                default = command_option_default(param.option)
                assert param.default == default, f"{processor.name}.{name} vs {param.option}"
                checked += 1
    assert checked >= 15


# -- pipelines in memory --------------------------------------------------------------------------


def test_pipeline_drops_temporaries_and_hands_over_kept_outputs():
    config = validate_config(
        load_config_text(
            """
schema_version: 1
processors:
  - {type: normalize, input: [DNA1, CD45], output: "{input}_n", keep: false}
  - {type: blob, input: [DNA1_n], output: tissue, parameters: {downscale: 4, opening: 0}}
quantify:
  - {name: t, masks: {tissue: tissue}, regionprops: {properties: [area]}}
"""
        ),
        CHANNELS,
    )
    image = np.zeros((4, 64, 64), np.float32)
    image[0, 16:48, 16:48] = 10
    values = {name: image[i] for i, name in enumerate(CHANNELS)}
    handed = []
    kept, tables = run_pipeline(
        config,
        values,
        Context(),
        on_output=lambda name, kind, array: handed.append((name, kind, array)),
        image=image,
        channel_names=CHANNELS,
    )
    assert [(name, kind) for name, kind, _ in handed] == [("tissue", "mask")]
    assert kept == {}  # handed over, not retained
    assert "DNA1_n" not in values and "CD45_n" not in values
    kept = {"tissue": handed[0][2]}
    assert kept["tissue"].sum() == 32 * 32 and kept["tissue"][16:48, 16:48].all()
    assert tables["intensities", "t"].loc[1, "DNA1"] == pytest.approx(10)
    assert tables["regionprops", "t"].loc[1, "area"] == 32 * 32


# -- twenty malformed configurations, one line each ------------------------------------------------

VALID = """
schema_version: 1
processors:
  - type: normalize
    input: [DNA1, CD45]
    output: "{input}_norm"
    keep: false
  - type: mean_of_images
    input: [DNA1_norm, CD45_norm]
    output: mixed
  - type: blob
    input: [mixed]
    output: tissue
  - type: ring
    input: [tissue]
    output: rim
    parameters: {outer: 8, inner: 2}
quantify:
  - name: tissue
    masks: {tissue: tissue, rim: rim}
"""

MALFORMED = [
    ("schema_version: 1\nprocessors: [", "line 2"),
    ("- just a list", "expected a mapping with schema_version and processors"),
    ("processors: []", "schema_version: missing"),
    (
        VALID.replace("schema_version: 1", "schema_version: 2"),
        "schema_version: unsupported version 2",
    ),
    ("schema_version: 1\nprocessors: []", "processors: expected a non-empty list, got []"),
    (VALID.replace("type: blob", "type: blobby"), 'processors[2].type: unknown processor "blobby"'),
    (
        VALID.replace("{outer: 8, inner: 2}", '{outer: "8px", inner: 2}'),
        'processors[3].parameters.outer: expected a number, got "8px"',
    ),
    (
        VALID.replace("{outer: 8, inner: 2}", "{outer: 8, inner: 2, width: 3}"),
        "processors[3].parameters.width: unknown parameter",
    ),
    (
        VALID.replace("{outer: 8, inner: 2}", "{outer: 2, inner: 8}"),
        "processors[3].parameters.inner: must be smaller than outer (2)",
    ),
    (
        VALID.replace("input: [DNA1, CD45]", "input: [DNA1, CD99]"),
        'processors[0].input[1]: "CD99" is neither a panel channel nor an output of an earlier',
    ),
    (
        VALID.replace("input: [mixed]", "input: [rim]"),
        'processors[2].input[0]: "rim" is neither a panel channel nor an output of an earlier',
    ),
    (
        VALID.replace("output: tissue", "output: mixed"),
        'processors[2].output: output name "mixed" is used twice',
    ),
    (
        VALID.replace("output: mixed", "output: DNA2"),
        'processors[1].output: output name "DNA2" is used twice (also a panel channel)',
    ),
    (
        VALID.replace('output: "{input}_norm"', "output: norm"),
        "processors[0].output: with several inputs the name needs {input}",
    ),
    (
        VALID.replace("keep: false", "keep: maybe"),
        'processors[0].keep: expected true or false, got "maybe"',
    ),
    (
        VALID.replace("input: [tissue]", "input: [mixed]"),
        'processors[3].input[0]: "mixed" is image, expected mask',
    ),
    (
        VALID.replace("input: [DNA1_norm, CD45_norm]", "input: [DNA1_norm]"),
        "processors[1].input: expected at least 2 name(s), got 1",
    ),
    (VALID.replace("    output: rim\n", ""), "processors[3].output: missing"),
    (
        VALID.replace("rim: rim}", "rim: mixed}"),
        'quantify[0].masks.rim: "mixed" is an image, expected a mask',
    ),
    (
        VALID.replace("name: tissue", "name: tissue\n    neighbors: {type: nearest}"),
        'quantify[0].neighbors.type: expected one of centroids, borders, expansion, got "nearest"',
    ),
    (VALID + "extra: 1\n", "extra: unknown key"),
    (
        VALID.replace("parameters: {outer: 8, inner: 2}", "parameters: {outer: true}"),
        "processors[3].parameters.outer: expected a number, got true",
    ),
    (
        VALID.replace("type: blob\n    input: [mixed]", "type: blob\n    input: {image: [mixed]}"),
        "processors[2].input: expected a list of names",
    ),
]


def test_the_valid_configuration_is_valid():
    pipeline = validate_config(load_config_text(VALID), CHANNELS)
    assert [s.type for s in pipeline.steps] == ["normalize", "mean_of_images", "blob", "ring"]
    assert pipeline.channels == ("DNA1", "CD45")
    assert pipeline.kept() == [("mixed", "image"), ("tissue", "mask"), ("rim", "mask")]
    assert pipeline.steps[3].params == {"outer": 8.0, "inner": 2.0}


@pytest.mark.parametrize(
    ("text", "message"), MALFORMED, ids=[str(i) for i in range(len(MALFORMED))]
)
def test_malformed_configuration_gives_one_line_naming_the_key(text, message):
    with pytest.raises(ConfigError) as error:
        validate_config(load_config_text(text), CHANNELS)
    line = str(error.value)
    assert "\n" not in line
    assert message in line
    assert len(MALFORMED) >= 20


def test_processor_documentation_is_current():
    from pathlib import Path

    from steinbock_like.process.docs import processors_markdown

    path = Path(__file__).parents[1] / "docs" / "processors.md"
    assert path.read_text() == processors_markdown(), (
        "docs/processors.md is stale: python -m steinbock_like.process.docs > docs/processors.md"
    )
    for name in load_registry():
        assert f"### `{name}`" in path.read_text()
