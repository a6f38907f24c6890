"""Object segmenters: Mesmer, Cellpose (multiplexed or brightfield HED) and the ilastik +
CellProfiler route, each reusing the library code of its ``segment``/``classify`` command.

Channel lists are turned into the command's input by building a small panel for them,
so aggregation and normalisation go through exactly the same functions as the commands.
"""

from __future__ import annotations

import numpy as np

from steinbock_like.errors import SteinbockLikeError
from steinbock_like.process.registry import IMAGE, MASK, Param, Role, register

NORMALIZE_CHOICES = ("none", "minmax", "zscore")


def _stack_with_groups(
    groups: dict[float, list[np.ndarray]], column: str
) -> tuple[np.ndarray, object]:
    """Stack grouped channels into a CYX image and a panel whose ``column`` holds the groups."""
    import pandas as pd

    channels, labels = [], []
    for label, arrays in groups.items():
        for array in arrays:
            channels.append(np.asarray(array, dtype=np.float32))
            labels.append(label)
    panel = pd.DataFrame(
        {"name": [f"c{i}" for i in range(len(channels))], "keep": True, column: labels}
    )
    return np.stack(channels), panel


# -- Mesmer ----------------------------------------------------------------------------------


def _prepare_mesmer(params, context):
    from steinbock_like.models import locate_mesmer_model, sha256_of_file

    model = params["model"]
    from importlib.metadata import version

    path = locate_mesmer_model(context.path(model) if model else None)
    versions = {
        "onnxruntime": version("onnxruntime"),
        "mesmer_model": str(path),
        "mesmer_model_sha256": sha256_of_file(path),
    }
    return {"model": str(path), "_versions": versions}


@register(
    "mesmer",
    "object_segmenter",
    inputs={
        "nuclear": Role(IMAGE, help="Nuclear channels (averaged)."),
        "membrane": Role(IMAGE, help="Membrane/cytoplasm channels (averaged)."),
    },
    outputs={"cell": Role(MASK, required=False), "nucleus": Role(MASK, required=False)},
    params={
        "pixel_size": Param(
            "float", 1.0, "Pixel size (um).", minimum=0, option="segment mesmer --pixelsize"
        ),
        "normalize": Param(
            "choice",
            "none",
            "Per-channel normalisation before aggregation.",
            choices=NORMALIZE_CHOICES,
        ),
        "aggr": Param(
            "choice",
            "mean",
            "How a role's channels are combined.",
            choices=("mean", "sum", "max", "median"),
            option="segment mesmer --aggr",
        ),
        "chunk_size": Param(
            "int",
            2048,
            "Segment larger images in chunks (px); 0: never.",
            minimum=0,
            option="segment mesmer --chunk-size",
        ),
        "threads": Param("int", None, "ONNX Runtime threads.", minimum=1, nullable=True),
        "model": Param("path", None, "Mesmer ONNX file [default: the model cache].", nullable=True),
    },
    prepare=_prepare_mesmer,
)
def mesmer(inputs, params, context):
    """Mesmer (ONNX Runtime) as ``segment mesmer``: the ``nuclear`` and ``membrane``
    channels are each aggregated (after optional per-channel normalisation) and
    segmented; outputs ``cell`` (whole-cell) and/or ``nucleus``."""
    from steinbock_like.segment.mesmer import MesmerSegmenter, mesmer_input

    image, panel = _stack_with_groups({1: inputs["nuclear"], 2: inputs["membrane"]}, "deepcell")
    nuclear, membrane = mesmer_input(
        image,
        panel,
        minmax=params["normalize"] == "minmax",
        zscore=params["normalize"] == "zscore",
        aggr=params["aggr"],
    )
    key = ("mesmer", params["model"], params["threads"], params["chunk_size"])
    if key not in context.cache:
        context.cache[key] = MesmerSegmenter(
            params["model"], threads=params["threads"], chunk_size=params["chunk_size"]
        )
    wanted = params["_outputs"]
    compartment = "both" if len(wanted) == 2 else "whole-cell" if "cell" in wanted else "nuclear"
    masks = context.cache[key].segment(
        nuclear, membrane, pixel_size_um=params["pixel_size"], compartment=compartment
    )
    result = {}
    if "cell" in wanted:
        result["cell"] = masks["whole-cell"]
    if "nucleus" in wanted:
        result["nucleus"] = masks["nuclear"]
    return result


# -- Cellpose --------------------------------------------------------------------------------


def _prepare_cellpose(params, context):
    from steinbock_like.models import (
        default_cellpose_model,
        resolve_cellpose_model,
        sha256_of_file,
    )
    from steinbock_like.segment import cellpose as cp

    version = cp.cellpose_version()
    major = cp.api_major(version)
    model = params["model"] or default_cellpose_model(major)
    from steinbock_like.models import looks_like_path

    if looks_like_path(model):
        model = str(context.path(model))
    found = resolve_cellpose_model(model, major=major)
    return {
        "model": str(found.path),
        "_versions": {
            "cellpose": version,
            "cellpose_model_path": str(found.path),
            "cellpose_model": found.name,
            "cellpose_model_sha256": sha256_of_file(found.path),
        },
    }


def _check_cellpose(params, inputs):
    if "rgb" in inputs:
        if params["stain"] is None:
            return "parameters.stain", "the rgb input needs stain: hed"
        if "cytoplasm" in inputs or "nuclear" in inputs:
            return "input.rgb", "give either rgb or cytoplasm/nuclear channels, not both"
        return None
    if params["stain"] is not None:
        return "input.rgb", "stain needs the rgb input (red, green, blue)"
    if "cytoplasm" not in inputs and "nuclear" not in inputs:
        return "input", "give cytoplasm and/or nuclear channels, or rgb"
    return None


@register(
    "cellpose",
    "object_segmenter",
    inputs={
        "cytoplasm": Role(IMAGE, required=False, help="Cytoplasm/membrane channels (segmented)."),
        "nuclear": Role(IMAGE, required=False, help="Nuclear channels (helper channel)."),
        "rgb": Role(
            IMAGE,
            required=False,
            min_count=3,
            max_count=3,
            help="Red, green, blue of a brightfield image (with stain: hed).",
        ),
        "tissue": Role(MASK, required=False, max_count=1, help="Segment within this mask."),
    },
    params={
        "model": Param("str", None, "Model name or weights file.", nullable=True),
        "diameter": Param(
            "float",
            None,
            "Cell diameter (px).",
            minimum=0,
            nullable=True,
            option="segment cellpose --diameter",
        ),
        "flow_threshold": Param(
            "float", 0.4, "Flow error threshold.", option="segment cellpose --flow-threshold"
        ),
        "cellprob_threshold": Param(
            "float",
            0.0,
            "Cell probability threshold.",
            option="segment cellpose --cellprob-threshold",
        ),
        "min_size": Param(
            "int",
            15,
            "Smallest object kept (px).",
            minimum=0,
            option="segment cellpose --min-size",
        ),
        "batch_size": Param(
            "int", 8, "Network tiles at once.", minimum=1, option="segment cellpose --batch-size"
        ),
        "tile_overlap": Param(
            "float",
            0.1,
            "Network tile overlap.",
            minimum=0,
            option="segment cellpose --tile-overlap",
        ),
        "block_size": Param(
            "int",
            2048,
            "Block size for large images (px).",
            minimum=0,
            option="segment cellpose --block-size",
        ),
        "block_overlap": Param(
            "int",
            64,
            "Context around each block (px).",
            minimum=0,
            option="segment cellpose --block-overlap",
        ),
        "normalize": Param(
            "choice",
            "none",
            "Per-channel normalisation before aggregation.",
            choices=NORMALIZE_CHOICES,
        ),
        "aggr": Param(
            "str",
            "mean",
            "numpy reduction over a role's channels.",
            option="segment cellpose --aggr",
        ),
        "stain": Param(
            "choice",
            None,
            "Brightfield stain of the rgb input.",
            choices=("hed",),
            nullable=True,
            option="segment cellpose --stain",
        ),
        "tissue_margin": Param("int", 8, "Context (px) around the tissue box.", minimum=0),
        "threads": Param("int", None, "torch CPU threads.", minimum=1, nullable=True),
    },
    prepare=_prepare_cellpose,
    check=lambda params, inputs: _check_cellpose(params, inputs),
)
def cellpose(inputs, params, context):
    """Cellpose as ``segment cellpose``: multiplexed (``cytoplasm`` and optional
    ``nuclear`` channels, aggregated) or brightfield (``rgb`` with ``stain: hed``: the
    haematoxylin channel); optional ``tissue`` mask to segment within."""
    from steinbock_like.segment import cellpose as cp
    from steinbock_like.segment import stain as st

    settings = cp.CellposeSettings(
        diameter=params["diameter"],
        flow_threshold=params["flow_threshold"],
        cellprob_threshold=params["cellprob_threshold"],
        min_size=params["min_size"],
        batch_size=params["batch_size"],
        tile_overlap=params["tile_overlap"],
    )
    key = ("cellpose", params["model"], settings, params["threads"])
    if key not in context.cache:
        context.cache[key] = cp.CellposeSegmenter(
            params["model"], settings, threads=params["threads"]
        )
    segmenter = context.cache[key]
    rgb = inputs.get("rgb")
    if params["stain"] and not rgb:
        raise SteinbockLikeError("cellpose: stain needs the rgb input")
    if rgb:
        if not params["stain"]:
            raise SteinbockLikeError("cellpose: the rgb input needs stain: hed")
        image = st.as_rgb(np.stack([np.asarray(c) for c in rgb], axis=-1))
    else:
        groups = {}
        if inputs.get("cytoplasm"):
            groups[1.0] = inputs["cytoplasm"]
        if inputs.get("nuclear"):
            groups[2.0] = inputs["nuclear"]
        if not groups:
            raise SteinbockLikeError("cellpose: give cytoplasm and/or nuclear channels, or rgb")
        image, panel = _stack_with_groups(groups, "cellpose")
    normalize = None if params["normalize"] == "none" else params["normalize"]

    def segment_region(box, tissue_crop):
        if rgb:
            channels = st.prepare_stain(image[box], params["stain"], mask=tissue_crop)[np.newaxis]
        else:
            crop = image[(slice(None), *box)]
            channels = cp.prepare_channels(crop, panel, normalize=normalize, aggr=params["aggr"])
        return cp.segment_in_blocks(
            channels,
            lambda block: segmenter.segment(block, normalize=False),
            block_size=params["block_size"],
            overlap=params["block_overlap"],
            box_segmenter=lambda whole: segmenter.block_function(whole, normalize=False),
        )

    tissue = inputs.get("tissue")
    if tissue:
        labels, _ = st.segment_within_tissue(
            np.asarray(tissue[0]) != 0, segment_region, margin=params["tissue_margin"]
        )
        return labels
    return np.asarray(segment_region((slice(0, None), slice(0, None)), None))


# -- ilastik + CellProfiler --------------------------------------------------------------------


def _prepare_ilastik_cellprofiler(params, context):
    from steinbock_like.classify.ilastik.training import load_or_train_pixel_classifier
    from steinbock_like.errors import InputError
    from steinbock_like.models import sha256_of_file

    project = context.path(params["project"])
    if not project.is_file():
        raise InputError(project, "ilastik project not found")
    if params["pipeline"]:
        from steinbock_like.io.cppipe import read_pipeline_file

        pipeline = context.path(params["pipeline"])
        text = read_pipeline_file(pipeline)
    else:
        from steinbock_like.segment.cellprofiler.pipeline import pipeline_text

        text = pipeline_text()
    from steinbock_like.segment.cellprofiler.translate import native_steps

    native_steps(text)  # fail now on an unsupported pipeline
    classifier = load_or_train_pixel_classifier(project, retrain=params["retrain"])
    return {
        "_classifier": classifier,
        "_pipeline_text": text,
        "_versions": {
            "backend": "native",
            "ilastik_project": str(project),
            "ilastik_project_sha256": sha256_of_file(project),
            "pipeline": str(context.path(params["pipeline"])) if params["pipeline"] else "built-in",
        },
    }


@register(
    "ilastik_cellprofiler",
    "object_segmenter",
    inputs={
        "input": Role(
            IMAGE,
            help="Channels, each its own ilastik channel; or a mapping group -> channels "
            "(aggregated per group, groups in ascending order, as the panel's ilastik column).",
        )
    },
    params={
        "project": Param(
            "path",
            "pixel_classifier.ilp",
            "ilastik project (trained, or with labels).",
            option="classify ilastik run --ilp",
        ),
        "pipeline": Param(
            "path", None, "CellProfiler pipeline [default: steinbock's].", nullable=True
        ),
        "retrain": Param("bool", False, "Train on the project's labels even if trained."),
        "aggr": Param(
            "str",
            "mean",
            "numpy reduction over a group's channels.",
            option="classify ilastik prepare --aggr",
        ),
        "mean": Param(
            "bool", True, "Prepend the mean channel.", option="classify ilastik prepare --mean"
        ),
        "meanfactor": Param(
            "float",
            100.0,
            "Factor of the mean channel.",
            option="classify ilastik prepare --meanfactor",
        ),
        "scale": Param(
            "int", 2, "Upscaling factor.", minimum=1, option="classify ilastik prepare --scale"
        ),
        "tile_size": Param(
            "int",
            512,
            "Classification tile size (px).",
            minimum=16,
            option="classify ilastik run --tile-size",
        ),
    },
    prepare=_prepare_ilastik_cellprofiler,
)
def ilastik_cellprofiler(inputs, params, context):
    """Native ilastik pixel classification and native CellProfiler segmentation, as
    ``classify ilastik prepare``/``run --backend native`` then ``segment cellprofiler run
    --backend native``: channels -> ilastik image -> probabilities -> cell mask."""
    from steinbock_like.classify.ilastik.prepare import ilastik_image
    from steinbock_like.segment.cellprofiler.native import run_steps
    from steinbock_like.segment.cellprofiler.translate import native_steps

    groups = params["_groups"]
    channels = np.stack([np.asarray(x, dtype=np.float32) for x in inputs["input"]])
    if groups is not None:
        index, by_label = 0, {}
        for label, count in groups:
            by_label[label] = list(range(index, index + count))
            index += count
        groups = by_label
    image = ilastik_image(
        channels,
        groups,
        aggr=params["aggr"],
        mean=params["mean"],
        meanfactor=params["meanfactor"],
        scale=params["scale"],
    )
    probabilities = params["_classifier"].predict(
        image, tile_size=params["tile_size"], dtype=np.uint16
    )
    key = ("cellprofiler", params["_pipeline_text"])
    if key not in context.cache:
        context.cache[key] = native_steps(params["_pipeline_text"])
    return run_steps(probabilities, context.cache[key])
