"""CellProfiler segmentation tasks: probabilities -> cell masks, natively or with CellProfiler."""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from pathlib import Path

from steinbock_like.runner import ExternalToolExecutor, Job

#: Probability images larger than this (pixels, either side) are segmented in tiles
#: (the CLI's --tile-size default; steinbock_like.segment.cellprofiler.tiled).
DEFAULT_TILE_SIZE = 4096


@dataclass
class NativeCellProfilerTask:
    """Segment one probability image (input ``probabilities``) into a mask (output ``mask``)
    with the pipeline's modules run natively.

    Images larger than ``tile_size`` (either side; 0: never) are segmented in overlapping
    tiles (:mod:`steinbock_like.segment.cellprofiler.tiled`), spread over the dask
    workers when the job runs on dask.
    """

    pipeline_text: str
    tile_size: int = DEFAULT_TILE_SIZE

    def setup(self) -> None:
        from steinbock_like.segment.cellprofiler.translate import native_steps

        self._steps = native_steps(self.pipeline_text)

    def __call__(self, job: Job) -> dict:
        from steinbock_like.io import probabilities as probabilities_io
        from steinbock_like.io.masks import write_mask
        from steinbock_like.segment.cellprofiler.native import run_steps
        from steinbock_like.segment.cellprofiler.translate import (
            check_mask_shape,
            expected_mask_shape,
        )
        from steinbock_like.tiles import count_labels

        if getattr(self, "_steps", None) is None:
            self.setup()
        path = job.inputs["probabilities"]
        shape = probabilities_io.probabilities_shape(path)
        info = {}
        if self._tiled(shape, job.name):
            from steinbock_like.segment.cellprofiler.tiled import run_steps_tiled

            # tiles are read from the file (or a scratch copy): never held whole
            with probabilities_io.probability_regions(path) as source:
                mask, tiling = run_steps_tiled(
                    source,
                    self._steps,
                    tile_size=self.tile_size,
                    distribute=True,
                    label=job.name,
                )
            info.update(tiling.as_dict())
        else:
            mask = run_steps(probabilities_io.read_probabilities(path), self._steps)
        expected = expected_mask_shape(shape, self.pipeline_text)
        check_mask_shape(mask.shape, expected, job.inputs["probabilities"])
        write_mask(job.outputs["mask"], mask)
        return {"objects": count_labels(mask), **info}

    def _tiled(self, shape: tuple[int, ...], name: str) -> bool:
        if self.tile_size <= 0 or max(shape[:2]) <= self.tile_size:
            return False
        from steinbock_like.segment.cellprofiler.tiled import tiling_blockers

        blockers = tiling_blockers(self._steps)
        if blockers:
            logging.getLogger("steinbock_like").info(
                "%s: segmented whole, not in tiles: %s", name, "; ".join(blockers)
            )
        return not blockers

    def versions(self) -> dict:
        return {"backend": "native"}


def cellprofiler_executor(
    pipeline: Path, python: str | None, plugins_dir: Path | None
) -> ExternalToolExecutor:
    """One headless CellProfiler run for the whole batch, in CellProfiler's own interpreter."""
    from steinbock_like.segment.cellprofiler.binary import run_cellprofiler

    run_tool = functools.partial(run_cellprofiler, pipeline, python=python, plugins_dir=plugins_dir)
    executor = ExternalToolExecutor.for_files(run_tool, "cellprofiler", "probabilities", "mask")
    executor.check_job = functools.partial(_check_cellprofiler_mask, pipeline.read_text())
    return executor


def _check_cellprofiler_mask(pipeline_text: str, job: Job) -> None:
    """Fail an image whose mask CellProfiler made in another shape than the pipeline implies."""
    from steinbock_like.io.masks import read_mask
    from steinbock_like.io.tiff import tiff_shape
    from steinbock_like.segment.cellprofiler.translate import (
        check_mask_shape,
        expected_mask_shape,
    )

    expected = expected_mask_shape(tiff_shape(job.inputs["probabilities"]), pipeline_text)
    check_mask_shape(read_mask(job.outputs["mask"]).shape, expected, job.inputs["probabilities"])
