"""CellProfiler 4 pipeline text (``.cppipe``, format "Version:5"): parse and format.

The format is a header of ``key:value`` lines followed by one block per module::

    ModuleName:[module_num:1|svn_version:'Unknown'|variable_revision_number:N|...|enabled:True|...]
        Setting label:value
        ...

CellProfiler matches a module's settings by *position* for its revision number; the labels
are for people. Modules are therefore kept as an ordered list of (label, value) pairs looked
up by label (labels that repeat, such as ColorToGray's "Name the output image", are looked up
by occurrence), and written back in the same order.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from pathlib import Path

from steinbock_like.errors import InputError, SteinbockLikeError
from steinbock_like.io.atomic import write_text_atomic

PIPELINE_HEADER = "CellProfiler Pipeline: http://www.cellprofiler.org"
PIPELINE_VERSION = 5
DATE_REVISION = 428


@dataclasses.dataclass
class PipelineModule:
    """One module block of a .cppipe file.

    Attributes
    ----------
    name : str
        CellProfiler's module name, e.g. "IdentifyPrimaryObjects".
    number : int
        ``module_num`` (1-based position).
    revision : int
        ``variable_revision_number``: the layout of the settings.
    enabled : bool
    settings : list of (label, value)
        In file order.
    notes : list of str
    """

    name: str
    number: int
    revision: int
    enabled: bool = True
    settings: list[tuple[str, str]] = dataclasses.field(default_factory=list)
    notes: list[str] = dataclasses.field(default_factory=list)

    def get(self, label: str, occurrence: int = 0, default: str | None = None) -> str:
        """The value of the ``occurrence``-th setting labelled ``label``."""
        found = [value for key, value in self.settings if key == label]
        if occurrence < len(found):
            return found[occurrence]
        if default is not None:
            return default
        raise SteinbockLikeError(
            f"pipeline module #{self.number} {self.name}: no setting {label!r}"
        )

    def set(self, label: str, value: str, occurrence: int = 0) -> None:
        """Change the value of the ``occurrence``-th setting labelled ``label``."""
        positions = [i for i, (key, _) in enumerate(self.settings) if key == label]
        if occurrence >= len(positions):
            raise SteinbockLikeError(
                f"pipeline module #{self.number} {self.name}: no setting {label!r}"
            )
        self.settings[positions[occurrence]] = (label, value)

    def values(self, label: str) -> list[str]:
        """All values of the settings labelled ``label``, in order."""
        return [value for key, value in self.settings if key == label]

    def describe(self) -> str:
        return f"module #{self.number} {self.name}"


_MODULE_HEADER = re.compile(r"^(?P<name>[A-Za-z0-9_]+):\[(?P<attributes>.*)\]\s*$")


def _header_attribute(attributes: str, key: str) -> str | None:
    match = re.search(rf"(?:^|\|){key}:([^|]*)", attributes)
    return match.group(1) if match else None


def read_pipeline(text: str) -> list[PipelineModule]:
    """Parse CellProfiler pipeline text (format version 5, CellProfiler 4.x).

    Returns
    -------
    list of PipelineModule
        In pipeline order, with every setting as (label, value) in file order.

    Raises
    ------
    SteinbockLikeError
        If the text is not a CellProfiler 4 pipeline.
    """
    lines = text.splitlines()
    if not lines or not lines[0].startswith("CellProfiler Pipeline"):
        raise SteinbockLikeError("not a CellProfiler pipeline: the first line should be "
                                 f"{PIPELINE_HEADER!r}")  # fmt: skip
    modules: list[PipelineModule] = []
    version = None
    for line_number, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        if line.startswith((" ", "\t")):
            if not modules:
                raise SteinbockLikeError(f"pipeline line {line_number}: setting before a module")
            label, _, value = line.strip().partition(":")
            modules[-1].settings.append((":" if not label and not value else label, value))
            continue
        match = _MODULE_HEADER.match(line)
        if match and "module_num:" in match.group("attributes"):
            attributes = match.group("attributes")
            revision = _header_attribute(attributes, "variable_revision_number")
            number = _header_attribute(attributes, "module_num")
            enabled = _header_attribute(attributes, "enabled")
            notes = re.findall(r"'((?:[^'\\]|\\.)*)'", _header_attribute(attributes, "notes") or "")
            modules.append(
                PipelineModule(
                    name=match.group("name"),
                    number=int(number) if number else len(modules) + 1,
                    revision=int(revision) if revision else 0,
                    enabled=(enabled or "True").strip() == "True",
                    notes=notes,
                )
            )
            continue
        key, _, value = line.partition(":")
        if key == "Version":
            version = int(value)
    if version is not None and version < 5:
        raise SteinbockLikeError(
            f"pipeline format version {version} is too old: open and save it in CellProfiler 4"
        )
    if not modules:
        raise SteinbockLikeError("the pipeline has no modules")
    return modules


def _module_header(module: PipelineModule) -> str:
    notes = "[" + ", ".join(repr(note) for note in module.notes) + "]"
    return (
        f"{module.name}:[module_num:{module.number}|svn_version:'Unknown'|"
        f"variable_revision_number:{module.revision}|show_window:False|notes:{notes}|"
        f"batch_state:array([], dtype=uint8)|enabled:{module.enabled}|wants_pause:False]"
    )


def format_pipeline(modules: Sequence[PipelineModule]) -> str:
    """Serialise modules as CellProfiler 4.2 pipeline text."""
    lines = [
        PIPELINE_HEADER,
        f"Version:{PIPELINE_VERSION}",
        f"DateRevision:{DATE_REVISION}",
        "GitHash:",
        f"ModuleCount:{len(modules)}",
        "HasImagePlaneDetails:False",
    ]
    for module in modules:
        lines.append("")
        lines.append(_module_header(module))
        for label, value in module.settings:
            # The Images module's first setting is a bare ":" (an empty label and value).
            lines.append(f"    {label}" if label == ":" else f"    {label}:{value}")
    return "\n".join(lines) + "\n"


def read_pipeline_file(path: str | Path) -> str:
    """A pipeline file's text, checked to be a CellProfiler 4 pipeline.

    Raises
    ------
    InputError
        If the file is missing or is not a CellProfiler 4 pipeline.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(
            path,
            "pipeline not found (write one with 'steinbock-like segment cellprofiler prepare')",
        )
    text = path.read_text(encoding="utf-8", errors="replace")
    try:
        read_pipeline(text)
    except SteinbockLikeError as error:
        raise InputError(path, str(error)) from error
    return text


def write_pipeline_file(path: str | Path, text: str) -> None:
    """Write pipeline text atomically."""
    write_text_atomic(path, text)
