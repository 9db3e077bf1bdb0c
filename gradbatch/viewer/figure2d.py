"""A 2D job (or one plane of a 3D job) as a picture file: the field as an image on true
axes, its colour bar, and every overlay with a legend entry saying what it is.

Layers, bottom to top: the image (undefined points hatched, never coloured), contours, basin
outlines, streamlines with arrowheads, arrows at data points, descent paths (one colour per
optimiser, a circle at each start and a star at each end) and the critical points by kind.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import StoreError
from ..records import FieldStats, Overlays, WindowRequest, WindowResponse
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
from .figure_overlays import VECTOR_ARROWS, OverlayLayers
from .limits import Limits, colour_limits, estimate_stats, masked_image
from .options import RenderOptions, Resolved
from .prepare import arrow_canvas
from .window_layout import check_plane

__all__ = ["render_map", "build_map", "MapFigure", "VECTOR_ARROWS"]


def _window(window: tuple[float, float, float, float] | None, extent: tuple[float, float, float, float]) -> Any:
    """The data window: the one asked (an x range alone keeps the y extent), else the grid's."""
    if window is None:
        return extent
    x0, x1, y0, y1 = window
    return (x0, x1, *(extent[2:] if math.isnan(y0) else (y0, y1)))


def render_map(reader: FieldReader, out: Path, opt: RenderOptions, resolved: Resolved) -> Path:
    """Draw ``reader``'s job (its plane ``opt.plane``) with the settled options ``opt`` to ``out``."""
    with figure_context(opt.theme):
        return save_figure(build_map(reader, opt, resolved).fig, out)


def build_map(reader: FieldReader, opt: RenderOptions, resolved: Resolved) -> MapFigure:
    """The map's figure, drawn but not saved (inside :func:`figure_context`): tests look at its
    artists and pixels, :func:`render_map` saves it."""
    name = resolved.field
    if "image" in opt.layers and name not in reader.fields and not (name == "magnitude" and reader.vectors):
        raise StoreError(f"{reader.path}: job {reader.job!r} has no field {name!r}; fields: {', '.join(reader.fields)}")
    if opt.plane is not None and reader.plane_range is not None:
        check_plane(reader.slice_axis, opt.plane, reader.plane_range)
    window = _window(opt.window, reader.extent)
    w, h = opt.size
    canvas = (max(16, int(0.8 * w)), max(16, int(0.8 * h)))  # about the axes' share of the picture
    pair = reader.vectors
    derived = name == "magnitude" and name not in reader.fields and pair is not None
    resp = reader.read(
        WindowRequest(
            reader.job,
            window,
            canvas,
            (name,) if name in reader.fields else tuple(pair) if derived and pair else (),
            tuple(pair) if "arrows" in opt.layers and pair else (),
            arrow_canvas(canvas, opt.pixels_per_arrow),
            opt.plane,
        )
    )
    if derived and pair is not None:  # a vector job that did not store its magnitude: |v| of what was read
        resp.data[name] = np.hypot(resp.data[pair[0]], resp.data[pair[1]])
    stats = reader.stats(name) if name in reader.fields else None
    if stats is None and name in resp.data:  # a magnitude computed here: estimated from what was read
        stats = estimate_stats(name, resp.data[name])
    fig = new_figure(opt)
    labels = list(reader.overlays().paths) if opt.panels and "paths" in opt.layers else []
    if len(labels) < 2:
        m = MapFigure(fig, fig.add_subplot(), reader, opt, resolved, window, stats)
        m.draw(resp)
        return m
    return _panels(fig, labels, reader, opt, resolved, window, stats, resp)


def _panels(
    fig: Any,
    labels: list[str],
    reader: FieldReader,
    opt: RenderOptions,
    resolved: Resolved,
    window: tuple[float, float, float, float],
    stats: FieldStats | None,
    resp: WindowResponse,
) -> MapFigure:
    """Small multiples: one panel per optimiser on shared axes, one colour bar, one legend."""
    cols = min(len(labels), 3)
    rows = math.ceil(len(labels) / cols)
    axs = fig.subplots(rows, cols, sharex=True, sharey=True, squeeze=False).ravel()
    for ax in axs[len(labels) :]:
        ax.remove()
    maps = [MapFigure(fig, ax, reader, opt, resolved, window, stats, only) for ax, only in zip(axs, labels)]
    for i, m in enumerate(maps):
        m.show_key = i == 0  # one arrow key for all panels: they share the arrows' scale
        m.grid = (cols, rows)
        m.draw(resp, decorate=False)
        m.ax.set_title(m.path_title or m.paths_only or "", fontsize="small")
        m.ax.label_outer()  # tick labels on the outer panels only
    first = maps[0]
    if first.im is not None and opt.colorbar:
        first.colorbar(first.im, axes=list(axs[: len(labels)]))
    seen: dict[str, Any] = {}
    for m in maps:  # each panel's title names its optimiser: the legend keeps what they share
        seen.update({h.get_label(): h for h in m.handles if h.get_label() not in seen and h is not m.path_handle})
    first.handles = list(seen.values())
    first.legend()
    fig.suptitle(wrap_title(first.title(resp), opt.size[0], opt.dpi))
    for m in maps:
        if m.raster is not None:
            m.gl_arrows(*m.raster)
    return first


class MapFigure(OverlayLayers):
    """One map's axes and legend, built layer by layer (see the module's docstring)."""

    def __init__(
        self,
        fig: Any,
        ax: Any,
        reader: FieldReader,
        opt: RenderOptions,
        resolved: Resolved,
        window: tuple[float, float, float, float],
        stats: FieldStats | None,
        paths_only: str | None = None,
    ) -> None:
        self.fig, self.opt, self.resolved, self.window, self.stats = fig, opt, resolved, window, stats
        self.ax = ax
        self.paths_only = paths_only  # a panel of small multiples: this optimiser's paths alone
        self.path_title: str | None = None  # that optimiser's legend text, the panel's title
        self.path_handle: Any = None
        self.show_key = True
        self.grid = (1, 1)  # panels across and down (small multiples)
        self.im: Any = None
        self.reader = reader
        self.overlays: Overlays = reader.overlays()
        self.axes = (reader.axes[0], reader.axes[1])
        self.plane_axes = list(reader.plane_axes)
        self.gradient = reader.vectors is not None and reader.vectors[0].startswith("grad_")
        self.handles: list[Any] = []
        self.image_rgba: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None  # x, y, colours of the image
        self.limits: Limits | None = None
        self.raster: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None  # arrows drawn by GL
        self.bar: Any = None
        self.dark = opt.theme == "dark"

    def draw(self, resp: WindowResponse, decorate: bool = True) -> None:
        """Every layer asked for; with ``decorate``, the colour bar, the legend and the GL arrows too
        (small multiples add theirs once for all panels)."""
        opt = self.opt
        im = self.im = self.image(resp) if "image" in opt.layers and self.resolved.field in resp.data else None
        if im is not None and "contours" in opt.layers:
            self.contours(resp, im)
        if "basins" in opt.layers:
            self.basins()
        if "streamlines" in opt.layers:
            self.streamlines()
        if "arrows" in opt.layers and resp.coarse is not None:
            self.arrows(resp.coarse)
        if "paths" in opt.layers:
            self.paths()
        if "minima" in opt.layers:
            self.minima()
        self.frame(resp)
        if not decorate:
            return
        key = any(t.get_text().startswith(("|∇f| =", "|v| =")) for t in self.ax.texts)
        self.ax.set_title(wrap_title(self.title(resp), self.opt.size[0], self.opt.dpi), pad=18 if key else 6)
        if im is not None and opt.colorbar:
            self.colorbar(im)
        self.legend()
        if self.raster is not None:
            self.gl_arrows(*self.raster)

    # -- the field ---------------------------------------------------------------------------
    def image(self, resp: WindowResponse) -> Any:
        from matplotlib.patches import Patch, Rectangle

        r, opt = self.resolved, self.opt
        limits = colour_limits(self.stats, r.scale, opt.clim, opt.robust)
        self.limits = limits
        data, undefined, nonpositive = masked_image(resp.data[r.field], r.scale)
        x, y = resp.x, resp.y
        dx = (x[-1] - x[0]) / (len(x) - 1) if len(x) > 1 else 1.0
        dy = (y[-1] - y[0]) / (len(y) - 1) if len(y) > 1 else 1.0
        extent = (x[0] - dx / 2, x[-1] + dx / 2, y[0] - dy / 2, y[-1] + dy / 2)
        cmap, norm = colormap(opt.colormap), norm_of(limits)
        if undefined.any() or nonpositive.any():  # hatching under the image shows through its holes
            hatch = Rectangle(
                (extent[0], extent[2]),
                extent[1] - extent[0],
                extent[3] - extent[2],
                facecolor="0.25" if self.dark else "0.92",
                edgecolor="0.55",
                hatch="////",
                linewidth=0,
                zorder=0,
            )
            self.ax.add_patch(hatch)
        im = self.ax.imshow(
            data, origin="lower", extent=extent, cmap=cmap, norm=norm, interpolation="nearest", aspect="auto", zorder=1
        )
        with np.errstate(all="ignore"):
            self.image_rgba = (np.asarray(x), np.asarray(y), cmap(norm(data.filled(np.nan))))
        face, edge = ("0.25", "0.55") if self.dark else ("0.92", "0.55")
        if undefined.any() or limits.undefined:
            n = limits.undefined or int(undefined.sum())
            self.handles.append(
                Patch(facecolor=face, edgecolor=edge, hatch="////", label=f"undefined (NaN, ±inf): {_count(n, limits)}")
            )
        if nonpositive.any() or limits.nonpositive:
            n = limits.nonpositive or int(nonpositive.sum())
            self.handles.append(
                Patch(
                    facecolor=face, edgecolor=edge, hatch="////", label=f"≤ 0, not on a log scale: {_count(n, limits)}"
                )
            )
        return im

    def contours(self, resp: WindowResponse, im: Any) -> None:
        assert self.limits is not None
        lo, hi, n = self.limits.lo, self.limits.hi, self.opt.contours
        levels = np.geomspace(lo, hi, n + 2)[1:-1] if self.limits.scale == "log" else np.linspace(lo, hi, n + 2)[1:-1]
        data = np.ma.masked_invalid(np.asarray(im.get_array(), dtype=np.float64))
        if data.count() < 4 or min(data.shape) < 2:
            return
        color = "white" if self.dark else "black"
        self.contour_set = self.ax.contour(
            resp.x, resp.y, data, levels=levels, colors=color, linewidths=0.6, alpha=0.6, zorder=2
        )

    # -- frame, colour bar, legend -----------------------------------------------------------
    def frame(self, resp: WindowResponse) -> None:
        ax, (x0, x1, y0, y1) = self.ax, self.window
        ax.set_xlim(x0, x1)
        ax.set_ylim(y0, y1)
        ax.set_aspect("equal" if self.resolved.aspect == "equal" else "auto")
        labels = getattr(self.reader, "axis_labels", None) or {}
        ax.set_xlabel(axis_label(self.axes[0], labels))
        ax.set_ylabel(axis_label(self.axes[1], labels))

    def title(self, resp: WindowResponse) -> str:
        """The options' title, else ``job: function``, with a 3D job's plane as drawn."""
        if self.opt.title is not None:
            return self.opt.title
        fn = getattr(self.reader, "function_text", None) or ""
        job = self.reader.job
        title = fn if fn.startswith(f"{job}: ") else f"{job}: {fn}" if fn else job
        if resp.plane is not None and self.reader.slice_axis is not None:
            title += f"  ({self.reader.slice_axis} = {resp.plane:.4g}"
            asked = self.opt.plane
            if asked is not None and not math.isclose(asked, resp.plane, rel_tol=1e-6, abs_tol=1e-12):
                title += f", the grid plane nearest {asked:g}"
            title += ")"
        return title

    def colorbar(self, im: Any, axes: list[Any] | None = None) -> None:
        assert self.limits is not None
        label = field_label(self.resolved.field, self.axes, self.gradient)
        if self.limits.scale == "log":
            label += " (log scale)"
        if self.limits.source.startswith("percentiles"):
            label += f", limits at {self.limits.source}"
        # an inset of the axes: the bar keeps the axes' height and stays beside them when an
        # equal aspect narrows them (a bar of the figure's grid would stay at the grid's edge)
        if axes is None:
            bar = self.bar = self.fig.colorbar(im, ax=self.ax, extend=self.limits.extend, label=label, fraction=0.05)
        else:  # small multiples: one bar for every panel
            bar = self.bar = self.fig.colorbar(im, ax=axes, extend=self.limits.extend, label=label, shrink=0.9)
        cs = getattr(self, "contour_set", None)
        if cs is not None:
            bar.add_lines(cs)

    def legend(self) -> None:
        from matplotlib.patches import Patch

        handles = list(self.handles)
        for note in self.resolved.notes:
            handles.append(Patch(alpha=0.0, label=note))
        x0, x1, y0, y1 = self.window
        w, h = self.opt.size
        side = self.resolved.aspect == "equal" and w / h > 1.2 * abs(x1 - x0) / abs(y1 - y0) and not self.paths_only
        add_legend(self.fig, handles, self.opt, side)


def _count(n: int, limits: Limits) -> str:
    total = limits.points
    return f"{n:,} points ({100 * n / total:.2g}%)" if total else f"{n:,} points"
