"""The panel CSV: one row per image channel, in image channel order.

Columns: ``channel`` (required, unique), ``name`` (unique; may be empty only
where ``keep`` is 0), ``keep`` (0/1, default 1), and the group columns
``ilastik``, ``deepcell``, ``cellpose`` (numeric labels or empty). Any other
columns are kept as they are.
"""

from pathlib import Path

import numpy as np
import pandas as pd

from steinbock_like.errors import InputError
from steinbock_like.io.atomic import atomic_path

GROUP_COLUMNS = ("ilastik", "deepcell", "cellpose")
REQUIRED_COLUMNS = ("channel",)


def read_panel(path: str | Path) -> pd.DataFrame:
    """Read and validate a panel.

    Returns
    -------
    DataFrame
        ``channel`` and ``name`` as strings, ``keep`` as bool, group columns as
        float (NaN where empty), other columns unchanged, row order kept.

    Raises
    ------
    InputError
        Missing file or column, duplicate channel IDs or names, a kept channel
        without a name, a non-numeric group label or a ``keep`` other than 0/1.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "panel file not found")
    try:
        panel = pd.read_csv(path, dtype=str, keep_default_na=False, skipinitialspace=True)
    except Exception as error:
        raise InputError(path, f"not a readable CSV file ({type(error).__name__})") from error
    panel.columns = [str(c).strip() for c in panel.columns]
    return validate_panel(panel, path)


def validate_panel(panel: pd.DataFrame, path: str | Path | None = None) -> pd.DataFrame:
    """Check and normalise a panel table (see :func:`read_panel`)."""
    panel = panel.copy()
    for column in REQUIRED_COLUMNS:
        if column not in panel.columns:
            raise InputError(path, f"panel has no '{column}' column")
    if len(panel) == 0:
        raise InputError(path, "panel lists no channels")
    panel["channel"] = panel["channel"].astype(str).str.strip()
    if (panel["channel"] == "").any():
        row = int(np.flatnonzero(panel["channel"] == "")[0]) + 2
        raise InputError(path, f"empty channel ID on line {row}")
    _reject_duplicates(panel["channel"], "channel ID", path)

    panel["keep"] = _parse_keep(panel["keep"], path) if "keep" in panel.columns else True
    if "name" not in panel.columns:
        panel["name"] = panel["channel"]
    panel["name"] = panel["name"].fillna("").astype(str).str.strip()
    unnamed = panel["keep"] & (panel["name"] == "")
    if unnamed.any():
        channel = panel.loc[unnamed, "channel"].iloc[0]
        raise InputError(path, f"channel '{channel}' is kept (keep=1) but has no name")
    _reject_duplicates(panel.loc[panel["name"] != "", "name"], "channel name", path)

    for column in GROUP_COLUMNS:
        if column in panel.columns:
            panel[column] = _parse_groups(panel[column], column, path)
    return panel


def write_panel(path: str | Path, panel: pd.DataFrame) -> None:
    """Write a panel atomically; ``keep`` as 0/1 and integral group labels without decimals."""
    out = panel.copy()
    if "keep" in out.columns:
        out["keep"] = out["keep"].astype(bool).astype(int)
    for column in GROUP_COLUMNS:
        if column in out.columns:
            out[column] = [
                "" if pd.isna(v) else (str(int(v)) if float(v).is_integer() else str(v))
                for v in out[column]
            ]
    with atomic_path(path) as tmp:
        out.to_csv(tmp, index=False)


def kept(panel: pd.DataFrame) -> pd.DataFrame:
    """The rows of channels with ``keep`` set, in image channel order."""
    return panel.loc[panel["keep"].astype(bool)]


def _reject_duplicates(values: pd.Series, what: str, path) -> None:
    duplicated = values[values.duplicated()]
    if len(duplicated):
        raise InputError(path, f"duplicate {what} '{duplicated.iloc[0]}'")


def _parse_keep(values: pd.Series, path) -> pd.Series:
    text = values.astype(str).str.strip()
    bad = ~text.isin(["0", "1", "0.0", "1.0", "True", "False", "true", "false", ""])
    if bad.any():
        raise InputError(path, f"'keep' must be 0 or 1, found '{text[bad].iloc[0]}'")
    return text.isin(["1", "1.0", "True", "true", ""])


def _parse_groups(values: pd.Series, column: str, path) -> pd.Series:
    text = values.astype(str).str.strip()
    numeric = pd.to_numeric(text, errors="coerce")  # "" and "nan" become NaN
    bad = numeric.isna() & (text != "") & (text.str.lower() != "nan")
    if bad.any():
        raise InputError(
            path, f"group label '{text[bad].iloc[0]}' in column '{column}' is not a number"
        )
    return numeric.astype(float)


def panel_for_image(panel: pd.DataFrame, num_channels: int, image_path=None) -> pd.DataFrame:
    """The panel rows that describe an image's channels, in channel order.

    steinbock writes only the kept channels to ``img/``, while other tools write
    every channel; both are accepted: an image with as many channels as the
    panel has kept rows maps to those rows, one with as many as the panel has
    rows maps to all of them (``keep`` then still selects).

    Raises
    ------
    InputError
        Naming the image, if its channel count matches neither.
    """
    kept_rows = kept(panel)
    if num_channels == len(kept_rows):
        return kept_rows.reset_index(drop=True)
    if num_channels == len(panel):
        return panel.reset_index(drop=True)
    raise InputError(
        image_path,
        f"image has {num_channels} channels but the panel lists {len(kept_rows)} kept "
        f"({len(panel)} in all)",
    )
