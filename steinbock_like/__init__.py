"""steinbock-like: segmentation of multiplexed tissue images."""

__version__ = "0.1.0"
