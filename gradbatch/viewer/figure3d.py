"""Seed 000's 3D picture as a file: the surface z = f(x, y) over the input plane, and the
gradient's arrows lying IN that plane, below the surface (the gradient lives in the input
space, not on the surface).

matplotlib's mplot3d draws it: a surface of at most ~100 x 100 points coloured by the field's
colour limits (from its statistics, as every picture of the job), lit only enough to show its
shape (the colours stay the colour bar's), undefined points left out as holes and counted;
under it, the field's filled contours on the plane and ~20 x 20 arrows in colours that
contrast with them; labelled x, y and z axes, a colour bar and a title.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import StoreError
from ..records import WindowRequest, WindowResponse
from ..store import FieldReader
from .figure import (
    add_legend,
    axis_label,
    colormap,
    field_label,
    figure_context,
    new_figure,
    norm_of,
    save_figure,
    wrap_title,
)
from .limits import Limits, colour_limits, masked_image
from .options import RenderOptions, Resolved
from .prepare import arrow_samples, arrow_vectors, contrast_colors
from .window_layout import check_plane

__all__ = ["render_surface", "surface_mesh", "shade_factor", "MESH", "ARROWS", "PLANE_GAP"]

MESH = 100
"""The surface's mesh: at most this many points along each axis."""
ARROWS = 20
"""About this many arrows along each axis of the input plane."""
PLANE_GAP = 0.8
"""The input plane lies this share of the surface's height below its minimum."""
BOX = (1.0, 1.0, 1.0)
"""The 3D box's proportions (x, y, z): taller than matplotlib's 4:4:3, room for the plane below."""
SHADE = 0.25
"""How much the light darkens a face turned away from it (0: flat colours): enough to show the
shape, never enough to hide the colour (seed 002's surface drawn nearly black by full lighting)."""


def render_surface(reader: FieldReader, out: Path, opt: RenderOptions, resolved: Resolved) -> Path:
    """Draw ``reader``'s job (its plane ``opt.plane`` of a 3D job) as a surface to ``out``."""
    name = resolved.field
    if name not in reader.fields:
        raise StoreError(f"{reader.path}: job {reader.job!r} has no field {name!r}; fields: {', '.join(reader.fields)}")
    if opt.plane is not None and reader.plane_range is not None:
        check_plane(reader.slice_axis, opt.plane, reader.plane_range)
    window = _window(opt.window, reader.extent)
    pair = reader.vectors if "arrows" in opt.layers else None
    resp = reader.read(
        WindowRequest(reader.job, window, (MESH, MESH), (name,), tuple(pair or ()), (ARROWS, ARROWS), opt.plane)
    )
    stats = reader.stats(name)
    limits = colour_limits(stats, resolved.scale, opt.clim, opt.robust)
    with figure_context(opt.theme):
        fig = new_figure(opt)
        s = SurfaceFigure(fig, reader, opt, resolved, window, limits)
        s.draw(resp)
        return save_figure(fig, out)


def surface_mesh(
    x: np.ndarray, y: np.ndarray, z: np.ndarray, limit: int = MESH
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every ``k``-th point of a field ``z`` (ny, nx) over ``x``, ``y``, so that neither axis has
    more than ``limit`` points (the last row and column kept: the surface spans the window)."""

    def pick(n: int) -> np.ndarray:
        step = max(1, math.ceil(n / limit))
        idx = np.arange(0, n, step)
        return idx if idx[-1] == n - 1 or len(idx) >= limit else np.append(idx, n - 1)

    ix, iy = pick(len(x)), pick(len(y))
    return x[ix], y[iy], z[np.ix_(iy, ix)]


def shade_factor(zq: np.ndarray, z_span: float, elevation: float, azimuth: float) -> np.ndarray:
    """A brightness factor in [1 - SHADE, 1] per point of ``zq`` (ny, nx): Lambert's cosine
    between the surface's normal, taken in the picture's box (x and y each one unit across, z
    one unit over ``z_span``, as drawn), and a light from over the viewer's left shoulder."""
    ny, nx = zq.shape
    gy, gx = np.gradient(np.nan_to_num(zq / (z_span or 1.0)), 1.0 / max(ny - 1, 1), 1.0 / max(nx - 1, 1))
    normal = np.stack([-gx, -gy, np.ones_like(gx)], axis=-1)
    normal /= np.linalg.norm(normal, axis=-1, keepdims=True)
    az, el = math.radians(azimuth + 45.0), math.radians(min(elevation + 30.0, 85.0))
    light = np.array([math.cos(el) * math.cos(az), math.cos(el) * math.sin(az), math.sin(el)])
    lambert = np.clip(normal @ light, 0.0, 1.0)
    return np.asarray(1.0 - SHADE * (1.0 - lambert))


class SurfaceFigure:
    """The surface's 3D axes, colour bar and legend (see the module's docstring)."""

    def __init__(
        self,
        fig: Any,
        reader: FieldReader,
        opt: RenderOptions,
        resolved: Resolved,
        window: tuple[float, float, float, float],
        limits: Limits,
    ) -> None:
        self.fig, self.reader, self.opt, self.resolved, self.window, self.limits = (
            fig, reader, opt, resolved, window, limits
        )  # fmt: skip
        self.ax = fig.add_subplot(projection="3d", computed_zorder=False)
        self.log = limits.scale == "log"
        self.cmap, self.norm = colormap(opt.colormap), norm_of(limits)
        self.handles: list[Any] = []
        self.gradient = reader.vectors is not None and reader.vectors[0].startswith("grad_")
        self.plane_z = 0.0
        self.z_range = (0.0, 1.0)
        self.mesh: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None  # x, y, values (NaN: masked)

    def draw(self, resp: WindowResponse) -> None:
        x, y, raw = surface_mesh(resp.x, resp.y, np.asarray(resp.data[self.resolved.field], np.float64))
        data, undefined, nonpositive = masked_image(raw, self.limits.scale)
        z = np.log10(data.filled(np.nan)) if self.log else data.filled(np.nan)
        finite = z[np.isfinite(z)]
        lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
        if hi <= lo:
            lo, hi = lo - 0.5, hi + 0.5
        self.z_range = (lo, hi)
        self.plane_z = lo - PLANE_GAP * (hi - lo)
        self.mesh = (x, y, np.asarray(data.filled(np.nan), np.float64))
        self.plane(x, y, data)
        if "arrows" in self.opt.layers and resp.coarse is not None:
            self.arrows(resp.coarse)
        if "image" in self.opt.layers:
            self.surface(x, y, z, data)
        self.frame(resp)
        if self.opt.colorbar:
            self.colorbar()
        self.notes(undefined, nonpositive)
        self.legend()

    def surface(self, x: np.ndarray, y: np.ndarray, z: np.ndarray, data: Any) -> None:
        """One quad per mesh cell whose four corners are defined (the others are holes),
        coloured by the mean of its corners' values, dimmed a little by the light."""
        from mpl_toolkits.mplot3d.art3d import Poly3DCollection

        X, Y = np.meshgrid(x, y)
        quads = np.stack(
            [
                np.stack([X[:-1, :-1], Y[:-1, :-1], z[:-1, :-1]], -1),
                np.stack([X[:-1, 1:], Y[:-1, 1:], z[:-1, 1:]], -1),
                np.stack([X[1:, 1:], Y[1:, 1:], z[1:, 1:]], -1),
                np.stack([X[1:, :-1], Y[1:, :-1], z[1:, :-1]], -1),
            ],
            axis=2,
        )  # (ny - 1, nx - 1, 4 corners, xyz)
        values = np.asarray(data.filled(np.nan), np.float64)
        corners = np.stack([values[:-1, :-1], values[:-1, 1:], values[1:, 1:], values[1:, :-1]], -1)
        ok = np.isfinite(quads[..., 2]).all(axis=-1)
        with np.errstate(all="ignore"):
            mean = np.exp(np.log(corners).mean(-1)) if self.log else corners.mean(-1)
        rgba = np.asarray(self.cmap(self.norm(np.ma.masked_invalid(mean))), np.float64)
        light = shade_factor(z, self.z_range[1] - self.z_range[0], self.opt.elevation, self.opt.azimuth)
        light = 0.25 * (light[:-1, :-1] + light[:-1, 1:] + light[1:, 1:] + light[1:, :-1])
        self.surface_base = rgba[ok].copy()  # the colour bar's colours, before the light
        rgba[..., :3] *= light[..., None]
        faces = rgba[ok]
        self.surface_rgba = faces
        self.surface_collection = Poly3DCollection(
            quads[ok], facecolors=faces, edgecolors=faces, linewidths=0.15, zorder=3, rasterized=ok.sum() > 2500
        )
        self.ax.add_collection3d(self.surface_collection)

    def plane(self, x: np.ndarray, y: np.ndarray, data: Any) -> None:
        """The field's filled contours on the input plane, faint: what the arrows point across."""
        if "image" not in self.opt.layers or data.count() < 4 or min(data.shape) < 2:
            return
        lo, hi = self.limits.lo, self.limits.hi
        levels = np.geomspace(lo, hi, 13) if self.log else np.linspace(lo, hi, 13)
        self.ax.contourf(
            x, y, data, levels=levels, cmap=self.cmap, norm=self.norm, zdir="z", offset=self.plane_z,
            alpha=self.PLANE_ALPHA, zorder=1, extend="both",
        )  # fmt: skip

    PLANE_ALPHA = 0.45

    def arrows(self, coarse: WindowResponse) -> None:
        """~20 x 20 arrows at data points, in the plane below the surface."""
        from matplotlib.lines import Line2D

        pair = self.reader.vectors
        if pair is None or not all(p in coarse.data for p in pair):
            return
        ix, iy = arrow_samples(coarse.x, coarse.y, self.window, (ARROWS, ARROWS), 1.0)
        if not len(ix) or not len(iy):
            return
        u = np.asarray(coarse.data[pair[0]][np.ix_(iy, ix)], np.float64)
        v = np.asarray(coarse.data[pair[1]][np.ix_(iy, ix)], np.float64)
        if self.resolved.descent:
            u, v = -u, -v
        gx, gy = np.meshgrid(coarse.x[ix], coarse.y[iy])
        w = self.window
        cell = min(_spacing(coarse.x[ix], w[1] - w[0]), _spacing(coarse.y[iy], w[3] - w[2]))
        with np.errstate(invalid="ignore"):  # an infinite vector: NaN, not drawn
            du, dv, scale = arrow_vectors(u, v, cell, (1.0, 1.0), self.opt.arrow_mode)  # data units
        keep = (np.isfinite(du) & np.isfinite(dv)).ravel()
        cx, cy, du, dv = gx.ravel()[keep], gy.ravel()[keep], du.ravel()[keep], dv.ravel()[keep]
        under = self._value_at(cx, cy)
        drawn = np.isfinite(under) if self.mesh is not None else np.ones(len(cx), bool)  # none over a hole
        cx, cy, du, dv, under = cx[drawn], cy[drawn], du[drawn], dv[drawn], under[drawn]
        colors = self._contrast(under)
        self.arrow_collection = self._draw_arrows(cx, cy, du, dv, colors)
        self.arrow_count = len(cx)
        g = "−∇f" if self.resolved.descent and self.gradient else ("∇f" if self.gradient else "the vector field")
        how = {
            "clip": f"length ∝ |{g.lstrip('−')}|, clipped at {scale.reference:.3g}",
            "scale": f"length ∝ |{g.lstrip('−')}|",
            "normalize": "direction only (equal lengths)",
        }[scale.mode]
        ink = "white" if self.opt.theme == "dark" else "black"
        self.handles.append(
            Line2D([], [], ls="", marker=r"$\rightarrow$", ms=12, color=ink,
                   label=f"{g} at {len(cx):,} data points, in the input plane below the surface: {how}")
        )  # fmt: skip

    def _draw_arrows(self, cx: np.ndarray, cy: np.ndarray, du: np.ndarray, dv: np.ndarray, colors: np.ndarray) -> Any:
        """Arrows centred on (cx, cy) in the plane z = plane_z, their barbs built in the box's
        units (each axis scaled to its span, as drawn) so heads look alike on unlike axes."""
        from mpl_toolkits.mplot3d.art3d import Line3DCollection

        from ..geometry import VERTICES_PER_ARROW, arrow_segments

        x0, x1, y0, y1 = self.window
        sx, sy = abs(x1 - x0) or 1.0, abs(y1 - y0) or 1.0
        seg = arrow_segments((cx - du / 2) / sx, (cy - dv / 2) / sy, du / sx, dv / sy, head=0.35)
        xy = seg.vertices.astype(np.float64) * np.array([sx, sy])
        xyz = np.concatenate([xy, np.full((len(xy), 1), self.plane_z)], axis=1).reshape(-1, 2, 3)
        per = VERTICES_PER_ARROW // 2
        lines = Line3DCollection(xyz, colors=np.repeat(colors, per, axis=0), linewidths=0.9, zorder=2)
        self.ax.add_collection3d(lines)
        return lines

    def _value_at(self, cx: np.ndarray, cy: np.ndarray) -> np.ndarray:
        """The field at the mesh point nearest each (cx, cy); NaN without a mesh."""
        if self.mesh is None:
            return np.full(len(cx), np.nan)
        x, y, values = self.mesh
        i = np.abs(cx[:, None] - x[None, :]).argmin(1)
        j = np.abs(cy[:, None] - y[None, :]).argmin(1)
        return np.asarray(values[j, i], np.float64)

    def _contrast(self, values: np.ndarray) -> np.ndarray:
        """Black or white, by the plane's colour under each arrow (the theme's ink without one)."""
        dark = self.opt.theme == "dark"
        if self.mesh is None or "image" not in self.opt.layers:
            ink = 1.0 if dark else 0.0
            return np.tile(np.array([ink, ink, ink, 1.0]), (len(values), 1))
        under = np.asarray(self.cmap(self.norm(np.ma.masked_invalid(values))), np.float64)
        bg = 0.0 if dark else 1.0
        under[:, :3] = self.PLANE_ALPHA * under[:, :3] + (1 - self.PLANE_ALPHA) * bg  # as the faint plane shows it
        return contrast_colors(under).astype(np.float64)

    # -- frame, colour bar, legend -----------------------------------------------------------
    def frame(self, resp: WindowResponse) -> None:
        ax, (x0, x1, y0, y1) = self.ax, self.window
        ax.set_xlim(x0, x1)
        ax.set_ylim(y0, y1)
        ax.set_zlim(self.plane_z, self.z_range[1])
        ax.set_box_aspect(BOX, zoom=0.95)
        if self.opt.theme == "dark":  # mplot3d's grey panes would wash out the dark theme
            for pane in (ax.xaxis, ax.yaxis, ax.zaxis):
                pane.set_pane_color((0.12, 0.12, 0.12, 1.0))
        lo, hi = self.z_range
        from matplotlib.ticker import MaxNLocator

        ticks = [t for t in MaxNLocator(5).tick_values(lo, hi) if lo - 1e-9 * (hi - lo) <= t <= hi + 1e-9 * (hi - lo)]
        ax.set_zticks(ticks)  # the surface's values only: the plane below is no value of f
        labels = getattr(self.reader, "axis_labels", None) or {}
        ax.set_xlabel(axis_label(self.reader.axes[0], labels))
        ax.set_ylabel(axis_label(self.reader.axes[1], labels))
        ax.set_zlabel(self.z_label(), labelpad=12)
        ax.view_init(elev=self.opt.elevation, azim=self.opt.azimuth)
        title = self.opt.title
        if title is None:
            fn = getattr(self.reader, "function_text", None) or ""
            title = f"{self.reader.job}: {fn}" if fn else self.reader.job
            if resp.plane is not None and self.reader.slice_axis is not None:
                title += f"  ({self.reader.slice_axis} = {resp.plane:.4g})"
        ax.set_title(wrap_title(title, self.opt.size[0], self.opt.dpi))

    def z_label(self) -> str:
        name = field_label(self.resolved.field, tuple(self.reader.axes), self.gradient)
        return f"log₁₀ {name}" if self.log else name

    def colorbar(self) -> None:
        from matplotlib.cm import ScalarMappable

        label = field_label(self.resolved.field, tuple(self.reader.axes), self.gradient)
        if self.log:
            label += " (log scale)"
        if self.limits.source.startswith("percentiles"):
            label += f", limits at {self.limits.source}"
        sm = ScalarMappable(norm=self.norm, cmap=self.cmap)
        self.fig.colorbar(sm, ax=self.ax, shrink=0.6, pad=0.14, extend=self.limits.extend, label=label)

    def notes(self, undefined: np.ndarray, nonpositive: np.ndarray) -> None:
        from matplotlib.patches import Patch

        total = self.limits.points
        for n_job, drawn, what in (
            (self.limits.undefined, undefined, "undefined (NaN, ±inf)"),
            (self.limits.nonpositive, nonpositive, "≤ 0, not on a log scale"),
        ):
            n = n_job or int(drawn.sum())
            if n or drawn.any():
                share = f" ({100 * n / total:.2g}%)" if total else ""
                self.handles.append(
                    Patch(alpha=0.0, label=f"{what}: {n:,} point{'s' * (n != 1)}{share}, holes in the surface")
                )

    def legend(self) -> None:
        from matplotlib.patches import Patch

        handles = list(self.handles) + [Patch(alpha=0.0, label=note) for note in self.resolved.notes]
        if self.opt.legend and handles:
            add_legend(self.fig, handles, self.opt)


def _window(
    window: tuple[float, float, float, float] | None, extent: tuple[float, float, float, float]
) -> tuple[float, float, float, float]:
    """The data window: the one asked (an x range alone keeps the y extent), else the grid's."""
    if window is None:
        return extent
    x0, x1, y0, y1 = window
    return (x0, x1, *(extent[2:] if math.isnan(y0) else (y0, y1)))


def _spacing(c: np.ndarray, span: float) -> float:
    """The distance between neighbouring arrows along one axis (the span for a single one)."""
    return float(np.median(np.abs(np.diff(c)))) if len(c) > 1 else abs(span)
