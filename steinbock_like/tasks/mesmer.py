"""Mesmer task: one image -> whole-cell (and nuclear) masks."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from steinbock_like.runner import Job

#: Rows per band when a large image's channels are streamed (None: about 16 Mi pixels).
STREAM_BAND_ROWS: int | None = None


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
        from steinbock_like.tiles import count_labels

        if self._segmenter is None:
            self.setup()
        path = job.inputs["image"]
        check_segmentable(path, image_shape(path))
        scratch = self._streamed_input(path)
        if scratch is not None:  # a large image: its two channels wait on disk, not in memory
            with scratch:
                masks = self._segmenter.segment_tiled(scratch, **self._segment_options(job))
        else:
            image = read_image(path)
            rows = panel_for_image(self.panel, image.shape[0], path)
            nuclear, membrane = mesmer_input(
                image, rows, minmax=self.minmax, zscore=self.zscore, aggr=self.aggr
            )
            del image
            masks = self._segmenter.segment(nuclear, membrane, **self._segment_options(job))
            del nuclear, membrane
        info = {}
        if self._segmenter.tiling is not None:
            info.update(self._segmenter.tiling.as_dict())
        for key, compartment in (("cells", "whole-cell"), ("nuclei", "nuclear")):
            if key in job.outputs:
                write_mask(job.outputs[key], masks[compartment])
                info[key] = count_labels(masks[compartment])
        return info

    def _segment_options(self, job: Job) -> dict:
        return {
            "pixel_size_um": self.pixel_size_um,
            "compartment": self.compartment,
            "min_signal": self.tile_min_signal,
            "distribute": True,  # tiles of a large image over the dask workers, if on dask
            "label": job.name,
        }

    def _streamed_input(self, path: Path):
        """Mesmer's two channels of an image to be tiled, read band by band.

        Returns a :class:`~steinbock_like.io.scratch.ScratchImage` holding the
        same values as :func:`mesmer_input` on the whole image (min-max scaling
        from per-channel extremes found in a first pass), so that neither the
        image nor the two channels are ever held whole; None where the image is
        small enough to read whole, or for ``zscore`` (not streamed).
        """
        from steinbock_like.io.blocks import ChannelBands
        from steinbock_like.io.images import image_shape
        from steinbock_like.io.panel import panel_for_image
        from steinbock_like.io.scratch import ScratchImage
        from steinbock_like.segment.mesmer.inputs import AGGREGATIONS, _panel_groups

        num_channels, height, width = image_shape(path)
        if self.zscore or self.chunk_size <= 0 or max(height, width) <= self.chunk_size:
            return None
        groups = _panel_groups(panel_for_image(self.panel, num_channels, path))
        labels = np.unique(groups[~np.isnan(groups)])
        if len(groups) != num_channels or len(labels) != 2 or self.aggr not in AGGREGATIONS:
            return None  # the whole-image path names the problem
        members = [np.flatnonzero(groups == label) for label in labels]
        with ChannelBands(path) as reader:
            lows, spans = {}, {}
            if self.minmax:
                for channel in np.concatenate(members):
                    low, high = np.float32(np.inf), np.float32(-np.inf)
                    for _, band in reader.bands(int(channel), min_rows=STREAM_BAND_ROWS):
                        low = min(low, np.nanmin(band))
                        high = max(high, np.nanmax(band))
                    lows[channel], spans[channel] = np.float32(low), np.float32(high - low)
            scratch = ScratchImage(len(labels), height, width)
            aggregate = AGGREGATIONS[self.aggr]
            try:
                for output, channels in enumerate(members):
                    readers = [
                        reader.bands(int(channel), min_rows=STREAM_BAND_ROWS)
                        for channel in channels
                    ]
                    for bands in zip(*readers, strict=True):
                        start = bands[0][0]
                        if any(first != start for first, _ in bands):
                            scratch.close()
                            return None  # channels stored in different strips
                        stack = np.stack([band for _, band in bands]).astype(np.float32)
                        if self.minmax:
                            for index, channel in enumerate(channels):
                                stack[index] -= lows[channel]
                                if spans[channel] > 0:
                                    stack[index] /= spans[channel]
                        scratch.write_rows(output, start, aggregate(stack, axis=0))
            except BaseException:
                scratch.close()
                raise
        return scratch

    def versions(self) -> dict:
        from importlib.metadata import version

        from steinbock_like.models import sha256_of_file

        return {
            "onnxruntime": version("onnxruntime"),
            "mesmer_model": str(self.model_path),
            "mesmer_model_sha256": sha256_of_file(self.model_path),
        }
