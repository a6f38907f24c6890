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

    def path(self, value: str | Path) -> Path:
        """Resolve a path option against ``--data``."""
        return layout.resolve(self.data_dir, value)


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


#: Where ``runner_options`` keeps the dask options for :func:`run_jobs` (context.meta).
DASK_OPTIONS_KEY = "steinbock_like.dask_options"


def runner_options(function):
    """``--workers``, ``--overwrite``, ``--resume`` and the dask options
    (``--scheduler``, ``--cluster``, ``--cluster-config``), for every per-image command.

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


DASK_KEYS = ("scheduler", "cluster", "cluster_config")


def _dask_executor_asked(context) -> bool:
    options = context.meta.get(DASK_OPTIONS_KEY, {}) if context else {}
    return bool(options.get("scheduler") or options.get("cluster"))


def _dask_executor(context):
    """The DaskExecutor the command's --scheduler/--cluster options ask for, or None."""
    options = context.meta.get(DASK_OPTIONS_KEY, {}) if context else {}
    scheduler, cluster, config_file = (options.get(key) for key in DASK_KEYS)
    if not scheduler and not cluster:
        if config_file is not None:
            raise SteinbockLikeError("--cluster-config needs --cluster")
        return None
    from steinbock_like.runner.dask import executor_from_options

    config = {}
    if config_file is not None:
        from steinbock_like.io.cluster_config import read_cluster_config

        app = context.find_object(AppContext)
        config = read_cluster_config(app.path(config_file) if app else config_file)
    return executor_from_options(scheduler or None, cluster, config)


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
    if summary.failed:
        first = summary.failed[0]
        raise SteinbockLikeError(
            f"{len(summary.failed)} of {len(jobs)} images failed "
            f"(first: {first.name}: {first.error}); see run_metadata.json"
        )
    return summary
