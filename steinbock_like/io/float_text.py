"""CSV text of numeric columns, vectorized: float64 exactly as Python's ``repr``.

pandas (and therefore steinbock) writes float64 values with ``repr``: the shortest
decimal that reads back as the same float64, positional for decimal exponents
-4..15 (``0.0001``, ``123.0``, ``1000000000000000.0``), scientific otherwise
(``1e-05``, ``1e+16``). ``repr`` costs about a microsecond per value here, most of
the time of writing a table; :func:`csv_lines` finds the same digits with numpy
for whole columns at once.

Method: for a float64 ``x`` with decimal exponent ``e`` (``10**e <= |x| <
10**(e+1)``), ``|x| * 10**(16 - e)`` is computed exactly as a double-double
(Dekker's two-product; the powers of ten used are exact doubles) and rounded to
the 17-digit integer ``D17``, with the remainder. The nearest ``k``-digit decimal
is ``D17`` rounded to a multiple of ``10**(17 - k)`` (exact integer arithmetic on
``D17`` and its remainder); it reads back as ``x`` iff its distance to ``|x| *
10**(16 - e)`` is below half the gap from ``x`` to its float64 neighbour on that
side, times ``10**(16 - e)`` (exact: a power of two times a power of five). The
shortest ``k`` that reads back is what ``repr`` prints (a longer correctly rounded
decimal is never farther from ``x``, so ``k`` is found by shortening while it
fits). Each decision is taken with a margin far above the rounding error of the
double arithmetic; values whose decision falls inside the margin (exact ties),
values written in scientific notation, NaN and infinities are formatted by
``repr`` itself, so the text is always ``repr``'s. The digits are then laid out as
fixed-point text with a table of 4-digit strings.

Object tables (integer IDs, float64 columns) are written by ``_float_text.c``
where it was built: the same decisions in exact 128-bit integer arithmetic,
about 10x faster, GIL released; its text is tested against ``repr`` too.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

try:  # the same text from compiled code (setup.py builds it where a C compiler is available)
    from steinbock_like.io import _float_text as _compiled
except ImportError:  # pragma: no cover - depends on the installation
    _compiled = None

_SPLIT = 134217729.0  # 2**27 + 1: Veltkamp's splitter for doubles
_EPS = 2.0**-52
_POW10_F = 10.0 ** np.arange(23)  # exact doubles (5**22 < 2**53)
_POW10_I = 10 ** np.arange(19, dtype=np.int64)
_ZERO, _POINT, _MINUS = ord("0"), ord("."), ord("-")


class _Scaled:
    """Positive doubles ``a`` split once, to scale exactly by powers of ten."""

    def __init__(self, a: np.ndarray):
        self.a = a
        c = _SPLIT * a
        self.hi = c - (c - a)
        self.lo = a - self.hi

    def product(self, j: np.ndarray, rows=slice(None)):
        """``a[rows] * 10**j == p + err`` exactly."""
        a, a_hi, a_lo = self.a[rows], self.hi[rows], self.lo[rows]
        power = _POW10_F[j]
        c = _SPLIT * power
        p_hi = c - (c - power)
        p_lo = power - p_hi
        p = a * power
        err = ((a_hi * p_hi - p) + a_hi * p_lo + a_lo * p_hi) + a_lo * p_lo
        return p, err


def _round(p: np.ndarray, err: np.ndarray):
    """Nearest integer ``D`` to ``p + err`` (int64), the remainder ``p + err - D`` in
    [-1/2, 1/2], its error bound, and whether the rounding was too close to call (an
    exact tie, or within the error of the remainder)."""
    p_int = np.rint(p)
    f = (p - p_int) + err  # one rounding: error <= |f| * 2**-53
    f_int = np.rint(f)
    rest = f - f_int
    margin = 4 * _EPS * np.abs(f)
    tie = np.abs(np.abs(rest) - 0.5) <= margin
    return p_int.astype(np.int64) + f_int.astype(np.int64), rest, margin, tie


def _shortest(a: np.ndarray, e: np.ndarray, d17: np.ndarray, rest17: np.ndarray, tie17):
    """Shortest round-tripping digits of positive non-integers ``a``.

    ``e``: their decimal exponents; ``d17 + rest17 == a * 10**(16 - e)`` exactly
    (``d17`` the 17-digit rounding, ``tie17`` where it was too close to call). A
    ``k``-digit candidate is ``d17`` rounded to a multiple of ``10**m``, ``m = 17 -
    k``; it reads back as ``a`` iff its distance to ``d17 + rest17`` is below half
    the gap to ``a``'s float64 neighbour on that side, times ``10**(16 - e)``.

    Returns ``(D, k, unsure)``: ``D`` has ``k`` digits (is ``10**k`` after a carry);
    ``unsure`` marks values left to ``repr``.
    """
    scale = _POW10_F[16 - e]
    bits = a.view(np.int64)  # positive doubles: neighbours are the next bit patterns
    half_up = 0.5 * ((bits + 1).view(np.float64) - a) * scale  # exact: 2**i * 5**j, j <= 22
    half_down = 0.5 * (a - (bits - 1).view(np.float64)) * scale
    n = len(a)
    best = d17.copy()
    count = np.full(n, 17, dtype=np.int64)
    unsure = tie17.copy()
    # a non-integer below 2**53 never reads back from an integer: k >= e + 2
    most = np.minimum(16, 15 - e)
    alive = most >= 1  # rows whose (17 - m + 1)-digit rounding fits
    rows = None  # m = 1, 2 on all rows at once (most values stop there), then the few left
    for m in range(1, 17):
        if rows is None:
            fits, shaky, digits = _fits(d17, rest17, half_down, half_up, m)
            valid = alive & (most >= m)
            fits &= valid
            shaky &= valid
            fit_rows, shaky_rows = np.flatnonzero(fits), np.flatnonzero(shaky)
        else:
            fits, shaky, digits = _fits(d17[rows], rest17[rows], half_down[rows], half_up[rows], m)
            valid = most[rows] >= m
            fits &= valid
            shaky &= valid
            fit_rows, shaky_rows = rows[fits], rows[shaky]
        unsure[shaky_rows] = True
        unsure[fit_rows] = False  # a shorter decimal fits: the 17-digit tie is moot
        best[fit_rows] = digits[fits]
        count[fit_rows] = 17 - m
        if rows is None and m < 2:
            alive = fits
            if not alive.any():
                break
        else:
            rows = fit_rows
            if not len(rows):
                break
    return best, count, unsure


def _fits(d, rest, half_down, half_up, m):
    """Whether ``d`` rounded to a multiple of ``10**m`` reads back (see
    :func:`_shortest`): ``(fits, too close to call, the rounded digits)``."""
    margin = 1e-12
    power = int(_POW10_I[m])
    q = d // power
    r = d - q * power
    mid = power // 2
    at_mid = r == mid
    up = (r > mid) | (at_mid & (rest > margin))
    tie = at_mid & (np.abs(rest) <= margin)
    signed = (up * power - r) - rest  # candidate - (d17 + rest17)
    half = half_down + (signed > 0) * (half_up - half_down)
    distance = np.abs(signed)
    shaky = (np.abs(distance - half) <= margin) | (tie & (half >= mid - 1))
    fits = (distance < half) & ~shaky
    return fits, shaky, q + up


def float64_digits(values: np.ndarray):
    """The digits of ``repr`` of float64 values written positionally.

    Returns
    -------
    digits : ndarray of int64
        The significant digits, without trailing zeros (0 for zero).
    count : ndarray of int64
        How many (at least 1).
    exponent : ndarray of int64
        Decimal exponent of the first digit (-4..15).
    fallback : ndarray of bool
        Values left to ``repr`` (NaN, infinities, scientific notation, ties);
        their other outputs are meaningless.
    """
    x = np.asarray(values, dtype=np.float64).ravel()
    ax = np.abs(x)
    n = len(x)
    digits = np.zeros(n, dtype=np.int64)
    exponent = np.zeros(n, dtype=np.int64)
    with np.errstate(invalid="ignore"):
        fallback = ~((ax >= 1e-5) & (ax < 1e16)) & (ax != 0)  # NaN compares False
        regular = ~fallback & (ax != 0)
        whole = regular & (ax == np.rint(ax))
    count = np.ones(n, dtype=np.int64)
    ints = np.flatnonzero(whole)
    if len(ints):  # integers below 1e16 are exact int64; their digits lose trailing zeros
        value = ax[ints].astype(np.int64)
        exponent[ints] = np.searchsorted(_POW10_I, value, side="right") - 1
        for step in (8, 4, 2, 1):
            divisible = value % _POW10_I[step] == 0
            value[divisible] //= _POW10_I[step]
        digits[ints] = value
        count[ints] = np.searchsorted(_POW10_I, value, side="right")
    frac = np.flatnonzero(regular & ~whole)
    if len(frac):
        a = ax[frac]
        e = np.floor(np.log10(a)).astype(np.int64)
        scaled = _Scaled(a)
        fix = np.arange(len(a))
        d17 = np.zeros(len(a), dtype=np.int64)
        rest17 = np.zeros(len(a))
        tie17 = np.zeros(len(a), dtype=bool)
        for _ in range(3):  # exactly 10**e <= a < 10**(e + 1): a * 10**(16 - e) has 17 digits
            j = np.minimum(np.maximum(16 - e[fix], 0), 22)
            p, err = scaled.product(j, fix)
            below = (p < 1e16) | ((p == 1e16) & (err < 0))
            above = (p > 1e17) | ((p == 1e17) & (err >= 0))
            right = ~below & ~above
            if right.all():
                d17[fix], rest17[fix], _, tie17[fix] = _round(p, err)
                fix = fix[:0]
                break
            done = fix[right]
            d17[done], rest17[done], _, tie17[done] = _round(p[right], err[right])
            e[fix] += above.astype(np.int64) - below
            fix = fix[~right]
        good = (e >= -5) & (e <= 15)
        good[fix] = False
        if not good.all():
            fallback[frac[~good]] = True
            frac, a, e = frac[good], a[good], e[good]
            d17, rest17, tie17 = d17[good], rest17[good], tie17[good]
        d, k, unsure = _shortest(a, e, d17, rest17, tie17)
        fallback[frac[unsure]] = True
        carry = d >= _POW10_I[k]  # rounded up to the next power of ten: "1"
        d[carry] = 1
        k[carry] = 1
        digits[frac] = d
        count[frac] = k
        exponent[frac] = e + carry
    fallback |= (exponent < -4) | (exponent > 15)
    return digits, count, exponent, fallback


def _text_chars(strings: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Texts (without NUL characters) as a character matrix and the mask of its characters."""
    encoded = np.array([str(s).encode("utf-8") for s in strings], dtype=bytes)
    if encoded.dtype.itemsize == 0:
        encoded = encoded.astype("S1")
    chars = encoded.view(np.uint8).reshape(len(strings), -1)
    return chars, chars != 0


def integer_chars(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Decimal text of integers (below 10**18 in magnitude) as a character matrix and
    the mask of its characters."""
    v = np.asarray(values).ravel().astype(np.int64)
    if len(v) and v.min() < 0:
        return _text_chars([str(i) for i in v.tolist()])
    count = np.maximum(np.searchsorted(_POW10_I, v, side="right"), 1)
    width = int(count.max(initial=1))
    keep = np.arange(width)[None, :] >= (width - count)[:, None]
    return _fixed_columns(v.astype(np.uint64))[:, 20 - width :], keep


# A value's digits are laid out in a row of _ROW characters, first digit at column
# _LEAD (the other 16 at _LEAD + 1 .. _LEAD + 16, four-aligned for uint32 writes),
# zeros around them: decimal place p of a value with exponent e is at _LEAD + e - p.
_LEAD, _ROW = 19, 60
# "0000".."9999" as uint32 words whose bytes are the ASCII digits in order
_TABLE4 = np.frombuffer("".join(f"{i:04d}" for i in range(10000)).encode(), dtype=np.uint32)


_POW10_U = 10 ** np.arange(20, dtype=np.uint64)


def _fixed_columns(values: np.ndarray) -> np.ndarray:
    """(n, 20) ASCII digits of uint64 ``values``, right-aligned, zero-padded."""
    out = np.empty((len(values), 20), dtype=np.uint8)
    words = out.view(np.uint32)
    rest = values
    for i in range(5):
        quotient = rest // 10000
        words[:, 4 - i] = _TABLE4[(rest - quotient * 10000).astype(np.intp)]
        rest = quotient
    return out


def _digit_rows(digits: np.ndarray, count: np.ndarray) -> np.ndarray:
    """(n, _ROW) rows of ``digits`` (``count`` digits each, < 10**17) laid out as above."""
    n = len(digits)
    row = np.full((n, _ROW), _ZERO, dtype=np.uint8)
    aligned = digits * _POW10_I[17 - count]  # 17 digits, left-aligned
    first = aligned // 10**16
    rest = aligned - first * 10**16
    row[:, _LEAD] += first.astype(np.uint8)
    words = row.view(np.uint32)
    column = (_LEAD + 1) // 4
    for i, power in enumerate((10**12, 10**8, 10**4, 1)):
        group = rest // power
        rest -= group * power
        words[:, column + i] = _TABLE4[group]
    return row


def float64_chars(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``repr`` of each float64 (NaN: empty) as a character matrix and the mask of its
    characters (row ``i``'s text is ``chars[i][keep[i]]``)."""
    x = np.asarray(values, dtype=np.float64).ravel()
    n = len(x)
    digits, count, exponent, fallback = float64_digits(x)
    digits[fallback] = 0
    count[fallback] = 1
    exponent[fallback] = 0
    top = int(exponent.max(initial=0)) if n else 0
    top = max(top, 0)
    bottom = int(np.minimum(exponent - count + 1, -1).min(initial=-1))
    width = 1 + (top + 1) + 1 + (-bottom)
    point = top + 2  # the column of the decimal point
    chars = np.empty((n, width), dtype=np.uint8)
    chars[:, 0] = _MINUS
    chars[:, point] = _POINT
    span = top - bottom + 1  # decimal places top..bottom
    if span <= 19:  # as fixed-point integers (units of 10**bottom): plain columns
        shift = exponent - count + 1 - bottom
        fixed = digits.astype(np.uint64) * _POW10_U[shift]
        columns = _fixed_columns(fixed)[:, 20 - span :]
        chars[:, 1:point] = columns[:, : top + 1]
        chars[:, point + 1 :] = columns[:, top + 1 :]
    else:  # places top..0 and -1..bottom: one slice of the rows for each exponent
        row = _digit_rows(digits, count)
        groups = np.flatnonzero(np.bincount(exponent + 4, minlength=20)) - 4
        for e in groups.tolist():
            rows = exponent == e
            whole = slice(_LEAD + e - top, _LEAD + e + 1)
            chars[rows, 1:point] = row[rows, whole]
            chars[rows, point + 1 :] = row[rows, _LEAD + e + 1 : _LEAD + e + 1 - bottom]
    places = np.arange(top, bottom - 1, -1, dtype=np.int8)
    keep = np.empty((n, width), dtype=bool)
    keep[:, 0] = np.signbit(x) & ~fallback
    left = np.maximum(exponent, 0).astype(np.int8)[:, None]
    keep[:, 1:point] = places[None, : top + 1] <= left
    keep[:, point] = True
    right = np.minimum(exponent - count + 1, -1).astype(np.int8)[:, None]
    keep[:, point + 1 :] = places[None, top + 1 :] >= right
    rows = np.flatnonzero(fallback)
    if len(rows):
        text, text_keep = _text_chars(["" if v != v else repr(v) for v in x[rows].tolist()])
        if text.shape[1] > width:
            chars = np.pad(chars, ((0, 0), (0, text.shape[1] - width)))
            keep = np.pad(keep, ((0, 0), (0, text.shape[1] - width)))
        keep[rows] = False
        chars[rows, : text.shape[1]] = text
        keep[rows, : text.shape[1]] = text_keep
    return chars, keep


def column_chars(values) -> tuple[np.ndarray, np.ndarray]:
    """A column's text as a character matrix and mask: float64 as ``repr``, integers
    in decimal, anything else as ``str`` of each value (written as given)."""
    if isinstance(values, np.ndarray) and values.dtype == np.float64:
        return float64_chars(values)
    if isinstance(values, np.ndarray) and values.dtype.kind in "iu":
        return integer_chars(values)
    return _text_chars([str(v) for v in values])


def _is_float64(values) -> bool:
    return isinstance(values, np.ndarray) and values.dtype == np.float64


def _is_integer_index(values) -> bool:
    """Integers that int64 holds (the compiled writer's index column)."""
    return (
        isinstance(values, np.ndarray)
        and values.ndim == 1
        and values.dtype.kind in "iu"
        and (values.dtype.kind == "i" or values.dtype.itemsize < 8)
    )


def csv_lines(columns: Sequence, sep: str = ",") -> bytes:
    """Rows of ``sep``-separated fields, each line ending in a newline.

    ``columns`` are equally long 1-D arrays (float64 written as ``repr``, integers)
    or sequences of strings (written as given: quote them first where needed).
    Neighbouring float64 columns are formatted together.
    """
    if (
        _compiled is not None
        and sep == ","
        and len(columns) > 1
        and _is_integer_index(columns[0])
        and all(_is_float64(c) for c in columns[1:])
    ):  # an object table: integer IDs and float64 values (compiled, GIL released)
        values = np.stack(columns[1:], axis=1)
        return _compiled.csv_rows(columns[0].astype(np.int64), values)
    n = len(columns[0])
    pieces = []
    i = 0
    while i < len(columns):
        j = i + 1
        if _is_float64(columns[i]):
            while j < len(columns) and _is_float64(columns[j]):
                j += 1
            block = np.stack([np.asarray(c) for c in columns[i:j]], axis=1)
            chars, keep = float64_chars(block.ravel())
            chars = chars.reshape(n, j - i, -1)
            keep = keep.reshape(n, j - i, -1)
        else:
            chars, keep = column_chars(columns[i])
            chars, keep = chars[:, None, :], keep[:, None, :]
        ends = np.full((n, j - i, 1), ord(sep), dtype=np.uint8)
        if j == len(columns):
            ends[:, -1] = ord("\n")
        chars = np.concatenate([chars, ends], axis=2).reshape(n, -1)
        keep = np.concatenate([keep, np.ones((n, j - i, 1), dtype=bool)], axis=2).reshape(n, -1)
        pieces.append((chars, keep))
        i = j
    if len(pieces) > 1:
        chars = np.concatenate([c for c, _ in pieces], axis=1)
        keep = np.concatenate([k for _, k in pieces], axis=1)
    return chars[keep].tobytes()
