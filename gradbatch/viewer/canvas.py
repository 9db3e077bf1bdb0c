"""The interactive view of a job: pan and zoom stream windows of the file.

Every camera change becomes a :class:`WindowRequest` for the visible rectangle. A loader thread
reads it at the pyramid level with at most one data point per screen pixel, and a timer on the
GUI thread applies the newest response, so the full grid is never loaded and the GUI never
waits on the disk. A 3D job shows one plane at a time; the surface mode shows seed 000's 3D
picture under a turntable camera.
"""

from __future__ import annotations

import queue
from dataclasses import replace
from pathlib import Path
from typing import Any

import h5py

from ..errors import GradbatchError, ViewerError
from ..store import check_job, child, job_names, open_store
from .loader import FieldReader, Loader, WindowRequest, WindowResponse
from .render import vispy_scene
from .visuals import FieldLayers, LayerOptions, SurfaceLayers, arrow_canvas, field_view

__all__ = ["FieldView", "view", "viewable_jobs"]

_TOGGLES = {"i": "image", "a": "arrows", "s": "streamlines", "p": "paths", "b": "basins", "o": "contours"}


def viewable_jobs(path: str | Path) -> dict[str, int]:
    """The file's jobs that have 2 or 3 axes, in file order, with their number of axes."""
    with open_store(path) as f:
        axes = {k: len(check_job(path, child(path, f, k, h5py.Group), overlays=False).axes)
                for k in job_names(path, f)}
    return {k: n for k, n in axes.items() if n in (2, 3)}


class FieldView:
    """A vispy canvas streaming one job. ``app``: ``None`` (a real window) or ``"egl"``;
    ``surface``: seed 000's 3D picture instead of the 2D map (read once, turntable camera)."""

    def __init__(self, path: str | Path, job: str | None = None, size: tuple[int, int] = (1200, 900),
                 options: LayerOptions = LayerOptions(), app: str | None = None, show: bool = True,
                 surface: bool = False, slice_axis: str | None = None) -> None:
        self.scene = vispy_scene(app)
        from vispy import app as vispy_app

        self.path = Path(path)
        self.jobs = viewable_jobs(path)
        self.options = options
        self.surface = surface
        self.slice_axis = slice_axis
        self.canvas = self.scene.SceneCanvas(size=size, show=show, bgcolor="black", keys=None)
        # the surface is coloured by height, its own scale: no colour bar
        self.view, self.bar = field_view(self.scene, self.canvas, replace(options, colorbar=options.colorbar and not surface))
        self.responses: queue.Queue[WindowResponse] = queue.Queue()
        self.errors: queue.Queue[BaseException] = queue.Queue()
        self.requests: list[WindowRequest] = []
        self.applied: list[WindowResponse] = []
        self.screenshots = 0
        self.playing = False
        self.plane: float | None = None
        self.status = ""
        self.loader: Loader | None = None
        self.layers: FieldLayers | SurfaceLayers | None = None
        self.reader = FieldReader(self.path, job, slice_axis)
        self._show(self.reader)
        self.canvas.events.key_press.connect(self._on_key)
        self.canvas.events.mouse_move.connect(self._on_mouse)
        self.timer = vispy_app.Timer(0.02, connect=lambda event: self._tick(), start=True)

    # -- the job shown ------------------------------------------------------------------------
    def _show(self, reader: FieldReader) -> None:
        """Show ``reader``'s job, replacing what was shown (the same job keeps its plane)."""
        same = self.layers is not None and reader.job == self.reader.job
        if self.loader is not None:
            self.loader.close()
        if reader is not self.reader:
            self.reader.close()
        if self.layers is not None:
            self.layers.remove()
        self.reader = reader
        self.vectors = reader.vectors
        r = reader.plane_range
        if r is None:
            self.plane = None
        elif not same or self.plane is None:
            self.plane = (r[0] + r[1]) / 2
        self.playing = False
        if self.surface:
            self.layers = SurfaceLayers(self.scene, self.view, reader, self.options, plane=self.plane)
            self.loader = None
        else:
            x0, x1, y0, y1 = reader.extent
            self.view.camera = self.scene.PanZoomCamera(rect=(x0, y0, x1 - x0, y1 - y0), aspect=1)
            # the colour bar joins after the first frame: its text costs llvmpipe ~0.5 s to draw first
            if self.bar is not None:
                self.bar.visible = False
            self.layers = FieldLayers(self.scene, self.view.scene, reader.group, self.vectors, self.options,
                                      None, reader.plane_axes)
            self.loader = Loader(reader, self.responses.put, self.errors.put)
            self.view.camera.transform.changed.connect(lambda event: self.request())
            self.request()
        self._title()

    def _redraw(self) -> None:
        """Build the current job's layers again (the surface after a change of plane or arrows)."""
        self._show(self.reader)

    def next_job(self) -> str:
        """Show the file's next 2D or 3D job (wrapping round); returns its name."""
        names = list(self.jobs)
        job = names[(names.index(self.reader.job) + 1) % len(names)] if self.reader.job in names else names[0]
        self._show(FieldReader(self.path, job, self.slice_axis if self.jobs[job] == 3 else None))
        return job

    # -- streaming ----------------------------------------------------------------------------
    @property
    def window(self) -> tuple[float, float, float, float]:
        r = self.view.camera.rect
        return float(r.left), float(r.right), float(r.bottom), float(r.top)

    def request(self) -> WindowRequest | None:
        if self.loader is None:  # the surface is read once
            return None
        fields = (self.options.field,) if self.options.field in self.reader.fields else ()
        w, h = (int(v) for v in self.canvas.size)
        req = WindowRequest(self.reader.job, self.window, (w, h), fields, tuple(self.vectors or ()),
                            arrow_canvas((w, h), self.options.pixels_per_arrow), self.plane)
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
        if newest is not None and newest.request.job != self.reader.job:
            return None  # read for the job shown before a switch
        if newest is not None and isinstance(self.layers, FieldLayers):
            self.layers.update(newest, newest.request.window, newest.request.canvas)
            self.applied.append(newest)
            self.canvas.update()
        return newest

    def _tick(self) -> None:
        self.poll()
        if (self.bar is not None and isinstance(self.layers, FieldLayers) and self.layers.colorbar is None
                and self.applied):
            self.layers.attach_colorbar(self.bar)
            self.canvas.update()
        if self.playing and isinstance(self.layers, FieldLayers):
            total = self.layers.path_steps
            step = self.layers.path_step + max(1, total // 200)
            if step >= total:
                step, self.playing = total, False
            self.step_paths(step)

    # -- interaction --------------------------------------------------------------------------
    def step_paths(self, step: int) -> int:
        """Draw the descent paths up to ``step``; returns the step drawn."""
        if not isinstance(self.layers, FieldLayers):
            return 0
        done = self.layers.set_path_step(step)
        self._title()
        self.canvas.update()
        return done

    def move_plane(self, steps: int) -> float | None:
        """A 3D job: move the slice plane by ``steps`` grid steps; returns its coordinate."""
        r = self.reader.plane_range
        if r is None or self.plane is None:
            return None
        lo, hi, d = r
        self.plane = min(max(self.plane + steps * d, min(lo, hi)), max(lo, hi))
        if self.surface:
            self._redraw()  # the surface is read once per plane
        else:
            self.request()
        self._title()
        return self.plane

    def _on_key(self, event: Any) -> None:
        key = (event.text or "").lower()
        name = getattr(event.key, "name", "") if event.key is not None else ""
        layers = self.layers
        assert layers is not None
        if key in _TOGGLES:
            layers.toggle(_TOGGLES[key])
        elif key == " " or name == "Space":
            if isinstance(layers, FieldLayers) and layers.path_steps:
                if layers.path_step >= layers.path_steps:
                    self.step_paths(0)
                self.playing = not self.playing
        elif key in "[]" and key and isinstance(layers, FieldLayers):
            self.playing = False
            delta = max(1, layers.path_steps // 50)
            self.step_paths(layers.path_step + (delta if key == "]" else -delta))
        elif key in ",." and key:
            self.move_plane(1 if key == "." else -1)
        elif key == "j":
            self.next_job()
        elif key == "r" and self.surface:
            self._redraw()
        elif key == "r":
            self._reset()
        elif key == "d":
            self.options = replace(self.options, descent=not self.options.descent)
            if isinstance(layers, FieldLayers):
                layers.options = self.options
                self.request()
            else:
                self._redraw()
        elif key == "c":
            self.screenshot()
        self.canvas.update()

    def _reset(self) -> None:
        x0, x1, y0, y1 = self.reader.extent
        self.view.camera.rect = (x0, y0, x1 - x0, y1 - y0)

    def _title(self) -> None:
        parts = [f"gradbatch: {self.path.name} [{self.reader.job}]"]
        if self.plane is not None:
            parts.append(f"{self.reader.slice_axis} = {self.plane:.4g}")
        if isinstance(self.layers, FieldLayers) and self.layers.path_steps:
            parts.append(f"step {self.layers.path_step}/{self.layers.path_steps}")
        if self.status:
            parts.append(self.status)
        self.canvas.title = "  ".join(parts)

    def _on_mouse(self, event: Any) -> None:
        if not isinstance(self.layers, FieldLayers):
            return
        tr = self.view.scene.transform
        x, y = tr.imap(event.pos)[:2]
        values = self.layers.value_at(float(x), float(y))
        a, b = self.reader.axes
        where = f"{a} {x:.4g}, {b} {y:.4g}"
        self.status = f"{where}: " + (", ".join(f"{k} {v:.4g}" for k, v in values.items()) if values else "outside")
        self._title()

    def screenshot(self) -> Path:
        from vispy.io import write_png

        self.screenshots += 1
        out = self.path.with_name(f"{self.path.stem}-{self.screenshots}.png")
        write_png(str(out), self.canvas.render())
        return out

    def close(self) -> None:
        self.timer.stop()
        if self.loader is not None:
            self.loader.close()
        self.canvas.close()
        self.reader.close()


def view(path: str | Path, job: str | None = None, options: LayerOptions = LayerOptions(),
         surface: bool = False, slice_axis: str | None = None) -> None:
    """Open a window on ``job`` of the file at ``path`` and run until it is closed."""
    import os

    options.check()
    from vispy import app as vispy_app

    FieldReader(path, job, slice_axis).close()  # a missing or foreign file is reported before anything else
    if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        raise ViewerError("gradbatch view needs a display (none: DISPLAY is not set); "
                          "use gradbatch render for a PNG, or run under Xvfb")
    try:
        fv = FieldView(path, job, options=options, surface=surface, slice_axis=slice_axis)
    except GradbatchError:
        raise
    except Exception as exc:  # vispy found no window backend or no GL context
        raise ViewerError(f"cannot open a window ({type(exc).__name__}: {exc}); a window needs "
                          "PySide6-Essentials or glfw: pip install glfw") from None
    try:
        vispy_app.run()
    finally:
        fv.close()
