"""Evaluate task: score one image's masks against its reference masks."""

from __future__ import annotations

from dataclasses import dataclass

from steinbock_like.io.masks import read_mask
from steinbock_like.metrics import score_masks
from steinbock_like.runner import Job


@dataclass
class EvaluateTask:
    """Inputs ``truth`` and ``masks``; no outputs. Returns the image's scores."""

    iou: float = 0.5

    def __call__(self, job: Job) -> dict:
        truth = read_mask(job.inputs["truth"])
        masks = read_mask(job.inputs["masks"], shape=truth.shape)
        return score_masks(truth, masks, self.iou)
