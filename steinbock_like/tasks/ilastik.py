"""ilastik tasks: prepare images and crops, classify pixels natively or with real ilastik."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from steinbock_like.errors import SteinbockLikeError
from steinbock_like.runner import ExternalToolExecutor, Job


@dataclass
class PrepareTask:
    """Write ``{image}.h5`` (outputs ``image``) and its crop (outputs ``crop``, params ``crop``)."""

    panel: pd.DataFrame | None
    cropsize: int
    aggr: str
    mean: bool
    meanfactor: float
    scale: int

    def __call__(self, job: Job) -> dict:
        from steinbock_like.classify.ilastik.prepare import write_prepared_image

        crop_path = job.outputs.get("crop")
        _, written_crop = write_prepared_image(
            job.inputs["image"],
            self.panel,
            job.outputs["image"].parent,
            crop_path.parent if crop_path else None,
            job.params.get("crop"),
            cropsize=self.cropsize,
            aggr=self.aggr,
            mean=self.mean,
            meanfactor=self.meanfactor,
            scale=self.scale,
        )
        if crop_path is not None and written_crop != crop_path:
            raise SteinbockLikeError(f"crop written as {written_crop}, expected {crop_path}")
        return {"crop": job.params.get("crop")}


@dataclass
class NativeClassifyTask:
    """Classify one ilastik image (input ``image``) into probabilities (output ``probabilities``).

    The classifier is loaded (or trained) once by the command and sent to each
    worker with the task.
    """

    classifier: object  # steinbock_like.classify.ilastik.classifier.PixelClassifier
    tile_size: int

    def __call__(self, job: Job) -> dict:
        from steinbock_like.classify.ilastik.classifier import predict_image_file
        from steinbock_like.io.probabilities import write_probabilities

        # Read tile by tile from the HDF5 file: memory does not grow with the image; on a
        # dask cluster the tiles are spread over its workers.
        workers_seen: set[str] = set()
        probabilities = predict_image_file(
            self.classifier,
            job.inputs["image"],
            tile_size=self.tile_size,
            distribute=True,
            workers_seen=workers_seen,
        )
        write_probabilities(job.outputs["probabilities"], probabilities)
        info = {"shape": list(probabilities.shape)}
        if workers_seen:
            info["tile_workers"] = len(workers_seen)
        return info

    def versions(self) -> dict:
        return {"backend": "native"}


def ilastik_executor(
    project: Path, binary: Path | None, threads: int | None, memory_mb: int | None
) -> ExternalToolExecutor:
    """One headless ilastik process for the whole batch (its start-up takes many seconds)."""
    from steinbock_like.classify.ilastik.binary import run_ilastik

    run_tool = functools.partial(
        run_ilastik, project, binary=binary, threads=threads, memory_mb=memory_mb
    )
    return ExternalToolExecutor.for_files(run_tool, "ilastik", "image", "probabilities")
