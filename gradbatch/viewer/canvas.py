"""The interactive view of a 2D job: pan and zoom stream windows of the file.

Every camera change becomes a :class:`WindowRequest` for the visible rectangle. A loader thread
reads it at the pyramid level with at most one data point per screen pixel, and a timer on the
GUI thread applies the newest response, so the full grid is never loaded and the GUI never
waits on the disk.

Keys: ``i`` image, ``a`` arrows, ``s`` streamlines, ``p`` paths (toggle), ``r`` reset view,
``d`` flip arrows (ascent/descent), ``c`` screenshot to ``<file>-<n>.png``. The title shows the
position under the cursor and every field there.
"""

from __future__ import annotations

import queue
from pathlib import Path
from typing import Any

from ..errors import GradbatchError, ViewerError
from .loader import FieldReader, Loader, WindowRequest, WindowResponse
from .visuals import FieldLayers, LayerOptions, arrow_canvas, field_view

__all__ = ["FieldView", "view"]

_KEYS = {"i": "image", "a": "arrows", "s": "streamlines", "p": "paths"}


class FieldView:
    """A vispy canvas streaming one 2D job. ``app``: ``None`` (a real window) or ``"egl"``."""

    def __init__(self, path: str | Path, job: str | None = None, size: tuple[int, int] = (1200, 900),
                 options: LayerOptions = LayerOptions(), app: str | None = None, show: bool = True) -> None:
        from ..render import vector_fields, vispy_scene

        scene = vispy_scene(app)
        from vispy import app as vispy_app

        self.path = Path(path)
        self.reader = FieldReader(path, job)
        self.vectors = vector_fields(self.reader)
        self.options = options
        self.canvas = scene.SceneCanvas(size=size, show=show, bgcolor="black", keys=None,
                                        title=f"gradbatch: {self.path.name} [{self.reader.job}]")
        self.view, bar = field_view(scene, self.canvas, options)
        x0, x1, y0, y1 = self.reader.extent
        self.view.camera = scene.PanZoomCamera(rect=(x0, y0, x1 - x0, y1 - y0), aspect=1)
        self.layers = FieldLayers(scene, self.view.scene, self.reader.group, self.vectors, options, bar)
        self.responses: queue.Queue[WindowResponse] = queue.Queue()
        self.errors: queue.Queue[BaseException] = queue.Queue()
        self.loader = Loader(self.reader, self.responses.put, self.errors.put)
        self.requests: list[WindowRequest] = []
        self.applied: list[WindowResponse] = []
        self.screenshots = 0
        self.view.camera.transform.changed.connect(lambda event: self.request())
        self.canvas.events.key_press.connect(self._on_key)
        self.canvas.events.mouse_move.connect(self._on_mouse)
        self.timer = vispy_app.Timer(0.02, connect=lambda event: self.poll(), start=True)
        self.request()

    # -- streaming ----------------------------------------------------------------------------
    @property
    def window(self) -> tuple[float, float, float, float]:
        r = self.view.camera.rect
        return float(r.left), float(r.right), float(r.bottom), float(r.top)

    def request(self) -> WindowRequest:
        fields = (self.options.field,) if self.options.field in self.reader.fields else ()
        size = tuple(self.canvas.size)
        req = WindowRequest(self.reader.job, self.window, (size[0], size[1]), fields,
                            tuple(self.vectors or ()), arrow_canvas((size[0], size[1]), self.options.pixels_per_arrow))
        self.requests.append(req)
        self.loader.request(req)
        return req

    def poll(self) -> WindowResponse | None:
        """Apply the newest response (GUI thread); returns it, or None if none arrived."""
        if not self.errors.empty():
            raise GradbatchError(f"reading {self.path}: {self.errors.get()}")
        newest = None
        while not self.responses.empty():
            newest = self.responses.get()
        if newest is not None:
            self.layers.update(newest, newest.request.window, newest.request.canvas)
            self.applied.append(newest)
            self.canvas.update()
        return newest

    # -- interaction --------------------------------------------------------------------------
    def _on_key(self, event: Any) -> None:
        key = (event.text or "").lower()
        if key in _KEYS:
            self.layers.toggle(_KEYS[key])
        elif key == "r":
            x0, x1, y0, y1 = self.reader.extent
            self.view.camera.rect = (x0, y0, x1 - x0, y1 - y0)
        elif key == "d":
            self.options = LayerOptions(**{**self.options.__dict__, "descent": not self.options.descent})
            self.layers.options = self.options
            self.request()
        elif key == "c":
            self.screenshot()
        self.canvas.update()

    def _on_mouse(self, event: Any) -> None:
        tr = self.view.scene.transform
        x, y = tr.imap(event.pos)[:2]
        values = self.layers.value_at(float(x), float(y))
        where = f"({x:.4g}, {y:.4g})"
        text = ", ".join(f"{k} {v:.4g}" for k, v in values.items()) if values else "outside"
        self.canvas.title = f"gradbatch: {self.path.name} [{self.reader.job}]  {where}  {text}"

    def screenshot(self) -> Path:
        from vispy.io import write_png

        self.screenshots += 1
        out = self.path.with_name(f"{self.path.stem}-{self.screenshots}.png")
        write_png(str(out), self.canvas.render())
        return out

    def close(self) -> None:
        self.timer.stop()
        self.loader.close()
        self.canvas.close()
        self.reader.close()


def view(path: str | Path, job: str | None = None, options: LayerOptions = LayerOptions()) -> None:
    """Open a window on ``job`` of the file at ``path`` and run until it is closed."""
    import os

    from vispy import app as vispy_app

    options.check()
    FieldReader(path, job).close()  # a missing or foreign file is reported before anything else
    if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        raise ViewerError("gradbatch view needs a display (none: DISPLAY is not set); "
                          "use gradbatch render for a PNG, or run under Xvfb")
    try:
        fv = FieldView(path, job, options=options)
    except GradbatchError:
        raise
    except Exception as exc:  # vispy found no window backend or no GL context
        raise ViewerError(f"cannot open a window ({type(exc).__name__}: {exc}); a window needs "
                          "PySide6-Essentials or glfw: pip install glfw") from None
    try:
        vispy_app.run()
    finally:
        fv.close()
