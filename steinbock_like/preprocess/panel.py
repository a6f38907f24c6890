"""Panels (see docs/file-types.md) built from an IMC panel, from channel lists, or for
external images, with steinbock 0.16.5's rules so that the written file is the same.

The result's columns come in the order ``channel, name, keep, ilastik, deepcell,
cellpose`` followed by any other column of the source panel; ``keep`` is boolean,
``ilastik`` numbers the ilastik channels 1..n in channel order (nullable integer), and
``deepcell``/``cellpose`` keep the source panel's values (empty where it has none).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd

from steinbock_like.errors import InputError

FIRST_COLUMNS = ("channel", "name", "keep", "ilastik", "deepcell", "cellpose")


def panel_from_imc_panel(
    imc_panel: pd.DataFrame,
    *,
    channel_col: str = "Metal Tag",
    name_col: str = "Target",
    keep_col: str = "full",
    ilastik_col: str = "ilastik",
    path=None,
) -> pd.DataFrame:
    """Our panel from the IMC segmentation pipeline's panel.

    Rows of the same channel are merged (names joined with `` / ``, ``keep`` and
    ``ilastik`` set if set in any of them); channels are sorted by the number in
    their name (the isotope mass); duplicate names get `` 1``, `` 2``... appended.

    Parameters
    ----------
    imc_panel : DataFrame
        As read by :func:`steinbock_like.io.imc.read_imc_panel` (``keep_col`` and
        ``ilastik_col`` boolean, the channel and name columns strings).
    channel_col, name_col, keep_col, ilastik_col : str
        Its columns holding the channel (required), name (required), keep flag and
        ilastik flag (optional).
    path : path-like, optional
        Named in errors.

    Raises
    ------
    InputError
        A required column is missing, or the channel, keep or ilastik column has
        empty values.
    """
    for column in (channel_col, name_col):
        if column not in imc_panel.columns:
            raise InputError(path, f"IMC panel has no '{column}' column")
    for column in (channel_col, keep_col, ilastik_col):
        if column in imc_panel.columns and imc_panel[column].isna().any():
            raise InputError(path, f"IMC panel has empty values in column '{column}'")
    renames = {channel_col: "channel", name_col: "name", keep_col: "keep", ilastik_col: "ilastik"}
    # a source column already called like a target column (but not renamed to it) is dropped
    clashing = [
        target
        for source, target in renames.items()
        if target in imc_panel.columns and target != source
    ]
    panel = imc_panel.drop(columns=clashing).rename(columns=renames)
    for _, group in panel.groupby("channel"):
        panel.loc[group.index, "name"] = " / ".join(group["name"].dropna().unique())
        for flag in ("keep", "ilastik"):
            if flag in panel.columns:
                panel.loc[group.index, flag] = group[flag].any()
    panel = panel.groupby(panel["channel"].values).aggregate("first")
    panel = _complete(panel)
    ilastik = panel["ilastik"].fillna(False).astype(bool)
    panel["ilastik"] = _numbered(ilastik)
    return panel


def panel_from_channels(
    channel_lists: Iterable[tuple[Sequence[str], Sequence[str]]],
) -> pd.DataFrame:
    """A panel listing every channel of some acquisitions.

    Parameters
    ----------
    channel_lists : iterable of (channel names, channel labels)
        One pair per acquisition, e.g. ``(["Ag107", "Pr141"], ["107Ag", "CK5"])``.

    Returns
    -------
    DataFrame
        One row per distinct (channel, name), sorted by isotope mass, all kept, all
        in the ilastik group.
    """
    frames = [
        pd.DataFrame(
            {
                "channel": pd.Series(list(channels), dtype=pd.StringDtype()),
                "name": pd.Series(list(labels), dtype=pd.StringDtype()),
            }
        )
        for channels, labels in channel_lists
    ]
    if not frames:
        raise ValueError("no channel lists given")
    panel = pd.concat(frames, ignore_index=True)
    panel = panel.drop_duplicates(ignore_index=True)
    return _complete(panel)


def external_panel(num_channels: int, names: Sequence[str] | None = None) -> pd.DataFrame:
    """The panel of external images: channels numbered 1..C, all kept and in the ilastik group.

    Parameters
    ----------
    num_channels : int
    names : sequence of str, optional
        Channel names (e.g. from OME-XML); empty where not given.
    """
    if names is not None and len(names) != num_channels:
        raise ValueError(f"{len(names)} names for {num_channels} channels")
    numbers = range(1, num_channels + 1)
    return pd.DataFrame(
        {
            "channel": pd.Series([str(i) for i in numbers], dtype=pd.StringDtype()),
            "name": pd.Series(
                list(names) if names is not None else [pd.NA] * num_channels,
                dtype=pd.StringDtype(),
            ),
            "keep": pd.Series([True] * num_channels, dtype=pd.BooleanDtype()),
            "ilastik": pd.Series(list(numbers), dtype=pd.UInt8Dtype()),
            "deepcell": pd.Series([pd.NA] * num_channels, dtype=pd.UInt8Dtype()),
            "cellpose": pd.Series([pd.NA] * num_channels, dtype=pd.UInt8Dtype()),
        }
    )


def _mass(channels: pd.Series) -> pd.Series:
    return pd.to_numeric(channels.astype(str).str.replace("[^0-9]", "", regex=True))


def _numbered(flags: pd.Series) -> pd.Series:
    numbers = pd.Series(pd.NA, index=flags.index, dtype=pd.UInt8Dtype())
    numbers[flags.to_numpy()] = np.arange(1, int(flags.sum()) + 1)
    return numbers


def _complete(panel: pd.DataFrame) -> pd.DataFrame:
    """Sort by mass, make names unique, add missing standard columns, order the columns."""
    panel = panel.sort_values("channel", key=_mass)
    duplicated = panel["name"].duplicated(keep=False)
    suffixes = panel.groupby("name").cumcount().map(lambda i: f" {i + 1}")
    panel.loc[duplicated, "name"] += suffixes[duplicated]
    if "keep" not in panel.columns:
        panel["keep"] = pd.Series([True] * len(panel), index=panel.index, dtype=pd.BooleanDtype())
    if "ilastik" not in panel.columns:
        panel["ilastik"] = _numbered(panel["keep"].astype(bool))
    for column in ("deepcell", "cellpose"):
        if column not in panel.columns:
            panel[column] = pd.Series(pd.NA, index=panel.index, dtype=pd.UInt8Dtype())
    others = [column for column in panel.columns if column not in FIRST_COLUMNS]
    return panel[[*FIRST_COLUMNS, *others]]
