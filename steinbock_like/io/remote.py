"""Images named by URI: local paths, ``file://`` and ``http(s)://``, with a download cache.

A remote image is downloaded once into a cache (``~/.cache/steinbock-like/images``, or
``$STEINBOCK_LIKE_IMAGE_CACHE``, or ``--cache DIR``): the file's name is the SHA-256 of its
URL, and a small JSON record beside it keeps the URL and the SHA-256 of the content, which
is checked before the cached file is used again (a damaged file is downloaded anew).
Downloads are retried with back-off on network errors and server errors (5xx, 429), never
on other HTTP errors (a 404 stays a 404), and written atomically.

JPEG and PNG files are decoded once (imageio) and kept in the cache as TIFF (channels
first), so that every command reads them as it reads TIFFs.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from steinbock_like.errors import InputError, describe_error
from steinbock_like.io.atomic import (
    TEMP_PREFIX,
    atomic_path,
    is_stale_temp_file,
    write_text_atomic,
)

#: Environment variable: the image cache directory.
CACHE_ENVVAR = "STEINBOCK_LIKE_IMAGE_CACHE"
REMOTE_SCHEMES = ("http", "https")
TIFF_MAGIC = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")
CHUNK = 1 << 20


def default_cache_dir() -> Path:
    """``$STEINBOCK_LIKE_IMAGE_CACHE``, else ``$XDG_CACHE_HOME`` or ``~/.cache``, then
    ``steinbock-like/images``."""
    configured = os.environ.get(CACHE_ENVVAR)
    if configured:
        return Path(configured).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "steinbock-like" / "images"


def is_remote(uri: str) -> bool:
    return urllib.parse.urlsplit(uri).scheme.lower() in REMOTE_SCHEMES


@dataclass(frozen=True)
class Resolved:
    """A URI made a local file.

    Attributes
    ----------
    path : Path
        A local TIFF (decoded from JPEG/PNG where needed) to read.
    uri : str
    sha256 : str
        SHA-256 of the file as downloaded or found (before decoding).
    downloaded : bool
        Whether it came over the network in this call (False: local, or from the cache).
    """

    path: Path
    uri: str
    sha256: str
    downloaded: bool = False


@dataclass(frozen=True)
class ImageCache:
    """Resolves image URIs to local files (picklable: sent to worker processes).

    Parameters
    ----------
    directory : Path
        The cache directory (created when first needed).
    base_dir : Path, optional
        Relative local paths are relative to it (the image list's folder).
    timeout : float
        Seconds a connection or read may stall before the attempt fails.
    retries : int
        Further attempts after a network or server error.
    backoff : float
        Seconds before the first retry; doubled for each further one.
    """

    directory: Path
    base_dir: Path | None = None
    timeout: float = 30.0
    retries: int = 3
    backoff: float = 0.5

    def resolve(self, uri: str) -> Resolved:
        """A local, readable TIFF for ``uri``.

        Raises
        ------
        InputError
            One line naming the URI: not found, a download that failed after the
            retries, or a file that is not a readable TIFF/JPEG/PNG image.
        """
        if not uri:
            raise InputError(None, "no image URI in the list")
        if is_remote(uri):
            path, digest, downloaded = self._download(uri)
        else:
            path = self._local(uri)
            digest, downloaded = sha256_of(path), False
        return Resolved(self._decoded(path, uri, digest), uri, digest, downloaded)

    def _local(self, uri: str) -> Path:
        parts = urllib.parse.urlsplit(uri)
        if parts.scheme.lower() == "file":
            if parts.netloc not in ("", "localhost"):
                raise InputError(uri, "file:// URLs must name a file on this machine")
            path = Path(urllib.request.url2pathname(parts.path))
        elif parts.scheme and len(parts.scheme) > 1:
            raise InputError(uri, f"unsupported URI scheme {parts.scheme!r} (http, https, file)")
        else:
            path = Path(uri).expanduser()
            if not path.is_absolute() and self.base_dir is not None:
                path = self.base_dir / path
        if not path.is_file():
            raise InputError(uri, "file not found")
        return path

    def cache_paths(self, uri: str) -> tuple[Path, Path]:
        """The cached file of a URL and its JSON record."""
        key = hashlib.sha256(uri.encode("utf-8")).hexdigest()
        suffix = Path(urllib.parse.urlsplit(uri).path).suffix.lower()
        suffix = suffix if suffix.isascii() and 1 < len(suffix) <= 6 else ""
        folder = Path(self.directory) / "downloads" / key[:2]
        return folder / f"{key}{suffix}", folder / f"{key}.json"

    def _download(self, uri: str) -> tuple[Path, str, bool]:
        target, record = self.cache_paths(uri)
        cached = _cached(target, record, uri)
        if cached is not None:
            return target, cached, False
        target.parent.mkdir(parents=True, exist_ok=True)
        for partial in target.parent.glob(TEMP_PREFIX + "*"):
            if is_stale_temp_file(partial):  # a download of a run that was killed
                with contextlib.suppress(OSError):
                    partial.unlink()
        attempt = 0
        while True:
            try:
                digest, size = self._fetch(uri, target)
                break
            except _Retryable as error:
                if attempt >= self.retries:
                    raise InputError(
                        uri, f"download failed after {attempt + 1} attempts ({error})"
                    ) from None
                time.sleep(self.backoff * 2**attempt)
                attempt += 1
        entry = {"url": uri, "sha256": digest, "bytes": size, "fetched": _now()}
        write_text_atomic(record, json.dumps(entry, indent=1) + "\n")
        return target, digest, True

    def _fetch(self, uri: str, target: Path) -> tuple[str, int]:
        request = urllib.request.Request(uri, headers={"User-Agent": "steinbock-like"})
        digest = hashlib.sha256()
        size = 0
        try:
            with (
                urllib.request.urlopen(request, timeout=self.timeout) as response,
                atomic_path(target) as tmp,
                open(tmp, "wb") as file,
            ):
                expected = response.headers.get("Content-Length")
                while chunk := response.read(CHUNK):
                    digest.update(chunk)
                    size += len(chunk)
                    file.write(chunk)
                file.flush()
                if expected is not None and expected.isdigit() and int(expected) != size:
                    raise _Retryable(f"connection closed after {size} of {expected} bytes")
        except urllib.error.HTTPError as error:
            message = f"HTTP {error.code} {error.reason}"
            if error.code >= 500 or error.code == 429:
                raise _Retryable(message) from None
            raise InputError(uri, f"download failed ({message})") from None
        except (urllib.error.URLError, OSError) as error:
            reason = getattr(error, "reason", None) or error
            if isinstance(reason, BaseException):
                reason = describe_error(reason)
            raise _Retryable(str(reason)) from None
        return digest.hexdigest(), size

    def _decoded(self, path: Path, uri: str, digest: str) -> Path:
        """``path`` itself for a TIFF, else its decoded TIFF in the cache."""
        with open(path, "rb") as file:
            head = file.read(4)
        if head in TIFF_MAGIC:
            return path
        target = Path(self.directory) / "decoded" / digest[:2] / f"{digest}.tiff"
        if target.is_file():
            return target
        array = decode_image(path, uri)
        from steinbock_like.io.tiff import write_tiff

        write_tiff(target, array)
        return target


class _Retryable(Exception):
    """A failure worth another attempt (network error, server error)."""


def _cached(target: Path, record: Path, uri: str) -> str | None:
    """The content SHA-256 of a cached download, if present, complete and undamaged."""
    try:
        entry = json.loads(record.read_text(encoding="utf-8"))
        if entry.get("url") != uri or not target.is_file():
            return None
        if target.stat().st_size != entry.get("bytes"):
            return None
        digest = sha256_of(target)
    except (OSError, ValueError, AttributeError):
        return None
    return digest if digest == entry.get("sha256") else None


def decode_image(path: Path, uri: str | None = None) -> np.ndarray:
    """A JPEG/PNG (or other imageio format) as an array, channels first (C, Y, X) or (Y, X).

    An alpha channel is dropped; pixel values are kept as stored (uint8/uint16).

    Raises
    ------
    InputError
        Naming ``uri`` (or the path) when the file cannot be decoded.
    """
    import imageio.v3 as iio

    from steinbock_like.io.images import check_image_size

    with _no_pillow_pixel_limit():
        try:
            shape = tuple(iio.improps(path).shape)
        except Exception as error:  # imageio/Pillow raise many types for broken files
            raise InputError(
                uri or path, f"not a readable TIFF, JPEG or PNG image ({describe_error(error)})"
            ) from None
        # judged from the header, before the pixels are unpacked (the size limit of
        # every command, instead of Pillow's fixed "decompression bomb" limit)
        channels_first = (shape[-1], *shape[:-1]) if len(shape) == 3 else shape
        check_image_size(uri or path, channels_first)
        try:
            array = np.asarray(iio.imread(path))
        except Exception as error:
            raise InputError(
                uri or path, f"not a readable TIFF, JPEG or PNG image ({describe_error(error)})"
            ) from None
    if array.ndim == 3 and array.shape[-1] in (2, 4):
        array = array[..., :-1]  # drop alpha
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.ndim == 3:
        array = np.ascontiguousarray(np.moveaxis(array, -1, 0))
    if array.ndim not in (2, 3):
        raise InputError(uri or path, f"unexpected image shape {array.shape}")
    return array


@contextlib.contextmanager
def _no_pillow_pixel_limit():
    """Lift Pillow's decompression-bomb limit (~179 Mpx: a 20k x 20k slide is over it)."""
    try:
        from PIL import Image
    except ImportError:
        yield
        return
    previous = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = None
    try:
        yield
    finally:
        Image.MAX_IMAGE_PIXELS = previous


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        while chunk := file.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _now() -> str:
    import datetime

    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


__all__ = [
    "CACHE_ENVVAR",
    "ImageCache",
    "Resolved",
    "decode_image",
    "default_cache_dir",
    "is_remote",
    "sha256_of",
]
