"""External images: any TIFF / OME-TIFF, with its axes and OME channel names."""

from __future__ import annotations

import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from steinbock_like.errors import InputError
from steinbock_like.io.tiff import open_tiff

EXTERNAL_SUFFIXES = (".tiff", ".tif")


@dataclass
class ExternalImage:
    """An external image as stored: the array, tifffile's axes letters and OME channel names."""

    array: np.ndarray
    axes: str
    channel_names: list[str] | None


def list_external_images(directory: str | Path) -> list[Path]:
    """TIFF files under ``directory`` (recursively, sorted; hidden files excluded)."""
    directory = Path(directory)
    if not directory.is_dir():
        raise InputError(directory, "directory of external images not found")
    return sorted(
        p for p in directory.rglob("[!.]*") if p.is_file() and p.suffix.lower() in EXTERNAL_SUFFIXES
    )


def read_external_image(path: str | Path) -> ExternalImage:
    """Read the first series of a TIFF with its axes and, for OME-TIFF, channel names.

    Raises
    ------
    InputError
        For a missing, unreadable or truncated file.
    """
    with open_tiff(path) as tif:
        series = tif.series[0]
        array, axes = series.asarray(), series.axes
        names = ome_channel_names(tif.ome_metadata) if tif.is_ome else None
    return ExternalImage(array, axes, names)


def ome_channel_names(ome_xml: str | None) -> list[str] | None:
    """The ``Name`` of every ``Channel`` of the first OME ``Image`` (None if any lacks one)."""
    if not ome_xml:
        return None
    try:
        root = ElementTree.fromstring(ome_xml)
    except ElementTree.ParseError:
        return None
    for image in root.iter():
        if image.tag.rsplit("}", 1)[-1] != "Image":
            continue
        channels = [e for e in image.iter() if e.tag.rsplit("}", 1)[-1] == "Channel"]
        names = [c.get("Name") for c in channels]
        if names and all(names):
            return names
        return None
    return None


def external_image_name(path: str | Path) -> str:
    """The image name of an external file: its name without ``.ome`` and suffix."""
    name = Path(path).name
    for suffix in (".ome.tiff", ".ome.tif", ".tiff", ".tif"):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return Path(name).stem
