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

from ..errors import ViewerError

__all__ = [
    "THEMES",
    "Theme",
    "LegendEntry",
    "axis_names",
    "check_plane",
    "legend_entries",
    "plane_words",
    "snap_plane",
    "rgba",
    "title_text",
]


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


def rgba(color: Any) -> tuple[float, float, float, float]:
    """``color`` (a name, ``#rrggbb`` or a tuple) as an RGBA tuple. vispy's lines look a string
    up as a colormap name first, which imports matplotlib (a quarter of a second) to fail."""
    from vispy.color import Color

    r, g, b, a = (float(c) for c in Color(color).rgba)
    return (r, g, b, a)


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
    """Refuse a plane outside its axis's range (half a grid step of slack each side): never
    clamped, in the window and in picture files alike."""
    first, last, step = plane_range
    lo, hi = min(first, last), max(first, last)
    slack = abs(step) / 2
    if not (lo - slack <= value <= hi + slack):
        raise ViewerError(f"--slice: {axis}={value:g} is outside the {axis} axis ({lo:g} to {hi:g})")


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
