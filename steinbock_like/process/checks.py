"""What the ``process`` command checks before any image runs: the configuration, every
image's channels, and each processor's models (prepared once)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from steinbock_like.errors import InputError
from steinbock_like.process.config import ConfigError, Pipeline, validate_config
from steinbock_like.process.registry import Context, load_registry


def read_config(path: Path, panel: pd.DataFrame) -> Pipeline:
    """Read and validate a configuration file against the panel's kept channel names.

    Raises
    ------
    InputError
        ``CONFIG: key: problem`` (one line).
    """
    from steinbock_like.process.config import load_config_text

    if not path.is_file():
        raise InputError(path, "configuration file not found")
    text = path.read_text(encoding="utf-8")
    try:
        data = load_config_text(text, path.name)
        return validate_config(data, channel_names(panel))
    except ConfigError as error:
        raise InputError(path, str(error)) from None


def channel_names(panel: pd.DataFrame) -> list[str]:
    rows = panel[panel["keep"].astype(bool)] if "keep" in panel.columns else panel
    return rows["name"].astype(str).tolist()


def where_used(pipeline: Pipeline, channel: str) -> str:
    """Key path of the first place a channel is read."""
    for step in pipeline.steps:
        for role, names in step.inputs.items():
            if channel in names:
                position = names.index(channel)
                role_key = "" if role == "input" else f".{role}"
                return f"{step.key}.input{role_key}[{position}]"
    return "processors"


def check_images(pipeline: Pipeline, panel: pd.DataFrame, images: list[Path], config: Path):
    """Every image has the channels the pipeline reads (a one-line error otherwise)."""
    from steinbock_like.io.images import image_shape
    from steinbock_like.io.panel import panel_for_image

    for path in images:
        rows = panel_for_image(panel, image_shape(path)[0], path)
        names = set(channel_names(rows))
        for channel in pipeline.channels:
            if channel not in names:
                raise InputError(
                    config,
                    f"{where_used(pipeline, channel)}: channel {channel!r} is missing in image "
                    f"{path}",
                )


def prepare_pipeline(pipeline: Pipeline, context: Context) -> dict[str, Any]:
    """Resolve every step's models once (``prepare``); return the model versions by step."""
    registry = load_registry()
    versions: dict[str, Any] = {}
    for step in pipeline.steps:
        processor = registry[step.type]
        if processor.prepare is None:
            continue
        prepared = processor.prepare(step.params, context)
        step_versions = prepared.pop("_versions", {})
        step.params.update(prepared)
        if step_versions:
            versions[f"{step.key}.{step.type}"] = step_versions
    return versions
