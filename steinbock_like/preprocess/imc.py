"""Which image comes from which IMC acquisition: names, recovery files, images.csv rows.

Pure functions on file names and acquisition metadata, following steinbock 0.16.5:
``.mcd`` files are visited in reverse order of their names, each acquisition's
``.txt`` file (``{mcd stem}..._{id}.txt``) is taken out of the candidates, and the
``.txt`` files left over become images of their own. Images are named
``{mcd stem}_{id:03d}`` (``{txt stem}`` for a lone ``.txt`` file); a name seen
before gets ``DUPLICATE{n:03d}_`` in front.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import PurePath
from typing import Any

from steinbock_like.io.imc import AcquisitionInfo


@dataclass
class PlannedImage:
    """One image to write: its name, where its pixels come from and its images.csv metadata."""

    name: str
    source: Any  # the .mcd (or lone .txt) file
    acquisition: AcquisitionInfo | None = None
    recovery: Any = None  # the acquisition's .txt file, if any
    source_readable: bool = True  # False: the .mcd could not be opened, read the .txt
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def file_name(self) -> str:
        return f"{self.name}.tiff"


def txt_pattern(mcd_stem: str, acquisition_id: int | None = None) -> re.Pattern:
    """The file names of an ``.mcd`` file's ``.txt`` files (of one acquisition if given)."""
    number = r"0*" + str(int(acquisition_id)) if acquisition_id is not None else r"(?P<id>[0-9]+)"
    return re.compile(re.escape(mcd_stem) + r".*_" + number + r"\.txt")


def match_txt(mcd_stem: str, acquisition_id: int, candidates: Sequence) -> Any | None:
    """The one candidate ``.txt`` file of an acquisition, or None (none, or ambiguous)."""
    pattern = txt_pattern(mcd_stem, acquisition_id)
    found = [c for c in candidates if pattern.fullmatch(PurePath(c).name)]
    return found[0] if len(found) == 1 else None


def plan_images(
    mcds: Sequence[tuple[Any, Sequence[AcquisitionInfo] | None]],
    txts: Sequence,
    *,
    channels: Sequence[str] | None = None,
    txt_channels: Callable[[Any], Sequence[str] | None] | None = None,
) -> tuple[list[PlannedImage], list[str]]:
    """Decide the images of a run.

    Parameters
    ----------
    mcds : sequence of (path, acquisitions or None)
        Each ``.mcd`` file with its acquisitions; None where the file could not be
        opened (its acquisitions are then found from its ``.txt`` files' names and
        read from them).
    txts : sequence of path
        Every ``.txt`` file, in listing order.
    channels : sequence of str, optional
        The channels to write (the panel's kept channels); an acquisition lacking
        one is left out with a note, as steinbock does.
    txt_channels : callable, optional
        ``txt_channels(path)`` gives a lone ``.txt`` file's channels (None if it
        cannot be read), to leave out those lacking a channel.

    Returns
    -------
    images : list of PlannedImage
        In steinbock's order.
    notes : list of str
        Warnings for the log (ambiguous or missing ``.txt`` files).
    """
    candidates = list(txts)
    images: list[PlannedImage] = []
    notes: list[str] = []
    for mcd, acquisitions in sorted(mcds, key=lambda item: PurePath(item[0]).stem, reverse=True):
        stem = PurePath(mcd).stem
        if acquisitions is None:
            pattern = txt_pattern(stem)
            found = []
            for candidate in candidates:
                match = pattern.fullmatch(PurePath(candidate).name)
                if match:
                    found.append((int(match.group("id")), candidate))
            ids = [i for i, _ in found]
            for acquisition_id, txt in sorted(found, key=lambda item: item[0]):
                if ids.count(acquisition_id) > 1:
                    notes.append(f"{mcd}: several .txt files for acquisition {acquisition_id}")
                    continue
                candidates.remove(txt)
                images.append(
                    PlannedImage(
                        f"{stem}_{acquisition_id:03d}",
                        mcd,
                        AcquisitionInfo(acquisition_id),
                        recovery=txt,
                        source_readable=False,
                    )
                )
            if not found:
                notes.append(f"{mcd}: unreadable and no .txt files to recover its acquisitions")
            continue
        for acquisition in acquisitions:
            txt = match_txt(stem, acquisition.id, candidates)
            if txt is not None:
                candidates.remove(txt)
            missing = _missing_channel(acquisition.channels, channels)
            if missing is not None:
                notes.append(
                    f"{mcd}: acquisition {acquisition.id} has no channel {missing}; skipped"
                )
                continue
            images.append(
                PlannedImage(f"{stem}_{acquisition.id:03d}", mcd, acquisition, recovery=txt)
            )
    for txt in candidates:
        if channels is not None and txt_channels is not None:
            available = txt_channels(txt)
            missing = None if available is None else _missing_channel(available, channels)
            if missing is not None:
                notes.append(f"{txt}: no channel {missing}; skipped")
                continue
        images.append(PlannedImage(PurePath(txt).stem, txt))
    _rename_duplicates(images, notes)
    for image in images:
        image.info = image_info(image)
    return images, notes


def _missing_channel(available: Sequence[str], wanted: Sequence[str] | None) -> str | None:
    found = channel_indices(available, wanted)
    return found if isinstance(found, str) else None


def _rename_duplicates(images: list[PlannedImage], notes: list[str]) -> None:
    seen: dict[str, Any] = {}
    duplicates = 0
    for image in images:
        if image.name in seen:
            duplicates += 1
            new_name = f"DUPLICATE{duplicates:03d}_{image.name}"
            notes.append(
                f"{image.source} is a duplicate of {seen[image.name]}, saved as {new_name}"
            )
            image.name = new_name
        else:
            seen[image.name] = image.source


def image_info(image: PlannedImage) -> dict[str, Any]:
    """The image's images.csv row without the pixel counts (``width_px``, ``height_px``,
    ``num_channels``: see :func:`complete_info`); ``recovered`` says whether the pixels
    are to come from the ``.txt`` file from the start (an unreadable ``.mcd``)."""
    row: dict[str, Any] = {
        "image": image.file_name,
        "source_file": PurePath(image.source).name,
        "recovery_file": PurePath(image.recovery).name if image.recovery is not None else None,
        "recovered": not image.source_readable,
    }
    acquisition = image.acquisition
    if acquisition is not None:
        points = acquisition.roi_points_um
        row.update(
            {
                "acquisition_id": acquisition.id,
                "acquisition_description": acquisition.description,
                "acquisition_start_x_um": points[0][0] if points else None,
                "acquisition_start_y_um": points[0][1] if points else None,
                "acquisition_end_x_um": points[2][0] if points else None,
                "acquisition_end_y_um": points[2][1] if points else None,
                "acquisition_width_um": acquisition.width_um,
                "acquisition_height_um": acquisition.height_um,
            }
        )
    return row


def complete_info(info: dict[str, Any], shape: Sequence[int], recovered: bool) -> dict[str, Any]:
    """An images.csv row in steinbock's column order from the planned row and the image shape."""
    num_channels, height, width = shape
    row = {
        "image": info["image"],
        "width_px": int(width),
        "height_px": int(height),
        "num_channels": int(num_channels),
        "source_file": info["source_file"],
        "recovery_file": info["recovery_file"],
        "recovered": bool(recovered),
    }
    row.update({k: v for k, v in info.items() if k.startswith("acquisition_")})
    return row


def channel_indices(available: Sequence[str], wanted: Sequence[str] | None) -> list[int] | str:
    """Indices of ``wanted`` channels in ``available``, or the first missing channel's name."""
    if wanted is None:
        return list(range(len(available)))
    available = list(available)
    indices = []
    for channel in wanted:
        if channel not in available:
            return channel
        indices.append(available.index(channel))
    return indices
