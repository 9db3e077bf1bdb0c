"""Numpy preparation of what the layers draw, apart from the GL that draws it: colour lookup,
colour limits of an image, the polylines of descent paths up to a step, and the grid arrows are
read on. Tested without a GL context (only :func:`colormap_lut` asks vispy for its colormap).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np

from ..geometry import polyline_connect

__all__ = [
    "ArrowScale",
    "arrow_canvas",
    "arrow_samples",
    "arrow_vectors",
    "colormap_lut",
    "contrast_colors",
    "image_limits",
    "map_colors",
    "nice_number",
    "path_polylines",
]


def image_limits(data: np.ndarray, scale: str) -> tuple[np.ndarray, float, float]:
    """The image to upload for ``data`` (ny, nx) and its colour limits (lo, hi), in numpy.

    float32; ``scale`` 'log': log10 of the positive values, the rest shown as the lowest colour;
    'symmetric': limits +-max|v|. NaN is drawn as the lowest colour; an all-NaN window gets
    limits (0, 1) and a flat one limits half a unit either side, so both still draw."""
    if data.dtype != np.float32:
        data = data.astype(np.float32)
    if scale == "log":
        with np.errstate(all="ignore"):
            data = np.where(data > 0, np.log10(data), np.nan).astype(np.float32)
    with warnings.catch_warnings():  # an all-NaN window is allowed: it is drawn flat
        warnings.simplefilter("ignore", RuntimeWarning)
        lo, hi = float(np.nanmin(data)) if data.size else 0.0, float(np.nanmax(data)) if data.size else 1.0
    if not np.isfinite(lo) or not np.isfinite(hi):
        lo, hi = 0.0, 1.0
    if scale == "symmetric":
        lo, hi = -max(abs(lo), abs(hi)), max(abs(lo), abs(hi))
    if lo == hi:
        lo, hi = lo - 0.5, hi + 0.5
    if np.isnan(data.sum()):  # copies only when there is a NaN to clear
        data = np.nan_to_num(data, nan=lo)
    return data, lo, hi


def path_polylines(pos: np.ndarray, step: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Paths ``pos`` (paths, steps + 1, 2) up to ``step`` as one line set: vertices (V, 2), the
    segment pairs joining each path's points (:func:`polyline_connect`; empty at step 0) and
    each path's current end (P', 2) float32. A stopped path is NaN after its stop: those points
    are dropped; a path NaN from its start is left out."""
    lines, offsets, tips = [], [0], []
    for p in pos[:, : step + 1]:
        p = p[np.isfinite(p).all(axis=1)]
        if len(p):
            lines.append(p)
            offsets.append(offsets[-1] + len(p))
            tips.append(p[-1])
    return np.concatenate(lines), polyline_connect(np.array(offsets)), np.array(tips, np.float32)


def colormap_lut(name: str, n: int = 256) -> np.ndarray:
    """(n, 4) float32 RGBA samples of a vispy colormap, for :func:`map_colors`."""
    from vispy.color import get_colormap

    return np.asarray(get_colormap(name).map(np.linspace(0.0, 1.0, n)[:, None]), dtype=np.float32)


def map_colors(values: np.ndarray, lut: np.ndarray) -> np.ndarray:
    """RGBA of ``values`` in [0, 1] through a lookup table: a gather instead of vispy's
    per-value interpolation (6x faster for a million arrows). NaN maps to the lowest colour."""
    n = len(lut)
    idx = np.nan_to_num(np.asarray(values, dtype=np.float32) * (n - 1) + 0.5, nan=0.0)
    return lut[np.clip(idx.astype(np.intp), 0, n - 1)]


def arrow_canvas(canvas: tuple[int, int], pixels_per_arrow: float) -> tuple[int, int]:
    """The 'canvas' arrows need: a few data points per arrow cell is plenty."""
    return (max(2, int(4 * canvas[0] / pixels_per_arrow)), max(2, int(4 * canvas[1] / pixels_per_arrow)))


def arrow_samples(
    x: np.ndarray,
    y: np.ndarray,
    window: tuple[float, float, float, float],
    canvas: tuple[int, int],
    pixels_per_arrow: float,
) -> tuple[np.ndarray, np.ndarray]:
    """The data points arrows are drawn at: indices into ``x`` and ``y`` (ascending coordinates).

    Along each axis, about one arrow per ``pixels_per_arrow`` pixels of ``canvas`` over ``window``:
    on a grid coarser than that, every data point inside the window (a 17 x 17 job draws 289
    arrows, each at its point); on a denser one, the data point nearest each arrow's place, so
    an arrow always sits at the point whose vector it draws."""
    x0, x1, y0, y1 = window
    return (
        _axis_samples(np.asarray(x), x0, x1, canvas[0] / pixels_per_arrow),
        _axis_samples(np.asarray(y), y0, y1, canvas[1] / pixels_per_arrow),
    )


def _axis_samples(c: np.ndarray, lo: float, hi: float, arrows: float) -> np.ndarray:
    inside = np.flatnonzero((c >= min(lo, hi)) & (c <= max(lo, hi)))
    n = max(1, int(arrows))
    if len(inside) <= n:
        return inside
    places = lo + (np.arange(n) + 0.5) * (hi - lo) / n
    right = np.clip(np.searchsorted(c, places), 1, len(c) - 1)
    nearest = np.where(np.abs(c[right - 1] - places) <= np.abs(c[right] - places), right - 1, right)
    return np.unique(np.clip(nearest, inside[0], inside[-1]))


@dataclass(frozen=True)
class ArrowScale:
    """How arrow lengths read: an arrow ``key_length`` long (data units) stands for ``key``
    (a round magnitude); ``key`` is None when lengths carry no magnitude (``normalize``)."""

    mode: str
    key: float | None
    key_length: float
    reference: float  # the magnitude drawn a full cell long


def arrow_vectors(
    u: np.ndarray, v: np.ndarray, mode: str, cell: float, reference: float | None = None
) -> tuple[np.ndarray, np.ndarray, ArrowScale]:
    """Vectors (u, v) as drawn in a grid of ``cell``-sized cells, and how their lengths read.

    ``clip`` (default): length proportional to the magnitude, a ``reference`` magnitude (the 90th
    percentile of the finite ones when None) one full arrow (0.9 of a cell) long, longer arrows
    clipped there; ``scale``: proportional, never clipped; ``normalize``: every arrow 0.8 of a
    cell, direction only. Non-finite vectors stay NaN (nothing is drawn for them)."""
    full = 0.9 * cell
    mag = np.hypot(u, v)
    finite = mag[np.isfinite(mag) & (mag > 0)]
    if mode == "normalize" or not finite.size:
        with np.errstate(invalid="ignore", divide="ignore"):
            f = np.where(mag > 0, 0.8 * cell / mag, 0.0)
        return u * f, v * f, ArrowScale("normalize", None, 0.8 * cell, 0.0)
    ref = float(reference) if reference is not None and reference > 0 else float(np.percentile(finite, 90))
    with np.errstate(invalid="ignore", divide="ignore"):
        f = np.full_like(mag, full / ref)
        if mode == "clip":
            f = np.where(mag > ref, full / np.where(mag > 0, mag, 1.0), f)
    key = nice_number(ref)
    return u * f, v * f, ArrowScale(mode, key, full * key / ref, ref)


def nice_number(x: float) -> float:
    """The largest of 1, 2, 5 x 10^k not above ``x`` (x > 0): a magnitude a key can name."""
    k = math.floor(math.log10(x))
    for m in (5.0, 2.0, 1.0):
        if m * 10.0**k <= x * (1 + 1e-12):
            return m * 10.0**k
    return 10.0**k


def contrast_colors(rgba: np.ndarray) -> np.ndarray:
    """Black or white, whichever reads better on each of the colours ``rgba`` (N, 3 or 4):
    a layer drawn over an image stays visible on its dark and its light parts alike."""
    lum = 0.2126 * rgba[:, 0] + 0.7152 * rgba[:, 1] + 0.0722 * rgba[:, 2]
    out = np.zeros((len(rgba), 4), np.float32)
    out[:, :3] = np.where(lum < 0.45, 1.0, 0.0)[:, None]
    out[:, 3] = 1.0
    return out
