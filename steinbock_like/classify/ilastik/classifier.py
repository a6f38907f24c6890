"""ilastik's pixel classifier without ilastik: features plus random forests, tile by tile.

A :class:`PixelClassifier` (from :mod:`steinbock_like.classify.ilastik.training`: loaded from
a project, or trained on its labels) computes ilastik's features and class probabilities
tile by tile, so that memory use does not grow with the image size.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from steinbock_like.classify.ilastik.features import (
    FeatureSelection,
    compute_feature_planes,
    feature_names,
)
from steinbock_like.classify.ilastik.forest import ForestEnsemble
from steinbock_like.errors import InputError
from steinbock_like.tiles import Tile, distributed_map, plan_tiles

logger = logging.getLogger(__name__)

#: Output tile edge in pixels: features of one tile take ``tile**2 * columns * 4`` bytes
#: (160 columns: 168 MB at 512).
DEFAULT_TILE_SIZE = 512
#: ilastik's export of probabilities to uint16: ``uint16(float32(p) * 65535)``, truncating.
UINT16_SCALE = np.float32(65535)


@dataclass(frozen=True)
class PixelClassifier:
    """ilastik features plus a random forest: multichannel image in, class probabilities out.

    Attributes
    ----------
    selection : FeatureSelection
        Features computed for every input channel.
    model : ForestEnsemble
        Forests over the feature columns; ``model.labels`` are ilastik label values (1-based).
    label_names : tuple of str
        Class names; output channel ``k`` is label ``k + 1``.
    num_channels : int
        Input channels the forests were trained on.
    source : Path or None
        Project file the classifier came from (named in errors).
    """

    selection: FeatureSelection
    model: ForestEnsemble
    label_names: tuple[str, ...]
    num_channels: int
    source: Path | None = None

    def __post_init__(self):
        expected = self.selection.num_columns(self.num_channels)
        if self.model.num_features != expected:
            raise InputError(
                self.source,
                f"the classifier uses {self.model.num_features} feature columns but the feature "
                f"selection gives {expected} for {self.num_channels} channels",
            )
        labels = np.asarray(self.model.labels)
        if labels.min() < 1 or labels.max() > len(self.label_names):
            raise InputError(
                self.source,
                f"classifier labels {labels.tolist()} do not match the "
                f"{len(self.label_names)} label names {list(self.label_names)}",
            )

    @property
    def num_classes(self) -> int:
        return len(self.label_names)

    @property
    def halo(self) -> int:
        """Context in pixels that a tile needs around it (the largest filter's reach)."""
        return self.selection.halo()

    def predict(
        self,
        image_cyx,
        *,
        tile_size: int = DEFAULT_TILE_SIZE,
        workers: int = 1,
        processes: bool = False,
        distribute: bool = False,
        workers_seen: set[str] | None = None,
        dtype=np.float32,
    ) -> np.ndarray:
        """Class probabilities of every pixel, shape (Y, X, classes).

        Parameters
        ----------
        image_cyx : array-like, shape (C, Y, X)
            Image in the classifier's channel layout (an ilastik ``img`` array). Anything that
            supports numpy slicing works, e.g. an ``h5py`` dataset, which is then read one tile
            (plus context) at a time.
        tile_size : int
            Edge of the output tiles. Each tile is computed with ``halo`` pixels of context, so
            the result does not depend on it; memory does (about ``tile_size**2 * F * 4`` bytes
            of features per tile for F feature columns).
        workers : int
            Tiles computed in parallel (1: one after the other in this thread).
        processes : bool
            Use worker processes instead of threads (threads share memory; processes avoid
            any contention on Python's GIL).
        distribute : bool
            Inside a dask task (a job of :class:`~steinbock_like.runner.dask.DaskExecutor`),
            spread the tiles over the cluster's workers
            (:func:`steinbock_like.tiles.distributed_map`); elsewhere no effect.
        workers_seen : set, optional
            With ``distribute``: the addresses of the dask workers that computed tiles are
            added to it.
        dtype : float32 or uint16
            float32 gives probabilities in 0..1; uint16 gives ilastik's export
            (``uint16(p * 65535)``).

        Returns
        -------
        ndarray, shape (Y, X, classes)
            Channel ``k`` is the class ``label_names[k]``; classes without training labels are 0.
        """
        shape = tuple(image_cyx.shape)
        if len(shape) != 3:
            raise ValueError(f"expected a CYX image, got shape {shape}")
        if shape[0] != self.num_channels:
            raise InputError(
                self.source,
                f"the classifier was trained on {self.num_channels}-channel images but the image "
                f"has {shape[0]} channels",
            )
        dtype = np.dtype(dtype)
        if dtype not in (np.dtype(np.float32), np.dtype(np.uint16)):
            raise ValueError(f"dtype must be float32 or uint16, got {dtype}")
        if tile_size < 1:
            raise ValueError(f"tile_size must be positive, got {tile_size}")
        height, width = shape[1:]
        result = np.zeros((height, width, self.num_classes), dtype=dtype)
        channels = np.asarray(self.model.labels, dtype=np.intp) - 1
        plan = plan_tiles((height, width), tile_size, self.halo, even=False)
        if workers > 1 and len(plan) > 1:
            tiles = self._predict_tiles_in_parallel(image_cyx, plan, workers, processes)
        elif distribute:
            inputs = _tile_inputs(image_cyx, plan)
            tiles = distributed_map(_RegionPredictor(self), inputs, workers_seen=workers_seen)
        else:
            tiles = (self.predict_region(image_cyx, tile.core_slices) for tile in plan)
        for tile, probabilities in zip(plan, tiles, strict=True):
            if dtype == np.uint16:
                probabilities = (probabilities * UINT16_SCALE).astype(np.uint16)
            result[tile.core_slices][..., channels] = probabilities
        return result

    def predict_region(
        self,
        image_cyx,
        region: tuple[slice, slice],
        columns: tuple[int, int] | None = None,
    ) -> np.ndarray:
        """Probabilities (in the order of ``model.labels``) of one region, shape (Y, X, K).

        The rest of ``image_cyx`` serves as context; at least ``halo`` pixels of it around the
        region give the same values as predicting the whole image. When ``image_cyx`` is a
        crop of a larger image, ``columns=(first column, image width)`` says where it lies
        (see :func:`compute_feature_planes`).
        """
        planes = compute_feature_planes(image_cyx, self.selection, region, columns=columns)
        num_columns, rows, cols = planes.shape
        # (F, N) planes viewed as (N, F) rows: no copy; the forests accept any layout.
        probabilities = self.model.predict_proba(planes.reshape(num_columns, -1).T)
        return probabilities.reshape(rows, cols, -1)

    def _predict_tiles_in_parallel(self, image_cyx, plan, workers: int, processes: bool):
        """Yield each tile's probabilities, computed by worker threads or processes, in order.

        The main thread reads each tile's context (so lazy inputs such as h5py datasets are
        only read from one thread) and keeps at most two tiles per worker in flight.
        """
        if processes:
            pool = ProcessPoolExecutor(
                workers, initializer=_set_worker_classifier, initargs=(self,)
            )
            predict = _predict_in_worker
        else:
            # scipy's filters, numpy's array loops and scikit-learn's tree traversal release
            # the GIL, so threads share the work without copying the classifier.
            pool = ThreadPoolExecutor(workers)
            predict = self.predict_region
        with pool:
            pending: deque = deque()
            for context, inner, columns in _tile_inputs(image_cyx, plan):
                pending.append(pool.submit(predict, context, inner, columns))
                while len(pending) >= 2 * workers:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()

    def features(self, image_cyx) -> np.ndarray:
        """ilastik's feature columns of a whole image, shape (Y, X, F)."""
        return compute_feature_planes(image_cyx, self.selection).transpose(1, 2, 0)

    def feature_names(self) -> list[str]:
        """ilastik's names of the feature columns."""
        return feature_names(self.selection, self.num_channels)


_worker_classifier: PixelClassifier | None = None


def _set_worker_classifier(classifier: PixelClassifier) -> None:
    global _worker_classifier
    _worker_classifier = classifier


def _predict_in_worker(
    context: np.ndarray, region: tuple[slice, slice], columns: tuple[int, int]
) -> np.ndarray:
    return _worker_classifier.predict_region(context, region, columns)


def _tile_inputs(image_cyx, plan: list[Tile]) -> Iterator[tuple]:
    """(context, core within it, (first column, width)) of each tile, read in order."""
    width = image_cyx.shape[2]
    for tile in plan:
        rows, cols = tile.outer_slices
        oy0, _, ox0, _ = tile.outer
        cy0, cy1, cx0, cx1 = tile.core
        context = np.asarray(image_cyx[:, rows, cols], dtype=np.float32)
        inner = (slice(cy0 - oy0, cy1 - oy0), slice(cx0 - ox0, cx1 - ox0))
        yield context, inner, (ox0, width)


class _RegionPredictor:
    """Picklable ``(context, core, columns) -> probabilities`` for tiles sent to dask workers."""

    def __init__(self, classifier: PixelClassifier) -> None:
        self.classifier = classifier

    def __call__(self, item: tuple) -> np.ndarray:
        return self.classifier.predict_region(*item)


def predict_image_file(
    classifier: PixelClassifier,
    path: str | Path,
    *,
    tile_size: int = DEFAULT_TILE_SIZE,
    workers: int = 1,
    distribute: bool = False,
    workers_seen: set[str] | None = None,
) -> np.ndarray:
    """Probabilities of an ilastik image file as ilastik exports them: uint16, YXC.

    Parameters
    ----------
    classifier : PixelClassifier
        From :func:`load_pixel_classifier` or :func:`train_pixel_classifier`.
    path : path-like
        HDF5 image in steinbock's layout (``ilastik_img/*.h5``: dataset ``img``, float32 CYX);
        read one tile at a time.
    tile_size, workers
        See :meth:`PixelClassifier.predict`.

    Raises
    ------
    InputError
        If the file is unreadable, not CYX, or has another channel count than the classifier.
    """
    from steinbock_like.io.ilastik import open_ilastik_image

    with open_ilastik_image(path) as dataset:
        if dataset.shape[0] != classifier.num_channels:
            raise InputError(
                path,
                f"image has {dataset.shape[0]} channels but the classifier "
                f"({classifier.source}) was trained on {classifier.num_channels}",
            )
        return classifier.predict(
            dataset,
            tile_size=tile_size,
            workers=workers,
            distribute=distribute,
            workers_seen=workers_seen,
            dtype=np.uint16,
        )
