"""Process task: run a configured processor pipeline on one image, writing kept outputs.

Outputs of a job: ``mask:NAME`` (masks_NAME/IMAGE.tiff), ``img:NAME`` (img_NAME/IMAGE.tiff)
and ``TABLE:QUANTIFY`` (TABLE_QUANTIFY/IMAGE.csv). Temporaries stay in memory.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from steinbock_like.errors import InputError
from steinbock_like.runner import Job


@dataclass(eq=False)
class ProcessTask:
    """Input ``image``; outputs as in the module docstring.

    ``pipeline`` is validated and prepared (models resolved) by the command; loaded
    networks are cached per worker in the context, never pickled.
    """

    pipeline: Any  # steinbock_like.process.config.Pipeline
    panel: pd.DataFrame
    data_dir: Path
    model_versions: dict[str, Any] = field(default_factory=dict)
    _context: Any = field(default=None, init=False, repr=False)

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_context"] = None
        return state

    def setup(self) -> None:
        from steinbock_like.process.registry import Context

        if self._context is None:
            self._context = Context(Path(self.data_dir))

    def versions(self) -> dict[str, Any]:
        return dict(self.model_versions)

    def __call__(self, job: Job) -> dict[str, Any]:
        from steinbock_like.io.images import read_image, write_image
        from steinbock_like.io.masks import write_mask
        from steinbock_like.io.panel import panel_for_image
        from steinbock_like.io.tables import write_neighbors, write_object_table
        from steinbock_like.process.pipeline import run_pipeline

        self.setup()
        path = job.inputs["image"]
        image = read_image(path)
        rows = panel_for_image(self.panel, image.shape[0], path)
        keep = rows["keep"].to_numpy(dtype=bool)
        image = image[keep]
        names = rows.loc[keep, "name"].astype(str).tolist()
        missing = [c for c in self.pipeline.channels if c not in names]
        if missing:
            raise InputError(
                path, f"channel {missing[0]!r} of the configuration is not in the image"
            )
        values = {name: image[names.index(name)] for name in self.pipeline.channels}
        info: dict[str, Any] = {}

        def on_output(name: str, kind: str, array: np.ndarray) -> None:
            if kind == "mask":
                write_mask(job.outputs[f"mask:{name}"], array)
                info[name] = int(np.count_nonzero(np.bincount(array.ravel())[1:]))
            else:
                write_image(job.outputs[f"img:{name}"], array)

        _, tables = run_pipeline(
            self.pipeline,
            values,
            self._context,
            on_output=on_output,
            image=image,
            channel_names=names,
        )
        for (kind, name), table in tables.items():
            target = job.outputs[f"{kind}:{name}"]
            if kind == "neighbors":
                write_neighbors(target, table)
            else:
                write_object_table(target, table)
        return info


def output_dirs(pipeline, resolve) -> dict[str, tuple[Path, str]]:
    """Job output key -> (directory, file suffix) for every kept output and table."""
    from steinbock_like.layout import MASK_SUFFIX

    outputs: dict[str, tuple[Path, str]] = {}
    for name, kind in pipeline.kept():
        if kind == "mask":
            outputs[f"mask:{name}"] = (resolve(f"masks_{name}"), MASK_SUFFIX)
        else:
            outputs[f"img:{name}"] = (resolve(f"img_{name}"), MASK_SUFFIX)
    for entry in pipeline.quantify:
        for kind in ("intensities", "regionprops", "neighbors"):
            if getattr(entry, kind) is not None:
                outputs[f"{kind}:{entry.name}"] = (resolve(f"{kind}_{entry.name}"), ".csv")
    return outputs
