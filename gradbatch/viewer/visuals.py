"""The visuals of a 2D job, shared by headless renders and the window. GL only draws here.

:class:`FieldLayers` builds its visuals once and is updated with each :class:`WindowResponse`
(image at the response's level, arrows on a level-of-detail grid for the view). Basins,
streamlines and descent paths are static overlays, handed over once as records
(:class:`gradbatch.records.Overlays`, read by the store).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from ..errors import StoreError
from ..geometry import arrow_segments, lod_grid, polyline_connect, scale_vectors
from ..records import BasinsResult, Descent, Overlays, Stored, Streamlines
from ..store import FieldReader, WindowRequest, WindowResponse
from .arrows import ArrowField
from .options import LAYERS, NEEDS_VISPY, LayerOptions
from .prepare import colormap_lut, image_limits, map_colors, path_polylines

__all__ = ["LAYERS", "NEEDS_VISPY", "LayerOptions", "FieldLayers", "PALETTE", "SurfaceLayers", "field_view"]

BAR_WIDTH = 130  # pixels: the colour bar, its ticks and the field's name
PALETTE = ["#ff4f4f", "#4fc3ff", "#7dff6b", "#ffd34f", "#d37dff", "#ff9f4f", "#4fffe1"]


def field_view(scene: Any, canvas: Any, options: LayerOptions) -> tuple[Any, Any]:
    """The data view of ``canvas``, and a colour bar widget beside it (None without one)."""
    grid = canvas.central_widget.add_grid()
    view = grid.add_view(row=0, col=0)
    if not (options.colorbar and "image" in options.layers) or canvas.size[0] < 3 * BAR_WIDTH:
        return view, None  # a picture narrower than three bars keeps its width for the data
    side = grid.add_grid(row=0, col=1)  # the field's name above its colour bar
    side.width_max = side.width_min = BAR_WIDTH
    title = side.add_widget(scene.Label(_bar_label(options), color="white", font_size=9), row=0, col=0)
    title.height_max = 24
    bar = scene.ColorBarWidget(
        cmap=options.colormap,
        orientation="right",
        clim=(0, 1),
        label="",
        label_color="white",
        border_width=0,
        axis_ratio=14 / max(0.6 * canvas.size[1], 50),
    )  # about 14 px wide
    side.add_widget(bar, row=1, col=0)
    return view, bar


def _bar_label(options: LayerOptions) -> str:
    name = options.field or "value"
    return f"log10 {name}" if options.scale == "log" else name


class FieldLayers:
    """Image, arrows, streamlines and paths of one job under ``parent`` (a vispy scene node);
    ``colorbar``: a ColorBarWidget kept in step with the image's colour limits."""

    def __init__(
        self,
        scene: Any,
        parent: Any,
        overlays: Overlays,
        vectors: tuple[str, str] | None,
        options: LayerOptions,
        colorbar: Any = None,
        plane_axes: tuple[int, int] = (0, 1),
    ) -> None:
        from vispy.color import get_colormap

        self.scene = scene
        self.options = options
        self.colorbar = colorbar
        self.clim: tuple[float, float] | None = None
        self.plane_axes = list(plane_axes)  # a 3D job: overlays are projected on the view's plane
        self.vectors = vectors
        self.cmap = get_colormap(options.colormap)
        self.arrow_lut = colormap_lut("autumn")
        self.image = scene.visuals.Image(np.zeros((2, 2), np.float32), cmap=self.cmap, parent=parent)
        self.image.set_gl_state("translucent", depth_test=False)  # lines drawn over it stay visible
        self.contour_lines = scene.visuals.Isocurve(
            np.zeros((2, 2), np.float32), levels=[0.5], color_lev="white", parent=parent
        )
        self.arrows = ArrowField(parent=parent)
        self.overlays: dict[str, list[Any]] = {"basins": [], "streamlines": [], "paths": []}
        self._basins(scene, parent, overlays.basins)
        self._streamlines(scene, parent, overlays.streamlines)
        self._paths(scene, parent, overlays.paths)
        self.last: WindowResponse | None = None
        self.set_visible(options.layers)

    # -- static overlays ---------------------------------------------------------------------
    def _basins(self, scene: Any, parent: Any, stored: Stored[BasinsResult] | None) -> None:
        """Basin labels as a translucent categorical image (-1, no minimum: clear)."""
        if stored is None:
            return
        from vispy.visuals.transforms import STTransform

        label = stored.record.label
        if label.ndim != 2:
            return
        x, y = stored.record.axes[0], stored.record.axes[1]
        rgba = np.zeros(label.shape + (4,), dtype=np.float32)
        for k in range(int(label.max()) + 1):
            c = np.array([int(PALETTE[k % len(PALETTE)][i : i + 2], 16) / 255 for i in (1, 3, 5)] + [0.35])
            rgba[label == k] = c
        img = scene.visuals.Image(rgba, parent=parent)
        dx = (x[-1] - x[0]) / max(len(x) - 1, 1)
        dy = (y[-1] - y[0]) / max(len(y) - 1, 1)
        img.transform = STTransform(scale=(dx, dy), translate=(x[0] - dx / 2, y[0] - dy / 2))
        img.set_gl_state("translucent", depth_test=False)
        self.overlays["basins"].append(img)

    def _streamlines(self, scene: Any, parent: Any, stored: Stored[Streamlines] | None) -> None:
        if stored is None:
            return
        pts = stored.record.points[:, self.plane_axes].astype(np.float32)
        if len(pts):
            self.overlays["streamlines"].append(
                scene.visuals.Line(
                    pos=pts,
                    connect=polyline_connect(stored.record.offsets),
                    color=(1, 1, 1, 0.7),
                    method="gl",
                    parent=parent,
                )
            )

    def _paths(self, scene: Any, parent: Any, paths: Mapping[str, Stored[Descent]]) -> None:
        """Each optimiser's paths as one line set, a circle at each start and a star at each
        path's current end (its last step, or ``path_step``)."""
        self.path_sets: list[tuple[np.ndarray, Any, Any]] = []  # positions [paths, steps+1, 2], line, ends
        self.path_steps = 0
        self.path_step = 0
        for i, stored in enumerate(paths.values()):
            color = PALETTE[i % len(PALETTE)]
            positions = stored.record.positions
            if positions is None:
                continue
            pos = positions[:, :, self.plane_axes].astype(np.float32)
            first = pos[:, 0]
            first = first[np.isfinite(first).all(axis=1)]
            if not len(first):
                continue
            line = scene.visuals.Line(
                pos=np.zeros((2, 2), np.float32), color=color, width=2, method="gl", parent=parent
            )
            ends = scene.visuals.Markers(parent=parent)
            starts = scene.visuals.Markers(pos=first, face_color=color, size=8, symbol="o", parent=parent)
            self.path_sets.append((pos, line, ends))
            self.path_steps = max(self.path_steps, pos.shape[1] - 1)
            self.overlays["paths"] += [line, starts, ends]
        self.set_path_step(self.options.path_step)

    def set_path_step(self, step: int | None) -> int:
        """Draw every path up to ``step`` (None: whole); returns the step drawn."""
        step = self.path_steps if step is None else int(np.clip(step, 0, self.path_steps))
        for i, (pos, line, ends) in enumerate(self.path_sets):
            color = PALETTE[i % len(PALETTE)]
            verts, connect, tips = path_polylines(pos, step)
            if len(connect):
                line.set_data(pos=verts, connect=connect)
            else:  # at step 0 there is no segment yet: an invisible one at the start
                line.set_data(pos=np.repeat(verts[:1], 2, axis=0), connect="segments")
            ends.set_data(pos=tips, face_color=color, size=10, symbol="star")
        self.path_step = step
        return step

    # -- per view ----------------------------------------------------------------------------
    def set_visible(self, layers: tuple[str, ...]) -> None:
        self.visible = tuple(layers)
        self.image.visible = "image" in layers
        if self.colorbar is not None:
            self.colorbar.visible = "image" in layers
        self.contour_lines.visible = "contours" in layers
        self.arrows.visible = "arrows" in layers and self.vectors is not None
        for name, visuals in self.overlays.items():
            for v in visuals:
                v.visible = name in layers

    def attach_colorbar(self, bar: Any) -> None:
        """Keep ``bar`` in step with the image from now on."""
        self.colorbar = bar
        if self.clim is not None:
            bar.clim = (f"{self.clim[0]:.3g}", f"{self.clim[1]:.3g}")
        self.set_visible(self.visible)

    def remove(self) -> None:
        """Take every visual out of the scene (before another job is shown)."""
        for v in [self.image, self.contour_lines, self.arrows, *(x for vs in self.overlays.values() for x in vs)]:
            v.parent = None

    def update(self, resp: WindowResponse, window: tuple[float, float, float, float], canvas: tuple[int, int]) -> None:
        """Show ``resp`` (read for ``window`` on a ``canvas``-sized view)."""
        from vispy.visuals.transforms import STTransform

        self.last = resp
        opt = self.options
        if opt.field in resp.data:
            data, lo, hi = image_limits(resp.data[opt.field], opt.scale)
            self.image.set_data(data)
            self.image.clim = (lo, hi)
            self.clim = (lo, hi)
            if self.colorbar is not None:
                self.colorbar.clim = (f"{lo:.3g}", f"{hi:.3g}")
            dx = (resp.x[-1] - resp.x[0]) / (len(resp.x) - 1) if len(resp.x) > 1 else 1.0
            dy = (resp.y[-1] - resp.y[0]) / (len(resp.y) - 1) if len(resp.y) > 1 else 1.0
            self.image.transform = STTransform(scale=(dx, dy), translate=(resp.x[0] - dx / 2, resp.y[0] - dy / 2))
            if "contours" in self.visible and opt.contours > 0:
                levels = np.linspace(lo, hi, opt.contours + 2)[1:-1]
                self.contour_lines.set_data(data)
                self.contour_lines.levels = levels.tolist()
                self.contour_lines.transform = self.image.transform

        vec = resp.coarse if resp.coarse is not None else resp
        if self.vectors is not None and all(v in vec.data for v in self.vectors):
            self._arrows(vec, window, canvas)

    def _arrows(self, resp: WindowResponse, window: tuple[float, float, float, float], canvas: tuple[int, int]) -> None:
        assert self.vectors is not None
        opt = self.options
        x0, x1, y0, y1 = window
        xs, ys = lod_grid(window, canvas, opt.pixels_per_arrow)
        ix = np.clip(np.searchsorted(resp.x, xs), 0, len(resp.x) - 1)
        iy = np.clip(np.searchsorted(resp.y, ys), 0, len(resp.y) - 1)
        u = resp.data[self.vectors[0]][np.ix_(iy, ix)]
        v = resp.data[self.vectors[1]][np.ix_(iy, ix)]
        if opt.descent:
            u, v = -u, -v
        gx, gy = np.meshgrid(xs, ys)
        cell = min((x1 - x0) / len(xs), (y1 - y0) / len(ys))
        su, sv = scale_vectors(u, v, 0.8 * cell, opt.arrow_mode, max_length=0.8 * cell)
        keep = (np.isfinite(su) & np.isfinite(sv)).ravel()
        centres = np.stack([gx.ravel(), gy.ravel()], 1)[keep]  # arrows are centred on their sample
        drawn = np.stack([su.ravel(), sv.ravel()], 1)[keep]
        mag = np.hypot(u, v).ravel()[keep]
        top = float(mag.max()) if mag.size and mag.max() > 0 else 1.0
        self.arrows.set_data(centres, drawn, map_colors(mag / top, self.arrow_lut))

    def value_at(self, x: float, y: float) -> dict[str, float] | None:
        """Every field of the last response at the data point nearest (x, y)."""
        out: dict[str, float] = {}
        for r in (self.last, self.last.coarse if self.last is not None else None):
            if r is None or not len(r.x) or not len(r.y):
                continue
            if not (r.x[0] <= x <= r.x[-1] and r.y[0] <= y <= r.y[-1]):
                continue
            i = int(np.abs(r.x - x).argmin())
            j = int(np.abs(r.y - y).argmin())
            out.update({name: float(a[j, i]) for name, a in r.data.items()})
        return out or None


class SurfaceLayers:
    """Seed 000's 3D picture in ``view``: the surface z = f(x, y) over the input plane, and the
    gradient's arrows lying in that plane beneath it (the gradient lives in the input space),
    under a turntable camera. Read once, from a mesh of at most about 256 x 256 points."""

    def __init__(
        self,
        scene: Any,
        view: Any,
        reader: FieldReader,
        opt: LayerOptions,
        window: tuple[float, float, float, float] | None = None,
        elevation: float = 30.0,
        azimuth: float = 35.0,
        plane: float | None = None,
    ) -> None:
        if opt.field not in reader.fields:
            raise StoreError(
                f"{reader.path}: job {reader.job!r} has no field {opt.field!r}; fields: {', '.join(reader.fields)}"
            )
        window = window or reader.extent
        pair = reader.vectors
        self.visible = tuple(opt.layers)
        # a mesh of at most ~256 x 256 points, the arrows from a coarser level still
        resp = reader.read(
            WindowRequest(reader.job, window, (256, 256), (opt.field,), tuple(pair or ()), (64, 64), plane=plane)
        )
        self.last = resp
        z = resp.data[opt.field].astype(np.float32)
        with np.errstate(all="ignore"):
            zmin, zmax = float(np.nanmin(z)), float(np.nanmax(z))
        if not (np.isfinite(zmin) and np.isfinite(zmax)) or zmin == zmax:
            zmin, zmax = (0.0, 1.0) if not np.isfinite(zmin) else (zmin - 0.5, zmin + 0.5)
        x0, x1, y0, y1 = window
        span = max(x1 - x0, y1 - y0)
        zscale = 0.5 * span / (zmax - zmin)  # the surface's height: half the plane's width
        base = zmin * zscale - 0.25 * span  # the input plane, below the surface
        view.camera = scene.TurntableCamera(
            elevation=elevation,
            azimuth=azimuth,
            fov=40,
            center=((x0 + x1) / 2, (y0 + y1) / 2, (base + zmax * zscale) / 2),
            distance=2.2 * span,
        )
        zz = np.nan_to_num(z, nan=zmin) * zscale
        colors = map_colors(((np.nan_to_num(z, nan=zmin) - zmin) / (zmax - zmin)).ravel(), colormap_lut(opt.colormap))
        self.surface = scene.visuals.SurfacePlot(
            x=resp.x.astype(np.float32), y=resp.y.astype(np.float32), z=zz.T, parent=view.scene
        )  # SurfacePlot wants z[x, y]
        by_xy = colors.reshape(len(resp.y), len(resp.x), 4).transpose(1, 0, 2).reshape(-1, 4)
        self.surface.mesh_data.set_vertex_colors(by_xy)
        corners = [[x0, y0, base], [x1, y0, base], [x1, y1, base], [x0, y1, base], [x0, y0, base]]
        self.frame = scene.visuals.Line(pos=np.array(corners, np.float32), color=(0.6, 0.6, 0.6, 1), parent=view.scene)
        self.arrows = None
        if pair is not None and resp.coarse is not None:
            c = resp.coarse
            step = max(1, int(np.ceil(max(len(c.x), len(c.y)) / 20)))  # about 20 x 20 arrows
            gx, gy = np.meshgrid(c.x[::step], c.y[::step])
            u = c.data[pair[0]][::step, ::step]
            v = c.data[pair[1]][::step, ::step]
            if opt.descent:
                u, v = -u, -v
            cell = span / 20
            su, sv = scale_vectors(u, v, 0.8 * cell, opt.arrow_mode, max_length=0.8 * cell)
            flat = arrow_segments(gx - su / 2, gy - sv / 2, su, sv)
            verts = np.concatenate([flat.vertices, np.full((len(flat.vertices), 1), base, np.float32)], axis=1)
            self.arrows = scene.visuals.Line(
                pos=verts, connect="segments", color="#ff7f50", method="gl", parent=view.scene
            )
        self.set_visible(self.visible)

    def set_visible(self, layers: tuple[str, ...]) -> None:
        self.visible = tuple(layers)
        self.surface.visible = "image" in layers
        if self.arrows is not None:
            self.arrows.visible = "arrows" in layers

    def remove(self) -> None:
        for v in (self.surface, self.frame, self.arrows):
            if v is not None:
                v.parent = None
