"""Download Cellpose's default weights at image build time (no network at run time).

Cellpose 3.x: the cyto3, cyto2 and nuclei networks and their size models; Cellpose 4.x:
Cellpose-SAM (cpsam). They go to $CELLPOSE_LOCAL_MODELS_PATH, where Cellpose looks first.
"""

import os
import sys
from importlib.metadata import version
from pathlib import Path


def main() -> None:
    target = Path(os.environ["CELLPOSE_LOCAL_MODELS_PATH"])
    target.mkdir(parents=True, exist_ok=True)
    from cellpose import models

    major = int(version("cellpose").split(".")[0])
    if major >= 4:
        models.CellposeModel(gpu=False)
    else:
        for name in ("cyto3", "cyto2", "nuclei"):
            models.model_path(name)
            models.size_model_path(name)
    files = sorted(p.name for p in target.iterdir())
    if not files:
        sys.exit(f"no Cellpose weights were downloaded into {target}")
    print(f"Cellpose {version('cellpose')} weights in {target}: {', '.join(files)}")


if __name__ == "__main__":
    main()
