"""A task wrapper that makes a job's image URIs local files before the task runs.

Jobs built from an image list (``--images-from``) carry their URIs in
``job.params["sources"]`` (input key -> URI). :class:`SourcedTask` resolves them inside
the job, with :class:`~steinbock_like.io.remote.ImageCache` (download once, decode
JPEG/PNG), so that a failed download fails that image only and the batch goes on; then
it runs the command's own task on the local files.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from steinbock_like.errors import SteinbockLikeError
from steinbock_like.runner import Job

if TYPE_CHECKING:  # urllib and http are slow to import: only where images are listed
    from steinbock_like.io.remote import ImageCache

SOURCES = "sources"


@dataclass(eq=False)
class SourcedTask:
    """Run ``task`` on jobs whose inputs are URIs (picklable when ``task`` is).

    Parameters
    ----------
    task : callable
        The command's per-image task.
    cache : ImageCache
    """

    task: Callable
    cache: ImageCache

    def setup(self) -> None:
        setup = getattr(self.task, "setup", None)
        if callable(setup):
            setup()

    def versions(self) -> dict[str, str]:
        versions = getattr(self.task, "versions", None)
        return versions() if callable(versions) else {}

    def __call__(self, job: Job) -> dict[str, Any] | None:
        sources = job.params.get(SOURCES) or {}
        inputs = dict(job.inputs)
        record = {}
        for key, uri in sources.items():
            resolved = self.cache.resolve(uri)
            inputs[key] = resolved.path
            record[key] = {"uri": uri, "sha256": resolved.sha256}
        try:
            info = self.task(dataclasses.replace(job, inputs=inputs)) or {}
        except SteinbockLikeError as error:
            # name the image by its URI, not by the cache file the task read
            message = str(error)
            for key, entry in record.items():
                message = message.replace(str(inputs[key]), entry["uri"])
            if message == str(error):
                raise
            raise SteinbockLikeError(message) from error
        return {**info, SOURCES: record} if record else info


def has_sources(jobs: list[Job]) -> bool:
    return any(job.params.get(SOURCES) for job in jobs)
