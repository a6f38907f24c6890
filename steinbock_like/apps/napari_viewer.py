"""A napari viewer that knows the data layout: ``apps napari [IMAGE ...]``.

Each image opens as one image layer per channel, named after the panel, and the
masks of the same name (``masks/``, ``masks_nuclei/``, ... and every other
``masks*/`` directory) open as label layers. The layers are described by
:func:`layer_specs`, a pure function testable without napari; :func:`show` hands
them to napari. Run as ``python -m steinbock_like.apps.napari_viewer``.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from steinbock_like import layout
from steinbock_like.errors import InputError, SteinbockLikeError

# Channels shown when an image opens; the others are one click away (napari is slow
# to composite dozens of visible layers in software OpenGL).
VISIBLE_CHANNELS = 3
CHANNEL_COLORMAPS = ("magenta", "green", "cyan", "yellow", "red", "blue")
MASK_DIR_ORDER = (
    layout.MASKS,
    layout.MASKS_NUCLEI,
    layout.MASKS_CYTOPLASM,
    layout.MASKS_MATCHED,
    layout.MASKS_MATCHED_NUCLEI,
    layout.MASKS_TRUTH,
    layout.MASKS_TRUTH_NUCLEI,
)


@dataclass
class LayerSpec:
    """One napari layer: ``kind`` is ``"image"`` or ``"labels"``; ``options`` go to ``add_*``."""

    kind: str
    name: str
    data: np.ndarray
    options: dict[str, Any] = field(default_factory=dict)


def channel_names(panel_names: Sequence[str] | None, kept_names: Sequence[str] | None, count: int):
    """Names for an image's ``count`` channels.

    steinbock's ``img/`` holds the kept channels only, other tools write every channel:
    the panel's kept names are used when their number matches, else all its names, else
    ``channel 1..N``.
    """
    if kept_names is not None and len(kept_names) == count:
        return [str(name) for name in kept_names]
    if panel_names is not None and len(panel_names) == count:
        return [
            str(name) if str(name) else f"channel {i + 1}" for i, name in enumerate(panel_names)
        ]
    return [f"channel {i + 1}" for i in range(count)]


def layer_specs(
    images: Mapping[str, np.ndarray],
    masks: Mapping[str, Mapping[str, np.ndarray]],
    *,
    panel_names: Sequence[str] | None = None,
    kept_names: Sequence[str] | None = None,
) -> list[LayerSpec]:
    """The layers for some images and their masks (pure).

    Parameters
    ----------
    images : mapping
        Image name -> CYX array (a YX array is one channel).
    masks : mapping
        Mask directory name -> (image name -> YX label array); images without a mask
        in a directory are skipped for it.
    panel_names, kept_names : sequence of str, optional
        All channel names of the panel, and those of the kept channels.

    Returns
    -------
    list of LayerSpec
        Per image: one image layer per channel (``"{image} {channel}"``, additive
        blending, contrast limits from the 0.1/99.9 percentiles, the first
        :data:`VISIBLE_CHANNELS` visible), then one labels layer per mask directory
        (``"{image} {directory}"``). With several images, all but the first are hidden.
    """
    specs: list[LayerSpec] = []
    for image_index, (image_name, image) in enumerate(images.items()):
        image = np.asarray(image)
        if image.ndim == 2:
            image = image[np.newaxis]
        if image.ndim != 3:
            raise SteinbockLikeError(f"{image_name}: expected a CYX image, got shape {image.shape}")
        names = channel_names(panel_names, kept_names, image.shape[0])
        for channel_index, (channel_name, channel) in enumerate(zip(names, image, strict=True)):
            low, high = np.percentile(channel, (0.1, 99.9)) if channel.size else (0.0, 1.0)
            if not high > low:
                high = low + 1.0
            specs.append(
                LayerSpec(
                    "image",
                    f"{image_name} {channel_name}",
                    channel,
                    {
                        "colormap": CHANNEL_COLORMAPS[channel_index % len(CHANNEL_COLORMAPS)],
                        "blending": "additive",
                        "contrast_limits": (float(low), float(high)),
                        "visible": image_index == 0 and channel_index < VISIBLE_CHANNELS,
                    },
                )
            )
        for directory, by_image in masks.items():
            if image_name not in by_image:
                continue
            mask = np.asarray(by_image[image_name])
            if mask.shape != image.shape[1:]:
                raise SteinbockLikeError(
                    f"{directory}/{image_name}: mask shape {mask.shape} differs from the "
                    f"image's {image.shape[1:]}"
                )
            specs.append(
                LayerSpec(
                    "labels",
                    f"{image_name} {directory}",
                    mask,
                    {"visible": image_index == 0, "opacity": 0.5},
                )
            )
    return specs


# -- files -----------------------------------------------------------------------------------
def resolve_image(argument: str, data_dir: Path) -> Path:
    """An image given as a path, a file name in ``img/`` or an image name."""
    from steinbock_like.io.images import IMAGE_SUFFIXES

    for candidate in (Path(argument), data_dir / argument, data_dir / layout.IMG / argument):
        if candidate.is_file():
            return candidate
    for suffix in IMAGE_SUFFIXES:
        candidate = data_dir / layout.IMG / f"{argument}{suffix}"
        if candidate.is_file():
            return candidate
    raise InputError(argument, f"no such image (looked in {data_dir / layout.IMG})")


def mask_directories(data_dir: Path, extra: Sequence[str | Path] = ()) -> list[Path]:
    """``masks*/`` directories of the layout (known ones first), then ``extra``."""
    known = [data_dir / name for name in MASK_DIR_ORDER]
    others = sorted(
        p for p in data_dir.glob("masks*") if p.is_dir() and p.name not in MASK_DIR_ORDER
    )
    found = [p for p in known if p.is_dir()] + others
    return found + [
        layout.resolve(data_dir, p) for p in extra if layout.resolve(data_dir, p).is_dir()
    ]


def load_layer_specs(
    image_arguments: Sequence[str],
    data_dir: Path,
    panel_file: Path | None = None,
    extra_mask_dirs: Sequence[str | Path] = (),
) -> list[LayerSpec]:
    """Read the images, the panel (if present) and the matching masks; build the layers."""
    from steinbock_like.io.images import image_name, read_image
    from steinbock_like.io.masks import read_mask
    from steinbock_like.io.panel import kept, read_panel

    panel_file = layout.resolve(data_dir, panel_file or layout.PANEL)
    panel_names = kept_names = None
    if panel_file.is_file():
        panel = read_panel(panel_file)
        panel_names = list(panel["name"])
        kept_names = list(kept(panel)["name"])
    images = {}
    for argument in image_arguments:
        path = resolve_image(argument, data_dir)
        images[image_name(path)] = read_image(path)
    masks: dict[str, dict[str, np.ndarray]] = {}
    for directory in mask_directories(data_dir, extra_mask_dirs):
        for name in images:
            path = directory / f"{name}{layout.MASK_SUFFIX}"
            if path.is_file():
                masks.setdefault(directory.name, {})[name] = read_mask(path)
    return layer_specs(images, masks, panel_names=panel_names, kept_names=kept_names)


def show(specs: Sequence[LayerSpec], title: str = "steinbock-like napari") -> None:
    """Open a napari viewer with the layers and run its event loop."""
    import napari

    viewer = napari.Viewer(title=title)
    for spec in specs:
        if spec.kind == "image":
            viewer.add_image(spec.data, name=spec.name, **spec.options)
        else:
            viewer.add_labels(spec.data, name=spec.name, **spec.options)
    napari.run()


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="steinbock-like apps napari")
    parser.add_argument("--data", type=Path, default=Path("."))
    parser.add_argument("--panel", type=Path, default=None)
    parser.add_argument("--masks", action="append", default=[], help="Another mask directory.")
    parser.add_argument("images", nargs="*")
    options = parser.parse_args(argv)
    try:
        specs = load_layer_specs(options.images, options.data, options.panel, options.masks)
    except SteinbockLikeError as error:
        parser.exit(1, f"Error: {error}\n")
    show(specs)


if __name__ == "__main__":
    main()
