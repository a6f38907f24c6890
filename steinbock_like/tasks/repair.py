"""Repair task: match the cells and nuclei of one image and write the matched masks."""

from __future__ import annotations

from dataclasses import dataclass

from steinbock_like.errors import InputError
from steinbock_like.io.masks import read_mask, write_mask
from steinbock_like.repair import repair_masks
from steinbock_like.runner import Job


@dataclass
class RepairTask:
    """Inputs ``cells``, ``nuclei``; outputs ``cells``, ``nuclei``, ``cytoplasm``, optional
    ``boundaries``. Returns the image's repair metrics."""

    boundary: str = "inner"
    trim: bool = True

    def __call__(self, job: Job) -> dict:
        cells = read_mask(job.inputs["cells"])
        nuclei = read_mask(job.inputs["nuclei"])
        if nuclei.shape != cells.shape:
            raise InputError(
                job.inputs["nuclei"],
                f"nuclear mask shape {nuclei.shape} differs from the cell mask's {cells.shape}",
            )
        result = repair_masks(cells, nuclei, boundary=self.boundary, trim=self.trim)
        write_mask(job.outputs["cells"], result.cells)
        write_mask(job.outputs["nuclei"], result.nuclei)
        write_mask(job.outputs["cytoplasm"], result.cytoplasm)
        if "boundaries" in job.outputs:
            write_mask(job.outputs["boundaries"], result.boundaries())
        return dict(result.metrics)
