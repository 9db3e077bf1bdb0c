"""A 1D job as a picture file: seed 000's message, that the derivative lives on the input axis.

The curve f(x) on true axes with its y = 0 line; f'(x) drawn as arrows ON the input axis, each
as long as f' says (one scale for all, clipped only above a maximum, with a key); over each
arrow the tangent step (dx, f'.dx) it is the shadow of (seed 002's slope arrows, tied to the
axis arrows so the two read as one picture). Undefined values are gaps in the curve, counted.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import StoreError, ViewerError
from ..geometry import choose_level
from ..store import JobLayout, inspect, read_coords, read_field, read_overlays
from .figure import add_legend, axis_label, field_label, figure_context, new_figure, save_figure, wrap_title
from .limits import default_field
from .options import RenderOptions, Resolved
from .prepare import ArrowScale, arrow_samples, arrow_vectors

__all__ = ["render_curve", "check_curve_options", "AxisArrows", "axis_arrows"]

ARROW_COLOR = "#d62728"
CLIPPED_COLOR = "#ff7f0e"
TANGENT_COLORS = {"light": "#404040", "dark": "#d0d0d0"}


@dataclass(frozen=True)
class AxisArrows:
    """f' as arrows on the input axis: tails ``x`` (N,), signed lengths ``du`` (N,) in x units
    (drawn from x to x + du), the derivative ``slope`` (N,) at each, which arrows were
    ``clipped`` (N,) bool, and how lengths read (``scale``)."""

    x: np.ndarray
    du: np.ndarray
    slope: np.ndarray
    clipped: np.ndarray
    scale: ArrowScale


def axis_arrows(
    x: np.ndarray, g: np.ndarray, x_range: tuple[float, float], axes_px: float, opt: RenderOptions, descent: bool
) -> AxisArrows:
    """Arrows for the derivative ``g`` over coordinates ``x`` (ascending), about one per
    ``3 * opt.pixels_per_arrow`` pixels of an axes ``axes_px`` wide (every data point of a
    coarser grid), each at its data point. Lengths ∝ f' (-f' with ``descent``) on one scale
    for all: a full arrow (0.9 of the spacing) is the 90th percentile of |f'|, longer ones are
    clipped there (``opt.arrow_mode`` clip; ``scale``: never clipped; ``normalize``: sign only)."""
    x0, x1 = x_range
    ix = arrow_samples(x, np.zeros(1), (x0, x1, -1.0, 1.0), (max(1, int(axes_px)), 1), 3 * opt.pixels_per_arrow)[0]
    xs, gs = np.asarray(x, np.float64)[ix], np.asarray(g, np.float64)[ix]
    ok = np.isfinite(gs)
    xs, gs = xs[ok], gs[ok]
    cell = float(np.median(np.diff(xs))) if len(xs) > 1 else abs(x1 - x0)
    signed = -gs if descent else gs
    with np.errstate(invalid="ignore"):
        du, _, scale = arrow_vectors(signed, np.zeros_like(signed), cell, (1.0, 1.0), opt.arrow_mode)  # data units
    clipped = np.abs(signed) > scale.reference if scale.mode == "clip" else np.zeros(len(xs), bool)
    return AxisArrows(xs, du, gs, clipped, scale)


def check_curve_options(opt: RenderOptions, layout: JobLayout) -> str:
    """The field a 1D job's curve draws; a ViewerError for any option a curve cannot honour."""
    job = layout.name
    if opt.surface:
        raise ViewerError(f"--surface: job {job!r} is 1D (a curve); the surface picture is for 2D and 3D jobs")
    if opt.slice_axis is not None or opt.plane is not None:
        where = opt.slice_axis or ""
        raise ViewerError(f"--slice: {where!r} asked of job {job!r}, which is 1D; slices are planes of 3D jobs")
    field = opt.field or default_field(tuple(layout.fields))  # value, or a vector job's magnitude
    if field not in layout.fields:
        raise ViewerError(
            f"--field: job {job!r} is 1D and has no field {field!r}; its curve can draw: {', '.join(layout.fields)}"
        )
    if opt.clim is not None or opt.robust is not None:
        what = "--clim" if opt.clim is not None else "--robust"
        value = f"{opt.clim[0]:g},{opt.clim[1]:g}" if opt.clim is not None else f"{opt.robust:g}"
        raise ViewerError(
            f"{what}: {value} asked of job {job!r}, a 1D curve, which has no colours; "
            "set the value axis with --window x0,x1,y0,y1"
        )
    if opt.scale not in ("auto", "linear"):
        raise ViewerError(
            f"--scale: {opt.scale!r} asked of job {job!r}, a 1D curve, which has no colour scale; allowed: auto, linear"
        )
    return field


def render_curve(
    path: str | Path, layout: JobLayout, out: Path, opt: RenderOptions, resolved: Resolved | None = None
) -> Path:
    """Draw the 1D job ``layout`` of the file at ``path`` with options ``opt`` to ``out``."""
    field = check_curve_options(opt, layout)
    if resolved is not None:
        descent = resolved.descent
    else:
        descent = opt.descent if opt.descent is not None else _descends(path, layout.name)
    attrs = _job_attrs(path, layout.name)
    x, y, g = _read_curve(path, layout, field, opt)
    with figure_context(opt.theme):
        fig = new_figure(opt)
        CurveFigure(fig, layout, opt, attrs, field, descent).draw(x, y, g)
        return save_figure(fig, out)


class CurveFigure:
    """One curve's axes and legend (see the module's docstring)."""

    def __init__(
        self, fig: Any, layout: JobLayout, opt: RenderOptions, attrs: dict[str, Any], field: str, descent: bool
    ) -> None:
        self.fig, self.layout, self.opt, self.attrs, self.field, self.descent = fig, layout, opt, attrs, field, descent
        self.ax = fig.add_subplot()
        self.axis = layout.axes[0]
        self.gradient = not any(f.startswith("v_") for f in layout.fields)  # a vector job's magnitude is |v|
        self.handles: list[Any] = []
        self.dark = opt.theme == "dark"
        self.ink = "white" if self.dark else "black"
        self.tangent_color = TANGENT_COLORS[opt.theme]

    def draw(self, x: np.ndarray, y: np.ndarray, g: np.ndarray | None) -> None:
        x0, x1 = _x_range(self.opt, x)
        lo, hi, base = self.value_range(x, y, (x0, x1))
        self.ax.set_xlim(x0, x1)
        self.ax.set_ylim(lo, hi)
        self.zero_line(lo, hi, base)
        if "image" in self.opt.layers:
            self.curve(x, y)
        if g is not None and "arrows" in self.opt.layers and self.field == "value":
            w = self.opt.size[0] * 0.8  # about the axes' share of the picture
            arrows = axis_arrows(x, g, (x0, x1), w, self.opt, self.descent)
            if len(arrows.x):
                self.tangents(arrows, x, y)
                self.arrows(arrows, base)
        self.frame()
        self.legend()

    def value_range(self, x: np.ndarray, y: np.ndarray, xr: tuple[float, float]) -> tuple[float, float, float]:
        """The value axis's limits and where the input axis's arrows lie: on y = 0 when it is in
        view, else on a line of their own below the curve."""
        win = self.opt.window
        if win is not None and not math.isnan(win[2]):
            lo, hi = float(win[2]), float(win[3])
            return lo, hi, 0.0 if lo < 0 < hi else lo + 0.06 * (hi - lo)
        inside = (x >= xr[0]) & (x <= xr[1]) & np.isfinite(y)
        ymin, ymax = (float(y[inside].min()), float(y[inside].max())) if inside.any() else (0.0, 1.0)
        span = ymax - ymin or max(abs(ymax), 1.0)
        lo, hi = ymin - 0.08 * span, ymax + 0.08 * span
        if lo < 0 < hi:
            return lo, hi, 0.0
        return ymin - 0.22 * span, hi, ymin - 0.13 * span

    def zero_line(self, lo: float, hi: float, base: float) -> None:
        if lo < 0 < hi:
            self.ax.axhline(0.0, color=self.ink, lw=0.8, alpha=0.6, zorder=1)
        if base != 0.0:  # y = 0 is out of view: the input axis gets a line of its own
            self.ax.axhline(base, color=self.ink, lw=0.8, alpha=0.35, ls="--", zorder=1)

    def curve(self, x: np.ndarray, y: np.ndarray) -> None:
        from matplotlib.lines import Line2D

        yy = np.where(np.isfinite(y), y, np.nan)  # NaN breaks the line: a gap, never a value
        color = "#4fa3ff" if self.dark else "#1f77b4"
        self.ax.plot(x, yy, color=color, lw=1.8, zorder=3)
        name = field_label(self.field, (self.axis,), self.gradient)
        self.handles.append(Line2D([], [], color=color, lw=1.8, label=name))
        undefined = self._undefined(y)
        if undefined:
            n, total = undefined
            share = f" ({100 * n / total:.2g}% of {total:,})" if total else ""
            self.handles.append(
                Line2D([], [], color=color, lw=1.8, ls=(0, (1, 2)), label=f"undefined (NaN, ±inf): {n:,} points"
                       f"{share}, gaps in the curve")
            )  # fmt: skip

    def _undefined(self, y: np.ndarray) -> tuple[int, int] | None:
        """The job's undefined points of the field (as written), else those of the points read."""
        counts = self.attrs.get("nonfinite")
        if isinstance(counts, str):
            try:
                counts = json.loads(counts)
            except ValueError:
                counts = None
        mine = counts.get(self.field) if isinstance(counts, dict) else None
        total = int(self.layout.shapes[0][0])
        if isinstance(mine, dict):
            n = sum(int(v) for v in mine.values() if isinstance(v, (int, float)))
            return (n, total) if n else None
        n = int((~np.isfinite(y)).sum())
        return (n, len(y)) if n else None

    def arrows(self, a: AxisArrows, base: float) -> None:
        from matplotlib.lines import Line2D

        colors = np.where(a.clipped, CLIPPED_COLOR, ARROW_COLOR)
        self.axis_quiver = self.ax.quiver(
            a.x, np.full(len(a.x), base), a.du, np.zeros(len(a.x)), color=list(colors), angles="xy",
            scale_units="xy", scale=1.0, width=0.004, headwidth=3.5, headlength=4, headaxislength=3.5, zorder=5,
        )  # fmt: skip
        d = "−f′" if self.descent else "f′"
        where = "on the input axis (y = 0)" if base == 0.0 else "on the input axis (dashed; y = 0 is out of view)"
        how = {
            "clip": f"length ∝ {d}, clipped at |f′| = {a.scale.reference:.3g}",
            "scale": f"length ∝ {d}",
            "normalize": "the sign only (equal lengths)",
        }[a.scale.mode]
        mark = r"$\leftarrow$" if self.descent else r"$\rightarrow$"
        self.handles.append(
            Line2D([], [], ls="", marker=mark, ms=12, color=ARROW_COLOR, label=f"{d}(x) {where}: {how}")
        )
        if a.clipped.any():
            self.handles.append(
                Line2D([], [], ls="", marker=mark, ms=12, color=CLIPPED_COLOR,
                       label=f"clipped: |f′| > {a.scale.reference:.3g} ({_arrows(int(a.clipped.sum()))})")
            )  # fmt: skip
        if a.scale.key is not None:
            self.key(a.scale)

    def key(self, scale: ArrowScale) -> None:
        """An arrow of known length above the axes' right end (the title is centred, the
        value axis's top tick on the left): ``|f′| = 5``."""
        x0, x1 = self.ax.get_xlim()
        frac = scale.key_pixels / abs(x1 - x0)  # one "pixel" a data unit here
        self.ax.annotate(
            "", xy=(1.0, 1.03), xytext=(1.0 - frac, 1.03), xycoords="axes fraction",
            arrowprops=dict(arrowstyle="-|>", color=ARROW_COLOR, lw=1.2, shrinkA=0, shrinkB=0),
        )  # fmt: skip
        self.ax.text(1.0 - frac - 0.01, 1.03, f"|f′| = {scale.key:g}", transform=self.ax.transAxes, ha="right",
                     va="center", fontsize="small")  # fmt: skip

    def tangents(self, a: AxisArrows, x: np.ndarray, y: np.ndarray) -> None:
        """Over each axis arrow, the tangent step (du, f′·du) from the curve's point: the arrow
        below is its shadow on the input axis (seed 000's construction)."""
        from matplotlib.lines import Line2D

        if "image" not in self.opt.layers:
            return
        at = np.interp(a.x, x, np.where(np.isfinite(y), y, np.nan))
        ok = np.isfinite(at)
        self.tangent_quiver = self.ax.quiver(
            a.x[ok], at[ok], a.du[ok], (a.slope * a.du)[ok], color=self.tangent_color, angles="xy", scale_units="xy",
            scale=1.0, width=0.0035, headwidth=3.5, headlength=4, headaxislength=3.5, zorder=4,
        )  # fmt: skip
        self.handles.append(
            Line2D([], [], ls="", marker=r"$\nearrow$", ms=12, color=self.tangent_color,
                   label="the tangent over each arrow, (Δx, f′·Δx): the arrow is its shadow on the input axis")
        )  # fmt: skip

    def frame(self) -> None:
        labels = getattr(self.layout, "labels", None) or {}
        self.ax.set_xlabel(axis_label(self.axis, labels))
        self.ax.set_ylabel(field_label(self.field, (self.axis,), self.gradient))
        if self.opt.aspect == "equal":
            self.ax.set_aspect("equal")
        title = self.opt.title
        if title is None:
            fn = str(self.attrs.get("function") or "")
            title = f"{self.layout.name}: {fn}" if fn else self.layout.name
        self.ax.set_title(wrap_title(title, self.opt.size[0], self.opt.dpi))

    def legend(self) -> None:
        add_legend(self.fig, self.handles, self.opt)


def _arrows(n: int) -> str:
    return f"{n} arrow{'s' * (n != 1)}"


def _x_range(opt: RenderOptions, x: np.ndarray) -> tuple[float, float]:
    if opt.window is not None:
        return float(opt.window[0]), float(opt.window[1])
    return float(x[0]), float(x[-1])


def _read_curve(
    path: str | Path, layout: JobLayout, field: str, opt: RenderOptions
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Coordinates, the field and the derivative at the coarsest pyramid level that keeps a
    data point per pixel of the window (float64)."""
    levels = len(layout.shapes) - 1
    n = layout.shapes[0][0]
    coarse = read_coords(path, layout.name, levels)[0]
    lo, hi = float(coarse[0]), float(coarse[-1])
    share = 1.0
    if opt.window is not None and hi > lo:
        share = max(0.0, min(hi, opt.window[1]) - max(lo, opt.window[0])) / (hi - lo)
    level = choose_level(n * share, 0.8 * opt.size[0], levels)
    x = read_coords(path, layout.name, level)[0].astype(np.float64)
    y = read_field(path, layout.name, field, level).astype(np.float64)
    grad = f"grad_{layout.axes[0]}"
    g = read_field(path, layout.name, grad, level).astype(np.float64) if grad in layout.fields else None
    return x, y, g


def _job_attrs(path: str | Path, job: str) -> dict[str, Any]:
    """The job's attributes (its function's text, the non-finite counts written with it)."""
    try:
        info = inspect(path)
    except StoreError:
        return {}
    for j in info.jobs:
        if j.name == job:
            return dict(j.attrs)
    return {}


def _descends(path: str | Path, job: str) -> bool:
    """Whether the job has descent paths or basins (arrows then point downhill by default)."""
    ov = read_overlays(path, job)
    return bool(ov.paths) or ov.basins is not None
