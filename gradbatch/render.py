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

from .errors import GradbatchError, StoreError
from .viewer.loader import FieldReader, WindowRequest
from .viewer.visuals import LAYERS, FieldLayers, LayerOptions

__all__ = ["RenderOptions", "render", "ViewerError", "LAYERS", "vispy_scene", "vector_fields"]


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

    @property
    def layer_options(self) -> LayerOptions:
        return LayerOptions(self.layers, self.field, self.colormap, self.arrow_mode,
                            self.pixels_per_arrow, self.descent)


def vispy_scene(app: str | None = "egl") -> Any:
    """``vispy.scene`` with a backend chosen: ``egl`` (headless) or None (vispy picks a window
    backend). Must run before anything else imports vispy.scene."""
    try:
        import vispy
    except ImportError:
        raise ViewerError("rendering needs vispy: pip install 'gradbatch[viewer]'") from None
    if app == "egl":
        os.environ.setdefault("EGL_PLATFORM", "surfaceless")
    try:
        vispy.use(app=app, gl="gl2")
    except Exception as exc:  # vispy raises several types when a backend cannot load
        raise ViewerError(f"no OpenGL through vispy's {app or 'default'} backend: {exc}") from None
    from vispy import scene

    return scene


def vector_fields(reader: FieldReader) -> tuple[str, str] | None:
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
    scene = vispy_scene("egl")
    from vispy.io import write_png

    if "image" in opt.layers and opt.field not in reader.fields:
        raise StoreError(f"{reader.path}: job {reader.job!r} has no field {opt.field!r}; "
                         f"fields: {', '.join(reader.fields)}")
    window = opt.window or reader.extent
    w, h = opt.size
    pair = vector_fields(reader)
    wanted = ([opt.field] if "image" in opt.layers else []) + (list(pair) if "arrows" in opt.layers and pair else [])
    resp = reader.read(WindowRequest(reader.job, window, (w, h), tuple(wanted)))
    canvas = scene.SceneCanvas(size=(w, h), show=False, bgcolor="black")
    view = canvas.central_widget.add_view()
    x0, x1, y0, y1 = window
    view.camera = scene.PanZoomCamera(rect=(x0, y0, x1 - x0, y1 - y0), aspect=1)
    layers = FieldLayers(scene, view.scene, reader.group, pair, opt.layer_options)
    layers.update(resp, window, (w, h))
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
