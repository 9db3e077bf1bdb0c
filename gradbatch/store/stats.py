"""What a picture needs to know of a whole field, read from the file: a
:class:`~gradbatch.records.FieldStats` (finite range, non-finite and non-positive counts,
percentiles).

Percentiles always come from one fixed pyramid level (:func:`stats_level`: the finest level with
at most :data:`STATS_MAX_POINTS` points), so they never depend on the part of the field a picture
reads. The range and counts come from the per-tile tables written with the tiles (exact, full
resolution) where the file has them for every done tile; otherwise (an older file) from that same
level, marked ``exact=False``: block means narrow the range.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import h5py
import numpy as np

from ..errors import StoreError
from ..records import FieldStats
from . import layout as L
from .access import bad_attr, child, plain, read_array, reading

if TYPE_CHECKING:  # the reader imports this module
    from ..grid import TileLayout
    from .reader import JobLayout

__all__ = [
    "PERCENTS",
    "STATS_MAX_POINTS",
    "stats_level",
    "field_stats",
    "finite_summary",
    "percentiles_of",
    "tile_ranges",
    "complete_ranges",
    "write_percentiles",
]

PERCENTS = (0.5, 1.0, 2.0, 5.0, 10.0, 25.0, 50.0, 75.0, 90.0, 95.0, 98.0, 99.0, 99.5)
"""The percentiles stored per field (percent), ascending."""

STATS_MAX_POINTS = 1 << 22
"""Percentiles are taken over the finest pyramid level with at most this many points (4,194,304:
an 8192 x 8192 job's level 2), read whole in a fraction of a second."""


def stats_level(shapes: Sequence[tuple[int, ...]]) -> tuple[int, int]:
    """(level, stride) the percentiles are taken from: the finest level of ``shapes`` (level 0,
    1, ...) with at most :data:`STATS_MAX_POINTS` points, stride 1; a job whose coarsest level
    is larger (no pyramid) takes every stride-th point of that level along each axis."""
    for k, shape in enumerate(shapes):
        if math.prod(shape) <= STATS_MAX_POINTS:
            return k, 1
    k = len(shapes) - 1
    shape = shapes[k]
    stride = max(2, int((math.prod(shape) / STATS_MAX_POINTS) ** (1.0 / len(shape))))
    while math.prod(-(-n // stride) for n in shape) > STATS_MAX_POINTS:
        stride += 1
    return k, stride


def finite_summary(values: np.ndarray) -> tuple[float, float, float, int]:
    """(minimum, maximum, smallest positive value, count of values <= 0) of the finite
    ``values`` given (any shape); NaN where there is none."""
    if values.size == 0:
        return math.nan, math.nan, math.nan, 0
    positive = values[values > 0]
    return (
        float(values.min()),
        float(values.max()),
        float(positive.min()) if positive.size else math.nan,
        int(values.size - positive.size),
    )


def percentiles_of(finite: np.ndarray) -> tuple[tuple[float, float], ...]:
    """(percent, value) at :data:`PERCENTS` of the finite values given; () without any."""
    if finite.size == 0:
        return ()
    # numpy's "linear" percentiles, from one partition in the field's dtype (measured on 4.2M
    # float32 points: 0.13 s, against 0.34 s for np.percentile of a float64 copy)
    n = finite.size
    where = np.asarray(PERCENTS) / 100.0 * (n - 1)
    lo = np.floor(where).astype(np.int64)
    hi = np.minimum(lo + 1, n - 1)
    kth = np.array(sorted({*lo.tolist(), *hi.tolist()}), dtype=np.int64)  # not np.unique: it imports numpy.ma
    ordered = np.partition(finite.ravel(), kth)
    low, high = ordered[lo].astype(np.float64), ordered[hi].astype(np.float64)
    values = low + (high - low) * (where - lo)
    return tuple((float(q), float(v)) for q, v in zip(PERCENTS, values))


def _level_values(path: str | Path, g: h5py.Group, name: str, level: int, stride: int) -> np.ndarray:
    """Field ``name`` at pyramid ``level`` (every ``stride``-th point), read whole."""
    d = child(path, g, L.level_path(level, name))
    with reading(path, d.name):
        if d.file.swmr_mode:
            d.refresh()  # a file still being written: see the tiles that landed since
    return read_array(path, d, tuple(slice(None, None, stride) for _ in range(d.ndim)))


def field_stats(path: str | Path, g: h5py.Group, lay: JobLayout, name: str) -> FieldStats:
    """The statistics of field ``name`` of the job group ``g`` (checked as ``lay``): exact from
    the per-tile tables where every done tile has its row, else from the fixed level."""
    i = lay.fields.index(name)
    points = math.prod(lay.shapes[0])
    t = _tables(path, g, len(lay.fields))
    counts = None if t.nonfinite is None else tuple(int(n) for n in t.nonfinite[t.done, i].sum(axis=0))
    if counts is None or t.ranges is None or t.nonpositive is None or (t.nonpositive[t.done, i] < 0).any():
        level, stride = stats_level(lay.shapes)
        return _from_level(name, points, _level_values(path, g, name, level, stride).ravel(), counts, level)
    rows = t.ranges[t.done, i]
    stored = _stored_percentiles(path, child(path, g, name), len(lay.shapes))
    if stored is None:  # not finished yet: percentiles of the fixed level as it stands
        level, stride = stats_level(lay.shapes)
        values = _level_values(path, g, name, level, stride)
        stored = percentiles_of(values[np.isfinite(values)]), level
    nan, posinf, neginf = counts
    return FieldStats(
        name,
        points,
        nan,
        posinf,
        neginf,
        _reduce(np.fmin, rows[:, 0]),
        _reduce(np.fmax, rows[:, 1]),
        _reduce(np.fmin, rows[:, 2]),
        int(t.nonpositive[t.done, i].sum()),
        *stored,
    )


def _from_level(name: str, points: int, values: np.ndarray, counts: tuple[int, ...] | None, level: int) -> FieldStats:
    """A field's statistics from ``values`` of its fixed level (a file without per-tile
    ranges). Counts of the level are scaled to the grid (estimates, unless level 0 is read
    whole); ``counts``: the non-finite points from the tile table, where the file has one."""
    finite = values[np.isfinite(values)]
    lo, hi, low_positive, nonpositive = finite_summary(finite)
    scale = points / max(values.size, 1)
    if counts is None:
        counts = tuple(round(int(test(values).sum()) * scale) for test in (np.isnan, np.isposinf, np.isneginf))
    nan, posinf, neginf = counts
    exact = level == 0 and values.size == points
    return FieldStats(
        name,
        points,
        nan,
        posinf,
        neginf,
        lo,
        hi,
        low_positive,
        round(nonpositive * scale),
        percentiles_of(finite),
        level,
        exact,
    )


@dataclass(frozen=True)
class _Tables:
    """A job's per-tile tables (None: a file written without one), read whole and checked."""

    done: np.ndarray  # (tiles,) bool, flat (row-major over the tile grid)
    nonfinite: np.ndarray | None  # (tiles, fields, 3)
    ranges: np.ndarray | None  # (tiles, fields, 3)
    nonpositive: np.ndarray | None  # (tiles, fields); -1: the tile's ranges were not recorded


def _tables(path: str | Path, g: h5py.Group, fields: int) -> _Tables:
    d = child(path, g, L.DONE)
    with reading(path, d.name):
        if d.file.swmr_mode:
            d.refresh()  # a file still being written: see the tiles that landed since
    done = read_array(path, d).ravel() != 0
    n = done.size
    return _Tables(
        done,
        _table(path, g, L.NONFINITE, (n, fields, 3), "iu"),
        _table(path, g, L.RANGE, (n, fields, 3), "f"),
        _table(path, g, L.NONPOSITIVE, (n, fields), "iu"),
    )


def _reduce(op: np.ufunc, column: np.ndarray) -> float:
    """``op`` (fmin/fmax: NaN only where every value is) over ``column``; NaN when empty."""
    return float(op.reduce(column)) if column.size else math.nan


def _stored_percentiles(
    path: str | Path, d: h5py.Dataset, levels: int
) -> tuple[tuple[tuple[float, float], ...], int] | None:
    """The percentiles written when the job finished, with their level; None where absent."""
    with reading(path, f"the attributes of {d.name}"):
        if L.PERCENTILES not in d.attrs:
            return None
        values, ranks, level = (d.attrs.get(k) for k in (L.PERCENTILES, L.PERCENTILE_RANKS, L.PERCENTILE_LEVEL))
    v = np.asarray(values, dtype=object)
    r = np.asarray(ranks, dtype=object)
    lv = plain(level)
    try:
        pairs = tuple((float(q), float(x)) for q, x in zip(r.ravel(), v.ravel(), strict=True))
    except (TypeError, ValueError):
        pairs = ()
    if not (v.ndim == 1 and r.ndim == 1 and len(pairs) == len(v)):
        raise bad_attr(path, d, L.PERCENTILES, values, f"values at the {L.PERCENTILE_RANKS!r}, one each")
    if not (isinstance(lv, int) and 0 <= lv < levels):
        raise bad_attr(path, d, L.PERCENTILE_LEVEL, level, f"a pyramid level from 0 to {levels - 1}")
    return pairs, lv


def _table(path: str | Path, g: h5py.Group, name: str, shape: tuple[int, ...], kinds: str) -> np.ndarray | None:
    """A per-tile table read whole and checked (tiles, fields, ...); None where the file has none."""
    with reading(path, f"{g.name}/{name}"):
        if name not in g:
            return None
    d = child(path, g, name)
    if d.shape != shape or d.dtype.kind not in kinds:
        raise StoreError(f"{path}: {d.name} is {d.shape} {d.dtype}; expected {shape} ({kinds!r} kind)")
    with reading(path, d.name):
        if d.file.swmr_mode:
            d.refresh()
    return read_array(path, d)


# -- written with the tiles and when a job is finished ---------------------------------------------


def tile_ranges(t: h5py.Group, ntiles: int, nfields: int) -> None:
    """The ``_tiles`` group's range tables, where missing (a partial file of an older gradbatch
    gets them on resuming: its done tiles' rows are filled in from their data when the job is
    finished, see :func:`complete_ranges`)."""
    leaf = lambda name: name.rsplit("/", 1)[1]
    if leaf(L.RANGE) not in t:
        t.create_dataset(leaf(L.RANGE), shape=(ntiles, nfields, 3), dtype="f8", fillvalue=np.nan)
    if leaf(L.NONPOSITIVE) not in t:
        t.create_dataset(leaf(L.NONPOSITIVE), shape=(ntiles, nfields), dtype="i8", fillvalue=-1)


def complete_ranges(path: str | Path, g: h5py.Group, tiles: TileLayout, fields: Sequence[str]) -> int:
    """Fill in, from their data, the range rows of done tiles written without them (a partial
    file of an older gradbatch, resumed); returns how many tiles were filled in."""
    done = np.asarray(g[L.DONE][...]).ravel() != 0
    tile_ranges(g[L.TILES], done.size, len(fields))
    nonpositive = np.asarray(g[L.NONPOSITIVE][...])
    ranges = np.asarray(g[L.RANGE][...])
    missing = np.flatnonzero(done & (nonpositive < 0).any(axis=1))
    for flat in missing.tolist():
        where = tiles.tile_of(flat).slices
        for i, name in enumerate(fields):
            a = np.asarray(g[name][where])
            lo, hi, low_positive, n = finite_summary(a[np.isfinite(a)])
            ranges[flat, i] = (lo, hi, low_positive)
            nonpositive[flat, i] = n
    if missing.size:
        g[L.RANGE][...] = ranges
        g[L.NONPOSITIVE][...] = nonpositive
    return int(missing.size)


def write_percentiles(
    path: str | Path, g: h5py.Group, shapes: Sequence[tuple[int, ...]], fields: Sequence[str]
) -> None:
    """Each field's :data:`PERCENTS` over the finite values of the fixed level (:func:`stats_level`
    of the level ``shapes``), as attributes of its full-resolution dataset."""
    level, stride = stats_level(shapes)
    for name in fields:
        values = _level_values(path, g, name, level, stride)
        pairs = percentiles_of(values[np.isfinite(values)])
        d = g[name]
        d.attrs[L.PERCENTILE_RANKS] = np.array([q for q, _ in pairs], dtype=np.float64)
        d.attrs[L.PERCENTILES] = np.array([v for _, v in pairs], dtype=np.float64)
        d.attrs[L.PERCENTILE_LEVEL] = level
        d.attrs[L.PERCENTILE_STRIDE] = stride
