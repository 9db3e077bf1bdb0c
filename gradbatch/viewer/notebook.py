"""``gradbatch.explore``: the window's interactive view as a Jupyter widget.

The same :class:`~gradbatch.viewer.canvas.FieldView` as ``gradbatch view`` (streaming pan and
zoom through the pyramid, the same keys, axes and legend) drawn by vispy's ``jupyter_rfb``
backend: the kernel renders each frame offscreen and the widget shows it, so it works in
JupyterLab, Notebook and VS Code, on a remote kernel too. Under it, a slider steps the descent
paths (vispy has no such control). Where the widgets are not installed, or no OpenGL context can
be made, ``explore`` gives the static picture of :func:`~gradbatch.viewer.render.show` instead,
and says why.

OpenGL: vispy's backend makes its context with glfw or a GUI toolkit, which need a display; a
kernel without one (a server, a container) gets an EGL surfaceless context here instead.
"""

from __future__ import annotations

import asyncio
import os
import sys
import warnings
from pathlib import Path
from typing import Any

from ..errors import GradbatchError
from .options import RenderOptions, picture_options
from .render import Figure, _source, checked, show

__all__ = ["explore", "NOTEBOOK_SIZE"]

NOTEBOOK_SIZE = (900, 600)
"""The widget's default size in pixels: a notebook cell's width."""


def explore(source: Any, job: str | None = None, options: RenderOptions | None = None, **kw: Any) -> Any:
    """An interactive view of a job in a notebook cell: ``source`` a gradbatch file or a Dataset
    ``gradbatch.open`` gave; keyword options as ``gradbatch view`` takes them (``layers=``,
    ``descent=True``, ``size=(900, 600)``, ``window=(x0, x1, y0, y1)``, ...).

    Returns an ipywidgets ``VBox``: the view (drag to pan, wheel to zoom, the window's keys once
    it has the focus) and, for a job with descent paths, a slider of the paths' step. Its
    ``view`` attribute is the :class:`~gradbatch.viewer.canvas.FieldView`. Without
    ``jupyter_rfb`` and ``ipywidgets``, without OpenGL, or outside a notebook kernel (no running
    event loop: a plain script), a static :class:`Figure` instead, with a warning saying why."""
    path, job = _source(source, job)
    opts = picture_options(options or RenderOptions(size=NOTEBOOK_SIZE), **kw)
    job, ndim = checked(path, job, opts)
    if ndim == 1:
        return _static(path, job, opts, "a 1D job is drawn as a curve, not an interactive view")
    try:
        import ipywidgets
        import jupyter_rfb  # noqa: F401
    except ImportError as exc:
        return _static(path, job, opts, f"{exc.name} is not installed (pip install 'gradbatch[notebook]')")
    try:
        asyncio.get_running_loop()  # the widget's frames and timers run on it
    except RuntimeError:
        return _static(path, job, opts, "no running event loop: not in a notebook kernel")
    from .canvas import FieldView

    _prepare_backend()
    try:
        fv = FieldView(
            path,
            job,
            opts.size,
            options=opts,
            app="jupyter_rfb",
            show=False,
            surface=opts.surface,
            slice_axis=opts.slice_axis,
            window=opts.window,
            plane=opts.plane,
        )
    except GradbatchError:
        raise
    except Exception as exc:  # no OpenGL context: vispy raises several kinds
        return _static(path, job, opts, f"no OpenGL context for the widget ({type(exc).__name__}: {exc})")
    frame = fv.canvas.native
    children = [frame]
    slider = _path_slider(ipywidgets, fv)
    if slider is not None:
        children.append(slider)
    box = ipywidgets.VBox(children)
    box.view, box.frame, box.slider = fv, frame, slider
    return box


def _static(path: Path, job: str | None, opts: RenderOptions, why: str) -> Figure:
    warnings.warn(f"gradbatch.explore: {why}; showing a static picture", stacklevel=3)
    return show(path, job, opts)


def _path_slider(ipywidgets: Any, fv: Any) -> Any:
    """A slider of the descent paths' step, kept in step with the view (its keys and playing)."""
    steps = fv.state.path_steps
    if not steps:
        return None
    slider = ipywidgets.IntSlider(
        value=fv.state.path_step or steps,
        min=0,
        max=steps,
        description="path step",
        continuous_update=True,
        layout=ipywidgets.Layout(width=f"{fv.canvas.size[0]}px"),
    )
    drawn = fv.step_paths
    moving = [False]

    def step_paths(step: int) -> int:  # the view's own stepping (keys, playing) moves the slider
        done = drawn(step)
        if not moving[0]:
            moving[0] = True
            try:
                slider.value = done
            finally:
                moving[0] = False
        return done

    def on_slider(change: dict[str, Any]) -> None:
        if not moving[0]:
            moving[0] = True
            try:
                drawn(int(change["new"]))
            finally:
                moving[0] = False

    fv.step_paths = step_paths
    slider.observe(on_slider, names="value")
    return slider


_PREPARED = False


def _prepare_backend() -> None:
    """vispy's jupyter_rfb backend, fitted: an EGL context where there is no display (its own
    needs glfw or a GUI toolkit and a display), and the canvas's size from the first frame on (it
    starts at 1 x 1 until the browser reports one, and the view's frame is laid out before)."""
    global _PREPARED
    if _PREPARED:
        return
    os.environ.setdefault("EGL_PLATFORM", "surfaceless")
    from vispy.app.backends import _jupyter_rfb as rfb

    headless = sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
    if headless:
        rfb.OffscreenContext = _EglContext
    base = rfb.CanvasBackend

    class SizedBackend(base):  # type: ignore[misc, valid-type]
        def __init__(self, vispy_canvas: Any, **kwargs: Any) -> None:
            super().__init__(vispy_canvas, **kwargs)
            w, h = kwargs["size"]
            self._logical_size = self._physical_size = (int(w), int(h))
            self._helper.set_physical_size(int(w), int(h))

    rfb.CanvasBackend = SizedBackend
    _PREPARED = True


class _EglContext:
    """An OpenGL context without a display: a hidden canvas of vispy's EGL backend."""

    def __init__(self) -> None:
        from vispy import app

        self._canvas = app.Canvas(app=app.Application("egl"), show=False, size=(1, 1))

    def make_current(self) -> _EglContext:
        self._canvas.set_current()
        return self

    def close(self) -> None:
        self._canvas.close()
