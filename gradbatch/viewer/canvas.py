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

from ..errors import GradbatchError, ViewerError
from ..records import FieldStats
from ..store import FieldReader, WindowRequest, WindowResponse, job_axes
from .decor import Decor
from .limits import Limits, colour_limits
from .loader import Loader
from .options import LayerOptions
from .render import settle, vispy_scene
from .state import ShownJob, ViewState, key_action
from .visuals import FieldLayers, SurfaceLayers, bar_label
from .window_layout import THEMES, axis_names, check_plane, legend_entries, title_text

__all__ = ["FieldView", "view", "viewable_jobs"]


def viewable_jobs(path: str | Path) -> dict[str, int]:
    """The file's jobs that have 2 or 3 axes, in file order, with their number of axes."""
    return {k: n for k, n in job_axes(path).items() if n in (2, 3)}


class FieldView:
    """A vispy canvas streaming one job. ``app``: ``None`` (a real window), ``"egl"``, or
    ``"jupyter_rfb"`` (a notebook widget: :mod:`gradbatch.viewer.notebook`);
    ``surface``: seed 000's 3D picture instead of the 2D map (read once, turntable camera).

    The vispy wiring only: what is shown lives in ``state`` (:class:`ViewState`, no GL); events
    go to it, and what it says is drawn here."""

    def __init__(
        self,
        path: str | Path,
        job: str | None = None,
        size: tuple[int, int] = (1200, 900),
        options: LayerOptions = LayerOptions(),
        app: str | None = None,
        show: bool = True,
        surface: bool = False,
        slice_axis: str | None = None,
        window: tuple[float, float, float, float] | None = None,
        plane: float | None = None,
    ) -> None:
        # a notebook's widget names its backend on the canvas alone: the process may also draw
        # pictures through egl, and vispy.use() takes one backend a process
        self.scene = vispy_scene(None if app == "jupyter_rfb" else app)
        from vispy import app as vispy_app

        self.path = Path(path)
        self.theme = THEMES[options.theme]
        self.state = ViewState(self.path, viewable_jobs(path), options, slice_axis, surface, plane)
        self.first_window = window  # the first job's first view (None: the whole grid)
        self.canvas = self.scene.SceneCanvas(
            size=size,
            show=show,
            bgcolor=self.theme.background,
            keys=None,
            **({"app": app} if app == "jupyter_rfb" else {}),
        )
        self.decor = Decor(
            self.scene,
            self.canvas,
            self.theme,
            options.colormap,
            options.colorbar and ("image" in options.layers or surface),
            options.legend and not surface,
        )
        self.view, self.bar = self.decor.view, self.decor.bar
        self.responses: queue.Queue[WindowResponse] = queue.Queue()
        self.errors: queue.Queue[BaseException] = queue.Queue()
        self.loader: Loader | None = None
        self.layers: FieldLayers | SurfaceLayers | None = None
        self.limits: Limits | None = None
        self.reader = FieldReader(self.path, job, slice_axis)
        try:
            self._show(self.reader)
        except BaseException:
            self.reader.close()
            self.canvas.close()
            raise
        self.canvas.events.key_press.connect(self._on_key)
        self.canvas.events.mouse_move.connect(self._on_mouse)
        self.timer = vispy_app.Timer(0.02, connect=lambda event: self._tick(), start=True, app=self.canvas.app)

    @property
    def plane(self) -> float | None:
        """A 3D job: the slice plane's coordinate on its axis (None for 2D)."""
        return self.state.plane

    @property
    def playing(self) -> bool:
        """Whether the descent paths are being played."""
        return self.state.playing

    # -- the job shown ------------------------------------------------------------------------
    def _show(self, reader: FieldReader) -> None:
        """Show ``reader``'s job, replacing what was shown (the same job keeps its plane)."""
        if self.loader is not None:
            self.loader.close()
        if reader is not self.reader:
            self.reader.close()
        if self.layers is not None:
            self.layers.remove()
        self.reader = reader
        self.state.enter(
            ShownJob(
                reader.job,
                (reader.axes[0], reader.axes[1]),
                tuple(reader.fields),
                reader.vectors,
                reader.extent,
                reader.slice_axis,
                reader.plane_range,
            )
        )
        options = settle(self.state.options, reader)[0]
        self.options = options
        if self.state.surface:
            self.layers = SurfaceLayers(self.scene, self.view, reader, options, plane=self.state.plane)
            self.loader = None
            self.decor.show_axes(False)
            if self.bar is not None:  # the surface's colours are its height
                self.bar.set_limits(*self.layers.zlim, bar_label(replace(options, scale="linear")))
            self.decor.set_legend([])
        else:
            self.limits = colour_limits(self._stats(reader, options), options.scale, options.clim, options.robust)
            rect = self.state.home()
            if self.first_window is not None:
                x0, x1, y0, y1 = self.first_window
                rect, self.first_window = (x0, y0, x1 - x0, y1 - y0), None
            aspect = 1 if options.aspect == "equal" else None
            self.view.camera = self.scene.PanZoomCamera(rect=rect, aspect=aspect)
            self.decor.link()
            self.decor.show_axes(True)
            self.layers = FieldLayers(
                self.scene,
                self.view.scene,
                reader.overlays(),
                reader.vectors,
                options,
                self.bar,
                reader.plane_axes,
                limits=self.limits,
                theme=self.theme,
            )
            self._legend()
            self.state.paths_drawn(self.layers.path_steps, self.layers.path_step)
            self.loader = Loader(reader, self.responses.put, self.errors.put)
            self.view.camera.transform.changed.connect(lambda event: self.request())
            self.request()
        self._title()

    def _stats(self, reader: FieldReader, options: LayerOptions) -> FieldStats | None:
        """The image field's statistics, of the whole field (the limits never follow the part on screen)."""
        name = options.field or ""
        return reader.stats(name) if name in reader.fields else None

    def _legend(self) -> None:
        """The legend of what the job's layers draw (after a job is shown or a layer toggled)."""
        if not isinstance(self.layers, FieldLayers):
            return
        static = self.layers.static
        self.decor.set_legend(
            legend_entries(
                static.labels,
                self.theme,
                self.state.visible,
                streamlines=static.has_streamlines,
                minima=static.kinds,
                basins=static.basin_count,
                descent=bool(self.layers.options.descent),
                arrows=self.reader.vectors is not None,
                undefined=self.limits.undefined if self.limits is not None else 0,
            )
        )

    def _redraw(self) -> None:
        """Build the current job's layers again (the surface after a change of plane or arrows)."""
        self._show(self.reader)

    def next_job(self) -> str:
        """Show the file's next 2D or 3D job (wrapping round); returns its name."""
        job, slice_axis = self.state.next_job()
        self._show(FieldReader(self.path, job, slice_axis))
        return job

    # -- streaming ----------------------------------------------------------------------------
    @property
    def window(self) -> tuple[float, float, float, float]:
        """The data rectangle (x0, x1, y0, y1) on screen: with an equal aspect the camera shows
        more than its ``rect`` along one axis, and that is read too."""
        cam = self.view.camera
        r = cam.rect
        x0, x1, y0, y1 = float(r.left), float(r.right), float(r.bottom), float(r.top)
        w, h = self.view.size
        if cam.aspect is None or w < 2 or h < 2:
            return x0, x1, y0, y1
        per_px = max((x1 - x0) / w, (y1 - y0) / h * cam.aspect)  # data units a pixel, along x
        cx, cy, half_w, half_h = (x0 + x1) / 2, (y0 + y1) / 2, per_px * w / 2, per_px * h / cam.aspect / 2
        return cx - half_w, cx + half_w, cy - half_h, cy + half_h

    def request(self) -> WindowRequest | None:
        """Ask the loader for the visible window; returns the request, or None when there is
        nothing to ask (the surface is read once; the same window is being read)."""
        if self.loader is None:
            return None
        req = self.state.request(self.window, self.view_pixels())
        if req is not None:
            self.loader.request(req)
        return req

    def view_pixels(self) -> tuple[int, int]:
        """The data view's size in pixels (the canvas less the frame around it)."""
        w, h = self.view.size
        if w < 2 or h < 2:  # laid out at the first draw: until then, the canvas less the frame
            cw, ch = self.canvas.size
            w, h = cw - 64 - (80 if self.bar is not None else 0), ch - 72
        return max(int(w), 2), max(int(h), 2)

    def poll(self) -> WindowResponse | None:
        """Apply the newest response (GUI thread); returns it, or None if none arrived."""
        if not self.errors.empty():
            self.state.failed()
            raise GradbatchError(f"reading {self.path}: {self.errors.get()}")
        newest = None
        while not self.responses.empty():
            newest = self.responses.get()
        if newest is None or not self.state.take(newest):
            return None  # none, or read for the job shown before a switch
        if isinstance(self.layers, FieldLayers):
            self.layers.update(newest, newest.request.window, newest.request.canvas)
            self.canvas.update()
        if self.state.shown_plane is not None:
            self._title()
        return newest

    def _tick(self) -> None:
        self.poll()
        if not self.decor.revealed and (self.state.applied or self.state.surface):
            self.decor.reveal_step()  # the words join after the first frame, a group a frame (llvmpipe)
            self.canvas.update()
        step = self.state.tick()
        if step is not None:
            self.step_paths(step)

    # -- interaction --------------------------------------------------------------------------
    def step_paths(self, step: int) -> int:
        """Draw the descent paths up to ``step``; returns the step drawn."""
        if not isinstance(self.layers, FieldLayers):
            return 0
        done = self.layers.set_path_step(step)
        self.state.paths_drawn(self.layers.path_steps, done)
        self._title()
        self.canvas.update()
        return done

    def move_plane(self, steps: int) -> float | None:
        """A 3D job: move the slice plane by ``steps`` grid steps; returns its coordinate."""
        plane = self.state.move_plane(steps)
        if plane is None:
            return None
        if self.state.surface:
            self._redraw()  # the surface is read once per plane
        else:
            self.request()
        self._title()
        return plane

    def _on_key(self, event: Any) -> None:
        name = getattr(event.key, "name", "") if event.key is not None else ""
        action = key_action(event.text or "", name)
        if action is not None:
            self._act(action)
        self.canvas.update()

    def _act(self, action: str) -> None:
        """Do what a key asks (see :data:`KEY_ACTIONS`)."""
        layers = self.layers
        assert layers is not None
        verb, _, layer = action.partition(" ")
        if verb == "toggle":
            layers.set_visible(self.state.toggle(layer))
            self._legend()
        elif action == "play":
            restart = self.state.play() if isinstance(layers, FieldLayers) else None
            if restart is not None:
                self.step_paths(restart)
        elif action in ("back", "forward") and isinstance(layers, FieldLayers):
            self.step_paths(self.state.nudge(action == "forward"))
        elif action in ("plane down", "plane up"):
            self.move_plane(1 if action == "plane up" else -1)
        elif action == "next job":
            self.next_job()
        elif action == "reset" and self.state.surface:
            self._redraw()
        elif action == "reset":
            self.view.camera.rect = self.state.home()
        elif action == "descent":
            options = self.state.flip_descent(bool(self.options.descent))
            self.options = replace(self.options, descent=options.descent)
            if isinstance(layers, FieldLayers):
                layers.options = self.options
                self._legend()
                if self.state.last_applied is not None:
                    self.layers_update(self.state.last_applied)
            else:
                self._redraw()
        elif action == "screenshot":
            self.screenshot()

    def layers_update(self, resp: WindowResponse) -> None:
        """Draw ``resp`` again (the options changed, the data did not)."""
        if isinstance(self.layers, FieldLayers):
            self.layers.update(resp, resp.request.window, resp.request.canvas)
            self.canvas.update()

    def _title(self) -> None:
        self.canvas.title = self.state.title()
        words = title_text(self.reader.job, _function(self.reader), self.options.title, self.state.plane_text())
        if self.state.surface:
            words += f"    ({self.options.field}: height and colour)"
        x, y = axis_names(self.reader)
        if (words, x, y) != getattr(self, "_words", None):  # new text costs llvmpipe: only on change
            self._words = (words, x, y)
            self.decor.set_words(words, x, y)

    def _on_mouse(self, event: Any) -> None:
        if not isinstance(self.layers, FieldLayers):
            return
        x, y = self.canvas.scene.node_transform(self.view.scene).map(event.pos)[:2]
        self.state.readout(float(x), float(y), self.layers.value_at(float(x), float(y)))
        self._title()

    def screenshot(self) -> Path:
        from vispy.io import write_png

        out = self.state.screenshot_path()
        write_png(str(out), self.canvas.render())
        return out

    def close(self) -> None:
        self.timer.stop()
        if self.loader is not None:
            self.loader.close()
        self.canvas.close()
        self.reader.close()


def _function(reader: FieldReader) -> str | None:
    """The job's function as the file states it, without a repeat of the job's name."""
    text = getattr(reader, "_group0", None)
    value = text.attrs.get("function") if text is not None else None
    if not isinstance(value, str):
        return None
    return value.partition(": ")[2] if value.startswith(f"{reader.job}: ") else value


def view(
    path: str | Path,
    job: str | None = None,
    options: LayerOptions = LayerOptions(),
    surface: bool = False,
    slice_axis: str | None = None,
    size: tuple[int, int] = (1200, 900),
    window: tuple[float, float, float, float] | None = None,
    plane: float | None = None,
) -> None:
    """Open a window on ``job`` of the file at ``path`` and run until it is closed; ``size``,
    ``window`` (x0, x1, y0, y1) and ``plane`` (a 3D job's, on ``slice_axis``) as for a render."""
    import os

    options.check()
    from vispy import app as vispy_app

    reader = FieldReader(path, job, slice_axis)  # a missing or foreign file is reported before anything else
    try:
        if plane is not None and reader.plane_range is not None:
            check_plane(reader.slice_axis, plane, reader.plane_range)
        if window is not None and window[2] != window[2]:  # x0,x1 alone: the whole y range
            window = (window[0], window[1], reader.extent[2], reader.extent[3])
    finally:
        reader.close()
    if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        raise ViewerError(
            "gradbatch view needs a display (none: DISPLAY is not set); "
            "use gradbatch render for a PNG, or run under Xvfb"
        )
    try:
        fv = FieldView(
            path, job, size, options=options, surface=surface, slice_axis=slice_axis, window=window, plane=plane
        )
    except GradbatchError:
        raise
    except Exception as exc:  # vispy found no window backend or no GL context
        raise ViewerError(
            f"cannot open a window ({type(exc).__name__}: {exc}); a window needs "
            "PySide6-Essentials or glfw: pip install glfw"
        ) from None
    try:
        vispy_app.run()
    finally:
        fv.close()
