"""Honest colours, decided in numpy: which field, which scale and which colour limits a picture
uses, and which points it cannot show. No GL, no file reads.

Colour limits come from the field's statistics (:class:`~gradbatch.records.FieldStats`: the
finite range at full resolution, and percentiles), never from the part of the field a picture
happens to read, so two pictures of one job at any two sizes share their colours. Undefined
points (NaN, +-inf) and, on a log scale, values <= 0 are masked, counted and said, never drawn
as the lowest colour.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..records import FieldStats
from .options import LayerOptions, Resolved

__all__ = ["JobFacts", "Limits", "resolve", "colour_limits", "masked_image", "estimate_stats", "LOG_DECADES"]

LOG_DECADES = 2.0
"""A non-negative field whose 5th-to-100th percentile spans this many decades or more, with half
its points in the bottom tenth of its range, is drawn on a log scale by default (Rosenbrock,
Beale, Goldstein-Price: one flat colour otherwise; a bowl or a ripple stays linear)."""


@dataclass(frozen=True)
class JobFacts:
    """What the decisions need to know of a job (read by the caller from the file)."""

    fields: tuple[str, ...]
    gradient: bool  # the arrows are a gradient (descent makes sense), not a vector field
    descends: bool  # the job has descent paths, basins or streamlines of the descent
    landscape: bool  # the axes are directions in parameter space
    extent: tuple[float, float, float, float]  # x0, x1, y0, y1
    units: tuple[str, str] = ("", "")  # the plane's axes' units, where the job names them


def default_field(fields: tuple[str, ...]) -> str:
    """The image's field when none is asked: value, or a vector job's magnitude (stored, or
    computed from its components ``v_<axis>`` by the picture)."""
    if "value" in fields:
        return "value"
    if "magnitude" in fields or any(f.startswith("v_") for f in fields):
        return "magnitude"
    return fields[0] if fields else "value"


def resolve(options: LayerOptions, facts: JobFacts, stats: FieldStats | None) -> Resolved:
    """Decide the options left to the job (``None``, ``auto``), with the notes a picture shows."""
    notes: list[str] = []
    name = options.field or default_field(facts.fields)
    descent = options.descent if options.descent is not None else (facts.gradient and facts.descends)
    layers = set(options.layers)
    if options.descent is None and descent and "arrows" in layers:  # a note only for what is drawn
        notes.append("arrows point downhill, as the job's descent does")
    scale = options.scale
    if scale == "auto" and options.clim is not None and options.clim[0] <= 0:
        scale = "linear"  # limits from zero or below: not a log scale, whatever the values span
    if scale == "auto":
        scale = "linear"
        decades = _decades(stats)
        if decades is not None and decades >= LOG_DECADES and stats is not None:
            low = (stats.percentile(50.0) - stats.minimum) / (stats.maximum - stats.minimum)
            if low < 0.1:
                scale = "log"
                if layers & {"image", "contours"} or getattr(options, "surface", False):
                    notes.append(f"log colour scale (auto): {name} spans {decades:.1f} decades")
    aspect = options.aspect or _aspect(facts)
    return Resolved(name, bool(descent), scale, aspect, tuple(notes))


def _decades(stats: FieldStats | None) -> float | None:
    """Decades a non-negative field spans from its 5th percentile (or smallest positive value)
    to its maximum; None for a field with negative or no finite values."""
    if stats is None or not (stats.minimum >= 0 and stats.maximum > 0):
        return None
    low = max(stats.percentile(5.0), stats.min_positive)
    if not (low > 0 and math.isfinite(low)):
        return None
    return math.log10(stats.maximum / low)


def _aspect(facts: JobFacts) -> str:
    """Equal unless the axes are different quantities: a landscape's directions, different
    units, or ranges more than 4x apart."""
    x0, x1, y0, y1 = facts.extent
    w, h = abs(x1 - x0), abs(y1 - y0)
    if facts.landscape or facts.units[0] != facts.units[1] or not (0.25 <= w / (h or 1.0) <= 4.0):
        return "auto"
    return "equal"


@dataclass(frozen=True)
class Limits:
    """Colour limits in data units and what lies outside them.

    ``extend``: matplotlib's colour bar ends ('neither', 'min', 'max', 'both'): values exist
    beyond the limits. ``undefined``: NaN and +-inf points of the whole field; ``nonpositive``:
    finite values <= 0 of the whole field that a log scale masks (0 on other scales)."""

    lo: float
    hi: float
    scale: str
    extend: str = "neither"
    undefined: int = 0
    nonpositive: int = 0
    points: int = 0
    source: str = "range"  # range | percentiles p..q | clim | none (no finite value)


def colour_limits(
    stats: FieldStats | None, scale: str, clim: tuple[float, float] | None, robust: float | None
) -> Limits:
    """The colour limits of a field on ``scale`` (linear | symmetric | log): ``clim`` when given,
    else the ``robust`` percentiles, else the field's finite range. A field without finite
    values gets (0, 1) and says so; equal limits are widened so the colour bar still draws."""
    undefined = stats.nonfinite if stats is not None else 0
    nonpositive = stats.nonpositive if stats is not None and scale == "log" else 0
    points = stats.points if stats is not None else 0
    if clim is not None:
        lo, hi, source = clim[0], clim[1], "clim"
    elif stats is None or not math.isfinite(stats.minimum):
        lo, hi = (1.0, 10.0) if scale == "log" else (0.0, 1.0)
        return Limits(lo, hi, scale, "neither", undefined, nonpositive, points, "none")
    elif robust is not None:
        lo, hi = stats.percentile(robust), stats.percentile(100.0 - robust)
        source = f"percentiles {robust:g}..{100 - robust:g}"
    else:
        lo, hi, source = stats.minimum, stats.maximum, "range"
    if scale == "log" and clim is None:
        lo = max(lo, stats.min_positive) if stats is not None and math.isfinite(stats.min_positive) else lo
        if not lo > 0:
            lo, hi = 1.0, max(hi, 10.0)
    if scale == "symmetric" and clim is None:
        m = max(abs(lo), abs(hi))
        lo, hi = -m, m
    if lo == hi:
        lo, hi = (lo / math.sqrt(10), hi * math.sqrt(10)) if scale == "log" else (lo - 0.5, hi + 0.5)
    extend = _extend(stats, lo, hi, scale)
    return Limits(float(lo), float(hi), scale, extend, undefined, nonpositive, points, source)


def _extend(stats: FieldStats | None, lo: float, hi: float, scale: str) -> str:
    if stats is None or not math.isfinite(stats.minimum):
        return "neither"
    low = (stats.min_positive if scale == "log" else stats.minimum) < lo or stats.neginf > 0
    high = stats.maximum > hi or stats.posinf > 0
    return {(False, False): "neither", (True, False): "min", (False, True): "max", (True, True): "both"}[(low, high)]


def masked_image(data: np.ndarray, scale: str) -> tuple[Any, np.ndarray, np.ndarray]:
    """``data`` (ny, nx) as a float32 masked array, with the masks of its undefined points
    (NaN, +-inf) and, on a log scale, of its values <= 0 (neither is ever given a colour)."""
    data = np.asarray(data, dtype=np.float32)
    undefined = ~np.isfinite(data)
    nonpositive = (data <= 0) & ~undefined if scale == "log" else np.zeros(data.shape, dtype=bool)
    return np.ma.masked_array(data, mask=undefined | nonpositive), undefined, nonpositive


PERCENTILES = (0.5, 1.0, 2.0, 5.0, 10.0, 25.0, 50.0, 75.0, 90.0, 95.0, 98.0, 99.0, 99.5)


def estimate_stats(name: str, data: np.ndarray, level: int = -1) -> FieldStats:
    """:class:`FieldStats` of the values at hand: for a file that stores none, so a picture still
    gets limits, percentiles and counts. ``level``: the pyramid level ``data`` is the whole field
    at (exact at level 0); -1 for part of a field (never exact)."""
    a = np.asarray(data, dtype=np.float64).ravel()
    finite = a[np.isfinite(a)]
    positive = finite[finite > 0]
    nan = float("nan")
    pct = tuple(zip(PERCENTILES, np.percentile(finite, PERCENTILES).tolist())) if finite.size else ()
    return FieldStats(
        name,
        points=int(a.size),
        nan=int(np.isnan(a).sum()),
        posinf=int(np.isposinf(a).sum()),
        neginf=int(np.isneginf(a).sum()),
        minimum=float(finite.min()) if finite.size else nan,
        maximum=float(finite.max()) if finite.size else nan,
        min_positive=float(positive.min()) if positive.size else nan,
        nonpositive=int((finite <= 0).sum()),
        percentiles=pct,
        percentile_level=max(level, 0),
        exact=level == 0,
    )
