"""Cell segmentation methods: each turns prepared channels into object masks.

Subpackages hold one method each (e.g. :mod:`steinbock_like.segment.mesmer`,
Mesmer on ONNX Runtime); the command line under ``steinbock_like.cli`` reads the
images, calls them and writes uint16 masks.
"""
