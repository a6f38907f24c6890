"""steinbock's legacy CellProfiler measurement (``measure cellprofiler prepare|run``).

pipeline.py  the measurement pipeline for stock CellProfiler 4.2 (no plugins)
inputs.py    images and masks as the pipeline reads them (16-bit, CellProfiler's scaling)
"""
