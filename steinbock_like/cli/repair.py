"""``steinbock-like repair``: pair every cell with one nucleus inside it."""

from __future__ import annotations

import logging
from pathlib import Path

import click

from steinbock_like import layout
from steinbock_like.cli.options import AppContext, pass_app, path_option, run_jobs, runner_options

logger = logging.getLogger("steinbock_like")


@click.command(
    name="repair",
    help="""Match cells to nuclei and derive cytoplasm masks.

    For every image with both a cell mask (--cells) and a nuclear mask
    (--nuclei), cells are visited in increasing ID order and each takes the
    not-yet-used overlapping nucleus that lies best inside its interior (the
    cell minus its membrane, the cell's inner boundary); nuclei sticking out
    are trimmed to the interior (unless --no-trim). Matched pairs get new IDs
    1..N shared by the three outputs: cells, nuclei and cytoplasm (cell minus
    nucleus). Unmatched cells and nuclei are dropped. Per-image figures go to
    --metrics (CSV).
    """,
)
@path_option("--cells", "cells_dir", default=layout.MASKS, help="Cell masks to repair.")
@path_option("--nuclei", "nuclei_dir", default=layout.MASKS_NUCLEI, help="Nuclear masks.")
@path_option("--cells-out", "cells_out", default=layout.MASKS_MATCHED, help="Matched cell masks.")
@path_option(
    "--nuclei-out",
    "nuclei_out",
    default=layout.MASKS_MATCHED_NUCLEI,
    help="Matched (trimmed) nuclear masks.",
)
@path_option(
    "--cytoplasm-out",
    "cytoplasm_out",
    default=layout.MASKS_CYTOPLASM,
    help="Cytoplasm masks (matched cell minus its nucleus).",
)
@click.option(
    "--boundaries-out",
    "boundaries_out",
    type=click.Path(path_type=Path),
    default=None,
    help="Also write the matched cells' membranes (labelled) to this directory.",
)
@path_option(
    "--metrics", "metrics_file", default=layout.REPAIR_METRICS, help="Per-image metrics CSV."
)
@click.option(
    "--boundary",
    type=click.Choice(["inner", "thick"]),
    default="inner",
    show_default=True,
    help="Boundaries written by --boundaries-out: the cells' inner boundary, or also the "
    "background pixels around them ('thick'). Matching is the same in both modes.",
)
@click.option(
    "--trim/--no-trim",
    default=True,
    show_default=True,
    help="Trim matched nuclei to their cell's interior.",
)
@runner_options
@pass_app
def repair_cmd(
    app: AppContext,
    cells_dir: Path,
    nuclei_dir: Path,
    cells_out: Path,
    nuclei_out: Path,
    cytoplasm_out: Path,
    boundaries_out: Path | None,
    metrics_file: Path,
    boundary: str,
    trim: bool,
    workers: int,
    overwrite: bool,
    resume: bool,
) -> None:
    from steinbock_like.io.pairs import match_by_name
    from steinbock_like.repair import METRIC_NAMES, summarize_metrics
    from steinbock_like.runner import RunTable, jobs_for
    from steinbock_like.tasks.repair import RepairTask

    outputs = {
        "cells": app.path(cells_out),
        "nuclei": app.path(nuclei_out),
        "cytoplasm": app.path(cytoplasm_out),
    }
    if boundaries_out is not None:
        outputs["boundaries"] = app.path(boundaries_out)
    pairs = match_by_name(
        app.path(cells_dir), app.path(nuclei_dir), kinds=("cell mask", "nuclear mask")
    )
    jobs = jobs_for(
        [(name, {"cells": cells, "nuclei": nuclei}) for name, cells, nuclei in pairs], outputs
    )
    summary = run_jobs(
        RepairTask(boundary=boundary, trim=trim),
        jobs,
        command="repair",
        workers=workers,
        overwrite=overwrite,
        resume=resume,
        table=RunTable(app.path(metrics_file), METRIC_NAMES),
    )
    totals = summarize_metrics([r.info for r in summary.results if r.info])
    logger.info(
        "repair: %d images, %d matched pairs, %d unmatched cells, %d unmatched nuclei "
        "(matched fraction %.3f); masks in %s, metrics in %s",
        totals["images"],
        totals["matched"],
        totals["unmatched_cells"],
        totals["unmatched_nuclei"],
        totals["matched_fraction"],
        app.path(cells_out),
        app.path(metrics_file),
    )
