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
    raw: bool = False  # also write raw/{name}.txt (IMC .txt format)

    def __call__(self, job: Job) -> dict:
        cells = write_example_image(
            self.root, job.params["index"], size=self.size, channels=self.channels, seed=self.seed
        )
        if self.raw:
            write_example_raw_txt(self.root, job.name, self.channels)
        return {"cells": cells}


def write_example_raw_txt(root: Path, name: str, channels: int) -> None:
    """Write img/{name}.tiff again as raw/{name}.txt, an IMC .txt acquisition."""
    from steinbock_like import layout
    from steinbock_like.example import select_markers
    from steinbock_like.io.images import read_image
    from steinbock_like.io.imc import write_imc_txt

    markers = select_markers(channels)
    image = read_image(root / layout.IMG / f"{name}.tiff")
    write_imc_txt(
        root / layout.RAW / f"{name}.txt",
        image,
        [m.channel for m in markers],
        [m.name for m in markers],
    )
