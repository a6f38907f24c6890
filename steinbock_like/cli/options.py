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


def runner_options(function):
    """``--workers``, ``--overwrite`` and ``--resume``, for every per-image command."""

    @click.option(
        "--workers",
        type=click.IntRange(min=1),
        default=1,
        show_default=True,
        help="Images processed in parallel (worker processes).",
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
        return function(*args, **kwargs)

    return wrapper


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
    :class:`LocalExecutor` with ``workers`` processes.
    """
    context = click.get_current_context(silent=True)
    if parameters is None:
        parameters = dict(context.params) if context else {}
    parameters = {**parameters, **(resolved or {})}
    app = context.find_object(AppContext) if context else None
    if not jobs:
        raise SteinbockLikeError(f"{command}: no input images found")
    kwargs.setdefault("data_dir", app.data_dir if app else None)
    summary = run_batch(
        task,
        jobs,
        command=command,
        parameters=parameters,
        overwrite=overwrite,
        resume=resume,
        executor=executor or LocalExecutor(workers),
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
