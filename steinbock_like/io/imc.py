"""Imaging mass cytometry raw files: ``.mcd`` and ``.txt`` acquisitions (read with
readimc, the Bodenmiller lab's reader; the only module that imports it), the IMC
segmentation pipeline's panel, the panel and ``images.csv`` as steinbock writes them,
and ``.txt`` writing for synthetic raw data.

Files inside ``.zip`` archives are named like files in a directory named after the
archive (``raw/run1.zip/slide1.mcd``) and read from the archive in place: the
archive is never unpacked into the data directory; a job copies only the one
member it reads to a temporary file, removed when it is done.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
import warnings
import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from steinbock_like.errors import InputError, describe_error
from steinbock_like.io.atomic import atomic_path

TXT_FIXED_COLUMNS = ("Start_push", "End_push", "Pushes_duration", "X", "Y", "Z")


IMAGES_CSV_COLUMNS = (
    "image",
    "width_px",
    "height_px",
    "num_channels",
    "source_file",
    "recovery_file",
    "recovered",
    "acquisition_id",
    "acquisition_description",
    "acquisition_start_x_um",
    "acquisition_start_y_um",
    "acquisition_end_x_um",
    "acquisition_end_y_um",
    "acquisition_width_um",
    "acquisition_height_um",
)


@dataclass(frozen=True)
class AcquisitionInfo:
    """What images.csv needs of one acquisition (from the ``.mcd`` file's metadata).

    ``roi_points_um`` are the ROI's corners (top left, top right, bottom right,
    bottom left) in micrometres, or None where unknown.
    """

    id: int
    description: str | None = None
    roi_points_um: tuple | None = None
    width_um: float | None = None
    height_um: float | None = None
    channels: tuple[str, ...] = ()
    labels: tuple[str, ...] = ()


# ----------------------------------------------------------------------------- listing


def zip_member(path: str | Path) -> tuple[Path, str] | None:
    """``(archive, member)`` if ``path`` names a file inside a ``.zip`` archive, else None."""
    path = Path(path)
    for parent in path.parents:
        if parent.suffix.lower() == ".zip" and parent.is_file():
            return parent, path.relative_to(parent).as_posix()
    return None


def list_imc_files(directory: str | Path, suffix: str, *, unzip: bool = True) -> list[Path]:
    """Sorted ``.mcd`` or ``.txt`` files under ``directory`` (recursively, hidden files
    excluded), then those inside ``.zip`` archives there (with ``unzip``)."""
    directory = Path(directory)
    if not directory.is_dir():
        raise InputError(directory, "directory not found")
    files = sorted(p for p in directory.rglob(f"[!.]*{suffix}") if p.is_file())
    if unzip:
        for archive in sorted(directory.rglob("[!.]*.zip")):
            try:
                with zipfile.ZipFile(archive) as opened:
                    members = sorted(opened.infolist(), key=lambda info: info.filename)
            except (OSError, zipfile.BadZipFile) as error:
                raise InputError(archive, f"not a readable zip archive ({error})") from error
            files += [
                archive / info.filename
                for info in members
                if not info.is_dir() and info.filename.endswith(suffix)
            ]
    return files


@contextlib.contextmanager
def local_file(path: str | Path) -> Iterator[Path]:
    """A readable file for ``path``: itself, or a zip member copied to a temporary file."""
    member = zip_member(path)
    if member is None:
        yield Path(path)
        return
    archive, name = member
    with tempfile.TemporaryDirectory(prefix="steinbock-like-zip-") as tmp:
        target = Path(tmp) / Path(name).name
        try:
            with (
                zipfile.ZipFile(archive) as opened,
                opened.open(name) as source,
                open(target, "wb") as out,
            ):
                shutil.copyfileobj(source, out, 16 * 2**20)
        except (OSError, KeyError, zipfile.BadZipFile) as error:
            raise InputError(path, f"cannot read from the zip archive ({error})") from error
        yield target


# ----------------------------------------------------------------------------- .mcd


def _readimc():
    try:
        import readimc
    except ImportError as error:  # pragma: no cover - install-time problem
        raise InputError(None, "reading IMC files needs the 'readimc' package") from error
    return readimc


def read_acquisitions(path: str | Path) -> list[AcquisitionInfo]:
    """The acquisitions of an ``.mcd`` file (every slide, in file order), metadata only.

    Raises
    ------
    InputError
        Naming the file, if it cannot be opened (truncated, not an MCD file...).
    """
    readimc = _readimc()
    try:
        with local_file(path) as local, readimc.MCDFile(local) as mcd:
            return [
                _acquisition_info(acquisition)
                for slide in mcd.slides
                for acquisition in slide.acquisitions
            ]
    except InputError:
        raise
    except Exception as error:
        raise InputError(path, f"unreadable .mcd file ({describe_error(error)})") from error


def _acquisition_info(acquisition) -> AcquisitionInfo:
    points = acquisition.roi_points_um
    return AcquisitionInfo(
        id=int(acquisition.id),
        description=acquisition.description,
        roi_points_um=tuple(tuple(p) for p in points) if points is not None else None,
        width_um=acquisition.width_um,
        height_um=acquisition.height_um,
        channels=tuple(acquisition.channel_names),
        labels=tuple(acquisition.channel_labels),
    )


class McdReader:
    """Reads acquisitions from ``.mcd`` files, keeping the last file open (a worker
    reading the acquisitions of one file in turn parses its metadata once)."""

    def __init__(self) -> None:
        self._key: Path | None = None
        self._stack: contextlib.ExitStack | None = None
        self._mcd: Any = None

    def _open(self, path: Path):
        if self._key != path:
            self.close()
            readimc = _readimc()
            stack = contextlib.ExitStack()
            try:
                local = stack.enter_context(local_file(path))
                self._mcd = stack.enter_context(readimc.MCDFile(local))
            except BaseException:
                stack.close()
                raise
            self._stack, self._key = stack, path
        return self._mcd

    def read(
        self,
        path: str | Path,
        acquisition_id: int,
        channels: Sequence[str] | None = None,
        *,
        strict: bool = True,
    ) -> np.ndarray:
        """One acquisition as float32 CYX, only ``channels`` (by name, in that order).

        Raises
        ------
        InputError
            Naming the file and acquisition, if the file or the acquisition cannot be
            read or lacks a channel.
        """
        path = Path(path)
        try:
            mcd = self._open(path)
        except InputError:
            raise
        except Exception as error:
            self.close()
            raise InputError(path, f"unreadable .mcd file ({describe_error(error)})") from error
        acquisition = next(
            (a for s in mcd.slides for a in s.acquisitions if int(a.id) == int(acquisition_id)),
            None,
        )
        if acquisition is None:
            raise InputError(path, f"no acquisition {acquisition_id}")
        indices = _indices(path, acquisition.channel_names, channels)
        try:
            with warnings.catch_warnings():  # garbage coordinates: reported as the error below
                warnings.simplefilter("ignore", RuntimeWarning)
                image = mcd.read_acquisition(acquisition, strict=strict, channels=indices)
        except Exception as error:
            raise InputError(
                path, f"acquisition {acquisition_id} unreadable ({describe_error(error)})"
            ) from error
        return np.asarray(image, dtype=np.float32)

    def close(self) -> None:
        if self._stack is not None:
            self._stack.close()
        self._stack, self._key, self._mcd = None, None, None


# ----------------------------------------------------------------------------- .txt


def read_txt_channels(path: str | Path) -> tuple[list[str], list[str]]:
    """Channel names (``Ag107``) and labels of a ``.txt`` file, from its header only."""
    readimc = _readimc()
    try:
        with local_file(path) as local, readimc.TXTFile(local) as txt:
            return list(txt.channel_names), list(txt.channel_labels)
    except InputError:
        raise
    except Exception as error:
        raise InputError(path, f"unreadable .txt file ({describe_error(error)})") from error


def read_txt(
    path: str | Path, channels: Sequence[str] | None = None, *, strict: bool = True
) -> np.ndarray:
    """A ``.txt`` acquisition as float32 CYX, only ``channels`` (by name, in that order)."""
    readimc = _readimc()
    try:
        with local_file(path) as local, readimc.TXTFile(local) as txt:
            indices = _indices(path, txt.channel_names, channels)
            image = txt.read_acquisition(strict=strict)
    except InputError:
        raise
    except Exception as error:
        raise InputError(path, f"unreadable .txt file ({describe_error(error)})") from error
    if indices is not None:
        image = image[indices]
    return np.asarray(image, dtype=np.float32)


def write_imc_txt(
    path: str | Path,
    image: np.ndarray,
    channels: Sequence[str],
    labels: Sequence[str] | None = None,
) -> None:
    """Write a CYX image as an IMC ``.txt`` acquisition (as readimc reads it), atomically.

    Parameters
    ----------
    path : path-like
    image : ndarray, shape (C, Y, X)
        Counts; written with 9 significant digits (float32 values read back exactly).
    channels : sequence of str
        Isotope names such as ``"Ag107"`` (element then mass).
    labels : sequence of str, optional
        Marker names (the part before the parenthesis); default the channel names.

    Notes
    -----
    Columns: ``Start_push End_push Pushes_duration X Y Z`` then one
    ``label(Ag107Di)`` column per channel, tab-separated; one row per pixel,
    row by row (X fastest).
    """
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[0] != len(channels):
        raise ValueError(f"image of shape {image.shape} for {len(channels)} channels")
    labels = list(labels) if labels is not None else list(channels)
    num_channels, height, width = image.shape
    ys, xs = np.divmod(np.arange(height * width), width)
    pushes = np.arange(height * width) * 385 + 1708
    fixed = np.column_stack([pushes, pushes + 383, np.full_like(pushes, 384), xs, ys, xs])
    values = image.reshape(num_channels, -1).T
    header = [
        *TXT_FIXED_COLUMNS,
        *(f"{lab}({ch}Di)" for lab, ch in zip(labels, channels, strict=True)),
    ]
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8", newline="\n") as out:
        out.write("\t".join(header) + "\n")
        for start in range(0, len(values), 65536):
            block = np.column_stack(
                [
                    fixed[start : start + 65536].astype(str),
                    np.char.mod("%.9g", values[start : start + 65536]),
                ]
            )
            out.write("\n".join("\t".join(row) for row in block) + "\n")


# ----------------------------------------------------------------------------- panels, images.csv


def read_imc_panel(
    path: str | Path,
    *,
    channel_col: str = "Metal Tag",
    name_col: str = "Target",
    keep_col: str = "full",
    ilastik_col: str = "ilastik",
) -> pd.DataFrame:
    """Read the IMC segmentation pipeline's panel (comma or semicolon separated; the keep
    and ilastik columns 0/1)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "IMC panel not found")
    try:
        return pd.read_csv(
            path,
            sep=",|;",
            engine="python",
            dtype={
                channel_col: pd.StringDtype(),
                name_col: pd.StringDtype(),
                keep_col: pd.BooleanDtype(),
                ilastik_col: pd.BooleanDtype(),
            },
            true_values=["1"],
            false_values=["0"],
        )
    except Exception as error:
        raise InputError(path, f"not a readable IMC panel ({describe_error(error)})") from error


def write_preprocessed_panel(path: str | Path, panel: pd.DataFrame) -> None:
    """Write a panel from :mod:`steinbock_like.preprocess.panel` as steinbock does
    (booleans as 0/1, other values as pandas writes them), atomically."""
    out = panel.copy()
    for column in out.columns:
        if out[column].convert_dtypes().dtype == pd.BooleanDtype():
            out[column] = out[column].astype(pd.UInt8Dtype())
    with atomic_path(path) as tmp:
        out.to_csv(tmp, index=False)


def write_raw_panel(path: str | Path, panel: pd.DataFrame) -> None:
    """Write a panel (:mod:`steinbock_like.io.panel` columns) in the IMC segmentation
    pipeline's format: ``Metal Tag``, ``Target``, ``full``, ``ilastik`` (0/1), and
    ``deepcell``/``cellpose`` group labels, atomically."""
    out = pd.DataFrame(
        {
            "Metal Tag": panel["channel"].astype(str),
            "Target": panel["name"].astype(str),
            "full": panel["keep"].astype(bool).astype(int) if "keep" in panel else 1,
            "ilastik": panel["ilastik"].notna().astype(int) if "ilastik" in panel else 0,
        }
    )
    for column in ("deepcell", "cellpose"):
        if column in panel.columns:
            out[column] = pd.array(panel[column], dtype=pd.Int64Dtype())
    with atomic_path(path) as tmp:
        out.to_csv(tmp, index=False)


def read_images_csv(path: str | Path) -> dict[str, dict[str, Any]]:
    """Rows of an ``images.csv`` by image file name (empty if there is no such file)."""
    path = Path(path)
    if not path.is_file():
        return {}
    try:
        table = pd.read_csv(path)
    except Exception as error:
        raise InputError(path, f"not a readable CSV file ({describe_error(error)})") from error
    if "image" not in table.columns:
        raise InputError(path, "no 'image' column")
    rows = {}
    for record in table.to_dict(orient="records"):
        rows[str(record["image"])] = {
            k: (None if isinstance(v, float) and np.isnan(v) else v) for k, v in record.items()
        }
    return rows


def write_images_csv(path: str | Path, rows: Sequence[dict[str, Any]]) -> None:
    """Write ``images.csv`` (one row per image, steinbock's columns), atomically."""
    table = pd.DataFrame(list(rows))
    known = [c for c in IMAGES_CSV_COLUMNS if c in table.columns]
    table = table[known + [c for c in table.columns if c not in known]]
    with atomic_path(path) as tmp:
        table.to_csv(tmp, index=False)


# ----------------------------------------------------------------------------- helpers


def _indices(path, available: Sequence[str], wanted: Sequence[str] | None) -> list[int] | None:
    if wanted is None:
        return None
    available = list(available)
    missing = [c for c in wanted if c not in available]
    if missing:
        raise InputError(path, f"no channel {missing[0]} (the panel's) in this acquisition")
    return [available.index(c) for c in wanted]
