"""``steinbock-like evaluate``: compare masks with reference (ground-truth) masks."""

from __future__ import annotations

import logging
from pathlib import Path

import click

from steinbock_like import layout
from steinbock_like.cli.options import AppContext, pass_app, path_option, run_jobs, runner_options

logger = logging.getLogger("steinbock_like")


@click.command(
    name="evaluate",
    help="""Score masks against reference masks of the same images, object by object.

    Objects are matched one to one when their intersection over union exceeds
    --iou. Per image: reference and predicted object counts, true positives,
    F1 = 2 TP / (2 TP + FP + FN) and average precision AP = TP / (TP + FP + FN)
    (as Cellpose and StarDist report it). Written to -o as CSV, with the means
    in the log. Only images with a reference are scored (manual annotations
    of a few images are the normal case); the others are counted in the log.
    Use it with manual annotations, or with the example dataset's masks_truth/.
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
@runner_options
@pass_app
def evaluate_cmd(
    app: AppContext,
    masks_dir: Path,
    truth_dir: Path,
    out_file: Path,
    iou: float,
    workers: int,
    overwrite: bool,
    resume: bool,
):
    from steinbock_like.io.pairs import pair_by_name
    from steinbock_like.metrics import SCORE_NAMES
    from steinbock_like.runner import RunTable, jobs_for
    from steinbock_like.tasks.evaluate import EvaluateTask

    pairs, no_masks, no_truth = pair_by_name(
        app.path(truth_dir), app.path(masks_dir), kinds=("reference mask", "mask")
    )
    if no_truth:
        logger.info(
            "evaluate: %d of %d masks have no reference in %s and are not scored",
            len(no_truth),
            len(no_truth) + len(pairs),
            app.path(truth_dir),
        )
    if no_masks:
        logger.warning(
            "evaluate: %d reference masks have no mask in %s (first: %s)",
            len(no_masks),
            app.path(masks_dir),
            no_masks[0].name,
        )
    jobs = jobs_for([(name, {"truth": t, "masks": m}) for name, t, m in pairs], {})
    summary = run_jobs(
        EvaluateTask(iou),
        jobs,
        command="evaluate",
        workers=workers,
        overwrite=overwrite,
        resume=resume,
        table=RunTable(app.path(out_file), SCORE_NAMES),
    )
    scores = [r.info for r in summary.results if r.info]
    mean = {key: sum(s[key] for s in scores) / len(scores) for key in ("f1", "average_precision")}
    logger.info(
        "evaluate: %d images, mean F1 %.3f, mean AP %.3f at IoU > %.2f (%s)",
        len(scores),
        mean["f1"],
        mean["average_precision"],
        iou,
        app.path(out_file),
    )
