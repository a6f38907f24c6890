"""External tools (ilastik, CellProfiler): which backend runs a step."""

from __future__ import annotations

import logging
from collections.abc import Callable

from steinbock_like.errors import MissingToolError

logger = logging.getLogger(__name__)


def choose_backend(backend: str, tool: str, find_tool: Callable[[], object]) -> str:
    """``tool`` where ``find_tool()`` finds it, else ``"native"``, for ``--backend auto``.

    Any other ``backend`` is returned as given; ``find_tool`` raises
    :class:`~steinbock_like.errors.MissingToolError` when the tool is absent.
    """
    if backend != "auto":
        return backend
    try:
        find_tool()
    except MissingToolError:
        chosen = "native"
    else:
        chosen = tool
    logger.info("backend: %s (auto)", chosen)
    return chosen
