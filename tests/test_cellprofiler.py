"""CellProfiler segmentation: pipeline text, native backend, real CellProfiler backend."""

import stat
import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.ndimage
import tifffile

from steinbock_like.errors import MissingToolError, SteinbockLikeError
from steinbock_like.io import cppipe
from steinbock_like.segment.cellprofiler import binary, native, pipeline, threshold, translate
from steinbock_like.segment.cellprofiler.propagate import propagate
from steinbock_like.segment.cellprofiler.watershed import watershed
from steinbock_like.testing import synthetic_probabilities

REPO = Path(__file__).resolve().parents[1]


def _object_f1(truth: np.ndarray, predicted: np.ndarray, min_iou: float = 0.5) -> float:
    """F1 of objects matched one-to-one at IoU >= min_iou (IoU > 0.5 makes matches unique)."""
    truth_ids, truth_index = np.unique(truth, return_inverse=True)
    pred_ids, pred_index = np.unique(predicted, return_inverse=True)
    overlap = np.zeros((truth_ids.size, pred_ids.size), np.int64)
    np.add.at(overlap, (truth_index.ravel(), pred_index.ravel()), 1)
    truth_area, pred_area = overlap.sum(axis=1), overlap.sum(axis=0)
    iou = overlap / (truth_area[:, None] + pred_area[None, :] - overlap)
    iou = iou[truth_ids > 0][:, pred_ids > 0]
    n_truth, n_pred = iou.shape
    if n_truth == 0 and n_pred == 0:
        return 1.0
    matches = int((iou >= max(min_iou, 0.5 + 1e-9)).sum())
    return 2 * matches / (n_truth + n_pred)


def _cellprofiler_python() -> Path | None:
    """CellProfiler's interpreter, found as the CLI finds it (see locate_cellprofiler)."""
    try:
        return binary.find_cellprofiler_python()
    except MissingToolError:
        return None


needs_cellprofiler = pytest.mark.skipif(
    _cellprofiler_python() is None,
    reason="CellProfiler not installed: run scripts/install_cellprofiler.sh "
    "(or set CELLPROFILER_PYTHON)",
)


def _probability_files(refdata: Path) -> list[Path]:
    return sorted((refdata / "ilastik_probabilities").glob("*.tiff"))


def _set(text: str, module_name: str, label: str, value: str) -> str:
    """Change one setting of one module in pipeline text (first occurrence in that module)."""
    lines = text.splitlines()
    in_module = False
    for index, line in enumerate(lines):
        if not line.startswith(" "):
            in_module = line.startswith(module_name + ":[")
        elif in_module and line.strip().startswith(label + ":"):
            lines[index] = f"    {label}:{value}"
            return "\n".join(lines) + "\n"
    raise AssertionError(f"no {label!r} in {module_name}")


# ------------------------------------------------------------------------------ metric


def test_object_f1_counts_matches_at_iou_half():
    truth = np.zeros((10, 10), int)
    truth[0:4, 0:4] = 1
    truth[6:10, 6:10] = 2
    predicted = np.zeros_like(truth)
    predicted[0:4, 0:3] = 5  # IoU 0.75 with object 1
    predicted[6:7, 6:10] = 7  # IoU 0.25 with object 2: no match
    assert _object_f1(truth, truth) == 1.0
    assert _object_f1(truth, predicted) == pytest.approx(2 * 1 / 4)


# ------------------------------------------------------------------------------ pipeline text


def test_written_pipeline_round_trips_to_native_steps():
    text = pipeline.pipeline_text()
    modules = cppipe.read_pipeline(text)
    assert [m.name for m in modules][4:] == [
        "ColorToGray", "ImageMath", "Smooth", "IdentifyPrimaryObjects",
        "MeasureObjectSizeShape", "FilterObjects", "IdentifySecondaryObjects",
        "ResizeObjects", "ConvertObjectsToImage", "SaveImages",
    ]  # fmt: skip
    assert [m.number for m in modules] == list(range(1, 15))
    assert cppipe.format_pipeline(modules) == text
    steps = {type(step).__name__: step for step in translate.native_steps(modules)}
    primary = steps["IdentifyPrimary"]
    assert (primary.min_diameter, primary.max_diameter) == (7, 25)
    assert primary.threshold.method == "Minimum Cross-Entropy"
    assert primary.threshold.correction_factor == 1.2
    assert primary.threshold.smoothing_sigma == 1.0
    assert primary.declump_method == primary.dividing_method == "Intensity"
    assert primary.maxima_suppression_size == pytest.approx(7 / 1.5)
    assert primary.fill_holes_after_threshold and primary.fill_holes_after_declump
    assert steps["GaussianSmooth"].diameter == 4
    assert steps["FilterByMeasurement"].min_area == 5
    assert steps["IdentifySecondary"].threshold.smoothing_sigma == 1.0
    assert steps["IdentifySecondary"].regularization == 0.05
    assert steps["ResizeObjects"].factor == (0.5, 0.5)
    assert steps["SplitChannels"].outputs == (
        (0, "NucleusProbability"), (1, "CytoplasmProbability"), (2, "BackgroundProbability")
    )  # fmt: skip


def test_pipeline_settings_reach_the_native_steps():
    settings = pipeline.PipelineSettings(
        scale=4, nucleus_diameter=(12, 40), threshold_factor=1.5, min_nucleus_area=20
    )
    steps = {type(s).__name__: s for s in translate.native_steps(pipeline.pipeline_text(settings))}
    primary = steps["IdentifyPrimary"]
    assert (primary.min_diameter, primary.max_diameter, primary.threshold.correction_factor) == (
        12, 40, 1.5
    )  # fmt: skip
    # min diameter > 10: maxima found on a 10/12 down-sampled image, suppression 7 there
    assert primary.maxima_resize_factor == pytest.approx(10 / 12)
    assert primary.maxima_suppression_size == 7
    assert steps["FilterByMeasurement"].min_area == 20
    assert steps["ResizeObjects"].factor == (0.25, 0.25)


def test_invalid_pipeline_settings_are_refused():
    with pytest.raises(SteinbockLikeError, match="diameter"):
        pipeline.PipelineSettings(nucleus_diameter=(30, 10))
    with pytest.raises(SteinbockLikeError, match="scale"):
        pipeline.PipelineSettings(scale=0)


def test_basic_mode_resolves_to_what_cellprofiler_does():
    # Basic mode ignores the written declumping method, threshold method and smoothing.
    text = pipeline.pipeline_text()
    for label, value in [
        ("Use advanced settings?", "No"),
        ("Method to distinguish clumped objects", "Shape"),
        ("Thresholding method", "Otsu"),
        ("Threshold smoothing scale", "0"),
        ("Suppress local maxima that are closer than this minimum allowed distance", "2.0"),
        ("Automatically calculate minimum allowed distance between local maxima?", "No"),
        ("Fill holes in identified objects?", "Never"),
    ]:
        text = _set(text, "IdentifyPrimaryObjects", label, value)
    (primary,) = [s for s in translate.native_steps(text) if isinstance(s, native.IdentifyPrimary)]
    assert primary.declump_method == "Intensity"
    assert primary.threshold.method == "Minimum Cross-Entropy"
    assert primary.threshold.smoothing_sigma == 1.0
    assert primary.maxima_suppression_size == pytest.approx(7 / 1.5)
    assert primary.fill_holes_after_threshold and primary.fill_holes_after_declump
    assert primary.declump_smoothing_size == 1  # the written size is honoured in basic mode


def test_advanced_mode_honours_edited_settings():
    text = pipeline.pipeline_text()
    for label, value in [
        ("Method to distinguish clumped objects", "Shape"),
        ("Thresholding method", "Otsu"),
        ("Threshold smoothing scale", "0"),
        ("Suppress local maxima that are closer than this minimum allowed distance", "3.0"),
        ("Automatically calculate minimum allowed distance between local maxima?", "No"),
        ("Fill holes in identified objects?", "Never"),
    ]:
        text = _set(text, "IdentifyPrimaryObjects", label, value)
    (primary,) = [s for s in translate.native_steps(text) if isinstance(s, native.IdentifyPrimary)]
    assert primary.declump_method == "Shape"
    assert primary.threshold.method == "Otsu"
    assert primary.threshold.smoothing_sigma == 0
    assert primary.maxima_suppression_size == 3.0
    assert not primary.fill_holes_after_threshold and not primary.fill_holes_after_declump


def test_steinbock_pipeline_reads_as_basic_mode(refdata):
    text = (refdata / "cell_segmentation.cppipe").read_text()
    steps = translate.native_steps(text)
    (primary,) = [s for s in steps if isinstance(s, native.IdentifyPrimary)]
    assert primary.declump_method == "Intensity"  # the text says Shape
    assert primary.threshold.smoothing_sigma == 1.0  # the text says 0
    assert primary.declump_smoothing_size == 1
    (resize,) = [s for s in steps if isinstance(s, native.ResizeObjects)]
    assert resize.factor == (0.5, 0.5)  # revision 2's single "Factor"


def test_unknown_module_is_named():
    text = pipeline.pipeline_text()
    extra = (
        "\nMeasureObjectIntensity:[module_num:15|svn_version:'Unknown'|variable_revision_number:4"
        "|show_window:False|notes:[]|batch_state:array([], dtype=uint8)|enabled:True"
        "|wants_pause:False]\n    Select images to measure:NucleusProbability\n"
    )
    with pytest.raises(SteinbockLikeError, match=r"#15 MeasureObjectIntensity"):
        translate.native_steps(text + extra)
    # a disabled unknown module is ignored
    steps = translate.native_steps(text + extra.replace("enabled:True", "enabled:False"))
    assert isinstance(steps[-1], native.SaveMask)


def test_unsupported_setting_is_named():
    text = _set(pipeline.pipeline_text(), "Smooth", "Select smoothing method", "Median Filter")
    with pytest.raises(SteinbockLikeError, match=r"#7 Smooth.*Median Filter"):
        translate.native_steps(text)
    text = _set(
        pipeline.pipeline_text(),
        "IdentifySecondaryObjects",
        "Select the method to identify the secondary objects",
        "Watershed - Image",
    )
    with pytest.raises(SteinbockLikeError, match="IdentifySecondaryObjects"):
        translate.native_steps(text)


def test_not_a_pipeline_is_refused():
    with pytest.raises(SteinbockLikeError, match="not a CellProfiler pipeline"):
        cppipe.read_pipeline("hello\nworld\n")


# ------------------------------------------------------------------------------ native backend


def test_native_reproduces_steinbock_masks(refdata):
    """Native backend, our pipeline and steinbock's, vs steinbock's CellProfiler masks."""
    for text in [pipeline.pipeline_text(), (refdata / "cell_segmentation.cppipe").read_text()]:
        steps = translate.native_steps(text)
        scores, identical = [], 0
        for path in _probability_files(refdata):
            mask = native.run_steps(tifffile.imread(path), steps)
            reference = tifffile.imread(refdata / "masks_ilastik" / path.name)
            assert mask.dtype == np.uint16 and mask.shape == reference.shape
            scores.append(_object_f1(reference, mask))
            identical += bool(np.array_equal(mask, reference))
        assert len(scores) >= 6
        assert np.mean(scores) >= 0.95
        assert identical == len(scores)


def test_native_finds_synthetic_cells():
    probabilities, cells = synthetic_probabilities((300, 300), cell_count=150, seed=3)
    mask = native.run_steps(probabilities, translate.native_steps(pipeline.pipeline_text()))
    truth = scipy.ndimage.zoom(cells, 0.5, order=0, mode="nearest")
    assert mask.shape == truth.shape == (150, 150)
    assert _object_f1(truth, mask) >= 0.9


def test_native_honours_edited_pipeline():
    probabilities, _ = synthetic_probabilities((200, 200), cell_count=60, seed=4)
    default = native.run_steps(probabilities, translate.native_steps(pipeline.pipeline_text()))
    settings = pipeline.PipelineSettings(scale=1, min_nucleus_area=120)
    edited = native.run_steps(
        probabilities, translate.native_steps(pipeline.pipeline_text(settings))
    )
    assert default.shape == (100, 100) and edited.shape == (200, 200)
    assert 0 < edited.max() < default.max()  # large minimum area drops the small nuclei


def test_native_on_empty_probabilities_gives_empty_mask():
    probabilities = np.zeros((40, 50, 3), np.uint16)
    probabilities[..., 2] = 65535
    mask = native.run_steps(probabilities, translate.native_steps(pipeline.pipeline_text()))
    assert mask.shape == (20, 25) and mask.max() == 0


def test_saved_masks_beyond_65535_objects_keep_every_object_in_32_bits():
    labels = np.array([[0, 1, 65535], [65536, 70000, 2]], np.int32)
    mask = native.as_mask(labels)
    assert mask.dtype == np.uint32 and np.array_equal(mask, labels)
    small = native.as_mask(np.array([[0, 65535]], np.int32))
    assert small.dtype == np.uint16 and small.tolist() == [[0, 65535]]
    with pytest.raises(SteinbockLikeError, match="saves no object mask"):
        native.as_mask(None)


def test_native_threshold_is_li_with_cellprofiler_tolerance():
    rng = np.random.default_rng(0)
    values = np.concatenate([rng.normal(0.2, 0.05, 500), rng.normal(0.7, 0.05, 500)])
    li = threshold.li_threshold(values.astype(np.float32))
    assert 0.3 < li < 0.6
    corrected = threshold.ThresholdParams(correction_factor=1.2)
    assert threshold.global_threshold(values.astype(np.float32), corrected) == pytest.approx(
        1.2 * li
    )
    bounded = threshold.ThresholdParams(correction_factor=1.2, upper_bound=0.3)
    assert threshold.global_threshold(values.astype(np.float32), bounded) == 0.3


# ------------------------------------------------------------------------------ own flooding


def test_watershed_floods_downhill_at_once_as_scikit_image_0_18():
    # Marker 1 spills over the ridge first and takes the whole basin behind it, because a
    # pixel is queued at its own (lower) value. scikit-image >= 0.25 queues it at the ridge's
    # value and shares the basin: [1, 1, 1, 1, 2, 2, 2].
    landscape = np.array([[0.5, 0.9, 0.1, 0.1, 0.1, 0.9, 0.5]])
    markers = np.array([[1, 0, 0, 0, 0, 0, 2]])
    assert watershed(landscape, markers).tolist() == [[1, 1, 1, 1, 1, 2, 2]]


def test_watershed_pops_equal_markers_in_heap_order():
    # Three markers of one value enter the heap in row-major order; after the first pop the
    # last one is at the root and pops before the middle one, so marker 3 takes the pixel
    # between markers 2 and 3 (a FIFO queue would give it to marker 2).
    markers = np.array([[1, 0, 2, 0, 3]])
    assert watershed(np.zeros((1, 5)), markers).tolist() == [[1, 1, 2, 3, 3]]
    # the mask limits the flooding; markers outside it are dropped
    mask = np.array([[True, True, True, False, False]])
    assert watershed(np.zeros((1, 5)), markers, mask).tolist() == [[1, 1, 2, 0, 0]]


def test_propagate_equals_centrosome():
    """Labels and distances bit for bit, on images with many ties (coarse gray levels)."""
    import centrosome.propagate

    rng = np.random.default_rng(7)
    for _ in range(40):
        shape = tuple(rng.integers(4, 40, 2))
        levels = int(rng.choice([2, 4, 65535]))
        image = (rng.integers(0, levels, shape) / (levels - 1)).astype(np.float32)
        mask = rng.random(shape) < 0.85
        labels = np.zeros(shape, np.int32)
        count = int(rng.integers(1, 8))
        labels[rng.integers(0, shape[0], count), rng.integers(0, shape[1], count)] = np.arange(
            1, count + 1
        )
        weight = float(rng.choice([0.05, 1.0]))
        ours = propagate(image, labels, mask, weight)
        theirs = centrosome.propagate.propagate(image, labels, mask, weight)
        assert np.array_equal(ours[0], theirs[0])
        assert np.array_equal(ours[1], theirs[1])


def test_native_calls_neither_scikit_image_watershed_nor_centrosome_propagate(monkeypatch):
    import centrosome.propagate
    import skimage.segmentation

    probabilities, _ = synthetic_probabilities((120, 120), cell_count=60, min_gap=-3, seed=5)
    settings = [pipeline.PipelineSettings(), pipeline.PipelineSettings(dividing_method="Shape")]
    expected = [native.run_steps(probabilities, translate.native_steps(pipeline.pipeline_text(s)))
                for s in settings]  # fmt: skip

    def refuse(*args, **kwargs):
        raise AssertionError("called")

    monkeypatch.setattr(skimage.segmentation, "watershed", refuse)
    monkeypatch.setattr(centrosome.propagate, "propagate", refuse)
    for setting, mask in zip(settings, expected, strict=True):
        steps = translate.native_steps(pipeline.pipeline_text(setting))
        assert np.array_equal(native.run_steps(probabilities, steps), mask)
        assert mask.max() > 20


# ------------------------------------------------------------------------------ real backend


def test_missing_cellprofiler_is_one_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv(binary.CELLPROFILER_PYTHON_ENV, str(tmp_path / "nowhere/python"))
    with pytest.raises(MissingToolError, match="nowhere/python.*CELLPROFILER_PYTHON"):
        binary.run_cellprofiler(tmp_path / "p.cppipe", [tmp_path / "a.tiff"], tmp_path / "out")


def _fake_cellprofiler(tmp_path: Path, body: str) -> Path:
    """An executable standing in for CellProfiler's interpreter."""
    script = tmp_path / "fake-python"
    script.write_text(
        f"#!{sys.executable}\nimport sys, pathlib, shutil\nargs = sys.argv[1:]\n{body}"
    )
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return script


def test_failing_cellprofiler_names_the_image(tmp_path):
    pipe = tmp_path / "p.cppipe"
    pipe.write_text(pipeline.pipeline_text())
    images = []
    for name in ["a", "b"]:
        images.append(tmp_path / f"{name}.tiff")
        tifffile.imwrite(images[-1], np.zeros((4, 4, 3), np.uint16))
    python = _fake_cellprofiler(
        tmp_path,
        "out = pathlib.Path(args[args.index('-o') + 1])\n"
        "shutil.copy(pathlib.Path(args[args.index('-i') + 1]) / 'a.tiff', out / 'a.tiff')\n"
        "print('Error while processing b.tiff'); sys.exit(1)\n",
    )
    lines = []
    with pytest.raises(SteinbockLikeError, match=r"failed on b\.tiff \(exit code 1\)"):
        binary.run_cellprofiler(pipe, images, tmp_path / "masks", python=python, log=lines.append)
    assert lines == ["Error while processing b.tiff"]
    assert not (tmp_path / "masks" / "a.tiff").exists()


def test_cellprofiler_outputs_are_moved_to_masks(tmp_path):
    pipe = tmp_path / "p.cppipe"
    pipe.write_text(pipeline.pipeline_text())
    image = tmp_path / "probs" / "img_1.tiff"
    image.parent.mkdir()
    tifffile.imwrite(image, np.full((4, 4, 3), 7, np.uint16))
    python = _fake_cellprofiler(
        tmp_path,
        "assert args[:4] == ['-m', 'cellprofiler', '-c', '-r'], args\n"
        "inp = pathlib.Path(args[args.index('-i') + 1])\n"
        "out = pathlib.Path(args[args.index('-o') + 1])\n"
        "for f in inp.iterdir(): shutil.copy(f, out / f.name); print('done', f.name)\n",
    )
    written = binary.run_cellprofiler(pipe, [image], tmp_path / "masks", python=python, log=print)
    assert written == [tmp_path / "masks" / "img_1.tiff"]
    assert tifffile.imread(written[0]).max() == 7
    assert sorted(p.name for p in (tmp_path / "masks").iterdir()) == ["img_1.tiff"]


@pytest.mark.slow
@needs_cellprofiler
def test_cellprofiler_with_our_pipeline_reproduces_steinbock(refdata, tmp_path):
    pipe = tmp_path / "cell_segmentation.cppipe"
    pipe.write_text(pipeline.pipeline_text())
    paths = _probability_files(refdata)
    lines = []
    written = binary.run_cellprofiler(
        pipe, paths, tmp_path / "masks", python=_cellprofiler_python(), log=lines.append
    )
    assert any("IdentifyPrimaryObjects" in line for line in lines)  # the log streamed
    scores, identical = [], 0
    for path, mask_path in zip(paths, written, strict=True):
        mask = tifffile.imread(mask_path)
        reference = tifffile.imread(refdata / "masks_ilastik" / path.name)
        scores.append(_object_f1(reference, mask))
        identical += bool(np.array_equal(mask, reference))
        # and the native backend agrees with the real CellProfiler
        native_mask = native.run_steps(
            tifffile.imread(path), translate.native_steps(pipe.read_text())
        )
        assert np.array_equal(native_mask, mask)
    assert np.mean(scores) >= 0.98
    assert identical == len(paths)  # 6 of 6 when measured


@pytest.mark.slow
@needs_cellprofiler
def test_native_agrees_with_cellprofiler_on_synthetic(tmp_path):
    pipe = tmp_path / "cell_segmentation.cppipe"
    pipe.write_text(pipeline.pipeline_text())
    steps = translate.native_steps(pipe.read_text())
    paths, native_masks = [], []
    for seed, gap in [(10, 3.0), (11, -3.0)]:  # separate nuclei; clumps to split
        probabilities, _ = synthetic_probabilities(
            (300, 300), cell_count=200, min_gap=gap, seed=seed
        )
        paths.append(tmp_path / "probabilities" / f"synthetic_{seed}.tiff")
        paths[-1].parent.mkdir(exist_ok=True)
        tifffile.imwrite(paths[-1], probabilities)
        native_masks.append(native.run_steps(probabilities, steps))
    written = binary.run_cellprofiler(
        pipe, paths, tmp_path / "masks", python=_cellprofiler_python(), log=lambda line: None
    )
    scores = [
        _object_f1(tifffile.imread(mask_path), native_mask)
        for mask_path, native_mask in zip(written, native_masks, strict=True)
    ]
    assert min(scores) >= 0.95


def _identity_maps(count: int) -> list[np.ndarray]:
    """Small synthetic maps with clumped, touching nuclei; half without noise (plateaus)."""
    rng = np.random.default_rng(2024)
    maps = []
    for index in range(count):
        shape = tuple(int(v) for v in rng.integers(56, 97, 2))
        low = float(rng.uniform(3.0, 7.0))
        probabilities, _ = synthetic_probabilities(
            shape,
            cell_count=int(shape[0] * shape[1] / 100),
            nucleus_radius=(low, low + float(rng.uniform(1.0, 5.0))),
            cytoplasm_width=float(rng.uniform(2.0, 6.0)),
            min_gap=float(rng.uniform(-6.0, 1.0)),
            blur_sigma=float(rng.uniform(0.5, 2.0)),
            noise=0.0 if index % 2 else float(rng.uniform(0.02, 0.15)),
            seed=index,
        )
        maps.append(probabilities)
    return maps


@pytest.mark.slow
@needs_cellprofiler
@pytest.mark.parametrize(
    "settings",
    [
        # little smoothing: seeds compete for unseeded basins (the intensity watershed)
        {"nucleus_smoothing_diameter": 1},
        # watershed on the distance transform: ties on every plateau
        {"dividing_method": "Shape"},
    ],
    ids=["intensity", "shape"],
)
def test_native_identical_to_cellprofiler_on_many_maps(tmp_path, settings):
    """24 maps through one CellProfiler batch: every native mask is identical.

    With scikit-image 0.26's watershed instead of ours, 2 of the intensity maps and 15 of
    the shape maps differed when measured (benchmarks/bench_cellprofiler_identity.py runs
    hundreds of maps in six configurations).
    """
    text = pipeline.pipeline_text(pipeline.PipelineSettings(**settings))
    pipe = tmp_path / "cell_segmentation.cppipe"
    pipe.write_text(text)
    steps = translate.native_steps(text)
    (tmp_path / "probabilities").mkdir()
    paths, native_masks = [], []
    for index, probabilities in enumerate(_identity_maps(24)):
        paths.append(tmp_path / "probabilities" / f"map_{index:02d}.tiff")
        tifffile.imwrite(paths[-1], probabilities)
        native_masks.append(native.run_steps(probabilities, steps))
    written = binary.run_cellprofiler(
        pipe, paths, tmp_path / "masks", python=_cellprofiler_python(), log=lambda line: None
    )
    differing = {
        path.name: int(np.count_nonzero(tifffile.imread(mask_path) != native_mask))
        for path, mask_path, native_mask in zip(paths, written, native_masks, strict=True)
    }
    assert {name: count for name, count in differing.items() if count} == {}
    assert sum(int(mask.max()) for mask in native_masks) > 24 * 20
