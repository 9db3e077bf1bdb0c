"""Headless PNG renders of a 2D job through vispy (Mesa EGL works without a display).

Layers: the value as a colormapped image, gradient (or vector-field) arrows on a
level-of-detail grid, stored streamlines and descent paths. Geometry comes from
:mod:`gradbatch.geometry`; the data window from :mod:`gradbatch.viewer.loader`. GL only draws.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .errors import GradbatchError, StoreError
from .geometry import arrow_segments, lod_grid, polyline_connect, scale_vectors
from .viewer.loader import FieldReader, WindowRequest

__all__ = ["RenderOptions", "render", "ViewerError", "LAYERS"]

LAYERS = ("image", "arrows", "streamlines", "paths")


class ViewerError(GradbatchError):
    """The viewer cannot run here (no vispy, no OpenGL)."""


@dataclass(frozen=True)
class RenderOptions:
    size: tuple[int, int] = (1200, 900)
    window: tuple[float, float, float, float] | None = None  # x0, x1, y0, y1; None: the whole grid
    layers: tuple[str, ...] = LAYERS
    field: str = "value"
    colormap: str = "viridis"
    arrow_mode: str = "normalize"  # normalize | clip | scale
    pixels_per_arrow: float = 24.0
    descent: bool = False  # arrows point downhill (the negative gradient)


def _vispy() -> Any:
    try:
        import vispy
    except ImportError:
        raise ViewerError("rendering needs vispy: pip install 'gradbatch[viewer]'") from None
    os.environ.setdefault("EGL_PLATFORM", "surfaceless")
    try:
        vispy.use(app="egl", gl="gl2")
    except Exception as exc:  # vispy raises several types when a backend cannot load
        raise ViewerError(f"no headless OpenGL (vispy EGL backend): {exc}") from None
    from vispy import scene

    return scene


def _vectors(reader: FieldReader) -> tuple[str, str] | None:
    a, b = reader.axes
    for pair in ((f"grad_{a}", f"grad_{b}"), (f"v_{a}", f"v_{b}")):
        if all(p in reader.fields for p in pair):
            return pair
    return None


def render(path: str | Path, out: str | Path, job: str | None = None,
           options: RenderOptions = RenderOptions()) -> Path:
    """Render ``job`` of the file at ``path`` to the PNG ``out``; returns ``out``."""
    for layer in options.layers:
        if layer not in LAYERS:
            raise ViewerError(f"unknown layer {layer!r}; allowed: {', '.join(LAYERS)}")
    reader = FieldReader(path, job)
    try:
        return _render(reader, Path(out), options)
    finally:
        reader.close()


def _render(reader: FieldReader, out: Path, opt: RenderOptions) -> Path:
    scene = _vispy()
    from vispy.color import get_colormap
    from vispy.io import write_png
    from vispy.visuals.transforms import STTransform

    window = opt.window or reader.extent
    w, h = opt.size
    pair = _vectors(reader)
    wanted = []
    if "image" in opt.layers:
        if opt.field not in reader.fields:
            raise StoreError(f"{reader.path}: job {reader.job!r} has no field {opt.field!r}; "
                             f"fields: {', '.join(reader.fields)}")
        wanted.append(opt.field)
    if "arrows" in opt.layers and pair is not None:
        wanted += list(pair)
    resp = reader.read(WindowRequest(reader.job, window, (w, h), tuple(wanted)))

    canvas = scene.SceneCanvas(size=(w, h), show=False, bgcolor="black")
    view = canvas.central_widget.add_view()
    x0, x1, y0, y1 = window
    view.camera = scene.PanZoomCamera(rect=(x0, y0, x1 - x0, y1 - y0), aspect=1)
    cmap = get_colormap(opt.colormap)

    if "image" in opt.layers:
        data = resp.data[opt.field].astype(np.float32)
        finite = data[np.isfinite(data)]
        clim = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
        if clim[0] == clim[1]:
            clim = (clim[0] - 0.5, clim[1] + 0.5)
        image = scene.visuals.Image(np.nan_to_num(data, nan=clim[0]), cmap=cmap, clim=clim, parent=view.scene)
        dx = (resp.x[-1] - resp.x[0]) / max(len(resp.x) - 1, 1) if len(resp.x) > 1 else 1.0
        dy = (resp.y[-1] - resp.y[0]) / max(len(resp.y) - 1, 1) if len(resp.y) > 1 else 1.0
        image.transform = STTransform(scale=(dx, dy), translate=(resp.x[0] - dx / 2, resp.y[0] - dy / 2))
        image.set_gl_state("translucent", depth_test=False)  # lines drawn over it stay visible

    if "arrows" in opt.layers and pair is not None:
        xs, ys = lod_grid(window, (w, h), opt.pixels_per_arrow)
        ix = np.clip(np.searchsorted(resp.x, xs), 0, len(resp.x) - 1)
        iy = np.clip(np.searchsorted(resp.y, ys), 0, len(resp.y) - 1)
        u = resp.data[pair[0]][np.ix_(iy, ix)]
        v = resp.data[pair[1]][np.ix_(iy, ix)]
        if opt.descent:
            u, v = -u, -v
        gx, gy = np.meshgrid(xs, ys)
        cell = min((x1 - x0) / len(xs), (y1 - y0) / len(ys))
        su, sv = scale_vectors(u, v, 0.8 * cell, opt.arrow_mode, max_length=0.8 * cell)
        arrows = arrow_segments(gx - su / 2, gy - sv / 2, su, sv)  # centred on their sample point
        mag = np.repeat(np.hypot(u, v).ravel()[np.isfinite(su.ravel()) & np.isfinite(sv.ravel())], 6)
        top = float(mag.max()) if mag.size and mag.max() > 0 else 1.0
        colors = get_colormap("autumn").map(mag / top)
        scene.visuals.Line(pos=arrows.vertices, connect="segments", color=colors, method="gl",
                           parent=view.scene)

    g = reader.group
    if "streamlines" in opt.layers and "streamlines" in g:
        pts = g["streamlines/points"][...][:, :2].astype(np.float32)
        if len(pts):
            scene.visuals.Line(pos=pts, connect=polyline_connect(g["streamlines/offsets"][...]),
                               color=(1, 1, 1, 0.7), method="gl", parent=view.scene)
    if "paths" in opt.layers and "paths" in g:
        palette = ["#ff4f4f", "#4fc3ff", "#7dff6b", "#ffd34f", "#d37dff", "#ff9f4f", "#4fffe1"]
        for i, (label, pg) in enumerate(g["paths"].items()):
            pos = pg["positions"][...]
            color = palette[i % len(palette)]
            lines, offsets, starts, ends = [], [0], [], []
            for p in pos:
                p = p[np.isfinite(p).all(axis=1)][:, :2]
                if len(p):
                    lines.append(p)
                    offsets.append(offsets[-1] + len(p))
                    starts.append(p[0])
                    ends.append(p[-1])
            if lines:
                allp = np.concatenate(lines).astype(np.float32)
                scene.visuals.Line(pos=allp, connect=polyline_connect(np.array(offsets)), color=color,
                                   width=2, method="gl", parent=view.scene)
                scene.visuals.Markers(pos=np.array(starts, np.float32), face_color=color, size=8,
                                      symbol="o", parent=view.scene)
                scene.visuals.Markers(pos=np.array(ends, np.float32), face_color=color, size=10,
                                      symbol="star", parent=view.scene)
    img = canvas.render()
    canvas.close()
    out.parent.mkdir(parents=True, exist_ok=True)
    write_png(str(out), img)
    return out


def parse_size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise ViewerError(f"--size: expected WIDTHxHEIGHT, e.g. 1200x900, got {text!r}") from None
    if not (16 <= w <= 16384 and 16 <= h <= 16384):
        raise ViewerError(f"--size: each side must be 16 to 16384 pixels, got {text!r}")
    return w, h


def parse_window(text: str) -> tuple[float, float, float, float]:
    try:
        x0, x1, y0, y1 = (float(v) for v in text.split(","))
    except ValueError:
        raise ViewerError(f"--window: expected x0,x1,y0,y1, got {text!r}") from None
    if not (x0 < x1 and y0 < y1):
        raise ViewerError(f"--window: expected x0 < x1 and y0 < y1, got {text!r}")
    return x0, x1, y0, y1


def parse_layers(text: str) -> tuple[str, ...]:
    layers = tuple(v.strip() for v in text.split(",") if v.strip())
    for layer in layers:
        if layer not in LAYERS:
            raise ViewerError(f"--layers: unknown layer {layer!r}; allowed: {', '.join(LAYERS)}")
    return layers
