"""Object data as Flow Cytometry Standard files (steinbock's ``export fcs``, via fcswrite).

Channels are the data columns (the object ID is not one); fcswrite's defaults
apply (e.g. channel names without spaces, percentage-like columns scaled).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from steinbock_like.io.atomic import atomic_path


def write_fcs(path: str | Path, table: pd.DataFrame) -> None:
    """Write the data columns of ``table`` (one event per row) as an FCS 3.0 file, atomically."""
    import fcswrite

    with atomic_path(path) as tmp:
        fcswrite.write_fcs(
            str(tmp),
            [str(c) for c in table.columns],
            np.asarray(table.to_numpy(), dtype=float),
        )
