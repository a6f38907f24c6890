"""The panel's channel rows (``channel``, ``name``, ``keep``) without pandas.

Importing pandas costs about half a second of CPU, more than measuring a small
image; commands that need only the channel names and the ``keep`` flags
(``measure intensities``) read the panel with :func:`read_panel_rows`. A plain
panel (a header, then rows of as many fields) is parsed with the ``csv`` module
under the rules of :func:`steinbock_like.io.panel.read_panel`; anything else (a
problem to report, quoting, a byte-order mark, ragged rows) goes to
:func:`~steinbock_like.io.panel.read_panel` itself, so errors and odd files are
handled, and worded, in one place.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from steinbock_like.errors import InputError

_KEEP = {"1": True, "1.0": True, "True": True, "true": True, "": True}
_KEEP.update({"0": False, "0.0": False, "False": False, "false": False})
_GROUP_COLUMNS = ("ilastik", "deepcell", "cellpose")


@dataclass(frozen=True)
class PanelRows:
    """A panel's rows in image channel order: channel IDs, names and ``keep`` flags."""

    channel: tuple[str, ...]
    name: tuple[str, ...]
    keep: tuple[bool, ...]

    @classmethod
    def from_table(cls, panel) -> PanelRows:
        """From a panel DataFrame as :func:`~steinbock_like.io.panel.read_panel` returns."""
        return cls(
            tuple(str(c) for c in panel["channel"]),
            tuple(str(n) for n in panel["name"]),
            tuple(bool(k) for k in panel["keep"]),
        )

    def for_image(self, num_channels: int, image_path=None) -> PanelRows:
        """The rows describing an image's channels (the rule of
        :func:`~steinbock_like.io.panel.panel_for_image`: an image holds either the
        kept channels or all of them)."""
        kept = [i for i, k in enumerate(self.keep) if k]
        if num_channels == len(kept):
            return PanelRows(
                tuple(self.channel[i] for i in kept),
                tuple(self.name[i] for i in kept),
                tuple(True for _ in kept),
            )
        if num_channels == len(self.channel):
            return self
        raise InputError(
            image_path,
            f"image has {num_channels} channels but the panel lists {len(kept)} kept "
            f"({len(self.channel)} in all)",
        )


def read_panel_rows(path: str | Path) -> PanelRows:
    """Read a panel's channel rows (see the module docstring); errors as
    :func:`~steinbock_like.io.panel.read_panel` raises them."""
    rows = _plain_rows(Path(path))
    if rows is None:
        from steinbock_like.io.panel import read_panel

        return PanelRows.from_table(read_panel(path))
    return rows


def _plain_rows(path: Path) -> PanelRows | None:
    """The rows of a plain, valid panel; None for anything else."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    if text.startswith("\ufeff") or '"' in text or "\r" in text:
        return None
    lines = text.rstrip("\n").split("\n")
    if len(lines) < 2 or any(not line.strip() for line in lines):
        return None
    table = list(csv.reader(lines, skipinitialspace=True))
    header = [h.strip() for h in table[0]]
    if len(set(header)) != len(header) or "channel" not in header or "" in header:
        return None
    if any(len(row) != len(header) for row in table[1:]):
        return None
    columns = {h: [row[i].strip() for row in table[1:]] for i, h in enumerate(header)}
    channel = columns["channel"]
    if "" in channel or len(set(channel)) != len(channel):
        return None
    if any(k not in _KEEP for k in columns.get("keep", ())):
        return None
    keep = [_KEEP[k] for k in columns["keep"]] if "keep" in columns else [True] * len(channel)
    name = columns.get("name", channel)
    if any(k and not n for k, n in zip(keep, name, strict=True)):
        return None
    named = [n for n in name if n]
    if len(set(named)) != len(named):
        return None
    for group in _GROUP_COLUMNS:
        for value in columns.get(group, ()):
            if value and value.lower() != "nan":
                try:
                    float(value)
                except ValueError:
                    return None
                if "_" in value:  # Python reads 1_0 as 10, pandas does not
                    return None
    return PanelRows(tuple(channel), tuple(name), tuple(keep))
