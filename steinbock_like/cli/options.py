"""Options and helpers shared by every command, declared once.

Paths default to the names in :mod:`steinbock_like.layout` and are resolved
against the global ``--data`` directory at run time.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from steinbock_like import layout
from steinbock_like.errors import SteinbockLikeError
from steinbock_like.runner import BatchSummary, Job, LocalExecutor, run_batch

logger = logging.getLogger("steinbock_like")

#: set to 1 to turn on ``--overwrite`` for every command (steinbock scripts rerun in place)
OVERWRITE_ENVVAR = "STEINBOCK_LIKE_OVERWRITE"


@dataclass
class AppContext:
    """What the root group hands to every command."""

    data_dir: Path
    debug: bool = False
    #: The run's directory (``--run-version``/``--run-dir``): outputs go there.
    run_dir: Path | None = None

    def path(self, value: str | Path) -> Path:
        """Resolve a path option against ``--data`` (in a versioned run, a relative path
        that exists in the run's directory is taken from there: its earlier outputs)."""
        if self.run_dir is not None and not Path(value).is_absolute():
            inside = self.run_dir / value
            if inside.exists():
                return inside
        return layout.resolve(self.data_dir, value)

    def output(self, value: str | Path) -> Path:
        """Resolve an output path option: against the run's directory in a versioned
        run (``--run-version``), else against ``--data``."""
        return layout.resolve(self.run_dir or self.data_dir, value)


pass_app = click.make_pass_decorator(AppContext, ensure=True)


def path_option(*names: str, default: str, help: str, **kwargs: Any):
    """A path option whose default comes from the layout (relative to --data)."""
    return click.option(
        *names,
        type=click.Path(path_type=Path),
        default=default,
        show_default=True,
        help=help,
        **kwargs,
    )


def img_option(default: str = layout.IMG, help: str = "Directory of input images (CYX TIFF)."):
    return path_option("--img", "img_dir", default=default, help=help)


def panel_option(default: str = layout.PANEL):
    return path_option("--panel", "panel_file", default=default, help="Panel CSV file.")


def normalization_options(function):
    """``--minmax/--no-minmax`` and ``--zscore/--no-zscore``: per-channel scaling before a
    panel group's channels are merged (steinbock's names; both off by default)."""
    function = click.option(
        "--zscore/--no-zscore",
        default=False,
        show_default=True,
        help="Z-score normalise each channel before aggregation.",
    )(function)
    return click.option(
        "--minmax/--no-minmax",
        default=False,
        show_default=True,
        help="Min-max normalise each channel before aggregation.",
    )(function)


def aggregation_option(names: str = "mean, median, sum, max, min, ..."):
    """``--aggr NAME``: the numpy reduction merging a panel group's channels per pixel."""
    return click.option(
        "--aggr",
        default="mean",
        show_default=True,
        metavar="NAME",
        help=f"numpy reduction combining the channels of a panel group per pixel ({names}; "
        "steinbock's numpy.NAME).",
    )


#: Where ``runner_options`` keeps the dask options for :func:`run_jobs` (context.meta).
DASK_OPTIONS_KEY = "steinbock_like.dask_options"


def runner_options(function):
    """``--workers``, ``--overwrite``, ``--resume`` and the dask options
    (``--scheduler``, ``--cluster``, ``--cluster-config``, ``--adaptive``), for every
    per-image command.

    The dask options are not passed to the command function: :func:`run_jobs`
    reads them from the click context and builds the executor.
    """

    @click.option(
        "--workers",
        type=click.IntRange(min=1),
        default=1,
        show_default=True,
        help="Images processed in parallel (worker processes).",
    )
    @click.option(
        "--scheduler",
        envvar="STEINBOCK_LIKE_SCHEDULER",
        default=None,
        metavar="ADDRESS",
        help="Run the images on the dask cluster whose scheduler is at ADDRESS "
        "(tcp://host:8786; env STEINBOCK_LIKE_SCHEDULER). --workers is then ignored.",
    )
    @click.option(
        "--cluster",
        default=None,
        metavar="local:N|slurm|pbs|sge|lsf",
        help="Start a dask cluster for this command: N local worker processes, or batch "
        "jobs through dask-jobqueue (configured by --cluster-config).",
    )
    @click.option(
        "--cluster-config",
        "cluster_config",
        type=click.Path(path_type=Path, dir_okay=False),
        default=None,
        help="YAML/JSON file of dask-jobqueue cluster options (see docs/cluster.md).",
    )
    @click.option(
        "--adaptive",
        is_flag=True,
        help="The cluster at --scheduler scales with its queue (adapt()): send it every "
        "image at once so that it can grow (by default it gets as many as it has worker "
        "threads, and more as workers join).",
    )
    @click.option(
        "--overwrite",
        is_flag=True,
        envvar=OVERWRITE_ENVVAR,
        help="Replace existing output files (by default existing outputs are an error) "
        f"[env: {OVERWRITE_ENVVAR}=1].",
    )
    @click.option(
        "--resume",
        is_flag=True,
        help="Skip images whose outputs already exist and are readable.",
    )
    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        dask_options = {key: kwargs.pop(key, None) for key in DASK_KEYS}
        context = click.get_current_context(silent=True)
        if context is not None:
            context.meta[DASK_OPTIONS_KEY] = dask_options
        return function(*args, **kwargs)

    return wrapper


DASK_KEYS = ("scheduler", "cluster", "cluster_config", "adaptive")


def _dask_executor_asked(context) -> bool:
    options = context.meta.get(DASK_OPTIONS_KEY, {}) if context else {}
    return bool(options.get("scheduler") or options.get("cluster"))


def _dask_executor(context):
    """The DaskExecutor the command's --scheduler/--cluster options ask for, or None."""
    options = context.meta.get(DASK_OPTIONS_KEY, {}) if context else {}
    scheduler, cluster, config_file, adaptive = (options.get(key) for key in DASK_KEYS)
    if not scheduler and not cluster:
        if config_file is not None:
            raise SteinbockLikeError("--cluster-config needs --cluster")
        if adaptive:
            raise SteinbockLikeError("--adaptive needs --scheduler")
        return None
    from steinbock_like.runner.dask import executor_from_options

    config = {}
    if config_file is not None:
        from steinbock_like.io.cluster_config import read_cluster_config

        app = context.find_object(AppContext)
        config = read_cluster_config(app.path(config_file) if app else config_file)
    return executor_from_options(scheduler or None, cluster, config, bool(adaptive))


def run_jobs(
    task,
    jobs: list[Job],
    *,
    command: str,
    workers: int,
    overwrite: bool,
    resume: bool,
    parameters: dict[str, Any] | None = None,
    resolved: dict[str, Any] | None = None,
    executor=None,
    **kwargs: Any,
) -> BatchSummary:
    """Run a batch with the shared runner and report it; fail if any image failed.

    ``parameters`` (for the metadata) defaults to the options of the running click
    command as the user gave them, updated with ``resolved`` (values the command
    decided, e.g. the backend ``auto`` chose); ``executor`` defaults to a
    :class:`~steinbock_like.runner.dask.DaskExecutor` where ``--scheduler`` or
    ``--cluster`` was given, else a :class:`LocalExecutor` with ``workers`` processes.
    """
    context = click.get_current_context(silent=True)
    if parameters is None:
        parameters = dict(context.params) if context else {}
    parameters = {**parameters, **(resolved or {})}
    app = context.find_object(AppContext) if context else None
    if not jobs:
        raise SteinbockLikeError(f"{command}: no input images found")
    task, run_dir = _image_sources_and_run(context, app, task, jobs, kwargs, overwrite, resume)
    kwargs.setdefault("data_dir", app.data_dir if app else None)
    if executor is not None and _dask_executor_asked(context):
        logger.warning("%s runs its tool on this machine: --scheduler/--cluster ignored", command)
    # where the images run does not change what they give: --resume may switch
    kwargs["resume_ignores"] = (*kwargs.get("resume_ignores", ()), *DASK_KEYS)
    summary = run_batch(
        task,
        jobs,
        command=command,
        parameters=parameters,
        overwrite=overwrite,
        resume=resume,
        executor=executor or _dask_executor(context) or LocalExecutor(workers),
        **kwargs,
    )
    logger.info("%s: %s", command, summary.line())
    if run_dir is not None:
        from steinbock_like.runner.versions import mark_latest

        logger.info("%s: run complete; %s -> %s", command, mark_latest(run_dir), run_dir.name)
    if summary.failed:
        first = summary.failed[0]
        raise SteinbockLikeError(
            f"{len(summary.failed)} of {len(jobs)} images failed "
            f"(first: {first.name}: {first.error}); see run_metadata.json"
        )
    return summary


# --------------------------------------------------------------------------- image sources
#: Where ``image_source_options`` keeps its values for :func:`image_jobs`/:func:`run_jobs`.
SOURCE_OPTIONS_KEY = "steinbock_like.image_source"
SOURCE_KEYS = (
    "images_from",
    "table",
    "id_column",
    "uri_column",
    "mask_column",
    "where",
    "cache_dir",
    "run_version",
    "run_dir",
)


def image_source_options(function):
    """``--images-from`` (a CSV or SQLite image list: ``--table``, ``--id-column``,
    ``--uri-column``, ``--mask-column``, ``--where``), ``--cache``, and the versioned
    runs (``--run-version``, ``--run-dir``), for per-image commands.

    The values are not passed to the command function: :func:`image_jobs` builds the
    jobs from the list (or from the image folder without one), the command resolves its
    outputs with ``app.output(...)``, and :func:`run_jobs` resolves the URIs inside each
    job, records the list and the run, and marks ``runs/latest``.
    """

    @click.option(
        "--images-from",
        "images_from",
        type=click.Path(path_type=Path, dir_okay=False),
        default=None,
        help="Read the images from this list instead of --img: a CSV file or SQLite "
        "database, one row per image (ID, URI: a path, file:// or http(s):// URL).",
    )
    @click.option("--table", default=None, help="Table of the --images-from database.")
    @click.option(
        "--id-column",
        default="id",
        show_default=True,
        help="Column of the image IDs (they name the outputs).",
    )
    @click.option(
        "--uri-column", default="uri", show_default=True, help="Column of the image URIs."
    )
    @click.option(
        "--mask-column",
        default=None,
        help="Column of the tissue mask URIs (for commands that use tissue masks).",
    )
    @click.option(
        "--where",
        default=None,
        metavar="SQL",
        help="Only the rows matching this SQL condition (read-only), e.g. \"stain = 'CD3'\".",
    )
    @click.option(
        "--cache",
        "cache_dir",
        type=click.Path(path_type=Path, file_okay=False),
        default=None,
        envvar="STEINBOCK_LIKE_IMAGE_CACHE",
        help="Downloaded images are kept here [default: ~/.cache/steinbock-like/images; "
        "env STEINBOCK_LIKE_IMAGE_CACHE].",
    )
    @click.option(
        "--run-version",
        "run_version",
        default=None,
        metavar="NAME",
        help="Versioned run: outputs go to runs/NAME/<output dir>/; runs/latest points to "
        "the newest completed run.",
    )
    @click.option(
        "--run-dir",
        "run_dir",
        type=click.Path(path_type=Path, file_okay=False),
        default=None,
        help="Versioned run in this directory (instead of runs/NAME); 'latest' beside it.",
    )
    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        values = {key: kwargs.pop(key, None) for key in SOURCE_KEYS}
        context = click.get_current_context()
        context.meta[SOURCE_OPTIONS_KEY] = values
        app = context.ensure_object(AppContext)
        if values["run_version"] is not None or values["run_dir"] is not None:
            from steinbock_like.runner.versions import run_directory

            app.run_dir = run_directory(app.data_dir, values["run_version"], values["run_dir"])
        return function(*args, **kwargs)

    return wrapper


def image_list(app: AppContext):
    """The ``--images-from`` list of the running command (read once), or None."""
    context = click.get_current_context(silent=True)
    values = context.meta.get(SOURCE_OPTIONS_KEY) if context else None
    if not values or values.get("images_from") is None:
        return None
    if "list" not in values:
        from steinbock_like.io.sources import read_image_list

        values["list"] = read_image_list(
            app.path(values["images_from"]),
            table=values["table"],
            id_column=values["id_column"],
            uri_column=values["uri_column"],
            mask_column=values["mask_column"],
            where=values["where"],
        )
        logger.info("%s: %d images listed", values["list"].path, len(values["list"].records))
    return values["list"]


def image_jobs(
    app: AppContext,
    img_dir: Path,
    outputs: dict[str, Path | tuple[Path, str]],
    *,
    mask_key: str | None = None,
    image_key: str = "image",
) -> list[Job]:
    """One job per image: from the ``--images-from`` list when given, else from ``img_dir``.

    Jobs from a list are named by the image ID and carry their URIs in
    ``params["sources"]`` (``image_key``, and ``mask_key`` for the list's tissue mask column
    where given); :func:`run_jobs` makes them local files inside each job.
    ``outputs`` as for :func:`steinbock_like.runner.jobs_for`.
    """
    from steinbock_like.runner import jobs_for, named_files

    listed = image_list(app)
    if listed is None:
        from steinbock_like.io.images import list_images

        return jobs_for(named_files(list_images(app.path(img_dir)), image_key), outputs)
    jobs = []
    for job, record in zip(
        jobs_for(((r.id, {}) for r in listed.records), outputs), listed.records, strict=True
    ):
        sources = {image_key: record.uri}
        if mask_key is not None and record.mask_uri:
            sources[mask_key] = record.mask_uri
        jobs.append(Job(job.name, {}, job.outputs, {"sources": sources}))
    return jobs


def _image_sources_and_run(context, app, task, jobs, kwargs, overwrite, resume):
    """Wrap ``task`` to resolve the jobs' URIs, record the image list and the run."""
    from steinbock_like.tasks.sources import SourcedTask, has_sources

    values = context.meta.get(SOURCE_OPTIONS_KEY, {}) if context else {}
    extra = dict(kwargs.get("extra_metadata") or {})
    if has_sources(jobs):
        from steinbock_like.io.remote import ImageCache, default_cache_dir

        listed = image_list(app)
        cache_dir = values.get("cache_dir")
        cache_dir = app.path(cache_dir) if cache_dir is not None else default_cache_dir()
        task = SourcedTask(task, ImageCache(cache_dir, base_dir=listed.base_dir))
        extra["images_from"] = {
            "path": str(listed.path),
            "images": len(listed.records),
            "sha256": listed.sha256,
            "cache": str(cache_dir),
        }
        # where downloads are kept does not change the outputs
        kwargs["resume_ignores"] = (*kwargs.get("resume_ignores", ()), "cache_dir")
    run_dir = app.run_dir if app is not None else None
    if run_dir is not None:
        from steinbock_like.runner.versions import check_new_run

        output_dirs = {path.parent for job in jobs for path in job.outputs.values()}
        check_new_run(run_dir, output_dirs, overwrite=overwrite, resume=resume)
        extra["run"] = {"directory": str(run_dir), "version": run_dir.name}
    if extra:
        kwargs["extra_metadata"] = extra
    return task, run_dir
