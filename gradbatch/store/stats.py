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
from pathlib import Path
from typing import TYPE_CHECKING

import h5py
import numpy as np

from ..errors import StoreError
from ..records import FieldStats
from . import layout as L
from .access import child, read_array, reading

if TYPE_CHECKING:  # the reader imports this module
    from .reader import JobLayout

__all__ = ["PERCENTS", "STATS_MAX_POINTS", "stats_level", "field_stats", "finite_summary", "percentiles_of"]

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
    values = np.percentile(finite.astype(np.float64, copy=False), PERCENTS)
    return tuple((float(q), float(v)) for q, v in zip(PERCENTS, values))


def _level_values(path: str | Path, g: h5py.Group, name: str, level: int, stride: int) -> np.ndarray:
    """Field ``name`` at pyramid ``level`` (every ``stride``-th point), read whole."""
    d = child(path, g, L.level_path(level, name))
    with reading(path, d.name):
        if d.file.swmr_mode:
            d.refresh()  # a file still being written: see the tiles that landed since
    return read_array(path, d, tuple(slice(None, None, stride) for _ in range(d.ndim)))


def field_stats(path: str | Path, g: h5py.Group, lay: JobLayout, name: str) -> FieldStats:
    """The statistics of field ``name`` of the job group ``g`` (checked as ``lay``)."""
    level, stride = stats_level(lay.shapes)
    points = math.prod(lay.shapes[0])
    values = _level_values(path, g, name, level, stride).ravel()
    finite = values[np.isfinite(values)]
    lo, hi, low_positive, nonpositive = finite_summary(finite)
    exact = level == 0 and stride == 1
    if not exact and values.size:  # a level's count, scaled to the grid: an estimate
        nonpositive = round(nonpositive * points / values.size)
    counts = _nonfinite(path, g, lay, name)
    if counts is None:  # no per-tile counts: those of the level, scaled likewise
        scale = points / max(values.size, 1)
        nan, posinf, neginf = (int(test(values).sum()) for test in (np.isnan, np.isposinf, np.isneginf))
        counts = (round(nan * scale), round(posinf * scale), round(neginf * scale))
    return FieldStats(
        name, points, *counts, lo, hi, low_positive, nonpositive, percentiles_of(finite), level, exact=exact
    )


def _done(path: str | Path, g: h5py.Group) -> np.ndarray:
    """Which tiles are done, flat (row-major over the tile grid), as booleans."""
    d = child(path, g, L.DONE)
    with reading(path, d.name):
        if d.file.swmr_mode:
            d.refresh()
    return read_array(path, d).ravel() != 0


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


def _nonfinite(path: str | Path, g: h5py.Group, lay: JobLayout, name: str) -> tuple[int, int, int] | None:
    """NaN, +inf, -inf points of field ``name`` over the done tiles; None without the table."""
    done = _done(path, g)
    table = _table(path, g, L.NONFINITE, (done.size, len(lay.fields), 3), "iu")
    if table is None:
        return None
    n = table[done, lay.fields.index(name)].sum(axis=0)
    return int(n[0]), int(n[1]), int(n[2])
