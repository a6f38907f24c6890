"""Processor pipelines configured in one YAML file (``steinbock-like process``).

\b
registry.py    processors by name: inputs, outputs, parameter schemas
config.py      the YAML schema (version 1) and its validation, errors naming the key
enhancers.py   image enhancers: normalize, denoise_median, gaussian, mean/max_of_images
segmenters.py  mesmer, cellpose (incl. HED brightfield), ilastik_cellprofiler
instanseg.py   instanseg (instanseg-torch, a TorchScript model file you provide)
masks.py       mask builders: ring, expand, subtract, multiply, blob, repair
quantify.py    tables from in-memory masks (the measure step's functions)
pipeline.py    running the steps on one image, temporaries in memory only
checks.py      what the command checks before running: config, images, models
docs.py        docs/processors.md generated from the registry
"""
