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
    "ARROW_FILL",
    "ARROW_PERCENTILE",
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
    """The data points arrows are drawn at: indices (ix, iy) into ascending ``x`` and ``y``.

    Per axis: where the samples are at least ``pixels_per_arrow`` apart on ``canvas`` over
    ``window``, every sample inside the window (a 17 x 17 job draws 289 arrows, each at its
    point); where they are denser, the sample nearest each place of an even grid
    ``pixels_per_arrow`` apart (never the next one along), so an arrow always sits at the point
    whose vector it draws. Used by the window and by picture files alike."""
    x0, x1, y0, y1 = window
    return (
        _axis_samples(np.asarray(x), x0, x1, canvas[0], pixels_per_arrow),
        _axis_samples(np.asarray(y), y0, y1, canvas[1], pixels_per_arrow),
    )


def _axis_samples(c: np.ndarray, lo: float, hi: float, pixels: int, spacing: float) -> np.ndarray:
    lo, hi = min(lo, hi), max(lo, hi)
    inside = np.flatnonzero((c >= lo) & (c <= hi))
    if len(inside) < 2:
        return inside
    step_px = abs(float(c[inside[-1]] - c[inside[0]])) / (len(inside) - 1) * pixels / max(hi - lo, 1e-300)
    if step_px >= spacing:
        return inside
    n = max(1, int(pixels // spacing))
    want = lo + (np.arange(n) + 0.5) * (hi - lo) / n
    k = np.clip(np.searchsorted(c, want), 1, len(c) - 1)
    nearest = np.where(np.abs(c[k - 1] - want) <= np.abs(c[k] - want), k - 1, k)
    return np.unique(nearest[(c[nearest] >= lo) & (c[nearest] <= hi)])


ARROW_FILL = 0.85
"""The longest arrow: this fraction of the arrow spacing."""
ARROW_PERCENTILE = 90.0
"""The reference magnitude (drawn one full arrow long): this percentile of the arrows shown."""


@dataclass(frozen=True)
class ArrowScale:
    """How arrow lengths read: an arrow ``key_pixels`` long stands for ``key`` (a round
    magnitude); ``key`` is None when lengths carry no magnitude (``normalize``)."""

    mode: str
    reference: float  # the magnitude drawn one full arrow (ARROW_FILL of a cell) long
    key: float | None
    key_pixels: float


def arrow_vectors(
    u: np.ndarray, v: np.ndarray, cell_px: float, px_per_unit: tuple[float, float], mode: str
) -> tuple[np.ndarray, np.ndarray, ArrowScale]:
    """The drawn vectors (du, dv) in data units for vectors (u, v), and how their lengths read.

    The direction on screen is the vector's in data coordinates; the length in pixels is
    ``ARROW_FILL * cell_px`` times: ``clip`` min(|g| / ref, 1), ``scale`` |g| / ref, ``normalize`` 1,
    where ref is the :data:`ARROW_PERCENTILE` th percentile of the finite magnitudes given (a few
    huge vectors do not shrink the rest to dots). Non-finite vectors come back NaN."""
    mag = np.hypot(u, v)
    finite = np.isfinite(mag)
    ref = float(np.percentile(mag[finite], ARROW_PERCENTILE)) if finite.any() else 1.0
    ref = ref if ref > 0 else (float(mag[finite].max()) if finite.any() and mag[finite].max() > 0 else 1.0)
    sx, sy = px_per_unit
    px, py = u * sx, v * sy
    norm = np.hypot(px, py)
    with np.errstate(all="ignore"):
        frac = {"clip": np.minimum(mag / ref, 1.0), "scale": mag / ref}.get(mode, np.ones_like(mag))
        length = ARROW_FILL * cell_px * np.where(norm > 0, frac, 0.0)
        du = np.where(norm > 0, px / norm, 0.0) * length / sx
        dv = np.where(norm > 0, py / norm, 0.0) * length / sy
    du[~finite] = np.nan
    dv[~finite] = np.nan
    key = None if mode == "normalize" else nice_number(ref)
    return du, dv, ArrowScale(mode, ref, key, ARROW_FILL * cell_px * (key / ref) if key else 0.0)


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
