"""The overlays of a 2D map figure: basin outlines, streamlines with arrowheads, arrows at data
points (vector up to :data:`VECTOR_ARROWS`, a GL raster beyond), descent paths by optimiser and
critical points by kind, each with its legend entry. A mixin of
:class:`gradbatch.viewer.figure2d.MapFigure`, which owns the axes, the image and the legend.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from ..records import Overlays, WindowResponse
from .figure import BASIN_COLORS, PATH_COLORS
from .prepare import ArrowScale, arrow_samples, arrow_vectors, contrast_colors, path_polylines

if TYPE_CHECKING:
    from ..store import FieldReader
    from .options import RenderOptions, Resolved

__all__ = ["OverlayLayers", "VECTOR_ARROWS", "KIND_MARKERS"]

VECTOR_ARROWS = 4000
"""Up to this many arrows stay vector (matplotlib's quiver); more are drawn by GL as one raster."""
KIND_MARKERS = {"minimum": ("v", "minimum"), "maximum": ("^", "maximum"), "saddle": ("X", "saddle point")}


class OverlayLayers:
    """The overlay layers; the map figure provides the attributes annotated here."""

    fig: Any
    ax: Any
    opt: RenderOptions
    resolved: Resolved
    reader: FieldReader
    overlays: Overlays
    window: tuple[float, float, float, float]
    plane_axes: list[int]
    gradient: bool
    dark: bool
    handles: list[Any]
    image_rgba: tuple[np.ndarray, np.ndarray, np.ndarray] | None
    raster: tuple[np.ndarray, np.ndarray, np.ndarray] | None
    paths_only: str | None
    path_title: str | None
    path_handle: Any
    show_key: bool
    grid: tuple[int, int]
    px_per_unit: float
    raster_image: Any

    # -- overlays ----------------------------------------------------------------------------
    def basins(self) -> None:
        from matplotlib.lines import Line2D

        stored = self.overlays.basins
        if stored is None or stored.record.label.ndim != 2:
            return
        rec = stored.record
        bx, by = rec.axes[self.plane_axes[0]], rec.axes[self.plane_axes[1]]
        for k, point in enumerate(rec.points):
            inside = (rec.label == k).astype(np.float32)
            if not inside.any() or inside.all():
                continue
            color = BASIN_COLORS[k % len(BASIN_COLORS)]
            self.ax.contour(bx, by, inside, levels=[0.5], colors=[color], linewidths=1.8, zorder=3)
            where = ", ".join(f"{v:.3g}" for v in point.point)
            self.handles.append(
                Line2D(
                    [], [], color=color, lw=1.8, label=f"basin of the {point.kind} at ({where}): {rec.counts[k]} starts"
                )
            )

    def streamlines(self) -> None:
        from matplotlib.collections import LineCollection
        from matplotlib.lines import Line2D

        stored = self.overlays.streamlines
        if stored is None or not len(stored.record.points):
            return
        pts = stored.record.points[:, self.plane_axes]
        off = stored.record.offsets
        lines = [pts[a:b] for a, b in zip(off[:-1], off[1:]) if b - a >= 2]
        color = "white" if self.dark else "0.1"
        lc = LineCollection(lines, colors=color, linewidths=0.7, alpha=0.75, zorder=4, rasterized=len(lines) > 3000)
        self.ax.add_collection(lc)
        longest = sorted(lines, key=len, reverse=True)[:400]  # an arrowhead at the middle of each
        mids = np.array([ln[len(ln) // 2] for ln in longest])
        dirs = np.array([ln[len(ln) // 2 + 1] - ln[len(ln) // 2] for ln in longest])
        norm = np.hypot(dirs[:, 0], dirs[:, 1])
        ok = norm > 0
        self.ax.quiver(
            mids[ok, 0], mids[ok, 1], dirs[ok, 0] / norm[ok], dirs[ok, 1] / norm[ok],
            color=color, alpha=0.9, angles="xy", pivot="mid", units="dots", scale=1.0 / 9.0 * 72 / self.fig.dpi,
            width=1.0, headwidth=6, headlength=7, headaxislength=6, zorder=4,
        )  # fmt: skip
        what = {"descent": "−∇f", "gradient": "∇f"}.get(str(stored.attrs.get("field", "")), "the vector field v")
        self.handles.append(Line2D([], [], color=color, lw=0.9, marker=">", ms=4, label=f"streamlines of {what}"))

    def arrows(self, resp: WindowResponse) -> None:
        pair = self.reader.vectors
        if pair is None or not all(p in resp.data for p in pair):
            return
        x0, x1, y0, y1 = self.window
        w, h = self.opt.size
        canvas = (int(0.8 * w / self.grid[0]), int(0.8 * h / self.grid[1]))  # a panel's share
        ix, iy = arrow_samples(resp.x, resp.y, self.window, canvas, self.opt.pixels_per_arrow)
        if not len(ix) or not len(iy):
            return
        u = resp.data[pair[0]][np.ix_(iy, ix)].astype(np.float64)
        v = resp.data[pair[1]][np.ix_(iy, ix)].astype(np.float64)
        if self.resolved.descent:
            u, v = -u, -v
        gx, gy = np.meshgrid(resp.x[ix], resp.y[iy])
        sx, sy = canvas[0] / abs(x1 - x0), canvas[1] / abs(y1 - y0)  # pixels a data unit, about
        if self.resolved.aspect == "equal":
            sx = sy = min(sx, sy)
        cell_px = min(_spacing(resp.x[ix], x1 - x0) * sx, _spacing(resp.y[iy], y1 - y0) * sy)
        du, dv, scale = arrow_vectors(u, v, cell_px, (sx, sy), self.opt.arrow_mode)
        self.px_per_unit = sx
        keep = (np.isfinite(du) & np.isfinite(dv)).ravel()
        cx, cy, du, dv = gx.ravel()[keep], gy.ravel()[keep], du.ravel()[keep], dv.ravel()[keep]
        colors = self._contrast_at(cx, cy)
        drawn = colors[:, 3] > 0  # no arrow over an undefined point of the image
        cx, cy, du, dv, colors = cx[drawn], cy[drawn], du[drawn], dv[drawn], colors[drawn]
        if len(cx) <= VECTOR_ARROWS:
            self.ax.quiver(
                cx, cy, du, dv, color=colors, angles="xy", scale_units="xy", scale=1.0, pivot="mid",
                width=0.0025, headwidth=3.5, headlength=4, headaxislength=3.5, zorder=5,
            )  # fmt: skip
        else:
            self.raster = (np.stack([cx, cy], 1), np.stack([du, dv], 1), colors)
            # its image now, empty: the layout is then the one the drawn raster will have
            self.raster_image = self.ax.imshow(
                np.zeros((2, 2, 4), np.uint8), extent=self.window, origin="upper", interpolation="none",
                aspect="auto", zorder=5,
            )  # fmt: skip
        self._arrow_legend(scale, len(cx))

    def _contrast_at(self, cx: np.ndarray, cy: np.ndarray) -> np.ndarray:
        """Black or white for each arrow by the image's colour under it; alpha 0 where the image
        is undefined there (no arrow is drawn over a hole). Without an image: the theme's ink."""
        if self.image_rgba is None:
            ink = 1.0 if self.dark else 0.0
            return np.tile(np.array([ink, ink, ink, 1.0], np.float32), (len(cx), 1))
        x, y, rgba = self.image_rgba
        i = np.clip(np.rint((cx - x[0]) / ((x[-1] - x[0]) / max(len(x) - 1, 1) or 1)), 0, len(x) - 1).astype(int)
        j = np.clip(np.rint((cy - y[0]) / ((y[-1] - y[0]) / max(len(y) - 1, 1) or 1)), 0, len(y) - 1).astype(int)
        under = rgba[j, i]
        colors = contrast_colors(under)
        colors[:, 3] = np.where(under[:, 3] > 0, 1.0, 0.0)
        return colors

    def _arrow_legend(self, scale: ArrowScale, count: int) -> None:
        from matplotlib.lines import Line2D

        g = "−∇f" if self.resolved.descent and self.gradient else ("∇f" if self.gradient else "v")
        what = "" if self.gradient else "the vector field "
        how = {
            "clip": f"length ∝ |{g.lstrip('−')}|, clipped at {scale.reference:.3g}",
            "scale": f"length ∝ |{g.lstrip('−')}|",
            "normalize": "direction only (equal lengths)",
        }[scale.mode]
        ink = "white" if self.dark else "black"
        label = f"{what}{g} at {count:,} data points: {how}"
        self.handles.append(Line2D([], [], ls="", marker=r"$\rightarrow$", ms=12, color=ink, label=label))
        if scale.key is not None and self.show_key:  # an arrow of known magnitude above the axes' left end
            frac = scale.key_pixels / (self.px_per_unit * abs(self.window[1] - self.window[0]))
            self.ax.annotate(
                "", xy=(frac, 1.03), xytext=(0.0, 1.03), xycoords="axes fraction",
                arrowprops=dict(arrowstyle="-|>", color=ink, lw=1.2, shrinkA=0, shrinkB=0),
            )  # fmt: skip
            name = "|∇f|" if self.gradient else "|v|"
            self.ax.text(
                frac + 0.01, 1.03, f"{name} = {scale.key:g}", transform=self.ax.transAxes,
                ha="left", va="center", fontsize="small",
            )  # fmt: skip

    def paths(self) -> None:
        from matplotlib import patheffects
        from matplotlib.lines import Line2D

        halo = [patheffects.Stroke(linewidth=3.2, foreground="white", alpha=0.8), patheffects.Normal()]
        drew = False
        for i, (label, stored) in enumerate(self.overlays.paths.items()):
            pos = stored.record.positions
            if pos is None or self.paths_only not in (None, label):
                continue
            pos = pos[:, :, self.plane_axes]
            step = pos.shape[1] - 1 if self.opt.path_step is None else min(self.opt.path_step, pos.shape[1] - 1)
            starts = pos[:, 0][np.isfinite(pos[:, 0]).all(axis=1)]
            if not len(starts):
                continue
            color = PATH_COLORS[i % len(PATH_COLORS)]
            verts, connect, tips = path_polylines(pos, step)
            small = 0.6 if self.grid != (1, 1) else 1.0  # markers of small multiples are smaller
            lw = (1.6 if len(pos) <= 10 else 0.9) * small
            for a, b in _runs(connect):
                self.ax.plot(verts[a:b, 0], verts[a:b, 1], color=color, lw=lw, zorder=6, path_effects=halo)
            self.ax.plot(starts[:, 0], starts[:, 1], "o", ms=5 * small, mfc=color, mec="white", mew=0.8, zorder=7)
            self.ax.plot(tips[:, 0], tips[:, 1], "*", ms=11 * small, mfc=color, mec="black", mew=0.7, zorder=7)
            self.path_title = _path_label(label, stored.attrs, len(starts)).rsplit(":", 1)[0]
            self.path_handle = Line2D([], [], color=color, lw=1.6, label=_path_label(label, stored.attrs, len(starts)))
            self.handles.append(self.path_handle)
            drew = True
        if drew:
            self.handles.append(Line2D([], [], ls="", marker="o", ms=5, mfc="0.6", mec="white", label="path start"))
            end = "path end" if self.opt.path_step is None else f"step {self.opt.path_step}"
            self.handles.append(Line2D([], [], ls="", marker="*", ms=10, mfc="0.6", mec="black", label=end))

    def minima(self) -> None:
        from matplotlib.lines import Line2D

        stored = self.overlays.basins
        if stored is None:
            return
        seen: dict[str, int] = {}
        for p in stored.record.points:
            if len(p.point) <= max(self.plane_axes):
                continue
            marker, _ = KIND_MARKERS.get(p.kind, ("d", p.kind))
            x, y = p.point[self.plane_axes[0]], p.point[self.plane_axes[1]]
            self.ax.plot([x], [y], marker, ms=8, mfc="white", mec="black", mew=1.0, zorder=5.5)
            seen[p.kind] = seen.get(p.kind, 0) + 1
        for kind, n in seen.items():
            marker, name = KIND_MARKERS.get(kind, ("d", kind))
            self.handles.append(
                Line2D([], [], ls="", marker=marker, ms=8, mfc="white", mec="black", label=f"{name} ({n} found)")
            )

    def gl_arrows(self, centres: np.ndarray, vectors: np.ndarray, colors: np.ndarray) -> None:
        """The arrows as one GL raster of the axes' exact pixel size, placed over the axes."""
        from matplotlib.layout_engine import ConstrainedLayoutEngine

        from .raster import draw_arrows

        engine = self.fig.get_layout_engine()
        if isinstance(engine, ConstrainedLayoutEngine):  # compressed, not yet frozen (below)
            for _ in range(2):  # matplotlib's compressed layout settles on its second pass
                engine.execute(self.fig)
            # saved as laid out here (the raster fits the axes exactly), and savefig's extra layout draw is skipped
            self.fig.set_layout_engine(None)
        box = self.ax.get_window_extent()
        size = (max(1, round(box.width)), max(1, round(box.height)))
        self.raster_image.set_data(draw_arrows(centres, vectors, colors, self.window, size))


def _path_label(label: str, attrs: Any, n: int) -> str:
    """``adam, lr 0.001: 3 paths`` (the optimiser named when the label is not its name)."""
    opt = str(attrs.get("optimizer", label))
    hp = attrs.get("hyperparameters") or {}
    lr = f"lr {hp['lr']:g}" if isinstance(hp, dict) and isinstance(hp.get("lr"), (int, float)) else ""
    what = ", ".join(x for x in ((label if opt == label else f"{label} ({opt})"), lr) if x)
    return f"{what}: {n} path{'s' * (n != 1)}"


def _spacing(c: np.ndarray, span: float) -> float:
    """The distance between neighbouring arrows along one axis (the span for a single one)."""
    return float(np.median(np.abs(np.diff(c)))) if len(c) > 1 else abs(span)


def _runs(connect: np.ndarray) -> list[tuple[int, int]]:
    """The vertex ranges of the polylines ``connect`` joins (pairs (i, i+1) within each)."""
    if not len(connect):
        return []
    starts = np.flatnonzero(np.diff(connect[:, 0]) != 1) + 1
    bounds = np.concatenate([[0], starts, [len(connect)]])
    return [(int(connect[a, 0]), int(connect[b - 1, 1]) + 1) for a, b in zip(bounds[:-1], bounds[1:])]
