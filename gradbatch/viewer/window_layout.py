"""What the window's frame says and where its arrows go, decided in numpy: no GL, no file reads.

The window (:mod:`gradbatch.viewer.canvas`) and its decorations (:mod:`gradbatch.viewer.decor`)
draw what these functions decide: which data points carry an arrow and how long each is drawn,
the theme's colours, the title and axis names, the plane of a 3D job, the colour limits of a
field (fixed per job, never from the part of the field on screen) and the legend's entries.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import ViewerError
from ..records import FieldStats

__all__ = [
    "THEMES",
    "Theme",
    "LegendEntry",
    "arrow_samples",
    "arrow_vectors",
    "axis_names",
    "check_plane",
    "legend_entries",
    "plane_words",
    "snap_plane",
    "stats_of",
    "title_text",
]

ARROW_FILL = 0.85  # the longest arrow: this fraction of the arrow spacing
ARROW_PERCENTILE = 90.0  # the reference magnitude: this percentile of the arrows shown


@dataclass(frozen=True)
class Theme:
    """The colours of a theme: background, text and frame, the undefined points' colour and the
    overlays' (chosen to stand out on viridis-like colormaps)."""

    background: str
    foreground: str
    undefined: tuple[float, float, float, float]
    streamlines: tuple[float, float, float, float]
    marker_edge: str
    paths: tuple[str, ...]


THEMES = {
    "dark": Theme(
        "black",
        "white",
        (0.55, 0.55, 0.55, 1.0),
        (1.0, 1.0, 1.0, 0.75),
        "white",
        ("#ff4f4f", "#4fc3ff", "#ff9f1c", "#e056fd", "#ffffff", "#7dff6b", "#ffd34f"),
    ),
    "light": Theme(
        "white",
        "black",
        (0.78, 0.78, 0.78, 1.0),
        (1.0, 1.0, 1.0, 0.8),
        "black",
        ("#d62728", "#1f77b4", "#ff7f0e", "#e377c2", "#ffffff", "#2ca02c", "#8c564b"),
    ),
}


def arrow_samples(
    x: np.ndarray,
    y: np.ndarray,
    window: tuple[float, float, float, float],
    canvas: tuple[int, int],
    pixels_per_arrow: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Indices (ix, iy) into the sample coordinates ``x`` (nx,) and ``y`` (ny,) that carry an
    arrow in ``window`` (x0, x1, y0, y1) drawn on ``canvas`` (width, height) pixels.

    Per axis: where the samples are at least ``pixels_per_arrow`` apart on screen, every sample in
    the window (one arrow per data point, at that point); where they are denser, the sample
    nearest each point of an even grid ``pixels_per_arrow`` apart (never the next one along)."""
    return (
        _axis_samples(x, window[0], window[1], canvas[0], pixels_per_arrow),
        _axis_samples(y, window[2], window[3], canvas[1], pixels_per_arrow),
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


def arrow_vectors(
    u: np.ndarray,
    v: np.ndarray,
    cell_px: float,
    px_per_unit: tuple[float, float],
    mode: str,
) -> tuple[np.ndarray, np.ndarray, float]:
    """The drawn vectors (du, dv) in data units for vectors (u, v), with the reference magnitude.

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
    return du, dv, ref


def stats_of(name: str, data: np.ndarray, level: int) -> FieldStats:
    """:class:`FieldStats` of a whole field read at pyramid ``level`` (for a file whose reader
    keeps no statistics: the limits are still the same at every zoom)."""
    flat = np.asarray(data, dtype=np.float64).ravel()
    fin = flat[np.isfinite(flat)]
    pos = fin[fin > 0]
    qs = (1.0, 2.0, 5.0, 10.0, 25.0, 50.0, 75.0, 90.0, 95.0, 98.0, 99.0)
    pct = tuple(zip(qs, (float(p) for p in np.percentile(fin, qs)))) if fin.size else ()
    return FieldStats(
        name,
        int(flat.size),
        int(np.isnan(flat).sum()),
        int(np.isposinf(flat).sum()),
        int(np.isneginf(flat).sum()),
        float(fin.min()) if fin.size else math.nan,
        float(fin.max()) if fin.size else math.nan,
        float(pos.min()) if pos.size else math.nan,
        int((fin <= 0).sum()),
        pct,
        level,
        exact=level == 0,
    )


def axis_names(reader: Any) -> tuple[str, str]:
    """The names of the view's x and y axes: ``long_name (units)`` from the reader's
    ``axis_labels`` where it has them, else the axes' names."""
    labels: Mapping[str, tuple[str, str]] = getattr(reader, "axis_labels", None) or {}
    out = []
    for axis in reader.axes[:2]:
        long_name, units = labels.get(axis, (axis, ""))
        long_name = long_name or axis
        out.append(f"{long_name} ({units})" if units else long_name)
    return out[0], out[1]


def title_text(job: str, function: str | None, title: str | None, plane: str | None = None) -> str:
    """The title line: ``title`` when given, else the job and its function; a 3D job's plane after it."""
    text = title if title is not None else (f"{job}: {function}" if function else job)
    return f"{text}    {plane}" if plane else text


def snap_plane(value: float, plane_range: tuple[float, float, float]) -> float:
    """The coordinate of the grid plane nearest ``value`` on an axis of (first, last, step)."""
    first, last, step = plane_range
    if step == 0:
        return first
    k = round((value - first) / step)
    n = round((last - first) / step)
    return first + min(max(k, 0), n) * step


def check_plane(axis: str | None, value: float, plane_range: tuple[float, float, float]) -> None:
    """Refuse a plane outside its axis's range (half a grid step of slack each side)."""
    first, last, step = plane_range
    lo, hi = min(first, last), max(first, last)
    slack = abs(step) / 2
    if not (lo - slack <= value <= hi + slack):
        raise ViewerError(f"plane: {axis} = {value:g} is outside the axis {axis} range [{lo:g}, {hi:g}]")


def plane_words(axis: str | None, shown: float, requested: float | None) -> str:
    """What a 3D view's title says of its plane: its axis, its actual coordinate and, when it was
    snapped, the value asked for."""
    text = f"{axis} = {shown:.4g}"
    if requested is not None and not math.isclose(shown, requested, rel_tol=1e-9, abs_tol=1e-12):
        text += f" (nearest grid plane to {requested:g})"
    return text


@dataclass(frozen=True)
class LegendEntry:
    """One line of the legend: ``kind`` line | marker | note, its words and colour; a path's
    entry also shows its start (circle) and end (star) markers."""

    kind: str
    text: str
    color: Any = "white"
    symbol: str = ""


def legend_entries(
    paths: Sequence[str],
    theme: Theme,
    layers: Sequence[str],
    *,
    streamlines: bool,
    minima: Sequence[str],
    basins: int,
    descent: bool,
    arrows: bool,
    undefined: int,
) -> list[LegendEntry]:
    """The legend's entries, in drawing order: paths by optimiser label (start o, end *),
    streamlines, minima by kind, basins, arrows and the undefined points."""
    out: list[LegendEntry] = []
    if "paths" in layers:
        out += [LegendEntry("path", label, theme.paths[i % len(theme.paths)]) for i, label in enumerate(paths)]
    if streamlines and "streamlines" in layers:
        out.append(LegendEntry("line", "streamlines" + (" (descent)" if descent else ""), theme.streamlines))
    if "minima" in layers:
        for kind in dict.fromkeys(minima):
            out.append(LegendEntry("marker", kind, theme.foreground, _KIND_SYMBOLS.get(kind, "disc")))
    if basins and "basins" in layers:
        out.append(LegendEntry("line", f"basin outlines ({basins})", (1.0, 1.0, 1.0, 0.9)))
    if arrows and "arrows" in layers:
        out.append(LegendEntry("arrow", "-grad (downhill)" if descent else "grad (uphill)", (1.0, 0.6, 0.2, 1.0)))
    if undefined:
        out.append(LegendEntry("patch", f"undefined ({undefined:,} pts)", theme.undefined))
    return out


_KIND_SYMBOLS = {"minimum": "diamond", "maximum": "triangle_up", "saddle": "x", "degenerate": "square"}


def kind_symbol(kind: str) -> str:
    """The marker of a critical point's ``kind`` (minimum, maximum, saddle, degenerate)."""
    return _KIND_SYMBOLS.get(kind, "disc")
