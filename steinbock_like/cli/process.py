"""``steinbock-like process``: an ordered processor pipeline from one YAML file, per image."""

from __future__ import annotations

import logging
from pathlib import Path

import click

from steinbock_like.cli.options import (
    AppContext,
    image_jobs,
    image_list,
    image_source_options,
    img_option,
    panel_option,
    pass_app,
    path_option,
    run_jobs,
    runner_options,
)

logger = logging.getLogger("steinbock_like")

HELP = """Run an ordered pipeline of processors described in one YAML file.

\b
  schema_version: 1
  processors:
    - type: normalize            # an image enhancer
      input: [DNA1, CD45]        # panel channel names or earlier outputs
      output: "{input}_norm"
      keep: false                # temporary: in memory only, never written
    - type: mesmer
      input: {nuclear: [DNA1_norm], membrane: [CD45_norm]}
      output: {cell: cells, nucleus: nuclei}
  quantify:
    - name: cells
      masks: {cell: cells, nucleus: nuclei}

Kept outputs go to masks_NAME/ and img_NAME/, tables to intensities_NAME/,
regionprops_NAME/ and neighbors_NAME/ (one CSV per image). The whole
configuration and every image are checked first (--validate: only that);
problems are reported as one line naming the key. Processors and their
parameters: docs/processors.md. Relative paths in parameters (models,
projects) are resolved against --data, like --config.

With --images-from LIST the images come from a CSV/SQLite list of paths or
http(s) URLs (named by their IDs; see docs/cohorts.md), and --run-version NAME
writes the outputs under runs/NAME/.
"""


@click.command(name="process", help=HELP)
@path_option("--config", "config_file", default="pipeline.yaml", help="Pipeline configuration.")
@click.option("--validate", is_flag=True, help="Only check the configuration and the images.")
@img_option()
@panel_option()
@image_source_options
@runner_options
@pass_app
def process_cmd(
    app: AppContext,
    config_file: Path,
    validate: bool,
    img_dir: Path,
    panel_file: Path,
    workers: int,
    overwrite: bool,
    resume: bool,
) -> None:
    from steinbock_like.io.images import list_images
    from steinbock_like.io.panel import read_panel
    from steinbock_like.process.checks import check_images, prepare_pipeline, read_config
    from steinbock_like.process.registry import Context
    from steinbock_like.runner import jobs_for, named_files
    from steinbock_like.tasks.process import ProcessTask, output_dirs

    panel = read_panel(app.path(panel_file))
    pipeline = read_config(app.path(config_file), panel)
    listed = image_list(app)
    # listed images are checked inside their jobs, once they are local files
    images = [] if listed is not None else list_images(app.path(img_dir))
    check_images(pipeline, panel, images, app.path(config_file))
    versions = prepare_pipeline(pipeline, Context(app.data_dir))
    if validate:
        logger.info(
            "%s: valid (%d processors, %d quantify entries, %d images checked)",
            app.path(config_file),
            len(pipeline.steps),
            len(pipeline.quantify),
            len(images),
        )
        return
    outputs = output_dirs(pipeline, app.output)
    if listed is not None:
        jobs = image_jobs(app, img_dir, outputs)
    else:
        jobs = jobs_for(named_files(images, "image"), outputs)
    run_jobs(
        ProcessTask(pipeline, panel, app.data_dir, versions),
        jobs,
        command="process",
        workers=workers,
        overwrite=overwrite,
        resume=resume,
        resolved={"config": pipeline.resolved()},
    )
    logger.info(
        "process: outputs in %s",
        ", ".join(str(directory) for directory, _ in outputs.values()) or "(none kept)",
    )
