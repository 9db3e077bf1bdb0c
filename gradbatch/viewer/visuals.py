"""The visuals of a 2D job, shared by headless renders and the window. GL only draws here.

:class:`FieldLayers` builds its visuals once and is updated with each :class:`WindowResponse`
(image at the response's level, arrows on a level-of-detail grid for the view). Basins,
streamlines and descent paths are static overlays, handed over once as records
(:class:`gradbatch.records.Overlays`, read by the store).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import StoreError
from ..geometry import arrow_segments, scale_vectors
from ..records import Overlays
from ..store import FieldReader, WindowRequest, WindowResponse
from .arrows import ArrowField
from .limits import Limits, masked_image
from .options import LAYERS, NEEDS_VISPY, LayerOptions
from .overlay_visuals import StaticLayers
from .prepare import arrow_samples, arrow_vectors, colormap_lut, image_limits, map_colors
from .window_layout import THEMES, Theme

__all__ = ["LAYERS", "NEEDS_VISPY", "LayerOptions", "FieldLayers", "SurfaceLayers", "bar_label"]


class FieldLayers:
    """Image, arrows and the static overlays of one job under ``parent`` (a vispy scene node).

    ``limits``: the image's colour limits for the whole job (:func:`~gradbatch.viewer.limits.colour_limits`,
    from the field's statistics): fixed whatever part of the field is read. Without them (older
    callers) each response's own range is used. ``colorbar``: kept in step with the limits."""

    def __init__(
        self,
        scene: Any,
        parent: Any,
        overlays: Overlays,
        vectors: tuple[str, str] | None,
        options: LayerOptions,
        colorbar: Any = None,
        plane_axes: tuple[int, int] = (0, 1),
        limits: Limits | None = None,
        theme: Theme | None = None,
    ) -> None:
        from vispy.color import get_colormap

        self.scene = scene
        self.options = options
        self.theme = theme or THEMES["dark"]
        self.colorbar = colorbar
        self.limits = limits
        self.clim: tuple[float, float] | None = _display_clim(limits) if limits is not None else None
        self.vectors = vectors
        self.cmap = get_colormap(options.colormap)
        self.arrow_lut = colormap_lut("autumn")
        self.image = scene.visuals.Image(np.zeros((2, 2), np.float32), cmap=self.cmap, parent=parent)
        self.image.set_gl_state("translucent", depth_test=False)  # lines drawn over it stay visible
        self.undefined = scene.visuals.Image(np.zeros((2, 2, 4), np.float32), parent=parent)
        self.undefined.set_gl_state("translucent", depth_test=False)
        self.undefined.visible = False
        self.undefined_shown = 0  # masked points of the last response
        self.contour_lines = scene.visuals.Isocurve(
            np.zeros((2, 2), np.float32), levels=[0.5], color_lev=(0.0, 0.0, 0.0, 0.6), parent=parent
        )  # dark contours, as matplotlib's: the streamlines are the white lines
        self.arrows = ArrowField(parent=parent)
        self.arrow_ref = 0.0  # the magnitude drawn as a full-length arrow (clip mode)
        self.static = StaticLayers(scene, parent, overlays, plane_axes, self.theme)
        self.overlays = self.static.layers
        self.path_sets = self.static.path_sets
        self.path_steps = self.static.path_steps
        self.path_step = self.set_path_step(options.path_step)
        self.last: WindowResponse | None = None
        if colorbar is not None and self.clim is not None:
            _set_bar(colorbar, self.clim, options)
        self.set_visible(options.layers)

    def set_path_step(self, step: int | None) -> int:
        """Draw every path up to ``step`` (None: whole); returns the step drawn."""
        self.path_step = self.static.set_path_step(step)
        return self.path_step

    # -- per view ----------------------------------------------------------------------------
    def set_visible(self, layers: tuple[str, ...]) -> None:
        self.visible = tuple(layers)
        self.image.visible = "image" in layers
        self.undefined.visible = "image" in layers and self.undefined_shown > 0
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
            _set_bar(bar, self.clim, self.options)
        self.set_visible(self.visible)

    def remove(self) -> None:
        """Take every visual out of the scene (before another job is shown)."""
        for v in [self.image, self.undefined, self.contour_lines, self.arrows, *self.static.visuals()]:
            v.parent = None

    def update(self, resp: WindowResponse, window: tuple[float, float, float, float], canvas: tuple[int, int]) -> None:
        """Show ``resp`` (read for ``window`` on a ``canvas``-sized view)."""
        self.last = resp
        opt = self.options
        if opt.field in resp.data:
            self._image(resp)
        vec = resp.coarse if resp.coarse is not None else resp
        if self.vectors is not None and all(v in vec.data for v in self.vectors):
            self._arrows(vec, window, canvas)

    def _image(self, resp: WindowResponse) -> None:
        """The field at the response's level: masked points (NaN, inf; <= 0 on a log scale) get
        the theme's 'undefined' colour on a layer of their own, never the lowest colour."""
        from vispy.visuals.transforms import STTransform

        opt = self.options
        raw = resp.data[opt.field or "value"]
        if self.limits is None:  # an older caller: limits from this window
            data, lo, hi = image_limits(raw, opt.scale)
            mask = ~np.isfinite(np.asarray(raw, np.float32))
        else:
            data, mask = _display_data(raw, opt.scale or "linear")
            lo, hi = self.clim or (0.0, 1.0)
            data = np.where(mask, np.float32(lo), data) if mask.any() else data
        self.image.set_data(data)
        self.image.clim = (lo, hi)
        if self.clim != (lo, hi) or self.limits is None:
            self.clim = (lo, hi)
            if self.colorbar is not None:
                _set_bar(self.colorbar, (lo, hi), opt)
        dx = (resp.x[-1] - resp.x[0]) / (len(resp.x) - 1) if len(resp.x) > 1 else 1.0
        dy = (resp.y[-1] - resp.y[0]) / (len(resp.y) - 1) if len(resp.y) > 1 else 1.0
        self.image.transform = STTransform(scale=(dx, dy), translate=(resp.x[0] - dx / 2, resp.y[0] - dy / 2))
        self.undefined_shown = int(mask.sum())
        if self.undefined_shown:
            rgba = np.zeros(mask.shape + (4,), np.float32)
            rgba[mask] = self.theme.undefined
            self.undefined.set_data(rgba)
            self.undefined.transform = self.image.transform
        self.undefined.visible = "image" in self.visible and self.undefined_shown > 0
        if "contours" in self.visible and opt.contours > 0:
            levels = np.linspace(lo, hi, opt.contours + 2)[1:-1]
            self.contour_lines.set_data(data)
            self.contour_lines.levels = levels.tolist()
            self.contour_lines.transform = self.image.transform

    def _arrows(self, resp: WindowResponse, window: tuple[float, float, float, float], canvas: tuple[int, int]) -> None:
        """One arrow per data point where the points are sparser than the arrow spacing, else the
        sample nearest each arrow's place, drawn where that sample is (:func:`arrow_samples`).
        None where the vector or the value there is not finite."""
        assert self.vectors is not None
        opt = self.options
        ix, iy = arrow_samples(resp.x, resp.y, window, canvas, opt.pixels_per_arrow)
        if not len(ix) or not len(iy):
            self.arrows.set_data(np.zeros((0, 2)), np.zeros((0, 2)), np.zeros((0, 4)))
            return
        u = resp.data[self.vectors[0]][np.ix_(iy, ix)].astype(np.float64)
        v = resp.data[self.vectors[1]][np.ix_(iy, ix)].astype(np.float64)
        if opt.descent:
            u, v = -u, -v
        ok = np.isfinite(u) & np.isfinite(v)
        if opt.field in resp.data:
            ok &= np.isfinite(resp.data[opt.field][np.ix_(iy, ix)])
        x0, x1, y0, y1 = window
        sx, sy = canvas[0] / max(abs(x1 - x0), 1e-300), canvas[1] / max(abs(y1 - y0), 1e-300)
        cell_px = min(_spacing(resp.x[ix]) * sx, _spacing(resp.y[iy]) * sy, 4 * opt.pixels_per_arrow)
        u, v = np.where(ok, u, np.nan), np.where(ok, v, np.nan)
        du, dv, scale = arrow_vectors(u, v, cell_px, (sx, sy), opt.arrow_mode)
        self.arrow_ref = scale.reference
        gx, gy = np.meshgrid(resp.x[ix], resp.y[iy])
        keep = ok.ravel()
        centres = np.stack([gx.ravel(), gy.ravel()], 1)[keep]  # each arrow centred on its data point
        drawn = np.stack([du.ravel(), dv.ravel()], 1)[keep]
        mag = np.hypot(u, v).ravel()[keep]
        self.arrows.set_data(centres, drawn, map_colors(np.minimum(mag / (self.arrow_ref or 1.0), 1.0), self.arrow_lut))

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


def _spacing(c: np.ndarray) -> float:
    """The typical distance between neighbouring arrow samples (inf for a single one)."""
    return float(np.median(np.abs(np.diff(c)))) if len(c) > 1 else float("inf")


def _display_clim(limits: Limits) -> tuple[float, float]:
    """The limits in the image's units: log10 on a log scale."""
    if limits.scale == "log":
        return float(np.log10(limits.lo)), float(np.log10(limits.hi))
    return limits.lo, limits.hi


def _display_data(raw: np.ndarray, scale: str) -> tuple[np.ndarray, np.ndarray]:
    """float32 data in the image's units (log10 on a log scale) and its mask of points not shown."""
    masked, undefined, nonpositive = masked_image(raw, scale)
    mask = undefined | nonpositive
    data = np.asarray(masked.data, np.float32)
    if scale == "log":
        with np.errstate(all="ignore"):
            data = np.log10(np.where(mask, np.float32(1), data)).astype(np.float32)
    return data, mask


def _set_bar(bar: Any, clim: tuple[float, float], options: LayerOptions) -> None:
    bar.set_limits(clim[0], clim[1], bar_label(options))


def bar_label(options: LayerOptions, name: str | None = None) -> str:
    """The colour bar's name: the field, in log10 units on a log scale."""
    name = name or options.field or "value"
    return f"log10({name})" if options.scale == "log" else name


class SurfaceLayers:
    """Seed 000's 3D picture in ``view``: the surface z = f(x, y) over the input plane, and the
    gradient's arrows lying in that plane beneath it (the gradient lives in the input space),
    under a turntable camera. Read once, from a mesh of at most about 256 x 256 points.

    The box is drawn in normalised units (x and y each span 1, the surface 0.5 high) so a
    landscape whose axes differ by 10x still reads; the colours are the colormap lit mostly by
    ambient light (a dark colormap end stays readable), and the arrow plane is drawn over the
    surface, never hidden under it. ``zlim``: the height's range, for the window's colour bar."""

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
        finite = np.isfinite(z)
        zmin, zmax = (float(z[finite].min()), float(z[finite].max())) if finite.any() else (0.0, 1.0)
        if zmin == zmax:
            zmin, zmax = zmin - 0.5, zmax + 0.5
        self.zlim = (zmin, zmax)
        x0, x1, y0, y1 = window
        nx = ((resp.x - x0) / (x1 - x0 or 1.0)).astype(np.float32)  # the box: x, y in 0..1
        ny = ((resp.y - y0) / (y1 - y0 or 1.0)).astype(np.float32)
        zn = (np.where(finite, z, zmin) - zmin) / (zmax - zmin)  # 0..1
        base = -0.25  # the input plane, below the surface
        view.camera = scene.TurntableCamera(
            elevation=elevation, azimuth=azimuth, fov=40, center=(0.5, 0.5, 0.1), distance=2.1
        )
        colors = map_colors(zn.ravel(), colormap_lut(opt.colormap))
        colors[~finite.ravel()] = (0.55, 0.55, 0.55, 1.0)  # undefined: grey, never the lowest colour
        self.surface = scene.visuals.SurfacePlot(
            x=nx, y=ny, z=(0.5 * zn).T.astype(np.float32), shading="smooth", parent=view.scene
        )  # SurfacePlot wants z[x, y]
        shading = self.surface.shading_filter
        shading.ambient_light = (1, 1, 1, 0.75)  # the colormap itself, gently shaded
        shading.diffuse_light = (1, 1, 1, 0.35)
        shading.specular_light = (1, 1, 1, 0.0)
        by_xy = colors.reshape(len(resp.y), len(resp.x), 4).transpose(1, 0, 2).reshape(-1, 4)
        self.surface.mesh_data.set_vertex_colors(by_xy)
        corners = [[0, 0, base], [1, 0, base], [1, 1, base], [0, 1, base], [0, 0, base]]
        self.frame = scene.visuals.Line(pos=np.array(corners, np.float32), color=(0.6, 0.6, 0.6, 1), parent=view.scene)
        self.arrows = None
        if pair is not None and resp.coarse is not None:
            self.arrows = self._arrows(scene, view, resp.coarse, pair, opt, window, base)
        self.set_visible(self.visible)

    @staticmethod
    def _arrows(
        scene: Any,
        view: Any,
        c: WindowResponse,
        pair: tuple[str, str],
        opt: LayerOptions,
        window: tuple[float, float, float, float],
        base: float,
    ) -> Any:
        """About 20 x 20 arrows in the input plane, drawn over the surface (no depth test)."""
        x0, x1, y0, y1 = window
        step = max(1, int(np.ceil(max(len(c.x), len(c.y)) / 20)))
        gx, gy = np.meshgrid((c.x[::step] - x0) / (x1 - x0 or 1.0), (c.y[::step] - y0) / (y1 - y0 or 1.0))
        u = c.data[pair[0]][::step, ::step] * (x1 - x0)  # the gradient in box units
        v = c.data[pair[1]][::step, ::step] * (y1 - y0)
        if opt.descent:
            u, v = -u, -v
        cell = 1 / 20
        su, sv = scale_vectors(u, v, 0.8 * cell, opt.arrow_mode, max_length=0.8 * cell)
        ok = np.isfinite(su) & np.isfinite(sv)
        flat = arrow_segments(gx[ok] - su[ok] / 2, gy[ok] - sv[ok] / 2, su[ok], sv[ok])
        verts = np.concatenate([flat.vertices, np.full((len(flat.vertices), 1), base, np.float32)], axis=1)
        arrows = scene.visuals.Line(
            pos=verts, connect="segments", color=(1.0, 0.498, 0.314, 1.0), method="gl", parent=view.scene
        )
        arrows.set_gl_state("translucent", depth_test=False)
        arrows.order = 10  # after the surface: always visible
        return arrows

    def set_visible(self, layers: tuple[str, ...]) -> None:
        self.visible = tuple(layers)
        self.surface.visible = "image" in layers
        if self.arrows is not None:
            self.arrows.visible = "arrows" in layers

    def remove(self) -> None:
        for v in (self.surface, self.frame, self.arrows):
            if v is not None:
                v.parent = None
