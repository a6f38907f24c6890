"""External tools (ilastik, CellProfiler): where they are found and which backend runs a step.

A tool is looked for, in this order: the command-line option (``--python``,
``--ilastik``), its environment variable, where this project's own scripts install it
(``scripts/install_cellprofiler.sh`` puts CellProfiler into ``.venv-cellprofiler`` of
the checkout), on ``PATH``, and finally where the container image has it (``/opt``).
An explicit setting always wins over discovery; the first candidate that exists is used.

:func:`optional_components` lists every optional tool, Python package and model with
whether it was found and how to get it (``steinbock-like doctor``).
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

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


def checkout_roots() -> list[Path]:
    """Folders where our scripts may have installed tools: the checkout this package
    runs from (editable installs) and the current directory."""
    roots = [Path(__file__).resolve().parents[1], Path.cwd()]
    unique: list[Path] = []
    for root in roots:
        if root not in unique:
            unique.append(root)
    return unique


def script_interpreter(script: str | Path) -> Path | None:
    """The interpreter named on a script's ``#!`` line (console scripts of a venv)."""
    try:
        with open(script, "rb") as stream:
            first = stream.readline(512).decode("utf-8", "replace").strip()
    except OSError:
        return None
    if not first.startswith("#!"):
        return None
    words = first[2:].split()
    if not words:
        return None
    if Path(words[0]).name == "env" and len(words) > 1:
        found = shutil.which(words[1])
        return Path(found) if found else None
    return Path(words[0])


@dataclass(frozen=True)
class Candidate:
    """One place a tool may be: a path (None where that source gives none) and its origin."""

    path: Path | None
    source: str


def first_found(
    candidates: Iterable[Candidate], usable: Callable[[Path], bool]
) -> tuple[Candidate | None, list[Candidate]]:
    """The first candidate whose path is usable, and every candidate that was tried."""
    tried = []
    for candidate in candidates:
        if candidate.path is None:
            continue
        tried.append(candidate)
        if usable(candidate.path):
            return candidate, tried
    return None, tried


def is_executable(path: Path) -> bool:
    return path.is_file() and os.access(path, os.X_OK)


def which(name: str) -> Path | None:
    found = shutil.which(name)
    return Path(found) if found else None


def describe_tried(tried: Iterable[Candidate]) -> str:
    return ", ".join(f"{c.path} ({c.source})" for c in tried)


# --------------------------------------------------------------------------------------------
# steinbock-like doctor


@dataclass(frozen=True)
class Component:
    """An optional part of the toolkit, found or not.

    Attributes
    ----------
    kind : str
        "tool", "package" or "model".
    name : str
    found : bool
    detail : str
        Where it was found (and how), or why not.
    how_to_get : str
        The command that provides it.
    """

    kind: str
    name: str
    found: bool
    detail: str
    how_to_get: str


PACKAGES = (
    ("onnxruntime", "segment mesmer", "pip install 'steinbock-like[mesmer]'"),
    ("cellpose", "segment cellpose", "pip install 'steinbock-like[cellpose]'"),
    ("napari", "apps napari", "pip install 'steinbock-like[apps]'"),
)


def _tool_components() -> list[Component]:
    from steinbock_like.classify.ilastik.binary import locate_ilastik
    from steinbock_like.segment.cellprofiler.binary import locate_cellprofiler

    rows = []
    for name, finder, how in (
        ("CellProfiler", locate_cellprofiler, "bash scripts/install_cellprofiler.sh"),
        (
            "ilastik",
            locate_ilastik,
            "install ilastik 1.4 (ilastik.org) and set ILASTIK_BINARY to its run_ilastik.sh",
        ),
    ):
        try:
            found = finder(None)
        except MissingToolError as error:
            rows.append(Component("tool", name, False, str(error), how))
        else:
            rows.append(Component("tool", name, True, f"{found.path} ({found.source})", how))
    return rows


def _package_components() -> list[Component]:
    import importlib.util

    rows = []
    for module, used_by, how in PACKAGES:
        spec = importlib.util.find_spec(module)
        detail = f"{spec.origin} (for {used_by})" if spec else f"not installed (for {used_by})"
        rows.append(Component("package", module, spec is not None, detail, how))
    return rows


def _model_components() -> list[Component]:
    from steinbock_like.models import MODEL_REGISTRY, cached_model_path, model_state

    rows = []
    for name in sorted(MODEL_REGISTRY):
        state = model_state(name)
        path = cached_model_path(name)
        force = " --force" if state == "modified" else ""
        rows.append(
            Component(
                "model",
                name,
                state in ("cached", "unpinned"),
                f"{state}: {path}",
                f"steinbock-like models get {name}{force}",
            )
        )
    return rows


def optional_components() -> list[Component]:
    """Every optional tool, Python package and model, found or not, and how to get it."""
    return _tool_components() + _package_components() + _model_components()
