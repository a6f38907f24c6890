"""Reading the ``--cluster-config`` file (YAML or JSON) of a dask-jobqueue cluster."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from steinbock_like.errors import InputError


def read_cluster_config(path: str | Path) -> dict[str, Any]:
    """The mapping in a YAML (``.yaml``/``.yml``) or JSON file.

    Raises
    ------
    InputError
        For a missing or unparsable file, or one that does not hold a mapping.
    """
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as error:
        raise InputError(
            path, f"cannot read the cluster configuration ({error.strerror})"
        ) from error
    try:
        if path.suffix.lower() == ".json":
            config = json.loads(text)
        else:
            import yaml

            config = yaml.safe_load(text)
    except Exception as error:
        raise InputError(path, f"not valid YAML/JSON ({type(error).__name__})") from error
    if config is None:
        config = {}
    if not isinstance(config, dict) or not all(isinstance(key, str) for key in config):
        raise InputError(path, "expected a mapping of option names to values")
    return config
