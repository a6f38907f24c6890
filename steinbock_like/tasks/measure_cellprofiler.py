"""``measure cellprofiler prepare``'s per-image task: image + mask -> CellProfiler's input."""

from __future__ import annotations

from dataclasses import dataclass

from steinbock_like.runner import Job


@dataclass
class CellProfilerInputTask:
    """Inputs ``img``, ``mask``; outputs ``image`` and ``mask`` (16-bit ImageJ TIFFs).

    The image is converted one channel at a time (rounded, clipped to 0..65535).
    """

    num_channels: int

    def __call__(self, job: Job) -> dict:
        from steinbock_like.errors import InputError, SteinbockLikeError
        from steinbock_like.io.cellprofiler_input import (
            write_cellprofiler_image,
            write_cellprofiler_mask,
        )
        from steinbock_like.io.images import image_shape, iter_image_channels
        from steinbock_like.io.masks import read_mask
        from steinbock_like.measure.cellprofiler.inputs import (
            to_cellprofiler_channel,
            to_cellprofiler_mask,
        )

        img = job.inputs["img"]
        shape = image_shape(img)
        if shape[0] != self.num_channels:
            raise InputError(img, f"image has {shape[0]} channels, the others {self.num_channels}")
        try:
            mask = to_cellprofiler_mask(read_mask(job.inputs["mask"], shape=shape[1:]))
        except SteinbockLikeError as error:
            raise InputError(job.inputs["mask"], str(error)) from error
        channels = (to_cellprofiler_channel(channel) for _, channel in iter_image_channels(img))
        write_cellprofiler_image(job.outputs["image"], channels, shape)
        write_cellprofiler_mask(job.outputs["mask"], mask)
        return {"channels": shape[0]}
