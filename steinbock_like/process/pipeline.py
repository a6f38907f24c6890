"""Running a validated pipeline on one image, in memory.

Values (panel channels and processor outputs) live in a dict; each is dropped once
no later step or quantify entry needs it. Kept outputs are handed to a callback
as soon as they exist (the task writes them); temporaries are never written.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from steinbock_like.process.config import Pipeline
from steinbock_like.process.quantify import intensities_table, neighbors_table, regionprops_table
from steinbock_like.process.registry import Context, load_registry


def last_uses(pipeline: Pipeline) -> dict[str, int]:
    """Index of the last step reading each value (quantify counts as after every step)."""
    last: dict[str, int] = {}
    for step in pipeline.steps:
        for names in step.inputs.values():
            for name in names:
                last[name] = step.index
    after = len(pipeline.steps)
    for entry in pipeline.quantify:
        for name in entry.masks.values():
            last[name] = after
    return last


def run_pipeline(
    pipeline: Pipeline,
    values: dict[str, np.ndarray],
    context: Context,
    *,
    on_output: Callable[[str, str, np.ndarray], None] | None = None,
    image: np.ndarray | None = None,
    channel_names: list[str] | None = None,
) -> tuple[dict[str, np.ndarray], dict[tuple[str, str], Any]]:
    """Run every step, then quantify.

    Parameters
    ----------
    pipeline : Pipeline
    values : dict
        Panel channel name -> 2-D image (consumed: entries are dropped when no longer needed).
    context : Context
    on_output : callable, optional
        ``on_output(name, kind, array)`` for every kept output, once it is made.
    image, channel_names : optional
        The image's kept channels (CYX) and their names, for quantify's intensities.

    Returns
    -------
    outputs : dict
        Name -> array of every kept output, only without ``on_output`` (with it, each
        array is dropped once handed over and no longer needed: memory stays bounded).
    tables : dict
        (table kind, quantify name) -> DataFrame.
    """
    registry = load_registry()
    last = last_uses(pipeline)
    kept: dict[str, np.ndarray] = {}
    kept_names: set[str] = set()
    for step in pipeline.steps:
        processor = registry[step.type]
        inputs = {role: [values[name] for name in names] for role, names in step.inputs.items()}
        result = processor.function(inputs, step.params, context)
        del inputs
        if processor.outputs is not None:
            produced = [(name, result[role]) for role, name in step.outputs]
        elif processor.per_input:
            produced = [
                (name, array) for (_, name), array in zip(step.outputs, result, strict=True)
            ]
        else:
            produced = [(step.outputs[0][1], result)]
        for name, array in produced:
            array = np.asarray(array)
            if step.kind == "mask":
                array = _as_labels(array)
            else:
                array = array.astype(np.float32, copy=False)
            values[name] = array
            if step.keep:
                kept_names.add(name)
                if on_output is not None:
                    on_output(name, step.kind, array)
                else:
                    kept[name] = array
        for name in [n for n in values if last.get(n, -1) <= step.index]:
            del values[name]
    tables: dict[tuple[str, str], Any] = {}
    for entry in pipeline.quantify:
        masks = [
            ("" if i == 0 else f"_{compartment}", values[name])
            for i, (compartment, name) in enumerate(entry.masks.items())
        ]
        if entry.intensities is not None:
            if image is None or channel_names is None:
                raise ValueError("quantify intensities needs the image and its channel names")
            tables["intensities", entry.name] = intensities_table(
                image, channel_names, masks, entry.intensities["aggr"]
            )
        if entry.regionprops is not None:
            tables["regionprops", entry.name] = regionprops_table(
                masks, entry.regionprops["properties"], image=image
            )
        if entry.neighbors is not None:
            tables["neighbors", entry.name] = neighbors_table(masks[0][1], entry.neighbors)
    return kept, tables


def _as_labels(array: np.ndarray) -> np.ndarray:
    if array.dtype.kind == "b":
        return array.astype(np.uint8)
    if array.dtype.kind == "f":
        return np.rint(array).astype(np.int64)
    return array
