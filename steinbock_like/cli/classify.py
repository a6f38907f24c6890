"""``steinbock-like classify``: pixel classification (ilastik, with or without ilastik)."""

from __future__ import annotations

import logging
from pathlib import Path

import click

from steinbock_like import layout
from steinbock_like.cli.options import (
    AppContext,
    img_option,
    panel_option,
    pass_app,
    path_option,
    run_jobs,
    runner_options,
)
from steinbock_like.errors import SteinbockLikeError
from steinbock_like.runner import Job

logger = logging.getLogger("steinbock_like")

BACKENDS = ("auto", "native", "ilastik")


@click.group(name="classify", help="Pixel classification: class probabilities for every pixel.")
def classify_group() -> None:
    pass


@classify_group.group(
    name="ilastik",
    help="""Random-forest pixel classification as in ilastik.

    \b
    1. prepare: ilastik-ready images (ilastik_img/), training crops
       (ilastik_crops/) and a project (pixel_classifier.ilp)
    2. label the crops in ilastik's GUI ('steinbock-like apps ilastik'), or
       reuse a project trained elsewhere with 'fix'
    3. run: probabilities for every image (ilastik_probabilities/), with real
       ilastik or with the built-in native classifier (no ilastik needed)
    """,
)
def ilastik_group() -> None:
    pass


@ilastik_group.command(
    name="prepare",
    help="""Prepare ilastik images, training crops and a new project.

    For each image, the channels of each group of the panel's 'ilastik' column
    are aggregated (--aggr; groups in ascending order, empty labels ignored;
    without the column every kept channel is used). Unless --no-mean, the mean
    of these channels times --meanfactor is prepended as channel 0. Images are
    then scaled by --scale (bilinear) and written as HDF5 (float32 CYX,
    dataset 'img'). One random crop of --cropsize pixels per image is written
    for training (the same --seed gives the same crops as steinbock), and a
    project with the labels Nucleus, Cytoplasm and Background that lists them.
    """,
)
@click.option(
    "--cropsize",
    type=click.IntRange(min=1),
    default=512,
    show_default=True,
    help="Crop width and height (pixels of the scaled image).",
)
@click.option(
    "--seed", type=int, default=None, help="Seed for the crop positions [default: random]."
)
@click.option(
    "--aggr",
    default="mean",
    show_default=True,
    help="numpy function aggregating the channels of a group (mean, median, max, ...).",
)
@click.option(
    "--mean/--no-mean",
    default=True,
    show_default=True,
    help="Prepend the mean of the aggregated channels as channel 0.",
)
@click.option(
    "--meanfactor",
    type=float,
    default=100.0,
    show_default=True,
    help="Factor applied to the prepended mean channel.",
)
@click.option(
    "--scale",
    type=click.IntRange(min=1),
    default=2,
    show_default=True,
    help="Upscaling factor (bilinear interpolation).",
)
@click.option(
    "--features",
    default="default",
    show_default=True,
    help="Feature preset of the project: 'default' (all six types at scales 1.0, 1.6, "
    "3.5, 5.0, 10.0, recommended for IMC), 'all', 'none' (choose in the GUI), or "
    "comma-separated scales.",
)
@img_option()
@panel_option()
@path_option("-o", "project_file", default=layout.ILASTIK_PROJECT, help="Project file to write.")
@path_option("--imgout", "imgout", default=layout.ILASTIK_IMG, help="Output directory of images.")
@path_option(
    "--cropout", "cropout", default=layout.ILASTIK_CROPS, help="Output directory of crops."
)
@runner_options
@pass_app
def prepare_cmd(
    app: AppContext,
    cropsize,
    seed,
    aggr,
    mean,
    meanfactor,
    scale,
    features,
    img_dir,
    panel_file,
    project_file,
    imgout,
    cropout,
    workers,
    overwrite,
    resume,
):
    from steinbock_like.channels import aggregation_function
    from steinbock_like.classify.ilastik.prepare import crop_file_name, crop_plan
    from steinbock_like.classify.ilastik.project import (
        feature_selection,
        lane_for_crop,
        write_new_project,
    )
    from steinbock_like.io.ilastik import read_ilastik_crop
    from steinbock_like.io.images import image_name, list_images
    from steinbock_like.io.panel import read_panel
    from steinbock_like.runner import check_single_output
    from steinbock_like.tasks.ilastik import PrepareTask

    aggregation_function(aggr)  # fail now on a bad name, not once per image
    feature_selection(_parse_features(features))
    project_path = app.path(project_file)
    write_project = check_single_output(
        project_path,
        overwrite=overwrite,
        resume=resume,
        why=" (it may hold your training labels)",
    )
    panel_path = app.path(panel_file)
    panel = read_panel(panel_path) if panel_path.exists() else None
    if panel is None:
        logger.warning("%s not found: every image channel is used separately", panel_path)
    images = list_images(app.path(img_dir))
    seed = _crop_seed([app.path(imgout), app.path(cropout)], seed, resume=resume)
    plan = crop_plan(images, scale=scale, cropsize=cropsize, seed=seed)
    if resume:  # the crops an earlier run made stay where they are
        plan.update(_existing_crop_positions(app.path(cropout), plan, cropsize))
    jobs = []
    for path in images:
        name = image_name(path)
        outputs = {"image": app.path(imgout) / f"{name}.h5"}
        if plan.get(name) is not None:
            x, y = plan[name]
            outputs["crop"] = app.path(cropout) / crop_file_name(name, x, y, cropsize)
        jobs.append(Job(name, {"image": path}, outputs, {"crop": plan.get(name)}))
    task = PrepareTask(panel, cropsize, aggr, mean, meanfactor, scale)
    run_jobs(
        task,
        jobs,
        command="classify ilastik prepare",
        workers=workers,
        overwrite=overwrite,
        resume=resume,
        resolved={"seed": seed},
    )
    if not write_project:
        logger.info(
            "kept %s; images in %s, crops in %s",
            project_path,
            app.path(imgout),
            app.path(cropout),
        )
        return
    crops = [job.outputs["crop"] for job in jobs if "crop" in job.outputs]
    lanes = [lane_for_crop(c, project_path, read_ilastik_crop(c).shape) for c in crops]
    write_new_project(
        project_path,
        lanes,
        features=_parse_features(features),
        probabilities_dir=layout.ILASTIK_PROBABILITIES,
    )
    logger.info(
        "wrote %s with %d training crops; images in %s, crops in %s",
        project_path,
        len(lanes),
        app.path(imgout),
        app.path(cropout),
    )


def _crop_seed(directories, seed, *, resume: bool) -> int:
    """The seed to draw crops with.

    Without ``--seed`` a seed is drawn and recorded (run_metadata.json, before the first
    output), so that ``--resume`` draws the same crops: on ``--resume`` the recorded seed
    is reused. The runner refuses ``--resume`` with other settings than the recorded ones
    (the seed included) before anything is written.
    """
    import secrets

    from steinbock_like.runner import read_previous_metadata

    if seed is None and resume:
        recorded = read_previous_metadata(directories).get("parameters")
        if isinstance(recorded, dict) and isinstance(recorded.get("seed"), int):
            seed = recorded["seed"]
    return secrets.randbelow(2**31) if seed is None else seed


def _existing_crop_positions(crop_dir: Path, plan: dict, cropsize: int) -> dict:
    """Position of each planned image's crop already in ``crop_dir`` (``--resume``).

    The crop files are the one source of an earlier run's positions: a crop finished just
    before a kill is on disk but not yet in the run record, and positions drawn now may
    differ from the earlier ones when images were added or removed since.
    """
    from steinbock_like.classify.ilastik.prepare import parse_crop_file_name
    from steinbock_like.errors import SteinbockLikeError

    found = {}
    for path in sorted(crop_dir.glob("*.h5")) if crop_dir.is_dir() else []:
        try:
            name, x, y, width, height = parse_crop_file_name(path)
        except SteinbockLikeError:
            continue
        if plan.get(name) is not None and width == height == cropsize:
            found[name] = (x, y)
    return found


def _parse_features(value: str):
    if value in ("default", "all", "none"):
        return value
    try:
        return [float(part) for part in value.split(",") if part.strip()]
    except ValueError:
        raise click.BadParameter(
            f"{value!r}: use default, all, none or comma-separated scales", param_hint="--features"
        ) from None


@ilastik_group.command(
    name="fix",
    help="""Make a project trained elsewhere usable here, in place.

    Converts every crop of --cropdir to float32 CYX (axis order from each
    file's axistags, or --axes; singleton z/t dropped; crops already in this
    layout are left alone), points the project's input lanes at them with
    relative paths, reorders its label blocks to the new axis order and sets
    the probability export to uint16 TIFF, YXC, 0..65535. A backup
    (PROJECT.bak, CROPDIR.bak) is made first unless --no-backup.
    """,
)
@path_option("--ilp", "project_file", default=layout.ILASTIK_PROJECT, help="Project to fix.")
@path_option("--cropdir", "crop_dir", default=layout.ILASTIK_CROPS, help="Crops of the project.")
@click.option(
    "--axes",
    default=None,
    help="Axis order of the crops (e.g. zyxc) where their files do not say it.",
)
@path_option(
    "--probabs",
    "probabilities_dir",
    default=layout.ILASTIK_PROBABILITIES,
    help="Directory the project's probability export points at.",
)
@click.option(
    "--backup/--no-backup",
    default=True,
    show_default=True,
    help="Back up the project and the crops before changing them.",
)
@pass_app
def fix_cmd(app: AppContext, project_file, crop_dir, axes, probabilities_dir, backup):
    from steinbock_like.classify.ilastik.project import fix_project

    report = fix_project(
        app.path(project_file),
        app.path(crop_dir),
        axes=axes,
        make_backup=backup,
        probabilities_dir=str(probabilities_dir),
    )
    logger.info(
        "fixed %s: %d crops converted, %d already fine, %d lanes re-pointed, %d label blocks%s",
        app.path(project_file),
        len(report.crops_converted),
        len(report.crops_unchanged),
        len(report.lanes),
        report.label_blocks,
        f"; backups: {', '.join(str(p) for p in report.backups)}" if report.backups else "",
    )


@ilastik_group.command(
    name="run",
    help="""Classify every ilastik image into class probabilities.

    Writes ilastik_probabilities/{image}.tiff (uint16, YXC, one channel per
    class, 0..65535 = probability 0..1). --backend ilastik runs real ilastik
    headless (one process for all images); --backend native computes
    ilastik's features and applies the project's random forest here, with no
    ilastik install (and trains the forest from the project's labels when it
    has none, or with --retrain). auto: ilastik where installed, else native.
    """,
)
@click.option(
    "--backend",
    type=click.Choice(BACKENDS),
    default="auto",
    show_default=True,
    help="Who classifies.",
)
@click.option(
    "--ilastik",
    "ilastik_binary",
    default=None,
    help="ilastik launcher [env: ILASTIK_BINARY; default: found on PATH or in the container, "
    "see 'steinbock-like doctor'].",
)
@path_option("--ilp", "project_file", default=layout.ILASTIK_PROJECT, help="Trained project.")
@path_option("--img", "img_dir", default=layout.ILASTIK_IMG, help="ilastik images (HDF5).")
@path_option(
    "-o", "out_dir", default=layout.ILASTIK_PROBABILITIES, help="Output directory of probabilities."
)
@click.option(
    "--threads",
    type=click.IntRange(min=1),
    default=None,
    help="Threads for ilastik (LAZYFLOW_THREADS), or for training with --backend native.",
)
@click.option(
    "--mem",
    "memory_mb",
    type=click.IntRange(min=1),
    default=None,
    help="Memory for ilastik in MB (LAZYFLOW_TOTAL_RAM_MB).",
)
@click.option(
    "--retrain",
    is_flag=True,
    help="native: train a new forest on the project's labels even if it has one.",
)
@click.option(
    "--tile-size",
    type=click.IntRange(min=64),
    default=512,
    show_default=True,
    help="native: tile edge in pixels (memory per worker grows with its square).",
)
@runner_options
@pass_app
def run_cmd(
    app: AppContext,
    backend,
    ilastik_binary,
    project_file,
    img_dir,
    out_dir,
    threads,
    memory_mb,
    retrain,
    tile_size,
    workers,
    overwrite,
    resume,
):
    from steinbock_like.classify.ilastik.binary import find_ilastik_binary
    from steinbock_like.io.ilastik import list_ilastik_files
    from steinbock_like.runner import jobs_for, named_files, threads_per_worker
    from steinbock_like.tasks.ilastik import NativeClassifyTask, ilastik_executor
    from steinbock_like.tools import choose_backend

    project_path = app.path(project_file)
    if not project_path.is_file():
        raise SteinbockLikeError(f"{project_path}: project file not found")
    backend = choose_backend(backend, "ilastik", lambda: find_ilastik_binary(ilastik_binary))
    binary = find_ilastik_binary(ilastik_binary) if backend == "ilastik" else None
    files = list_ilastik_files(app.path(img_dir))
    jobs = jobs_for(named_files(files, "image"), {"probabilities": app.path(out_dir)})
    if backend == "ilastik":
        if retrain:
            raise SteinbockLikeError("--retrain needs --backend native")
        run_jobs(
            None,
            jobs,
            command="classify ilastik run",
            workers=1,
            overwrite=overwrite,
            resume=resume,
            executor=ilastik_executor(project_path, binary, threads, memory_mb),
            resolved={"backend": backend},
            extra_metadata={"ilastik": str(binary)},
        )
    else:
        from steinbock_like.classify.ilastik.training import load_or_train_pixel_classifier
        from steinbock_like.io.outputs import output_is_readable
        from steinbock_like.runner import check_outputs

        skipped = check_outputs(
            jobs, overwrite=overwrite, resume=resume, readable=output_is_readable
        )
        if len(skipped) == len(jobs):
            classifier = None  # nothing to classify: no forest loaded or trained
        else:
            # Trained once here, in the main process, with every core; stored in the
            # project and reused until its labels change.
            classifier = load_or_train_pixel_classifier(
                project_path, retrain=retrain, n_jobs=threads_per_worker(1, threads)
            )
        run_jobs(
            NativeClassifyTask(classifier, tile_size),
            jobs,
            command="classify ilastik run",
            workers=workers,
            overwrite=overwrite,
            resume=resume,
            resolved={"backend": backend},
        )
    logger.info("probabilities in %s", app.path(out_dir))
