"""Shared fixtures.

``refdata`` points at real steinbock/ilastik/CellProfiler/Mesmer outputs
(``STEINBOCK_LIKE_REFDATA``, set by ``.ci/run``); tests that use it skip with a
reason where it is unset.
"""

import os
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
    """The normal model cache (``$STEINBOCK_LIKE_MODELS`` or the user's cache), as the CLI uses."""
    from steinbock_like.models import default_cache_dir

    return default_cache_dir()


@pytest.fixture(scope="session")
def mesmer_model() -> Path:
    """The Mesmer ONNX file from the normal model cache, fetched there once if absent.

    The same cache that ``steinbock-like models get mesmer`` (and the demo) fill, so a
    model obtained once serves the CLI, the demo and the tests. Without network access
    and without a cached copy the download fails and so do the tests that need it: the
    model is something CI can always provide.
    """
    from steinbock_like import models

    return models.get_mesmer_model(model_cache_dir())


@pytest.fixture(scope="session")
def trained_model(tmp_path_factory) -> Path:
    """A tiny Cellpose model trained on the example's cells (once per session; shared by
    every Cellpose test module)."""
    pytest.importorskip("cellpose")
    from steinbock_like.testing import train_cellpose_example_model

    return train_cellpose_example_model(tmp_path_factory.mktemp("cellpose_train"))
