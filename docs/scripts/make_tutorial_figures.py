"""Run the tutorials for real and write their pages and figures.

Run by the mkdocs-gen-files plugin during ``mkdocs build`` (see mkdocs.yml): every
command a tutorial shows is executed here through the real command line
(``steinbock_like.cli.main.main``, the console script's entry point) on small
synthetic example data, and the figures are drawn from what the commands wrote. A
command that fails stops the build with its error, so a page can never show a
command that does not work.

Standalone, for a quick look: ``TUTORIAL_OUT=DIR python docs/scripts/make_tutorial_figures.py``
writes the pages and figures to DIR instead of the site.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import shlex
import sys
import tempfile
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

# Small data keeps the build to about a minute on two busy cores.
IMAGES = 2
SIZE = 160
CELLPOSE_EPOCHS = 6
CELLPOSE_TRAIN_IMAGES = 3
CELLPOSE_CACHE = Path(
    os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"), "steinbock-like", "docs"
)


class Output:
    """Where pages and figures go: the site being built (gen-files) or a folder."""

    def __init__(self, folder: Path | None):
        self.folder = folder

    def open(self, name: str, mode: str):
        if self.folder is None:
            import mkdocs_gen_files

            return mkdocs_gen_files.open(name, mode)
        path = self.folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        return open(path, mode)


class Tutorial:
    """A page assembled while its commands run in a fresh data directory."""

    def __init__(self, output: Output, slug: str, title: str, workdir: Path):
        self.output = output
        self.slug = slug
        self.root = workdir / slug
        self.root.mkdir(parents=True)
        self.parts: list[str] = [f"# {title}\n"]
        self.started = time.perf_counter()
        self.commands_run = 0

    def text(self, markdown: str) -> None:
        self.parts.append(markdown.strip("\n") + "\n")

    def commands_only(self, reason: str, commands: list[list[str]]) -> None:
        """Write the page without figures: why, and its commands (parsed, not run)."""
        self.text(
            f"""
!!! note "Figures not built"
    When this site was built, {reason}, so this tutorial's commands did not run and it
    has no figures. Build the site in an environment with
    `pip install -e .[docs,cellpose]` to see them.

The commands are (their options checked against the command line, not run):
"""
        )
        for args in commands:
            check_arguments(args)
            self.text(f"```console\n$ steinbock-like {shlex.join(args)}\n```")
        self.write()

    def run(self, *args: str, show: bool = True) -> str:
        """Run ``steinbock-like ARGS`` in the data directory; fail the build if it fails."""
        from steinbock_like.cli.main import main

        argv = ["--data", str(self.root), *args]
        shown = [arg.replace(str(self.root) + "/", "") for arg in args]
        stderr = io.StringIO()
        with contextlib.redirect_stderr(stderr):
            try:
                main(argv)
                code = 0
            except SystemExit as done:
                code = done.code if isinstance(done.code, int) else (0 if done.code is None else 1)
        # The root command installs its own handler on each call; leave nothing behind.
        logging.getLogger("steinbock_like").handlers[:] = []
        log = stderr.getvalue().replace(str(self.root) + "/", "").replace(str(self.root), ".")
        if code != 0:
            raise RuntimeError(
                f"tutorial {self.slug}: 'steinbock-like {shlex.join(shown)}' failed "
                f"(exit {code}):\n{log[-3000:]}"
            )
        self.commands_run += 1
        if show:
            last = [line for line in log.splitlines() if line.strip()][-1:]
            block = f"```console\n$ steinbock-like {shlex.join(shown)}\n"
            block += "".join(f"{line}\n" for line in last) + "```\n"
            self.parts.append(block)
        return log

    def figure(self, fig, name: str, caption: str) -> None:
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=80, bbox_inches="tight")
        plt.close(fig)
        path = f"tutorials/figures/{self.slug}/{name}.png"
        with self.output.open(path, "wb") as handle:
            handle.write(buffer.getvalue())
        self.parts.append(f"![{caption}](figures/{self.slug}/{name}.png)\n\n*{caption}*\n")

    def table(self, frame: pd.DataFrame, rows: int = 6) -> None:
        self.parts.append(_markdown_table(frame.head(rows)))

    def write(self) -> None:
        seconds = time.perf_counter() - self.started
        if self.commands_run:
            self.parts.append(
                "\n<small>Generated by `docs/scripts/make_tutorial_figures.py` when this site "
                f"was built: the {self.commands_run} commands above ran on the data shown "
                f"({seconds:.0f} s).</small>\n"
            )
        with self.output.open(f"tutorials/{self.slug}.md", "w") as handle:
            handle.write("\n".join(self.parts))


# --------------------------------------------------------------------------- drawing


def _markdown_table(frame: pd.DataFrame) -> str:
    def cell(value) -> str:
        if isinstance(value, float):
            return f"{value:.4g}"
        return str(value).replace("|", "\\|")

    header = "| " + " | ".join(str(c) for c in frame.columns) + " |\n"
    rule = "|" + "---|" * len(frame.columns) + "\n"
    body = "".join("| " + " | ".join(cell(v) for v in row) + " |\n" for row in frame.values)
    return header + rule + body


def _stretch(channel: np.ndarray) -> np.ndarray:
    low, high = np.percentile(channel, [1, 99.5])
    return np.clip((channel - low) / max(high - low, 1e-9), 0, 1)


def composite(image: np.ndarray, panel: pd.DataFrame, red: str, green: str, blue: str):
    """An RGB picture of three named channels of a CYX image."""
    names = list(panel.loc[panel["keep"].astype(bool), "name"])
    return np.dstack([_stretch(image[names.index(name)]) for name in (red, green, blue)])


def outlined(rgb: np.ndarray, labels: np.ndarray, colour=(1.0, 1.0, 0.0)) -> np.ndarray:
    from skimage.segmentation import find_boundaries

    picture = np.array(rgb, dtype=float, copy=True)
    picture[find_boundaries(labels, mode="inner")] = colour
    return picture


def panels(pictures: list[tuple[str, np.ndarray]], **imshow):
    fig, axes = plt.subplots(1, len(pictures), figsize=(3.2 * len(pictures), 3.4))
    for ax, (title, picture) in zip(np.atleast_1d(axes), pictures, strict=True):
        ax.imshow(picture, **imshow)
        ax.set_title(title, fontsize=10)
        ax.axis("off")
    fig.tight_layout()
    return fig


def scatter(cells: pd.DataFrame, x: str, y: str, colour: str | None = None):
    fig, ax = plt.subplots(figsize=(4.6, 3.6))
    points = ax.scatter(
        cells[x], cells[y], s=6, c=None if colour is None else cells[colour], cmap="viridis"
    )
    if colour is not None:
        fig.colorbar(points, ax=ax, label=colour)
    ax.set_xlabel(x)
    ax.set_ylabel(y)
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------- tutorials


def imc_tutorial(output: Output, workdir: Path) -> None:
    from steinbock_like.io.images import read_image
    from steinbock_like.io.masks import read_mask
    from steinbock_like.io.panel import read_panel
    from steinbock_like.io.probabilities import read_probabilities

    t = Tutorial(output, "imc", "IMC: raw acquisitions to a table of cells", workdir)
    t.text(
        """
Imaging mass cytometry with pixel classification (ilastik) and segmentation
(CellProfiler), the route of steinbock. Both tools run natively here
(`--backend native`); with ilastik or CellProfiler installed, or in the
[container](../container.md), `--backend ilastik` / `--backend cellprofiler` run the
real programs on the same files.

All commands run in the data directory (or pass `--data DIR` before the command).

## 1. Data

Real data start as `.mcd` (or `.txt`) files and an IMC panel in `raw/`. Here the
example generator writes synthetic acquisitions (IMC `.txt` files) and the ground
truth masks; we delete the panel and images it also wrote, so that the tutorial starts
from the raw files.
"""
    )
    t.run("example", "imc", ".", "--images", str(IMAGES), "--size", str(SIZE), "--raw")
    for leftover in ("panel.csv",):
        (t.root / leftover).unlink()
    import shutil

    shutil.rmtree(t.root / "img")
    t.text("## 2. Panel and images from the raw acquisitions")
    t.run("preprocess", "imc", "panel")
    t.run("preprocess", "imc", "images", "--hpf", "50")
    t.text(
        """
`panel.csv` lists the channels. Its `ilastik` column says which channels ilastik sees,
aggregated by group number; `preprocess imc panel` gives every channel its own group,
as steinbock does. Group them by what they show before preparing the classifier: here
nuclear markers (group 1), membrane markers (group 2) and the rest (group 3). Any
spreadsheet or text editor does; this tutorial edits the file with pandas:
"""
    )
    panel = pd.read_csv(t.root / "panel.csv")
    groups = {"Histone H3": 1, "DNA1": 1, "DNA2": 1, "CD45": 2, "E-cadherin": 2, "CD3": 2}
    panel["ilastik"] = [groups.get(name, 3) for name in panel["name"]]
    panel.to_csv(t.root / "panel.csv", index=False)
    t.table(panel, rows=len(panel))
    image_name = sorted(p.name for p in (t.root / "img").glob("*.tiff"))[0]
    stem = image_name[: -len(".tiff")]
    panel = read_panel(t.root / "panel.csv")
    image = read_image(t.root / "img" / image_name)
    rgb = composite(image, panel, "panCK", "CD45", "DNA1")
    t.figure(
        panels([("panCK / CD45 / DNA1", rgb)]),
        "image",
        f"{image_name}: panCK (red), CD45 (green), DNA1 (blue).",
    )

    t.text(
        """
## 3. Pixel classification

`classify ilastik prepare` writes the images for ilastik (`ilastik_img/`), random
training crops (`ilastik_crops/`) and a new project, `pixel_classifier.ilp`. A person
now paints nucleus, cytoplasm and background labels on the crops in ilastik's window
(`steinbock-like apps ilastik pixel_classifier.ilp`); the tutorial paints them from the
example's ground truth instead (`example ilastik-labels`). `classify ilastik run` then
trains the classifier and writes one probability image per image (nucleus, cytoplasm,
background as red, green, blue).
"""
    )
    t.run("classify", "ilastik", "prepare", "--cropsize", "100", "--seed", "0")
    t.run("example", "ilastik-labels", "--fraction", "0.1")
    t.run("classify", "ilastik", "run", "--backend", "native")
    probabilities = read_probabilities(t.root / "ilastik_probabilities" / image_name)
    prob_rgb = np.asarray(probabilities, dtype=float)  # YXC, at ilastik's scale
    prob_rgb /= max(float(prob_rgb.max()), 1.0)

    t.text(
        """
## 4. Cell segmentation

CellProfiler finds nuclei in the nucleus probability and grows cells from them over
the cytoplasm probability. `prepare` writes the pipeline (`cell_segmentation.cppipe`,
editable in CellProfiler), `run` applies it.
"""
    )
    t.run("segment", "cellprofiler", "prepare")
    t.run("segment", "cellprofiler", "run", "--backend", "native")
    mask = read_mask(t.root / "masks" / image_name)
    t.figure(
        panels(
            [
                ("image", rgb),
                ("probabilities", prob_rgb),
                (f"{int(mask.max())} cells", outlined(rgb, mask)),
            ]
        ),
        "segmentation",
        "The image, ilastik's probabilities (nucleus red, cytoplasm green, background blue) "
        "and the cell masks as outlines over the image.",
    )
    t.text("How close is that to the truth the example was drawn from?")
    t.run("evaluate", "--masks", "masks", "--truth", "masks_truth", "-o", "evaluation.csv")
    t.table(pd.read_csv(t.root / "evaluation.csv"))

    t.text(
        """
## 5. The table of cells

Mean intensity of every channel per cell, shapes, neighbours, and one table.
"""
    )
    t.run("measure", "intensities")
    t.run("measure", "regionprops")
    t.run("measure", "neighbors", "--type", "expansion", "--dmax", "4")
    t.run("export", "csv", "intensities", "regionprops", "-o", "cells.csv")
    cells = pd.read_csv(t.root / "cells.csv")
    t.table(cells.iloc[:, :8].round(3))
    t.figure(
        scatter(cells, "panCK", "CD45", colour="area"),
        "cells",
        f"{len(cells)} cells: panCK against CD45 mean intensity, coloured by area (px). "
        "Tumour-like cells and immune cells separate.",
    )
    t.text(
        f"""
Next: `export anndata` for scanpy/squidpy, `export fcs` for flow-cytometry software,
`export graphs` for the neighbour graph. This image: `{stem}`; every file type is
described in [File types](../file-types.md).
"""
    )
    t.write()


def codex_tutorial(output: Output, workdir: Path) -> None:
    from steinbock_like.io.images import read_image
    from steinbock_like.io.masks import read_mask
    from steinbock_like.io.panel import read_panel

    t = Tutorial(output, "codex", "CODEX-like: Mesmer, repair, compartments and rings", workdir)
    t.text(
        """
Fluorescence-style multiplexed images (CODEX, CyCIF, IF) segmented with a deep network,
Mesmer, on ONNX Runtime (no TensorFlow). Mesmer finds cells and nuclei separately;
`repair` pairs every cell with one nucleus inside it, so that each cell has a nucleus
and a cytoplasm to measure.

The example generator draws IMC-like images; CODEX images in the same layout (`img/`
CYX TIFFs and `panel.csv`, see `panel_examples/`) take exactly the same commands.
Mesmer needs the `mesmer` extra (`pip install -e .[mesmer]`).

## 1. Data and model
"""
    )
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        t.text(
            """
!!! note "Figures not built"
    The `mesmer` extra (onnxruntime) was not installed when this site was built, so this
    tutorial's commands did not run. Build the site with `pip install -e .[docs,mesmer]`.
"""
        )
        t.write()
        return
    t.run("example", "imc", ".", "--images", str(IMAGES), "--size", str(SIZE))
    t.text(
        """
The `deepcell` column of `panel.csv` says which channels are nuclear (1) and which are
membrane or cytoplasm (2). The model is fetched once into the model cache (it is never
downloaded while segmenting):
"""
    )
    t.table(pd.read_csv(t.root / "panel.csv")[["channel", "name", "deepcell"]], rows=20)
    t.run("models", "get", "mesmer")

    t.text("## 2. Cells and nuclei")
    t.run(
        "segment",
        "mesmer",
        "--type",
        "both",
        "--minmax",
        "-o",
        "masks_mesmer",
        "--nuclei-out",
        "masks_mesmer_nuclei",
    )
    t.text("## 3. Repair: one nucleus per cell")
    t.run("repair", "--cells", "masks_mesmer", "--nuclei", "masks_mesmer_nuclei")
    t.table(pd.read_csv(t.root / "repair_metrics.csv").round(3))
    t.run("evaluate", "--masks", "masks_matched", "--truth", "masks_truth", "-o", "evaluation.csv")
    t.table(pd.read_csv(t.root / "evaluation.csv").round(3))

    image_name = sorted(p.name for p in (t.root / "img").glob("*.tiff"))[0]
    panel = read_panel(t.root / "panel.csv")
    image = read_image(t.root / "img" / image_name)
    names = list(panel["name"])
    nuclear = _stretch(image[[names.index(n) for n in ("DNA1", "DNA2")]].mean(axis=0))
    membrane = _stretch(image[[names.index(n) for n in ("E-cadherin", "CD45", "HLA-ABC")]].mean(0))
    inputs = np.dstack([np.zeros_like(nuclear), membrane, nuclear])
    rgb = composite(image, panel, "panCK", "CD45", "DNA1")
    cells = read_mask(t.root / "masks_matched" / image_name)
    nuclei = read_mask(t.root / "masks_matched_nuclei" / image_name)
    t.figure(
        panels(
            [
                ("image", rgb),
                ("Mesmer's input", inputs),
                (
                    "cells (yellow), nuclei (cyan)",
                    outlined(outlined(rgb, cells), nuclei, (0, 1, 1)),
                ),
            ]
        ),
        "segmentation",
        "The image (panCK red, CD45 green, DNA1 blue); the two channels Mesmer sees "
        "(membrane green, nuclear blue; Mesmer writes no probability maps); the repaired "
        "cells and their nuclei as outlines.",
    )

    t.text(
        """
## 4. Intensities per compartment

`--compartment NAME=MASKDIR` adds one column per channel and compartment.
"""
    )
    t.run(
        "measure",
        "intensities",
        "--masks",
        "masks_matched",
        "--compartment",
        "nucleus=masks_matched_nuclei",
        "--compartment",
        "cytoplasm=masks_cytoplasm",
        "-o",
        "intensities",
    )
    t.run("measure", "regionprops", "--masks", "masks_matched", "-o", "regionprops")
    t.run("export", "csv", "intensities", "regionprops", "-o", "cells.csv")
    table = pd.read_csv(t.root / "cells.csv")
    dna = [c for c in table.columns if c.startswith("DNA1")]
    t.text(f"The DNA1 columns of the table: `{'`, `'.join(dna)}`.")
    nucleus_col = next(c for c in dna if "nucleus" in c)
    cytoplasm_col = next(c for c in dna if "cytoplasm" in c)
    fig, ax = plt.subplots(figsize=(4.6, 3.6))
    ax.hist(
        [table[nucleus_col], table[cytoplasm_col]],
        bins=30,
        label=["nucleus", "cytoplasm"],
        color=["tab:blue", "tab:orange"],
    )
    ax.set_xlabel("DNA1 mean intensity")
    ax.set_ylabel("cells")
    ax.legend()
    fig.tight_layout()
    t.figure(
        fig,
        "compartments",
        f"{len(table)} cells: DNA1 is bright in the nucleus and dim in the cytoplasm of "
        "each cell, as it should be when nuclei are assigned to the right cells.",
    )

    config = Path(__file__).resolve().parents[2] / "panel_examples" / "configs" / "codex_like.yaml"
    t.text(
        f"""
## 5. The same route as one configuration, with nuclear rings

`process --config` runs an ordered list of processors per image (see the processor
reference): here Mesmer on mean nuclear and membrane signals, repair, a ring 2 px wide just
inside each nucleus (a `ring` never enters a neighbouring object) and the per-compartment
tables, with the intermediate images kept in memory only. The configuration,
`panel_examples/configs/{config.name}`:

```yaml
{config.read_text()}```
"""
    )
    t.run("process", "--config", str(config))
    t.run(
        "evaluate",
        "--masks",
        "masks_cells",
        "--truth",
        "masks_truth",
        "-o",
        "evaluation_process.csv",
    )
    t.table(pd.read_csv(t.root / "evaluation_process.csv").round(3))
    ring = read_mask(t.root / "masks_nuclear_ring" / image_name)
    cells_process = read_mask(t.root / "masks_cells" / image_name)
    t.figure(
        panels(
            [
                ("cells (yellow)", outlined(rgb, cells_process)),
                ("nuclear rings (cyan)", outlined(rgb, ring, (0, 1, 1))),
            ]
        ),
        "rings",
        "Cells of the configured route and the nuclear rings it builds (2 px inside each "
        "nucleus), measured as their own compartment.",
    )
    t.write()


def synthetic_slide(seed: int, size: int = 128):
    """A brightfield H&E-like RGB slide: haematoxylin nuclei in eosin tissue, white glass
    (``steinbock-like example brightfield``'s generator).

    Returns the RGB image (uint8, YXC), the nuclei labels and the tissue region.
    """
    from steinbock_like.example.brightfield import brightfield_slide

    rgb, nuclei, tissue = brightfield_slide((size, size), np.random.default_rng(seed))
    return rgb.round().astype(np.uint8), nuclei, tissue


def cellpose_skip_reason() -> str | None:
    """Why the Cellpose tutorials cannot run here, or None."""
    if os.environ.get("STEINBOCK_LIKE_DOCS_CELLPOSE") == "skip":
        return "STEINBOCK_LIKE_DOCS_CELLPOSE=skip was set (the test suite's quick build)"
    try:
        import cellpose  # noqa: F401
    except ImportError:
        return "the `cellpose` extra was not installed"
    return None


def nuclei_tiny_model() -> Path:
    """A tiny Cellpose nuclei model trained on synthetic slides (kept for later builds)."""
    from steinbock_like.segment.stain import haematoxylin_channel
    from steinbock_like.testing import train_cellpose_model

    cache = CELLPOSE_CACHE / f"nuclei_tiny_example_{CELLPOSE_TRAIN_IMAGES}x{CELLPOSE_EPOCHS}"
    model = cache / "models" / "nuclei_tiny"
    if model.is_file():
        return model
    started = time.perf_counter()
    train_images, train_labels = [], []
    for seed in range(CELLPOSE_TRAIN_IMAGES):
        rgb, nuclei, _ = synthetic_slide(seed=seed)
        channel = haematoxylin_channel(rgb)
        train_images.append(np.stack([channel, np.zeros_like(channel)]))
        train_labels.append(nuclei)
    model = train_cellpose_model(
        train_images,
        train_labels,
        cache,
        epochs=CELLPOSE_EPOCHS,
        diameter=9.0,
        model_name="nuclei_tiny",
    )
    print(f"docs: Cellpose model trained in {time.perf_counter() - started:.1f} s", file=sys.stderr)
    return model


def brightfield_tutorial(output: Output, workdir: Path) -> None:
    t = Tutorial(output, "brightfield", "Brightfield IHC / H&E with Cellpose", workdir)
    t.text(
        """
Brightfield slides (H&E, IHC) are RGB images. `segment cellpose --stain hed`
separates the stains (haematoxylin, eosin, DAB), segments the haematoxylin channel
(nuclei) with Cellpose and, with `--tissue-masks`, only looks inside the tissue.
Cellpose needs the `cellpose` extra (`pip install -e .[cellpose]`).
"""
    )
    reason = cellpose_skip_reason()
    if reason:
        t.commands_only(reason, BRIGHTFIELD_COMMANDS)
        return
    import tifffile

    from steinbock_like.io.masks import read_mask
    from steinbock_like.segment.stain import haematoxylin_channel

    t.text(
        """
!!! note "A tiny model"
    Pretrained Cellpose weights are not downloaded while this site is built, so a tiny
    model is trained from scratch on synthetic slides first (a few epochs,
    `steinbock_like.testing.train_cellpose_model`; kept in `~/.cache/steinbock-like/docs`
    for later builds). With your own data use a
    pretrained model (`--model nuclei` or `cyto3` in Cellpose's model folder, or
    `--model PATH`).

## 1. Data

RGB TIFFs in `img/`, and one tissue mask per image (`tissue/NAME.tiff`, nonzero = tissue;
drawn in any image editor or QuPath; here they come with the synthetic slides). The
tiny model is in `models/nuclei_tiny`.
"""
    )
    (t.root / "img").mkdir()
    (t.root / "tissue").mkdir()
    truths = {}
    for index in range(IMAGES):
        rgb, nuclei, tissue = synthetic_slide(seed=100 + index)
        name = f"slide_{index + 1:03d}"
        # Planar RGB (3, Y, X): the channel-first layout every command reads.
        tifffile.imwrite(
            t.root / "img" / f"{name}.tiff",
            np.moveaxis(rgb, -1, 0),
            photometric="rgb",
            planarconfig="separate",
        )
        tifffile.imwrite(t.root / "tissue" / f"{name}.tiff", tissue.astype(np.uint8))
        truths[name] = nuclei
    model = nuclei_tiny_model()  # trained once per machine and kept
    import shutil

    (t.root / "models").mkdir()
    model_arg = str(shutil.copy(model, t.root / "models" / "nuclei_tiny"))

    t.text(
        """
## 2. Segmentation

The tiny model's flows are rough, so it needs a lenient `--flow-threshold` and a lower
`--cellprob-threshold`; a pretrained model works with the defaults.
"""
    )
    t.run(
        "segment",
        "cellpose",
        "--stain",
        "hed",
        "--model",
        model_arg,
        "--diameter",
        "9",
        "--flow-threshold",
        "1.0",
        "--cellprob-threshold",
        "-1",
        "--tissue-masks",
        "tissue",
        "--figures",
        "figures",
    )
    name = "slide_001"
    rgb = np.moveaxis(tifffile.imread(t.root / "img" / f"{name}.tiff"), 0, -1) / 255.0
    tissue = tifffile.imread(t.root / "tissue" / f"{name}.tiff") > 0
    mask = read_mask(t.root / "masks" / f"{name}.tiff")
    t.figure(
        panels(
            [
                ("slide", rgb),
                ("haematoxylin (segmented)", haematoxylin_channel(rgb, mask=tissue)),
                (f"{int(len(np.unique(mask)) - 1)} nuclei", outlined(rgb, mask, (0.0, 0.8, 0.0))),
            ],
            cmap="gray",
        ),
        "segmentation",
        "The slide; the haematoxylin channel Cellpose segments (inverted, equalised "
        "within the tissue); the nuclei as outlines. Nothing is found on the glass.",
    )
    t.text("`--figures figures` also wrote one such overview per image (`figures/NAME.png`).")
    _write_truth(t.root, truths)
    t.text("Against the nuclei the slides were drawn with:")
    t.run("evaluate", "--masks", "masks", "--truth", "truth", "-o", "evaluation.csv")
    t.table(pd.read_csv(t.root / "evaluation.csv").round(3))

    t.text("## 3. The table")
    t.run("measure", "regionprops")
    t.run("export", "csv", "regionprops", "-o", "cells.csv")
    cells = pd.read_csv(t.root / "cells.csv")
    t.table(cells.round(2))
    fig, ax = plt.subplots(figsize=(4.6, 3.6))
    ax.hist(cells["area"], bins=20, color="tab:purple")
    ax.set_xlabel("nucleus area (px)")
    ax.set_ylabel("nuclei")
    fig.tight_layout()
    t.figure(fig, "areas", f"{len(cells)} nuclei: their areas.")
    t.write()


BRIGHTFIELD_COMMANDS = [
    ["segment", "cellpose", "--stain", "hed", "--model", "MODEL", "--diameter", "9"]
    + ["--flow-threshold", "1.0", "--cellprob-threshold", "-1"]
    + ["--tissue-masks", "tissue", "--figures", "figures"],
    ["measure", "regionprops"],
    ["export", "csv", "regionprops", "-o", "cells.csv"],
]


COHORT_SELECTION = [
    "--images-from", "cohort.sqlite", "--table", "images", "--id-column", "image_id",
    "--uri-column", "url", "--where", "batch = 1", "--cache", "cache",
]  # fmt: skip
COHORT_COMMANDS = [
    ["segment", "cellpose", "--stain", "hed", "--model", "MODEL", "--diameter", "9"]
    + ["--flow-threshold", "1.0", "--cellprob-threshold", "-1"]
    + COHORT_SELECTION
    + ["--mask-column", "tissue_url", "--mask-format", "npz", "--figures", "figures"]
    + ["--run-version", "v001"],
    ["measure", "regionprops", *COHORT_SELECTION, "--run-version", "v001"],
]


def cohort_tutorial(output: Output, workdir: Path) -> None:
    t = Tutorial(output, "cohorts", "IHC cohorts: image lists, downloads, versioned runs", workdir)
    t.text(
        """
Brightfield IHC studies often start from a table of image URLs (for example a cohort
drawn from the Human Protein Atlas), kept in an SQLite database or a CSV file with one
row per image and its metadata. Every per-image command reads such a list with
`--images-from` (see [Cohorts and image lists](../cohorts.md)): remote images are
downloaded once into a cache, each image's ID names its outputs, a failed download
fails that image only, and `--run-version` keeps each analysis in its own folder.
"""
    )
    reason = cellpose_skip_reason()
    if reason:
        t.commands_only(reason, COHORT_COMMANDS)
        return
    import functools
    import http.server
    import json
    import shutil
    import sqlite3
    import threading

    import imageio.v3 as iio

    served = t.root.parent / "cohort_server"
    served.mkdir()
    batches = [1, 1, 1, 2]
    for index in range(len(batches)):
        rgb, _, tissue = synthetic_slide(seed=200 + index, size=SIZE)
        iio.imwrite(served / f"HPA_{index + 1:03d}.jpg", rgb, extension=".jpg", quality=95)
        iio.imwrite(served / f"HPA_{index + 1:03d}_tissue.png", tissue.astype(np.uint8) * 255)

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    handler = functools.partial(Quiet, directory=str(served))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{httpd.server_address[1]}"
    try:
        with sqlite3.connect(t.root / "cohort.sqlite") as db:
            db.execute(
                "CREATE TABLE images (image_id TEXT, url TEXT, tissue_url TEXT, batch INTEGER)"
            )
            db.executemany(
                "INSERT INTO images VALUES (?, ?, ?, ?)",
                [
                    (f"HPA_{i + 1:03d}", f"{url}/HPA_{i + 1:03d}.jpg",
                     f"{url}/HPA_{i + 1:03d}_tissue.png", batch)
                    for i, batch in enumerate(batches)
                ],
            )  # fmt: skip
        db.close()
        (t.root / "models").mkdir()
        model_arg = str(shutil.copy(nuclei_tiny_model(), t.root / "models" / "nuclei_tiny"))
        t.text(
            f"""
## 1. The image list

`cohort.sqlite` has a table `images` with one row per image: its ID, the URL of the
JPEG, the URL of its tissue (epidermis) mask and the staining batch. Here a local web server
stands in for the image host (`{url.rsplit(":", 1)[0]}:PORT`).

| image_id | url | tissue_url | batch |
|---|---|---|---|
"""
            + "".join(
                f"| HPA_{i + 1:03d} | .../HPA_{i + 1:03d}.jpg | .../HPA_{i + 1:03d}_tissue.png "
                f"| {batch} |\n"
                for i, batch in enumerate(batches)
            )
            + """
`--where "batch = 1"` selects the rows (any read-only SQL condition; the database
is opened read-only). Images are downloaded into `--cache` (default
`~/.cache/steinbock-like/images`) once, with their SHA-256 recorded; a second run reads
them from there.

## 2. Two versions of the analysis

The tiny model of the [brightfield tutorial](brightfield.md) segments the haematoxylin
channel inside each image's tissue mask (`--mask-column`); masks are compact `.npz`
files, and `--figures` draws one overview per image.
"""
        )
        segment = ["segment", "cellpose", "--stain", "hed", "--model", model_arg]
        segment += ["--diameter", "9", "--flow-threshold", "1.0"]
        segment += [*COHORT_SELECTION, "--mask-column", "tissue_url"]
        segment += ["--mask-format", "npz", "--figures", "figures"]
        t.run(*segment, "--cellprob-threshold", "-1", "--run-version", "v001")
        t.text(
            "A second version (another `--cellprob-threshold`) goes to its "
            "own folder; the images come from the cache:"
        )
        t.run(*segment, "--cellprob-threshold", "-0.5", "--run-version", "v002")
        runs = t.root / "runs"
        listing = sorted(
            str(p.relative_to(t.root))
            for p in runs.glob("v00*/*/*")
            if p.name in ("HPA_001.npz", "HPA_001.png", "run_metadata.json")
        )
        latest = os.readlink(runs / "latest")
        t.text(
            "```text\n"
            + "\n".join(listing)
            + f"\nruns/latest -> {latest}\n```\n"
            + "Rerunning `--run-version v001` is refused (use `--overwrite`, or `--resume` "
            "after an interruption); `runs/latest` moves only when a run completes."
        )
        t.run("measure", "regionprops", *COHORT_SELECTION, "--run-version", "v002")
        rows = []
        for version in ("v001", "v002"):
            record = json.loads((runs / version / "masks" / "run_metadata.json").read_text())
            for name, entry in record["images"].items():
                rows.append(
                    {
                        "version": version,
                        "image": name,
                        "nuclei": entry["info"]["objects"],
                        "tissue fraction": entry["info"].get("tissue_fraction"),
                        "sha256 (download)": entry["info"]["sources"]["image"]["sha256"][:12],
                    }
                )
        t.text(
            "Each run's `run_metadata.json` records its options, the image list's checksum, "
            "the software versions, and per image the URL and checksum of what was "
            "downloaded:"
        )
        t.table(pd.DataFrame(rows), rows=len(rows))
        overview = iio.imread(runs / "v002" / "figures" / "HPA_001.png")
        fig, ax = plt.subplots(figsize=(9, 2.6))
        ax.imshow(overview)
        ax.set_axis_off()
        t.figure(
            fig,
            "overview",
            "runs/v002/figures/HPA_001.png as --figures wrote it: the downloaded JPEG, its "
            "haematoxylin channel, the tissue mask from the list and the nuclei outlines.",
        )
    finally:
        httpd.shutdown()
        httpd.server_close()
    t.write()


def check_arguments(args: list[str]) -> None:
    """Parse ``steinbock-like ARGS`` without running it; fail the build if it does not parse."""
    import click

    from steinbock_like.cli.main import cli

    command, rest = cli, list(args)
    while isinstance(command, click.Group):
        name, rest = rest[0], rest[1:]
        command = command.get_command(click.Context(command), name)
        if command is None:
            raise RuntimeError(f"docs: no command {name!r} in 'steinbock-like {shlex.join(args)}'")
    command.make_context(name, rest)


def _write_truth(root: Path, truths: dict[str, np.ndarray]) -> None:
    from steinbock_like.io.masks import write_mask

    (root / "truth").mkdir()
    for name, labels in truths.items():
        write_mask(root / "truth" / f"{name}.tiff", labels)


# steinbock 0.16.5's commands (its `steinbock --help` tree) and ours.
STEINBOCK_COMMANDS = [
    ("preprocess imc panel", "preprocess imc panel", ""),
    ("preprocess imc images", "preprocess imc images", ""),
    ("preprocess external panel", "preprocess external panel", ""),
    ("preprocess external images", "preprocess external images", ""),
    ("classify ilastik prepare", "classify ilastik prepare", ""),
    ("classify ilastik fix", "classify ilastik fix", ""),
    ("classify ilastik run", "classify ilastik run", "`--backend native` runs without ilastik"),
    ("segment cellprofiler prepare", "segment cellprofiler prepare", ""),
    (
        "segment cellprofiler run",
        "segment cellprofiler run",
        "`--backend native` runs without CellProfiler",
    ),
    ("segment deepcell", "segment deepcell", "or `segment mesmer` (ONNX, no TensorFlow)"),
    ("segment cellpose", "segment cellpose", "also brightfield (`--stain hed`)"),
    ("measure intensities", "measure intensities", "`--compartment` for nucleus/cytoplasm"),
    ("measure regionprops", "measure regionprops", ""),
    ("measure neighbors", "measure neighbors", ""),
    ("measure cellprofiler prepare", "measure cellprofiler prepare", ""),
    ("measure cellprofiler run", "measure cellprofiler run", ""),
    ("export ome", "export ome", ""),
    ("export histocat", "export histocat", ""),
    ("export csv", "export csv", ""),
    ("export fcs", "export fcs", ""),
    ("export anndata", "export anndata", ""),
    ("export graphs", "export graphs", ""),
    ("utils expand", "utils expand", ""),
    ("utils match", "utils match", ""),
    ("utils mosaics tile", "utils mosaics tile", ""),
    ("utils mosaics stitch", "utils mosaics stitch", ""),
    ("apps ilastik", "apps ilastik", "in the browser too (`--display vnc`)"),
    ("apps cellprofiler", "apps cellprofiler", ""),
    ("apps jupyter", "apps jupyter", ""),
    ("apps jupyterlab", "apps jupyterlab", ""),
    ("view", "apps napari", ""),
]


def command_paths() -> set[str]:
    """Every command path of ``steinbock-like`` (``"segment mesmer"``, ...)."""
    import click

    from steinbock_like.cli.main import cli

    found: set[str] = set()

    def walk(command, path):
        if path:
            found.add(" ".join(path))
        if isinstance(command, click.Group):
            for name, sub in command.commands.items():
                walk(sub, [*path, name])

    walk(cli, [])
    return found


def steinbock_tutorial(output: Output, workdir: Path) -> None:
    t = Tutorial(output, "steinbock", "Coming from steinbock", workdir)
    t.text(
        """
steinbock-like reads and writes steinbock 0.16.5's files in steinbock's directory
layout (`panel.csv`, `img/`, `ilastik_img/`, `ilastik_probabilities/`, `masks/`,
`intensities/`, ...), with the same command names and options. An existing steinbock
data directory continues where it left off; a steinbock script keeps working with
`steinbock` replaced by `steinbock-like` (or with the container's shell alias, see
[Container](../container.md)).

## The commands

Checked against this version's command line when this page was built: "yes" means the
command exists in `steinbock-like` (see the [command reference](../reference/cli.md)).
"""
    )
    ours = command_paths()
    rows = []
    for theirs, mine, note in STEINBOCK_COMMANDS:
        available = mine in ours
        if not available and mine == "segment deepcell" and "segment mesmer" in ours:
            mine, available = "segment mesmer", True
        rows.append(
            {
                "steinbock": f"`steinbock {theirs}`",
                "steinbock-like": f"`steinbock-like {mine}`" if available else "—",
                "available": "yes" if available else "not yet",
                "notes": note,
            }
        )
    t.table(pd.DataFrame(rows), rows=len(rows))
    extra = sorted(
        path
        for path in ours
        if path.split()[0] not in {r[1].split()[0] for r in STEINBOCK_COMMANDS} and " " not in path
    )
    t.text("Commands steinbock does not have: " + ", ".join(f"`{path}`" for path in extra) + ".")
    t.text(
        """
## The same workflow

The [IMC tutorial](imc.md) is steinbock's own workflow, command for command: `preprocess
imc panel` / `images`, `classify ilastik prepare` / `run`, `segment cellprofiler
prepare` / `run`, `measure intensities` / `regionprops` / `neighbors`, `export csv`.
A steinbock data directory works as it is; here `check` validates one written by the
example generator, as it would validate yours before a long run:
"""
    )
    t.run("example", "imc", ".", "--images", "1", "--size", "64")
    t.run("check", "--masks", "masks_truth")
    t.text(
        """
## What is different

- ilastik and CellProfiler steps can run without the programs (`--backend native`),
  with the same results on the reference data; Mesmer runs on ONNX Runtime without
  TensorFlow.
- Per-image commands take `--workers N`, `--resume` and `--overwrite`, carry on past a
  failing image and record what they did in `run_metadata.json`.
- Written TIFFs are zlib-compressed (same values, other bytes).
- Errors are one line naming the file ([Troubleshooting](../troubleshooting.md)).
"""
    )
    t.write()


def main(folder: Path | None) -> None:
    output = Output(folder)
    with tempfile.TemporaryDirectory(prefix="steinbock-like-docs-") as workdir:
        only = os.environ.get("TUTORIAL_ONLY")
        makers = (
            steinbock_tutorial,
            imc_tutorial,
            codex_tutorial,
            brightfield_tutorial,
            cohort_tutorial,
        )
        for make in makers:
            if only and make.__name__ != only:
                continue
            started = time.perf_counter()
            make(output, Path(workdir))
            print(
                f"docs: {make.__name__} in {time.perf_counter() - started:.1f} s",
                file=sys.stderr,
            )


# Standalone: TUTORIAL_OUT=DIR python docs/scripts/make_tutorial_figures.py
main(Path(os.environ["TUTORIAL_OUT"]) if os.environ.get("TUTORIAL_OUT") else None)
