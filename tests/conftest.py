"""Shared fixtures.

``refdata`` points at real steinbock/ilastik/CellProfiler/Mesmer outputs
(``STEINBOCK_LIKE_REFDATA``, set by ``.ci/run``); tests that use it skip with a
reason where it is unset.
"""

import os
import sys
from pathlib import Path

import pytest

REFDATA_ENV = "STEINBOCK_LIKE_REFDATA"


@pytest.fixture(scope="session")
def refdata() -> Path:
    """The ``imc_mock`` reference dataset (read-only; never copy it into the project)."""
    root = os.environ.get(REFDATA_ENV)
    if not root:
        pytest.skip(f"{REFDATA_ENV} is not set: no real reference data to compare with")
    path = Path(root) / "imc_mock"
    if not path.is_dir():
        pytest.skip(f"{REFDATA_ENV}={root} has no imc_mock/ folder")
    return path


def model_cache_dir() -> Path:
    """``$STEINBOCK_LIKE_MODELS``, else a folder inside the test virtual environment."""
    configured = os.environ.get("STEINBOCK_LIKE_MODELS")
    return Path(configured) if configured else Path(sys.prefix) / "steinbock-like-models"


@pytest.fixture(scope="session")
def mesmer_model() -> Path:
    """The Mesmer ONNX file from the model cache, obtained once per test environment.

    Skipped where it is not cached, except in CI (``STEINBOCK_LIKE_REFDATA`` set):
    there it is downloaded, and failing to get it fails the tests.
    """
    from steinbock_like import models

    cache_dir = model_cache_dir()
    cached = models.cached_model_path("mesmer", cache_dir)
    if not cached.is_file() and not os.environ.get(REFDATA_ENV):
        pytest.skip(
            f"Mesmer model not cached in {cache_dir} (run 'steinbock-like models get mesmer' "
            f"with STEINBOCK_LIKE_MODELS={cache_dir}); CI downloads it"
        )
    return models.get_mesmer_model(cache_dir)
