"""Exports of object data and images to third-party formats (``steinbock-like export``).

One module per format: :mod:`.tables` (object tables: listing, merging, the cell
table), :mod:`.csv`, :mod:`.fcs`, :mod:`.anndata`, :mod:`.graphml`,
:mod:`.ome_tiff`, :mod:`.histocat`, :mod:`.ome_zarr`, :mod:`.spatialdata` and
:mod:`.heatmap`. Every writer is atomic: single files through
:mod:`steinbock_like.io.atomic`, directory stores (zarr) through
:func:`.tables.atomic_directory`.
"""
