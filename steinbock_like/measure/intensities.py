"""Per-object aggregation of image channels (steinbock's ``measure intensities``).

Objects are numbered compactly (:func:`compact_labels`): index 0 is the
background, 1..N the objects in ascending ID order. A channel is reduced by
object with :class:`IntensityAccumulator`, one band of rows at a time, so only
one band of one channel has to be in memory. Values equal scipy.ndimage's
(``sum_labels``, ``mean``, ``minimum``, ``maximum``, ``median``,
``standard_deviation``, ``variance``), which steinbock uses: sums in float64;
min, max and median in the image's float32.

Sums and means, the common case, go through :class:`RunSums`: the runs of equal
labels along the rows of a band are found once per mask, and each channel is then
summed run by run and the few runs added up per object: by a small compiled kernel
(``_run_sums.c``, built at installation where a C compiler is available; four
channels at a time, GIL released: ~0.6 ms per channel of 1 Mpx) or else by
``np.add.reduceat`` and ``np.bincount`` (~2.4 ms). Float32 values summed in float64
are exact whatever the order (for image values within 2**29 of each other's
scale), so both give the same bits, equal to the per-pixel sum.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence

import numpy as np

AGGREGATIONS = ("sum", "min", "max", "mean", "median", "std", "var")

try:  # the compiled run sums (setup.py builds them where a C compiler is available)
    from steinbock_like.measure import _run_sums
except ImportError:  # pragma: no cover - depends on the installation
    _run_sums = None
#: Value types whose float64 run sums the compiled kernel gives to the same bits as
#: numpy (numpy type characters; float64 values would differ by rounding: numpy sums
#: pairwise)
_KERNEL_TYPES = "fHhBb"


def object_ids(mask: np.ndarray, *, rows: int | None = None) -> np.ndarray:
    """The sorted positive IDs present in ``mask``.

    Counted band by band (``rows`` rows at a time) so a huge mask needs no
    wide temporary copy.
    """
    mask = np.asarray(mask)
    rows = len(mask) if rows is None else max(1, rows)
    present = np.zeros(int(mask.max(initial=0)) + 1, dtype=bool)
    for start in range(0, len(mask), rows):
        band = mask[start : start + rows]
        present[np.unique(band) if band.size < 4096 else _present(band, len(present))] = True
    present[0] = False
    return np.flatnonzero(present).astype(mask.dtype if mask.dtype.kind == "u" else np.int64)


def _present(band: np.ndarray, size: int) -> np.ndarray:
    return np.flatnonzero(np.bincount(band.ravel(), minlength=size))


def compact_labels(
    mask: np.ndarray, ids: np.ndarray | None = None, *, out: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Renumber the objects of ``mask`` 1..N in ascending ID order (0 stays background).

    Parameters
    ----------
    mask : ndarray of unsigned int, shape (Y, X)
    ids : ndarray, optional
        The IDs to number (default: all present, :func:`object_ids`); pixels of
        other IDs become background.
    out : ndarray, optional
        Where to write the result; pass ``mask`` itself to renumber in place.

    Returns
    -------
    ids : ndarray
        The original ID of object ``i`` at ``ids[i - 1]``.
    index : ndarray, same shape and dtype as ``mask``
        The compact numbering.
    """
    mask = np.asarray(mask)
    if ids is None:
        ids = object_ids(mask)
    top = int(mask.max(initial=0))
    if len(ids) == 0 or (int(ids[-1]) == len(ids) and top <= len(ids)):  # already 1..N
        if out is None:
            return ids, mask.copy()
        if out is not mask:
            out[...] = mask
        return ids, out
    lookup = np.zeros(max(top, int(ids.max(initial=0))) + 1, mask.dtype)
    lookup[ids] = np.arange(1, len(ids) + 1, dtype=mask.dtype)
    if out is None:
        out = np.empty_like(mask)
    rows = max(1, (1 << 22) // max(1, mask.shape[-1]))
    for start in range(0, len(mask), rows):
        np.take(lookup, mask[start : start + rows], out=out[start : start + rows])
    return ids, out


class IntensityAccumulator:
    """Reduce one channel by object, fed band by band.

    Parameters
    ----------
    num_objects : int
        N, the number of objects (compact indices 1..N).
    aggr : {"sum", "min", "max", "mean", "median", "std", "var"}

    Notes
    -----
    ``sum``/``mean`` keep per-object float64 sums; ``min``/``max`` running
    extremes; ``std``/``var`` per-band centred sums of squares combined exactly
    as in a parallel variance (for one band, scipy's two-pass formula);
    ``median`` keeps every object pixel's value until :meth:`result`.
    """

    def __init__(self, num_objects: int, aggr: str = "mean") -> None:
        if aggr not in AGGREGATIONS:
            raise ValueError(f"unknown aggregation {aggr!r}; expected one of {AGGREGATIONS}")
        self.aggr = aggr
        self.size = num_objects + 1
        self.counts = np.zeros(self.size, dtype=np.int64)
        if aggr in ("sum", "mean", "std", "var"):
            self.sums = np.zeros(self.size)
        if aggr in ("std", "var"):
            self.squares = np.zeros(self.size)
        if aggr == "min":
            self.extreme = np.full(self.size, np.inf, dtype=np.float32)
        if aggr == "max":
            self.extreme = np.full(self.size, -np.inf, dtype=np.float32)
        if aggr == "median":
            self.parts: list[tuple[np.ndarray, np.ndarray]] = []

    def add(self, index: np.ndarray, values: np.ndarray, counts: np.ndarray | None = None) -> None:
        """Add a band: compact object indices and the channel's values (same shape).

        ``counts`` (``np.bincount(index, minlength=N + 1)``) may be passed when the
        same band is added for many channels; an ``index`` already flattened to
        ``np.intp`` saves a conversion per call.
        """
        index = np.asarray(index).ravel()
        if index.dtype != np.intp:
            index = index.astype(np.intp)
        values = np.asarray(values, dtype=np.float32).ravel()
        if counts is None:
            counts = np.bincount(index, minlength=self.size)
        aggr = self.aggr
        if aggr in ("sum", "mean"):
            self.sums += np.bincount(index, weights=values, minlength=self.size)
        elif aggr in ("std", "var"):
            sums = np.bincount(index, weights=values, minlength=self.size)
            with np.errstate(invalid="ignore", divide="ignore"):
                means = sums / counts
            centred = values - means[index]
            squares = np.bincount(index, weights=centred * centred, minlength=self.size)
            total = self.counts + counts
            with np.errstate(invalid="ignore", divide="ignore"):
                delta = means - self.sums / self.counts
                correction = delta * delta * (self.counts * counts / total)
            both = (self.counts > 0) & (counts > 0)
            self.squares[both] += squares[both] + correction[both]
            only_new = (self.counts == 0) & (counts > 0)
            self.squares[only_new] = squares[only_new]
            self.sums += sums
        elif aggr in ("min", "max"):
            objects = index > 0
            if objects.any():
                order = np.argsort(index[objects], kind="stable")
                sorted_index = index[objects][order]
                sorted_values = values[objects][order]
                starts = np.flatnonzero(np.r_[True, sorted_index[1:] != sorted_index[:-1]])
                reduce = np.minimum if aggr == "min" else np.maximum
                found = reduce.reduceat(sorted_values, starts)
                present = sorted_index[starts]
                self.extreme[present] = reduce(self.extreme[present], found)
        else:  # median
            objects = index > 0
            self.parts.append((index[objects].copy(), values[objects].copy()))
        self.counts += counts

    def result(self) -> np.ndarray:
        """The per-object values, objects 1..N (NaN where an object had no pixels)."""
        aggr = self.aggr
        counts = self.counts[1:]
        with np.errstate(invalid="ignore", divide="ignore"):
            if aggr == "sum":
                return self.sums[1:].copy()
            if aggr == "mean":
                return self.sums[1:] / counts
            if aggr == "var":
                return self.squares[1:] / counts
            if aggr == "std":
                return np.sqrt(self.squares[1:] / counts)
        if aggr in ("min", "max"):
            out = self.extreme[1:].copy()
            out[counts == 0] = np.nan
            return out
        return self._median()

    def _median(self) -> np.ndarray:
        if self.parts:
            index = np.concatenate([p[0] for p in self.parts])
            values = np.concatenate([p[1] for p in self.parts])
        else:
            index = np.zeros(0, dtype=np.intp)
            values = np.zeros(0, dtype=np.float32)
        self.parts = []
        order = np.lexsort((values, index))
        values = values[order]
        counts = self.counts[1:]
        ends = np.cumsum(counts)
        starts = ends - counts
        present = counts > 0
        lo = starts + (counts - 1) // 2
        hi = starts + counts // 2
        out = np.full(len(counts), np.nan, dtype=np.float32)
        out[present] = (values[lo[present]] + values[hi[present]]) / np.float32(2)
        return out


def label_runs(index: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Runs of equal values in ``index`` read in row-major order.

    Returns
    -------
    starts : ndarray of intp
        Offset of each run's first pixel in the flattened ``index``.
    labels : ndarray of intp
        The value of each run.
    lengths : ndarray of intp
        Pixels per run.
    """
    flat = np.ascontiguousarray(index).ravel()
    if not flat.size:
        empty = np.zeros(0, dtype=np.intp)
        return empty, empty, empty
    change = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    starts = np.empty(len(change) + 1, dtype=np.intp)
    starts[0] = 0
    starts[1:] = change
    lengths = np.diff(starts, append=flat.size)
    return starts, flat[starts].astype(np.intp), lengths


class RunSums:
    """Per-object float64 sums of channels over one compact index, band by band.

    The runs of each band of the index (a band is keyed by its first row and its
    row count) are found on first use and reused for every channel; thread-safe.

    Parameters
    ----------
    num_objects : int
        N, the number of objects (compact indices 1..N).
    keep_labels : bool
        Keep each run's label too (faster); otherwise only the run starts are kept
        (4 bytes a run: for whole-slide images) and the labels are looked up in the
        index for each channel.

    Attributes
    ----------
    counts : ndarray of int64, shape (N + 1,)
        Pixels per object (index 0: background) over the bands seen so far.
    """

    def __init__(self, num_objects: int, *, keep_labels: bool = True) -> None:
        self.size = num_objects + 1
        self.counts = np.zeros(self.size, dtype=np.int64)
        self.keep_labels = keep_labels
        self._runs: dict[tuple[int, int], tuple[np.ndarray, np.ndarray | None]] = {}
        self._lock = threading.Lock()

    def runs(self, start: int, index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(starts, labels)`` of the band of ``index`` beginning at row ``start``."""
        key = (start, len(index))
        runs = self._runs.get(key)
        if runs is None:
            with self._lock:
                runs = self._runs.get(key)
                if runs is None:
                    starts, labels, lengths = label_runs(index)
                    counts = np.bincount(labels, weights=lengths, minlength=self.size)
                    self.counts += counts.astype(np.int64)
                    # kept for every band of a whole-slide image: the smallest types
                    if index.size < 2**31:
                        starts = starts.astype(np.int32)
                    if not self.keep_labels:
                        labels = None
                    elif self.size <= 2**32:
                        labels = labels.astype(np.uint32)
                    runs = self._runs[key] = (starts, labels)
        starts, labels = runs
        if labels is None:
            labels = np.ascontiguousarray(index).ravel()[starts]
        return starts, labels

    def sums(self, start: int, index: np.ndarray, values: np.ndarray) -> np.ndarray:
        """Per-object sums (index 0: background) of a band of one channel.

        ``index`` and ``values`` are the same band (same shape), beginning at row
        ``start`` of the image.
        """
        return self.sums_many(start, index, [values])[0]

    def sums_many(self, start: int, index: np.ndarray, channels: Sequence) -> np.ndarray:
        """:meth:`sums` of several channels (same band), shape ``(len(channels), N + 1)``;
        the compiled kernel sums them together, four at a time."""
        starts, labels = self.runs(start, index)
        out = np.zeros((len(channels), self.size))
        if not len(starts) or not len(channels):
            return out
        flats = [np.ascontiguousarray(values).ravel() for values in channels]
        dtype = flats[0].dtype
        if (
            _run_sums is not None
            and dtype.isnative
            and dtype.char in _KERNEL_TYPES
            and all(flat.dtype == dtype for flat in flats)
        ):
            if labels.dtype != np.uint32:
                labels = labels.astype(np.int64)
            _run_sums.run_sums(flats, starts, labels, out)  # releases the GIL
            return out
        for row, flat in zip(out, flats, strict=True):
            # float64 first: reduceat is slower when it casts as it goes
            per_run = np.add.reduceat(flat.astype(np.float64), starts)
            row[:] = np.bincount(labels, weights=per_run, minlength=self.size)
        return out


def aggregate_channel(
    bands: Iterable[tuple[np.ndarray, np.ndarray]], num_objects: int, aggr: str = "mean"
) -> np.ndarray:
    """Reduce one channel given as ``(index band, value band)`` pairs; see
    :class:`IntensityAccumulator`."""
    accumulator = IntensityAccumulator(num_objects, aggr)
    for index, values in bands:
        accumulator.add(index, values)
    return accumulator.result()


def intensity_table(
    ids: np.ndarray,
    columns: dict[str, np.ndarray],
    *,
    suffix: str = "",
):
    """A steinbock intensities table (a DataFrame): index ``Object`` (the IDs), one
    column per channel."""
    import pandas as pd

    data = {f"{name}{suffix}": values for name, values in columns.items()}
    return pd.DataFrame(data, index=pd.Index(ids, name="Object"))


def measure_intensities(
    image: np.ndarray,
    mask: np.ndarray,
    channel_names: Sequence[str],
    aggr: str = "mean",
):
    """Aggregate every channel of ``image`` over each object of ``mask``.

    Parameters
    ----------
    image : ndarray, shape (C, Y, X)
    mask : ndarray of int, shape (Y, X)
    channel_names : sequence of str, length C
    aggr : str
        One of :data:`AGGREGATIONS`.

    Returns
    -------
    DataFrame
        Indexed by ``Object`` (the mask's IDs, ascending), one column per channel.
    """
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[1:] != np.shape(mask):
        raise ValueError(f"image shape {image.shape} does not fit mask shape {np.shape(mask)}")
    if len(channel_names) != len(image):
        raise ValueError(f"{len(channel_names)} channel names for {len(image)} channels")
    ids, index = compact_labels(np.asarray(mask))
    if aggr in ("sum", "mean"):
        runs = RunSums(len(ids))
        columns = {}
        for c, name in enumerate(channel_names):
            sums = runs.sums(0, index, image[c])[1:]
            with np.errstate(invalid="ignore", divide="ignore"):
                columns[name] = sums if aggr == "sum" else sums / runs.counts[1:]
        return intensity_table(ids, columns)
    columns = {
        name: aggregate_channel([(index, image[c])], len(ids), aggr)
        for c, name in enumerate(channel_names)
    }
    return intensity_table(ids, columns)
