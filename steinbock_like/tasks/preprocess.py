"""Preprocess tasks: one IMC acquisition, or one external image, to a float32 CYX TIFF."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from steinbock_like.errors import InputError
from steinbock_like.runner import Job

logger = logging.getLogger("steinbock_like")


@dataclass
class ImcImageTask:
    """Inputs ``mcd`` (or a lone ``txt``) and optional ``recovery`` (the acquisition's
    ``.txt`` file); output ``image``. Params: ``acquisition_id`` (None for a lone
    ``.txt``), ``source_readable`` (False: the ``.mcd`` is known to be unreadable) and
    ``info`` (the planned images.csv row). Returns the image's images.csv row.

    An acquisition that cannot be read from the ``.mcd`` file is read from its
    ``.txt`` file (``recovered`` is then True); without one it fails, naming the file.
    """

    channels: list[str] | None = None
    hpf: float | None = None
    strict: bool = True
    _reader: Any = field(default=None, repr=False, compare=False)

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_reader"] = None  # an open file does not travel to worker processes
        return state

    def __call__(self, job: Job) -> dict:
        import numpy as np

        from steinbock_like.io.images import write_image
        from steinbock_like.io.imc import McdReader, read_txt
        from steinbock_like.preprocess.hotpixels import filter_hot_pixels
        from steinbock_like.preprocess.imc import complete_info

        if "error" in job.params:  # an unreadable .mcd file without .txt files
            raise InputError(job.inputs["mcd"], job.params["error"])
        acquisition_id = job.params.get("acquisition_id")
        recovery = job.inputs.get("recovery")
        recovered = False
        if "txt" in job.inputs:  # a lone .txt file
            image = read_txt(job.inputs["txt"], self.channels, strict=self.strict)
        elif not job.params.get("source_readable", True):
            image = read_txt(recovery, self.channels, strict=self.strict)
            recovered = True
        else:
            if self._reader is None:
                self._reader = McdReader()
            try:
                image = self._reader.read(
                    job.inputs["mcd"], acquisition_id, self.channels, strict=self.strict
                )
            except InputError as error:
                if recovery is None:
                    raise InputError(
                        job.inputs["mcd"], f"{error.problem}; no .txt file to recover it from"
                    ) from error
                logger.warning("%s; recovering from %s", error, recovery)
                image = read_txt(recovery, self.channels, strict=self.strict)
                recovered = True
        image = np.asarray(image, dtype=np.float32)
        if self.hpf is not None:
            filter_hot_pixels(image, self.hpf, out=image)
        write_image(job.outputs["image"], image)
        return complete_info(job.params["info"], image.shape, recovered)

    def versions(self) -> dict[str, str]:
        from steinbock_like.runner import package_versions

        return package_versions(["readimc"])


@dataclass
class ExternalImageTask:
    """Input ``image`` (any TIFF / OME-TIFF); output ``image`` (float32 CYX). Keeps the
    panel's ``channel`` numbers (1-based) in their order, if given. Returns the
    image's images.csv row."""

    channel_numbers: list[int] | None = None
    projection: str = "max"

    def __call__(self, job: Job) -> dict:
        import numpy as np

        from steinbock_like.io.external import read_external_image
        from steinbock_like.io.images import write_image
        from steinbock_like.preprocess.external import to_cyx

        source = job.inputs["image"]
        external = read_external_image(source)
        try:
            image = to_cyx(external.array, external.axes, projection=self.projection)
        except ValueError as error:
            raise InputError(source, str(error)) from error
        if self.channel_numbers is not None:
            too_high = [n for n in self.channel_numbers if not 1 <= n <= image.shape[0]]
            if too_high:
                raise InputError(
                    source,
                    f"the panel lists channel {too_high[0]} but the image has {image.shape[0]}",
                )
            image = image[[n - 1 for n in self.channel_numbers]]
        image = image.astype(np.float32, copy=False)
        write_image(job.outputs["image"], image)
        return {
            "image": job.outputs["image"].name,
            "width_px": int(image.shape[2]),
            "height_px": int(image.shape[1]),
            "num_channels": int(image.shape[0]),
        }
