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
from ..store import FieldReader, WindowRequest, WindowResponse, job_axes
from .loader import Loader
from .options import LayerOptions
from .render import settle, vispy_scene
from .state import ShownJob, ViewState, key_action
from .visuals import FieldLayers, SurfaceLayers, field_view

__all__ = ["FieldView", "view", "viewable_jobs"]


def viewable_jobs(path: str | Path) -> dict[str, int]:
    """The file's jobs that have 2 or 3 axes, in file order, with their number of axes."""
    return {k: n for k, n in job_axes(path).items() if n in (2, 3)}


class FieldView:
    """A vispy canvas streaming one job. ``app``: ``None`` (a real window) or ``"egl"``;
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
    ) -> None:
        self.scene = vispy_scene(app)
        from vispy import app as vispy_app

        self.path = Path(path)
        self.state = ViewState(self.path, viewable_jobs(path), options, slice_axis, surface)
        self.canvas = self.scene.SceneCanvas(size=size, show=show, bgcolor="black", keys=None)
        # the surface is coloured by height, its own scale: no colour bar
        self.view, self.bar = field_view(
            self.scene, self.canvas, replace(options, colorbar=options.colorbar and not surface)
        )
        self.responses: queue.Queue[WindowResponse] = queue.Queue()
        self.errors: queue.Queue[BaseException] = queue.Queue()
        self.loader: Loader | None = None
        self.layers: FieldLayers | SurfaceLayers | None = None
        self.reader = FieldReader(self.path, job, slice_axis)
        self._show(self.reader)
        self.canvas.events.key_press.connect(self._on_key)
        self.canvas.events.mouse_move.connect(self._on_mouse)
        self.timer = vispy_app.Timer(0.02, connect=lambda event: self._tick(), start=True)

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
        if self.state.surface:
            self.layers = SurfaceLayers(self.scene, self.view, reader, options, plane=self.state.plane)
            self.loader = None
        else:
            self.view.camera = self.scene.PanZoomCamera(rect=self.state.home(), aspect=1)
            # the colour bar joins after the first frame: its text costs llvmpipe ~0.5 s to draw first
            if self.bar is not None:
                self.bar.visible = False
            self.layers = FieldLayers(
                self.scene, self.view.scene, reader.overlays(), reader.vectors, options, None, reader.plane_axes
            )
            self.state.paths_drawn(self.layers.path_steps, self.layers.path_step)
            self.loader = Loader(reader, self.responses.put, self.errors.put)
            self.view.camera.transform.changed.connect(lambda event: self.request())
            self.request()
        self._title()

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
        r = self.view.camera.rect
        return float(r.left), float(r.right), float(r.bottom), float(r.top)

    def request(self) -> WindowRequest | None:
        """Ask the loader for the visible window; returns the request, or None when there is
        nothing to ask (the surface is read once; the same window is being read)."""
        if self.loader is None:
            return None
        w, h = (int(v) for v in self.canvas.size)
        req = self.state.request(self.window, (w, h))
        if req is not None:
            self.loader.request(req)
        return req

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
        return newest

    def _tick(self) -> None:
        self.poll()
        if (
            self.bar is not None
            and isinstance(self.layers, FieldLayers)
            and self.layers.colorbar is None
            and self.state.applied
        ):
            self.layers.attach_colorbar(self.bar)
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
            options = self.state.flip_descent()
            if isinstance(layers, FieldLayers):
                layers.options = options
                self.request()
            else:
                self._redraw()
        elif action == "screenshot":
            self.screenshot()

    def _title(self) -> None:
        self.canvas.title = self.state.title()

    def _on_mouse(self, event: Any) -> None:
        if not isinstance(self.layers, FieldLayers):
            return
        x, y = self.view.scene.transform.imap(event.pos)[:2]
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


def view(
    path: str | Path,
    job: str | None = None,
    options: LayerOptions = LayerOptions(),
    surface: bool = False,
    slice_axis: str | None = None,
) -> None:
    """Open a window on ``job`` of the file at ``path`` and run until it is closed."""
    import os

    options.check()
    from vispy import app as vispy_app

    FieldReader(path, job, slice_axis).close()  # a missing or foreign file is reported before anything else
    if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        raise ViewerError(
            "gradbatch view needs a display (none: DISPLAY is not set); "
            "use gradbatch render for a PNG, or run under Xvfb"
        )
    try:
        fv = FieldView(path, job, options=options, surface=surface, slice_axis=slice_axis)
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
