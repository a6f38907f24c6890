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
    #: deep-watershed parameters (WatershedParams) per compartment; None: Mesmer's defaults
    postprocess: dict | None = None
    #: pre-processing parameters of MesmerSegmenter (percentile, kernel_size); None: defaults
    preprocess: dict | None = None
    _segmenter: object = field(default=None, init=False, repr=False)

    def setup(self) -> None:
        from steinbock_like.segment.mesmer import MesmerSegmenter

        self._segmenter = MesmerSegmenter(
            self.model_path,
            threads=self.threads,
            chunk_size=self.chunk_size,
            **{
                f"{name.replace('-', '_')}_params": value
                for name, value in (self.postprocess or {}).items()
            },
            **(self.preprocess or {}),
        )

    def __call__(self, job: Job) -> dict:
        from steinbock_like.io.images import check_segmentable, image_shape, read_image
        from steinbock_like.io.masks import write_mask
        from steinbock_like.io.panel import panel_for_image
        from steinbock_like.segment.mesmer import mesmer_input

        path = job.inputs["image"]
        check_segmentable(path, image_shape(path))
        if self._segmenter is None:
            self.setup()
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
            label=job.name,
        )
        info = {}
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
