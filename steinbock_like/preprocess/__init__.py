"""From raw acquisitions to the standard image type: pure functions on arrays and tables.

:mod:`.hotpixels` (steinbock's hot pixel filter), :mod:`.panel` (panels from an
IMC panel, from channel lists, for external images), :mod:`.imc` (which image
comes from which acquisition and ``.txt`` file, images.csv rows) and
:mod:`.external` (any image array to CYX). Files are read and written in
:mod:`steinbock_like.io.imc` and :mod:`steinbock_like.io.external`.
"""
