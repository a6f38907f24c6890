"""Mesmer task: one image -> whole-cell (and nuclear) masks."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from steinbock_like.runner import Job


@dataclass
class MesmerTask:
    """Input ``image``; outputs ``cells`` and/or ``nuclei``. The ONNX session is created
    once per worker (``setup``)."""

    model_path: Path
    panel: pd.DataFrame
    compartment: str
    pixel_size_um: float
    minmax: bool
    zscore: bool
    aggr: str
    threads: int | None
    chunk_size: int
    tile_min_signal: float = 0.0
    _segmenter: object = field(default=None, init=False, repr=False)

    def setup(self) -> None:
        from steinbock_like.segment.mesmer import MesmerSegmenter

        self._segmenter = MesmerSegmenter(
            self.model_path, threads=self.threads, chunk_size=self.chunk_size
        )

    def __call__(self, job: Job) -> dict:
        from steinbock_like.io.images import read_image
        from steinbock_like.io.masks import write_mask
        from steinbock_like.io.panel import panel_for_image
        from steinbock_like.segment.mesmer import mesmer_input

        if self._segmenter is None:
            self.setup()
        path = job.inputs["image"]
        image = read_image(path)
        rows = panel_for_image(self.panel, image.shape[0], path)
        nuclear, membrane = mesmer_input(
            image, rows, minmax=self.minmax, zscore=self.zscore, aggr=self.aggr
        )
        del image
        masks = self._segmenter.segment(
            nuclear,
            membrane,
            pixel_size_um=self.pixel_size_um,
            compartment=self.compartment,
            min_signal=self.tile_min_signal,
            distribute=True,  # tiles of a large image over the dask workers, if on dask
        )
        info = {}
        if self._segmenter.tiling is not None:
            info.update(self._segmenter.tiling.as_dict())
        for key, compartment in (("cells", "whole-cell"), ("nuclei", "nuclear")):
            if key in job.outputs:
                write_mask(job.outputs[key], masks[compartment])
                info[key] = int(np.count_nonzero(np.unique(masks[compartment])))
        return info

    def versions(self) -> dict:
        from importlib.metadata import version

        from steinbock_like.models import sha256_of_file

        return {
            "onnxruntime": version("onnxruntime"),
            "mesmer_model": str(self.model_path),
            "mesmer_model_sha256": sha256_of_file(self.model_path),
        }
