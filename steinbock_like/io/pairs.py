"""Matching files across directories by image name (images <-> masks, ...)."""

from pathlib import Path

from steinbock_like.errors import InputError
from steinbock_like.io.images import image_name, list_images


def match_by_name(
    first_dir: str | Path,
    second_dir: str | Path,
    *,
    suffixes=(".tiff", ".tif"),
    kinds: tuple[str, str] = ("image", "mask"),
) -> list[tuple[str, Path, Path]]:
    """Pair the files of two directories by image name.

    ``kinds`` name the two directories in errors (image, mask, ...).

    Returns
    -------
    list of (name, first_path, second_path), sorted by name.

    Raises
    ------
    InputError
        Naming the first unpaired file, when either directory has a file the
        other lacks.
    """
    pairs, only_first, only_second = pair_by_name(
        first_dir, second_dir, suffixes=suffixes, kinds=kinds
    )
    if only_first:
        raise InputError(
            only_first[0],
            f"no matching file in {second_dir} ({len(only_first)} unmatched in all)",
        )
    if only_second:
        raise InputError(
            only_second[0],
            f"no matching file in {first_dir} ({len(only_second)} unmatched in all)",
        )
    return pairs


def pair_by_name(
    first_dir: str | Path,
    second_dir: str | Path,
    *,
    suffixes=(".tiff", ".tif"),
    kinds: tuple[str, str] = ("image", "mask"),
) -> tuple[list[tuple[str, Path, Path]], list[Path], list[Path]]:
    """Pair the files of two directories by image name, keeping the unpaired ones apart.

    Returns
    -------
    pairs : list of (name, first_path, second_path), sorted by name
    only_first, only_second : list of Path
        Files without a partner in the other directory, sorted.
    """
    first = {image_name(p): p for p in list_images(first_dir, kinds[0]) if p.suffix in suffixes}
    second = {image_name(p): p for p in list_images(second_dir, kinds[1]) if p.suffix in suffixes}
    pairs = [(name, first[name], second[name]) for name in sorted(set(first) & set(second))]
    only_first = [first[name] for name in sorted(set(first) - set(second))]
    only_second = [second[name] for name in sorted(set(second) - set(first))]
    return pairs, only_first, only_second
