"""The processor registry: every processor by name, with its inputs, outputs and parameters.

A processor is a small function on arrays, ``function(inputs, params, context)``:

* ``inputs`` maps each input role to a list of 2-D arrays (``"input"`` for a plain list);
* ``params`` holds the validated parameters, defaults filled in;
* ``context`` (a :class:`Context`) gives the data directory and a per-worker cache
  for loaded models;

and returns one array (single output), a list (one per input, ``per_input``) or a
dict role -> array (``roles`` outputs). Values are images (2-D float32) or masks
(2-D integer labels).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: Processor categories, in the order the documentation lists them.
CATEGORIES = ("image_enhancer", "object_segmenter", "mask_builder")
IMAGE, MASK = "image", "mask"

# Parameter types: name -> (description for documents and errors)
PARAM_TYPES = {
    "int": "an integer",
    "float": "a number",
    "bool": "true or false",
    "str": "a string",
    "path": "a file path",
    "choice": "one of",
    "float_or_auto": "a number or 'otsu'",
    "str_list": "a list of strings",
}


@dataclass(frozen=True)
class Param:
    """One parameter of a processor.

    ``option`` names the option of the corresponding command whose default this
    parameter shares (checked by the tests), e.g. ``"segment mesmer --pixelsize"``.
    """

    type: str
    default: Any
    help: str
    choices: tuple[str, ...] = ()
    minimum: float | None = None
    nullable: bool = False
    option: str | None = None


@dataclass(frozen=True)
class Role:
    """An input (or output) role of a processor: its kind and how many values it takes."""

    kind: str  # IMAGE or MASK
    required: bool = True
    min_count: int = 1
    max_count: int | None = None  # None: unbounded
    help: str = ""


@dataclass
class Context:
    """What a processor may use besides its arrays: the data directory and a model cache.

    ``cache`` lives as long as the worker process (models are loaded once);
    ``versions`` collects the version of every model used (for run_metadata.json).
    """

    data_dir: Path = Path(".")
    cache: dict[str, Any] = field(default_factory=dict)
    versions: dict[str, Any] = field(default_factory=dict)

    def path(self, value: str | Path) -> Path:
        from steinbock_like.layout import resolve

        return resolve(self.data_dir, value)


@dataclass(frozen=True)
class Processor:
    """A registered processor.

    Attributes
    ----------
    name, category : str
    function : callable
        ``function(inputs, params, context)``; see the module docstring.
    summary : str
        One-paragraph description for the documentation.
    inputs : dict of str to Role
        Input roles. A processor with the single role ``"input"`` takes a YAML list;
        others take a mapping role -> list of names.
    outputs : dict of str to Role or None
        None: one output named by a string (``per_input`` processors: a template with
        ``{input}`` giving one output per input). A dict: a mapping role -> name, at least
        one role given.
    params : dict of str to Param
    per_input : bool
        Applied to every input on its own (output template ``{input}``).
    prepare : callable, optional
        ``prepare(params, context) -> dict`` run once by the command before any image
        (e.g. resolve and check a model file); its result is merged into ``params``
        (keys starting with ``_`` are internal; ``_versions`` goes to the run metadata).
    check : callable, optional
        ``check(params, inputs) -> (key, problem) or None``: checks across parameters and
        inputs, reported at ``processors[i].KEY``.
    """

    name: str
    category: str
    function: Callable
    summary: str
    inputs: Mapping[str, Role]
    params: Mapping[str, Param] = field(default_factory=dict)
    outputs: Mapping[str, Role] | None = None
    output_kind: str = MASK
    per_input: bool = False
    prepare: Callable | None = None
    check: Callable | None = None

    @property
    def list_input(self) -> bool:
        return list(self.inputs) == ["input"]

    def defaults(self) -> dict[str, Any]:
        return {name: param.default for name, param in self.params.items()}


REGISTRY: dict[str, Processor] = {}


def register(
    name: str,
    category: str,
    *,
    inputs: Mapping[str, Role],
    params: Mapping[str, Param] | None = None,
    outputs: Mapping[str, Role] | None = None,
    output_kind: str = MASK,
    per_input: bool = False,
    prepare: Callable | None = None,
    check: Callable | None = None,
):
    """Decorator registering ``function`` as processor ``name``; its docstring's first
    paragraph is the summary in the documentation."""
    if category not in CATEGORIES:
        raise ValueError(f"unknown category {category!r}")

    def decorate(function: Callable) -> Callable:
        doc = (function.__doc__ or "").strip().split("\n\n")[0]
        REGISTRY[name] = Processor(
            name=name,
            category=category,
            function=function,
            summary=" ".join(line.strip() for line in doc.splitlines()),
            inputs=dict(inputs),
            params=dict(params or {}),
            outputs=None if outputs is None else dict(outputs),
            output_kind=output_kind,
            per_input=per_input,
            prepare=prepare,
            check=check,
        )
        return function

    return decorate


def load_registry() -> dict[str, Processor]:
    """Import every processor module (they register themselves) and return the registry."""
    from steinbock_like.process import enhancers, instanseg, masks, segmenters  # noqa: F401

    return REGISTRY


def processor_names(category: str | None = None) -> Sequence[str]:
    registry = load_registry()
    return [n for n, p in registry.items() if category is None or p.category == category]
