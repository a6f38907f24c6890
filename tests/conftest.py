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
