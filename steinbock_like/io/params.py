"""Parameter files (YAML mappings), e.g. steinbock's Mesmer --preprocess/--postprocess."""

from __future__ import annotations

from pathlib import Path

from steinbock_like.errors import InputError


def read_yaml_params(path: str | Path) -> dict:
    """Read a YAML file holding one mapping of parameter names to values (empty: {})."""
    try:
        import yaml
    except ImportError:  # pragma: no cover - pyyaml comes with the mesmer extra
        raise InputError(path, "reading YAML needs pyyaml: pip install pyyaml") from None
    try:
        with Path(path).open() as file:
            params = yaml.safe_load(file)
    except OSError as error:
        raise InputError(path, f"cannot read ({error.strerror})") from None
    except yaml.YAMLError as error:
        raise InputError(path, f"not valid YAML ({type(error).__name__})") from None
    if params is None:
        return {}
    if not isinstance(params, dict):
        raise InputError(path, "expected a mapping of parameter names to values")
    return params
