"""``steinbock-like preprocess imc|external panel|images``: raw data to panel.csv, img/
and images.csv (steinbock 0.16.5's commands, options and defaults)."""

from __future__ import annotations

import logging
from pathlib import Path

import click

from steinbock_like import layout
from steinbock_like.cli.options import AppContext, pass_app, path_option, run_jobs, runner_options
from steinbock_like.errors import InputError, OutputExistsError, SteinbockLikeError

logger = logging.getLogger("steinbock_like")


@click.group(name="preprocess", help="Preprocess raw data into panel.csv, img/ and images.csv.")
def preprocess_group() -> None:
    pass


@preprocess_group.group(name="imc", help="Preprocess imaging mass cytometry (IMC) data.")
def imc_group() -> None:
    pass


@preprocess_group.group(name="external", help="Preprocess external images (TIFF / OME-TIFF).")
def external_group() -> None:
    pass


def _raw_dir_options(function):
    function = click.option(
        "--unzip/--no-unzip",
        "unzip",
        default=True,
        show_default=True,
        help="Also read .mcd/.txt files inside .zip archives (in place).",
    )(function)
    function = path_option(
        "--txt", "txt_dir", default=layout.RAW, help="Directory of IMC .txt/.zip files."
    )(function)
    function = path_option(
        "--mcd", "mcd_dir", default=layout.RAW, help="Directory of IMC .mcd/.zip files."
    )(function)
    return function


# ----------------------------------------------------------------------------- imc panel


@imc_group.command(
    name="panel",
    help="""Create panel.csv from the IMC panel or, without one, from the acquisitions.

    From --imcpanel (the IMC segmentation pipeline's panel) where that file
    exists: --channelcol and --namecol give channel and name, --keepcol and
    --ilastikcol the 0/1 keep and ilastik flags; rows of one channel are merged.
    Otherwise every channel of the .mcd files (else of the .txt files). Channels
    are sorted by mass; ilastik channels are numbered 1..n.
    """,
)
@path_option("--imcpanel", "imc_panel_file", default=layout.RAW_PANEL, help="IMC panel file.")
@click.option(
    "--channelcol",
    "channel_col",
    default="Metal Tag",
    show_default=True,
    help="IMC panel column with the channel (required).",
)
@click.option(
    "--namecol",
    "name_col",
    default="Target",
    show_default=True,
    help="IMC panel column with the channel name (required).",
)
@click.option(
    "--keepcol",
    "keep_col",
    default="full",
    show_default=True,
    help="IMC panel column saying whether to keep the channel (0/1).",
)
@click.option(
    "--ilastikcol",
    "ilastik_col",
    default="ilastik",
    show_default=True,
    help="IMC panel column saying whether ilastik uses the channel (0/1).",
)
@_raw_dir_options
@path_option("-o", "panel_file", default=layout.PANEL, help="Panel output file.")
@pass_app
def imc_panel_cmd(
    app: AppContext,
    imc_panel_file: Path,
    channel_col: str,
    name_col: str,
    keep_col: str,
    ilastik_col: str,
    mcd_dir: Path,
    txt_dir: Path,
    unzip: bool,
    panel_file: Path,
) -> None:
    from steinbock_like.io import imc as imc_io
    from steinbock_like.preprocess import panel as panels

    imc_panel_path, mcd_path, txt_path = (
        app.path(imc_panel_file),
        app.path(mcd_dir),
        app.path(txt_dir),
    )
    panel = None
    if imc_panel_path.is_file():
        table = imc_io.read_imc_panel(
            imc_panel_path,
            channel_col=channel_col,
            name_col=name_col,
            keep_col=keep_col,
            ilastik_col=ilastik_col,
        )
        panel = panels.panel_from_imc_panel(
            table,
            channel_col=channel_col,
            name_col=name_col,
            keep_col=keep_col,
            ilastik_col=ilastik_col,
            path=imc_panel_path,
        )
        source = imc_panel_path
    if panel is None and mcd_path.is_dir():
        mcd_files = imc_io.list_imc_files(mcd_path, ".mcd", unzip=unzip)
        if mcd_files:
            channel_lists = [
                (acquisition.channels, acquisition.labels)
                for mcd in mcd_files
                for acquisition in imc_io.read_acquisitions(mcd)
            ]
            if channel_lists:
                panel = panels.panel_from_channels(channel_lists)
                source = mcd_path
    if panel is None and txt_path.is_dir():
        txt_files = imc_io.list_imc_files(txt_path, ".txt", unzip=unzip)
        if txt_files:
            panel = panels.panel_from_channels(imc_io.read_txt_channels(t) for t in txt_files)
            source = txt_path
    if panel is None:
        raise SteinbockLikeError(
            f"no IMC panel ({imc_panel_path}), .mcd ({mcd_path}) or .txt ({txt_path}) file found"
        )
    out = app.path(panel_file)
    imc_io.write_preprocessed_panel(out, panel)
    logger.info("preprocess imc panel: %d channels from %s -> %s", len(panel), source, out)


# ----------------------------------------------------------------------------- imc images


@imc_group.command(
    name="images",
    help="""Extract IMC acquisitions into img/ (float32 CYX TIFF) and images.csv.

    One image per acquisition of every .mcd file ({mcd name}_{id:03d}.tiff),
    with the panel's kept channels in panel order (all channels without a
    panel). An acquisition that cannot be read from its .mcd file is read
    from its .txt file ('recovered' in images.csv); .txt files without an
    .mcd become images of their own. --hpf DELTA replaces pixels exceeding
    all 8 neighbours by more than DELTA by the neighbours' maximum.
    """,
)
@_raw_dir_options
@path_option("--panel", "panel_file", default=layout.PANEL, help="Panel file.")
@click.option(
    "--hpf",
    "hpf",
    type=click.FLOAT,
    default=None,
    help="Hot pixel filter (specify delta threshold).",
)
@path_option("--imgout", "img_dir", default=layout.IMG, help="Image output directory.")
@path_option(
    "--infoout", "image_info_file", default=layout.IMAGES_CSV, help="Image information output file."
)
@click.option(
    "--strict",
    "strict",
    type=bool,
    default=True,
    show_default=True,
    help="Strict parsing: a corrupted acquisition is an error (then recovered from its .txt file).",
)
@runner_options
@pass_app
def imc_images_cmd(
    app: AppContext,
    mcd_dir: Path,
    txt_dir: Path,
    unzip: bool,
    panel_file: Path,
    hpf: float | None,
    img_dir: Path,
    image_info_file: Path,
    strict: bool,
    workers: int,
    overwrite: bool,
    resume: bool,
) -> None:
    from steinbock_like.io import imc as imc_io
    from steinbock_like.io.panel import kept, read_panel
    from steinbock_like.preprocess.imc import plan_images
    from steinbock_like.runner import Job
    from steinbock_like.tasks.preprocess import ImcImageTask

    mcd_path, txt_path = app.path(mcd_dir), app.path(txt_dir)
    for directory in (mcd_path, txt_path):
        if not directory.is_dir():
            raise InputError(directory, "directory not found")
    panel_path = app.path(panel_file)
    channels = list(kept(read_panel(panel_path))["channel"]) if panel_path.is_file() else None

    mcds = []
    for mcd in imc_io.list_imc_files(mcd_path, ".mcd", unzip=unzip):
        try:
            mcds.append((mcd, imc_io.read_acquisitions(mcd)))
        except InputError as error:
            logger.warning("%s; its acquisitions are read from their .txt files", error)
            mcds.append((mcd, None))
    txts = imc_io.list_imc_files(txt_path, ".txt", unzip=unzip)

    def txt_channels(path):
        try:
            return imc_io.read_txt_channels(path)[0]
        except InputError:
            return None  # fails in its job, with the reason

    planned, notes = plan_images(mcds, txts, channels=channels, txt_channels=txt_channels)
    for note in notes:
        logger.warning("%s", note)
    out_dir = app.path(img_dir)
    jobs = []
    for image in planned:
        if image.acquisition is None:
            inputs = {"txt": Path(image.source)}
        else:
            inputs = {"mcd": Path(image.source)}
            if image.recovery is not None:
                inputs["recovery"] = Path(image.recovery)
        params = {
            "acquisition_id": image.acquisition.id if image.acquisition else None,
            "source_readable": image.source_readable,
            "info": image.info,
        }
        jobs.append(Job(image.name, inputs, {"image": out_dir / image.file_name}, params))
    unrecoverable = [(mcd, None) for mcd, acquisitions in mcds if acquisitions is None]
    for mcd, _ in unrecoverable:
        if not any(job.inputs.get("mcd") == Path(mcd) for job in jobs):
            jobs.append(
                Job(
                    Path(mcd).stem,
                    {"mcd": Path(mcd)},
                    {},
                    {"error": "unreadable .mcd file and no .txt files to recover it from"},
                )
            )
    task = ImcImageTask(channels=channels, hpf=hpf, strict=strict)
    _run_and_write_info(
        task,
        jobs,
        app.path(image_info_file),
        command="preprocess imc images",
        out_dir=out_dir,
        workers=workers,
        overwrite=overwrite,
        resume=resume,
    )


# ----------------------------------------------------------------------------- external


@external_group.command(
    name="panel",
    help="""Create panel.csv for external images.

    Channels are numbered 1..C from the first readable image; their names come
    from its OME-XML channel names, where it has them.
    """,
)
@path_option("--img", "ext_img_dir", default=layout.EXTERNAL, help="External image directory.")
@click.option(
    "--projection",
    type=click.Choice(["max", "mean", "sum", "first"]),
    default="max",
    show_default=True,
    help="How the Z planes of a ZCYX image become one (as in 'images').",
)
@path_option("-o", "panel_file", default=layout.PANEL, help="Panel output file.")
@pass_app
def external_panel_cmd(app: AppContext, ext_img_dir: Path, projection: str, panel_file: Path):
    from steinbock_like.io.external import list_external_images, read_external_image
    from steinbock_like.io.imc import write_preprocessed_panel
    from steinbock_like.preprocess.external import to_cyx
    from steinbock_like.preprocess.panel import external_panel

    files = list_external_images(app.path(ext_img_dir))
    for path in files:
        try:
            external = read_external_image(path)
            image = to_cyx(external.array, external.axes, projection=projection)
        except (InputError, ValueError) as error:
            logger.warning("%s: skipped (%s)", path, error)
            continue
        names = external.channel_names
        if names is not None and len(names) != image.shape[0]:
            names = None
        panel = external_panel(image.shape[0], names)
        out = app.path(panel_file)
        write_preprocessed_panel(out, panel)
        logger.info("preprocess external panel: %d channels from %s -> %s", len(panel), path, out)
        return
    raise SteinbockLikeError(f"{app.path(ext_img_dir)}: no readable TIFF image found")


@external_group.command(
    name="images",
    help="""Convert external images (TIFF / OME-TIFF) into img/ and images.csv.

    2-D, CYX, YXC (the last axis strictly the shortest, or RGB samples) and
    ZCYX images (Z planes combined by --projection) become float32 CYX TIFF
    files with the panel's kept channels (by their 1-based 'channel' number).
    """,
)
@path_option("--img", "ext_img_dir", default=layout.EXTERNAL, help="External image directory.")
@path_option("--panel", "panel_file", default=layout.PANEL, help="Panel file.")
@click.option(
    "--mmap/--no-mmap",
    "mmap",
    default=False,
    show_default=True,
    help="Accepted for steinbock compatibility; images are written atomically.",
)
@click.option(
    "--projection",
    type=click.Choice(["max", "mean", "sum", "first"]),
    default="max",
    show_default=True,
    help="How the Z planes of a ZCYX image become one.",
)
@path_option("--imgout", "img_dir", default=layout.IMG, help="Image output directory.")
@path_option(
    "--infoout", "image_info_file", default=layout.IMAGES_CSV, help="Image information output file."
)
@runner_options
@pass_app
def external_images_cmd(
    app: AppContext,
    ext_img_dir: Path,
    panel_file: Path,
    mmap: bool,
    projection: str,
    img_dir: Path,
    image_info_file: Path,
    workers: int,
    overwrite: bool,
    resume: bool,
) -> None:
    from steinbock_like.io.external import external_image_name, list_external_images
    from steinbock_like.io.panel import kept, read_panel
    from steinbock_like.runner import Job
    from steinbock_like.tasks.preprocess import ExternalImageTask

    panel_path = app.path(panel_file)
    numbers = None
    if panel_path.is_file():
        channel_ids = list(kept(read_panel(panel_path))["channel"])
        try:
            numbers = [int(c) for c in channel_ids]
        except ValueError as error:
            raise InputError(
                panel_path, "external images need channel numbers (1, 2, ...) in 'channel'"
            ) from error
    out_dir = app.path(img_dir)
    jobs = []
    seen = set()
    for path in list_external_images(app.path(ext_img_dir)):
        name = external_image_name(path)
        if name in seen:
            raise InputError(path, f"a second image named '{name}'")
        seen.add(name)
        jobs.append(Job(name, {"image": path}, {"image": out_dir / f"{name}.tiff"}))
    _run_and_write_info(
        ExternalImageTask(numbers, projection),
        jobs,
        app.path(image_info_file),
        command="preprocess external images",
        out_dir=out_dir,
        workers=workers,
        overwrite=overwrite,
        resume=resume,
    )


# ----------------------------------------------------------------------------- shared


class _RecordingExecutor:
    """A local executor that keeps the results, so that images.csv is written even when
    some images failed."""

    def __init__(self, workers: int):
        from steinbock_like.runner import LocalExecutor

        self.inner = LocalExecutor(workers)
        self.results = {}

    def run(self, task, jobs):
        for result in self.inner.run(task, jobs):
            self.results[result.name] = result
            yield result


def _run_and_write_info(
    task, jobs, info_path: Path, *, command, out_dir: Path, workers, overwrite, resume
):
    """Run the jobs; then write images.csv: rows of the images done now, and (with
    --resume) of skipped ones from the previous images.csv."""
    from steinbock_like.io.imc import read_images_csv

    executor = _RecordingExecutor(workers)
    previous = read_images_csv(info_path) if resume else {}
    try:
        run_jobs(
            task,
            jobs,
            command=command,
            workers=workers,
            overwrite=overwrite,
            resume=resume,
            executor=executor,
        )
    except OutputExistsError:
        raise
    except SteinbockLikeError:
        _write_info(jobs, executor.results, previous, info_path)
        raise
    _write_info(jobs, executor.results, previous, info_path)
    logger.info("%s: images in %s, image information in %s", command, out_dir, info_path)


def _write_info(jobs, results, previous, info_path: Path) -> None:
    from steinbock_like.io.images import image_shape
    from steinbock_like.io.imc import write_images_csv
    from steinbock_like.preprocess.imc import complete_info

    rows = []
    for job in jobs:
        result = results.get(job.name)
        if result is not None:
            if result.status == "ok":
                rows.append(result.info)
            continue
        image = job.outputs.get("image")
        if image is None or not image.is_file():
            continue
        row = previous.get(image.name)  # skipped by --resume: its row from before
        if row is None and "info" in job.params:
            info = job.params["info"]
            row = complete_info(info, image_shape(image), info["recovered"])
        if row is not None:
            rows.append(row)
    if rows or not info_path.exists():
        write_images_csv(info_path, rows)
