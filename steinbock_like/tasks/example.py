"""Example-data task: write one synthetic image and its ground-truth masks."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from steinbock_like.example import write_example_image
from steinbock_like.runner import Job


@dataclass
class ExampleImageTask:
    """Job params: ``index`` (0-based image number). Returns the image's cell count."""

    root: Path
    size: int
    channels: int
    seed: int

    def __call__(self, job: Job) -> dict:
        cells = write_example_image(
            self.root, job.params["index"], size=self.size, channels=self.channels, seed=self.seed
        )
        return {"cells": cells}
