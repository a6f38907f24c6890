"""``steinbock-like evaluate``: compare masks with reference (ground-truth) masks."""

from __future__ import annotations

import logging
from pathlib import Path

import click

from steinbock_like import layout
from steinbock_like.cli.options import AppContext, pass_app, path_option

logger = logging.getLogger("steinbock_like")


@click.command(
    name="evaluate",
    help="""Score masks against reference masks of the same images, object by object.

    Objects are matched one to one when their intersection over union exceeds
    --iou. Per image: reference and predicted object counts, true positives,
    F1 = 2 TP / (2 TP + FP + FN) and average precision AP = TP / (TP + FP + FN)
    (as Cellpose and StarDist report it). Written to -o as CSV, with the means
    in the log. Use it with manual annotations, or with the example dataset's
    masks_truth/.
    """,
)
@path_option("--masks", "masks_dir", default=layout.MASKS, help="Masks to score.")
@path_option("--truth", "truth_dir", default=layout.MASKS_TRUTH, help="Reference masks.")
@path_option("-o", "out_file", default="evaluation.csv", help="Per-image scores (CSV).")
@click.option(
    "--iou",
    type=click.FloatRange(0.5, 1.0, max_open=True),
    default=0.5,
    show_default=True,
    help="IoU above which two objects match.",
)
@pass_app
def evaluate_cmd(app: AppContext, masks_dir: Path, truth_dir: Path, out_file: Path, iou: float):
    import pandas as pd

    from steinbock_like.io.masks import read_mask
    from steinbock_like.io.pairs import match_by_name
    from steinbock_like.io.tables import write_table
    from steinbock_like.metrics import match_objects

    rows = {}
    for name, truth_path, mask_path in match_by_name(app.path(truth_dir), app.path(masks_dir)):
        truth = read_mask(truth_path)
        counts = match_objects(truth, read_mask(mask_path, shape=truth.shape), iou)
        tp, fp, fn = counts.true_positives, counts.false_positives, counts.false_negatives
        rows[name] = {
            "reference_objects": tp + fn,
            "objects": tp + fp,
            "true_positives": tp,
            "f1": 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 1.0,
            "average_precision": tp / (tp + fp + fn) if tp + fp + fn else 1.0,
        }
    table = pd.DataFrame.from_dict(rows, orient="index")
    table.index.name = "image"
    write_table(app.path(out_file), table)
    logger.info(
        "evaluate: %d images, mean F1 %.3f, mean AP %.3f at IoU > %.2f (%s)",
        len(table),
        table["f1"].mean(),
        table["average_precision"].mean(),
        iou,
        app.path(out_file),
    )
