"""Native ilastik backend: fidelity to real ilastik, tiling, retraining and errors."""

import json
import pickle

import h5py
import numpy as np
import pytest
import tifffile

from steinbock_like.classify.ilastik import features as ft
from steinbock_like.classify.ilastik.classifier import predict_image_file
from steinbock_like.classify.ilastik.features import FeatureSelection
from steinbock_like.classify.ilastik.training import (
    load_or_train_pixel_classifier,
    load_pixel_classifier,
    read_training_data,
    store_pixel_classifier,
    train_pixel_classifier,
)
from steinbock_like.errors import InputError

MIN_AGREEMENT = 0.995
MAX_MEAN_ABS_DIFF = 0.01


@pytest.fixture(scope="module")
def ilastik_classifier(refdata):
    return load_pixel_classifier(refdata / "ilastik_original.ilp")


def test_refdata_project_loads(ilastik_classifier):
    assert ilastik_classifier.label_names == ("Nucleus", "Cytoplasm", "Background")
    assert ilastik_classifier.num_channels == 4
    assert ilastik_classifier.model.num_features == 160
    assert ilastik_classifier.halo == 38


def test_fidelity_to_ilastik_on_refdata(refdata, ilastik_classifier):
    """Per-image argmax agreement and mean absolute difference against real ilastik 1.3.3."""
    agreeing = total = 0
    abs_diff_sum = 0.0
    report = []
    for image_path in sorted((refdata / "ilastik_img").glob("*.h5")):
        with h5py.File(image_path, "r") as file:
            image = file["img"][()]
        reference = tifffile.imread(refdata / "ilastik_probabilities" / f"{image_path.stem}.tiff")
        ours = ilastik_classifier.predict(image, dtype=np.uint16)
        assert ours.shape == reference.shape and ours.dtype == reference.dtype
        agree = ours.argmax(axis=-1) == reference.argmax(axis=-1)
        diff = np.abs(ours.astype(np.float64) - reference) / 65535
        report.append(f"{image_path.stem}: agreement {agree.mean():.5f}, MAD {diff.mean():.2e}")
        assert agree.mean() >= MIN_AGREEMENT, report[-1]
        agreeing += agree.sum()
        total += agree.size
        abs_diff_sum += diff.sum()
    print("\n".join(report))
    assert total > 0
    assert agreeing / total >= MIN_AGREEMENT
    assert abs_diff_sum / (total * 3) <= MAX_MEAN_ABS_DIFF


def test_uint16_probabilities_equal_ilastik(refdata, ilastik_classifier):
    """Features as fastfilters computes them (its float32 kernel coefficients, x pass first,
    one fused multiply-add per tap, in the order of its AVX or its -Ofast scalar code by
    column) give ilastik's exported values exactly on every pixel of the refdata. With the
    AVX order everywhere 1 pixel differed (a Difference of Gaussians at scale 10 next to a
    split threshold); with double-precision filters 15 did."""
    differing = {}
    for image_path in sorted((refdata / "ilastik_img").glob("*.h5")):
        with h5py.File(image_path, "r") as file:
            image = file["img"][()]
        reference = tifffile.imread(refdata / "ilastik_probabilities" / f"{image_path.stem}.tiff")
        ours = ilastik_classifier.predict(image, dtype=np.uint16)
        for y, x in np.argwhere((ours != reference).any(axis=-1)):
            votes = np.abs(ours[y, x].astype(np.int64) - reference[y, x]).max()
            differing[(image_path.stem, int(y), int(x))] = int(votes)
    assert len(differing) == 0, differing
    # Tiles computed in worker threads know where they lie in the image: same values.
    with h5py.File(refdata / "ilastik_img" / "20210305_NE_mockData2_002.h5", "r") as file:
        image = file["img"][()]
    reference = tifffile.imread(
        refdata / "ilastik_probabilities" / "20210305_NE_mockData2_002.tiff"
    )
    tiled = ilastik_classifier.predict(image, dtype=np.uint16, tile_size=50, workers=2)
    np.testing.assert_array_equal(tiled, reference)


def test_float_output_converts_to_ilastik_uint16(refdata, ilastik_classifier):
    with h5py.File(refdata / "ilastik_img" / "20210305_NE_mockData1_001.h5", "r") as file:
        image = file["img"][()]
    probabilities = ilastik_classifier.predict(image)
    assert probabilities.dtype == np.float32
    np.testing.assert_allclose(probabilities.sum(axis=-1), 1.0, rtol=1e-5)
    as_uint16 = ilastik_classifier.predict(image, dtype=np.uint16)
    # ilastik's export: float32 probability times 65535, truncated (not the module's constant)
    expected = np.floor(probabilities.astype(np.float64) * 65535).astype(np.uint16)
    assert np.max(np.abs(as_uint16.astype(np.int64) - expected)) <= 1  # float32 product
    assert np.mean(as_uint16 != expected) < 1e-3
    assert as_uint16.max() <= 65535 and int(as_uint16.sum(axis=-1).min()) >= 65535 - 3


def test_tiled_equals_untiled_and_reads_h5_lazily(refdata, ilastik_classifier, tmp_path):
    rng = np.random.default_rng(11)
    image = rng.gamma(2.0, 5.0, size=(4, 150, 130)).astype(np.float32)
    whole = ilastik_classifier.predict(image, tile_size=1000)
    np.testing.assert_array_equal(ilastik_classifier.predict(image, tile_size=41), whole)
    path = tmp_path / "img.h5"
    with h5py.File(path, "w") as file:
        file.create_dataset("img", data=image, chunks=(4, 32, 32))
    with h5py.File(path, "r") as file:
        from_disk = ilastik_classifier.predict(file["img"], tile_size=64, workers=2)
    np.testing.assert_array_equal(from_disk, whole)


def test_channel_count_mismatch(ilastik_classifier):
    with pytest.raises(InputError, match="4-channel images but the image has 5 channels"):
        ilastik_classifier.predict(np.zeros((5, 20, 20), dtype=np.float32))


# --------------------------------------------------------------------------------------------
# Synthetic projects

SMALL_SELECTION = FeatureSelection.from_pairs(
    [
        (ft.GAUSSIAN_SMOOTHING, 0.7),
        (ft.GAUSSIAN_SMOOTHING, 1.6),
        (ft.GAUSSIAN_SMOOTHING, 3.5),
        (ft.GAUSSIAN_GRADIENT_MAGNITUDE, 1.6),
        (ft.DIFFERENCE_OF_GAUSSIANS, 3.5),
        (ft.HESSIAN_OF_GAUSSIAN_EIGENVALUES, 1.6),
    ]
)
AXISTAGS = {
    "cyx": json.dumps({"axes": [{"key": k, "typeFlags": 1 if k == "c" else 2} for k in "cyx"]}),
    "zyxc": json.dumps({"axes": [{"key": k, "typeFlags": 1 if k == "c" else 2} for k in "zyxc"]}),
}


def synthetic_cells(seed: int, size: int = 96) -> tuple[np.ndarray, np.ndarray]:
    """A 2-channel image of cells and its ground truth (1 nucleus, 2 cytoplasm, 3 background).

    Channel 0 is bright in nuclei, channel 1 in the cytoplasm ring around them.
    """
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size]
    truth = np.full((size, size), 3, dtype=np.uint8)
    distance = np.full((size, size), np.inf)
    for y, x in rng.integers(8, size - 8, size=(size * size // 500, 2)):
        distance = np.minimum(distance, np.hypot(yy - y, xx - x))
    truth[distance <= 7] = 2
    truth[distance <= 3.5] = 1
    image = rng.gamma(2.0, 1.0, size=(2, size, size)).astype(np.float32)
    image[0][truth == 1] += 12
    image[1][truth == 2] += 8
    image[1][truth == 1] += 2
    return image, truth


def write_project(
    path,
    crops,
    *,
    axes="cyx",
    selection=SMALL_SELECTION,
    with_labels=True,
    feature_ids=None,
):
    """A minimal ilastik project: feature selection, label names, lanes and label blocks."""
    with h5py.File(path, "w") as project:
        group = project.create_group("FeatureSelections")
        ids = feature_ids or selection.feature_ids
        group["FeatureIds"] = np.array([f.encode() for f in ids])
        group["Scales"] = np.array(selection.scales)
        group["SelectionMatrix"] = selection.selection_matrix
        group["ComputeIn2d"] = np.ones(len(selection.scales), dtype=bool)
        project["PixelClassification/LabelNames"] = np.array(
            [b"Nucleus", b"Cytoplasm", b"Background"]
        )
        project.create_group("PixelClassification/LabelSets")
        crop_dir = path.parent / "crops"
        crop_dir.mkdir(exist_ok=True)
        for index, (image, labels) in enumerate(crops):
            name = f"crop{index}.h5"
            stored = image if axes == "cyx" else image.transpose(1, 2, 0)[np.newaxis]
            with h5py.File(crop_dir / name, "w") as file:
                file["crop"] = stored
                file["crop"].attrs["axistags"] = AXISTAGS[axes]
            lane = project.create_group(f"Input Data/infos/lane{index:04d}/Raw Data")
            lane["filePath"] = f"crops/{name}/crop".encode()
            lane["axistags"] = AXISTAGS[axes].encode()
            label_set = project.create_group(f"PixelClassification/LabelSets/labels{index:03d}")
            if not with_labels:
                continue
            rows, cols = np.nonzero(labels)
            y0, y1, x0, x1 = rows.min(), rows.max() + 1, cols.min(), cols.max() + 1
            block = labels[y0:y1, x0:x1]
            if axes == "cyx":
                block, spec = block[np.newaxis], f"[0:1,{y0}:{y1},{x0}:{x1}]"
            else:
                block, spec = block[np.newaxis, :, :, np.newaxis], f"[0:1,{y0}:{y1},{x0}:{x1},0:1]"
            label_set["block0000"] = block
            label_set["block0000"].attrs["blockSlice"] = spec


def sparse_labels(truth: np.ndarray, per_class: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    labels = np.zeros_like(truth)
    for value in (1, 2, 3):
        rows, cols = np.nonzero(truth == value)
        pick = rng.choice(rows.size, size=min(per_class, rows.size), replace=False)
        labels[rows[pick], cols[pick]] = value
    return labels


@pytest.mark.parametrize("axes", ["cyx", "zyxc"])
def test_retrain_on_synthetic_labels_predicts_held_out_truth(tmp_path, axes):
    crops = []
    for seed in (1, 2):
        image, truth = synthetic_cells(seed)
        crops.append((image, sparse_labels(truth, 60, seed)))
    project = tmp_path / "pixel_classifier.ilp"
    write_project(project, crops, axes=axes)

    samples = read_training_data(project)
    assert [s.image_cyx.shape for s in samples] == [(2, 96, 96)] * 2
    np.testing.assert_array_equal(samples[0].image_cyx, crops[0][0])
    np.testing.assert_array_equal(samples[1].labels_yx, crops[1][1])

    classifier = train_pixel_classifier(project, seed=5)
    assert classifier.label_names == ("Nucleus", "Cytoplasm", "Background")
    assert classifier.num_channels == 2
    assert classifier.model.num_trees == 100
    image, truth = synthetic_cells(seed=99, size=128)
    probabilities = classifier.predict(image, tile_size=50)
    accuracy = np.mean(probabilities.argmax(axis=-1) + 1 == truth)
    assert accuracy >= 0.95  # background alone is 76%
    # Same seed, same forest.
    again = train_pixel_classifier(project, seed=5)
    np.testing.assert_array_equal(again.predict(image), probabilities)


def test_project_without_forest_trains_on_its_labels(tmp_path):
    image, truth = synthetic_cells(3)
    project = tmp_path / "p.ilp"
    write_project(project, [(image, sparse_labels(truth, 40, 3))])
    with pytest.raises(InputError, match="has labels but no trained classifier"):
        load_pixel_classifier(project)
    classifier = load_or_train_pixel_classifier(project)
    accuracy = np.mean(classifier.predict(image).argmax(axis=-1) + 1 == truth)
    assert accuracy >= 0.85


def test_project_without_forest_or_labels(tmp_path):
    image, truth = synthetic_cells(4)
    project = tmp_path / "p.ilp"
    write_project(project, [(image, truth)], with_labels=False)
    with pytest.raises(InputError, match="neither a trained classifier nor labels"):
        load_pixel_classifier(project)
    with pytest.raises(InputError, match="no labels"):
        load_or_train_pixel_classifier(project)


def test_unknown_feature_is_an_input_error(tmp_path):
    image, truth = synthetic_cells(5)
    project = tmp_path / "p.ilp"
    selection = FeatureSelection.from_pairs(
        [(ft.GAUSSIAN_SMOOTHING, 1.0), (ft.LAPLACIAN_OF_GAUSSIAN, 1.0)]
    )
    ids = ("GaussianSmoothing", "BogusFeature")
    write_project(project, [(image, truth)], selection=selection, feature_ids=ids)
    with pytest.raises(InputError, match="unknown feature 'BogusFeature'") as error:
        load_pixel_classifier(project)
    assert str(error.value).startswith(str(project))
    with pytest.raises(InputError, match="unknown feature 'BogusFeature'"):
        train_pixel_classifier(project)
    # An unknown feature that is not selected is ignored.
    with h5py.File(project, "r+") as file:
        file["FeatureSelections/SelectionMatrix"][1] = False
    classifier = train_pixel_classifier(project, num_trees=5)
    assert classifier.selection.selected() == [(ft.GAUSSIAN_SMOOTHING, 1.0)]


def test_missing_or_invalid_project_files(tmp_path):
    with pytest.raises(InputError, match="not found"):
        load_pixel_classifier(tmp_path / "missing.ilp")
    bogus = tmp_path / "bogus.ilp"
    bogus.write_text("not hdf5")
    with pytest.raises(InputError, match="not a readable ilastik project"):
        load_pixel_classifier(bogus)


def test_refdata_crops_from_another_machine_are_reported(refdata):
    # ilastik_original.ilp points at absolute crop paths of the machine it was trained on.
    with pytest.raises(InputError, match="not found"):
        read_training_data(refdata / "ilastik_original.ilp")


def test_stored_classifier_loads_back_and_missing_classes_stay_zero(tmp_path):
    image, truth = synthetic_cells(6)
    labels = sparse_labels(truth, 50, 6)
    labels[labels == 2] = 0  # no cytoplasm labels: the forest knows classes 1 and 3 only
    project = tmp_path / "p.ilp"
    write_project(project, [(image, labels)])
    trained = train_pixel_classifier(project, num_trees=20, seed=1)
    assert trained.model.labels.tolist() == [1, 3]
    expected = trained.predict(image)
    assert np.all(expected[..., 1] == 0)
    np.testing.assert_allclose(expected.sum(axis=-1), 1.0, rtol=1e-5)

    store_pixel_classifier(project, trained)
    loaded = load_pixel_classifier(project)
    assert loaded.model.num_trees == 20 and len(loaded.model.forests) == 8
    np.testing.assert_allclose(loaded.predict(image), expected, atol=1e-6)
    with h5py.File(project, "r") as file:
        names = [n.decode() for n in file["PixelClassification/ClassifierForests/feature_names"]]
    assert names == trained.feature_names()

    # Other classifier types that ilastik can store are refused by name.
    with h5py.File(project, "r+") as file:
        del file["PixelClassification/ClassifierForests/pickled_type"]
        file["PixelClassification/ClassifierForests/pickled_type"] = np.array(
            b"clazyflow.classifiers.sklearnLazyflowClassifier\nSklearnLazyflowClassifier\np0\n.",
            dtype=object,
        )
    with pytest.raises(InputError, match="not a SklearnLazyflowClassifier"):
        load_pixel_classifier(project)


def test_tiles_and_workers_do_not_change_a_trained_classifiers_output(tmp_path):
    image, truth = synthetic_cells(7)
    project = tmp_path / "p.ilp"
    write_project(project, [(image, sparse_labels(truth, 30, 7))])
    classifier = train_pixel_classifier(project, num_trees=10)
    held_out, _ = synthetic_cells(8, size=130)
    whole = classifier.predict(held_out, tile_size=500)
    np.testing.assert_array_equal(classifier.predict(held_out, tile_size=33), whole)
    np.testing.assert_array_equal(classifier.predict(held_out, tile_size=64, workers=2), whole)
    in_processes = classifier.predict(held_out, tile_size=64, workers=2, processes=True)
    np.testing.assert_array_equal(in_processes, whole)
    # Picklable, so that the batch runner can hand it to worker processes.
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(classifier)).predict(held_out), whole)
    with pytest.raises(InputError, match="2-channel images but the image has 3 channels"):
        classifier.predict(np.zeros((3, 10, 10), dtype=np.float32))


def test_feature_name_mismatch_is_logged(tmp_path, caplog):
    image, truth = synthetic_cells(9)
    project = tmp_path / "p.ilp"
    write_project(project, [(image, sparse_labels(truth, 30, 9))])
    store_pixel_classifier(project, train_pixel_classifier(project, num_trees=8))
    with h5py.File(project, "r+") as file:
        names = file["PixelClassification/ClassifierForests/feature_names"]
        changed = names[()]
        changed[3] = b"Something Else (\xcf\x83=1.6) in 2D [1]"
        names[...] = changed
    with caplog.at_level("WARNING"):
        load_pixel_classifier(project)
    assert "differ from the computed ones from column 3" in caplog.text


def test_training_without_scikit_learn_names_the_package(tmp_path, monkeypatch):
    import sys

    from steinbock_like.errors import MissingToolError

    image, truth = synthetic_cells(10)
    project = tmp_path / "p.ilp"
    write_project(project, [(image, sparse_labels(truth, 30, 10))])
    monkeypatch.setitem(sys.modules, "sklearn.ensemble", None)
    with pytest.raises(MissingToolError, match="pip install scikit-learn"):
        train_pixel_classifier(project)


def test_predict_image_file_reads_ilastik_images(tmp_path):
    from steinbock_like.io.ilastik import write_ilastik_image

    image, truth = synthetic_cells(11)
    project = tmp_path / "p.ilp"
    write_project(project, [(image, sparse_labels(truth, 30, 11))])
    classifier = train_pixel_classifier(project, num_trees=10)
    held_out, _ = synthetic_cells(12, size=70)
    path = tmp_path / "img.h5"
    write_ilastik_image(path, held_out)
    result = predict_image_file(classifier, path, tile_size=32)
    assert result.dtype == np.uint16 and result.shape == (70, 70, 3)
    np.testing.assert_array_equal(result, classifier.predict(held_out, dtype=np.uint16))
    write_ilastik_image(path, held_out[:1])
    with pytest.raises(InputError, match="image has 1 channels") as error:
        predict_image_file(classifier, path)
    assert str(error.value).startswith(str(path))
