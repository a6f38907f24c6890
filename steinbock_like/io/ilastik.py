"""ilastik HDF5 images and crops: one float32 CYX dataset per file, tagged for ilastik.

steinbock's layout, which ilastik 1.3.3post3 and 1.4.x read without asking for the
axis order: dataset ``img`` (whole images, ``ilastik_img/``) or ``crop`` (training
crops, ``ilastik_crops/``), float32, CYX, uncompressed, with the attributes

- ``axistags``: vigra's JSON (keys c, y, x with type flags 1, 2, 2),
- ``display_mode``: ``grayscale``,
- ``steinbock``: true (marks files already in this layout, so ``fix`` leaves them alone).

Crops made by ilastik or other tools may hold any axis order (e.g. uint16 ZYXC); they
are read with :func:`read_ilastik_dataset`, which returns the axis keys from their
``axistags``.
"""

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path

import h5py
import numpy as np

from steinbock_like.errors import InputError
from steinbock_like.io.atomic import atomic_path
from steinbock_like.io.tiff import check_finite

IMAGE_DATASET = "img"
CROP_DATASET = "crop"
DISPLAY_MODE = "grayscale"
SUFFIX = ".h5"

# vigra AxisInfo type flags
CHANNELS_FLAG = 1
SPACE_FLAG = 2
TIME_FLAG = 8

# Serialised exactly as steinbock writes it (json.dumps defaults), so files compare equal.
AXISTAGS_CYX = json.dumps(
    {
        "axes": [
            {"key": "c", "typeFlags": CHANNELS_FLAG},
            {"key": "y", "typeFlags": SPACE_FLAG},
            {"key": "x", "typeFlags": SPACE_FLAG},
        ]
    }
)

# steinbock opens its HDF5 files with libver="earliest": readable by old HDF5 (ilastik 1.3).
H5_LIBVER = "earliest"
_ASCII = h5py.string_dtype("ascii")


def write_ilastik_image(path: str | Path, image: np.ndarray) -> None:
    """Write a whole image (dataset ``img``) atomically; see the module docstring."""
    _write_cyx(path, image, IMAGE_DATASET)


def write_ilastik_crop(path: str | Path, crop: np.ndarray) -> None:
    """Write a training crop (dataset ``crop``) atomically; see the module docstring."""
    _write_cyx(path, crop, CROP_DATASET)


def _write_cyx(path: str | Path, image: np.ndarray, dataset_name: str) -> None:
    image = np.asarray(image)
    if image.ndim != 3:
        raise ValueError(f"expected a CYX array, got shape {image.shape}")
    with atomic_path(path) as tmp, h5py.File(tmp, "w", libver=H5_LIBVER) as file:
        dataset = file.create_dataset(dataset_name, data=image.astype(np.float32, copy=False))
        # Variable-length ASCII strings, as in steinbock's and ilastik's own files.
        dataset.attrs.create("display_mode", DISPLAY_MODE, dtype=_ASCII)
        dataset.attrs.create("axistags", AXISTAGS_CYX, dtype=_ASCII)
        dataset.attrs["steinbock"] = True


def read_ilastik_image(path: str | Path) -> np.ndarray:
    """Read the ``img`` dataset of an ilastik image file as float32 CYX."""
    return _read_cyx(path, IMAGE_DATASET)


def read_ilastik_crop(path: str | Path) -> np.ndarray:
    """Read the ``crop`` dataset of a steinbock-layout crop file as float32 CYX."""
    return _read_cyx(path, CROP_DATASET)


def _read_cyx(path: str | Path, dataset_name: str) -> np.ndarray:
    array, axes, _ = read_ilastik_dataset(path, dataset_name)
    if array.ndim != 3 or (axes is not None and axes != ["c", "y", "x"]):
        raise InputError(
            path, f"dataset '{dataset_name}' is not CYX (axes {axes}, shape {array.shape})"
        )
    return array.astype(np.float32, copy=False)


def find_dataset_name(file: h5py.File, path: str | Path) -> str:
    """The dataset holding the pixels: ``crop``, ``img``, one named like the file, or the only one.

    Raises
    ------
    InputError
        If none of these is there.
    """
    datasets = [name for name, item in file.items() if isinstance(item, h5py.Dataset)]
    for candidate in (CROP_DATASET, IMAGE_DATASET, Path(path).stem):
        if candidate in datasets:
            return candidate
    if len(datasets) == 1:
        return datasets[0]
    raise InputError(path, f"cannot tell which dataset holds the image (found {datasets})")


def read_ilastik_dataset(
    path: str | Path, dataset_name: str | None = None
) -> tuple[np.ndarray, list[str] | None, dict]:
    """Read any ilastik HDF5 image with its axis order.

    Parameters
    ----------
    path : path-like
        HDF5 file.
    dataset_name : str, optional
        Dataset to read; by default found by :func:`find_dataset_name`.

    Returns
    -------
    array : ndarray
        The pixels as stored (dtype and axis order unchanged).
    axes : list of str or None
        Axis keys from the ``axistags`` attribute (e.g. ``["z", "y", "x", "c"]``), or
        None when the dataset has no axistags.
    attrs : dict
        The dataset's other attributes, strings decoded.
    """
    path = Path(path)
    try:
        with h5py.File(path, "r") as file:
            if dataset_name is None:
                dataset_name = find_dataset_name(file, path)
            if dataset_name not in file:
                raise InputError(path, f"no dataset '{dataset_name}'")
            dataset = file[dataset_name]
            array = check_finite(dataset[()], path)
            attrs = {key: _decoded(value) for key, value in dataset.attrs.items()}
    except OSError as error:
        raise InputError(path, f"not a readable HDF5 file ({error})") from error
    axes = None
    if "axistags" in attrs:
        axes = axes_from_axistags(attrs.pop("axistags"), path)
        if len(axes) != array.ndim:
            raise InputError(
                path, f"axistags name {len(axes)} axes {axes} but the data has shape {array.shape}"
            )
    return array, axes, attrs


def axes_from_axistags(axistags: str | bytes, path=None) -> list[str]:
    """The axis keys, in order, of vigra's axistags JSON."""
    try:
        return [str(axis["key"]) for axis in json.loads(_decoded(axistags))["axes"]]
    except (ValueError, KeyError, TypeError) as error:
        raise InputError(path, f"unreadable axistags ({error})") from error


@contextlib.contextmanager
def open_ilastik_image(path: str | Path) -> Iterator[h5py.Dataset]:
    """Open an ilastik image's CYX dataset for reading in parts (e.g. tile by tile).

    Raises
    ------
    InputError
        If the file is unreadable, its dataset is not CYX or holds NaN/infinite values.
    """
    path = Path(path)
    try:
        file = h5py.File(path, "r")
    except OSError as error:
        raise InputError(path, f"not a readable HDF5 file ({error})") from error
    with file:
        dataset = file[find_dataset_name(file, path)]
        if "axistags" in dataset.attrs:
            axes = axes_from_axistags(dataset.attrs["axistags"], path)
            if axes != ["c", "y", "x"]:
                raise InputError(path, f"expected CYX data, the axistags say {''.join(axes)}")
        if dataset.ndim != 3:
            raise InputError(path, f"expected CYX data, found shape {dataset.shape}")
        _check_finite_rows(dataset, path)
        yield dataset


def _check_finite_rows(dataset: h5py.Dataset, path: Path, pixels: int = 1 << 24) -> None:
    """Scan a CYX dataset for NaN/Inf band by band (bounded memory)."""
    if not np.issubdtype(dataset.dtype, np.floating) or not dataset.size:
        return
    rows = max(1, pixels // max(1, dataset.shape[0] * dataset.shape[2]))
    for start in range(0, dataset.shape[1], rows):
        check_finite(dataset[:, start : start + rows, :], path)


def is_readable_hdf5(path: str | Path) -> bool:
    """Whether ``path`` opens as HDF5 and every dataset in it can be read to the end."""
    try:
        with h5py.File(path, "r") as file:
            datasets: list[h5py.Dataset] = []
            file.visititems(
                lambda _, item: datasets.append(item) if isinstance(item, h5py.Dataset) else None
            )
            for dataset in datasets:
                if dataset.size:
                    dataset[(slice(-1, None),) * dataset.ndim]  # the last chunk exists
    except Exception:
        return False
    return True


def is_steinbock_layout(path: str | Path) -> bool:
    """True if the file's image dataset carries the ``steinbock`` attribute (already fixed)."""
    with h5py.File(path, "r") as file:
        dataset = file[find_dataset_name(file, path)]
        return bool(dataset.attrs.get("steinbock", False))


def list_ilastik_files(directory: str | Path) -> list[Path]:
    """Sorted ``.h5`` files in ``directory`` (hidden and temporary files excluded)."""
    from steinbock_like.io.images import list_files

    return list_files(directory, (SUFFIX,), "ilastik image")


def as_text(value) -> str:
    """An HDF5 string value (bytes, str or a 0-d array of either) as str."""
    if isinstance(value, bytes):
        return value.decode("utf-8")
    if isinstance(value, np.ndarray) and value.shape == ():
        return as_text(value[()])
    return str(value)


def _decoded(value):
    if isinstance(value, bytes):
        return value.decode("utf-8")
    if isinstance(value, np.bool_):
        return bool(value)
    return value
