"""The synthetic IMC example: files, determinism and ground truth consistent with the images."""

import numpy as np
import pytest
from scipy import ndimage

from steinbock_like import example, layout, testing
from steinbock_like.errors import SteinbockLikeError
from steinbock_like.io.images import read_image
from steinbock_like.io.masks import read_mask
from steinbock_like.io.panel import read_panel

SIZE = 128
CHANNELS = 6


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("example")
    done = []
    summary = example.write_example_imc(
        root, images=2, size=SIZE, channels=CHANNELS, seed=3, progress=done.append
    )
    return root, summary, done


@pytest.fixture(scope="module", params=[0, 1, 2])
def tissue(request):
    return example.simulate_tissue((256, 256), np.random.default_rng(request.param))


def _marker(name):
    return next(m for m in example.MARKERS if m.name == name)


# --- panel ---------------------------------------------------------------------------------


@pytest.mark.parametrize("channels", [3, 4, 10, example.MAX_CHANNELS])
def test_panel_has_nuclear_membrane_and_two_deepcell_groups(channels):
    markers = example.select_markers(channels)
    panel = example.example_panel(markers)
    assert len(panel) == channels
    assert panel["channel"].is_unique and panel["name"].is_unique
    assert [m.mass for m in markers] == sorted(m.mass for m in markers)
    compartments = {m.compartment for m in markers}
    assert {"nuclear", "membrane", "cytoplasm"} <= compartments
    assert set(panel["deepcell"].dropna()) == {1.0, 2.0}
    assert set(panel["cellpose"].dropna()) == {1.0, 2.0}
    assert set(panel["ilastik"].dropna()) == {1.0, 2.0, 3.0}
    nuclear = panel["channel"].isin([m.channel for m in markers if m.compartment == "nuclear"])
    assert (panel.loc[nuclear & panel["deepcell"].notna(), "deepcell"] == 1).all()
    assert (panel.loc[nuclear & panel["cellpose"].notna(), "cellpose"] == 2).all()


@pytest.mark.parametrize("channels", [2, example.MAX_CHANNELS + 1])
def test_unsupported_channel_count_is_a_user_error(channels, tmp_path):
    with pytest.raises(SteinbockLikeError, match="channels"):
        example.write_example_imc(tmp_path, images=1, size=32, channels=channels)
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize("options", [{"images": 0}, {"size": 8}])
def test_bad_image_count_or_size_is_a_user_error(options, tmp_path):
    with pytest.raises(SteinbockLikeError, match="at least"):
        example.write_example_imc(tmp_path, **options)


# --- written dataset -----------------------------------------------------------------------


def test_dataset_files_are_valid_and_complete(dataset):
    root, summary, done = dataset
    written = sorted(p for p in root.rglob("*") if p.is_file())
    assert written == sorted(example.example_outputs(root, 2))
    assert done == ["example_001", "example_002"] == summary.images
    assert summary.shape == (CHANNELS, SIZE, SIZE)

    panel = read_panel(root / layout.PANEL)
    assert list(panel["channel"]) == [m.channel for m in example.select_markers(CHANNELS)]
    assert panel["keep"].all()
    for name, count in zip(summary.images, summary.cell_counts, strict=True):
        image = read_image(root / layout.IMG / f"{name}.tiff", num_channels=len(panel))
        cells = read_mask(root / layout.MASKS_TRUTH / f"{name}.tiff", shape=(SIZE, SIZE))
        nuclei = read_mask(root / layout.MASKS_TRUTH_NUCLEI / f"{name}.tiff", shape=(SIZE, SIZE))
        assert image.dtype == np.float32 and cells.dtype == nuclei.dtype == np.uint16
        assert image.min() >= 0 and np.array_equal(image, np.rint(image))  # counts
        assert int(cells.max()) == count and len(np.unique(cells)) == count + 1
        assert np.array_equal(np.unique(nuclei), np.unique(cells))
        inside = nuclei > 0
        assert np.array_equal(cells[inside], nuclei[inside])


def test_written_images_agree_with_their_masks(dataset):
    root, summary, _ = dataset
    panel = read_panel(root / layout.PANEL)
    names = list(panel["name"])
    for name in summary.images:
        image = read_image(root / layout.IMG / f"{name}.tiff")
        cells = read_mask(root / layout.MASKS_TRUTH / f"{name}.tiff")
        nuclei = read_mask(root / layout.MASKS_TRUTH_NUCLEI / f"{name}.tiff")
        dna = image[names.index("DNA1")]
        assert dna[nuclei > 0].mean() > 10 * dna[cells == 0].mean()
        membrane = image[names.index("HLA-ABC")]
        distance = _edge_distance(cells)
        assert membrane[(cells > 0) & (distance == 0)].mean() > 1.5 * membrane[distance >= 3].mean()


def test_same_seed_same_files_and_other_seed_differs(dataset, tmp_path):
    root, _, _ = dataset
    again = example.write_example_imc(
        tmp_path / "a", images=1, size=SIZE, channels=CHANNELS, seed=3
    )
    other = example.write_example_imc(
        tmp_path / "b", images=1, size=SIZE, channels=CHANNELS, seed=4
    )
    for folder in (layout.IMG, layout.MASKS_TRUTH, layout.MASKS_TRUTH_NUCLEI):
        first = read_image(root / folder / "example_001.tiff")
        assert np.array_equal(first, read_image(again.root / folder / "example_001.tiff"))
        assert not np.array_equal(first, read_image(other.root / folder / "example_001.tiff"))
    assert (root / layout.PANEL).read_text() == (again.root / layout.PANEL).read_text()


def test_a_marker_renders_the_same_whatever_the_panel_size(dataset, tmp_path):
    root, _, _ = dataset
    small = example.write_example_imc(tmp_path, images=1, size=SIZE, channels=3, seed=3)
    small_names = list(read_panel(small.panel)["name"])
    names = list(read_panel(root / layout.PANEL)["name"])
    small_image = read_image(small.root / layout.IMG / "example_001.tiff")
    image = read_image(root / layout.IMG / "example_001.tiff")
    for name in small_names:
        assert np.array_equal(small_image[small_names.index(name)], image[names.index(name)])


# --- ground truth --------------------------------------------------------------------------


def test_ids_are_consecutive_and_cells_match_nuclei_one_to_one(tissue):
    n = tissue.num_cells
    assert np.array_equal(np.unique(tissue.cells), np.arange(n + 1))
    assert np.array_equal(np.unique(tissue.nuclei), np.arange(n + 1))
    assert tissue.cells.dtype == tissue.nuclei.dtype == np.int32
    assert len(tissue.cell_types) == n + 1 and tissue.cell_types[0] == -1
    assert set(np.unique(tissue.cell_types[1:])) <= set(range(len(example.CELL_TYPES)))


def test_every_nucleus_lies_strictly_inside_its_cell(tissue):
    cells, nuclei = tissue.cells, tissue.nuclei
    inside = nuclei > 0
    assert np.array_equal(cells[inside], nuclei[inside])
    # All 8 neighbours of a nucleus pixel belong to the same cell (none on its edge).
    padded = np.pad(cells, 1, mode="edge")
    ys, xs = np.nonzero(inside)
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            assert np.array_equal(padded[ys + 1 + dy, xs + 1 + dx], nuclei[ys, xs])
    # Nuclei are smaller than their cells.
    cell_area = np.bincount(cells.ravel())[1:]
    nucleus_area = np.bincount(nuclei.ravel(), minlength=len(cell_area) + 1)[1:]
    assert np.all(nucleus_area < cell_area)
    assert 0.2 < nucleus_area.sum() / cell_area.sum() < 0.6


def test_cells_and_nuclei_are_connected(tissue):
    _, count = ndimage.label(tissue.nuclei > 0, structure=np.ones((3, 3)))
    assert count == tissue.num_cells  # one component per nucleus, none merged
    for label, box in enumerate(ndimage.find_objects(tissue.cells), start=1):
        _, parts = ndimage.label(tissue.cells[box] == label)
        assert parts == 1, f"cell {label} is in {parts} pieces"


def test_packed_tissue_with_gaps_and_empty_regions(tissue):
    cells = tissue.cells
    area = cells.size
    # Plausible density for ~11 px cells: a few hundred cells in 256 x 256.
    assert 350 < tissue.num_cells < 800
    mean_cell_area = np.count_nonzero(cells) / tissue.num_cells
    assert 60 < mean_cell_area < 150
    background = np.count_nonzero(cells == 0) / area
    assert 0.05 < background < 0.4
    # Most cells touch a neighbour.
    touching = set()
    for a, b in ((cells[1:], cells[:-1]), (cells[:, 1:], cells[:, :-1])):
        pairs = (a != b) & (a > 0) & (b > 0)
        touching.update(a[pairs].tolist())
        touching.update(b[pairs].tolist())
    assert len(touching) > 0.9 * tissue.num_cells
    # Empty regions exist and hold no cells.
    assert tissue.empty.any()
    assert not cells[tissue.empty].any()


def test_several_cell_types_present(tissue):
    counts = np.bincount(tissue.cell_types[1:], minlength=len(example.CELL_TYPES))
    assert np.count_nonzero(counts) >= 5
    assert counts.max() < 0.8 * tissue.num_cells


def test_same_rng_state_same_tissue():
    first = example.simulate_tissue((96, 80), np.random.default_rng(7))
    second = example.simulate_tissue((96, 80), np.random.default_rng(7))
    assert first.shape == (96, 80)
    assert np.array_equal(first.cells, second.cells)
    assert np.array_equal(first.nuclei, second.nuclei)
    assert np.array_equal(first.cell_types, second.cell_types)


# --- rendering -----------------------------------------------------------------------------


def test_compartments_render_where_they_belong(tissue):
    cells, nuclei = tissue.cells, tissue.nuclei
    rng = np.random.default_rng(0)
    dna = example.render_channel(tissue, _marker("DNA1"), rng)
    assert dna.dtype == np.float32 and dna.shape == cells.shape
    assert dna[nuclei > 0].mean() > 10 * dna[cells == 0].mean()
    assert dna[nuclei > 0].mean() > 3 * dna[(cells > 0) & (nuclei == 0)].mean()

    membrane = example.render_channel(tissue, _marker("HLA-ABC"), rng)
    edge = (cells > 0) & (tissue.edge_distance == 0)
    interior = tissue.edge_distance >= 3
    assert membrane[edge].mean() > 2 * membrane[interior].mean()

    tumor = tissue.cell_types[cells] == example.CELL_TYPES.index("tumor")
    keratin = example.render_channel(tissue, _marker("panCK"), rng)
    assert keratin[tumor & (nuclei == 0)].mean() > 2 * keratin[tumor & (nuclei > 0)].mean()
    assert keratin[tumor].mean() > 5 * keratin[(cells > 0) & ~tumor].mean()

    collagen = example.render_channel(tissue, _marker("Collagen I"), rng)
    assert collagen[tissue.matrix_mask].mean() > 3 * collagen[tissue.empty].mean()


def test_cell_type_expression_differs(tissue):
    cells = tissue.cells
    cd45 = example.render_channel(tissue, _marker("CD45"), np.random.default_rng(1))
    types = tissue.cell_types[cells]
    immune = np.isin(types, [example.CELL_TYPES.index(t) for t in ("T_helper", "B_cell")])
    tumor = types == example.CELL_TYPES.index("tumor")
    assert cd45[immune].mean() > 5 * cd45[tumor].mean()


def test_noise_is_poisson_like():
    tissue = example.simulate_tissue((128, 128), np.random.default_rng(5))
    flat = example.Marker("X1", "flat", "cytoplasm")  # no expression: background only
    channel = example.render_channel(
        tissue, flat, np.random.default_rng(2), background=4.0, psf_sigma=0
    )
    assert np.array_equal(channel, np.rint(channel))
    assert channel.mean() == pytest.approx(4.0, rel=0.05)
    assert channel.var() == pytest.approx(4.0, rel=0.1)


def test_synthetic_probabilities_follow_the_classes(tissue):
    probabilities = testing.tissue_probabilities(tissue, np.random.default_rng(0))
    assert probabilities.dtype == np.uint16 and probabilities.shape == (*tissue.shape, 3)
    truth = np.full(tissue.shape, 2)
    truth[tissue.cells > 0] = 1
    truth[tissue.nuclei > 0] = 0
    assert np.mean(probabilities.argmax(axis=-1) == truth) > 0.85
    total = probabilities.sum(axis=-1, dtype=np.int64)
    assert total.min() >= 65535 - 3 and total.max() <= 65535


def _edge_distance(mask):
    """Distance to the nearest pixel next to another label (as the generator defines edges)."""
    edge = np.zeros(mask.shape, dtype=bool)
    for axis in (0, 1):
        differs = np.diff(mask, axis=axis) != 0
        lead = [slice(None)] * 2
        lead[axis] = slice(1, None)
        trail = [slice(None)] * 2
        trail[axis] = slice(None, -1)
        edge[tuple(lead)] |= differs
        edge[tuple(trail)] |= differs
    edge &= mask > 0
    return ndimage.distance_transform_edt(~edge)


def test_one_image_job_reproduces_that_image_of_the_dataset(dataset, tmp_path):
    root, summary, _ = dataset
    count = example.write_example_image(tmp_path, 1, size=SIZE, channels=CHANNELS, seed=3)
    assert count == summary.cell_counts[1]
    for folder in (layout.IMG, layout.MASKS_TRUTH, layout.MASKS_TRUTH_NUCLEI):
        assert [p.name for p in (tmp_path / folder).iterdir()] == ["example_002.tiff"]
        assert np.array_equal(
            read_image(tmp_path / folder / "example_002.tiff"),
            read_image(root / folder / "example_002.tiff"),
        )


def test_summary_reads_as_one_line(dataset):
    _, summary, _ = dataset
    text = str(summary)
    assert f"2 image(s) of {CHANNELS} x {SIZE} x {SIZE}" in text
    assert f"({sum(summary.cell_counts)} cells)" in text and "\n" not in text


def test_example_brightfield_is_an_hed_slide_with_its_truth(tmp_path):
    from skimage.color import rgb2hed

    from steinbock_like.cli.main import main

    with pytest.raises(SystemExit) as exit_:
        main(["--data", str(tmp_path), "example", "brightfield", "bf", "--size", "96"])
    assert exit_.value.code == 0
    root = tmp_path / "bf"
    assert list(read_panel(root / "panel.csv")["name"]) == ["red", "green", "blue"]
    image = read_image(root / "img" / "slide_001.tiff")
    nuclei = read_mask(root / "masks_truth_nuclei" / "slide_001.tiff")
    tissue = read_mask(root / "tissue_truth" / "slide_001.tiff") > 0
    assert image.shape == (3, 96, 96) and nuclei.max() > 10
    assert not np.any(nuclei[~tissue])  # glass holds no cells
    assert image[:, ~tissue].mean() > 240  # bright glass
    haematoxylin = rgb2hed(np.moveaxis(image, 0, -1) / 255)[..., 0]
    inside = haematoxylin[(nuclei > 0) & tissue].mean()
    around = haematoxylin[(nuclei == 0) & tissue].mean()
    assert inside > around + 0.1  # deconvolution finds the nuclei in the haematoxylin plane
