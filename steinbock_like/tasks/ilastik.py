"""ilastik tasks: prepare images and crops, classify pixels natively or with real ilastik."""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from steinbock_like.errors import MissingToolError, SteinbockLikeError
from steinbock_like.runner import Job, JobResult


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

    classifier: object  # steinbock_like.classify.ilastik.native.PixelClassifier
    tile_size: int

    def __call__(self, job: Job) -> dict:
        from steinbock_like.io.ilastik import read_ilastik_image
        from steinbock_like.io.probabilities import write_probabilities

        image = read_ilastik_image(job.inputs["image"])
        probabilities = self.classifier.predict(image, tile_size=self.tile_size, dtype="uint16")
        write_probabilities(job.outputs["probabilities"], probabilities)
        return {"shape": list(probabilities.shape)}

    def versions(self) -> dict:
        return {"backend": "native"}


@dataclass
class IlastikExecutor:
    """Runs a whole batch in one headless ilastik process (its start-up takes many seconds).

    Plugs into the shared runner as an executor, so overwrite/resume and the run
    metadata work as for every other command.
    """

    project: Path
    binary: str | None = None
    threads: int | None = None
    memory_mb: int | None = None

    def run(self, task, jobs: Sequence[Job]) -> Iterator[JobResult]:
        from steinbock_like.classify.ilastik.binary import run_ilastik

        if not jobs:
            return
        start = time.perf_counter()
        output_dir = jobs[0].outputs["probabilities"].parent
        try:
            run_ilastik(
                self.project,
                [job.inputs["image"] for job in jobs],
                output_dir,
                binary=self.binary,
                threads=self.threads,
                memory_mb=self.memory_mb,
            )
            error = None
        except MissingToolError:
            raise
        except SteinbockLikeError as failure:
            error = str(failure)
        seconds = (time.perf_counter() - start) / len(jobs)
        for job in jobs:
            if job.outputs["probabilities"].is_file():
                yield JobResult(job.name, "ok", seconds, info={"backend": "ilastik"})
            else:
                yield JobResult(job.name, "failed", seconds, error=error or "no output written")
