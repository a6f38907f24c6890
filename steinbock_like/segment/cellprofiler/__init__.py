"""CellProfiler segmentation: probabilities -> nuclei -> cells by propagation -> masks.

- :mod:`.pipeline`: write our CellProfiler 4.2 pipeline, read any pipeline, and map its
  modules to native steps.
- :mod:`.native`: the same algorithm in numpy/centrosome/scikit-image.
- :mod:`.binary`: run the real CellProfiler headless in its own interpreter.
"""
